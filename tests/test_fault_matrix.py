"""The fault matrix: misbehaving chargers must not make the harness hang, lose its report or its memory.

Each scripted charger (tests/misbehaving.py) is a real WSS client on 127.0.0.1 with Basic auth.
For each fault, at two levels:

- the endpoint and the ChargerSession API: the waiting call raises NoAnswer, ChargerDisconnected,
  CallErrorReceived or ExpectationTimeout within its bound, with a message that says what
  happened; the violation is recorded; a good charger is served afterwards (or meanwhile);
  buffers stay bounded;
- a pytester run of a tiny two-test suite whose `charger_backend` is the misbehaving charger: the
  affected test fails within its bound with that message, the next test passes (or, when the
  charger never gets a session, both error at once as "never connected"), the run ends within
  its bound, and certification.json is written with the right verdicts.
"""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from harness import session as session_mod, trace as trace_mod
from harness.endpoint import SILENT, TLS_FAILED, Endpoint, EndpointConfig
from harness.errors import CallErrorReceived, ChargerDisconnected, ExpectationTimeout, NoAnswer, NotConnected
from harness.session import ChargerSession, SessionSettings
from tests.helpers import CHARGER_ID, KEY
from tests.misbehaving import FLOOD, HUGE, TRIGGER, ScriptedCharger, Target, stall_tls, tls_without_upgrade

CALL_TIMEOUT = 1.0  # s, the endpoint's call timeout in these tests
HANDSHAKE_TIMEOUT = 1.0  # s, TLS + HTTP upgrade
SLACK = 0.75  # s a failure may come after its bound on a loaded 2-core machine
GOOD_ID = "CP-GOOD-1"
GOOD_KEY = "fedcba9876543210fedcba9876543210fedcba98"


@pytest_asyncio.fixture(loop_scope="session")
async def ep(certs_dir: Path) -> AsyncIterator[Endpoint]:
    endpoint = Endpoint(
        EndpointConfig(
            certs_dir=certs_dir, handshake_timeout=HANDSHAKE_TIMEOUT, session=SessionSettings(call_timeout=CALL_TIMEOUT)
        )
    )
    await endpoint.start()
    endpoint.register(CHARGER_ID, KEY)
    endpoint.register(GOOD_ID, GOOD_KEY)
    try:
        yield endpoint
    finally:
        await endpoint.stop()


def target(endpoint: Endpoint, charger_id: str = CHARGER_ID, key: str = KEY) -> Target:
    return Target(endpoint.url, charger_id, key, str(endpoint.certs.ca_pem))


@asynccontextmanager
async def scripted(endpoint: Endpoint, behaviour: str, **kwargs: object) -> AsyncIterator[tuple[ScriptedCharger, ChargerSession]]:
    """A booted scripted charger and its session, with the session's mark set after the boot."""
    charger = ScriptedCharger(target(endpoint), behaviour, **kwargs)  # type: ignore[arg-type]
    await charger.start()
    try:
        await charger.wait_booted(5)
        session = endpoint.session(CHARGER_ID)
        session.mark()
        yield charger, session
    finally:
        await charger.stop()


async def assert_serves_a_good_charger(endpoint: Endpoint) -> None:
    """The endpoint still serves: another charger connects, boots and answers a CALL."""
    async with ScriptedCharger(target(endpoint, GOOD_ID, GOOD_KEY), "good") as good:
        await good.wait_booted(5)
        session = endpoint.session(GOOD_ID)
        assert (await session.call_raw(TRIGGER, {"vendorId": "ev.energy"}))["status"] == "Accepted"


def kinds(session: ChargerSession, since: int) -> list[str]:
    return [v.kind for v in session.violations_since(since)]


@asynccontextmanager
async def timed(bound: float, what: str) -> AsyncIterator[None]:
    started = time.monotonic()
    yield
    took = time.monotonic() - started
    assert took <= bound + SLACK, f"{what} took {took:.2f} s, its bound is {bound:g} s"


on_session_loop = pytest.mark.asyncio(loop_scope="session")


# --- endpoint level: CALLs the charger mishandles ----------------------------------------------


