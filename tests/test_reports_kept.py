"""Reports are never lost (docs/rules-first-hour.md): collection alone writes nothing, the harness's own tests
never write into the user's reports/, and every run's report is also kept under <report dir>/history/, the last
--report-history runs (20 by default)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SUITE = '''
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.requirement("CORE-1")
async def test_boots(charger):
    assert charger.boot is not None
'''


def _run(pytester: pytest.Pytester, reports: Path, certs_dir: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", "--certs-dir", str(certs_dir), "--report-dir", str(reports), *args)


def _history(reports: Path) -> list[Path]:
    history = reports / "history"
    return sorted(history.iterdir()) if history.is_dir() else []


def test_collection_alone_writes_nothing_and_leaves_the_earlier_report(pytester: pytest.Pytester, certs_dir: Path) -> None:
    pytester.makepyfile(test_suite=SUITE)
    reports = pytester.path / "out"
    _run(pytester, reports, certs_dir)
    before = (reports / "certification.json").read_bytes()
    result = _run(pytester, reports, certs_dir, "--collect-only", "-q")
    assert result.ret == 0
    assert (reports / "certification.json").read_bytes() == before
    assert len(_history(reports)) == 1


def test_every_run_is_kept_in_history_and_the_latest_at_the_documented_path(
    pytester: pytest.Pytester, certs_dir: Path
) -> None:
    pytester.makepyfile(test_suite=SUITE)
    reports = pytester.path / "out"
    digests = []
    for _ in range(3):
        _run(pytester, reports, certs_dir, "--report-history", "2")
        digests.append(json.loads((reports / "certification.json").read_text())["digest"]["value"])
    assert len(set(digests)) == 3
    kept = _history(reports)
    assert len(kept) == 2, kept  # bounded: the oldest went
    for entry in kept:
        assert "Z-EVENERGY-SIM-1" in entry.name and entry.name[8] == "T", entry.name
        assert sorted(p.name for p in entry.iterdir()) == ["certification.html", "certification.json"]
    kept_digests = [json.loads((e / "certification.json").read_text())["digest"]["value"] for e in kept]
    assert kept_digests == digests[1:]  # the two latest runs, oldest first; the latest also at the top


def test_report_history_0_keeps_no_history(pytester: pytest.Pytester, certs_dir: Path) -> None:
    pytester.makepyfile(test_suite=SUITE)
    reports = pytester.path / "out"
    _run(pytester, reports, certs_dir, "--report-history", "0")
    assert (reports / "certification.json").exists() and not _history(reports)


def test_the_harness_tests_write_reports_into_a_temporary_folder(
    pytester: pytest.Pytester, certs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tests/conftest.py sets $HARNESS_REPORT_DIR outside the project; a run without --report-dir writes there."""
    assert not Path(os.environ["HARNESS_REPORT_DIR"]).resolve().is_relative_to(ROOT)
    elsewhere = pytester.path / "elsewhere"
    monkeypatch.setenv("HARNESS_REPORT_DIR", str(elsewhere))
    pytester.makepyfile(test_suite=SUITE)
    pytester.runpytest("-p", "no:cacheprovider", "--certs-dir", str(certs_dir))
    assert (elsewhere / "certification.json").exists()
    assert not (pytester.path / "reports").exists()
