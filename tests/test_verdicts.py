"""Verdicts and exit statuses as a user meets them (docs/rules-verdicts.md), through the real plugin.

Each test runs pytest inside pytest (pytester) against the built-in reference charger, with a small
suite of its own, and checks the exit status, the terminal, the report and the JUnit file:
- a conformant run with an advisory finding exits 0 and lists the finding (terminal, report, JUnit),
  and a failed check in an advisory-only test is that finding, never a failure;
- a failed mandatory requirement exits 1; an incomplete run exits 6;
- a rig act answered 501 is "not tested" naming the act; a rig answering 500, refusing the connection
  or not answering in time is an "error" naming the act and the answer (real HTTP servers); the run
  is incomplete, never "not certified";
- every frame of the trace is in some test's evidence or in a run-level section, exactly once.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.report import verify

EXIT_INCOMPLETE = 6

SUITE = '''
import pytest
from ocpp.v16 import call

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.requirement("CORE-1")
async def test_heartbeat(charger):
    answer = await charger.call(call.GetConfiguration(key=["HeartbeatInterval"]))
    assert answer.configuration_key


@pytest.mark.requirement("CORE-1")
async def test_mandatory_with_an_advisory_finding(charger):
    await charger.call(call.GetConfiguration(key=["HeartbeatInterval"]))
    charger.advise("ADV-3", "GetCompositeSchedule answered Rejected (the platform can live without it)")


@pytest.mark.requirement("ADV-1")
async def test_advisory_check_that_fails(charger):
    answer = await charger.call(call.GetConfiguration(key=["HeartbeatInterval"]))
    assert answer.configuration_key == "never", "the charger's clock is not the one this advisory check wanted"


@pytest.mark.requirement("ADV-1")
async def test_advisory_with_a_harness_bug(charger):
    if "{harness_bug}" == "yes":
        {{}}["no such key"]


@pytest.mark.requirement("RT-2")
async def test_mandatory_failure(charger):
    if "{fail}" == "yes":
        assert False, "expected StatusNotification, actual nothing (a made-up failure)"
'''


def _run(pytester: pytest.Pytester, *args: str, fail: bool = False, harness_bug: bool = False,
         source: str | None = None, conftest: str | None = None) -> tuple[Any, dict[str, Any], Path]:
    if conftest:
        pytester.makeconftest(conftest)
    pytester.makepyfile(test_suite=source or SUITE.format(fail="yes" if fail else "no",
                                                         harness_bug="yes" if harness_bug else "no"))
    reports = pytester.path / "reports"
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--certs-dir", str(pytester.path / "certs"), "--report-dir", str(reports),
        "--junitxml", str(reports / "junit.xml"), "-rA", *args,
    )
    report = json.loads((reports / "certification.json").read_text(encoding="utf-8"))
    assert verify(reports / "certification.json") and verify(reports / "certification.html")
    return result, report, reports


def _junit_cases(reports: Path) -> dict[str, ET.Element]:
    root = ET.parse(reports / "junit.xml").getroot()
    # A certification testcase's name starts with its requirement IDs ("AUTH-1: test_x"): keyed by the test's name.
    return {case.get("name", "").rpartition(": ")[2]: case for case in root.iter("testcase")}


def _all_frames_accounted(report: dict[str, Any]) -> None:
    """Every trace seq 1..trace_frames is in exactly one test's evidence or run-level section."""
    seen: list[int] = []
    tests: dict[str, dict[str, Any]] = {}
    for requirement in report["requirements"]:
        for test in requirement["tests"]:
            tests[test["nodeid"]] = test
    for test in report["advisory"]:
        tests[test["nodeid"]] = test
    for test in tests.values():
        assert not test["frames_omitted"]
        seen += [f["seq"] for f in test["frames"]]
    for section in report["run_frames"]:
        seen += [f["seq"] for f in section["frames"]]
    total = report["run"]["trace_frames"]
    assert total > 0
    duplicates = sorted({s for s in seen if seen.count(s) > 1})
    missing = sorted(set(range(1, total + 1)) - set(seen))
    assert not duplicates and not missing, f"duplicates {duplicates[:20]}, missing {missing[:20]} of {total}"