@on_session_loop
async def test_a_charger_that_never_answers(ep: Endpoint) -> None:
    async with scripted(ep, "silent") as (_charger, session):
        async with timed(CALL_TIMEOUT, "NoAnswer"):
            with pytest.raises(NoAnswer) as failure:
                await session.call_raw(TRIGGER, {"vendorId": "ev.energy"})
        text = str(failure.value)
        assert f"did not answer {TRIGGER}" in text and f"within {CALL_TIMEOUT:g} s" in text, text
        assert f'"{TRIGGER}"' in text, "the failure shows the request it sent"
        assert session.connected, "a silent charger is not disconnected by the harness"
        await assert_serves_a_good_charger(ep)


@on_session_loop
async def test_a_late_answer_is_a_violation_of_the_test_that_asked(ep: Endpoint) -> None:
    """The late answer arrives while the next 'test' runs: it is held against the one whose CALL timed out."""
    async with scripted(ep, "late") as (_charger, session):
        first = session.mark()
        async with timed(CALL_TIMEOUT, "NoAnswer"):
            with pytest.raises(NoAnswer, match=f"did not answer {TRIGGER}"):
                await session.call_raw(TRIGGER, {"vendorId": "ev.energy"})
        second = session.mark()  # the next test starts; its CALL releases the stale answer first
        answer = await session.call_raw("GetConfiguration", {})
        assert answer["configurationKey"]
        late = [v for v in session.violations_since(first) if v.kind == "late answer"]
        assert late and "arrived after its timeout" in late[0].message, kinds(session, first)
        assert session.violations_since(second) == [], "the next test must not be blamed for the late answer"
        stale = [e for e in session.trace.since(second) if e.direction == trace_mod.RX and '"Accepted"' in e.text]
        assert stale, "the stale answer arrived during the next test (it is in that test's frames)"


@on_session_loop
async def test_an_answer_with_the_wrong_id(ep: Endpoint) -> None:
    async with scripted(ep, "wrong-id") as (_charger, session):
        start = session.mark()
        async with timed(CALL_TIMEOUT, "NoAnswer"):
            with pytest.raises(NoAnswer, match=f"did not answer {TRIGGER}"):
                await session.call_raw(TRIGGER, {"vendorId": "ev.energy"})
        wrong = [v for v in session.violations_since(start) if v.kind == "CALLRESULT for unknown id"]
        assert wrong and "matches no outstanding CALL" in wrong[0].message, kinds(session, start)
        await assert_serves_a_good_charger(ep)


@on_session_loop
async def test_a_callerror_instead_of_a_result(ep: Endpoint) -> None:
    async with scripted(ep, "callerror") as (_charger, session):
        async with timed(0.5, "CallErrorReceived"):
            with pytest.raises(CallErrorReceived) as failure:
                await session.call_raw(TRIGGER, {"vendorId": "ev.energy"})
        assert (failure.value.action, failure.value.code) == (TRIGGER, "InternalError")
        assert str(failure.value) == f"the charger answered {TRIGGER} with CALLERROR InternalError: scripted failure"
        assert await session.call_raw("GetConfiguration", {}), "the connection is still usable"


@on_session_loop
async def test_a_charger_that_disconnects_in_the_middle_of_a_call(ep: Endpoint) -> None:
    async with scripted(ep, "disconnect") as (charger, session):
        async with timed(0.5, "ChargerDisconnected"):
            with pytest.raises(ChargerDisconnected) as failure:
                await session.call_raw(TRIGGER, {"vendorId": "ev.energy"})
        assert f"connection closed while waiting for the answer to {TRIGGER}" in str(failure.value)
        assert "connection lost without a close frame" in str(failure.value), str(failure.value)
        await session.wait_connected(5)  # it reconnects by itself; the harness takes it back
        assert session.connections == 2
        assert await session.call_raw("GetConfiguration", {})


@on_session_loop
async def test_a_disconnected_charger_fails_calls_and_expectations_at_once(ep: Endpoint) -> None:
    async with scripted(ep, "disconnect", reconnect=False) as (_charger, session):
        with pytest.raises(ChargerDisconnected):
            await session.call_raw(TRIGGER, {"vendorId": "ev.energy"})
        async with timed(0.1, "NotConnected"):
            with pytest.raises(NotConnected, match="the charger is not connected"):
                await session.call_raw("GetConfiguration", {})
        async with timed(0.3, "ExpectationTimeout"):
            with pytest.raises(ExpectationTimeout) as failure:
                await session.expect("StatusNotification", within=0.3)
        assert "(the charger is not connected)" in str(failure.value)
        await assert_serves_a_good_charger(ep)


