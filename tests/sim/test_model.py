"""The reference charger's physical model: §4.9 status machine, EV, meter, limits (sans-I/O)."""

from __future__ import annotations

import pytest

from harness import spec16
from harness.sim.model import EV, ChargePointModel, IllegalTransition, StatusMachine

S = spec16


def model(**kwargs: object) -> ChargePointModel:
    return ChargePointModel(strict=True, now=0.0, **kwargs)  # type: ignore[arg-type]


def status(m: ChargePointModel, c: int = 1) -> str:
    return m.connector(c).status.status


# --- the §4.9 table ---------------------------------------------------------------------------------


def test_transition_table_matches_spec_shape() -> None:
    assert set(S.LEGAL_TRANSITIONS) == set(S.STATUSES)
    assert S.LEGAL_TRANSITIONS[S.FAULTED] == frozenset(S.STATUSES) - {S.FAULTED}
    for old, targets in S.LEGAL_TRANSITIONS.items():
        assert old not in targets
    # a few rows spelled out in §4.9
    assert not S.is_legal_transition(S.CHARGING, S.PREPARING)
    assert not S.is_legal_transition(S.FINISHING, S.CHARGING)
    assert not S.is_legal_transition(S.PREPARING, S.UNAVAILABLE)
    assert S.is_legal_transition(S.SUSPENDED_EVSE, S.SUSPENDED_EV)
    assert S.is_legal_transition(S.CHARGING, S.CHARGING)  # a repeat is not a transition
    assert not S.is_legal_transition(S.AVAILABLE, S.CHARGING, connector_id=0)
    assert S.is_legal_transition(S.AVAILABLE, S.UNAVAILABLE, connector_id=0)


@pytest.mark.parametrize("old", S.STATUSES)
@pytest.mark.parametrize("new", S.STATUSES)
def test_status_machine_allows_exactly_the_legal_transitions(old: str, new: str) -> None:
    machine = StatusMachine(1, old, strict=True)
    if old == new:
        assert machine.set(new) is False
    elif new in S.LEGAL_TRANSITIONS[old]:
        assert machine.set(new) is True and machine.status == new
    else:
        with pytest.raises(IllegalTransition):
            machine.set(new)
        assert machine.status == old


def test_lenient_machine_logs_and_follows(caplog: pytest.LogCaptureFixture) -> None:
    machine = StatusMachine(1, S.CHARGING)
    assert machine.set(S.PREPARING)
    assert "illegal transition Charging -> Preparing" in caplog.text


# --- a session, step by step, through the strict machine -----------------------------------------------


def test_session_walk_is_legal_and_right() -> None:
    m = model()
    assert [c.status for c in m.update(0.0)] == []  # everything starts Available
    m.plug(1, 1.0)
    assert [(c.connector_id, c.status) for c in m.update(1.0)] == [(1, S.PREPARING)]
    m.start_transaction(1, "tx", "TAG", 2.0)
    m.update(2.0)
    assert status(m) == S.CHARGING
    m.ev_pause(1, True, 3.0)
    m.update(3.0)
    assert status(m) == S.SUSPENDED_EV
    m.set_limit(1, 0.0, None, 4.0)
    m.update(4.0)
    assert status(m) == S.SUSPENDED_EVSE  # SuspendedEVSE wins over SuspendedEV
    m.ev_pause(1, False, 5.0)
    m.update(5.0)
    assert status(m) == S.SUSPENDED_EVSE
    m.set_limit(1, 3.0, None, 6.0)  # below the 6 A a control pilot can offer
    m.update(6.0)
    assert status(m) == S.SUSPENDED_EVSE
    assert m.snapshot(1, 6.0).power_w == 0
    m.set_limit(1, None, None, 7.0)
    m.update(7.0)
    assert status(m) == S.CHARGING
    m.set_fault(1, "GroundFailure", 8.0)
    changes = m.update(8.0)
    assert [(c.status, c.error_code) for c in changes] == [(S.FAULTED, "GroundFailure")]
    assert m.snapshot(1, 8.0).power_w == 0
    m.set_fault(1, None, 9.0)
    m.update(9.0)
    assert status(m) == S.CHARGING  # back to the state before the fault
    m.stop_transaction(1, 10.0)
    m.update(10.0)
    assert status(m) == S.FINISHING
    # A new session without unplugging goes through Preparing (Finishing -> Charging is illegal).
    changes = m.start_transaction(1, "tx2", "TAG", 11.0)
    assert [c.status for c in changes] == [S.PREPARING]
    m.update(11.0)
    assert status(m) == S.CHARGING
    m.stop_transaction(1, 12.0)
    m.unplug(1, 12.0)
    m.update(12.0)
    assert status(m) == S.AVAILABLE
    assert ("Charging", "Finishing") in m.connector(1).status.history


