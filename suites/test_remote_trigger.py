"""RT-1 and RT-2: the platform triggers BootNotification and StatusNotification remotely (OCPP 1.6 §5.17
TriggerMessage; OCTT TC_054_CS, TC_055_CS).

§5.17: the charger answers TriggerMessage first, then sends the requested message. "Follows" is
judged on the order of the frames in the trace: the requested message must arrive after the
CALLRESULT (one sent before it does not count). Without connectorId, StatusNotification is
triggered "for all allowed connectorId values": connector 0 and every connector.
"""

from __future__ import annotations

import json

import pytest
from ocpp.v16 import call
from ocpp.v16.enums import MessageTrigger, TriggerMessageStatus

from harness import ocppj
from harness.errors import CallErrorReceived
from harness.session import ChargerSession, ReceivedCall
from harness.trace import RX, TX

pytestmark = pytest.mark.asyncio(loop_scope="session")

FOLLOW_WITHIN = 10  # s after the answer (OCPP sets no bound; the platform waits about this long)


async def trigger(charger: ChargerSession, message: MessageTrigger, connector: int | None = None) -> int:
    """Send TriggerMessage; assert Accepted; return the trace seq of the charger's answer."""
    mark = charger.trace.next_seq
    what = message + (f" (connectorId {connector})" if connector is not None else "")
    try:
        answer = await charger.call(call.TriggerMessage(requested_message=message, connector_id=connector))
    except CallErrorReceived as exc:
        pytest.fail(f"expected TriggerMessage {what} to be Accepted (OCPP 1.6 §5.17); it answered CALLERROR "
                    f"{exc.code} {exc.description}", pytrace=False)
    assert answer.status == TriggerMessageStatus.accepted, (
        f"expected TriggerMessage {what} to be Accepted (OCPP 1.6 §5.17); it answered {ocppj.payload_of(answer)}"
    )
    return _answer_seq(charger, mark)


def _answer_seq(charger: ChargerSession, mark: int) -> int:
    """The seq of the CALLRESULT to the TriggerMessage the harness sent after `mark`."""
    message_id = None
    for entry in charger.trace.since(mark):
        try:
            frame = json.loads(entry.text)
        except ValueError:
            continue
        if not isinstance(frame, list) or len(frame) < 3:
            continue
        if entry.direction == TX and frame[0] == 2 and frame[2] == "TriggerMessage":
            message_id = frame[1]
        elif entry.direction == RX and frame[0] == 3 and message_id is not None and frame[1] == message_id:
            return entry.seq
    raise AssertionError("the answer to TriggerMessage is not in the trace")  # the call returned, so it is


def _before_answer(charger: ChargerSession, action: str, mark: int, answer_seq: int) -> list[ReceivedCall]:
    return [c for c in charger.received(action, since=mark) if c.seq < answer_seq]


@pytest.mark.requirement("RT-1")
async def test_trigger_boot_notification(charger: ChargerSession) -> None:
    """RT-1: TriggerMessage BootNotification is Accepted and a BootNotification follows the answer
    (OCPP 1.6 §5.17; OCTT TC_054_CS)."""
    mark = charger.trace.next_seq
    answered = await trigger(charger, MessageTrigger.boot_notification)
    early = _before_answer(charger, "BootNotification", mark, answered)
    boot = await charger.expect("BootNotification", within=FOLLOW_WITHIN, since=answered + 1,
                                describe="a BootNotification after the TriggerMessage answer")
    if early:
        charger.note(f"a BootNotification also came before the answer (seq {early[0].seq}); §5.17 wants the answer first")
    charger.note(f"TriggerMessage answered at seq {answered}; BootNotification at seq {boot.seq}")


@pytest.mark.requirement("RT-2")
async def test_trigger_status_notification_for_one_connector(charger: ChargerSession) -> None:
    """RT-2: TriggerMessage StatusNotification with connectorId 1 is Accepted and a StatusNotification
    for connector 1 follows the answer (OCPP 1.6 §5.17; OCTT TC_055_CS)."""
    known = charger.connector_status.get(1)
    answered = await trigger(charger, MessageTrigger.status_notification, 1)
    status = await charger.expect(
        "StatusNotification", where={"connectorId": 1}, within=FOLLOW_WITHIN, since=answered + 1,
        describe="a StatusNotification for connector 1 after the TriggerMessage answer",
    )
    others = sorted({c.get("connectorId") for c in charger.received("StatusNotification", since=answered + 1)} - {1})
    charger.note(f"connector 1: {status.get('status')} (last reported before: {known})"
                 + (f"; also sent for connectors {others}" if others else ""))


@pytest.mark.requirement("RT-2")
async def test_trigger_status_notification_for_all_connectors(charger: ChargerSession) -> None:
    """RT-2: TriggerMessage StatusNotification without connectorId is Accepted and StatusNotifications
    follow for connector 0 and every connector (OCPP 1.6 §5.17: "for all allowed connectorId values";
    OCTT TC_055_CS)."""
    config = await charger.call(call.GetConfiguration(key=["NumberOfConnectors"]))
    values = {e.get("key"): e.get("value") for e in config.configuration_key or [] if isinstance(e, dict)}
    raw = values.get("NumberOfConnectors")
    assert raw is not None and str(raw).strip().isdigit(), (
        f"expected GetConfiguration to report NumberOfConnectors (a core key, OCPP 1.6 §9.1); got {ocppj.payload_of(config)}"
    )
    count = int(str(raw).strip())
    wanted = set(range(count + 1))
    answered = await trigger(charger, MessageTrigger.status_notification)

    def all_arrived() -> bool:
        return wanted <= {c.get("connectorId") for c in charger.received("StatusNotification", since=answered + 1)}

    try:
        await charger.expect("StatusNotification", where=lambda _c: all_arrived(), within=FOLLOW_WITHIN,
                             since=answered + 1, describe="StatusNotifications for connector 0 and every connector")
    except AssertionError:
        got = sorted({c.get("connectorId") for c in charger.received("StatusNotification", since=answered + 1)})
        raise AssertionError(
            f"expected a StatusNotification for connector 0 and connectors 1..{count} (NumberOfConnectors) after "
            f"TriggerMessage StatusNotification without connectorId (OCPP 1.6 §5.17: all allowed connectorId "
            f"values); after the answer it sent them for {got or 'none'}"
        ) from None
    got = {c.get("connectorId"): c.get("status") for c in charger.received("StatusNotification", since=answered + 1)}
    charger.note("triggered: " + ", ".join(f"connector {k}: {v}" for k, v in sorted(got.items())))
