"""Long waits are not silent (docs/rules-first-hour.md): a status line names the requirement, what the harness
waits for and the time left; in a log (not a terminal) it is a sparse plain line; -q turns it off."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import progress
from harness.progress import status_text

SUITE = '''
import pytest

from harness.errors import ExpectationTimeout

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.requirement("CFG-2")
async def test_waits_for_a_sample(charger):
    with pytest.raises(ExpectationTimeout):
        await charger.expect("DataTransfer", within=4, describe="MeterValues sample 2/3")
'''


def test_the_status_text() -> None:
    assert status_text(["CFG-2"], "MeterValues sample 2/3", 40.2) == "CFG-2 · waiting for MeterValues sample 2/3 · 41 s left"
    assert status_text(["SC-1", "SC-2"], "the answer to SetChargingProfile", 0.0) == (
        "SC-1/SC-2 · waiting for the answer to SetChargingProfile · 0 s left"
    )
    assert status_text([], "a BootNotification", -3, test="test_x").startswith("test_x · waiting for a BootNotification · 0 s")
    assert status_text([], "x", 1) == "set-up · waiting for x · 1 s left"
    assert len(status_text(["MV-1"], "y" * 500, 1)) < 140  # a long condition is cut


@pytest.fixture
def quick_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "LONG_WAIT", 0.5)
    monkeypatch.setattr(progress, "LOG_EVERY", 1.0)
    monkeypatch.setattr(progress, "TICK", 0.25)
    monkeypatch.delenv("CI", raising=False)


def _status_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "waiting for MeterValues sample 2/3" in line]


def test_a_log_gets_sparse_lines(pytester: pytest.Pytester, certs_dir: Path, quick_logs: None) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--certs-dir", str(certs_dir), "--report-dir", "out")
    result.assert_outcomes(passed=1)
    lines = _status_lines(result)
    # over a 4 s wait: the first line after 0.5 s, then at most one a second
    assert 2 <= len(lines) <= 5, result.stdout.str()
    assert all(re.fullmatch(r"\[harness \d\d:\d\d:\d\d\] CFG-2 · waiting for MeterValues sample 2/3 · \d s left", ln)
               for ln in lines), lines
    lefts = [int(re.search(r"(\d) s left", ln).group(1)) for ln in lines]  # type: ignore[union-attr]
    assert lefts == sorted(lefts, reverse=True) and lefts[0] <= 4
    assert "\r" not in result.stdout.str()  # not a terminal: nothing rewritten in place


def test_quiet_turns_it_off(pytester: pytest.Pytester, certs_dir: Path, quick_logs: None) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--certs-dir", str(certs_dir), "--report-dir", "out", "-q")
    result.assert_outcomes(passed=1)
    assert not _status_lines(result), result.stdout.str()


def test_short_waits_print_nothing_in_a_log(pytester: pytest.Pytester, certs_dir: Path) -> None:
    pytester.makepyfile(test_suite=SUITE)  # 4 s: below LONG_WAIT (5 s)
    result = pytester.runpytest("-p", "no:cacheprovider", "--certs-dir", str(certs_dir), "--report-dir", "out")
    result.assert_outcomes(passed=1)
    assert not _status_lines(result)
