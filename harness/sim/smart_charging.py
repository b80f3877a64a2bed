"""Sans-I/O OCPP 1.6 smart-charging model for the reference charger: the limits the profiles yield (§3.13, §5.7).

The installed profiles (SetChargingProfile's validation, ClearChargingProfile, the stack of a purpose on a
connector) are harness/sim/profiles.py's InstalledProfiles; ChargingProfileStore adds what they yield: the
limit in force on a connector (`limit_at`) and GetCompositeSchedule (`composite_schedule`).

No sockets, no asyncio, no clock: every time is passed in as an aware datetime (converted to UTC).

Decisions where OCPP 1.6 is silent or ambiguous (see tests/sim/test_smart_charging.py for each; the stack of
TxDefaultProfiles on connector 0 and N is in profiles.py):
- A period's limit in force is found per purpose; when no profile of a stack has a period covering the
  instant, the next lower stackLevel takes over (§3.13.2 "duration expired").
- `limit_at` reports the profiles only (amps None = unlimited); the charger adds its own hardware limit.
  `composite_schedule` fills instants no profile covers with `rated_max_amps` (§7.13 requires at least
  one period) and does not cap profile limits at it.
- GetCompositeSchedule on connector 0 = min(ChargePointMaxProfile, sum over connectors of each
  connector's Tx/TxDefault limit, `rated_max_amps` where none): "the total expected power or current
  the Charge Point expects to consume from the grid" (GetCompositeSchedule.req, connectorId).
- Composite limits are `Decimal`s floored to 0.1 (the response schema's `multipleOf: 0.1`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from harness.sim.profiles import CHARGE_POINT_MAX, TX, TX_DEFAULT, InstalledProfiles, _is_int, _Period, _Profile, _utc

_TENTH = Decimal("0.1")
_EPSILON = Decimal("1e-9")  # absorbs float noise of unit conversions before flooring to 0.1


@dataclass(frozen=True)
class Limit:
    """The composite limit in force on a connector at an instant."""

    amps: float | None  # per-phase current limit, None = unlimited
    number_phases: int | None  # numberPhases of the period in force, None = not given (charger default)
    source: str  # e.g. "TxProfile#12", "ChargePointMaxProfile#1+TxDefaultProfile#3", "none"


@dataclass(frozen=True)
class _Hit:
    """A profile's period in force, with its limit converted to per-phase amps."""

    profile: _Profile
    period: _Period
    amps: float
    phases: int  # phases used for A<->W conversion


def _tenths(value: Decimal | float) -> Decimal:
    """Floor to a multiple of 0.1 (GetCompositeSchedule.conf limit has `multipleOf: 0.1`); never raises a limit."""
    number = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    return (number + _EPSILON).quantize(_TENTH, rounding=ROUND_FLOOR)


