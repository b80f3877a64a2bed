"""SC-1 and SC-2: charging profiles, and turning the charger on and off (OCPP 1.6 §3.13, §5.5, §5.7, §5.11,
§5.12, §5.16; OCTT TC_010/011/012, TC_057, TC_058_1, TC_066, TC_067).

SC-1 is an OR requirement: the charger accepts SetChargingProfile with purpose TxProfile OR
ChargePointMaxProfile. It is judged only on the SetChargingProfile answers. Each of the two tests tries
its own purpose first and, if that is refused, the other one: it passes when either is Accepted and
records in details["alternative"] the one that held (the report names it). The refused purpose, and
GetCompositeSchedule / ClearChargingProfile answers that do not show the profile, are ADV-3 advisory
findings: they never fail SC-1. Limits go in the unit the charger declares in
ChargingScheduleAllowedChargingRateUnit (A where it allows Current, W where it allows only Power); if
that unit is refused the other is tried and the evidence says so.

SC-2 is judged on what the EV draws, from every measurand the charger sends (Power.Active.Import;
Current.Import with Voltage; the Energy.Active.Import.Register's rise), and only from readings measured
after the charger had a fair time to act (the settling window of docs/rules-metering.md); the
evidence (details["readings"]) lists the readings used and those ignored as too early. Statuses are
ST-4's job, so a charger that reports the wrong status under a 0 limit fails ST-4 only. The limit goes in
as a TxProfile when the charger takes one, else as a ChargePointMaxProfile on connector 0.

The meter and limit helpers it shares with the status suite (ST-2, ST-4) are in harness/limits.py (the acts),
harness/judges.py and harness/readings.py (sans-I/O).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from ocpp.charge_point import snake_to_camel_case
from ocpp.v16 import call
from ocpp.v16.enums import (
    ChargingProfileStatus,
    ChargingRateUnitType,
    ClearChargingProfileStatus,
    GetCompositeScheduleStatus,
)

from harness import ocppj
from harness.errors import CallErrorReceived
from harness.flows import Charging, start_charging, stop_charging
from harness.judges import (
    MIN_PILOT_CURRENT,
    NOMINAL_VOLTAGE,
    RULES,
    judge_off,
    judge_on,
    judge_six_amps,
    six_amp_expectation,
    zero_floor,
)
from harness.limits import (
    CP_MAX_PROFILE,
    CP_MAX_PROFILE_ID,
    PROBE_LIMIT_A,
    TX_PROFILE,
    TX_PROFILE_ID,
    WATTS,
    Electrical,
    LimitRefused,
    NoPowerData,
    ProfileAnswer,
    apply_limit,
    configure_meter,
    lift_limit,
    reading_bound,
    set_limit,
    wait_observed,
    wait_reading,
)
from harness.readings import Reading
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
    unit: ChargingRateUnitType | None
    for unit in (ChargingRateUnitType.amps, None):
        try:
            answer = await charger.call(call.GetCompositeSchedule(
                connector_id=connector, duration=duration, charging_rate_unit=unit))
        except CallErrorReceived as exc:
            answers.append(f"CALLERROR {exc.code}")
            continue
        if answer.status != GetCompositeScheduleStatus.accepted:
            answers.append(str(answer.status))
            continue
        # chargingSchedule is a dict in the dataclass, its keys snake_case (the harness converts the answer);
        # the texts quote it as the charger sent it (camelCase).
        schedule = answer.charging_schedule
        if not isinstance(schedule, dict):
            return Composite(None, True, f"Accepted without a chargingSchedule: {ocppj.payload_of(answer)}")
        periods = [p for p in schedule.get("charging_schedule_period") or [] if isinstance(p, dict)]
        first = [p for p in periods if isinstance(p.get("start_period"), int) and p["start_period"] <= 5]
        if not first:
            return Composite(None, True, f"Accepted, no period in force at its start: {snake_to_camel_case(schedule)}")
        period = max(first, key=lambda p: p["start_period"])
        limit = Decimal(str(period.get("limit")))
        rate_unit = schedule.get("charging_rate_unit")
        if rate_unit == ChargingRateUnitType.watts:
            phases = int(period.get("number_phases") or 3)  # §7.14: 3 unless another number is given
            amps = limit / (phases * NOMINAL_VOLTAGE)
            return Composite(amps, True, f"{limit} W on {phases} phase(s) ≈ {amps:.1f} A")
        return Composite(limit, True, f"{limit} A")
    return Composite(None, False, " / ".join(answers))


async def check_composite(charger: ChargerSession, connector: int, limit: Decimal, what: str) -> Composite:
    """GetCompositeSchedule shows at most `limit` A now. Anything else (Rejected, empty, another limit) is
    an ADV-3 finding, never an SC-1 failure: SC-1 is judged on the SetChargingProfile answers alone
    (§5.7: "If the Charge Point is not able to report the requested schedule ... Rejected")."""
    found = await composite_limit(charger, connector)
    if not found.reported:
        charger.advise("ADV-3", f"GetCompositeSchedule on connector {connector} with the {limit} A {what} in force: "
                                f"not reported ({found.text}; OCPP 1.6 §5.7)")
    elif found.amps is None:
        charger.advise("ADV-3", f"GetCompositeSchedule on connector {connector} does not show the {limit} A {what} "
                                f"(OCPP 1.6 §5.7): it answered {found.text}")
    elif found.amps > limit * Decimal("1.01"):
        charger.advise("ADV-3", f"GetCompositeSchedule on connector {connector} shows more than the {limit} A {what} "
                                f"(OCPP 1.6 §5.7): {found.text}")
    else:
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
    if not (back or after.amps > limit + Decimal("0.05")):
        charger.advise("ADV-3", f"after ClearChargingProfile, GetCompositeSchedule on connector {connector} still "
                                f"shows {after.text} (before the profile: {before.text}; OCPP 1.6 §5.5, §5.7)")


# === SC-1 ========================================================================================


async def _profile_accepted(charger: ChargerSession, settings: Settings, purpose: str,
                            session: list[Charging]) -> ProfileAnswer:
    """SetChargingProfile `purpose` with the SC-1 probe limit (a TxProfile needs a running transaction:
    started once, kept in `session`)."""
    if purpose == TX_PROFILE:
        if not session:
            session.append(await start_charging(charger))
        s = session[0]
        return await set_limit(charger, settings, TX_PROFILE, s.connector, PROBE_LIMIT_A, s.transaction_id)
    return await set_limit(charger, settings, CP_MAX_PROFILE, 0, PROBE_LIMIT_A)


async def _beyond_sc1(charger: ChargerSession, answer: ProfileAnswer, connector: int, before: Composite) -> None:
    """What the platform can also use (ADV-3, never SC-1): GetCompositeSchedule shows the profile, and
    ClearChargingProfile removes it."""
    profile_id = TX_PROFILE_ID if answer.purpose == TX_PROFILE else CP_MAX_PROFILE_ID
    await check_composite(charger, connector, PROBE_LIMIT_A, answer.purpose)
    try:
        cleared = str((await charger.call(call.ClearChargingProfile(id=profile_id))).status)
    except CallErrorReceived as exc:
        cleared = f"CALLERROR {exc.code}"
    if cleared != ClearChargingProfileStatus.accepted:
        charger.advise("ADV-3", f"ClearChargingProfile(id={profile_id}) of the {answer.purpose} just set answered "
                                f"{cleared} (OCPP 1.6 §5.5; OCTT TC_067_CS)")
        return
    await check_restored(charger, connector, PROBE_LIMIT_A, before)


async def _sc1(charger: ChargerSession, settings: Settings, first: str) -> None:
    """SC-1 from the SetChargingProfile answers: `first`, else the other purpose. Passes when either is
    Accepted (details["alternative"] names it); the refused one is an ADV-3 finding; fails when both are
    refused."""
    other = CP_MAX_PROFILE if first == TX_PROFILE else TX_PROFILE
    charger.details["alternative"] = first  # until an answer says otherwise
    session: list[Charging] = []
    refused: list[ProfileAnswer] = []
    for purpose in (first, other):
        # §5.7: connector 0 reports what the whole charge point may draw; a charger that reports per
        # connector only is read on connector 1 (a ChargePointMaxProfile caps it too, §3.13.2).
        if purpose == TX_PROFILE:
            if not session:
                session.append(await start_charging(charger))
            connector = session[0].connector
            before = await composite_limit(charger, connector)
            answer = await _profile_accepted(charger, settings, purpose, session)
        else:
            connector = 0
            before = await composite_limit(charger, 0)
            if not before.reported:
                connector = 1
                before = await composite_limit(charger, 1)
            answer = await _profile_accepted(charger, settings, purpose, session)
        if answer.accepted:
            charger.details["alternative"] = purpose
            charger.note(f"SC-1 holds through {answer.describe()}")
            for no in refused:
                charger.advise("ADV-3", f"SetChargingProfile {no.describe()}: refused; not needed, SC-1 holds "
                                        f"through {purpose} (OCPP 1.6 §5.16)")
            await _beyond_sc1(charger, answer, connector, before)
            return
        refused.append(answer)
    pytest.fail(
        "expected SetChargingProfile with purpose TxProfile (during a transaction) or ChargePointMaxProfile "
        f"(connector 0) to be Accepted (SC-1; OCPP 1.6 §5.16); both were refused: "
        + "; ".join(a.describe() for a in refused),
        pytrace=False,
    )


@pytest.mark.requirement("SC-1")
async def test_txprofile_accepted_during_a_transaction(charger: ChargerSession, harness_settings: Settings) -> None:
    """SC-1, TxProfile first: SetChargingProfile TxProfile for the running transaction is Accepted (else
    ChargePointMaxProfile, the other alternative); GetCompositeSchedule and ClearChargingProfile are ADV-3
    findings (OCPP 1.6 §3.13.4, §5.16, §5.7, §5.5; OCTT TC_057_CS, TC_066_CS, TC_067_CS)."""
    await _sc1(charger, harness_settings, TX_PROFILE)


@pytest.mark.requirement("SC-1")
async def test_charge_point_max_profile_accepted(charger: ChargerSession, harness_settings: Settings) -> None:
    """SC-1, ChargePointMaxProfile first: SetChargingProfile ChargePointMaxProfile on connector 0 is
    Accepted (else TxProfile during a transaction, the other alternative); GetCompositeSchedule and
    ClearChargingProfile are ADV-3 findings (OCPP 1.6 §3.13.1, §5.16, §5.7, §5.5; OCTT TC_066_CS, TC_067_CS)."""
    await _sc1(charger, harness_settings, CP_MAX_PROFILE)


@pytest.mark.requirement("SC-1")
async def test_txprofile_without_transaction_is_refused(charger: ChargerSession, harness_settings: Settings) -> None:
    """SC-1 (advisory, outside ev.energy's list): a TxProfile with no transaction on the connector is
    Rejected, or answered with a CALLERROR (OCPP 1.6 §3.13.4; OCTT TC_058_1_CS)."""
    charger.details["advisory"] = True  # a finding for the report; never changes SC-1's verdict
    assert not [t for t in charger.active_transactions() if t.connector_id == 1], "connector 1 is not idle"
    answer = await set_limit(charger, harness_settings, TX_PROFILE, 1, PROBE_LIMIT_A)
    status = answer.status
    charger.note(f"TxProfile without a transaction: {answer.describe()}")
    assert status != ChargingProfileStatus.accepted, (
        "expected a TxProfile without a transaction on connector 1 to be Rejected or answered with a CALLERROR "
        "(OCPP 1.6 §3.13.4: it is only valid during a transaction; OCTT TC_058_1_CS); it was Accepted"
    )


# === SC-2 ========================================================================================


async def _judged(wait: Any, what: str) -> Reading:
    """Await a wait_reading; samples that cannot settle it make the test "not tested", never "failed"."""
    try:
        return await wait
    except NoPowerData as exc:
        pytest.skip(f"not tested: SC-2 is judged on the metered power, current or energy, and {what} could not be "
                    f"seen: {exc} (MV-1, CFG-1 and CFG-2 judge the samples)")


async def _charging_with_power(charger: ChargerSession, settings: Settings) -> tuple[Charging, Reading, Decimal | None]:
    """Configure the meter, start a session, and wait for the EV to draw power: (session, the Reading, the
    power it showed: its power reading, or the register's rate for a charger that sends only energy)."""
    await configure_meter(charger, settings)
    session = await start_charging(charger)
    try:
        seen = await wait_observed(
            charger, session.connector, judge_on(), since=session.since, answered=session.start.mono, settle=0,
            within=reading_bound(settings), what="a MeterValues showing the EV drawing power", phases=settings.phases,
        )
    except NoPowerData as exc:
        pytest.skip(f"not tested: SC-2 is judged on the metered power, current or energy, and the EV drawing power "
                    f"could not be seen: {exc} (MV-1, CFG-1 and CFG-2 judge the samples)")
    assert seen.result is not None
    charger.note(f"unlimited: {seen.result.describe()}")
    return session, seen.result, seen.result_watts


def _limit_refused(exc: LimitRefused) -> None:
    pytest.fail(
        f"expected the platform to be able to limit the charger (SetChargingProfile TxProfile or "
        f"ChargePointMaxProfile in a unit it declares, OCPP 1.6 §5.16): {exc}. Without that the platform cannot "
        "turn it off.",
        pytrace=False,
    )


@pytest.mark.requirement("SC-2")
async def test_zero_amps_stops_the_power_and_lifting_resumes_it(charger: ChargerSession, harness_settings: Settings) -> None:
    """SC-2: a 0 limit makes the power drop to ≈ 0 (power, current and the register's rise, in readings
    measured after the settling window); lifting it (ClearChargingProfile) makes the EV draw power again
    (OCPP 1.6 §3.13, §5.16, §5.5; docs/rules-metering.md)."""
    settings = harness_settings
    session, unlimited, reference = await _charging_with_power(charger, settings)
    mark = charger.trace.next_seq
    try:
        applied = await apply_limit(charger, session.connector, session.transaction_id, 0, settings,
                                    electrical=Electrical.of(settings, unlimited))
    except LimitRefused as exc:
        _limit_refused(exc)
    bound = reading_bound(settings)
    floor = zero_floor(unlimited, reference)
    off = await _judged(wait_reading(
        charger, session.connector, judge_off(floor), since=mark, answered=applied.answered, within=bound,
        what=f"the power to drop to ≈ 0 (≤ {floor:.0f} W) under the 0 {applied.unit} {applied.purpose}",
        phases=settings.phases,
    ), "the effect of the 0 limit")
    charger.note(f"0 {applied.unit} as {applied.purpose} on connector {applied.connector}: {off.describe()}, "
                 f"{off.call.mono - applied.answered:.1f} s after the limit was Accepted ({RULES})")
    mark = charger.trace.next_seq
    how, lifted = await lift_limit(charger, applied, settings)
    on = await _judged(wait_reading(
        charger, session.connector, judge_on(), since=mark, answered=lifted, within=bound,
        what=f"the EV to draw power again after {how}", phases=settings.phases,
    ), "the effect of lifting the limit")
    charger.note(f"after {how}: {on.describe()}")


@pytest.mark.requirement("SC-2")
async def test_six_amps_limit_the_power(charger: ChargerSession, harness_settings: Settings) -> None:
    """SC-2: a 6 A limit (or its W equivalent for a charger that takes only W) makes the EV draw ≈ 6 A per
    phase: the current per phase, or power ≈ phases × V × 6 A with the phases from the readings' phase
    fields or the charger profile, never guessed (OCPP 1.6 §3.13, §5.16; docs/rules-metering.md)."""
    settings = harness_settings
    session, unlimited, _ = await _charging_with_power(charger, settings)
    mark = charger.trace.next_seq
    try:
        applied = await apply_limit(charger, session.connector, session.transaction_id, MIN_PILOT_CURRENT, settings,
                                    electrical=Electrical.of(settings, unlimited))
    except LimitRefused as exc:
        _limit_refused(exc)
    expected = six_amp_expectation(unlimited, settings.phases, settings.nominal_voltage,
                                   applied.limit if applied.unit == WATTS else None)
    limited = await _judged(wait_reading(
        charger, session.connector, judge_six_amps(expected), since=mark, answered=applied.answered,
        within=reading_bound(settings), phases=settings.phases,
        what=f"the EV to settle at ≈ 6 A per phase ({expected.describe()}) under the {applied.limit} {applied.unit} "
             f"{applied.purpose}",
    ), "the effect of the 6 A limit")
    charger.note(f"{applied.limit} {applied.unit} as {applied.purpose}: {limited.describe()}")


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
            charger, session.connector, judge_on(), since=session.since, answered=session.start.mono, settle=0,
            within=reading_bound(settings), what="a MeterValues showing the EV drawing power", phases=settings.phases,
        )
        charger.note(f"after RemoteStartTransaction: {on.describe()}")
    except NoPowerData as exc:
        charger.note(f"power not checked ({exc}; MV-1 judges that)")
    stop = await stop_charging(charger, session, remote=True, unplug=False)
    if stop.get("reason") not in (None, "Remote"):
        charger.note(f"StopTransaction reason {stop.get('reason')!r} after RemoteStopTransaction (expected Remote)")
