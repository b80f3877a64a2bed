"""CORE-1: boot, heartbeat and the first status notifications (OCPP 1.6 §4.2, §4.6, §4.9; OCTT TC_001)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from ocpp.v16 import call

from harness import ocppj
from harness.session import ChargerSession
from harness.settings import Settings
from harness.trace import RX, TX

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.requirement("CORE-1")
async def test_boot_notification_is_schema_valid(charger: ChargerSession) -> None:
    """CORE-1: the charger boots with a schema-valid BootNotification (OCPP 1.6 §4.2; OCTT TC_001_CS)."""
    boots = charger.received("BootNotification", since=0)
    assert boots, "expected a BootNotification after the charger connected; none arrived"
    first = boots[0]
    assert not first.problems, "expected a schema-valid BootNotification; it has problems:\n  " + "\n  ".join(
        str(p) for p in first.problems
    )
    # Violations before the first test (while booting) belong to this test.
    early = [v for v in charger.violations if v.seq < charger.first_mark]
    assert not early, "the charger broke OCPP-J 1.6 while booting:\n  " + "\n  ".join(str(v) for v in early[:10])
    boot = first.payload
    charger.note(
        f"vendor {boot.get('chargePointVendor')!r}, model {boot.get('chargePointModel')!r}, "
        f"firmware {boot.get('firmwareVersion')!r}"
    )


def _undisturbed_heartbeats(charger: ChargerSession) -> tuple[int, set[int]]:
    """Where heartbeats at the current interval begin, and which heartbeats since then the harness caused.

    From the start of this connection, after the last BootNotification (its answer gives the interval)
    and the last change of HeartbeatInterval; a Heartbeat asked for with TriggerMessage is not periodic.
    """
    start = charger.connected_seq
    boots = charger.received("BootNotification", since=start)
    if boots:
        start = boots[-1].seq + 1
    triggers: list[int] = []
    for entry in charger.trace.since(start):
        if entry.direction != TX:
            continue
        try:
            frame = ocppj.parse_frame(entry.text)
        except ocppj.FrameError:
            continue
        if not isinstance(frame, ocppj.Call):
            continue
        if frame.action == "ChangeConfiguration" and frame.payload.get("key") == "HeartbeatInterval":
            start, triggers = entry.seq + 1, []
        elif frame.action == "TriggerMessage" and frame.payload.get("requestedMessage") == "Heartbeat":
            triggers.append(entry.seq)
    triggered: set[int] = set()
    heartbeats = charger.received("Heartbeat", since=start)
    for trigger in triggers:  # the first Heartbeat after each TriggerMessage is its answer
        answer = next((h.seq for h in heartbeats if h.seq > trigger and h.seq not in triggered), None)
        if answer is not None:
            triggered.add(answer)
    return start, triggered


@pytest.mark.requirement("CORE-1")
async def test_heartbeat_at_the_given_interval(charger: ChargerSession, harness_settings: Settings) -> None:
    """CORE-1: Heartbeat at the interval of BootNotification.conf (OCPP 1.6 §4.6, §6.4): at most that long
    after the charger's last message (§4.6: it MAY skip a Heartbeat when it sent another PDU within the
    interval), and not more often than every half interval."""
    interval = harness_settings.heartbeat_interval
    slack = max(1.0, 0.25 * interval)
    # Heartbeats already seen on this connection count (no need to wait for two new ones), except those
    # the harness asked for: a triggered Heartbeat says nothing about the interval.
    start, triggered = _undisturbed_heartbeats(charger)
    periodic = [h for h in charger.received("Heartbeat", since=start) if h.seq not in triggered]
    first = periodic[-1] if periodic else await charger.expect(
        "Heartbeat", where=lambda c: c.seq not in triggered, within=2 * interval + slack, since=start,
        describe="a periodic Heartbeat",
    )
    # A Heartbeat the harness triggered earlier may already be in (a test of another file ran first): not periodic.
    second = await charger.expect(
        "Heartbeat", where=lambda c: c.seq > first.seq and c.seq not in triggered, within=interval + slack, since=first.seq,
        describe=f"a Heartbeat within {interval} s of the charger's last message",
    )
    gap = second.mono - first.mono
    quiet_from = max(e.mono for e in charger.trace.since(first.seq) if e.direction == RX and e.seq < second.seq)
    silence = second.mono - quiet_from
    charger.note(f"heartbeat interval given: {interval} s; measured: {gap:.2f} s between heartbeats, "
                 f"{silence:.2f} s after the charger's previous message")
    assert gap >= 0.5 * interval, f"expected heartbeats every {interval} s; two came {gap:.2f} s apart (too often)"
    assert silence <= interval + slack, (
        f"expected a Heartbeat at most {interval} s after the charger's last message (§4.6); it came {silence:.2f} s "
        f"after it ({gap:.2f} s after the previous Heartbeat)"
    )


@pytest.mark.requirement("CORE-1")
async def test_status_for_every_connector_after_boot(charger: ChargerSession) -> None:
    """CORE-1: after boot, a StatusNotification for connector 0 and for each connector (OCPP 1.6 §4.9;
    OCTT TC_001_CS)."""
    config = await charger.call(call.GetConfiguration(key=["NumberOfConnectors"]))
    values = {e.get("key"): e.get("value") for e in config.configuration_key or []}
    raw = values.get("NumberOfConnectors")
    assert raw is not None and str(raw).isdigit(), (
        f"expected GetConfiguration to report NumberOfConnectors (a core key, OCPP 1.6 §9.1); got {ocppj.payload_of(config)}"
    )
    count = int(str(raw))
    boots = charger.received("BootNotification", since=0)
    assert boots, "expected a BootNotification"
    statuses = charger.received("StatusNotification", since=boots[0].seq)
    seen = {s.get("connectorId") for s in statuses}
    missing = [c for c in range(count + 1) if c not in seen and Decimal(c) not in seen]
    assert not missing, (
        f"expected a StatusNotification for connector 0 and connectors 1..{count} after boot; "
        f"missing for {missing} (got {sorted(str(s) for s in seen)})"
    )
