"""Sans-I/O OCPP 1.6 smart-charging model for the reference charger (§3.13, §5.4, §5.7, §5.16, §7.x).

No sockets, no asyncio, no clock: every time is passed in as an aware datetime (converted to UTC).
Profiles arrive as the camelCase dicts of SetChargingProfile.req `csChargingProfiles`; numbers may be
`int`, `float` or `decimal.Decimal`, date-times are RFC 3339 strings (or aware datetimes).

Decisions where OCPP 1.6 is silent or ambiguous (see the module tests for each):
- TxDefaultProfiles on connector 0 and on connector N form one stack for connector N (§3.13.2: the
  prevailing profile is the one with the highest stackLevel); at an equal stackLevel the profile of
  connector N wins ("replaced only for that specific connector", §7.10 TxDefaultProfile).
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

import copy
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import ROUND_FLOOR, Decimal
from typing import Any, TypeGuard

from harness.ocppj import parse_datetime

ACCEPTED = "Accepted"
REJECTED = "Rejected"

CHARGE_POINT_MAX = "ChargePointMaxProfile"
TX_DEFAULT = "TxDefaultProfile"
TX = "TxProfile"
PURPOSES: tuple[str, ...] = (CHARGE_POINT_MAX, TX_DEFAULT, TX)

ABSOLUTE = "Absolute"
RECURRING = "Recurring"
RELATIVE = "Relative"
KINDS: tuple[str, ...] = (ABSOLUTE, RECURRING, RELATIVE)

# §7 RecurrencyKindType: Daily restarts every 24 hours, Weekly every 7 days, at the time of startSchedule.
RECURRENCE: dict[str, timedelta] = {"Daily": timedelta(days=1), "Weekly": timedelta(days=7)}

_TENTH = Decimal("0.1")
_EPSILON = Decimal("1e-9")  # absorbs float noise of unit conversions before flooring to 0.1


class _Rejected(Exception):
    """A profile the charger answers with SetChargingProfile.conf status Rejected."""


@dataclass(frozen=True)
class Limit:
    """The composite limit in force on a connector at an instant."""

    amps: float | None  # per-phase current limit, None = unlimited
    number_phases: int | None  # numberPhases of the period in force, None = not given (charger default)
    source: str  # e.g. "TxProfile#12", "ChargePointMaxProfile#1+TxDefaultProfile#3", "none"


@dataclass(frozen=True)
class _Period:
    start: timedelta  # startPeriod
    limit: Decimal  # in the schedule's chargingRateUnit
    number_phases: int | None


@dataclass(frozen=True)
class _Profile:
    id: int
    connector_id: int
    stack_level: int
    purpose: str
    kind: str
    recurrency: timedelta | None  # cycle length of a Recurring profile
    valid_from: datetime | None
    valid_to: datetime | None
    start: datetime | None  # resolved start of Absolute/Recurring schedules; None for Relative
    duration: timedelta | None  # None = the last period continues indefinitely
    unit: str
    periods: tuple[_Period, ...]
    transaction_id: int | None
    raw: dict[str, Any] = field(compare=False, repr=False)

    @property
    def label(self) -> str:
        return f"{self.purpose}#{self.id}"

    def expired(self, now: datetime) -> bool:
        if self.valid_to is not None and self.valid_to <= now:
            return True
        # An Absolute schedule whose duration has elapsed never applies again.
        return (
            self.kind == ABSOLUTE
            and self.start is not None
            and self.duration is not None
            and self.start + self.duration <= now
        )

    def period_at(self, at: datetime, relative_start: datetime) -> _Period | None:
        """The period in force at `at`, or None if the profile is not valid or its schedule has no period then."""
        # §7.8 ChargingProfile: validFrom/validTo bound when the profile is valid.
        if self.valid_from is not None and at < self.valid_from:
            return None
        if self.valid_to is not None and at >= self.valid_to:
            return None
        origin = relative_start if self.kind == RELATIVE else self.start
        assert origin is not None
        offset = at - origin
        if offset < timedelta(0):
            return None
        if self.recurrency is not None:
            offset %= self.recurrency
        # §7.13 ChargingSchedule.duration: absent = the last period continues indefinitely.
        if self.duration is not None and offset >= self.duration:
            return None
        chosen: _Period | None = None
        for period in self.periods:
            if period.start > offset:
                break
            chosen = period
        return chosen

    def edges(self, window_start: datetime, window_end: datetime, relative_start: datetime) -> Iterator[datetime]:
        """Instants in or around [window_start, window_end) at which this profile's limit may change."""
        if self.valid_from is not None:
            yield self.valid_from
        if self.valid_to is not None:
            yield self.valid_to
        origin = relative_start if self.kind == RELATIVE else self.start
        assert origin is not None
        if self.recurrency is None:
            yield from (origin + p.start for p in self.periods)
            if self.duration is not None:
                yield origin + self.duration
            return
        cycle = self.recurrency
        first = max(0, (window_start - origin) // cycle)
        last = (window_end - origin) // cycle + 1
        for k in range(first, last + 1):
            cycle_start = origin + k * cycle
            yield from (cycle_start + p.start for p in self.periods if p.start < cycle)
            if self.duration is not None and self.duration < cycle:
                yield cycle_start + self.duration


@dataclass(frozen=True)
class _Hit:
    """A profile's period in force, with its limit converted to per-phase amps."""

    profile: _Profile
    period: _Period
    amps: float
    phases: int  # phases used for A<->W conversion


def _utc(value: datetime, what: str = "time") -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime, got naive {value!r}")
    return value.astimezone(timezone.utc)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise _Rejected(f"{what} is not a number: {value!r}")
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        raise _Rejected(f"{what} is not finite: {value!r}")
    return number


def _datetime(value: object, what: str) -> datetime:
    if isinstance(value, datetime):
        try:
            return _utc(value, what)
        except ValueError as exc:
            raise _Rejected(str(exc)) from None
    if not isinstance(value, str):
        raise _Rejected(f"{what} is not a date-time: {value!r}")
    try:
        return parse_datetime(value).astimezone(timezone.utc)
    except ValueError as exc:
        raise _Rejected(f"{what}: {exc}") from None


def _tenths(value: Decimal | float) -> Decimal:
    """Floor to a multiple of 0.1 (GetCompositeSchedule.conf limit has `multipleOf: 0.1`); never raises a limit."""
    number = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    return (number + _EPSILON).quantize(_TENTH, rounding=ROUND_FLOOR)


def _rfc3339(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ChargingProfileStore:
    """Installed charging profiles of one charge point and the composite limits they yield."""

    def __init__(
        self,
        connectors: int,
        *,
        max_stack_level: int = 10,
        max_profiles: int = 20,
        allowed_units: tuple[str, ...] = ("A", "W"),
        voltage: float = 230.0,
        phases: int = 3,
        rated_max_amps: float = 32.0,
        max_periods: int = 24,
    ) -> None:
        if connectors < 1:
            raise ValueError("a charge point has at least one connector")
        if phases not in (1, 2, 3):
            raise ValueError("phases must be 1, 2 or 3")
        self.connectors = connectors
        self.max_stack_level = max_stack_level  # config key ChargeProfileMaxStackLevel
        self.max_profiles = max_profiles  # config key MaxChargingProfilesInstalled
        self.allowed_units = tuple(allowed_units)  # config key ChargingScheduleAllowedChargingRateUnit
        self.max_periods = max_periods  # config key ChargingScheduleMaxPeriods
        self.voltage = float(voltage)
        self.phases = phases
        self.rated_max_amps = float(rated_max_amps)
        self.last_reason: str | None = None  # why the last set_profile was Rejected (None if Accepted)
        self._profiles: list[_Profile] = []
        self._transactions: dict[int, tuple[int, datetime]] = {}  # connector -> (transactionId, start)

    # --- SetChargingProfile --------------------------------------------------------------------

    def set_profile(
        self, connector_id: int, profile: Mapping[str, Any], *, transaction_id: int | None, now: datetime
    ) -> str:
        """§5.16 SetChargingProfile: install `profile` on `connector_id`; "Accepted" or "Rejected"."""
        now = _utc(now, "now")
        try:
            new = self._parse(connector_id, profile, transaction_id, now)
            # §3.13.2 / §5.16: a profile with the same chargingProfileId replaces the old one (wherever it is);
            # one with the same stackLevel and purpose on the same connector replaces it too.
            kept = [
                p
                for p in self._profiles
                if p.id != new.id
                and not (
                    p.connector_id == new.connector_id
                    and p.purpose == new.purpose
                    and p.stack_level == new.stack_level
                )
                and not p.expired(now)  # a real charger drops profiles that can never apply again
            ]
            # Config key MaxChargingProfilesInstalled: no room left -> Rejected.
            if len(kept) >= self.max_profiles:
                raise _Rejected(f"{len(kept)} profiles installed, MaxChargingProfilesInstalled is {self.max_profiles}")
        except _Rejected as exc:
            self.last_reason = str(exc)
            return REJECTED
        self._profiles = [*kept, new]
        self.last_reason = None
        return ACCEPTED

    def _parse(
        self, connector_id: int, profile: Mapping[str, Any], transaction_id: int | None, now: datetime
    ) -> _Profile:
        if not _is_int(connector_id) or not 0 <= connector_id <= self.connectors:
            raise _Rejected(f"connectorId {connector_id!r} is not 0..{self.connectors}")
        if not isinstance(profile, Mapping):
            raise _Rejected("csChargingProfiles is not an object")

        profile_id = profile.get("chargingProfileId")
        if not _is_int(profile_id):
            raise _Rejected(f"chargingProfileId {profile_id!r} is not an integer")
        stack_level = profile.get("stackLevel")
        # §7.8 stackLevel: lowest level is 0; config key ChargeProfileMaxStackLevel bounds it.
        if not _is_int(stack_level) or not 0 <= stack_level <= self.max_stack_level:
            raise _Rejected(f"stackLevel {stack_level!r} is not 0..{self.max_stack_level}")
        purpose = profile.get("chargingProfilePurpose")
        if purpose not in PURPOSES:
            raise _Rejected(f"chargingProfilePurpose {purpose!r} unknown")
        kind = profile.get("chargingProfileKind")
        if kind not in KINDS:
            raise _Rejected(f"chargingProfileKind {kind!r} unknown")

        bound_transaction: int | None = None
        if purpose == CHARGE_POINT_MAX and connector_id != 0:
            # §3.13.1 / §7.10: ChargePointMaxProfile can only be set at Charge Point ConnectorId 0.
            raise _Rejected("ChargePointMaxProfile only on connectorId 0")
        if purpose == TX:
            # §7.10: TxProfile SHALL only be set at Charge Point ConnectorId >0.
            if connector_id == 0:
                raise _Rejected("TxProfile only on a connectorId > 0")
            # §3.13.1 / §5.16: without an active transaction on that connector the Charge Point SHALL discard
            # a TxProfile and return an error status.
            if transaction_id is None:
                raise _Rejected(f"TxProfile without an active transaction on connector {connector_id}")
            # §7.8 transactionId: MAY be used to match the profile to a specific transaction.
            given = profile.get("transactionId")
            if given is not None and given != transaction_id:
                raise _Rejected(f"TxProfile transactionId {given!r} is not the active transaction {transaction_id}")
            bound_transaction = transaction_id
        # transactionId on other purposes: §7.8 "only valid if purpose is TxProfile" -> ignored, not rejected.

        valid_from = _datetime(profile["validFrom"], "validFrom") if profile.get("validFrom") is not None else None
        valid_to = _datetime(profile["validTo"], "validTo") if profile.get("validTo") is not None else None
        if valid_from is not None and valid_to is not None and valid_to <= valid_from:
            raise _Rejected("validTo is not after validFrom")

        schedule = profile.get("chargingSchedule")
        if not isinstance(schedule, Mapping):
            raise _Rejected("chargingSchedule missing")
        unit = schedule.get("chargingRateUnit")
        if unit not in ("A", "W"):
            raise _Rejected(f"chargingRateUnit {unit!r} unknown")
        # Config key ChargingScheduleAllowedChargingRateUnit: a unit the charger does not support -> Rejected.
        if unit not in self.allowed_units:
            raise _Rejected(f"chargingRateUnit {unit} not allowed (ChargingScheduleAllowedChargingRateUnit)")

        duration: timedelta | None = None
        raw_duration = schedule.get("duration")
        if raw_duration is not None:
            if not _is_int(raw_duration) or raw_duration < 0:
                raise _Rejected(f"duration {raw_duration!r} is not a non-negative integer")
            # Lenient: some central systems send duration 0 for "no end"; a 0-second schedule is meaningless.
            duration = timedelta(seconds=raw_duration) if raw_duration > 0 else None

        periods = self._parse_periods(schedule.get("chargingSchedulePeriod"))

        start: datetime | None = None
        raw_start = schedule.get("startSchedule")
        recurrency: timedelta | None = None
        if kind == RELATIVE:
            # §7.13 startSchedule: "Starting point of an absolute schedule"; a Relative schedule starts with the
            # transaction, so a startSchedule contradicts its kind.
            if raw_start is not None:
                raise _Rejected("Relative profile with a startSchedule")
        elif raw_start is not None:
            start = _datetime(raw_start, "startSchedule")
        elif kind == ABSOLUTE:
            start = now  # lenient: an Absolute schedule without startSchedule starts when it is received
        if kind == RECURRING:
            recurrency_kind = profile.get("recurrencyKind")
            if recurrency_kind not in RECURRENCE:
                raise _Rejected(f"Recurring profile with recurrencyKind {recurrency_kind!r}")
            recurrency = RECURRENCE[recurrency_kind]
            if start is None:
                # Lenient, after the 1.6 RecurrencyKindType text: "restarts at the beginning of the next day"
                # (Daily) / "of the next week (defined as Monday morning)" (Weekly): anchor at 00:00 UTC.
                start = now.replace(hour=0, minute=0, second=0, microsecond=0)
                if recurrency_kind == "Weekly":
                    start -= timedelta(days=start.weekday())

        return _Profile(
            id=profile_id,
            connector_id=connector_id,
            stack_level=stack_level,
            purpose=purpose,
            kind=kind,
            recurrency=recurrency,
            valid_from=valid_from,
            valid_to=valid_to,
            start=start,
            duration=duration,
            unit=unit,
            periods=periods,
            transaction_id=bound_transaction,
            raw=copy.deepcopy(dict(profile)),
        )

    def _parse_periods(self, raw_periods: object) -> tuple[_Period, ...]:
        # §7.13: chargingSchedulePeriod is 1..*; config key ChargingScheduleMaxPeriods bounds it.
        if not isinstance(raw_periods, (list, tuple)) or not raw_periods:
            raise _Rejected("chargingSchedulePeriod is empty")
        if len(raw_periods) > self.max_periods:
            raise _Rejected(f"{len(raw_periods)} periods, ChargingScheduleMaxPeriods is {self.max_periods}")
        periods: list[_Period] = []
        for index, raw in enumerate(raw_periods):
            if not isinstance(raw, Mapping):
                raise _Rejected(f"chargingSchedulePeriod[{index}] is not an object")
            start_period = raw.get("startPeriod")
            if not _is_int(start_period) or start_period < 0:
                raise _Rejected(f"chargingSchedulePeriod[{index}].startPeriod {start_period!r} invalid")
            # §7.14 startPeriod "also defines the stop time of the previous period": strictly increasing.
            if periods and timedelta(seconds=start_period) <= periods[-1].start:
                raise _Rejected(f"chargingSchedulePeriod[{index}].startPeriod not after the previous one")
            limit = _number(raw.get("limit"), f"chargingSchedulePeriod[{index}].limit")
            if limit < 0:
                raise _Rejected(f"chargingSchedulePeriod[{index}].limit is negative")
            phases = raw.get("numberPhases")
            if phases is not None and (not _is_int(phases) or not 1 <= phases <= 3):
                raise _Rejected(f"chargingSchedulePeriod[{index}].numberPhases {phases!r} is not 1..3")
            periods.append(_Period(timedelta(seconds=start_period), limit, phases))
        return tuple(periods)

    # --- ClearChargingProfile ------------------------------------------------------------------

    def clear(
        self,
        *,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> bool:
        """§5.4 ClearChargingProfile: True ("Accepted") if anything was removed, else False ("Unknown").

        An id selects by itself; otherwise connectorId (0 = the profiles set on connector 0), purpose and
        stackLevel are AND-ed; no filter at all clears every profile.
        """
        if profile_id is not None:
            doomed = [p for p in self._profiles if p.id == profile_id]
        else:
            doomed = [
                p
                for p in self._profiles
                if (connector_id is None or p.connector_id == connector_id)
                and (purpose is None or p.purpose == purpose)
                and (stack_level is None or p.stack_level == stack_level)
            ]
        if not doomed:
            return False
        self._profiles = [p for p in self._profiles if p not in doomed]
        return True

    # --- transactions --------------------------------------------------------------------------

    def transaction_started(self, connector_id: int, transaction_id: int, at: datetime) -> None:
        """Relative schedules on this connector count from `at` (§7.13 startSchedule absent: start of charging)."""
        self._check_connector(connector_id, allow_zero=False)
        self._transactions[connector_id] = (transaction_id, _utc(at, "at"))
        # A TxProfile bound to another (missed) transaction must not govern this one.
        self._profiles = [
            p
            for p in self._profiles
            if not (p.purpose == TX and p.connector_id == connector_id and p.transaction_id != transaction_id)
        ]

    def transaction_ended(self, connector_id: int) -> None:
        """§3.13.1 / §7.10 TxProfile: after the transaction is stopped the profile SHOULD be deleted."""
        self._check_connector(connector_id, allow_zero=False)
        self._transactions.pop(connector_id, None)
        self._profiles = [p for p in self._profiles if not (p.purpose == TX and p.connector_id == connector_id)]

    def _check_connector(self, connector_id: int, *, allow_zero: bool = True) -> None:
        low = 0 if allow_zero else 1
        if not _is_int(connector_id) or not low <= connector_id <= self.connectors:
            raise ValueError(f"connector {connector_id!r} is not {low}..{self.connectors}")

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

    def _stack(self, purpose: str, connector_id: int) -> list[_Profile]:
        """Profiles of `purpose` applying to `connector_id`, best first (stackLevel, then connector-specific)."""
        if purpose == TX_DEFAULT:
            # §7.10: a TxDefaultProfile on connector 0 applies to all connectors; one on connector N replaces it
            # only for that connector -> at an equal stackLevel the connector's own profile comes first.
            owners = {0, connector_id}
        else:
            owners = {0 if purpose == CHARGE_POINT_MAX else connector_id}
        found = [p for p in self._profiles if p.purpose == purpose and p.connector_id in owners]
        return sorted(found, key=lambda p: (-p.stack_level, p.connector_id == 0))

    def _relative_start(self, connector_id: int, default: datetime) -> datetime:
        transaction = self._transactions.get(connector_id)
        return transaction[1] if transaction is not None else default

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

    # --- inspection ----------------------------------------------------------------------------

    def profiles(self, connector_id: int | None = None) -> list[dict[str, Any]]:
        """Installed profiles as SetChargingProfile.req payloads ({"connectorId", "csChargingProfiles"}).

        `connector_id` selects the profiles installed on exactly that connector (0 = those set on 0).
        """
        chosen = [p for p in self._profiles if connector_id is None or p.connector_id == connector_id]
        chosen.sort(key=lambda p: (p.connector_id, PURPOSES.index(p.purpose), p.stack_level, p.id))
        return [{"connectorId": p.connector_id, "csChargingProfiles": copy.deepcopy(p.raw)} for p in chosen]
