"""The harness's type hints are checked, as part of the harness's own tests (so CI checks them).

pyproject.toml's `[tool.mypy]` makes `mypy` in the project's root check the whole `harness` package with
`strict = true`. The tests below keep it so: `mypy --strict` finds nothing in any module of the package, and no
override quietly takes a module out of --strict.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Settings an override could use to weaken --strict for some modules (and any of --strict's flags set false, but
#: implicit_reexport, which --strict sets false).
_SILENCING = {"ignore_errors", "follow_imports", "disable_error_code", "allow_untyped_defs", "allow_untyped_calls",
              "allow_untyped_globals", "allow_redefinition", "implicit_reexport"}
_FALSE_IS_STRICT = {"implicit_reexport"}


def _mypy(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mypy", reason="mypy is in the test extras (pip install -e '.[test]')")
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _config() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        mypy: dict[str, Any] = tomllib.load(f)["tool"]["mypy"]
    return mypy


def test_mypy_strict_finds_nothing_in_the_harness(tmp_path: Path) -> None:
    # Every module of the package, named by the package (so a new module cannot be left out).
    done = _mypy("--strict", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path),
                 "-p", "harness")
    assert done.returncode == 0, f"mypy --strict found errors in the harness:\n{done.stdout[-6000:]}{done.stderr[-2000:]}"
    # -p takes every module of the package (and counts report/templates, a directory, as a namespace package).
    checked = re.search(r"no issues found in (\d+) source files", done.stdout)
    modules = len(list((ROOT / "harness").rglob("*.py")))
    assert checked is not None and int(checked.group(1)) >= modules, (
        f"mypy checked {checked.group(1) if checked else '?'} files, the harness has {modules}: {done.stdout[-500:]}"
    )


def test_plain_mypy_is_strict_over_the_whole_harness() -> None:
    # What a developer (or an editor) runs, `mypy` in the project's root, is the check above.
    config = _config()
    assert config.get("strict") is True, "pyproject.toml's [tool.mypy] must say strict = true"
    assert config.get("files") == ["harness"], f"[tool.mypy] files should be the harness package, not {config.get('files')}"
    for override in config.get("overrides", []):
        weakened = sorted(k for k, v in override.items()
                          if (k in _SILENCING and not (k in _FALSE_IS_STRICT and v is False)) or (
                              k not in _FALSE_IS_STRICT and v is False))
        assert not weakened, f"an override weakens --strict for {override.get('module')}: {weakened}"