def test_conformant_run_with_advisory_findings_exits_0_and_lists_them(pytester: pytest.Pytester) -> None:
    result, report, reports = _run(pytester)
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=5)
    assert report["overall"] == "rehearsal passed", report["overall_reason"]  # quick mode, selected requirements
    assert report["run"]["exit_status"] == 0
    # The terminal: the harness's own section and pytest's warnings summary.
    result.stdout.fnmatch_lines([
        "*advisory findings (do not affect the verdict)*",
        "ADV-1 · test_advisory_check_that_fails: the charger's clock is not the one*",
        "ADV-3 · test_mandatory_with_an_advisory_finding: GetCompositeSchedule answered Rejected*",
    ])
    result.stdout.fnmatch_lines(["*AdvisoryFinding: advisory finding (does not affect the verdict): ADV-3*"])
    assert "FAILED" not in result.stdout.str()
    # The report: listed with the advisory requirements, each with its test; the tests pass.
    adv = {a["id"]: a for a in report["advisory_requirements"]}
    assert [f["name"] for f in adv["ADV-3"]["findings"]] == ["test_mandatory_with_an_advisory_finding"]
    assert [f["name"] for f in adv["ADV-1"]["findings"]] == ["test_advisory_check_that_fails"]
    assert report["summary"]["advisory_findings"] == 2
    core = next(r for r in report["requirements"] if r["id"] == "CORE-1")
    assert core["verdict"] == "pass"
    flagged = next(t for t in core["tests"] if t["name"] == "test_mandatory_with_an_advisory_finding")
    assert flagged["findings"][0]["requirement"] == "ADV-3" and flagged["findings"][0]["seq"]
    advisory_test = next(t for t in report["advisory"] if t["name"] == "test_advisory_check_that_fails")
    assert advisory_test["verdict"] == "pass" and advisory_test["frames_total"] > 0  # its evidence is kept
    html = (reports / "certification.html").read_text(encoding="utf-8")
    assert "GetCompositeSchedule answered Rejected" in html and "o-rehearsal-passed" in html
    # JUnit: properties on passing testcases, no <failure>.
    cases = _junit_cases(reports)
    for name in ("test_mandatory_with_an_advisory_finding", "test_advisory_check_that_fails"):
        case = cases[name]
        assert case.find("failure") is None and case.find("error") is None and case.find("skipped") is None
        props = {(p.get("name"), p.get("value", "")[:6]) for p in case.iter("property")}
        assert ("advisory", "ADV-3:" if "mandatory" in name else "ADV-1:") in props, props
    # §6: no frame lost between tests.
    _all_frames_accounted(report)


def test_a_failed_mandatory_requirement_exits_1(pytester: pytest.Pytester) -> None:
    result, report, _ = _run(pytester, fail=True)
    assert result.ret == 1, result.stdout.str()
    result.assert_outcomes(passed=4, failed=1)
    assert report["overall"] == "not certified" and "RT-2" in report["overall_reason"]
    result.stdout.fnmatch_lines(["overall: NOT CERTIFIED*", "exit status: 1 (not certified*"])


def test_a_harness_error_in_an_advisory_test_stays_a_harness_error(pytester: pytest.Pytester) -> None:
    """Not turned into an advisory finding: an error (pytest's ERROR, the report's "error"), not a pass. ADV-1
    never decides the verdict, so the verdict, and with it the exit status, stands."""
    result, report, _ = _run(pytester, harness_bug=True)
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["ERROR test_suite.py::test_advisory_with_a_harness_bug*KeyError*"])
    test = next(t for t in report["advisory"] if t["name"] == "test_advisory_with_a_harness_bug")
    assert test["verdict"] == "incomplete" and test["outcome"] == "error"
    assert test["message"].startswith("harness error (the charger was not judged): KeyError")
    assert not test.get("findings")
    assert report["overall"] == "rehearsal passed" and result.ret == 0, result.stdout.str()


def test_a_partial_run_in_certification_mode_is_incomplete(pytester: pytest.Pytester) -> None:
    """A certification-mode run of part of the suites cannot certify: incomplete (6), naming what was not selected."""
    result, report, _ = _run(pytester, "--mode", "certification", "-k", "heartbeat")
    assert result.ret == EXIT_INCOMPLETE, result.stdout.str()
    assert report["overall"] == "incomplete" and report["overall_reason"].startswith("partial run:")
    tls1 = next(r for r in report["requirements"] if r["id"] == "TLS-1")
    assert tls1["verdict"] == "not tested" and tls1["reason"].startswith("not selected in this run")


