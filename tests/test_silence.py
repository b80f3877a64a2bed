"""The silence rule of ChargerSession (docs/rules-silence.md), and timeouts that name what they waited for.

A charger is silent once, registered (its last BootNotification answered Accepted), it left a CALL of the
harness unanswered for the CALL's timeout and sent nothing (no frame, no new connection) for the silence
bound. Then call/expect/wait_until fail at once with ChargerSilent, one cause naming since when and the last
frame, and nothing is sent; anything the charger sends ends it. A charger that is Pending may ignore CALLs
(§4.2) and never counts as silent. Small bounds (a CALL timeout of 0.2 s) keep these tests fast.
"""

from __future__ import annotations

import asyncio
import pytest

from harness.errors import ChargerSilent, ExpectationTimeout, NoAnswer
from harness.session import ChargerSession, SessionSettings
from harness.trace import TX


class _Connection:
    """Stands in for the WebSocket: the charger at the other end never answers."""

    async def send(self, text: str) -> None:
        return None


def _session(registration: str | None = "Accepted") -> ChargerSession:
    session = ChargerSession("CP-1", None, settings=SessionSettings(call_timeout=0.2, silence_after=0.2))
    session.attach(_Connection(), {"peer": "test"})
    session.registration = registration
    session.heartbeat_interval = 0.0  # the platform gave none: the bound is the settings' (0.2 s)
    return session


def _sent(session: ChargerSession) -> list[str]:
    return [e.text for e in session.trace.since(1) if e.direction == TX]


async def _silent(session: ChargerSession) -> None:
    with pytest.raises(NoAnswer, match="did not answer GetConfiguration .* within 0.2 s"):
        await session.call_raw("GetConfiguration", {})


@pytest.mark.asyncio(loop_scope="session")
async def test_a_registered_charger_that_answers_nothing_is_silent_and_not_waited_for() -> None:
    session = _session()
    session.receive('[2,"s1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available"}]')
    await _silent(session)
    cause = session.silence()
    assert cause is not None and cause.startswith("charger silent since ")
    assert "left GetConfiguration" in cause and "StatusNotification" in cause  # the CALL and the last frame
    sent = len(_sent(session))
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(ChargerSilent, match="charger silent since .*; Reset not sent"):
        await session.call_raw("Reset", {"type": "Soft"})
    with pytest.raises(ChargerSilent, match="not waited for: a Heartbeat"):
        await session.expect("Heartbeat", within=60)
    with pytest.raises(ChargerSilent, match="not waited for: connector 1 to charge"):
        await session.wait_until(lambda: False, 60, "connector 1 to charge")
    await session.expect_none("StopTransaction", within=60)  # a silent charger sends nothing forbidden either
    assert loop.time() - began < 1.0
    assert len(_sent(session)) == sent  # nothing was sent to it
    # Anything from the charger ends the silence.
    session.receive('[2,"h1","Heartbeat",{}]')
    assert session.silence() is None
    with pytest.raises(NoAnswer):
        await session.call_raw("Reset", {"type": "Soft"})  # waited for again, and sent
    assert len(_sent(session)) > sent


@pytest.mark.asyncio(loop_scope="session")
async def test_a_new_connection_ends_the_silence() -> None:
    session = _session()
    await _silent(session)
    assert session.silence() is not None
    session.attach(_Connection(), {"peer": "test"})
    assert session.silence() is None


@pytest.mark.asyncio(loop_scope="session")
async def test_a_pending_charger_may_ignore_calls_and_is_never_silent() -> None:
    session = _session("Pending")
    await _silent(session)
    assert session.silence() is None
    with pytest.raises(NoAnswer):
        await session.call_raw("GetConfiguration", {})


@pytest.mark.asyncio(loop_scope="session")
async def test_one_unanswered_call_from_a_charger_that_is_heard_is_not_silence() -> None:
    session = _session()
    with pytest.raises(NoAnswer):
        await session.call_raw("GetConfiguration", {})
    session.receive('[2,"h1","Heartbeat",{}]')  # e.g. its heartbeat: it is alive, that one CALL is a finding
    assert session.silence() is None
    with pytest.raises(ExpectationTimeout, match="expected the charger to send a StatusNotification within 0.1 s"):
        await session.expect("StatusNotification", within=0.1)


SUITE = '''
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.requirement("RT-2")
async def test_waits_past_its_bound(charger):
    await charger.expect("DataTransfer", within=600)
'''


def test_the_test_bound_names_what_the_test_waited_for(pytester: pytest.Pytester) -> None:
    """A test's bound (60 s in quick mode, times the timeout factor) that fires says what the test waited for."""
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider", "--certs-dir", str(pytester.path / "certs"),
                                "--report-dir", str(pytester.path / "reports"), "--timeout-factor", "0.1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*did not finish within its bound of 6 s (timeout factor 0.1); it was waiting for "
                                 "a DataTransfer (expect, bound 60 s)*"])
