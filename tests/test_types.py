"""The harness's type hints are checked, as part of the harness's own tests (so CI checks them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_finds_no_type_errors_in_the_harness(tmp_path: Path) -> None:
    pytest.importorskip("mypy", reason="mypy is in the test extras (pip install -e '.[test]')")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, f"mypy found type errors:\n{done.stdout[-6000:]}{done.stderr[-2000:]}"