RIG_CONFTEST = '''
import asyncio
import contextlib

import pytest_asyncio

from harness.drivers.http import HttpBackend
from harness.drivers.sim import SimBackend


async def _answer(status, reader, writer):
    await reader.readuntil(b"\\r\\n\\r\\n")
    body = b"this rig has no such act" if status == 501 else b"relay board on fire"
    writer.write(f"HTTP/1.1 {status} X\\r\\nContent-Length: {len(body)}\\r\\nConnection: close\\r\\n\\r\\n".encode() + body)
    await writer.drain()
    writer.close()


class BrokenRig(SimBackend):
    """The reference charger, with some acts sent to real HTTP rigs that fail in each way."""

    def __init__(self, urls):
        super().__init__()
        self.urls = urls

    async def ev_suspend(self, suspended, connector=1):
        await HttpBackend(self.urls[501], timeout=2).ev_suspend(suspended, connector)

    async def plugin(self, connector=1):
        await HttpBackend(self.urls[500], timeout=2).plugin(connector)

    async def fault(self, faulted, connector=1):
        await HttpBackend(self.urls["refused"], timeout=2).fault(faulted, connector)

    async def network(self, online):
        await HttpBackend(self.urls["silent"], timeout=0.5).network(online)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def charger_backend(csms, harness_settings):
    from harness.drivers.base import EndpointInfo

    hold = asyncio.Event()

    async def silent(reader, writer):
        with contextlib.suppress(Exception):
            await hold.wait()
        writer.close()

    servers = {
        501: await asyncio.start_server(lambda r, w: _answer(501, r, w), "127.0.0.1", 0),
        500: await asyncio.start_server(lambda r, w: _answer(500, r, w), "127.0.0.1", 0),
        "silent": await asyncio.start_server(silent, "127.0.0.1", 0),
        "refused": await asyncio.start_server(silent, "127.0.0.1", 0),
    }
    urls = {k: f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}" for k, s in servers.items()}
    servers["refused"].close()  # nothing listens there any more: connection refused
    await servers["refused"].wait_closed()
    backend = BrokenRig(urls)
    backend.attach(csms.session(harness_settings.charger_id))
    await backend.start(EndpointInfo(url=csms.url, charger_id=harness_settings.charger_id,
                                     authorization_key=harness_settings.authorization_key,
                                     ca_file=str(csms.certs.ca_pem), security_profile=2))
    try:
        yield backend
    finally:
        hold.set()
        await backend.stop()
        for key, server in servers.items():
            if key != "refused":
                server.close()
'''

RIG_SUITE = '''
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.requirement("CORE-1")
async def test_ok(charger):
    pass


@pytest.mark.requirement("ST-4")
async def test_needs_ev(charger):
    await charger.rig.ev_suspend(True)


@pytest.mark.requirement("ST-2")
async def test_needs_plugin(charger):
    await charger.rig.plugin(1)


@pytest.mark.requirement("ST-3")
async def test_needs_fault(charger):
    await charger.rig.fault(True)


@pytest.mark.requirement("NF-2")
async def test_needs_network(charger):
    await charger.rig.network(False)
'''


def test_a_failing_rig_is_not_a_failing_charger(pytester: pytest.Pytester) -> None:
    """Real HTTP rigs: 501 → not tested naming the act; 500, refused, no answer → error naming the act and the
    answer; nothing fails; the run is incomplete (exit 6), never "not certified"."""
    result, report, reports = _run(pytester, source=RIG_SUITE, conftest=RIG_CONFTEST)
    assert result.ret == EXIT_INCOMPLETE, result.stdout.str()
    result.assert_outcomes(passed=1, skipped=1, errors=3)
    assert "FAILED" not in result.stdout.str()
    tests = {t["name"]: t for r in report["requirements"] for t in r["tests"]}
    ev = tests["test_needs_ev"]
    assert ev["verdict"] == "not tested"
    assert ev["message"].startswith("not tested: the rig cannot perform the act 'ev' (EV on connector 1 pauses): HTTP 501")
    assert "not tested: not tested" not in ev["message"]
    expected = {
        "test_needs_plugin": ("'plugin'", "HTTP 500: relay board on fire"),
        "test_needs_fault": ("'state'", "connection refused"),
        "test_needs_network": ("'network'", "no answer within 0.5 s"),
    }
    for name, (act, answer) in expected.items():
        test = tests[name]
        assert test["verdict"] == "incomplete" and test["outcome"] == "error", test
        assert test["message"].startswith(f"rig error in the act {act} (the charger was not judged)"), test["message"]
        assert answer in test["message"], test["message"]
    cases = _junit_cases(reports)  # JUnit: errors, not failures; the 501 act skipped
    for name in expected:
        assert cases[name].find("failure") is None and cases[name].find("error") is not None, name
    assert cases["test_needs_ev"].find("skipped") is not None
    suite = next(ET.parse(reports / "junit.xml").getroot().iter("testsuite"))
    assert (suite.get("errors"), suite.get("failures"), suite.get("skipped")) == ("3", "0", "1")
    verdicts = {r["id"]: r["verdict"] for r in report["requirements"]}
    assert "fail" not in verdicts.values(), verdicts
    assert verdicts["ST-4"] == "not tested" and verdicts["ST-2"] == "incomplete" and verdicts["NF-2"] == "incomplete"
    assert report["overall"] == "incomplete"
    assert "ST-2" in report["overall_reason"] and "rig error" in report["overall_reason"]
    _all_frames_accounted(report)
