"""Unit tests of the sans-I/O smart-charging model (harness/sim/smart_charging.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from harness import ocppj
from harness.sim.smart_charging import ChargingProfileStore, Limit

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc)  # a Monday


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def profile(
    pid: int,
    purpose: str = "TxDefaultProfile",
    *,
    stack: int = 0,
    periods: tuple[tuple[int, Any], ...] | list[tuple[int, Any]] = ((0, 16),),
    unit: str = "A",
    kind: str = "Absolute",
    start: datetime | None = T0,
    duration: int | None = None,
    phases: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [
            {"startPeriod": s, "limit": lim, **({"numberPhases": phases} if phases else {})} for s, lim in periods
        ],
    }
    if start is not None:
        schedule["startSchedule"] = iso(start)
    if duration is not None:
        schedule["duration"] = duration
    body: dict[str, Any] = {
        "chargingProfileId": pid,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": schedule,
    }
    body.update(extra)
    return body


@pytest.fixture
def store() -> ChargingProfileStore:
    return ChargingProfileStore(2)


def accept(store: ChargingProfileStore, connector: int, body: dict[str, Any], tx: int | None = None) -> None:
    assert store.set_profile(connector, body, transaction_id=tx, now=T0) == "Accepted", store.last_reason


def amps(store: ChargingProfileStore, connector: int, seconds: float) -> float | None:
    return store.limit_at(connector, at(seconds)).amps


def periods(schedule: dict[str, Any] | None) -> list[tuple[int, Any]]:
    assert schedule is not None
    return [(p["startPeriod"], p["limit"]) for p in schedule["chargingSchedulePeriod"]]


# --- stacking ------------------------------------------------------------------------------------


def test_higher_stack_level_wins_and_lower_takes_over_after_its_duration(store: ChargingProfileStore) -> None:
    accept(store, 1, profile(1, stack=0, periods=[(0, 6), (100, 8), (200, 10)], duration=400))
    accept(store, 1, profile(2, stack=1, periods=[(0, 10), (100, 7)], duration=150))
    assert amps(store, 1, 50) == 10  # stack 1
    assert amps(store, 1, 120) == 7  # stack 1, second period
    assert amps(store, 1, 160) == 8  # stack 1 over: stack 0's second period
    assert amps(store, 1, 250) == 10
    assert store.limit_at(1, at(450)) == Limit(None, None, "none")  # both durations over
    assert store.limit_at(1, at(50)).source == "TxDefaultProfile#2"
    assert periods(store.composite_schedule(1, 500, "A", now=T0)) == [
        (0, 10),
        (100, 7),
        (150, 8),
        (200, 10),
        (400, 32),  # nothing in force: the rated maximum
    ]


def test_stack_level_above_the_maximum_is_rejected() -> None:
    store = ChargingProfileStore(1, max_stack_level=3)
    assert store.set_profile(1, profile(1, stack=4), transaction_id=None, now=T0) == "Rejected"
    assert store.set_profile(1, profile(1, stack=-1), transaction_id=None, now=T0) == "Rejected"
    assert store.set_profile(1, profile(1, stack=3), transaction_id=None, now=T0) == "Accepted"


# --- replacement ---------------------------------------------------------------------------------


def test_same_id_replaces_wherever_it_is(store: ChargingProfileStore) -> None:
    accept(store, 1, profile(7, periods=[(0, 10)]))
    accept(store, 2, profile(7, stack=3, periods=[(0, 6)]))
    installed = store.profiles()
    assert [(p["connectorId"], p["csChargingProfiles"]["stackLevel"]) for p in installed] == [(2, 3)]
    assert amps(store, 1, 0) is None
    assert amps(store, 2, 0) == 6


def test_same_purpose_and_stack_level_on_the_same_connector_replaces(store: ChargingProfileStore) -> None:
    accept(store, 1, profile(1, stack=2, periods=[(0, 10)]))
    accept(store, 1, profile(2, stack=2, periods=[(0, 12)]))
    assert [p["csChargingProfiles"]["chargingProfileId"] for p in store.profiles(1)] == [2]
    assert amps(store, 1, 0) == 12
    # Another connector, another purpose or another stack level: kept side by side.
    accept(store, 2, profile(3, stack=2))
    accept(store, 1, profile(4, stack=3))
    accept(store, 0, profile(5, "ChargePointMaxProfile", stack=2))
    accept(store, 0, profile(6, stack=2))
    assert sorted(p["csChargingProfiles"]["chargingProfileId"] for p in store.profiles()) == [2, 3, 4, 5, 6]


def test_store_count_limit_rejects_but_replacement_still_fits() -> None:
    store = ChargingProfileStore(1, max_profiles=2)
    accept(store, 1, profile(1, stack=0))
    accept(store, 1, profile(2, stack=1))
    assert store.set_profile(1, profile(3, stack=2), transaction_id=None, now=T0) == "Rejected"
    assert "MaxChargingProfilesInstalled" in (store.last_reason or "")
    accept(store, 1, profile(2, stack=1, periods=[(0, 9)]))  # same id: a replacement, not a new one
    assert amps(store, 1, 0) == 9


def test_expired_profiles_are_dropped_when_a_new_one_arrives() -> None:
    store = ChargingProfileStore(1, max_profiles=1)
    accept(store, 1, profile(1, duration=60))
    later = T0 + timedelta(minutes=5)
    assert store.set_profile(1, profile(2, stack=1, start=later), transaction_id=None, now=later) == "Accepted"
    assert [p["csChargingProfiles"]["chargingProfileId"] for p in store.profiles()] == [2]


# --- purposes and connectors ---------------------------------------------------------------------


def test_tx_profile_needs_an_active_transaction_with_the_same_id(store: ChargingProfileStore) -> None:
    assert store.set_profile(1, profile(1, "TxProfile"), transaction_id=None, now=T0) == "Rejected"
    assert "transaction" in (store.last_reason or "")
    wrong = profile(1, "TxProfile", transactionId=99)
    assert store.set_profile(1, wrong, transaction_id=42, now=T0) == "Rejected"
    assert store.set_profile(0, profile(1, "TxProfile"), transaction_id=42, now=T0) == "Rejected"
    assert store.set_profile(1, profile(1, "TxProfile", transactionId=42), transaction_id=42, now=T0) == "Accepted"
    assert store.set_profile(1, profile(2, "TxProfile", stack=1), transaction_id=42, now=T0) == "Accepted"
    assert store.last_reason is None


def test_charge_point_max_profile_only_on_connector_zero(store: ChargingProfileStore) -> None:
    assert store.set_profile(1, profile(1, "ChargePointMaxProfile"), transaction_id=None, now=T0) == "Rejected"
    assert store.set_profile(0, profile(1, "ChargePointMaxProfile"), transaction_id=None, now=T0) == "Accepted"


@pytest.mark.parametrize("connector", [-1, 3])
def test_connector_out_of_range_is_rejected(store: ChargingProfileStore, connector: int) -> None:
    assert store.set_profile(connector, profile(1), transaction_id=None, now=T0) == "Rejected"
    assert store.composite_schedule(connector, 60, None, now=T0) is None
    with pytest.raises(ValueError):
        store.limit_at(connector, T0)


def test_unit_not_allowed_is_rejected() -> None:
    store = ChargingProfileStore(1, allowed_units=("A",))
    assert store.set_profile(1, profile(1, unit="W", periods=[(0, 11000)]), transaction_id=None, now=T0) == "Rejected"
    assert store.set_profile(1, profile(1, unit="A"), transaction_id=None, now=T0) == "Accepted"


@pytest.mark.parametrize(
    "body",
    [
        profile(1, kind="Relative", start=T0),  # Relative with a startSchedule
        profile(1, kind="Recurring"),  # Recurring without recurrencyKind
        profile(1, periods=[]),  # no period
        profile(1, periods=[(0, 10), (0, 12)]),  # startPeriod not increasing
        profile(1, periods=[(0, -1)]),  # negative limit
        profile(1, phases=4),
        profile(1, validFrom=iso(at(60)), validTo=iso(at(0))),
        profile(1, validFrom="2024-01-01 12:00"),  # not RFC 3339
        profile(1, periods=[(i * 10, 10) for i in range(25)]),  # more than ChargingScheduleMaxPeriods (24)
        {**profile(1), "chargingProfileKind": "Sometimes"},
    ],
)
def test_malformed_profiles_are_rejected(store: ChargingProfileStore, body: dict[str, Any]) -> None:
    assert store.set_profile(1, body, transaction_id=None, now=T0) == "Rejected"
    assert store.profiles() == []


def test_absolute_without_start_schedule_starts_when_received(store: ChargingProfileStore) -> None:
    received = at(1000)
    body = profile(1, start=None, periods=[(0, 10), (60, 20)], duration=120)
    assert store.set_profile(1, body, transaction_id=None, now=received) == "Accepted"
    assert amps(store, 1, 1030) == 10
    assert amps(store, 1, 1070) == 20
    assert amps(store, 1, 1130) is None


# --- composite across purposes -------------------------------------------------------------------


def test_composite_is_the_minimum_across_purposes(store: ChargingProfileStore) -> None:
    accept(store, 0, profile(1, "ChargePointMaxProfile", periods=[(0, 10)]))
    accept(store, 1, profile(2, periods=[(0, 16), (60, 6)]))
    assert store.limit_at(1, at(0)) == Limit(10.0, None, "ChargePointMaxProfile#1+TxDefaultProfile#2")
    assert amps(store, 1, 90) == 6
    assert store.limit_at(0, at(0)) == Limit(10.0, None, "ChargePointMaxProfile#1")  # grid view
    assert periods(store.composite_schedule(1, 120, "A", now=T0)) == [(0, 10), (60, 6)]


def test_tx_profile_overrules_tx_default_even_when_higher(store: ChargingProfileStore) -> None:
    accept(store, 1, profile(1, periods=[(0, 6)], stack=5))
    store.transaction_started(1, 42, T0)
    accept(store, 1, profile(2, "TxProfile", periods=[(0, 16)], duration=60), tx=42)
    assert store.limit_at(1, at(10)) == Limit(16.0, None, "TxProfile#2")
    assert amps(store, 1, 70) == 6  # the TxProfile's schedule is over: TxDefaultProfile applies again
    assert amps(store, 2, 10) is None  # the TxProfile is only for connector 1


def test_tx_default_of_the_connector_replaces_connector_zero_only_there(store: ChargingProfileStore) -> None:
    accept(store, 0, profile(1, stack=1, periods=[(0, 16)]))
    accept(store, 1, profile(2, stack=1, periods=[(0, 10)]))
    assert store.limit_at(1, at(0)).source == "TxDefaultProfile#2"
    assert amps(store, 1, 0) == 10
    assert amps(store, 2, 0) == 16  # connector 2 still has the connector-0 default
    # §3.13.2: the highest stackLevel prevails, wherever it was set.
    accept(store, 0, profile(3, stack=2, periods=[(0, 8)]))
    assert amps(store, 1, 0) == 8


def test_transaction_end_removes_tx_profiles(store: ChargingProfileStore) -> None:
    accept(store, 1, profile(1, periods=[(0, 6)]))
    store.transaction_started(1, 42, T0)
    accept(store, 1, profile(2, "TxProfile", periods=[(0, 16)]), tx=42)
    store.transaction_started(2, 43, T0)
    accept(store, 2, profile(3, "TxProfile", periods=[(0, 12)]), tx=43)
    store.transaction_ended(1)
    assert [p["csChargingProfiles"]["chargingProfileId"] for p in store.profiles()] == [1, 3]
    assert amps(store, 1, 0) == 6
    assert amps(store, 2, 0) == 12


def test_a_new_transaction_drops_tx_profiles_of_a_missed_one(store: ChargingProfileStore) -> None:
    store.transaction_started(1, 42, T0)
    accept(store, 1, profile(1, "TxProfile", periods=[(0, 16)]), tx=42)
    store.transaction_started(1, 43, at(60))  # the end of 42 was never reported (e.g. a reboot)
    assert store.profiles() == []


def test_limit_below_min_charging_rate_stays_as_given(store: ChargingProfileStore) -> None:
    body = profile(1, periods=[(0, 4)])
    body["chargingSchedule"]["minChargingRate"] = 6
    accept(store, 1, body)
    assert amps(store, 1, 0) == 4


# --- schedule kinds ------------------------------------------------------------------------------


def test_relative_profile_counts_from_the_transaction_start(store: ChargingProfileStore) -> None:
    body = profile(1, kind="Relative", start=None, periods=[(0, 10), (600, 16)], duration=1200)
    accept(store, 1, body)
    # No transaction: a Relative schedule is taken as starting now.
    assert amps(store, 1, 5000) == 10
    store.transaction_started(1, 42, at(1000))
    assert amps(store, 1, 1300) == 10
    assert amps(store, 1, 1700) == 16
    assert amps(store, 1, 2300) is None  # 1200 s after the transaction start
    # A Relative TxProfile set later still counts from the transaction start.
    accept(store, 1, profile(2, "TxProfile", kind="Relative", start=None, periods=[(0, 8), (900, 12)]), tx=42)
    assert amps(store, 1, 1800) == 8
    assert amps(store, 1, 1950) == 12
    # The composite schedule follows the transaction start too.
    assert periods(store.composite_schedule(1, 1000, "A", now=at(1800))) == [(0, 8), (100, 12)]


def test_relative_composite_without_transaction_starts_at_the_request(store: ChargingProfileStore) -> None:
    accept(store, 1, profile(1, kind="Relative", start=None, periods=[(0, 10), (600, 16)]))
    assert periods(store.composite_schedule(1, 900, None, now=at(5000))) == [(0, 10), (600, 16)]


def test_recurring_daily_wraps_around_midnight(store: ChargingProfileStore) -> None:
    night = datetime(2024, 1, 1, 22, 0, tzinfo=timezone.utc)
    body = profile(
        1,
        kind="Recurring",
        recurrencyKind="Daily",
        start=night,
        periods=[(0, 6), (4 * 3600, 16)],  # 22:00 6 A, 02:00 16 A
        duration=8 * 3600,  # until 06:00
    )
    accept(store, 1, body)

    def on(day: int, hour: int, minute: int = 0) -> float | None:
        return store.limit_at(1, datetime(2024, 1, day, hour, minute, tzinfo=timezone.utc)).amps

    assert on(1, 21, 59) is None  # before the first start
    assert on(1, 23) == 6
    assert on(2, 1) == 6  # past midnight
    assert on(2, 3) == 16
    assert on(2, 6, 1) is None
    assert on(2, 12) is None
    assert on(5, 22, 30) == 6  # days later, same times
    assert on(6, 5, 59) == 16
    schedule = store.composite_schedule(1, 24 * 3600, "A", now=datetime(2024, 1, 3, 12, 0, tzinfo=timezone.utc))
    assert periods(schedule) == [(0, 32), (10 * 3600, 6), (14 * 3600, 16), (18 * 3600, 32)]


def test_recurring_weekly(store: ChargingProfileStore) -> None:
    body = profile(1, kind="Recurring", recurrencyKind="Weekly", periods=[(0, 10)], duration=3600)
    accept(store, 1, body)  # Monday 12:00 for an hour
    assert amps(store, 1, 7 * 86400 + 1800) == 10
    assert amps(store, 1, 1 * 86400 + 1800) is None
    assert amps(store, 1, 14 * 86400 + 3599) == 10


def test_valid_from_and_valid_to_are_respected(store: ChargingProfileStore) -> None:
    accept(store, 1, profile(1, periods=[(0, 6)]))
    accept(store, 1, profile(2, stack=1, periods=[(0, 20)], validFrom=iso(at(100)), validTo=iso(at(200))))
    assert amps(store, 1, 99) == 6
    assert amps(store, 1, 100) == 20
    assert amps(store, 1, 199) == 20
    assert amps(store, 1, 200) == 6
    assert periods(store.composite_schedule(1, 300, "A", now=T0)) == [(0, 6), (100, 20), (200, 6)]


# --- units ---------------------------------------------------------------------------------------


def test_watt_profile_is_converted_to_amps(store: ChargingProfileStore) -> None:
    accept(store, 1, profile(1, unit="W", periods=[(0, 11040)]))  # 3 phases assumed
    assert amps(store, 1, 0) == pytest.approx(16.0)
    accept(store, 2, profile(2, unit="W", periods=[(0, 7360)], phases=1))
    assert store.limit_at(2, T0) == Limit(pytest.approx(32.0), 1, "TxDefaultProfile#2")  # type: ignore[arg-type]
    schedule = store.composite_schedule(1, 60, "A", now=T0)
    assert periods(schedule) == [(0, Decimal("16.0"))]
    accept(store, 1, profile(1, unit="W", periods=[(0, 11000)]))  # 15.94 A: floored to 0.1
    assert periods(store.composite_schedule(1, 60, "A", now=T0)) == [(0, Decimal("15.9"))]


def test_composite_schedule_asked_in_watts(store: ChargingProfileStore) -> None:
    accept(store, 1, profile(1, periods=[(0, 16), (60, 10)]))
    accept(store, 2, profile(2, periods=[(0, 16)], phases=1))
    schedule = store.composite_schedule(1, 120, "W", now=T0)
    assert schedule is not None and schedule["chargingRateUnit"] == "W"
    assert periods(schedule) == [(0, 11040), (60, 6900)]
    one_phase = store.composite_schedule(2, 60, "W", now=T0)
    assert one_phase is not None
    assert one_phase["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 3680, "numberPhases": 1}]
    # A watt profile asked in watts comes back as given.
    accept(store, 1, profile(3, stack=1, unit="W", periods=[(0, Decimal("7000.5"))]))
    assert periods(store.composite_schedule(1, 60, "W", now=T0)) == [(0, Decimal("7000.5"))]


def test_decimal_limits(store: ChargingProfileStore) -> None:
    accept(store, 1, profile(1, periods=[(0, Decimal("6.3"))]))
    assert amps(store, 1, 0) == 6.3
    schedule = store.composite_schedule(1, 60, None, now=T0)
    assert schedule is not None
    assert schedule["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": Decimal("6.3")}]
    response = {"status": "Accepted", "connectorId": 1, "scheduleStart": schedule["startSchedule"],
                "chargingSchedule": schedule}
    assert ocppj.schemas().response_problems("GetCompositeSchedule", response) == []
    # The profile as it would arrive off the wire (numbers parsed as Decimal by the OCPP-J core).
    wire = ocppj.decode_json(ocppj.encode_json(profile(2, stack=1, periods=[(0, Decimal("7.1"))])))
    accept(store, 1, wire)
    assert amps(store, 1, 0) == pytest.approx(7.1)


# --- composite schedule --------------------------------------------------------------------------


def test_composite_schedule_merges_periods_and_cuts_at_duration(store: ChargingProfileStore) -> None:
    accept(store, 1, profile(1, periods=[(0, 10), (100, 10), (200, 16), (300, 6)]))
    full = store.composite_schedule(1, 400, "A", now=T0)
    assert full == {
        "duration": 400,
        "startSchedule": "2024-01-01T12:00:00Z",
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 10},
            {"startPeriod": 200, "limit": 16},
            {"startPeriod": 300, "limit": 6},
        ],
    }
    assert periods(store.composite_schedule(1, 150, "A", now=T0)) == [(0, 10)]
    later = store.composite_schedule(1, 150, "A", now=at(250.7))  # started mid-schedule, sub-second dropped
    assert later is not None and later["startSchedule"] == "2024-01-01T12:04:10Z"
    assert periods(later) == [(0, 16), (50, 6)]


def test_composite_without_profiles_is_one_period_at_the_rated_maximum() -> None:
    store = ChargingProfileStore(1, rated_max_amps=16.0)
    assert periods(store.composite_schedule(1, 3600, None, now=T0)) == [(0, 16)]
    assert periods(store.composite_schedule(1, 3600, "W", now=T0)) == [(0, 11040)]
    assert store.limit_at(1, T0) == Limit(None, None, "none")


def test_composite_rejects_a_bad_request(store: ChargingProfileStore) -> None:
    assert store.composite_schedule(1, -1, "A", now=T0) is None
    assert store.composite_schedule(1, 60, "kW", now=T0) is None
    assert periods(store.composite_schedule(1, 0, "A", now=T0)) == [(0, 32)]


def test_composite_of_connector_zero_is_the_grid_view(store: ChargingProfileStore) -> None:
    accept(store, 0, profile(1, "ChargePointMaxProfile", periods=[(0, 40), (60, 20)]))
    accept(store, 0, profile(2, periods=[(0, 16)]))  # TxDefault on every connector: 2 x 16 = 32 A
    assert periods(store.composite_schedule(0, 120, "A", now=T0)) == [(0, 32), (60, 20)]
    assert periods(store.composite_schedule(0, 120, "W", now=T0)) == [(0, 22080), (60, 13800)]
    # Connector view: min(ChargePointMax, the connector's own limit).
    assert periods(store.composite_schedule(1, 120, "A", now=T0)) == [(0, 16)]


# --- ClearChargingProfile ------------------------------------------------------------------------


@pytest.fixture
def stocked(store: ChargingProfileStore) -> ChargingProfileStore:
    store.transaction_started(1, 42, T0)
    accept(store, 0, profile(1, "ChargePointMaxProfile", stack=0))
    accept(store, 0, profile(2, stack=1))
    accept(store, 1, profile(3, stack=1))
    accept(store, 1, profile(4, "TxProfile", stack=2), tx=42)
    accept(store, 2, profile(5, stack=2))
    return store


def ids(store: ChargingProfileStore) -> list[int]:
    return sorted(p["csChargingProfiles"]["chargingProfileId"] for p in store.profiles())


def test_clear_by_id(stocked: ChargingProfileStore) -> None:
    assert stocked.clear(profile_id=3) is True
    assert ids(stocked) == [1, 2, 4, 5]
    assert stocked.clear(profile_id=3) is False
    # An id selects alone: the other filters do not widen or narrow it.
    assert stocked.clear(profile_id=5, connector_id=1, purpose="TxProfile") is True
    assert ids(stocked) == [1, 2, 4]


def test_clear_by_connector(stocked: ChargingProfileStore) -> None:
    assert stocked.clear(connector_id=1) is True
    assert ids(stocked) == [1, 2, 5]
    assert stocked.clear(connector_id=0) is True  # the profiles set on connector 0
    assert ids(stocked) == [5]
    assert stocked.clear(connector_id=1) is False


def test_clear_by_purpose(stocked: ChargingProfileStore) -> None:
    assert stocked.clear(purpose="TxDefaultProfile") is True
    assert ids(stocked) == [1, 4]
    assert stocked.clear(purpose="TxDefaultProfile") is False


def test_clear_by_stack_level(stocked: ChargingProfileStore) -> None:
    assert stocked.clear(stack_level=2) is True
    assert ids(stocked) == [1, 2, 3]
    assert stocked.clear(stack_level=7) is False


def test_clear_filters_are_and_ed(stocked: ChargingProfileStore) -> None:
    assert stocked.clear(connector_id=0, purpose="TxDefaultProfile", stack_level=2) is False
    assert stocked.clear(connector_id=0, purpose="TxDefaultProfile", stack_level=1) is True
    assert ids(stocked) == [1, 3, 4, 5]


def test_clear_without_filters_clears_everything(stocked: ChargingProfileStore) -> None:
    assert stocked.clear() is True
    assert stocked.profiles() == []
    assert stocked.clear() is False


# --- misc ----------------------------------------------------------------------------------------


def test_naive_times_are_refused(store: ChargingProfileStore) -> None:
    with pytest.raises(ValueError):
        store.limit_at(1, datetime(2024, 1, 1, 12, 0))
    with pytest.raises(ValueError):
        store.set_profile(1, profile(1), transaction_id=None, now=datetime(2024, 1, 1, 12, 0))


def test_profiles_are_copies(store: ChargingProfileStore) -> None:
    body = profile(1)
    accept(store, 1, body)
    body["stackLevel"] = 9
    listed = store.profiles(1)
    listed[0]["csChargingProfiles"]["stackLevel"] = 8
    assert store.profiles(1)[0]["csChargingProfiles"]["stackLevel"] == 0
    assert store.profiles(2) == []
