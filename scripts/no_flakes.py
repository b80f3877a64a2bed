#!/usr/bin/env python3
"""No-flake proof: run the full quick certification against the reference charger N times in a row.

    python scripts/no_flakes.py                 # 50 runs of `pytest suites/`
    python scripts/no_flakes.py --runs 10 -- -n 2   # anything after `--` goes to pytest

Each run is a fresh `pytest suites/` process (a new endpoint, a new reference charger, a new
event loop), as a manufacturer would run it. For every run it prints the wall time and, when the
run failed, every failing test id with the first line of its failure (from the run's JUnit XML;
if pytest died before writing it, the tail of its output). A failed run's output and report are
kept under --out-dir for the post-mortem. The exit status is 0 only when every run passed.

Runs use their own --report-dir and one shared --certs-dir under --out-dir (a temporary
directory by default), so they never touch the repository's reports/ or certs/.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sysconfig
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RunResult:
    index: int
    wall: float
    exit_code: int
    failures: list[tuple[str, str]] = field(default_factory=list)  # (test id, first failure line)
    counts: str = ""
    environment_changed: str | None = None  # the installed packages changed under the run


    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.failures


def _nodeid(case: ET.Element) -> str:
    """pytest's node id back from JUnit's classname ("suites.test_x") and name."""
    classname, name = case.get("classname", ""), case.get("name", "")
    file = case.get("file")
    parts = classname.split(".")
    # Walk the dotted classname until it names an existing module file; the rest are classes.
    for cut in range(len(parts), 0, -1):
        candidate = "/".join(parts[:cut]) + ".py"
        if (ROOT / candidate).exists() or (file and file == candidate):
            return "::".join([candidate, *parts[cut:], name])
    return f"{classname}::{name}" if classname else name


def _first_line(text: str | None) -> str:
    for line in (text or "").splitlines():
        line = line.strip()
        if line:
            return line[:300]
    return "(no message)"


def failures_from_junit(path: Path) -> tuple[list[tuple[str, str]], str]:
    tree = ET.parse(path)
    found: list[tuple[str, str]] = []
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in tree.iter("testsuite"):
        for key in totals:
            totals[key] += int(suite.get(key, "0") or 0)
    for case in tree.iter("testcase"):
        for child in case:
            if child.tag in ("failure", "error"):
                what = "" if child.tag == "failure" else "[error] "
                found.append((_nodeid(case), what + _first_line(child.get("message") or child.text)))
    counts = (
        f"{totals['tests']} tests, {totals['failures']} failed, {totals['errors']} errors, "
        f"{totals['skipped']} skipped"
    )
    return found, counts


def _packages_stamp() -> tuple[float, str]:
    """When the installed packages last changed: the newest entry of site-packages (mtime, name).

    A run fails for reasons that are not the harness's when something reinstalls packages into the
    environment while it runs (a module or a schema file disappears mid-run); such a run is still
    counted as failed, but said so.
    """
    newest = (0.0, "")
    for key in ("purelib", "platlib"):
        root = Path(sysconfig.get_paths()[key])
        with contextlib.suppress(OSError):
            for entry in os.scandir(root):
                with contextlib.suppress(OSError):
                    mtime = entry.stat(follow_symlinks=False).st_mtime
                    if mtime > newest[0]:
                        newest = (mtime, entry.name)
    return newest


def run_once(index: int, args: argparse.Namespace, out_dir: Path, certs_dir: Path) -> RunResult:
    run_dir = out_dir / f"run-{index:03d}"
    run_dir.mkdir(parents=True, exist_ok=True)
    junit = run_dir / "junit.xml"
    command = [
        sys.executable, "-m", "pytest", *args.paths, "-q", "-p", "no:cacheprovider",
        "--report-dir", str(run_dir / "report"), "--certs-dir", str(certs_dir),
        f"--junitxml={junit}", *args.pytest_args,
    ]
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    before = _packages_stamp()
    start = time.monotonic()
    try:
        proc = subprocess.run(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=args.run_timeout,
        )
        output, code = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as exc:
        output = (exc.stdout or b"").decode("utf-8", "replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        code = -1
        output += f"\n[no_flakes] the run did not finish within {args.run_timeout:g} s and was killed\n"
    wall = time.monotonic() - start
    (run_dir / "output.txt").write_text(output, encoding="utf-8")
    result = RunResult(index, wall, code)
    after = _packages_stamp()
    if after[0] > before[0]:
        when = time.strftime("%H:%M:%S", time.localtime(after[0]))
        result.environment_changed = f"installed packages changed during the run ({after[1]} at {when})"
    if junit.exists():
        try:
            result.failures, result.counts = failures_from_junit(junit)
        except ET.ParseError as exc:
            result.failures = [("<junit>", f"unreadable JUnit XML: {exc}")]
    if code != 0 and not result.failures:
        tail = [ln for ln in output.splitlines() if ln.strip()][-3:]
        result.failures = [("<pytest>", f"exit status {code}: " + " | ".join(tail)[:300])]
    if result.passed and not args.keep_all:
        shutil.rmtree(run_dir, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=50, help="how many runs in a row (default 50)")
    parser.add_argument("--paths", nargs="+", default=["suites/"], help="what to run (default suites/)")
    parser.add_argument("--out-dir", type=Path, default=None, help="where failed runs are kept (default: a temp dir)")
    parser.add_argument("--run-timeout", type=float, default=600.0, help="kill a run after this many seconds")
    parser.add_argument("--keep-all", action="store_true", help="keep the output and report of passing runs too")
    parser.add_argument("-x", "--exitfirst", action="store_true", help="stop after the first failed run")
    args = parser.parse_args(argv)
    args.pytest_args = extra
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="no-flakes-"))
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    certs_dir = out_dir / "certs"
    shown = " ".join(["pytest", *args.paths, *extra])
    print(f"no_flakes: {args.runs} runs of `{shown}` (quick certification against the reference charger)")
    print(f"no_flakes: failed runs are kept in {out_dir}", flush=True)

    results: list[RunResult] = []
    for index in range(1, args.runs + 1):
        result = run_once(index, args, out_dir, certs_dir)
        results.append(result)
        word = "pass" if result.passed else "FAIL"
        print(f"run {index:3d}/{args.runs}: {word} {result.wall:6.1f} s  {result.counts}", flush=True)
        for test_id, line in result.failures:
            print(f"    {test_id}: {line}", flush=True)
        if result.environment_changed:
            print(f"    note: {result.environment_changed}; see its output", flush=True)
        if not result.passed and args.exitfirst:
            break

    failed = [r for r in results if not r.passed]
    walls = [r.wall for r in results]
    print()
    print(f"no_flakes: {len(results) - len(failed)}/{len(results)} runs passed"
          + (f" ({args.runs - len(results)} not run: stopped at the first failure)" if len(results) < args.runs else ""))
    print(f"no_flakes: wall time per run: min {min(walls):.1f} s, median {statistics.median(walls):.1f} s, "
          f"max {max(walls):.1f} s; total {sum(walls):.0f} s")
    disturbed = [r for r in failed if r.environment_changed]
    if disturbed:
        print(f"no_flakes: {len(disturbed)} of the failed runs ran while the installed packages changed: "
              + ", ".join(f"run {r.index}" for r in disturbed))
    if failed:
        tally: dict[str, int] = {}
        for r in failed:
            for test_id, _ in r.failures:
                tally[test_id] = tally.get(test_id, 0) + 1
        print("no_flakes: failing tests (runs failed):")
        for test_id, count in sorted(tally.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"    {count:3d}  {test_id}")
        print(f"no_flakes: outputs and reports of the failed runs: {out_dir}/run-NNN/")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
