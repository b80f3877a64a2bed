"""Sans-I/O OCPP 1.6 charging profiles of the reference charger: what is installed (§3.13, §5.4, §5.16, §7.8-7.14).

SetChargingProfile's validation (Accepted or Rejected, with the reason), ClearChargingProfile, the profiles a
transaction's start and end drop, and which profiles of a purpose apply to a connector, best first (the stack).
What limit they yield is harness/sim/smart_charging.py's (ChargingProfileStore, built on InstalledProfiles).

No sockets, no asyncio, no clock: every time is passed in as an aware datetime (converted to UTC).
Profiles arrive as the camelCase dicts of SetChargingProfile.req `csChargingProfiles`; numbers may be
`int`, `float` or `decimal.Decimal`, date-times are RFC 3339 strings (or aware datetimes).

Decision where OCPP 1.6 is silent or ambiguous (see tests/sim/test_smart_charging.py):
- TxDefaultProfiles on connector 0 and on connector N form one stack for connector N (§3.13.2: the
  prevailing profile is the one with the highest stackLevel); at an equal stackLevel the profile of
  connector N wins ("replaced only for that specific connector", §7.10 TxDefaultProfile).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
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


class _Rejected(Exception):
    """A profile the charger answers with SetChargingProfile.conf status Rejected."""


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


class InstalledProfiles:
    """Installed charging profiles of one charge point: set, cleared, dropped with their transaction."""

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

    # --- stacks: which profiles of a purpose apply to a connector ------------------------------

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

    # --- inspection ----------------------------------------------------------------------------

    def profiles(self, connector_id: int | None = None) -> list[dict[str, Any]]:
        """Installed profiles as SetChargingProfile.req payloads ({"connectorId", "csChargingProfiles"}).

        `connector_id` selects the profiles installed on exactly that connector (0 = those set on 0).
        """
        chosen = [p for p in self._profiles if connector_id is None or p.connector_id == connector_id]
        chosen.sort(key=lambda p: (p.connector_id, PURPOSES.index(p.purpose), p.stack_level, p.id))
        return [{"connectorId": p.connector_id, "csChargingProfiles": copy.deepcopy(p.raw)} for p in chosen]
