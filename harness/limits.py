"""Power readings and charging limits, as the smart-charging and status suites use them: the acts.

SC-2 (the limit takes effect) and ST-2/ST-4 (the statuses that go with it) need the same acts: choose
what the meter reports (MeterValuesSampledData), wait for readings *measured after the charger had a fair
time to act* that settle the question (`observe`, `wait_observed`), and set or lift a limit in a unit the
charger declares (ChargingScheduleAllowedChargingRateUnit) as a TxProfile or, if the charger takes only
that, a ChargePointMaxProfile (the SC-1 alternatives).

What a MeterValues says (Power.Active.Import; Current.Import with Voltage; the Energy.Active.Import.Register's
rise over time) is read in harness/readings.py; the judges and the settling window are sans-I/O, in
harness/judges.py. The judgement rules are written down for users in docs/rules-metering.md.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ocpp.v16 import call
from ocpp.v16.enums import (
    ChargingProfileKindType,
    ChargingProfilePurposeType,
    ChargingProfileStatus,
    ChargingRateUnitType,
    ClearChargingProfileStatus,
    ConfigurationStatus,
    MessageTrigger,
    TriggerMessageStatus,
)

from harness import spec16
from harness.errors import CallErrorReceived, ExpectationTimeout, NoAnswer
from harness.flows import change_configuration, configured_value
from harness.judges import ENERGY_SPAN_MAX, NOMINAL_VOLTAGE, RULES, Judge, Observation, State, evaluate
from harness.readings import Reading, read
from harness.session import ChargerSession, ReceivedCall
from harness.settings import Settings

TX_PROFILE = ChargingProfilePurposeType.tx_profile
CP_MAX_PROFILE = ChargingProfilePurposeType.charge_point_max_profile
TX_PROFILE_ID = 9101  # the harness's own profile ids, so ClearChargingProfile(id) touches nothing else
CP_MAX_PROFILE_ID = 9102
DEFAULT_PHASES = 3  # §7.14 numberPhases: "numberPhases=3 will be assumed unless another number is given"
PROBE_LIMIT_A = Decimal(8)  # SC-1's limit: well under any charger's rating, above the 6 A minimum
LIFT_LIMIT_A = Decimal(32)  # what the platform sets to switch back on when ClearChargingProfile is refused

# MeterValuesSampledData the suites ask for, most informative first (CFG-1 judges this key; here it
# only serves to see power). Per-phase current and voltage let SC-2 learn the phases and the voltage.
SAMPLED_DATA_CHOICES = (
    "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage",
    "Energy.Active.Import.Register,Power.Active.Import",
    "Energy.Active.Import.Register,Current.Import,Voltage",
)

# The settling window (docs/rules-metering.md "SC-2"): IEC 61851-1 gives the EV up to 5 s to follow a
# change of the PWM duty cycle (the offered current). A reading counts as the charger's answer to a
# limit only if it was measured at least this long (× the timeout factor) after the charger answered
# SetChargingProfile / ClearChargingProfile; earlier ones are shown in the evidence as "too early".
SETTLE = 5.0
NUDGE_EVERY = 2.0  # s between TriggerMessage MeterValues while waiting (when the charger does them)


def reading_bound(settings: Settings) -> float:
    """How long a change may take to show in the samples: the settling allowance, then two sample
    intervals, plus slack (before the timeout factor)."""
    return SETTLE + 2 * settings.meter_sample_interval + 10


# --- meter ----------------------------------------------------------------------------------------


async def configure_meter(charger: ChargerSession, settings: Settings) -> str | None:
    """Ask for periodic samples of power (or current and voltage) at the run's interval, before a session.

    Returns the MeterValuesSampledData value the charger accepted, or None (it keeps its own list).
    The `charger` fixture puts both keys back after the test.
    """
    interval = str(settings.meter_sample_interval)
    status = await change_configuration(charger, "MeterValueSampleInterval", interval)
    if status != ConfigurationStatus.accepted:
        charger.note(f"MeterValueSampleInterval={interval} answered {status} (CFG-2 judges this)")
    refused: list[str] = []
    for value in SAMPLED_DATA_CHOICES:
        status = await change_configuration(charger, "MeterValuesSampledData", value)
        if status == ConfigurationStatus.accepted:
            return value
        refused.append(f"{value}: {status}")
    charger.note("MeterValuesSampledData: no list with power or current+voltage was accepted (CFG-1 judges this): "
                 + "; ".join(refused))
    return None


class NoPowerData(Exception):
    """The samples cannot settle the question: none carried power, current or the energy register, or
    none was measured late enough after the change to show its effect. The check is "not tested"."""


_NUDGE_REFUSED: set[str] = set()  # charger ids that do not do TriggerMessage MeterValues


def _nudge_refused(charger: ChargerSession) -> bool:
    return charger.id in _NUDGE_REFUSED


async def nudge(charger: ChargerSession, connector: int) -> None:
    """Ask for a MeterValues now (TriggerMessage MeterValues, §5.17) so a reading need not wait for the next
    periodic sample. Only a shortcut: the answer is not judged, and periodic samples count as well."""
    if _nudge_refused(charger):
        return
    try:
        answer = await charger.call(
            call.TriggerMessage(requested_message=MessageTrigger.meter_values, connector_id=connector), timeout=5
        )
    except (CallErrorReceived, NoAnswer):
        _NUDGE_REFUSED.add(charger.id)
        return
    if answer.status != TriggerMessageStatus.accepted:
        _NUDGE_REFUSED.add(charger.id)


def record(charger: ChargerSession, observation: Observation) -> None:
    """The evidence of one observation, for the report (details["readings"])."""
    charger.details.setdefault("readings", []).append(observation.evidence())


async def observe(
    charger: ChargerSession, connector: int, judge: Judge, *, since: int, answered: float, settle: float,
    within: float, what: str, phases: int | None = None, patient: bool = True,
) -> Observation:
    """Collect the MeterValues of `connector` (from frame `since` on) until a reading measured ≥ `settle` s
    after `answered` (monotonic; already scaled) shows `what`, or until `within` s (before the timeout
    factor) after `answered`. Periodic samples count, and so do samples asked for with TriggerMessage
    MeterValues every NUDGE_EVERY s from the answer on (and when the window ends). Returns the Observation (its
    state YES, NO or UNKNOWN); the evidence is recorded in charger.details["readings"].
    """
    factor = charger.settings.timing.factor
    deadline = answered + within * factor
    cap = answered + settle + ENERGY_SPAN_MAX * factor
    readings: dict[int, Reading] = {}
    cursor = since
    last_nudge = float("-inf")

    def mine(call: ReceivedCall) -> bool:
        return bool(call.get("connectorId") == connector)  # bool(): the payload is Any to mypy

    # The last readings before the change: never evidence of its effect, but they show what held before it, so a
    # reading after the answer that shows the opposite can decide without waiting out the window (evaluate).
    for call in [c for c in charger.received("MeterValues") if c.seq < since and mine(c)][-3:]:
        readings[call.seq] = read(call, phases)
    while True:
        for call in charger.received("MeterValues", since=cursor):
            if mine(call):
                readings.setdefault(call.seq, read(call, phases))
        cursor = charger.trace.next_seq
        seen = evaluate(list(readings.values()), judge, answered=answered, settle=settle, what=what)
        if seen.result is not None:
            break
        now = time.monotonic()
        if patient and seen.used and (needs := seen.used[-1][1].more_time) > 0:
            # Only the register to go by: wait until its span can tell ≈ 0 from one step (bounded).
            deadline = max(deadline, min(cap, now + (needs + 2 * NUDGE_EVERY) * factor))
        if now >= deadline:
            break
        settled_from = answered + settle
        # Asked for from the answer on, not only once the settling window is over: a reading inside the window that
        # does not show the change yet is ignored (never held against the charger), one that shows it decides at
        # once (judges.evaluate); the charger that acts in 1 s is not made to wait out the window (60 s samples in
        # certification mode). One is asked for when the window ends, too: a failure needs a settled reading.
        if now - last_nudge >= NUDGE_EVERY * factor or (now >= settled_from > last_nudge):
            last_nudge = now
            await nudge(charger, connector)
        next_nudge = last_nudge + NUDGE_EVERY * factor
        if last_nudge < settled_from:
            next_nudge = min(next_nudge, settled_from)
        until = min(deadline, next_nudge)
        if _nudge_refused(charger):
            until = settled_from if now < settled_from else deadline
        step = max(until - time.monotonic(), 0.01)
        try:
            await charger.expect("MeterValues", where=mine, within=step / factor, since=cursor,
                                 describe=f"a MeterValues for connector {connector}")
        except ExpectationTimeout:
            pass
    record(charger, seen)
    return seen


async def wait_reading(
    charger: ChargerSession, connector: int, judge: Judge, *, since: int, answered: float | None = None,
    settle: float | None = None, within: float, what: str, phases: int | None = None, patient: bool = True,
) -> Reading:
    """`wait_observed`'s deciding reading."""
    return (await wait_observed(charger, connector, judge, since=since, answered=answered, settle=settle,
                                within=within, what=what, phases=phases, patient=patient)).result  # type: ignore[return-value]  # only a decided one (result set) returns


