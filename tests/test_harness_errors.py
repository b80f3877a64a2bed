"""Harness errors are the harness's (docs/rules-silence.md §2), through the real plugin and the reference charger.

A fault is injected into the harness's own frame handling (the platform's answer function; the session's
bookkeeping of a received CALL) during one test of a small suite run by pytester. That test becomes an
"error" (harness error, verdict incomplete), the charger is never blamed (no requirement fails), the
connection stays open (no 1011), the run goes on to its next test, and the report is written with the
fault and its traceback in `run.harness_errors`; the exit status is the verdict's: 6 (incomplete).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.report import verify

SUITE = '''
import decimal

import pytest
from ocpp.v16 import call

from harness import platform as platform_mod
from harness import session as session_mod

pytestmark = pytest.mark.asyncio(loop_scope="session")
REAL_ANSWER = platform_mod.default_answer
REAL_TRACK = session_mod.ChargerSession._track


@pytest.mark.requirement("CORE-1")
async def test_before(charger):
    await charger.expect("Heartbeat", since=charger.mark())


@pytest.mark.requirement("RT-2")
async def test_platform_answer_breaks(charger, monkeypatch):
    def broken(session, received):
        if received.action == "Heartbeat":
            raise ArithmeticError("injected: the platform's answer function broke")
        return REAL_ANSWER(session, received)

    monkeypatch.setattr(platform_mod, "default_answer", broken)  # the platform's answers: harness/platform.py
    connections = charger.connections
    await charger.expect("Heartbeat", since=charger.mark())
    await charger.expect("Heartbeat", since=charger.mark())  # it goes on: it got an answer (a CALLERROR)
    assert charger.connected and charger.connections == connections


@pytest.mark.requirement("ST-1")
async def test_frame_handling_breaks(charger, monkeypatch):
    def broken(self, received):
        if received.action == "Heartbeat":
            raise decimal.InvalidOperation("injected: the session's bookkeeping broke")
        return REAL_TRACK(self, received)

    monkeypatch.setattr(session_mod.ChargerSession, "_track", broken)
    connections = charger.connections
    await charger.expect("Heartbeat", since=charger.mark())
    await charger.expect("Heartbeat", since=charger.mark())
    assert charger.connected and charger.connections == connections


@pytest.mark.requirement("CORE-1")
async def test_after(charger):
    answer = await charger.call(call.GetConfiguration(key=["HeartbeatInterval"]))
    assert answer.configuration_key
'''


def test_a_fault_in_the_harness_frame_handling_is_a_harness_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    reports = pytester.path / "reports"
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--certs-dir", str(pytester.path / "certs"), "--report-dir", str(reports), "-rA",
    )
    out = result.stdout.str()
    # The two tests with a fault are errors (not failures), the run went on (test_after passed), exit 6.
    result.assert_outcomes(passed=2, errors=2)
    assert result.ret == 3, out  # harness error: incomplete because of the harness itself
    result.stdout.fnmatch_lines(["ERROR test_suite.py::test_platform_answer_breaks*harness*",
                                 "ERROR test_suite.py::test_frame_handling_breaks*harness*"])
    report = json.loads((reports / "certification.json").read_text(encoding="utf-8"))
    assert verify(reports / "certification.json") and verify(reports / "certification.html")
    assert report["overall"] == "incomplete" and "harness error" in report["overall_reason"], report["overall_reason"]
    assert report["run"]["exit_status"] == 3
    verdicts = {r["id"]: r["verdict"] for r in report["requirements"] if r["tests"]}
    assert verdicts == {"CORE-1": "pass", "RT-2": "incomplete", "ST-1": "incomplete"}, verdicts  # never "fail"
    tests = {t["name"]: t for r in report["requirements"] for t in r["tests"]}
    for name, injected in (("test_platform_answer_breaks", "ArithmeticError"),
                           ("test_frame_handling_breaks", "InvalidOperation")):
        assert tests[name]["outcome"] == "error" and tests[name]["verdict"] == "incomplete", tests[name]
        assert tests[name]["message"].startswith("harness error"), tests[name]["message"]
        assert injected in tests[name]["message"]
    faults = report["run"]["harness_errors"]
    by_test = {f["nodeid"].split("::")[-1] for f in faults}
    assert by_test == {"test_platform_answer_breaks", "test_frame_handling_breaks"}, faults
    assert all("Traceback" in f["traceback"] and "injected" in f["traceback"] for f in faults), faults
    html = (reports / "certification.html").read_text(encoding="utf-8")
    assert "exception(s) in the harness&#39;s own frame handling" in html or "harness's own frame handling" in html
    # One connection for the whole run: never closed (no 1011) because of the harness's own exception.
    # (The charger goes away with 1001 when the run ends: after the last test.)
    in_tests = [f["text"] for t in tests.values() for f in t["frames"] if f["direction"] == "event"]
    assert not [e for e in in_tests if e.startswith("disconnected")], in_tests
    everywhere = in_tests + [f["text"] for s in report["run_frames"] for f in s["frames"] if f["direction"] == "event"]
    assert sum(e.startswith("connected") for e in everywhere) == 1, everywhere
    assert len(report["connection_attempts"]) == 1


def test_an_exception_in_receive_never_escapes(tmp_path: Path) -> None:
    """ChargerSession.receive never raises: a fault is recorded, a CALL it interrupted gets CALLERROR InternalError."""
    import asyncio

    from harness import session as session_mod
    from harness.trace import TX

    async def scenario() -> None:
        session = session_mod.ChargerSession("CP-1", None)

        def broken(received: object) -> None:
            raise KeyError("injected")

        session._track = broken  # type: ignore[method-assign]
        session.receive('[2,"abc","Heartbeat",{}]')
        assert [f.error for f in session.harness_faults] == ["KeyError: 'injected'"]
        sent = [e.text for e in session.trace.since(1) if e.direction == TX]
        assert sent == ['[4,"abc","InternalError","the platform could not handle this CALL",{}]'], sent
        assert not session.violations

    asyncio.run(scenario())
