"""CORE-1: boot, heartbeat and the first status notifications (OCPP 1.6 §4.2, §4.6, §4.9; OCTT TC_001)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from harness.session import ChargerSession
from harness.settings import Settings

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


@pytest.mark.requirement("CORE-1")
async def test_heartbeat_at_the_given_interval(charger: ChargerSession, harness_settings: Settings) -> None:
    """CORE-1: Heartbeat at the interval of BootNotification.conf (OCPP 1.6 §4.6, §6.4)."""
    interval = harness_settings.heartbeat_interval
    slack = max(1.0, 0.25 * interval)
    earlier = charger.received("Heartbeat", since=0)
    since = earlier[-1].seq if earlier else None
    first = earlier[-1] if earlier else await charger.expect("Heartbeat", within=2 * interval + slack)
    second = await charger.expect(
        "Heartbeat", where=lambda c: c.seq > first.seq, within=interval + slack, since=since or first.seq
    )
    gap = second.mono - first.mono
    charger.note(f"heartbeat interval given: {interval} s; measured: {gap:.2f} s")
    assert gap >= 0.5 * interval, f"expected heartbeats every {interval} s; two came {gap:.2f} s apart (too often)"
    assert gap <= interval + slack, f"expected heartbeats every {interval} s; two came {gap:.2f} s apart"


@pytest.mark.requirement("CORE-1")
async def test_status_for_every_connector_after_boot(charger: ChargerSession) -> None:
    """CORE-1: after boot, a StatusNotification for connector 0 and for each connector (OCPP 1.6 §4.9;
    OCTT TC_001_CS)."""
    config = await charger.call_raw("GetConfiguration", {"key": ["NumberOfConnectors"]})
    values = {e.get("key"): e.get("value") for e in config.get("configurationKey", [])}
    raw = values.get("NumberOfConnectors")
    assert raw is not None and str(raw).isdigit(), (
        f"expected GetConfiguration to report NumberOfConnectors (a core key, OCPP 1.6 §9.1); got {config}"
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
