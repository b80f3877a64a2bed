"""Reading MeterValues as the platform does (OCPP 1.6 §7.31 Measurand, §7.45 UnitOfMeasure, §7.43 SampledValue).

The platform needs energy (Energy.Active.Import.Register) and power (Power.Active.Import, OR
Current.Import with Voltage). Units are converted here once: energy to Wh, power to W.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from harness import ocppj, spec16

ENERGY = spec16.ENERGY_IMPORT_REGISTER
POWER = spec16.POWER_IMPORT
CURRENT = spec16.CURRENT_IMPORT
VOLTAGE = spec16.VOLTAGE


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
        if self.measurand.startswith("Energy"):
            unit = self.unit or "Wh"
            if unit not in spec16.ENERGY_UNITS:
                raise MeterFormatError(f"{self.measurand} in {unit!r}: expected Wh or kWh")
            return self.value * spec16.ENERGY_UNITS[unit]
        if self.measurand.startswith("Power"):
            unit = self.unit or "W"
            if unit not in spec16.POWER_UNITS:
                raise MeterFormatError(f"{self.measurand} in {unit!r}: expected W or kW")
            return self.value * spec16.POWER_UNITS[unit]
        if self.measurand.startswith("Current") and self.unit not in (None, "A"):
            raise MeterFormatError(f"{self.measurand} in {self.unit!r}: expected A")
        if self.measurand == VOLTAGE and self.unit not in (None, "V"):
            raise MeterFormatError(f"Voltage in {self.unit!r}: expected V")
        return self.value


def samples(meter_values: Iterable[Mapping[str, Any]]) -> list[Sample]:
    """Flatten a MeterValues/StopTransaction `meterValue`/`transactionData` list into samples."""
    found: list[Sample] = []
    for entry in meter_values:
        raw_time = entry.get("timestamp")
        try:
            stamp = ocppj.parse_datetime(raw_time) if isinstance(raw_time, str) else None
        except ValueError:
            stamp = None
        for sampled in entry.get("sampledValue", []) or []:
            raw = sampled.get("value")
            try:
                value = Decimal(str(raw))
                if not value.is_finite():
                    raise InvalidOperation
            except (InvalidOperation, ValueError):
                raise MeterFormatError(f"sampled value {raw!r} is not a number") from None
            if sampled.get("format") == "SignedData":
                continue  # opaque signed meter data: not a number the platform reads
            found.append(
                Sample(
                    stamp,
                    # §7.43: no measurand means Energy.Active.Import.Register (in Wh).
                    sampled.get("measurand") or ENERGY,
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


def energy_wh(found: Iterable[Sample]) -> Decimal | None:
    """The energy register in Wh (the total, not a per-phase value), or None if absent."""
    registers = _outlet([s for s in found if s.measurand == ENERGY])
    totals = [s for s in registers if s.phase is None] or registers
    return max((s.in_base_unit for s in totals), default=None) if totals else None


def power_w(found: Iterable[Sample]) -> tuple[Decimal | None, str]:
    """Imported power in W and how it was obtained: "Power.Active.Import" or "Current.Import×Voltage".

    MV-1 allows either: Power.Active.Import (total, or summed over phases), OR Current.Import
    with Voltage, multiplied per phase (a phase-less current goes with a phase-less voltage).
    """
    items = list(found)
    power = _outlet([s for s in items if s.measurand == POWER])
    if power:
        total = [s for s in power if s.phase is None]
        if total:
            return total[0].in_base_unit, POWER
        return sum((s.in_base_unit for s in power), Decimal(0)), POWER
    currents = _outlet([s for s in items if s.measurand == CURRENT])
    voltages = _outlet([s for s in items if s.measurand == VOLTAGE])
    if not currents or not voltages:
        return None, "absent"
    by_phase: dict[str | None, Decimal] = {}
    for v in voltages:
        by_phase[_phase_key(v.phase)] = v.in_base_unit
    watts = Decimal(0)
    phase_currents: dict[str | None, Decimal] = defaultdict(Decimal)
    for c in currents:
        phase_currents[_phase_key(c.phase)] += c.in_base_unit
    for phase, amps in phase_currents.items():
        volts = by_phase.get(phase, by_phase.get(None))
        if volts is None and len(by_phase) >= 1:
            volts = next(iter(by_phase.values()))
        if volts is None:
            return None, "absent"
        watts += amps * volts
    return watts, f"{CURRENT}×{VOLTAGE}"


def _phase_key(phase: str | None) -> str | None:
    """L1 and L1-N are the same conductor for current/voltage pairing."""
    if phase is None:
        return None
    return phase.split("-")[0] if phase.endswith("-N") else phase


def measurands(found: Iterable[Sample]) -> set[str]:
    return {s.measurand for s in found}