async def wait_observed(
    charger: ChargerSession, connector: int, judge: Judge, *, since: int, answered: float | None = None,
    settle: float | None = None, within: float, what: str, phases: int | None = None, patient: bool = True,
) -> Observation:
    """`observe`, as a verdict: the reading that showed `what`; ExpectationTimeout (listing the readings
    used and those ignored as too early) when settled readings showed otherwise; NoPowerData when no
    settled reading could tell."""
    factor = charger.settings.timing.factor
    answered = time.monotonic() if answered is None else answered
    settle = SETTLE * factor if settle is None else settle
    seen = await observe(charger, connector, judge, since=since, answered=answered, settle=settle,
                         within=within, what=what, phases=phases, patient=patient)
    if seen.result is not None:
        return seen
    if seen.state is State.NO:
        raise ExpectationTimeout(f"expected {what} ({RULES}); {seen.text()}")
    if not any(r.has_evidence for r, _ in seen.used) and not any(r.has_evidence for r in seen.early):
        raise NoPowerData(
            f"no MeterValues on connector {connector} carried Power.Active.Import, Current.Import or "
            f"Energy.Active.Import.Register ({len(seen.used) + len(seen.early)} MeterValues)"
        )
    if not seen.used:
        raise NoPowerData(f"no MeterValues was measured {settle:g} s or more after the change "
                          f"({len(seen.early)} earlier ones ignored; {RULES})")
    raise NoPowerData(f"the settled readings could not tell: {seen.used[-1][1].why}")


