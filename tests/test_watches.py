"""Watches (`ChargerSession.forbid`): the negative half of a check, kept without waiting for it.

A test that must show the charger does *not* send something ("no Installing after DownloadFailed")
sets a watch and ends; the message, if it comes later, fails the test it arrives in and is filed under
the watch's requirement. The window is still honoured when no charger test follows. Each case runs a
tiny suite against the reference charger (pytester), with a positive and a negative control.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = []

CONFTEST = """
from harness.report.collector import CERTIFICATION_RUN


def pytest_configure(config):
    config.stash[CERTIFICATION_RUN] = True
"""

HEADER = """
import asyncio
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


def heartbeat_soon(charger, delay):
    # The charger will send a Heartbeat `delay` s from now (TriggerMessage, answered by the reference charger).
    async def trigger():
        await asyncio.sleep(delay)
        await charger.call_raw("TriggerMessage", {"requestedMessage": "Heartbeat"})
    return asyncio.ensure_future(trigger())


def forbid_heartbeats(charger, window, **kwargs):
    charger.forbid("Heartbeat", since=charger.trace.next_seq, window=window, requirement="FW-1",
                   what="expected no Heartbeat (a test's forbidden message)", origin="test_sets_the_watch", **kwargs)
"""


def run(pytester: pytest.Pytester, body: str) -> tuple[pytest.RunResult, dict]:
    return run_with(pytester, body)


def run_with(pytester: pytest.Pytester, body: str, *args: str) -> tuple[pytest.RunResult, dict]:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_watch=HEADER + body)
    result = pytester.runpytest("--certs-dir", str(pytester.path / "certs"), "--report-dir", str(pytester.path / "r"),
                                "-p", "no:cacheprovider", *args)
    report = json.loads((pytester.path / "r" / "certification.json").read_text(encoding="utf-8"))
    return result, report


def verdicts(report: dict) -> dict[str, tuple[str, list[str]]]:
    """Each test's verdict and the requirements it is filed under."""
    out: dict[str, tuple[str, list[str]]] = {}
    for requirement in report["requirements"]:
        for test in requirement["tests"]:
            verdict, filed = out.get(test["name"], (test["verdict"], []))
            out[test["name"]] = (verdict, sorted({*filed, requirement["id"]}))
    return out


FOLLOWED = """
@pytest.mark.requirement("FW-1")
async def test_sets_the_watch(charger):
    forbid_heartbeats(charger, window=30)  # a long window: the next test must not wait for it


@pytest.mark.requirement("RT-1")
async def test_next(charger):
    answer = await charger.call_raw("TriggerMessage", {"requestedMessage": "Heartbeat"})
    assert answer["status"] == "Accepted"
    await charger.expect("Heartbeat", within=5)
"""


def test_a_forbidden_message_in_a_later_test_fails_it_under_the_watch_requirement(pytester: pytest.Pytester) -> None:
    result, report = run(pytester, FOLLOWED)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*the charger sent what a test had forbidden (1 finding(s)*",
        "*[[]FW-1 watch[]] expected no Heartbeat*(watched since test_sets_the_watch); it sent Heartbeat {}*",
    ])
    got = verdicts(report)
    assert got["test_sets_the_watch"][0] == "pass"
    assert got["test_next"] == ("fail", ["FW-1"]), got  # refiled: the finding is FW-1's, not RT-1's
    # The run did not sit out the 30 s window: a charger test followed, and the watch went on in it.
    assert report["run"]["duration"] < 20, report["run"]["duration"]


NOT_SEEN = FOLLOWED.replace('"requestedMessage": "Heartbeat"', '"requestedMessage": "StatusNotification"').replace(
    'await charger.expect("Heartbeat", within=5)', 'await charger.expect("StatusNotification", within=5)'
).replace("window=30", "window=0.2")


def test_a_watch_that_sees_nothing_fails_nothing(pytester: pytest.Pytester) -> None:
    result, report = run(pytester, NOT_SEEN)
    result.assert_outcomes(passed=2)
    assert {v for v, _ in verdicts(report).values()} == {"pass"}


LAST = """
@pytest.mark.requirement("FW-1")
async def test_sets_the_watch(charger):
    forbid_heartbeats(charger, window={window})
    heartbeat_soon(charger, 0.3)  # after the test body returns
"""


