"""Steps many suites share: start and stop a charging session the way a driver would.

They wait only for what every conformant charger does (OCPP 1.6 §4.8 StartTransaction, §4.10
StopTransaction), not for a particular status sequence: status checks belong to the ST suites,
so a status defect fails ST, not every suite that charges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ocpp.v16 import call
from ocpp.v16.enums import RemoteStartStopStatus

from harness import meter
from harness.errors import CallErrorReceived
from harness.session import ChargerSession, ReceivedCall


#: Seconds a charger has, after reconnecting, to deliver what it queued offline (OCPP 1.6 §3.7), in every mode: it is
#: the charger's own flush timer, which quick mode cannot shorten. Chargers that flush their offline queue on a timer
#: commonly use 60 s; 120 s gives such a timer a whole second period (docs/rules-offline.md). Late is not lost; a
#: charger that delivers at once costs nothing (every wait is event-driven).
LATE_DELIVERY = 120.0


#: The platform's MeterValuesSampledData (ev.energy: Energy + Power), and the list a Current+Voltage charger gets
#: when it refuses that one (CFG-1 accepts either; MV-1 accepts Power OR Current+Voltage).
POWER_LIST: Final = f"{meter.ENERGY},{meter.POWER}"
CURRENT_VOLTAGE_LIST: Final = f"{meter.ENERGY},{meter.CURRENT},{meter.VOLTAGE}"


async def change_configuration(charger: ChargerSession, key: str, value: str) -> str:
    """ChangeConfiguration's status (§5.3), or "CALLERROR <code> (<description>)"."""
    try:
        answer = await charger.call(call.ChangeConfiguration(key=key, value=value))
    except CallErrorReceived as exc:
        return f"CALLERROR {exc.code}" + (f" ({exc.description})" if exc.description else "")
    return str(answer.status)


async def configured_value(charger: ChargerSession, key: str) -> str | None:
    """The value the charger reports for one configuration key (GetConfiguration, §5.8; keys compared without
    case); None when it does not report the key, reports it without a value, or answers with a CALLERROR."""
    try:
        answer = await charger.call(call.GetConfiguration(key=[key]))
    except CallErrorReceived:
        return None
    for entry in answer.configuration_key or []:
        if isinstance(entry, dict) and str(entry.get("key", "")).lower() == key.lower():
            value = entry.get("value")
            return None if value is None else str(value)
    return None


@dataclass
class Charging:
    connector: int
    transaction_id: int
    start: ReceivedCall  # the StartTransaction CALL
    since: int  # trace seq before the session was started


async def start_charging(
    charger: ChargerSession, connector: int = 1, *, remote: bool = False, id_tag: str | None = None,
    charging_profile: dict[str, Any] | None = None, within: float = 15,
) -> Charging:
    """Plug an EV in and start a transaction: local idTag, or RemoteStartTransaction (remote=True).
    The idTag is the platform's card (`charger.platform.id_tag`: the profile's `id_tags`) unless given."""
    id_tag = id_tag or charger.platform.id_tag
    since = charger.trace.next_seq
    rig = charger.rig
    await rig.plugin(connector)
    if remote:
        # chargingProfile is a camelCase dict in the dataclass: it goes on the wire as given
        answer = await charger.call(call.RemoteStartTransaction(
            id_tag=id_tag, connector_id=connector, charging_profile=charging_profile))
        assert answer.status == RemoteStartStopStatus.accepted, (
            f"expected RemoteStartTransaction to be Accepted (OCPP 1.6 §5.11), got {answer.status}"
        )
    else:
        await rig.authorize(id_tag, connector)
    start: ReceivedCall = await charger.expect(
        "StartTransaction", where={"connectorId": connector}, within=within, since=since,
        describe=f"a StartTransaction on connector {connector}",
    )
    await charger.wait_until(
        lambda: any(t.started is start for t in charger.transactions.values()),
        5,
        "the platform's answer to StartTransaction",
    )
    tx = next(t for t in charger.transactions.values() if t.started is start)
    return Charging(connector, tx.transaction_id, start, since)


async def stop_charging(
    charger: ChargerSession, session: Charging, *, remote: bool = True, unplug: bool = True, within: float = 15
) -> ReceivedCall:
    """Stop the transaction (RemoteStopTransaction, or the driver's card) and return the StopTransaction."""
    since = charger.trace.next_seq
    if remote:
        answer = await charger.call(call.RemoteStopTransaction(transaction_id=session.transaction_id))
        assert answer.status == RemoteStartStopStatus.accepted, (
            f"expected RemoteStopTransaction to be Accepted (OCPP 1.6 §5.12), got {answer.status}"
        )
    else:
        await charger.rig.authorize(charger.platform.id_tag, session.connector)
    # Annotated: ChargerSession.expect's decorator (session._observed) hides its return type from mypy.
    stop: ReceivedCall = await charger.expect(
        "StopTransaction", where={"transactionId": session.transaction_id}, within=within, since=since,
        describe=f"a StopTransaction for transaction {session.transaction_id}",
    )
    if unplug:
        await charger.rig.plugout(session.connector)
    return stop