# --- charging profiles ----------------------------------------------------------------------------

AMPS = ChargingRateUnitType.amps
WATTS = ChargingRateUnitType.watts
_RATE_WORDS = {w.lower(): u for w, u in spec16.RATE_UNIT_WORDS.items()}  # "current" -> "A", "power" -> "W"
_RATE_UNITS: dict[str, tuple[tuple[str, ...], str]] = {}  # charger id -> (units in order of use, why)


async def rate_units(charger: ChargerSession) -> tuple[tuple[str, ...], str]:
    """The chargingRateUnits to use, first choice first, and why (ChargingScheduleAllowedChargingRateUnit,
    §9.4: "Current", "Power" or both). A where the charger allows Current (both or Current only), W
    where it allows only Power (SC-2's rule); the other unit second, tried only if the first is refused.
    A charger that does not report the key: A first (the platform works in A)."""
    if charger.id in _RATE_UNITS:
        return _RATE_UNITS[charger.id]
    try:
        raw = await configured_value(charger, "ChargingScheduleAllowedChargingRateUnit")
    except NoAnswer:
        raw = None
    declared = {_RATE_WORDS.get(w.strip().lower(), w.strip().upper()) for w in (raw or "").split(",") if w.strip()}
    declared &= {AMPS, WATTS}
    if declared == {WATTS}:
        result = ((WATTS, AMPS), f"ChargingScheduleAllowedChargingRateUnit = {raw!r}: limits in W")
    elif declared:
        result = ((AMPS, WATTS), f"ChargingScheduleAllowedChargingRateUnit = {raw!r}: limits in A")
    else:
        result = ((AMPS, WATTS), f"ChargingScheduleAllowedChargingRateUnit not reported ({raw!r}): limits in A first")
    _RATE_UNITS[charger.id] = result
    return result


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Electrical:
    """What turns a current limit into a power limit: phases and phase-to-neutral voltage."""

    phases: int
    volts: Decimal
    source: str

    @staticmethod
    def of(settings: Settings, reading: Reading | None = None) -> Electrical:
        phases = reading.phases_drawing if reading is not None else None
        source = "phases from the readings"
        if not phases:
            phases, source = settings.phases, "phases from the charger profile"
        if not phases:
            phases, source = DEFAULT_PHASES, "3 phases (OCPP 1.6 §7.14 numberPhases default)"
        volts = (reading.voltage if reading is not None else None) or (
            Decimal(str(settings.nominal_voltage)) if settings.nominal_voltage else NOMINAL_VOLTAGE)
        return Electrical(int(phases), volts, source)

    def value(self, amps: Decimal | int, unit: str) -> Decimal:
        amps = Decimal(amps)
        return amps if unit == AMPS else (amps * self.volts * self.phases).quantize(Decimal(1))


