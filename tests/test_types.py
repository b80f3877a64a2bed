"""The harness's type hints are checked, as part of the harness's own tests (so CI checks them).

pyproject.toml's `[tool.mypy]` checks every module; its `[[tool.mypy.overrides]]` holds the modules that are clean
under `mypy --strict` and turns --strict's flags on for them. The tests below keep that list honest: the override
turns on exactly what the installed mypy's --strict does, and `mypy --strict` itself finds nothing in those modules.
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

#: --strict's flags that mypy takes only in the global section (not in an override).
GLOBAL_ONLY = {"warn_redundant_casts"}


def _mypy(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mypy", reason="mypy is in the test extras (pip install -e '.[test]')")
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _config() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        mypy: dict[str, Any] = tomllib.load(f)["tool"]["mypy"]
    return mypy


def _strict_override() -> dict[str, Any]:
    """The one override that makes modules strict (the one that sets disallow_untyped_defs)."""
    found = [o for o in _config().get("overrides", []) if o.get("disallow_untyped_defs")]
    assert len(found) == 1, f"expected one [[tool.mypy.overrides]] with the strict flags, found {len(found)}"
    return found[0]


def _strict_files(patterns: list[str]) -> list[str]:
    """The source files of the override's modules ("harness.sim.*": the package and every module under it)."""
    files: list[Path] = []
    for pattern in patterns:
        package = pattern.endswith(".*")
        base = ROOT.joinpath(*pattern.removesuffix(".*").split("."))
        if package:
            assert base.is_dir(), f"{pattern}: no package {base}"
            files.extend(sorted(base.rglob("*.py")))
        elif base.is_dir():
            files.append(base / "__init__.py")
        else:
            assert base.with_suffix(".py").is_file(), f"{pattern}: no module {base}.py"
            files.append(base.with_suffix(".py"))
    return [str(f.relative_to(ROOT)) for f in files]


def test_mypy_finds_no_type_errors_in_the_harness(tmp_path: Path) -> None:
    done = _mypy("--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path))
    assert done.returncode == 0, f"mypy found type errors:\n{done.stdout[-6000:]}{done.stderr[-2000:]}"


def test_the_strict_override_turns_on_what_strict_does() -> None:
    # `mypy --help` lists what --strict enables ("--strict  Strict mode; enables the following flags: --a, --b").
    done = _mypy("--help", timeout=120)
    text = re.search(r"--strict\s+Strict mode; enables the following flags:(.*?)\n  --", done.stdout, re.S)
    assert text is not None, "mypy --help no longer lists --strict's flags: update this test"
    listed = re.sub(r"-\n\s*", "-", text.group(1))  # argparse wraps long flag names at a hyphen
    flags = re.findall(r"--([a-z][a-z-]*)", listed)
    wanted = {}
    for flag in flags:
        negated = flag.startswith("no-")
        wanted[(flag[3:] if negated else flag).replace("-", "_")] = not negated
    assert len(wanted) >= 10, f"could not read --strict's flags from mypy --help: {flags}"
    override, config = _strict_override(), _config()
    for key, value in wanted.items():
        where = config if key in GLOBAL_ONLY else override
        assert where.get(key) == value, (
            f"--strict sets {key} = {str(value).lower()}, the strict override in pyproject.toml does not"
            + (" (mypy takes it only in the global [tool.mypy] section)" if key in GLOBAL_ONLY else "")
        )


def test_mypy_strict_finds_nothing_in_the_strict_modules(tmp_path: Path) -> None:
    files = _strict_files(list(_strict_override()["module"]))
    # Imports of the not-yet-strict modules are followed silently: their types count, their own errors do not.
    done = _mypy("--strict", "--follow-imports=silent", "--config-file", str(ROOT / "pyproject.toml"),
                 "--cache-dir", str(tmp_path), *files)
    assert done.returncode == 0, f"mypy --strict found errors in the strict modules:\n{done.stdout[-6000:]}{done.stderr[-2000:]}"
