"""Reading MeterValues as the platform does (OCPP 1.6 §7.31 Measurand, §7.45 UnitOfMeasure, §7.43 SampledValue).

The platform needs energy (Energy.Active.Import.Register) and power (Power.Active.Import, OR
Current.Import with Voltage). Units are converted here once: energy to Wh, power to W.

Sans-I/O: everything here works on payloads (the `meterValue` / `transactionData` lists) and
returns numbers; the suites decide what they mean for a requirement.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from harness import ocppj, spec16

ENERGY = spec16.ENERGY_IMPORT_REGISTER
POWER = spec16.POWER_IMPORT
CURRENT = spec16.CURRENT_IMPORT
VOLTAGE = spec16.VOLTAGE

# How power_w() obtained the power (also the names of MV-1's alternatives, requirements.py).
VIA_POWER = POWER
VIA_CURRENT_VOLTAGE = f"{CURRENT}×{VOLTAGE}"
ABSENT = "absent"

_SQRT3 = Decimal(3).sqrt()
_LINE_TO_LINE = frozenset({"L1-L2", "L2-L3", "L3-L1"})


class MeterFormatError(ValueError):
    """A sampled value the platform cannot read (non-numeric, wrong unit for its measurand)."""


@dataclass(frozen=True)
class Sample:
    timestamp: dt.datetime | None
    measurand: str
    value: Decimal
    unit: str | None
    phase: str | None
    context: str | None
    location: str | None

    @property
    def in_base_unit(self) -> Decimal:
        """Energy in Wh, power in W, others as given."""
        return self.value * self._factor()

    @property
    def resolution(self) -> Decimal:
        """The smallest step the value as written can show, in the base unit ("1000.12" kWh → 10 Wh)."""
        exponent = self.value.as_tuple().exponent
        step = Decimal(1).scaleb(exponent) if isinstance(exponent, int) else Decimal(1)
        return step * self._factor()

    @property
    def periodic(self) -> bool:
        """§7.43: a sampled value without context is Sample.Periodic."""
        return (self.context or spec16.CONTEXT_PERIODIC) == spec16.CONTEXT_PERIODIC

    def _factor(self) -> Decimal:
        if self.measurand.startswith("Energy"):
            unit = self.unit or "Wh"
            if unit not in spec16.ENERGY_UNITS:
                raise MeterFormatError(f"{self.measurand} in {unit!r}: expected Wh or kWh")
            return spec16.ENERGY_UNITS[unit]
        if self.measurand.startswith("Power"):
            # §7.43 defines a default unit only for energy (Wh): a power value without a unit is read as W.
            unit = self.unit or "W"
            if unit not in spec16.POWER_UNITS:
                raise MeterFormatError(f"{self.measurand} in {unit!r}: expected W or kW")
            return spec16.POWER_UNITS[unit]
        if self.measurand.startswith("Current") and self.unit not in (None, "A"):
            raise MeterFormatError(f"{self.measurand} in {self.unit!r}: expected A")
        if self.measurand == VOLTAGE and self.unit not in (None, "V"):
            raise MeterFormatError(f"Voltage in {self.unit!r}: expected V")
        return Decimal(1)


def samples(
    meter_values: Iterable[Mapping[str, Any]], *, errors: list[MeterFormatError] | None = None
) -> list[Sample]:
    """Flatten a MeterValues/StopTransaction `meterValue`/`transactionData` list into samples.

    A value that is not a number raises MeterFormatError; with `errors` given, the error is
    appended there instead and the value left out (so one bad measurand does not hide the rest).
    """
    found: list[Sample] = []
    for entry in meter_values:
        raw_time = entry.get("timestamp")
        try:
            stamp = ocppj.parse_datetime(raw_time) if isinstance(raw_time, str) else None
        except ValueError:
            stamp = None
        for sampled in entry.get("sampledValue", []) or []:
            if sampled.get("format") == "SignedData":
                continue  # opaque signed meter data: not a number the platform reads
            # §7.43: no measurand means Energy.Active.Import.Register (in Wh).
            measurand = sampled.get("measurand") or ENERGY
            raw = sampled.get("value")
            try:
                value = Decimal(str(raw))
                if not value.is_finite():
                    raise InvalidOperation
            except (InvalidOperation, ValueError):
                problem = MeterFormatError(f"{measurand} value {raw!r} is not a number")
                if errors is None:
                    raise problem from None
                errors.append(problem)
                continue
            found.append(
                Sample(
                    stamp,
                    measurand,
                    value,
                    sampled.get("unit"),
                    sampled.get("phase"),
                    sampled.get("context"),
                    sampled.get("location"),
                )
            )
    return found


def _outlet(items: list[Sample]) -> list[Sample]:
    """Prefer the outlet/unspecified location when a charger reports several (e.g. Inlet and Outlet)."""
    preferred = [s for s in items if s.location in (None, "Outlet")]
    return preferred or items


def energy_registers(found: Iterable[Sample]) -> list[Sample]:
    """The register readings that stand for the total (outlet, no phase; else the per-phase ones)."""
    registers = _outlet([s for s in found if s.measurand == ENERGY])
    return [s for s in registers if s.phase is None] or registers


def energy_wh(found: Iterable[Sample]) -> Decimal | None:
    """The energy register in Wh (the total, not a per-phase value), or None if absent."""
    totals = energy_registers(found)
    return max((s.in_base_unit for s in totals), default=None) if totals else None


def power_w(found: Iterable[Sample], *, phases: int | None = None) -> tuple[Decimal | None, str]:
    """Imported power in W and how it was obtained: "Power.Active.Import" or "Current.Import×Voltage".

    MV-1 allows either: Power.Active.Import (total, or summed over phases), OR Current.Import
    with Voltage, multiplied per phase (a phase-less current goes with a phase-less voltage).
    The neutral's current is not a phase current; a line-to-line voltage is divided by √3.
    A phase-less Current.Import with no per-phase values is the current of each of the charger's
    `phases` phases when the caller knows them (the charger profile's `phases`); without them it is
    counted once (callers that must not guess use `phase_less_current`).
    """
    items = list(found)
    power = _outlet([s for s in items if s.measurand == POWER])
    if power:
        total = [s for s in power if s.phase is None]
        if total:
            return total[0].in_base_unit, VIA_POWER
        return sum((s.in_base_unit for s in power if s.phase != "N"), Decimal(0)), VIA_POWER
    currents = _outlet([s for s in items if s.measurand == CURRENT and s.phase != "N"])
    voltages = _outlet([s for s in items if s.measurand == VOLTAGE and s.phase != "N"])
    if not currents or not voltages:
        return None, ABSENT
    # Per-phase currents, when given, are the measurement; a phase-less one next to them is their sum.
    if any(c.phase is not None for c in currents):
        currents = [c for c in currents if c.phase is not None]
    to_neutral: dict[str | None, Decimal] = {}
    line_to_line: list[Decimal] = []
    for v in voltages:
        if v.phase in _LINE_TO_LINE:
            line_to_line.append(v.in_base_unit / _SQRT3)
        else:
            to_neutral[_phase_key(v.phase)] = v.in_base_unit
    if not to_neutral and line_to_line:
        to_neutral[None] = sum(line_to_line, Decimal(0)) / len(line_to_line)
    watts = Decimal(0)
    phase_currents: dict[str | None, Decimal] = defaultdict(Decimal)
    for c in currents:
        phase_currents[_phase_key(c.phase)] += c.in_base_unit
    for phase, amps in phase_currents.items():
        volts = to_neutral.get(phase, to_neutral.get(None))
        if volts is None:
            volts = next(iter(to_neutral.values()))
        # A phase-less current is an "overall value" (§7.43 phase): on `phases` conductors when declared.
        watts += amps * volts * (phases if phase is None and phases else 1)
    return watts, VIA_CURRENT_VOLTAGE


def phase_less_current(found: Iterable[Sample]) -> bool:
    """Current.Import is reported only without a phase (so the number of phases is not in the readings)."""
    currents = _outlet([s for s in found if s.measurand == CURRENT and s.phase != "N"])
    return bool(currents) and all(c.phase is None for c in currents)


def _phase_key(phase: str | None) -> str | None:
    """L1 and L1-N are the same conductor for current/voltage pairing."""
    if phase is None:
        return None
    return phase.split("-")[0] if phase.endswith("-N") else phase


def measurands(found: Iterable[Sample]) -> set[str]:
    return {s.measurand for s in found}


def what_arrived(points: Sequence[Sequence[Sample]], periodic_times: Sequence[float], triggered: int = 0) -> str:
    """What a charger's samples carried, for a failure message: e.g. "only Energy.Active.Import.Register in
    kWh, every 15 s". `points`: the samples of each MeterValues; `periodic_times`: the arrival times (s) of
    the periodic ones; `triggered`: how many were asked for with TriggerMessage."""
    carried: dict[str, set[str]] = {}
    for found in points:
        for s in found:
            carried.setdefault(s.measurand, set()).add(s.unit or "no unit")
    shown = ", ".join(f"{m} in {'/'.join(sorted(u))}" for m, u in sorted(carried.items())) or "no sampled values"
    if len(carried) == 1:
        shown = "only " + shown
    gaps = sorted(b - a for a, b in zip(periodic_times, periodic_times[1:]))
    if gaps:
        shown += f", every {gaps[len(gaps) // 2]:.0f} s"
    elif periodic_times:
        shown += ", one periodic sample"
    if triggered:
        shown += f" ({triggered} sample(s) asked for with TriggerMessage)"
    return shown


# --- configuration values (MeterValuesSampledData) --------------------------------------------


def measurand_set(value: str | None) -> set[str]:
    """The measurands of a MeterValuesSampledData-like CSL, whitespace- and case-tolerant.

    §9.1: an item may carry a phase ("Voltage.L1"); it stands for its measurand. Names are
    returned in their canonical spelling when the charger used another case.
    """
    canonical = {m.lower(): m for m in spec16.MEASURANDS}
    phases = {p.lower() for p in spec16.PHASES}
    found: set[str] = set()
    for item in (value or "").split(","):
        text = item.strip()
        if not text:
            continue
        key = text.lower()
        if key not in canonical:
            head, _, tail = key.rpartition(".")
            if head in canonical and tail in phases:
                key = head
        found.add(canonical.get(key, text))
    return found


# --- time series ---------------------------------------------------------------------------------


_SECONDS = re.compile(r"T\d{2}:\d{2}:\d{2}(?:[.,](\d+))?", re.IGNORECASE)


def cadence_tolerance(interval: float) -> float:
    """CFG-2: how far one sampling gap may be from MeterValueSampleInterval: ±max(0.5 s, 20 %)."""
    return max(0.5, 0.2 * interval)


def fine_for_cadence(resolution: float, interval: float) -> bool:
    """CFG-2: whether timestamps of this resolution (s) can show the cadence at `interval` within its tolerance (else
    arrival times stand in: docs/rules-timing.md)."""
    return resolution < cadence_tolerance(interval) / 2


def timestamp_resolution(raw: Iterable[str | None]) -> float:
    """The coarsest resolution (s) of RFC 3339 timestamps as written: 1.0 without fractions, 0.001 for ms."""
    worst = 0.0
    for text in raw:
        match = _SECONDS.search(text) if isinstance(text, str) else None
        if match is None:
            continue
        digits = len(match.group(1) or "")
        worst = max(worst, 10.0 ** -digits if digits else 1.0)
    return worst


@dataclass(frozen=True)
class Integral:
    """∫P dt over a series by the trapezoid rule, in Wh, and how far sampling alone can move it."""

    wh: Decimal
    granularity_wh: Decimal  # Σ |ΔP|·Δt/2: between two samples the power may have changed anywhere
    seconds: float


def integrate_power(series: Sequence[tuple[dt.datetime, Decimal]]) -> Integral:
    """Trapezoid integral of (time, W) points in Wh.

    Between two samples Δt apart, a monotone change of power from P1 to P2 puts the true
    energy anywhere between P1·Δt and P2·Δt; the trapezoid takes the middle, so it can be off
    by at most |P2 − P1|·Δt/2 per window: `granularity_wh` sums that bound.
    """
    points = sorted(series, key=lambda p: p[0])
    total = Decimal(0)
    bound = Decimal(0)
    for (t1, p1), (t2, p2) in zip(points, points[1:]):
        seconds = Decimal(str((t2 - t1).total_seconds()))
        total += (p1 + p2) / 2 * seconds / 3600
        bound += abs(p2 - p1) * seconds / 2 / 3600
    span = (points[-1][0] - points[0][0]).total_seconds() if len(points) > 1 else 0.0
    return Integral(total, bound, span)