def test_unplug_during_charging_goes_to_available() -> None:
    m = model()
    m.plug(1, 0.0)
    m.start_transaction(1, "tx", "T", 0.0)
    m.update(0.0)
    m.stop_transaction(1, 1.0)
    m.unplug(1, 1.0)
    assert [c.status for c in m.update(1.0)] == [S.AVAILABLE]


def test_change_availability_is_scheduled_during_a_transaction() -> None:
    m = model(connectors=2)
    m.plug(1, 0.0)
    m.start_transaction(1, "tx", "T", 0.0)
    m.update(0.0)
    assert m.change_availability(0, operative=False) == "Scheduled"
    changes = m.update(1.0)
    assert (2, S.UNAVAILABLE) in [(c.connector_id, c.status) for c in changes]
    assert status(m, 1) == S.CHARGING and m.status0.status == S.AVAILABLE
    m.stop_transaction(1, 2.0)
    m.update(2.0)
    assert status(m, 1) == S.UNAVAILABLE  # Charging -> Finishing -> Unavailable, once the session ended
    assert m.status0.status == S.UNAVAILABLE
    assert not m.can_start(1)
    assert m.change_availability(0, operative=True) == "Accepted"
    m.update(3.0)
    assert status(m, 1) == S.PREPARING and status(m, 2) == S.AVAILABLE and m.status0.status == S.AVAILABLE


def test_preparing_connector_is_not_made_unavailable_directly() -> None:
    m = model()
    m.plug(1, 0.0)
    m.update(0.0)
    assert m.change_availability(1, operative=False) == "Scheduled"  # Preparing -> Unavailable is illegal
    m.unplug(1, 1.0)
    m.update(1.0)
    assert status(m) == S.UNAVAILABLE
    assert m.connector(1).status.history == [(S.AVAILABLE, S.PREPARING), (S.PREPARING, S.AVAILABLE),
                                             (S.AVAILABLE, S.UNAVAILABLE)]


def test_charge_point_fault_reports_connector_zero() -> None:
    m = model()
    m.set_fault(0, "PowerMeterFailure", 0.0)
    changes = m.update(0.0)
    assert [(c.connector_id, c.status, c.error_code) for c in changes] == [
        (0, S.FAULTED, "PowerMeterFailure"), (1, S.FAULTED, "PowerMeterFailure")]
    with pytest.raises(ValueError):
        m.set_fault(1, "NoError", 0.0)


# --- electricity ---------------------------------------------------------------------------------


def test_power_is_sum_of_v_times_i_and_energy_integrates_it() -> None:
    m = model()
    m.plug(1, 0.0, EV(phases=3, max_current=16.0))
    m.start_transaction(1, "tx", "T", 0.0)
    snap = m.snapshot(1, 0.0)
    assert snap.currents == (16.0, 16.0, 16.0) and snap.voltages == (230.0, 230.0, 230.0)
    assert snap.power_w == pytest.approx(sum(v * i for v, i in zip(snap.voltages, snap.currents))) == 11040
    start = snap.register_wh
    readings = [m.snapshot(1, t).register_wh for t in (0.5, 1.0, 900.0, 1800.0, 3600.0)]
    assert readings == sorted(readings)
    assert readings[-1] - start == pytest.approx(11040)  # one hour at 11.04 kW