@on_session_loop
async def test_a_charger_that_never_connects(ep: Endpoint) -> None:
    session = ep.session(CHARGER_ID)
    async with timed(0.5, "ExpectationTimeout"):
        with pytest.raises(ExpectationTimeout, match=f"expected charger '{CHARGER_ID}' to connect within 0.5 s"):
            await session.wait_connected(0.5)
    with pytest.raises(NotConnected):
        await session.call_raw("GetConfiguration", {})
    await assert_serves_a_good_charger(ep)


# --- endpoint level: connections that never become sessions ------------------------------------


@on_session_loop
async def test_a_stalled_tls_handshake(ep: Endpoint) -> None:
    """Half a ClientHello, then nothing: recorded as a stalled handshake and dropped; others are served meanwhile."""
    since = time.monotonic()
    reader, writer = await stall_tls(target(ep))
    try:
        await assert_serves_a_good_charger(ep)  # the stalled handshake blocks nobody
        bound = 2 * HANDSHAKE_TIMEOUT  # the wait for the whole ClientHello record, then the TLS handshake
        async with timed(bound, "dropping the stalled connection"):
            attempt = await ep.wait_attempt(lambda a: a.outcome == TLS_FAILED, within=bound + SLACK, since=since)
            assert attempt is not None, [a.summary() for a in ep.attempts]
            assert await asyncio.wait_for(reader.read(), SLACK) == b"", "the endpoint closes the stalled socket"
        assert "TLS handshake stalled" in attempt.detail and "before a complete ClientHello" in attempt.detail
    finally:
        writer.close()
    assert not ep.session(CHARGER_ID).connected


@on_session_loop
async def test_tls_without_an_http_upgrade(ep: Endpoint) -> None:
    """TLS completes, no HTTP request follows: recorded as such and dropped after the handshake timeout."""
    since = time.monotonic()
    reader, writer = await tls_without_upgrade(target(ep))
    try:
        await assert_serves_a_good_charger(ep)
        async with timed(HANDSHAKE_TIMEOUT, "dropping the idle TLS connection"):
            attempt = await ep.wait_attempt(
                lambda a: a.outcome == SILENT and a.transport == "tls", within=HANDSHAKE_TIMEOUT + SLACK, since=since
            )
            assert attempt is not None, [a.summary() for a in ep.attempts]
            assert await asyncio.wait_for(reader.read(), SLACK) == b""
        assert "TLS handshake completed, then no HTTP upgrade request" in attempt.detail, attempt.detail
    finally:
        writer.close()


# --- endpoint level: frames that are not OCPP ----------------------------------------------------


@on_session_loop
async def test_invalid_utf8_in_a_text_frame(ep: Endpoint) -> None:
    async with scripted(ep, "invalid-utf8") as (charger, session):
        start = session.mark()
        async with timed(0.5, "ChargerDisconnected"):
            with pytest.raises(ChargerDisconnected) as failure:
                await session.call_raw(TRIGGER, {"vendorId": "ev.energy"})
        assert "harness closed: code 1007" in str(failure.value), str(failure.value)
        found = [v for v in session.violations_since(start) if v.kind == "invalid UTF-8"]
        assert found and "not valid UTF-8" in found[0].message and "code 1007" in found[0].message, found
        await session.wait_connected(5)
        assert session.connections == 2 and await session.call_raw("GetConfiguration", {})


@on_session_loop
async def test_a_frame_that_is_not_json(ep: Endpoint) -> None:
    async with scripted(ep, "non-json") as (_charger, session):
        start = session.mark()
        with pytest.raises(NoAnswer):
            await session.call_raw(TRIGGER, {"vendorId": "ev.energy"})
        found = [v for v in session.violations_since(start) if v.kind == "malformed frame"]
        assert found and "not valid JSON" in found[0].message, kinds(session, start)
        assert session.connected and await session.call_raw("GetConfiguration", {})


@on_session_loop
async def test_a_16_mib_frame_is_refused_without_buffering_it(ep: Endpoint) -> None:
    async with scripted(ep, "huge-frame") as (charger, session):
        start = session.mark()
        tracemalloc.start()
        try:
            with pytest.raises(ChargerDisconnected) as failure:
                await session.call_raw(TRIGGER, {"vendorId": "ev.energy"})
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert "harness closed: code 1009" in str(failure.value), str(failure.value)
        assert peak < HUGE // 4, f"peak {peak / 2**20:.1f} MiB while a 16 MiB frame came in: it was buffered"
        found = [v for v in session.violations_since(start) if v.kind == "frame too large"]
        assert found and "exceeded 1048576 bytes" in found[0].message, kinds(session, start)
        await session.wait_connected(5)
        assert session.connections == 2 and await session.call_raw("GetConfiguration", {})


