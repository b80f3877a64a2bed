"""The session's frame rules against raw WSS clients on loopback (docs/rules-frames.md).

- Boot first: the platform answers a BootNotification before it sends any CALL of its own on that
  connection; the charger counts as booted once the answer (Accepted or Pending) is written.
- Unreadable frames: a charger may answer one with CALLERROR id "-1", with any CALLERROR, or not at all;
  none is a violation. The harness answers only a CALL, never a CALLRESULT or a CALLERROR.
- A CALLERROR whose errorDetails is not an object is an advisory finding naming exactly that, and still
  the charger's answer.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from harness import ocppj
from harness.endpoint import Endpoint
from harness.errors import CallErrorReceived, ChargerFailure
from harness.session import BootNotAnswered, ChargerSession, ReceivedCall
from tests.helpers import CHARGER_ID, open_charger

pytestmark = pytest.mark.asyncio(loop_scope="session")

BOOT = '[2,"b1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]'
# How long a client watches for a frame that must not come (a deliberate observation window, not a sync).
QUIET = 0.3


async def recv_json(ws: ClientConnection, within: float = 5) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), within))


async def nothing_arrives(ws: ClientConnection, within: float = QUIET) -> bool:
    try:
        frame = await asyncio.wait_for(ws.recv(), within)
    except TimeoutError:
        return True
    pytest.fail(f"expected no frame yet, got {frame}")


# --- boot first ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["Accepted", "Pending"])
async def test_no_call_goes_out_before_the_boot_answer_is_written(endpoint: Endpoint, status: str) -> None:
    """The old race: a CALL sent as soon as BootNotification arrived, before its answer. A charger waiting for
    that answer may ignore it (OCPP 1.6 §4.2 notes); here the answer is held back and the CALL must wait."""
    session = endpoint.session(CHARGER_ID)
    held = asyncio.Event()
    release = asyncio.Event()

    async def slow_platform(_call: ReceivedCall) -> dict[str, Any]:
        held.set()
        await release.wait()
        return {"status": status, "currentTime": "2026-01-01T00:00:00Z", "interval": 300}

    async with await open_charger(endpoint) as ws:
        with session.answering("BootNotification", slow_platform):
            await ws.send(BOOT)
            await asyncio.wait_for(held.wait(), 5)
            asking = asyncio.ensure_future(session.call_raw("GetConfiguration", {"key": ["HeartbeatInterval"]}))
            try:
                assert await nothing_arrives(ws)  # the old code put GetConfiguration on the wire here
                assert session.boot is None, "counted as booted before the answer was written"
                release.set()
                answer = await recv_json(ws)
                assert answer[:2] == [3, "b1"] and answer[2]["status"] == status, answer
                request = await recv_json(ws)  # only now the CALL
                assert request[0] == 2 and request[2] == "GetConfiguration", request
                assert session.boot is not None and session.boot.unique_id == "b1"
                await ws.send(json.dumps([3, request[1], {"configurationKey": []}]))
                assert await asyncio.wait_for(asking, 5) == {"configurationKey": []}
            finally:
                asking.cancel()


async def test_a_boot_the_platform_refuses_is_not_a_boot_but_opens_the_gate(endpoint: Endpoint) -> None:
    session = endpoint.session(CHARGER_ID)
    async with await open_charger(endpoint) as ws:
        with session.answering("BootNotification", lambda _c: ocppj.CallError("b1", "InternalError", "no", {})):
            await ws.send(BOOT)
            assert (await recv_json(ws))[:3] == [4, "b1", "InternalError"]
        asking = asyncio.ensure_future(session.call_raw("Heartbeat", {}))
        request = await recv_json(ws)
        await ws.send(json.dumps([3, request[1], {"currentTime": "2026-01-01T00:00:00Z"}]))
        await asyncio.wait_for(asking, 5)
        assert session.boot is None


async def test_a_reconnect_without_boot_needs_no_boot(endpoint: Endpoint) -> None:
    """OCPP 1.6: a reconnect need not send BootNotification; the platform's CALLs go out at once."""
    session = endpoint.session(CHARGER_ID)
    async with await open_charger(endpoint) as ws:
        await session.wait_connected(5)
        asking = asyncio.ensure_future(session.call_raw("Heartbeat", {}))
        request = await recv_json(ws, within=2)
        await ws.send(json.dumps([3, request[1], {"currentTime": "2026-01-01T00:00:00Z"}]))
        await asyncio.wait_for(asking, 5)


async def test_a_boot_answer_that_never_goes_out_is_a_harness_error(endpoint: Endpoint) -> None:
    """A test that makes the platform silent to BootNotification cannot ask anything: that is the harness's
    problem (not a ChargerFailure), said after the call's bound."""
    session = endpoint.session(CHARGER_ID)
    async with await open_charger(endpoint) as ws:
        with session.answering("BootNotification", None):
            await ws.send(BOOT)
            await session.expect("BootNotification", within=5, since=0)
            with pytest.raises(BootNotAnswered) as error:
                await session.call_raw("Heartbeat", {})
        assert not isinstance(error.value, ChargerFailure)
        assert "has not answered the charger's BootNotification" in str(error.value)
        assert await nothing_arrives(ws, 0.05)


# --- unreadable frames --------------------------------------------------------------------------


