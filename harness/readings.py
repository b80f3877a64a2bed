"""What a MeterValues says about the power flowing, and when it was measured (sans-I/O).

`read` turns one MeterValues into a `Reading`: its newest instant's Power.Active.Import, or Current.Import with
Voltage (per phase, with the phases the charger profile declares for a current without a phase), and the
Energy.Active.Import.Register with its resolution. `clock_offset` and `measured_at` place a reading on our
clock (a charger whose clock is off is judged on its own timeline); `energy_rate` bounds the power the
register's rise implies. The judges (harness/judges.py) and the acts that wait for readings
(harness/limits.py) build on these; the rules are in docs/rules-metering.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from harness import meter, ocppj, spec16
from harness.session import ReceivedCall

CHARGING_W = Decimal(100)  # "with power": more than this


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