def charging_profile(profile_id: int, purpose: str, limit: Decimal | int, transaction_id: int | None = None,
                     *, unit: str = AMPS, number_phases: int | None = None) -> dict[str, Any]:
    """One flat limit in `unit`, in force from now on (an Absolute schedule started an hour ago, no end,
    so a charger clock off by minutes still applies it at once)."""
    period: dict[str, Any] = {"startPeriod": 0, "limit": Decimal(limit)}
    if number_phases is not None:
        period["numberPhases"] = number_phases
    profile: dict[str, Any] = {
        "chargingProfileId": profile_id,
        "stackLevel": 0,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": ChargingProfileKindType.absolute,
        "chargingSchedule": {
            "startSchedule": _utc(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)),
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": [period],
        },
    }
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    return profile


async def set_profile(charger: ChargerSession, connector: int, profile: dict[str, Any]) -> str:
    """SetChargingProfile; the status, or "CALLERROR <code>"."""
    try:
        # csChargingProfiles is a dict in the dataclass, its keys already camelCase: on the wire as built here
        answer = await charger.call(call.SetChargingProfile(connector_id=connector, cs_charging_profiles=profile))
    except CallErrorReceived as exc:
        return f"CALLERROR {exc.code}"
    return str(answer.status)


@dataclass(frozen=True)
class ProfileAnswer:
    """SetChargingProfile of one purpose, in the charger's unit (and the other if that was refused)."""

    purpose: str
    connector: int
    status: str  # of the last attempt
    unit: str  # of the last attempt
    limit: Decimal  # in `unit`
    tried: tuple[str, ...]  # every attempt, "<limit> <unit>: <status>"
    answered: float  # monotonic time of the last answer

    @property
    def accepted(self) -> bool:
        return bool(self.status == ChargingProfileStatus.accepted)  # bool(): ocpp's enums are Any to mypy

    def describe(self) -> str:
        return f"{self.purpose} on connector {self.connector}: " + "; ".join(self.tried)