@on_session_loop
async def test_a_flood_of_10000_messages_keeps_memory_bounded(ep: Endpoint) -> None:
    """Two floods: every frame is judged, the buffers stay at their capacity, the second flood retains nothing more."""
    async with scripted(ep, "flood") as (charger, session):
        start = session.mark()
        retained: list[int] = []
        tracemalloc.start()
        try:
            for _flood in range(2):
                async with timed(15, "a flood"):
                    answer = await session.call_raw(TRIGGER, {"vendorId": "ev.energy"}, timeout=15)
                assert answer["status"] == "Accepted"
                # The charger first reads the harness's 10,000 answers: a generous bound for the next CALL.
                assert await session.call_raw("GetConfiguration", {}, timeout=10), "still answering after the flood"
                retained.append(tracemalloc.get_traced_memory()[0])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert charger.flooded.is_set()
        # Every frame was judged: the charger never waited for an answer (OCPP-J §4.1.1).
        assert "more than one outstanding CALL" in kinds(session, start)
        assert session.violation_count > len(session.violations) == session_mod._MAX_VIOLATIONS
        assert session.trace.next_seq > 2 * FLOOD  # all of it went through the trace...
        assert len(session.trace) == session.trace._entries.maxlen  # ...which kept only its capacity
        assert len(session.received("Heartbeat", since=0)) == session_mod._INBOX
        assert peak < 64 * 2**20, f"peak {peak / 2**20:.1f} MiB for {FLOOD} small frames"
        growth = retained[1] - retained[0]
        assert growth < 4 * 2**20, f"the second flood kept {growth / 2**20:.1f} MiB more: something is unbounded"
        await assert_serves_a_good_charger(ep)


# --- pytester level: a tiny suite against each misbehaving charger ------------------------------

CONFTEST = """
import pytest
import pytest_asyncio

from harness.drivers.base import EndpointInfo
from harness.report.collector import CERTIFICATION_RUN
from tests.misbehaving import ScriptedBackend


def pytest_configure(config):
    config.stash[CERTIFICATION_RUN] = True  # as suites/conftest.py: a certification run, report armed


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def charger_backend(csms, harness_settings):
    backend = ScriptedBackend({behaviour!r})
    backend.attach(csms.session(harness_settings.charger_id))
    await backend.start(EndpointInfo(
        url=csms.url, charger_id=harness_settings.charger_id, authorization_key=harness_settings.authorization_key,
        ca_file=str(csms.certs.ca_pem), security_profile=harness_settings.security_profile,
    ))
    try:
        yield backend
    finally:
        await backend.stop()
"""

SUITE = """
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")
TIMEOUT = {timeout!r}  # None: the harness's call timeout


@pytest.mark.requirement("CORE-1")
async def test_affected(charger):
    answer = await charger.call_raw("{trigger}", {{"vendorId": "ev.energy"}}, timeout=TIMEOUT)
    assert answer.get("status") == "Accepted"


@pytest.mark.requirement("RT-1")
async def test_next(charger):
    answer = await charger.call_raw("GetConfiguration", {{"key": ["HeartbeatInterval"]}}, timeout=TIMEOUT)
    assert answer["configurationKey"]
"""

FACTOR = 0.1  # every harness timeout x 0.1: call 1 s, connect 3 s, TLS + upgrade 1 s, test bound 6 s


@dataclass(frozen=True)
class Case:
    message: tuple[str, ...]  # fnmatch patterns the run's output must contain
    bound: float  # s, the affected test (setup + call + teardown)
    connects: bool = True  # False: no session ever, both tests error as "never connected"
    call_timeout: float | None = None  # the suite's call timeout (before the factor); None: the harness's


