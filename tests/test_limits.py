"""harness/judges.py's judgement of readings (SC-2, ST-4; read by harness/readings.py), with synthetic MeterValues: no charger.

Each case is a reading series a careful engineer judges by hand from the frames; the rules are in
docs/rules-metering.md.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from harness import judges, limits, meter, readings
from harness.judges import State
from harness.session import ReceivedCall

T0 = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
MONO0 = 1000.0
CLOCK_AHEAD = 600.0  # the charger's clock runs 10 minutes ahead: judged on its own timeline


def _call(seq: int, at: float, values: list[dict[str, Any]], *, lag: float = 0.05, clock: float = CLOCK_AHEAD,
          stamp: str | None = None) -> ReceivedCall:
    """A MeterValues measured `at` s after T0 (our clock) and arriving `lag` s later."""
    measured = T0 + dt.timedelta(seconds=at + clock)
    text = stamp or measured.strftime("%Y-%m-%dT%H:%M:%S.") + f"{measured.microsecond // 1000:03d}Z"
    payload = {"connectorId": 1, "meterValue": [{"timestamp": text, "sampledValue": values}]}
    return ReceivedCall(seq, str(seq), "MeterValues", payload, T0 + dt.timedelta(seconds=at + lag), MONO0 + at + lag)


def power(w: float | None = None, wh: float | None = None, amps: tuple[float, ...] = (), volts: float | None = None,
          overall_amps: float | None = None, kwh: bool = False) -> list[dict[str, Any]]:
    values: list[dict[str, Any]] = []
    if wh is not None:
        values.append({"value": f"{wh / 1000:.2f}", "unit": "kWh"} if kwh else {"value": str(int(wh)), "unit": "Wh"})
    if w is not None:
        values.append({"value": str(w), "measurand": "Power.Active.Import", "unit": "W"})
    for i, a in enumerate(amps):
        values.append({"value": str(a), "measurand": "Current.Import", "unit": "A", "phase": f"L{i + 1}"})
    if overall_amps is not None:
        values.append({"value": str(overall_amps), "measurand": "Current.Import", "unit": "A"})
    if volts is not None:
        values.append({"value": str(volts), "measurand": "Voltage", "unit": "V"})
    return values


def observe(series: list[tuple[float, list[dict[str, Any]]]], judge: judges.Judge, *, phases: int | None = None,
            answered: float = 0.0, settle: float = limits.SETTLE, **kw: Any) -> judges.Observation:
    found = [readings.read(_call(i + 1, at, values, **kw), phases) for i, (at, values) in enumerate(series)]
    return judges.evaluate(found, judge, answered=MONO0 + answered, settle=settle, what="test")


# --- the settling window --------------------------------------------------------------------------


def test_a_reading_taken_6_ms_after_the_limit_decides_nothing() -> None:
    """The harness used to judge "on" from a reading taken 6 ms after lifting the limit."""
    seen = observe([(0.006, power(w=7000)), (1.0, power(w=7000))], judges.judge_on())
    assert seen.result is None and seen.state is State.UNKNOWN
    assert [r.call.seq for r in seen.early] == [1, 2] and seen.used == []
    evidence = seen.evidence()
    assert len(evidence["readings_ignored_too_early"]) == 2 and "docs/rules-metering.md" in evidence["rule"]


def test_the_first_settled_reading_decides_and_the_clock_offset_is_the_chargers_own() -> None:
    seen = observe([(2.0, power(w=7000)), (5.2, power(w=0)), (6.2, power(w=0))], judges.judge_off(Decimal(100)))
    assert seen.result is not None and seen.result.call.seq == 2
    assert seen.offset == pytest.approx(-CLOCK_AHEAD + 0.05, abs=0.01)
    assert [r.call.seq for r in seen.early] == [1]


def test_a_queued_sample_measured_before_the_window_is_too_early_even_if_it_arrives_late() -> None:
    """Measured at 1 s, sent at 7 s (queued): its timestamp says it is too early."""
    fresh = _call(2, 7.5, power(w=0, wh=5000))
    queued = _call(1, 1.0, power(w=7000, wh=5000), lag=6.0)
    found = [readings.read(queued), readings.read(fresh)]
    seen = judges.evaluate(found, judges.judge_off(Decimal(100)), answered=MONO0, settle=5.0, what="test")
    assert [r.call.seq for r in seen.early] == [1]


def test_whole_second_timestamps_are_taken_early_by_their_resolution() -> None:
    # measured at 5.5 s but stamped 12:10:05 (truncated): may have been 5.0 s; with the resolution off, 4.0 s.
    call = _call(1, 5.5, power(w=0), stamp=(T0 + dt.timedelta(seconds=5 + CLOCK_AHEAD)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    reading = readings.read(call)
    assert reading.stamp_step == 1.0
    offset = readings.clock_offset([reading])
    assert readings.measured_at(reading, offset) < MONO0 + 5.0


# --- 0 limit --------------------------------------------------------------------------------------


def test_energy_rising_at_36_kw_under_a_zero_limit_without_power_is_a_failure() -> None:
    """Only the register (kWh, 15 s apart), rising at 36 kW: SC-2 fails; not "not tested"."""
    series = [(float(t), power(wh=1_000_000 + 10 * t, kwh=True)) for t in range(0, 61, 15)]
    seen = observe(series, judges.judge_off(Decimal(100)))
    assert seen.state is State.NO
    assert "the energy kept rising" in seen.used[-1][1].why


def test_energy_rising_while_the_power_reads_zero_is_a_failure() -> None:
    series = [(6.0, power(w=0, wh=10_000)), (7.0, power(w=0, wh=10_010))]
    seen = observe(series, judges.judge_off(Decimal(100)))
    assert seen.state is State.NO and "energy kept rising" in seen.used[-1][1].why


def test_power_zero_with_a_flat_register_passes_on_the_second_settled_reading() -> None:
    series = [(6.0, power(w=0, wh=10_000)), (7.0, power(w=0, wh=10_000))]
    seen = observe(series, judges.judge_off(Decimal(100)))
    assert seen.used[0][1].state is State.UNKNOWN
    assert seen.result is not None and seen.result.call.seq == 2


def test_a_register_only_charger_is_off_once_the_span_can_tell() -> None:
    flat_short = [(6.0, power(wh=10_000)), (8.0, power(wh=10_000))]
    seen = observe(flat_short, judges.judge_off(Decimal(441)))
    assert seen.state is State.UNKNOWN and seen.used[-1][1].more_time > 0
    flat_long = flat_short + [(16.0, power(wh=10_000))]
    assert observe(flat_long, judges.judge_off(Decimal(441))).state is State.YES


def test_current_per_phase_without_voltage_still_judges_a_zero_limit() -> None:
    assert observe([(6.0, power(amps=(0.1, 0.0, 0.0)))], judges.judge_off(Decimal(100))).state is State.YES
    assert observe([(6.0, power(amps=(16.0, 16.0, 16.0)))], judges.judge_off(Decimal(100))).state is State.NO


def test_nothing_about_power_is_unknown() -> None:
    only_soc = [{"value": "50", "measurand": "SoC", "unit": "Percent"}]
    seen = observe([(6.0, only_soc), (7.0, only_soc)], judges.judge_off(Decimal(100)))
    assert seen.state is State.UNKNOWN and not any(r.has_evidence for r, _ in seen.used)


# --- lifting, 6 A and phases ----------------------------------------------------------------------


def test_on_from_current_voltage_or_energy() -> None:
    assert observe([(6.0, power(amps=(16.0,), volts=230))], judges.judge_on()).state is State.YES
    energy = [(6.0, power(wh=10_000)), (21.0, power(wh=10_030))]  # 7.2 kW
    assert observe(energy, judges.judge_on()).state is State.YES


def test_phase_less_current_counts_on_the_declared_phases_and_is_never_guessed() -> None:
    values = power(overall_amps=16.0, volts=230)
    assert readings.read(_call(1, 6.0, values), phases=3).watts == Decimal(3 * 16 * 230)
    unknown = readings.read(_call(1, 6.0, values), phases=None)
    assert unknown.watts is None and unknown.currents == {"": Decimal(16)}
    assert meter.power_w(meter.samples([{"sampledValue": values}]), phases=1)[0] == Decimal(16 * 230)


def test_six_amps_per_phase_current_or_power_with_declared_phases() -> None:
    per_phase = judges.six_amp_expectation(None, None, None)
    assert observe([(6.0, power(amps=(6.0, 6.0, 0.0)))], judges.judge_six_amps(per_phase)).state is State.YES
    assert observe([(6.0, power(amps=(16.0, 16.0, 16.0)))], judges.judge_six_amps(per_phase)).state is State.NO
    # Power only: the phases come from the profile (single phase: 1380 W), never from the power.
    single = judges.six_amp_expectation(None, 1, 230.0)
    assert single.target_w == Decimal(1380)
    assert observe([(6.0, power(w=1350))], judges.judge_six_amps(single)).state is State.YES
    assert observe([(6.0, power(w=4140))], judges.judge_six_amps(single)).state is State.NO
    # Power only and no phases anywhere: not judged (the profile must declare them).
    assert observe([(6.0, power(w=4140))], judges.judge_six_amps(per_phase)).state is State.UNKNOWN
    # An overall current: 6 A per phase, or the sum over the declared phases.
    three = judges.six_amp_expectation(None, 3, None)
    assert observe([(6.0, power(overall_amps=18.0))], judges.judge_six_amps(three)).state is State.YES
    assert observe([(6.0, power(overall_amps=6.1))], judges.judge_six_amps(three)).state is State.YES
    assert observe([(6.0, power(overall_amps=12.0))], judges.judge_six_amps(three)).state is State.NO


def test_phases_come_from_the_readings_before_the_profile() -> None:
    unlimited = readings.read(_call(1, 0.0, power(w=7360, amps=(32.0, 0.0, 0.0), volts=230)))
    expected = judges.six_amp_expectation(unlimited, 3, None)
    assert expected.phases == 1 and expected.target_w == Decimal(1380)
    assert "readings" in expected.phases_from


def test_a_w_limit_is_the_target_itself() -> None:
    expected = judges.six_amp_expectation(None, 3, 230.0, limit_w=Decimal(4140))
    assert observe([(6.0, power(w=4000))], judges.judge_six_amps(expected)).state is State.YES


def test_electrical_values_of_a_limit() -> None:
    from harness.settings import Settings

    settings = Settings()
    settings.phases, settings.nominal_voltage = 1, 240.0
    el = limits.Electrical.of(settings)
    assert (el.phases, el.volts) == (1, Decimal("240.0"))
    assert el.value(6, limits.WATTS) == Decimal(1440) and el.value(6, limits.AMPS) == Decimal(6)
    settings.phases, settings.nominal_voltage = None, None
    assert limits.Electrical.of(settings).phases == limits.DEFAULT_PHASES


# --- MV-1: the failure names what arrived ---------------------------------------------------------


def test_what_arrived_names_measurands_units_and_cadence() -> None:
    energy_only = [meter.samples([{"sampledValue": power(wh=1_000_000 + 10 * i, kwh=True)}]) for i in range(4)]
    text = meter.what_arrived(energy_only, [0.0, 15.0, 30.2, 45.0])
    assert text == "only Energy.Active.Import.Register in kWh, every 15 s"
    mixed = [meter.samples([{"sampledValue": power(w=7000, wh=5000)}])]
    assert meter.what_arrived(mixed, [], triggered=1) == (
        "Energy.Active.Import.Register in Wh, Power.Active.Import in W (1 sample(s) asked for with TriggerMessage)")


def test_a_slow_register_rise_is_seen_over_the_settled_span() -> None:
    """1.4 kW with a 1 Wh register sampled each second: one step per 2.6 s; the whole span shows it."""
    series = [(6.0 + t, power(wh=10_000 + int(1400 * t / 3600))) for t in range(0, 31, 1)]
    seen = observe(series, judges.judge_on())
    assert seen.state is State.YES and seen.result_watts is not None and seen.result_watts > 100


def test_a_reading_showing_the_change_right_after_the_answer_decides_at_once() -> None:
    """Power flowing before the 0 limit, ≈ 0 in a reading 1 s after the answer: that is the change itself."""
    series = [(-2.0, power(w=7000)), (-1.0, power(w=7000)), (1.0, power(w=0)), (2.0, power(w=0))]
    seen = observe(series, judges.judge_off(Decimal(100)))
    assert seen.state is State.YES and seen.result is not None
    assert readings.measured_at(seen.result, seen.offset) < MONO0 + 5.0  # decided inside the settling window


def test_a_reading_not_showing_the_change_inside_the_window_is_never_held_against_the_charger() -> None:
    series = [(-1.0, power(w=7000)), (0.5, power(w=7000)), (3.0, power(w=7000))]
    seen = observe(series, judges.judge_off(Decimal(100)))
    assert seen.state is State.UNKNOWN and not seen.used