async def set_limit(charger: ChargerSession, settings: Settings, purpose: str, connector: int, amps: Decimal | int,
                    transaction_id: int | None = None, *, electrical: Electrical | None = None) -> ProfileAnswer:
    """SetChargingProfile `purpose` limiting to `amps` (per phase), in the unit the charger declares; if
    that is refused, in the other unit (the attempt says so)."""
    units, why = await rate_units(charger)
    el = electrical or Electrical.of(settings)
    profile_id = TX_PROFILE_ID if purpose == TX_PROFILE else CP_MAX_PROFILE_ID
    tried: list[str] = []
    status, unit, limit = "", units[0], Decimal(amps)
    answered = time.monotonic()
    for unit in units:
        limit = el.value(amps, unit)
        phases = el.phases if unit == WATTS else None
        profile = charging_profile(profile_id, purpose, limit, transaction_id, unit=unit, number_phases=phases)
        status = await set_profile(charger, connector, profile)
        answered = time.monotonic()
        shown = f"{limit} {unit}" + (f" (= {amps} A × {el.volts:.0f} V × {el.phases} phases, {el.source})" if unit == WATTS else "")
        tried.append(f"{shown}: {status}")
        if status == ChargingProfileStatus.accepted:
            break
    if len(tried) > 1:
        charger.note(f"SetChargingProfile {purpose}: {why}; the first unit was refused, so the other was tried: "
                     + "; ".join(tried))
    return ProfileAnswer(purpose, connector, status, unit, limit, tuple(tried), answered)


@dataclass(frozen=True)
class Applied:
    purpose: str
    connector: int
    profile_id: int
    unit: str = AMPS
    limit: Decimal = Decimal(0)
    answered: float = 0.0  # monotonic time of the Accepted answer: the settling window starts here


async def apply_limit(charger: ChargerSession, connector: int, transaction_id: int, amps: Decimal | int,
                      settings: Settings | None = None, *, electrical: Electrical | None = None) -> Applied:
    """Limit the charger to `amps` per phase the way SC-1 allows: a TxProfile for the running
    transaction, else (Rejected) a ChargePointMaxProfile on connector 0; in the charger's declared
    unit. Reuses the purpose that worked earlier in this test. Raises LimitRefused if the charger
    takes neither."""
    settings = settings or Settings()
    tried: list[str] = []
    preferred = charger.details.get("limit_purpose")
    order = [CP_MAX_PROFILE, TX_PROFILE] if preferred == CP_MAX_PROFILE else [TX_PROFILE, CP_MAX_PROFILE]
    for purpose in order:
        target = connector if purpose == TX_PROFILE else 0
        tx = transaction_id if purpose == TX_PROFILE else None
        answer = await set_limit(charger, settings, purpose, target, amps, tx, electrical=electrical)
        if answer.accepted:
            charger.details["limit_purpose"] = purpose
            pid = TX_PROFILE_ID if purpose == TX_PROFILE else CP_MAX_PROFILE_ID
            return Applied(purpose, target, pid, answer.unit, answer.limit, answer.answered)
        tried.append(answer.describe())
    raise LimitRefused(f"the charger took no {amps} A limit: " + "; ".join(tried))


class LimitRefused(AssertionError):
    """Neither a TxProfile nor a ChargePointMaxProfile was Accepted (SC-1's finding)."""


async def lift_limit(charger: ChargerSession, applied: Applied, settings: Settings | None = None) -> tuple[str, float]:
    """ClearChargingProfile of the harness's profile; if the charger does not clear it, replace it by a
    32 A limit (what the platform would do to switch back on). Returns how the limit was lifted, and the
    monotonic time of the answer (the settling window starts there)."""
    try:
        answer = await charger.call(call.ClearChargingProfile(id=applied.profile_id))
        if answer.status == ClearChargingProfileStatus.accepted:
            return "ClearChargingProfile", time.monotonic()
        how = f"ClearChargingProfile answered {answer.status}"
    except CallErrorReceived as exc:
        how = f"ClearChargingProfile answered CALLERROR {exc.code}"
    tx_id = None
    if applied.purpose == TX_PROFILE:
        active = [t for t in charger.active_transactions() if t.connector_id == applied.connector]
        tx_id = active[0].transaction_id if active else None
    lifted = await set_limit(charger, settings or Settings(), applied.purpose, applied.connector, LIFT_LIMIT_A, tx_id)
    assert lifted.accepted, f"could not lift the limit: {how}, and {lifted.describe()}"
    charger.note(f"{how}; the limit was lifted with a {LIFT_LIMIT_A} A {applied.purpose} instead")
    return f"a {LIFT_LIMIT_A} A {applied.purpose}", lifted.answered