MATRIX: dict[str, Case] = {
    "silent": Case((f"*NoAnswer: the charger did not answer {TRIGGER} (message id *) within 1 s*",), 1.0),
    "late": Case((f"*NoAnswer: the charger did not answer {TRIGGER} (message id *) within 1 s*",), 1.0),
    "wrong-id": Case(
        (f"*NoAnswer: the charger did not answer {TRIGGER}*", "*[[]CALLRESULT for unknown id[]]*matches no outstanding CALL*"),
        1.0,
    ),
    "callerror": Case(
        (f"*CallErrorReceived: the charger answered {TRIGGER} with CALLERROR InternalError: scripted failure*",), 0.5
    ),
    "disconnect": Case(
        (f"*ChargerDisconnected: the connection closed while waiting for the answer to {TRIGGER}*",
         "*disconnected: connection lost without a close frame*"),
        0.5,
    ),
    "invalid-utf8": Case(
        (f"*ChargerDisconnected: the connection closed while waiting for the answer to {TRIGGER}*",
         "*[[]invalid UTF-8[]] a text frame was not valid UTF-8*code 1007*"),
        0.5,
    ),
    "non-json": Case(
        (f"*NoAnswer: the charger did not answer {TRIGGER}*", "*[[]malformed frame[]] not valid JSON*"), 1.0
    ),
    "huge-frame": Case(
        (f"*ChargerDisconnected: the connection closed while waiting for the answer to {TRIGGER}*",
         "*[[]frame too large[]] a frame exceeded 1048576 bytes*code 1009*"),
        1.0,
    ),
    "flood": Case(
        ("*ProtocolViolation: the charger broke OCPP-J 1.6 during this test*",
         "*[[]more than one outstanding CALL[]] Heartbeat sent before the answer*"),
        6.0,  # the test bound: 10,000 frames are validated, answered and traced
        call_timeout=50,  # 5 s: the answer comes after the flood, which takes about 1 s to judge
    ),
    "never-connects": Case(("*charger never connected*", "*connection attempts seen: 0*"), 3.0, connects=False),
    "tls-stall": Case(
        ("*charger never connected*", "*tls-failed: TLS handshake stalled*before a complete ClientHello*"),
        3.0, connects=False,
    ),
    "no-upgrade": Case(
        ("*charger never connected*", "*silent: TLS handshake completed, then no HTTP upgrade request*"),
        3.0, connects=False,
    ),
}


def _tests_of(report: dict, requirement: str) -> list[dict]:
    return next(r for r in report["requirements"] if r["id"] == requirement)["tests"]


@pytest.mark.parametrize("behaviour", list(MATRIX))
def test_suite_run_against_a_misbehaving_charger(pytester: pytest.Pytester, certs_dir: Path, behaviour: str) -> None:
    case = MATRIX[behaviour]
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = session\n")
    pytester.makeconftest(CONFTEST.format(behaviour=behaviour))
    pytester.makepyfile(test_tiny=SUITE.format(trigger=TRIGGER, timeout=case.call_timeout))
    reports = pytester.path / "reports"
    started = time.monotonic()
    result = pytester.runpytest(
        # "--opt=value": a separate path argument would move pytest's rootdir (and so its ini) above pytester's.
        "-p", "no:cacheprovider", f"--timeout-factor={FACTOR}", f"--certs-dir={certs_dir}", f"--report-dir={reports}",
    )
    took = time.monotonic() - started
    output = result.stdout.str()
    result.stdout.fnmatch_lines(list(case.message), consecutive=False)
    # The whole run: one affected test within its bound, the next one quick, set-up and report around them.
    assert took < case.bound + 8, f"the run took {took:.1f} s\n{output[-3000:]}"

    report_file = reports / "certification.json"
    assert report_file.exists(), f"no report written\n{output[-3000:]}"
    report = json.loads(report_file.read_text())
    affected, following = _tests_of(report, "CORE-1"), _tests_of(report, "RT-1")
    assert len(affected) == len(following) == 1, report["requirements"]
    if case.connects:
        result.assert_outcomes(passed=1, failed=1)
        verdicts = {r["id"]: r["verdict"] for r in report["requirements"] if r["tests"]}
        assert verdicts == {"CORE-1": "fail", "RT-1": "pass"}, verdicts
        assert affected[0]["duration"] <= case.bound + SLACK, affected[0]["duration"]
        assert following[0]["verdict"] == "pass", "the endpoint goes on serving the next test"
        assert report["overall"] == "not certified"
    else:
        result.assert_outcomes(errors=2)
        assert [affected[0]["verdict"], following[0]["verdict"]] == ["incomplete", "incomplete"]
        assert following[0]["duration"] < 1, "after the first 'never connected' the next test fails at once"
        assert report["overall"] == "incomplete" and "never connected" in report["overall_reason"], report["overall_reason"]
        assert affected[0]["duration"] <= case.bound + SLACK, affected[0]["duration"]
