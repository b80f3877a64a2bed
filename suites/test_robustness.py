"""ADV-1 (advisory): how the charger copes with malformed CALLs from the platform (OCPP-J 1.6 §4.2.3).

Outside ev.energy's list: every test here marks its finding advisory (``details["advisory"]``), so
the report lists it apart and it never affects certification.

The platform sends a CALL the charger must refuse, and expects a CALLERROR with the same message id
and the 1.6 error code that fits (OCPP-J 1.6 §4.2.3, "Valid Error Codes"):

- a CALL that is not a CALL (wrong number of elements, payload not a JSON object): FormationViolation
  ("payload for Action is syntactically incorrect or not conform the PDU structure"), or ProtocolError;
- an unknown action: NotImplemented ("requested Action is not known"), or NotSupported;
- a missing required field: OccurenceConstraintViolation, or FormationViolation, or ProtocolError
  ("payload for Action is incomplete"): the spec's wording fits all three;
- a field of the wrong type: TypeConstraintViolation, or FormationViolation.

Where two or more codes fit, any passes and the report notes which one the charger chose. In every
case the connection must stay open: a valid CALL right after it is answered on the same connection,
with no reconnect in between. A frame so broken that no message id can be read (not JSON, not an
array) has no id to answer with: OCPP-J 1.6 says nothing of the answer, so a CALLERROR with id "-1"
(the OCPP 2.0.1 rule), any other CALLERROR, and silence are all correct; only the connection must stay
open (docs/rules-frames.md). A CALLERROR whose errorDetails is not a JSON object still counts as the
answer; the session files that deviation as one ADV-1 finding.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from ocpp.v16 import call

from harness import ocppj
from harness.errors import ChargerDisconnected, ChargerFailure, NoAnswer, NotConnected
from harness.session import ChargerSession

pytestmark = pytest.mark.asyncio(loop_scope="session")

STRUCTURE = ("FormationViolation", "ProtocolError")
UNKNOWN_ACTION = ("NotImplemented", "NotSupported")
MISSING_FIELD = ("OccurenceConstraintViolation", "FormationViolation", "ProtocolError")
WRONG_TYPE = ("TypeConstraintViolation", "FormationViolation")
# A valid, read-only CALL: proof that the connection still works after a malformed one.
FOLLOW_UP = call.GetConfiguration(key=["HeartbeatInterval"])


def _advisory(charger: ChargerSession) -> int:
    """Mark this test's finding advisory; returns the connection count, to spot a reconnect."""
    charger.details["advisory"] = True
    return charger.connections


async def _connection_kept(charger: ChargerSession, connections: int, after: str) -> None:
    """A valid CALL is answered on the same connection as before `after`."""
    try:
        await charger.call(FOLLOW_UP)
    except (ChargerDisconnected, NotConnected) as exc:
        raise ChargerFailure(
            f"expected the connection to stay open after {after}; the charger closed it "
            f"(a valid {ocppj.action_of(FOLLOW_UP)} right after could not be answered):\n{exc}"
        ) from None
    assert charger.connected and charger.connections == connections, (
        f"expected the connection to stay open after {after}; the charger dropped it and reconnected "
        f"({charger.connections - connections} new connection(s))"
    )


async def _expect_callerror(
    charger: ChargerSession, action: str, build: Callable[[str], str], codes: tuple[str, ...], what: str
) -> None:
    """Send the raw frame `build(message_id)`; expect CALLERROR with one of `codes` and the connection kept.
    Raw text on purpose: the frame is malformed or breaks the schema, which no `ocpp` dataclass can express."""
    connections = _advisory(charger)
    uid = uuid.uuid4().hex[:32]
    wanted = codes[0] + (f" (or {' or '.join(codes[1:])})" if len(codes) > 1 else "")
    try:
        answer = await charger.send_call(ocppj.Call(uid, action, {}), text=build(uid))
    except NoAnswer as exc:
        raise ChargerFailure(
            f"expected CALLERROR {wanted} for {what} (OCPP-J 1.6 §4.2.3); the charger did not answer:\n{exc}"
        ) from None
    except ChargerDisconnected as exc:
        raise ChargerFailure(
            f"expected CALLERROR {wanted} for {what} (OCPP-J 1.6 §4.2.3), and the connection kept open; the "
            f"charger closed the connection instead:\n{exc}"
        ) from None
    if isinstance(answer, ocppj.CallResult):
        raise ChargerFailure(
            f"expected CALLERROR {wanted} for {what} (OCPP-J 1.6 §4.2.3); the charger accepted it with a "
            f"CALLRESULT {ocppj.encode_json(answer.payload)}"
        )
    assert answer.code in codes, (
        f"expected CALLERROR {wanted} for {what} (OCPP-J 1.6 §4.2.3); the charger answered CALLERROR "
        f"{answer.code} ({answer.description!r})"
    )
    chosen = "the preferred code" if answer.code == codes[0] else f"accepted; {codes[0]} fits best"
    charger.note(f"{what}: CALLERROR {answer.code} ({chosen})")
    await _connection_kept(charger, connections, what)