def _rfc3339(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ChargingProfileStore(InstalledProfiles):
    """Installed charging profiles of one charge point and the composite limits they yield."""

    # --- evaluation ----------------------------------------------------------------------------

    def _amps(self, unit: str, limit: Decimal, phases: int) -> float:
        # §7.14 numberPhases: 3 assumed unless given (here the charger's `phases`, default 3). A = W / (V * phases).
        return float(limit) if unit == "A" else float(limit) / (self.voltage * phases)

    def _winner(self, candidates: list[_Profile], at: datetime, relative_start: datetime) -> _Hit | None:
        """§3.13.2: the highest stackLevel among the profiles with a period in force wins."""
        for profile in candidates:
            period = profile.period_at(at, relative_start)
            if period is not None:
                phases = period.number_phases or self.phases
                return _Hit(profile, period, self._amps(profile.unit, period.limit, phases), phases)
        return None

    def _connector_hit(self, connector_id: int, at: datetime, relative_start: datetime) -> _Hit | None:
        """TxProfile if one is in force, else TxDefaultProfile (§3.13.1: TxProfile overrules TxDefaultProfile)."""
        return self._winner(self._stack(TX, connector_id), at, relative_start) or self._winner(
            self._stack(TX_DEFAULT, connector_id), at, relative_start
        )

    def limit_at(self, connector_id: int, at: datetime) -> Limit:
        """The limit in force on a connector (0 = the grid connection: ChargePointMaxProfile only) at `at`."""
        self._check_connector(connector_id)
        at = _utc(at, "at")
        max_hit = self._winner(self._stack(CHARGE_POINT_MAX, 0), at, at)
        hits = [max_hit]
        if connector_id > 0:
            hits.append(self._connector_hit(connector_id, at, self._relative_start(connector_id, at)))
        in_force = [h for h in hits if h is not None]
        if not in_force:
            return Limit(None, None, "none")
        # §3.13.3: the composite is the minimum of ChargePointMaxProfile and the Tx/TxDefault limit.
        binding = min(in_force, key=lambda h: h.amps)
        return Limit(binding.amps, binding.period.number_phases, "+".join(h.profile.label for h in in_force))

    # --- GetCompositeSchedule ------------------------------------------------------------------

    def composite_schedule(
        self, connector_id: int, duration: int, unit: str | None, *, now: datetime
    ) -> dict[str, Any] | None:
        """§5.7 GetCompositeSchedule: the camelCase chargingSchedule over [now, now+duration), or None (Rejected).

        None when the connector is unknown ("for instance if the connectorId is unknown"), the duration is
        negative or the unit is not A/W. Limits are Decimal, floored to 0.1.
        """
        if not _is_int(connector_id) or not 0 <= connector_id <= self.connectors:
            return None
        if not _is_int(duration) or duration < 0:
            return None
        if unit is None:  # chargingRateUnit absent: the charger's choice; ours is A, or W when it takes only W
            unit = "A" if "A" in self.allowed_units else self.allowed_units[0]
        if unit not in ("A", "W"):
            return None
        start = _utc(now, "now").replace(microsecond=0)
        end = start + timedelta(seconds=duration)
        connectors = [connector_id] if connector_id > 0 else list(range(1, self.connectors + 1))
        relative_starts = {c: self._relative_start(c, start) for c in connectors}

        offsets: set[int] = {0}
        sources: list[tuple[_Profile, datetime]] = [(p, start) for p in self._stack(CHARGE_POINT_MAX, 0)]
        for c in connectors:
            sources += [(p, relative_starts[c]) for p in self._stack(TX, c) + self._stack(TX_DEFAULT, c)]
        for profile, relative_start in sources:
            for edge in profile.edges(start, end, relative_start):
                offset = math.ceil((edge - start).total_seconds())
                if 0 < offset < duration:
                    offsets.add(offset)

        periods: list[dict[str, Any]] = []
        for offset in sorted(offsets):
            at = start + timedelta(seconds=offset)
            limit, phases = self._composite_value(connector_id, at, unit, start, relative_starts)
            if periods and periods[-1]["limit"] == limit and periods[-1].get("numberPhases") == phases:
                continue  # merge: the limit does not change
            period: dict[str, Any] = {"startPeriod": offset, "limit": limit}
            if phases is not None:
                period["numberPhases"] = phases
            periods.append(period)
        return {
            "duration": duration,
            "startSchedule": _rfc3339(start),
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": periods,
        }

    def _in_unit(self, hit: _Hit | None, unit: str) -> tuple[float, Decimal]:
        """(amps, limit in `unit`) of a hit; None = no profile in force = the rated maximum."""
        if hit is None:
            rated = Decimal(repr(self.rated_max_amps))
            return self.rated_max_amps, rated if unit == "A" else rated * Decimal(repr(self.voltage)) * self.phases
        if hit.profile.unit == unit:
            return hit.amps, hit.period.limit
        if unit == "A":
            return hit.amps, Decimal(repr(hit.amps))
        return hit.amps, hit.period.limit * Decimal(repr(self.voltage)) * hit.phases  # A -> W

    def _composite_value(
        self, connector_id: int, at: datetime, unit: str, start: datetime, relative_starts: dict[int, datetime]
    ) -> tuple[Decimal, int | None]:
        # A Relative ChargePointMaxProfile has no transaction: it counts from the start of the composite schedule.
        max_hit = self._winner(self._stack(CHARGE_POINT_MAX, 0), at, start)
        if connector_id > 0:
            hit = self._connector_hit(connector_id, at, relative_starts[connector_id])
            amps, value = self._in_unit(hit, unit)
            phases = hit.period.number_phases if hit is not None else None
        else:
            # Grid connection: what all connectors may draw together (rated maximum where nothing limits one).
            amps, value, phases = 0.0, Decimal(0), None
            for c in relative_starts:
                c_amps, c_value = self._in_unit(self._connector_hit(c, at, relative_starts[c]), unit)
                amps += c_amps
                value += c_value
        if max_hit is not None and max_hit.amps < amps:
            _, value = self._in_unit(max_hit, unit)
            phases = max_hit.period.number_phases
        return _tenths(value), phases
