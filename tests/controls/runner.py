"""Run certification suites against the reference charger (optionally with defects) in a subprocess.

A negative control is a run of the real suites against a reference charger with one injected
defect: the requirement the defect breaks must come out `fail`, and no other. A positive control
is the same run without the defect (or with a conformant variant): everything `pass`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class SuiteRun:
    exit_code: int
    output: str
    report: dict[str, Any]

    def verdicts(self) -> dict[str, str]:
        """Requirement id -> verdict, for the requirements that had tests in this run."""
        return {r["id"]: r["verdict"] for r in self.report.get("requirements", []) if r.get("tests")}

    def failing(self) -> set[str]:
        return {rid for rid, verdict in self.verdicts().items() if verdict == "fail"}

    def explain(self) -> str:
        return f"exit {self.exit_code}; verdicts {self.verdicts()}\n--- output ---\n{self.output[-6000:]}"


def run_suites(
    files: list[str],
    tmp_path: Path,
    *,
    defects: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
    timeout: float = 300,
    certs_dir: Path | None = None,
) -> SuiteRun:
    """`pytest <files> --sim-defect ...` from the repo root, the report written under tmp_path."""
    report_dir = tmp_path / "report"
    args = [sys.executable, "-m", "pytest", *files, "-p", "no:cacheprovider", "-q", "--report-dir", str(report_dir),
            "--certs-dir", str(certs_dir or tmp_path / "certs"), *extra]
    if defects:
        args += ["--sim-defect", ",".join(defects)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    report_file = report_dir / "certification.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return SuiteRun(done.returncode, done.stdout + done.stderr, report)
