"""Power readings and charging limits, as the smart-charging and status suites use them.

SC-2 (the limit takes effect) and ST-2/ST-4 (the statuses that go with it) need the same acts: choose
what the meter reports (MeterValuesSampledData), read what a MeterValues says about the power flowing
(Power.Active.Import; Current.Import with Voltage; the Energy.Active.Import.Register's rise over time),
wait for readings *measured after the charger had a fair time to act* that settle the question, and set
or lift a limit in a unit the charger declares (ChargingScheduleAllowedChargingRateUnit) as a TxProfile
or, if the charger takes only that, a ChargePointMaxProfile (the SC-1 alternatives).

The judgement rules (settling window, which readings count, phases, the energy-rise threshold) are
written down for users in docs/rules-metering.md; the judges here are sans-I/O (`judge_off`, `judge_on`,
`judge_six_amps` take Readings) so they are unit-tested with synthetic readings.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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

from harness import meter, ocppj, spec16
from harness.errors import CallErrorReceived, ExpectationTimeout, NoAnswer
from harness.flows import configured_value
from harness.session import ChargerSession, ReceivedCall
from harness.settings import Settings

RULES = "docs/rules-metering.md"  # where users read these rules; evidence and failures cite it
TX_PROFILE = ChargingProfilePurposeType.tx_profile
CP_MAX_PROFILE = ChargingProfilePurposeType.charge_point_max_profile
TX_PROFILE_ID = 9101  # the harness's own profile ids, so ClearChargingProfile(id) touches nothing else
CP_MAX_PROFILE_ID = 9102
NOMINAL_VOLTAGE = Decimal(230)  # V phase-to-neutral, when neither the readings nor the profile give one
DEFAULT_PHASES = 3  # §7.14 numberPhases: "numberPhases=3 will be assumed unless another number is given"
MIN_PILOT_CURRENT = Decimal(6)  # A: IEC 61851-1, the lowest current a charger can offer
ZERO_FLOOR_W = Decimal(100)  # "≈ 0": at most this, or 2 % of the unlimited power if that is more
ZERO_SHARE = Decimal("0.02")
ZERO_CURRENT_A = Decimal("0.5")  # "≈ 0" on a line current (100 W / 230 V ≈ 0.43 A)
CHARGING_W = Decimal(100)  # "with power": more than this
SIX_AMP_TOLERANCE = Decimal("0.15")  # ±15 % around phases × V × 6 A (EVs draw a little under the offer)
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
ENERGY_SPAN_MAX = 300.0  # s: the longest the harness waits for the register alone to settle "≈ 0"


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
    try:
        answer = await charger.call(call.ChangeConfiguration(key="MeterValueSampleInterval", value=interval))
        if answer.status != ConfigurationStatus.accepted:
            charger.note(f"MeterValueSampleInterval={interval} answered {answer.status} (CFG-2 judges this)")
    except CallErrorReceived as exc:
        charger.note(f"MeterValueSampleInterval={interval} answered CALLERROR {exc.code} (CFG-2 judges this)")
    refused: list[str] = []
    for value in SAMPLED_DATA_CHOICES:
        try:
            answer = await charger.call(call.ChangeConfiguration(key="MeterValuesSampledData", value=value))
        except CallErrorReceived as exc:
            refused.append(f"{value}: CALLERROR {exc.code}")
            continue
        if answer.status == ConfigurationStatus.accepted:
            return value
        refused.append(f"{value}: {answer.status}")
    charger.note("MeterValuesSampledData: no list with power or current+voltage was accepted (CFG-1 judges this): "
                 + "; ".join(refused))
    return None


@dataclass(frozen=True)
class Reading:
    """One MeterValues as the platform reads it: its newest instant (the last timestamp it carries)."""

    call: ReceivedCall
    watts: Decimal | None  # Power.Active.Import, or Current.Import × Voltage with the phases known
    how: str
    currents: dict[str, Decimal] = field(default_factory=dict)  # phase (L1..L3, or "" for overall) -> A
    volts: tuple[Decimal, ...] = ()  # phase-to-neutral voltages
    energy_wh: Decimal | None = None  # Energy.Active.Import.Register
    energy_step: Decimal = Decimal(1)  # the register's resolution as written, in Wh
    stamp: dt.datetime | None = None  # the charger's timestamp of the instant
    stamp_step: float = 0.0  # that timestamp's resolution (s)
    phase_powers: dict[str, Decimal] = field(default_factory=dict)  # per-phase Power.Active.Import, W

    @property
    def per_phase(self) -> dict[str, Decimal]:
        """Current.Import on the line conductors L1..L3 (not an overall value, not the neutral)."""
        return {p: a for p, a in self.currents.items() if p in ("L1", "L2", "L3")}

    @property
    def phases_drawing(self) -> int | None:
        """Phases carrying current, if the charger reports current (or power) per phase."""
        per_phase = self.per_phase
        if per_phase:
            return sum(1 for a in per_phase.values() if a >= 1)
        if self.phase_powers:
            return sum(1 for w in self.phase_powers.values() if w > CHARGING_W)
        return None

    @property
    def voltage(self) -> Decimal | None:
        return sum(self.volts, Decimal(0)) / len(self.volts) if self.volts else None

    @property
    def has_evidence(self) -> bool:
        """Whether it says anything about the power flowing (SC-2's "not tested" is for none at all)."""
        return self.watts is not None or bool(self.currents) or self.energy_wh is not None

    def describe(self) -> str:
        parts = []
        if self.watts is not None:
            parts.append(f"{self.watts:.0f} W via {self.how}")
        elif self.how != meter.ABSENT:
            parts.append(f"no power ({self.how})")
        if self.currents:
            parts.append(", ".join(f"{p or 'overall'} {a} A" for p, a in sorted(self.currents.items())))
        if self.energy_wh is not None:
            parts.append(f"register {self.energy_wh} Wh")
        stamp = self.call.get("meterValue")
        when = ""
        if self.stamp is not None and isinstance(stamp, list) and stamp:
            when = f" @{stamp[-1].get('timestamp')}"
        return f"frame #{self.call.seq}{when}: " + ("; ".join(parts) or "no power, current or energy")


def read(call: ReceivedCall, phases: int | None = None) -> Reading:
    """What a MeterValues says about the power: its newest instant (the entries with the last timestamp).

    `phases` is the charger profile's phase count: it tells how many conductors a Current.Import
    without a phase stands for. Without it such a current is judged as a current only (never guessed).
    """
    entries = [e for e in (call.get("meterValue") or []) if isinstance(e, dict)]
    if not entries:
        return Reading(call, None, "no meterValue")
    last_stamp = entries[-1].get("timestamp")
    newest = [e for e in entries if e.get("timestamp") == last_stamp]
    stamp: dt.datetime | None = None
    if isinstance(last_stamp, str):
        try:
            stamp = ocppj.parse_datetime(last_stamp)
        except ValueError:
            stamp = None
    stamp_step = meter.timestamp_resolution([last_stamp if isinstance(last_stamp, str) else None])
    errors: list[meter.MeterFormatError] = []
    try:
        found = meter.samples(newest, errors=errors)
    except (AttributeError, TypeError) as exc:
        return Reading(call, None, f"unreadable: {exc}")
    energy: Decimal | None = None
    step = Decimal(1)
    try:
        registers = meter.energy_registers(found)
        if registers:
            best = max(registers, key=lambda s: s.in_base_unit)
            energy, step = best.in_base_unit, max(best.resolution, Decimal("0.001"))
    except meter.MeterFormatError:
        energy = None
    try:
        watts, how = meter.power_w(found, phases=phases)
    except meter.MeterFormatError as exc:
        watts, how = None, f"unreadable: {exc}"
    if how == meter.VIA_CURRENT_VOLTAGE and phases is None and meter.phase_less_current(found):
        watts, how = None, "Current.Import without a phase, and no phase count declared in the charger profile"
    currents: dict[str, Decimal] = {}
    volts: list[Decimal] = []
    phase_powers: dict[str, Decimal] = {}
    try:
        for s in found:
            if s.location not in (None, "Outlet"):
                continue
            if s.measurand == spec16.CURRENT_IMPORT and s.phase != "N":
                phase = (s.phase or "").split("-")[0]
                currents[phase] = currents.get(phase, Decimal(0)) + s.in_base_unit
            elif s.measurand == spec16.VOLTAGE and (s.phase is None or s.phase.endswith("-N") or s.phase in ("L1", "L2", "L3")):
                volts.append(s.in_base_unit)
            elif s.measurand == spec16.POWER_IMPORT and s.phase:
                key = s.phase.split("-")[0]
                if key in ("L1", "L2", "L3"):
                    phase_powers[key] = phase_powers.get(key, Decimal(0)) + s.in_base_unit
    except meter.MeterFormatError:
        currents, volts, phase_powers = {}, [], {}
    return Reading(call, watts, how, currents, tuple(volts), energy, step, stamp, stamp_step, phase_powers)


# --- when a reading was measured ------------------------------------------------------------------


def clock_offset(readings: Sequence[Reading]) -> float | None:
    """The charger's clock against ours: the least (arrival − timestamp) over the readings, in s.

    A sample is measured before it arrives, so every (arrival − timestamp) is the clock offset plus
    how long the sample waited; the least of them is the offset plus the shortest wait (a triggered
    or freshly sent sample). This keeps a charger whose clock is minutes off judged on its own
    timeline (TLS-3 judges the clock itself).
    """
    lags = [(r.call.wall - r.stamp).total_seconds() for r in readings if r.stamp is not None]
    return min(lags) if lags else None


def measured_at(reading: Reading, offset: float | None) -> float:
    """The earliest our monotonic time at which `reading` can have been measured.

    Its age at arrival is (arrival − timestamp) − offset; a timestamp as coarse as whole seconds may
    be up to its resolution early, so that much more is taken off (a reading is never counted as
    settled because its timestamp was rounded). Without a timestamp: its arrival.
    """
    if reading.stamp is None or offset is None:
        return reading.call.mono
    age = max(0.0, (reading.call.wall - reading.stamp).total_seconds() - offset)
    return reading.call.mono - age - reading.stamp_step


# --- judging readings (sans-I/O) ------------------------------------------------------------------


class State(enum.Enum):
    YES = "yes"  # the readings show what was expected
    NO = "no"  # they show the opposite
    UNKNOWN = "unknown"  # they cannot tell (yet)


@dataclass(frozen=True)
class Outcome:
    state: State
    why: str
    more_time: float = 0.0  # UNKNOWN because the register needs this much longer a span to tell
    watts: Decimal | None = None  # the power the judgement saw (a reference for "≈ 0" later)


Judge = Callable[[Sequence[Reading], Reading], Outcome]
"""Judges reading `b` given the settled readings up to and including it (oldest first)."""


@dataclass(frozen=True)
class Rate:
    """The power the register's rise between two readings implies, as bounds (W)."""

    low: Decimal
    high: Decimal
    rise_wh: Decimal
    seconds: float

    def describe(self) -> str:
        return (f"register +{self.rise_wh} Wh in {self.seconds:.1f} s ≈ {self.low:.0f}..{self.high:.0f} W "
                f"(bounds from the register's and the timestamps' resolution)")


def energy_rate(a: Reading, b: Reading) -> Rate | None:
    """The mean power between two register readings: (rise ± one register step) / (span ∓ timing error)."""
    if a.energy_wh is None or b.energy_wh is None:
        return None
    if a.stamp is not None and b.stamp is not None:
        seconds = (b.stamp - a.stamp).total_seconds()
        slack = max(a.stamp_step, b.stamp_step)
    else:
        seconds = b.call.mono - a.call.mono
        slack = 0.5  # arrival times: sending jitter
    if seconds <= slack:
        return None
    rise = b.energy_wh - a.energy_wh
    step = max(a.energy_step, b.energy_step)
    low = max(Decimal(0), rise - step) * 3600 / Decimal(str(seconds + slack))
    high = max(Decimal(0), rise + step) * 3600 / Decimal(str(seconds - slack))
    return Rate(low, high, rise, seconds)


def _span_needed(reading: Reading, floor_w: Decimal) -> float:
    """How long a span of register readings must be for one register step to mean ≤ floor_w."""
    return float(reading.energy_step * 3600 / floor_w) if floor_w > 0 else ENERGY_SPAN_MAX


def zero_floor(unlimited: Reading | None, reference_w: Decimal | None = None) -> Decimal:
    """"≈ 0 W": at most ZERO_FLOOR_W, or 2 % of the power seen without the limit if that is more (the
    reading's power, else `reference_w`: e.g. the register's rate when the charger sends only energy)."""
    reference = unlimited.watts if unlimited is not None and unlimited.watts is not None else reference_w
    return max(ZERO_FLOOR_W, ZERO_SHARE * reference) if reference else ZERO_FLOOR_W


def near_zero(watts: Decimal, reference: Decimal | None) -> bool:
    floor = max(ZERO_FLOOR_W, ZERO_SHARE * reference) if reference else ZERO_FLOOR_W
    return watts <= floor


def _instant_off(b: Reading, floor_w: Decimal) -> Outcome | None:
    """Power and current of one instant: ≈ 0 (YES), flowing (NO), or None when it reports neither."""
    if b.watts is not None:
        if b.watts > floor_w:
            return Outcome(State.NO, f"{b.watts:.0f} W > {floor_w:.0f} W")
    if b.currents:
        flowing = {p: a for p, a in b.currents.items() if a > ZERO_CURRENT_A}
        if flowing:
            shown = ", ".join(f"{p or 'overall'} {a} A" for p, a in sorted(flowing.items()))
            return Outcome(State.NO, f"current {shown} > {ZERO_CURRENT_A} A")
    if b.watts is not None or b.currents:
        return Outcome(State.YES, "power and current ≈ 0")
    return None


def judge_off(floor_w: Decimal) -> Judge:
    """≈ 0 power under a 0 limit, from every measurand sent.

    NO when the power or a line current is above ≈ 0, or when the register rose faster than floor_w
    between the previous settled reading and this one (energy that keeps rising is power flowing,
    whatever the power reading says). YES when power/current are ≈ 0 and, if the charger sends the
    register, it did not rise faster than that since the previous settled reading. A charger that
    sends only the register: YES once it stayed flat (to its resolution) over a span long enough to
    tell ≈ 0 from one register step.
    """

    def judge(settled: Sequence[Reading], b: Reading) -> Outcome:
        previous = settled[-2] if len(settled) >= 2 else None
        rate = energy_rate(previous, b) if previous is not None else None
        if rate is not None and rate.low > floor_w:
            return Outcome(State.NO, f"the energy kept rising: {rate.describe()} > {floor_w:.0f} W")
        instant = _instant_off(b, floor_w)
        if instant is not None and instant.state is State.NO:
            return instant
        if instant is not None:
            if b.energy_wh is not None and rate is None:
                return Outcome(State.UNKNOWN, "power ≈ 0; a second settled register reading must show the energy stopped")
            return Outcome(State.YES, instant.why + (f"; {rate.describe()}" if rate else ""))
        if b.energy_wh is None:
            return Outcome(State.UNKNOWN, "no power, current or energy in this reading")
        # The register alone: the longest settled span ending here that is no longer than needed.
        needed = _span_needed(b, floor_w)
        base = settled[0]
        for a in settled[:-1]:
            r = energy_rate(a, b)
            if r is not None and r.seconds >= needed:
                base = a
        long_rate = energy_rate(base, b) if base is not b else None
        if long_rate is None:
            return Outcome(State.UNKNOWN, "one settled register reading: its rise cannot be seen yet", needed)
        if long_rate.low > floor_w:
            return Outcome(State.NO, f"the energy kept rising: {long_rate.describe()} > {floor_w:.0f} W")
        if long_rate.high <= floor_w:
            return Outcome(State.YES, f"the register stayed flat: {long_rate.describe()} ≤ {floor_w:.0f} W")
        return Outcome(State.UNKNOWN, f"{long_rate.describe()}: too short a span to tell ≤ {floor_w:.0f} W from "
                                      f"one register step", max(0.0, needed - long_rate.seconds))

    return judge


def judge_on() -> Judge:
    """The EV draws power: power > CHARGING_W or a line current > ZERO_CURRENT_A; a charger that sends
    only the register: it rose faster than CHARGING_W over the settled span (from the first settled reading)."""

    def judge(settled: Sequence[Reading], b: Reading) -> Outcome:
        if b.watts is not None and b.watts > CHARGING_W:
            return Outcome(State.YES, f"{b.watts:.0f} W > {CHARGING_W} W", watts=b.watts)
        flowing = {p: a for p, a in b.currents.items() if a > ZERO_CURRENT_A}
        if flowing:
            return Outcome(State.YES, "current " + ", ".join(f"{p or 'overall'} {a} A" for p, a in sorted(flowing.items())))
        if b.watts is not None or b.currents:
            return Outcome(State.NO, "power and current ≈ 0")
        # The register alone: its rise over the whole settled span (after the window the EV should draw
        # throughout, and a longer span resolves a slow rise that one register step would hide).
        rate = energy_rate(settled[0], b) if len(settled) >= 2 else None
        if rate is None:
            return Outcome(State.UNKNOWN, "one settled register reading: its rise cannot be seen yet")
        if rate.low > CHARGING_W:
            return Outcome(State.YES, f"the energy rises: {rate.describe()}", watts=rate.low)
        if rate.high <= CHARGING_W:
            return Outcome(State.NO, f"the register is flat: {rate.describe()}")
        return Outcome(State.UNKNOWN, f"{rate.describe()}: cannot tell yet")

    return judge


@dataclass(frozen=True)
class Expectation6A:
    """What a 6 A limit should show: current per phase, or this much power (phases × V × 6 A, or the
    W limit set); `phases` None when neither the readings nor the charger profile give them."""

    phases: int | None
    phases_from: str
    volts: Decimal
    target_w: Decimal | None

    def describe(self) -> str:
        if self.target_w is None:
            return f"6 A per phase (phase count unknown: {self.phases_from})"
        return f"{self.phases} phase(s) × {self.volts:.0f} V × 6 A = {self.target_w:.0f} W ({self.phases_from})"


def six_amp_expectation(unlimited: Reading | None, settings_phases: int | None, settings_volts: float | None,
                        limit_w: Decimal | None = None) -> Expectation6A:
    """Phases from the readings' phase fields (those drawing without the limit), else the charger
    profile's `phases`; never guessed from the power. Voltage from the readings, else the profile's
    nominal_voltage, else 230 V. A W limit is itself the target."""
    volts = (unlimited.voltage if unlimited is not None else None) or (
        Decimal(str(settings_volts)) if settings_volts else NOMINAL_VOLTAGE)
    phases = unlimited.phases_drawing if unlimited is not None else None
    source = "phases drawing current in the readings without the limit"
    if not phases:
        phases = settings_phases
        source = "phases declared in the charger profile"
    if not phases:
        return Expectation6A(None, "the readings have no phase fields and the charger profile declares no phases",
                             volts, limit_w)
    target = limit_w if limit_w is not None else phases * volts * MIN_PILOT_CURRENT
    return Expectation6A(phases, source, volts, target)


def judge_six_amps(expected: Expectation6A) -> Judge:
    """≈ 6 A: each line current drawing within 6 A ± tolerance; a current without a phase at 6 A (per
    phase) or phases × 6 A (their sum; §7.43 calls it an "overall value"); else the power (or the
    register's rate) within ± tolerance of the expected power."""
    six = MIN_PILOT_CURRENT
    tol = SIX_AMP_TOLERANCE

    def band(x: Decimal) -> tuple[Decimal, Decimal]:
        return x * (1 - tol), x * (1 + tol)

    def judge(settled: Sequence[Reading], b: Reading) -> Outcome:
        per_phase = b.per_phase
        low, high = band(six)
        if per_phase:
            drawing = {p: a for p, a in per_phase.items() if a >= 1}
            shown = ", ".join(f"{p} {a} A" for p, a in sorted(per_phase.items()))
            ok = bool(drawing) and all(low <= a <= high for a in drawing.values())
            return Outcome(State.YES if ok else State.NO,
                           f"current per phase {shown} (expected {low:.1f}..{high:.1f} A on each phase drawing)")
        if "" in b.currents:
            amps = b.currents[""]
            counts = [expected.phases] if expected.phases else [1, 2, 3]
            targets = sorted({six} | {six * n for n in counts})
            ok = any(band(t)[0] <= amps <= band(t)[1] for t in targets)
            return Outcome(State.YES if ok else State.NO,
                           f"overall current {amps} A (expected {' or '.join(f'{t} A' for t in targets)} ± {tol:.0%}: "
                           "per phase or summed)")
        target = expected.target_w
        if b.watts is not None:
            if target is None:
                return Outcome(State.UNKNOWN, f"{b.watts:.0f} W, but {expected.describe()}")
            lo, hi = band(target)
            return Outcome(State.YES if lo <= b.watts <= hi else State.NO,
                           f"{b.watts:.0f} W, expected {expected.describe()} ± {tol:.0%}")
        rate = energy_rate(settled[0], b) if len(settled) >= 2 else None
        if target is None or rate is None:
            return Outcome(State.UNKNOWN, "no power or current in this reading, and no register rate to judge")
        lo, hi = band(target)
        if lo <= rate.low and rate.high <= hi:
            return Outcome(State.YES, f"{rate.describe()}, expected {expected.describe()} ± {tol:.0%}")
        if rate.high < lo or rate.low > hi:
            return Outcome(State.NO, f"{rate.describe()}, expected {expected.describe()} ± {tol:.0%}")
        return Outcome(State.UNKNOWN, f"{rate.describe()}: too coarse to tell yet")

    return judge


@dataclass
class Observation:
    """What the readings after a change showed, and which readings were used and why (the evidence)."""

    what: str
    settle: float  # s after `answered` before a reading counts
    used: list[tuple[Reading, Outcome]]
    early: list[Reading]
    offset: float | None
    result: Reading | None = None  # the first settled reading that showed `what`

    @property
    def result_watts(self) -> Decimal | None:
        """The power the deciding judgement saw (the register's rate for a register-only charger)."""
        return self.used[-1][1].watts if self.result is not None and self.used else None

    @property
    def state(self) -> State:
        if self.result is not None:
            return State.YES
        if any(o.state is State.NO for _, o in self.used):
            return State.NO
        return State.UNKNOWN

    def evidence(self) -> dict[str, Any]:
        return {
            "expected": self.what,
            "rule": (f"a reading that does not show the change counts against the charger only if measured ≥ "
                     f"{self.settle:g} s after the charger answered it (settling window); one measured after the "
                     f"answer that already shows it decides at once ({RULES})" if self.settle > 0 else
                     f"every reading from the start of the observation counts (no limit change to settle; {RULES})"),
            "clock_offset_s": None if self.offset is None else round(self.offset, 3),
            "readings_used": [f"{r.describe()} -> {o.state.value}: {o.why}" for r, o in self.used],
            "readings_ignored_too_early": [r.describe() for r in self.early],
            "verdict": self.state.value,
        }

    def text(self) -> str:
        lines = [f"readings used (after the change; one not showing it only once ≥ {self.settle:g} s after):"]
        lines += [f"  {r.describe()} -> {o.state.value}: {o.why}" for r, o in self.used[-10:]] or ["  none"]
        if self.early:
            lines.append(f"readings ignored as too early: {', '.join(f'#{r.call.seq}' for r in self.early[-10:])}")
        return "\n".join(lines)


def evaluate(readings: Sequence[Reading], judge: Judge, *, answered: float, settle: float, what: str) -> Observation:
    """Judge the readings measured after the change was answered, in order (our monotonic clock); the first
    YES is the result.

    The settling window protects the charger, not the harness: a reading inside it that does not (yet) show
    `what` is set aside as too early and never held against the charger, while one that already shows it,
    measured after the answer, decides at once (the charger acted faster than it had to; judged only on
    readings measured after the answer, so a stale reading from before the change cannot count). Anything
    held against the charger (NO) comes from settled readings only, judged on settled readings only.
    """
    offset = clock_offset(readings)
    ordered = sorted(readings, key=lambda r: (measured_at(r, offset), r.call.seq))
    settled_from = answered + settle
    early = [r for r in ordered if measured_at(r, offset) <= answered]  # from before the change: never count
    after = [r for r in ordered if measured_at(r, offset) > answered]
    # An early reading may decide only when the readings before the change showed the opposite (NO): then a
    # YES after the answer is the change itself, not a state that merely held on from before.
    changed = bool(early) and judge(early, early[-1]).state is State.NO
    settled: list[Reading] = []
    used: list[tuple[Reading, Outcome]] = []
    result = None
    for i, b in enumerate(after):
        if measured_at(b, offset) < settled_from:
            outcome = judge(after[: i + 1], b) if changed else Outcome(State.UNKNOWN, "too early")
            if outcome.state is not State.YES:
                early.append(b)
                continue
        else:
            settled.append(b)
            outcome = judge(settled, b)
        used.append((b, outcome))
        if outcome.state is State.YES:
            result = b
            break
    return Observation(what, settle, used, early, offset, result)


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
    MeterValues every NUDGE_EVERY s once the settling window is over. Returns the Observation (its
    state YES, NO or UNKNOWN); the evidence is recorded in charger.details["readings"].
    """
    factor = charger.settings.timing.factor
    deadline = answered + within * factor
    cap = answered + settle + ENERGY_SPAN_MAX * factor
    readings: dict[int, Reading] = {}
    cursor = since
    last_nudge = float("-inf")

    def mine(call: ReceivedCall) -> bool:
        return call.get("connectorId") == connector

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
        if now >= settled_from and now - last_nudge >= NUDGE_EVERY * factor:
            last_nudge = now
            await nudge(charger, connector)
        until = settled_from if now < settled_from else min(deadline, last_nudge + NUDGE_EVERY * factor)
        if _nudge_refused(charger) and now >= settled_from:
            until = deadline
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
                                within=within, what=what, phases=phases, patient=patient)).result  # type: ignore[return-value]


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
        return self.status == ChargingProfileStatus.accepted

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