def test_single_phase_ev_and_limits() -> None:
    m = model()
    m.plug(1, 0.0, EV(phases=1, max_current=32.0))
    m.start_transaction(1, "tx", "T", 0.0)
    assert m.snapshot(1, 0.0).currents == (32.0, 0.0, 0.0)
    m.set_limit(1, 10.0, None, 0.0)
    assert m.snapshot(1, 0.0).power_w == pytest.approx(2300)
    m2 = model(phases=1)
    m2.plug(1, 0.0)
    m2.start_transaction(1, "tx", "T", 0.0)
    snap = m2.snapshot(1, 0.0)
    assert snap.currents == (32.0,) and snap.power_w == pytest.approx(7360)
    m3 = model()
    m3.plug(1, 0.0)
    m3.start_transaction(1, "tx", "T", 0.0)
    m3.set_limit(1, 6.0, 1, 0.0)  # numberPhases 1
    assert m3.snapshot(1, 0.0).currents == (6.0, 0.0, 0.0)


def test_no_power_without_transaction_or_when_paused() -> None:
    m = model()
    m.plug(1, 0.0)
    assert m.snapshot(1, 10.0).power_w == 0
    m.start_transaction(1, "tx", "T", 10.0)
    m.ev_pause(1, True, 10.0)
    before = m.snapshot(1, 10.0).register_wh
    assert m.snapshot(1, 100.0).register_wh == before


def test_battery_fills_up_and_ev_suspends() -> None:
    m = model()
    m.plug(1, 0.0, EV(battery_wh=10_000.0, soc=99.0))  # 100 Wh of room at 22.08 kW: ~16.3 s
    m.start_transaction(1, "tx", "T", 0.0)
    m.update(0.0)
    start = m.connector(1).register_wh
    assert status(m) == S.CHARGING
    until = m.seconds_until_next_event()
    assert until == pytest.approx(100 / 22080 * 3600)
    m.update(until + 1)
    assert status(m) == S.SUSPENDED_EV
    assert m.connector(1).register_wh - start == pytest.approx(100.0)
    assert m.snapshot(1, until + 100).power_w == 0
    assert m.connector(1).ev is not None and m.connector(1).ev.soc == 100.0


def test_meter_only_grows() -> None:
    m = model()
    m.plug(1, 0.0)
    m.start_transaction(1, "tx", "T", 0.0)
    last = m.connector(1).register_wh
    for t in range(1, 200):
        if t % 7 == 0:
            m.ev_pause(1, t % 2 == 0, float(t))
        if t % 11 == 0:
            m.set_limit(1, float(t % 30), None, float(t))
        now = m.snapshot(1, float(t)).register_wh
        assert now >= last
        last = now
    m.advance(150.0)  # going back in time integrates nothing
    assert m.connector(1).register_wh == last


# --- defects live in the status derivation ----------------------------------------------------------------


@pytest.mark.parametrize(("defect", "act", "expected"), [
    ("never-faulted", "fault", S.SUSPENDED_EVSE),  # the EVSE stops offering power, the status hides why
    ("never-suspended", "pause", S.CHARGING),
    ("never-charging-status", None, S.SUSPENDED_EV),
])
def test_status_defects(defect: str, act: str | None, expected: str) -> None:
    m = ChargePointModel(defects={defect})
    m.plug(1, 0.0)
    m.start_transaction(1, "tx", "T", 0.0)
    if act == "fault":
        m.set_fault(1, "OtherError", 0.0)
    elif act == "pause":
        m.ev_pause(1, True, 0.0)
    m.update(0.0)
    assert status(m) == expected


def test_illegal_transition_defect() -> None:
    m = ChargePointModel(defects={"illegal-transition"}, strict=True)
    m.plug(1, 0.0)
    m.start_transaction(1, "tx", "T", 0.0)
    m.update(0.0)
    m.stop_transaction(1, 1.0)
    with pytest.raises(IllegalTransition):
        m.update(1.0)


def test_never_available_after_unplug_defect() -> None:
    m = ChargePointModel(defects={"never-available-after-unplug"})
    m.plug(1, 0.0)
    m.start_transaction(1, "tx", "T", 0.0)
    m.stop_transaction(1, 1.0)
    m.unplug(1, 1.0)
    m.update(1.0)
    assert status(m) == S.FINISHING