async def follow_up(session: ChargerSession, ws: ClientConnection) -> None:
    """A valid CALL answered on the same connection: the session carries on normally."""
    asking = asyncio.ensure_future(session.call_raw("Heartbeat", {}))
    request = await recv_json(ws)
    while request[0] != 2:  # (frames the script already consumed are not expected here)
        request = await recv_json(ws)
    await ws.send(json.dumps([3, request[1], {"currentTime": "2026-01-01T00:00:00Z"}]))
    await asyncio.wait_for(asking, 5)


@pytest.mark.parametrize(
    "answer",
    [
        '[4,"-1","FormationViolation","not JSON",{}]',  # the 2.0.1 rule
        '[4,"-1","RpcFrameworkError","not JSON",{}]',  # a code 1.6 does not have: any CALLERROR will do
        '[4,"","ProtocolError","",{}]',  # no id at all
        None,  # silence
    ],
    ids=["minus-one", "minus-one-other-code", "empty-id", "silent"],
)
async def test_answers_to_an_unreadable_frame_are_no_violation(endpoint: Endpoint, answer: str | None) -> None:
    session = endpoint.session(CHARGER_ID)
    start = session.mark()
    async with await open_charger(endpoint) as ws:
        await session.wait_connected(5)
        await session.send_text("this is not JSON")
        assert await ws.recv() == "this is not JSON"
        if answer is not None:
            await ws.send(answer)
        await follow_up(session, ws)
        assert session.violations_since(start) == [], [str(v) for v in session.violations_since(start)]
        assert len(session.unreadable_answers) == (answer is not None)


async def test_a_minus_one_error_nobody_asked_for_is_still_a_violation(endpoint: Endpoint) -> None:
    """Only an unreadable frame of the harness makes a stray CALLERROR acceptable: one answer per frame."""
    session = endpoint.session(CHARGER_ID)
    start = session.mark()
    async with await open_charger(endpoint) as ws:
        await session.wait_connected(5)
        await session.send_text("[not json")
        await ws.recv()
        await ws.send('[4,"-1","FormationViolation","",{}]')
        await ws.send('[4,"-1","FormationViolation","",{}]')  # a second one answers nothing
        await follow_up(session, ws)
    assert [v.kind for v in session.violations_since(start)] == ["CALLERROR for unknown id"]


@pytest.mark.parametrize(
    "frame",
    ['[3,"r1"]', '[3,"r2","not an object"]', '[4,"e1","GenericError"]', '[4,"e2",7,"x",{}]'],
    ids=["callresult-short", "callresult-payload", "callerror-short", "callerror-code"],
)
async def test_the_harness_never_answers_a_callresult_or_callerror(endpoint: Endpoint, frame: str) -> None:
    """A malformed CALLRESULT/CALLERROR is recorded, and not answered: the charger waits for nothing."""
    session = endpoint.session(CHARGER_ID)
    start = session.mark()
    async with await open_charger(endpoint) as ws:
        await ws.send(frame)
        await ws.send('[2,"h1","Heartbeat",{}]')
        first = await recv_json(ws)  # the old code answered the malformed frame first, with a CALLERROR
        assert first[:2] == [3, "h1"], first
    assert "malformed frame" in [v.kind for v in session.violations_since(start)]


async def test_a_malformed_call_is_still_answered(endpoint: Endpoint) -> None:
    """The other side of the rule: a CALL with a readable id gets its CALLERROR."""
    async with await open_charger(endpoint) as ws:
        await ws.send('[2,"c1","Heartbeat"]')
        assert (await recv_json(ws))[:3] == [4, "c1", "FormationViolation"]


# --- errorDetails that is not an object ---------------------------------------------------------


async def test_a_string_error_details_is_an_answer_and_one_advisory_finding(endpoint: Endpoint) -> None:
    session = endpoint.session(CHARGER_ID)
    start = session.mark()
    async with await open_charger(endpoint) as ws:
        await session.wait_connected(5)
        for _ in range(2):
            asking = asyncio.ensure_future(session.call_raw("GetLocalListVersion", {}))
            request = await recv_json(ws)
            await ws.send(json.dumps([4, request[1], "NotSupported", "no local list", "no local list"]))
            with pytest.raises(CallErrorReceived) as error:  # the answer, not "did not answer"
                await asyncio.wait_for(asking, 5)
            assert error.value.code == "NotSupported"
    found = session.violations_since(start)
    assert [(v.kind, v.requirement) for v in found] == [("advisory", "ADV-1")], [str(v) for v in found]
    assert "errorDetails is a string" in found[0].message and "not a JSON object" in found[0].message
    assert '"no local list"]' in found[0].frame


async def test_parse_frame_keeps_a_callerror_with_other_details() -> None:
    for details, word in (('"text"', "a string"), ("null", "null"), ("[1]", "an array"), ("3", "a number")):
        frame = ocppj.parse_frame(f'[4,"x","GenericError","d",{details}]')
        assert isinstance(frame, ocppj.CallError) and frame.details == {}
        assert f"errorDetails is {word}" in frame.details_problem
    assert ocppj.parse_frame('[4,"x","GenericError","d",{}]').details_problem == ""
    missing = ocppj.parse_frame('[4,"x","GenericError","d"]')
    assert isinstance(missing, ocppj.CallError) and "no errorDetails" in missing.details_problem
    with pytest.raises(ocppj.FrameError) as error:
        ocppj.parse_frame('[3,"x"]')
    assert error.value.message_type == 3 and error.value.unique_id == "x"