def test_the_last_test_still_watches_for_its_whole_window(pytester: pytest.Pytester) -> None:
    result, report = run(pytester, LAST.format(window=2.0))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*[[]FW-1 watch[]] expected no Heartbeat*"])
    assert verdicts(report)["test_sets_the_watch"] == ("fail", ["FW-1"])


def test_negative_control_a_message_after_the_window_is_not_a_finding(pytester: pytest.Pytester) -> None:
    # The same charger, a window that closes before the Heartbeat comes: the watch has nothing to say.
    result, report = run(pytester, LAST.format(window=0.05))
    result.assert_outcomes(passed=1)


ALREADY = """
@pytest.mark.requirement("FW-1")
async def test_sets_the_watch(charger):
    since = charger.trace.next_seq
    await charger.call_raw("TriggerMessage", {"requestedMessage": "Heartbeat"})
    await charger.expect("Heartbeat", within=5, since=since)
    charger.forbid("Heartbeat", since=since, window=0.1, requirement="FW-1", what="expected no Heartbeat")
"""


def test_a_forbidden_message_that_already_arrived_fails_the_test_setting_the_watch(pytester: pytest.Pytester) -> None:
    result, report = run(pytester, ALREADY)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the charger broke OCPP-J 1.6 during this test*", "*[[]FW-1 watch[]]*"])
    assert verdicts(report)["test_sets_the_watch"] == ("fail", ["FW-1"])


ENDED = FOLLOWED.replace("forbid_heartbeats(charger, window=30)",
                         'forbid_heartbeats(charger, window=30, until_sent=("TriggerMessage",))')
assert ENDED != FOLLOWED


def test_a_watch_ends_when_the_harness_asks_for_the_message_itself(pytester: pytest.Pytester) -> None:
    result, _ = run(pytester, ENDED)
    result.assert_outcomes(passed=2)


def test_watch_findings_are_never_lost_between_tests(tmp_path: Path) -> None:
    """Sans-I/O: a finding that arrives between two tests (after one's start mark) goes to the next test."""
    import datetime as dt

    from harness.session import ChargerSession, Violation

    session = ChargerSession("CP-1", None)
    session.violation("FW-1 watch", "between tests", seq=5, requirement="FW-1", watched=True)
    session.violation("schema", "in the test", seq=12)
    found = session.take_findings(10)
    assert [v.message for v in found] == ["between tests", "in the test"]
    assert [v.message for v in session.take_findings(10)] == ["in the test"]  # handed over once
    assert isinstance(found[0], Violation) and isinstance(found[0].wall, dt.datetime)


# The run's last reconnect: its Heartbeat check is seen out before the run ends only when no earlier reconnect was
# decided (harness/heartbeats.py must_see_out; docs/rules-offline.md).
RECONNECTS = """
from harness.reconnect import PENDING


async def drop(charger):
    await charger.connection.close(1001, "harness: the platform drops the connection")
    await charger.wait_disconnected(within=5)
    await charger.wait_connected(within=10)

{first}

@pytest.mark.requirement("RT-1")
async def test_last_reconnect(charger):
    await drop(charger)
    assert charger.reconnect_heartbeat.outcome == PENDING
"""

DECIDED_FIRST = """
@pytest.mark.requirement("RT-1")
async def test_first_reconnect(charger):
    await drop(charger)
    check = charger.reconnect_heartbeat
    await charger.wait_until(lambda: check.outcome != PENDING, 10, "the first reconnect's check")
"""


def test_the_last_reconnect_is_seen_out_when_it_is_the_runs_only_one(pytester: pytest.Pytester) -> None:
    # The charger never sends a Heartbeat after reconnecting: the run waits for the check and files the silence.
    result, report = run_with(pytester, RECONNECTS.format(first=""), "--sim-defect", "no-heartbeat-after-reconnect")
    result.assert_outcomes(failed=1)
    assert verdicts(report)["test_last_reconnect"] == ("fail", ["CORE-1"])


def test_negative_control_not_waited_for_when_an_earlier_reconnect_decided(pytester: pytest.Pytester) -> None:
    # The same charger: the first reconnect decided (silent, filed there), the last one is not waited for.
    result, report = run_with(pytester, RECONNECTS.format(first=DECIDED_FIRST), "--sim-defect",
                              "no-heartbeat-after-reconnect")
    outcomes = verdicts(report)
    assert outcomes["test_first_reconnect"] == ("fail", ["CORE-1"]), outcomes
    assert outcomes["test_last_reconnect"] == ("pass", ["RT-1"]), outcomes