@pytest.mark.requirement("ADV-1")
async def test_call_with_three_elements(charger: ChargerSession) -> None:
    """ADV-1: a CALL without its payload element ([2, id, "GetConfiguration"]) gets CALLERROR
    FormationViolation (or ProtocolError), and the connection stays open (OCPP-J 1.6 §4.1.3, §4.2.3)."""
    await _expect_callerror(
        charger, "GetConfiguration", lambda uid: f'[2,"{uid}","GetConfiguration"]', STRUCTURE,
        "a CALL with 3 elements instead of 4",
    )


@pytest.mark.requirement("ADV-1")
async def test_call_payload_not_an_object(charger: ChargerSession) -> None:
    """ADV-1: a CALL whose payload is a JSON array instead of an object gets CALLERROR FormationViolation
    (or ProtocolError), and the connection stays open (OCPP-J 1.6 §4.1.3, §4.2.3)."""
    await _expect_callerror(
        charger, "GetConfiguration", lambda uid: f'[2,"{uid}","GetConfiguration",["HeartbeatInterval"]]', STRUCTURE,
        "a CALL whose payload is not a JSON object",
    )


@pytest.mark.requirement("ADV-1")
async def test_unknown_action(charger: ChargerSession) -> None:
    """ADV-1: a CALL with an action OCPP 1.6 does not have gets CALLERROR NotImplemented (or NotSupported),
    and the connection stays open (OCPP-J 1.6 §4.2.3)."""
    action = "EvEnergyRobustnessProbe"
    await _expect_callerror(
        charger, action, lambda uid: ocppj.encode_frame(ocppj.Call(uid, action, {"probe": True})), UNKNOWN_ACTION,
        f"the unknown action {action}",
    )


@pytest.mark.requirement("ADV-1")
async def test_missing_required_field(charger: ChargerSession) -> None:
    """ADV-1: ChangeConfiguration without its required "value" gets CALLERROR OccurenceConstraintViolation (or
    FormationViolation or ProtocolError), and the connection stays open (OCPP 1.6 §5.3; OCPP-J 1.6 §4.2.3)."""
    payload = {"key": "HeartbeatInterval"}
    await _expect_callerror(
        charger, "ChangeConfiguration", lambda uid: ocppj.encode_frame(ocppj.Call(uid, "ChangeConfiguration", payload)),
        MISSING_FIELD, "ChangeConfiguration without the required field value",
    )


@pytest.mark.requirement("ADV-1")
async def test_field_of_the_wrong_type(charger: ChargerSession) -> None:
    """ADV-1: GetConfiguration whose "key" is a number instead of an array of strings gets CALLERROR
    TypeConstraintViolation (or FormationViolation), and the connection stays open (OCPP 1.6 §5.8;
    OCPP-J 1.6 §4.2.3)."""
    await _expect_callerror(
        charger, "GetConfiguration", lambda uid: ocppj.encode_frame(ocppj.Call(uid, "GetConfiguration", {"key": 42})),
        WRONG_TYPE, "GetConfiguration with key as a number",
    )


@pytest.mark.requirement("ADV-1")
@pytest.mark.parametrize(
    "frame",
    ["this is not JSON", '{"messageTypeId": 2, "action": "GetConfiguration"}'],
    ids=["not-json", "not-an-array"],
)
async def test_unreadable_frame_leaves_the_connection_open(charger: ChargerSession, frame: str) -> None:
    """ADV-1: a frame with no readable message id keeps the connection open; a valid CALL right after is
    answered. Whether the charger answers the frame itself (CALLERROR id "-1", any CALLERROR) or ignores it is
    its choice: OCPP-J 1.6 does not say (docs/rules-frames.md)."""
    connections = _advisory(charger)
    answered_before = len(charger.unreadable_answers)
    await charger.send_text(frame)
    await _connection_kept(charger, connections, f"the unreadable frame {frame!r}")
    answers = charger.unreadable_answers[answered_before:]
    if answers:
        text = next((e.text for e in charger.trace.since(answers[0]) if e.seq == answers[0]), "a CALLERROR")
        charger.note(f"unreadable frame {frame!r}: answered {text} (acceptable); connection kept")
    else:
        charger.note(f"unreadable frame {frame!r}: not answered (acceptable); connection kept")
