"""SC-1 and SC-2: charging profiles, and turning the charger on and off (OCPP 1.6 §3.13, §5.5, §5.7, §5.11,
§5.12, §5.16; OCTT TC_010/011/012, TC_057, TC_058_1, TC_066, TC_067).

SC-1 is an OR requirement: the charger accepts SetChargingProfile with purpose TxProfile OR
ChargePointMaxProfile. Each alternative has its own test, which records its alternative in
details["alternative"] even when it fails, so the report passes SC-1 when either held and names it.

SC-2 is judged on what the EV draws (the power the charger meters), never on the status it reports:
statuses are ST-4's job, so a charger that reports the wrong status under a 0 A limit fails ST-4 only.
The limit goes in as a TxProfile when the charger takes one, else as a ChargePointMaxProfile on
connector 0 (the SC-1 alternatives), always in amps: the platform works in A.

The meter and limit helpers it shares with the status suite (ST-2, ST-4) are in harness/limits.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from harness.errors import CallErrorReceived
from harness.flows import start_charging, stop_charging
from harness.limits import (
    CHARGING_W,
    CP_MAX_PROFILE,
    CP_MAX_PROFILE_ID,
    MIN_PILOT_CURRENT,
    NOMINAL_VOLTAGE,
    PROBE_LIMIT_A,
    SIX_AMP_TOLERANCE,
    TX_PROFILE,
    TX_PROFILE_ID,
    LimitRefused,
    NoPowerData,
    Reading,
    apply_limit,
    charging_profile,
    configure_meter,
    lift_limit,
    near_zero,
    reading_bound,
    set_profile,
    wait_reading,
)
from harness.session import ChargerSession
from harness.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

@dataclass(frozen=True)
class Composite:
    """The limit at the start of a GetCompositeSchedule answer, in A per phase (None: none reported)."""

    amps: Decimal | None
    reported: bool  # False: Rejected or CALLERROR, the charger could not report one
    text: str


async def composite_limit(charger: ChargerSession, connector: int, duration: int = 300) -> Composite:
    """§5.7 GetCompositeSchedule in A (or, if the charger refuses A, in its own unit converted to A)."""
    answers: list[str] = []
    for unit in ("A", None):
        payload: dict[str, Any] = {"connectorId": connector, "duration": duration}
        if unit:
            payload["chargingRateUnit"] = unit
        try:
            answer = await charger.call_raw("GetCompositeSchedule", payload)
        except CallErrorReceived as exc:
            answers.append(f"CALLERROR {exc.code}")
            continue
        if answer.get("status") != "Accepted":
            answers.append(str(answer.get("status")))
            continue
        schedule = answer.get("chargingSchedule")
        if not isinstance(schedule, dict):
            return Composite(None, True, f"Accepted without a chargingSchedule: {answer}")
        periods = [p for p in schedule.get("chargingSchedulePeriod") or [] if isinstance(p, dict)]
        first = [p for p in periods if isinstance(p.get("startPeriod"), int) and p["startPeriod"] <= 5]
        if not first:
            return Composite(None, True, f"Accepted, no period in force at its start: {schedule}")
        period = max(first, key=lambda p: p["startPeriod"])
        limit = Decimal(str(period.get("limit")))
        rate_unit = schedule.get("chargingRateUnit")
        if rate_unit == "W":
            phases = int(period.get("numberPhases") or 3)  # §7.14: 3 unless another number is given
            amps = limit / (phases * NOMINAL_VOLTAGE)
            return Composite(amps, True, f"{limit} W on {phases} phase(s) ≈ {amps:.1f} A")
        return Composite(limit, True, f"{limit} A")
    return Composite(None, False, " / ".join(answers))


async def check_composite(charger: ChargerSession, connector: int, limit: Decimal, what: str) -> Composite:
    """GetCompositeSchedule shows at most `limit` A now; a charger that cannot report one is noted, not failed
    (§5.7: "If the Charge Point is not able to report the requested schedule ... Rejected")."""
    found = await composite_limit(charger, connector)
    if not found.reported:
        charger.note(f"GetCompositeSchedule on connector {connector} with {what}: not reported ({found.text})")
        return found
    assert found.amps is not None, (
        f"expected GetCompositeSchedule on connector {connector} to show the {limit} A {what} "
        f"(OCPP 1.6 §5.7); it answered {found.text}"
    )
    assert found.amps <= limit * Decimal("1.01"), (
        f"expected GetCompositeSchedule on connector {connector} to show at most the {limit} A {what} "
        f"(OCPP 1.6 §5.7); it shows {found.text}"
    )
    charger.note(f"GetCompositeSchedule on connector {connector} with {what}: {found.text}")
    return found


async def check_restored(charger: ChargerSession, connector: int, limit: Decimal, before: Composite) -> None:
    """After ClearChargingProfile the composite schedule is back to what it was before the profile."""
    after = await composite_limit(charger, connector)
    charger.note(f"GetCompositeSchedule on connector {connector} after ClearChargingProfile: {after.text} "
                 f"(before the profile: {before.text})")
    if after.amps is None:
        return  # nothing reported, or no limit at all: no limit of ours left in it
    back = before.amps is not None and abs(after.amps - before.amps) <= Decimal("0.1")
    assert back or after.amps > limit + Decimal("0.05"), (
        f"expected ClearChargingProfile to lift the {limit} A limit (OCPP 1.6 §5.5; OCTT TC_067_CS): "
        f"GetCompositeSchedule on connector {connector} still shows {after.text} (before the profile: {before.text})"
    )


# === SC-1 ========================================================================================


@pytest.mark.requirement("SC-1")
async def test_txprofile_accepted_during_a_transaction(charger: ChargerSession) -> None:
    """SC-1, alternative TxProfile: SetChargingProfile TxProfile for the running transaction is Accepted,
    GetCompositeSchedule shows it, ClearChargingProfile removes it (OCPP 1.6 §3.13.4, §5.16, §5.7, §5.5;
    OCTT TC_057_CS, TC_066_CS, TC_067_CS)."""
    charger.details["alternative"] = TX_PROFILE  # recorded even if it fails: the other alternative may hold
    session = await start_charging(charger)
    before = await composite_limit(charger, session.connector)
    status = await set_profile(
        charger, session.connector,
        charging_profile(TX_PROFILE_ID, TX_PROFILE, PROBE_LIMIT_A, session.transaction_id),
    )
    assert status == "Accepted", (
        f"expected SetChargingProfile TxProfile ({PROBE_LIMIT_A} A, transaction {session.transaction_id}) "
        f"to be Accepted during the transaction (OCPP 1.6 §5.16; OCTT TC_057_CS); it answered {status}. "
        "(SC-1 still passes if ChargePointMaxProfile is Accepted.)"
    )
    await check_composite(charger, session.connector, PROBE_LIMIT_A, "TxProfile")
    answer = await charger.call_raw("ClearChargingProfile", {"id": TX_PROFILE_ID})
    assert answer.get("status") == "Accepted", (
        f"expected ClearChargingProfile(id={TX_PROFILE_ID}) of the TxProfile just set to be Accepted "
        f"(OCPP 1.6 §5.5; OCTT TC_067_CS); it answered {answer}"
    )
    await check_restored(charger, session.connector, PROBE_LIMIT_A, before)


@pytest.mark.requirement("SC-1")
async def test_charge_point_max_profile_accepted(charger: ChargerSession) -> None:
    """SC-1, alternative ChargePointMaxProfile: SetChargingProfile ChargePointMaxProfile on connector 0 is
    Accepted, GetCompositeSchedule shows it, ClearChargingProfile removes it (OCPP 1.6 §3.13.1, §5.16,
    §5.7, §5.5; OCTT TC_066_CS, TC_067_CS)."""
    charger.details["alternative"] = CP_MAX_PROFILE  # recorded even if it fails: the other alternative may hold
    # §5.7: connector 0 reports what the whole charge point may draw; a charger that reports per
    # connector only is read on connector 1 (the ChargePointMaxProfile caps it too, §3.13.2).
    connector = 0
    before = await composite_limit(charger, 0)
    if not before.reported:
        connector = 1
        before = await composite_limit(charger, 1)
    status = await set_profile(charger, 0, charging_profile(CP_MAX_PROFILE_ID, CP_MAX_PROFILE, PROBE_LIMIT_A))
    assert status == "Accepted", (
        f"expected SetChargingProfile ChargePointMaxProfile ({PROBE_LIMIT_A} A) on connector 0 to be Accepted "
        f"(OCPP 1.6 §5.16); it answered {status}. (SC-1 still passes if TxProfile is Accepted.)"
    )
    await check_composite(charger, connector, PROBE_LIMIT_A, "ChargePointMaxProfile")
    answer = await charger.call_raw("ClearChargingProfile", {"id": CP_MAX_PROFILE_ID})
    assert answer.get("status") == "Accepted", (
        f"expected ClearChargingProfile(id={CP_MAX_PROFILE_ID}) of the ChargePointMaxProfile just set to be "
        f"Accepted (OCPP 1.6 §5.5; OCTT TC_067_CS); it answered {answer}"
    )
    await check_restored(charger, connector, PROBE_LIMIT_A, before)


@pytest.mark.requirement("SC-1")
async def test_txprofile_without_transaction_is_refused(charger: ChargerSession) -> None:
    """SC-1 (advisory, outside ev.energy's list): a TxProfile with no transaction on the connector is
    Rejected, or answered with a CALLERROR (OCPP 1.6 §3.13.4; OCTT TC_058_1_CS)."""
    charger.details["advisory"] = True  # a finding for the report; never changes SC-1's verdict
    assert not [t for t in charger.active_transactions() if t.connector_id == 1], "connector 1 is not idle"
    status = await set_profile(charger, 1, charging_profile(TX_PROFILE_ID, TX_PROFILE, PROBE_LIMIT_A))
    charger.note(f"TxProfile without a transaction: {status}")
    assert status != "Accepted", (
        "expected a TxProfile without a transaction on connector 1 to be Rejected or answered with a CALLERROR "
        "(OCPP 1.6 §3.13.4: it is only valid during a transaction; OCTT TC_058_1_CS); it was Accepted"
    )


# === SC-2 ========================================================================================


async def _judged(wait: Any, what: str) -> Reading:
    """Await a wait_reading; samples that cannot settle it make the test "not tested", never "failed"."""
    try:
        return await wait
    except NoPowerData as exc:
        pytest.skip(f"not tested: SC-2 is judged on metered power and {what} could not be seen: {exc} "
                    "(MV-1, CFG-1 and CFG-2 judge the samples)")


async def _charging_with_power(charger: ChargerSession, settings: Settings):  # type: ignore[no-untyped-def]
    """Configure the meter, start a session, and wait for the EV to draw power: (session, Reading)."""
    await configure_meter(charger, settings)
    session = await start_charging(charger)
    unlimited = await _judged(wait_reading(
        charger, session.connector, lambda r: r.watts > CHARGING_W, since=session.since,
        within=reading_bound(settings), what=f"a MeterValues showing the EV drawing power (> {CHARGING_W} W)",
    ), "the EV drawing power")
    charger.note(f"unlimited: {unlimited.describe()}")
    return session, unlimited


def _limit_refused(exc: LimitRefused) -> None:
    pytest.fail(
        f"expected the platform to be able to limit the charger (SetChargingProfile in A, TxProfile or "
        f"ChargePointMaxProfile, OCPP 1.6 §5.16): {exc}. Without that the platform cannot turn it off.",
        pytrace=False,
    )


@pytest.mark.requirement("SC-2")
async def test_zero_amps_stops_the_power_and_lifting_resumes_it(charger: ChargerSession, harness_settings: Settings) -> None:
    """SC-2: a 0 A limit makes the power drop to ≈ 0 within a bound; lifting it (ClearChargingProfile)
    makes the EV draw power again (OCPP 1.6 §3.13, §5.16, §5.5)."""
    settings = harness_settings
    session, unlimited = await _charging_with_power(charger, settings)
    mark = charger.trace.next_seq
    try:
        applied = await apply_limit(charger, session.connector, session.transaction_id, 0)
    except LimitRefused as exc:
        _limit_refused(exc)
    limited_at = time.monotonic()
    bound = reading_bound(settings)
    off = await _judged(wait_reading(
        charger, session.connector, lambda r: near_zero(r.watts, unlimited.watts), since=mark, within=bound,
        what=f"the power to drop to ≈ 0 W under the 0 A {applied.purpose}",
    ), "the effect of the 0 A limit")
    charger.note(f"0 A as {applied.purpose} on connector {applied.connector}: {off.describe()}, "
                 f"{off.call.mono - limited_at:.1f} s after the limit was Accepted")
    mark = charger.trace.next_seq
    how = await lift_limit(charger, applied)
    on = await _judged(wait_reading(
        charger, session.connector, lambda r: r.watts > CHARGING_W, since=mark, within=bound,
        what=f"the EV to draw power again (> {CHARGING_W} W) after {how}",
    ), "the effect of lifting the limit")
    charger.note(f"after {how}: {on.describe()}")


def six_amps(reading: Reading, unlimited: Reading) -> tuple[bool, str]:
    """Does `reading` show the EV drawing ≈ 6 A per phase? (judgement, explanation)

    With Current.Import per phase, each phase that carries current must be at 6 A ± tolerance: the
    limit is a current, and that is its direct measure. Otherwise the power must be phases × V × 6 A ±
    tolerance, with V from the charger's Voltage samples (230 V without) and the phases those that
    carried current without the limit, or else the phase count (1..3) closest to the power.
    """
    low, high = MIN_PILOT_CURRENT * (1 - SIX_AMP_TOLERANCE), MIN_PILOT_CURRENT * (1 + SIX_AMP_TOLERANCE)
    per_phase = reading.per_phase
    if per_phase:
        drawing = {p: a for p, a in per_phase.items() if a >= 1}
        ok = bool(drawing) and all(low <= a <= high for a in drawing.values())
        shown = ", ".join(f"{p} {a} A" for p, a in sorted(per_phase.items()))
        return ok, f"current per phase {shown} (expected {low:.1f}..{high:.1f} A on each phase drawing)"
    assert reading.watts is not None
    volts = reading.voltage
    phases = unlimited.phases_drawing
    source = "phases measured without the limit"
    if not phases:
        phases = min(3, max(1, round(reading.watts / (volts * MIN_PILOT_CURRENT))))
        source = "phase count closest to the power"
    target = phases * volts * MIN_PILOT_CURRENT
    ok = abs(reading.watts - target) <= SIX_AMP_TOLERANCE * target
    return ok, (f"{reading.watts:.0f} W, expected {phases} × {volts:.0f} V × 6 A = {target:.0f} W "
                f"± {SIX_AMP_TOLERANCE:.0%} ({source})")


@pytest.mark.requirement("SC-2")
async def test_six_amps_limit_the_power(charger: ChargerSession, harness_settings: Settings) -> None:
    """SC-2: a 6 A limit makes the EV draw ≈ 6 A per phase, i.e. power ≈ phases × V × 6 A (phases and
    voltage learnt from the charger's own samples; 230 V if it reports none) (OCPP 1.6 §3.13, §5.16)."""
    settings = harness_settings
    session, unlimited = await _charging_with_power(charger, settings)
    mark = charger.trace.next_seq
    try:
        applied = await apply_limit(charger, session.connector, session.transaction_id, MIN_PILOT_CURRENT)
    except LimitRefused as exc:
        _limit_refused(exc)
    limited = await _judged(wait_reading(
        charger, session.connector, lambda r: six_amps(r, unlimited)[0], since=mark, within=reading_bound(settings),
        what=f"the EV to settle at ≈ 6 A per phase (phases × V × 6 A) under the 6 A {applied.purpose}",
    ), "the effect of the 6 A limit")
    charger.note(f"6 A as {applied.purpose}: {limited.describe()}; {six_amps(limited, unlimited)[1]}")


@pytest.mark.requirement("SC-2")
async def test_remote_start_and_stop(charger: ChargerSession, harness_settings: Settings) -> None:
    """SC-2: RemoteStartTransaction starts a session in which the EV draws power; RemoteStopTransaction
    stops it (OCPP 1.6 §5.11, §5.12; OCTT TC_010_CS, TC_012_CS)."""
    settings = harness_settings
    await configure_meter(charger, settings)
    session = await start_charging(charger, remote=True)
    assert session.start.get("idTag") == charger.platform.id_tag, (
        f"expected the remotely started transaction to carry the idTag {charger.platform.id_tag!r} of RemoteStartTransaction "
        f"(OCPP 1.6 §5.11); StartTransaction has {session.start.get('idTag')!r}"
    )
    try:
        on = await wait_reading(
            charger, session.connector, lambda r: r.watts > CHARGING_W, since=session.since,
            within=reading_bound(settings), what=f"a MeterValues showing the EV drawing power (> {CHARGING_W} W)",
        )
        charger.note(f"after RemoteStartTransaction: {on.describe()}")
    except NoPowerData as exc:
        charger.note(f"power not checked ({exc}; MV-1 judges that)")
    stop = await stop_charging(charger, session, remote=True, unplug=False)
    if stop.get("reason") not in (None, "Remote"):
        charger.note(f"StopTransaction reason {stop.get('reason')!r} after RemoteStopTransaction (expected Remote)")
