"""MV-1, MV-2, MV-3 (and CFG-2's cadence): the meter values of a real charging session (OCPP 1.6 §4.7
MeterValues, §4.8 StartTransaction.meterStart, §4.10 StopTransaction.meterStop, §7.31 Measurand,
§7.43 SampledValue, §9.1 MeterValuesSampledData and MeterValueSampleInterval; OCTT TC_070_CS).

One session serves the four checks and NF-2, each judged separately (a defect of one requirement
must not fail another): the run's metered session (harness/metered_session/, which says how it is
recorded). The first test that needs it records it; the others judge the same recording (its frames
are in the evidence of the test that recorded it, and each test's evidence names the window used).

Which samples show a state: a sample is "while charging" or "while suspended" after the charger had
reacted to the act that began that stretch (its StatusNotification, or SETTLE seconds without one);
the first periodic one while suspended may have been measured over an interval that straddles the
change (averaging meters) and is not judged. Readings delivered late (NF-2's offline window) belong
to the stretch they were taken in: nothing but the end of the session happens while offline.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from ocpp.v16.enums import ConfigurationStatus

from harness import meter, ocppj
from harness.metered_session import CHARGING, SUSPENDED, Point, Recording, recorded_session
from harness.session import ChargerSession, ReceivedCall
from harness.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

# MV-1's alternatives, as the requirement catalogue names them.
ALTERNATIVE = {meter.VIA_POWER: "Power.Active.Import", meter.VIA_CURRENT_VOLTAGE: "Current.Import+Voltage"}

NEAR_ZERO_W = Decimal(100)  # power at or below this is "not charging" (the least an EV charges with is 6 A × 230 V)
NEAR_ZERO_SHARE = Decimal("0.02")  # ... or 2 % of the power seen while charging, if that is more
RELATIVE_TOLERANCE = Decimal("0.15")  # energy register vs ∫power
ABSOLUTE_TOLERANCE_WH = Decimal(1)


def _fail(problems: list[str], headline: str, rec: Recording) -> None:
    if problems:
        shown = problems[:8] + ([f"… and {len(problems) - 8} more"] if len(problems) > 8 else [])
        pytest.fail(
            f"{headline}\n  " + "\n  ".join(shown)
            + f"\n  (MeterValuesSampledData in force: {rec.sampled_data!r}; transaction {rec.transaction_id})",
            pytrace=False,
        )


def _stop_or_skip(rec: Recording) -> None:
    """A StopTransaction lost in NF-2's offline window is NF-2's failure: MV-2/MV-3 are then not tested on it."""
    if rec.stop is None and rec.offline is not None:
        pytest.skip("not tested: the session's StopTransaction, produced offline, was not delivered (NF-2 judges "
                    "that): there is no meterStop to compare with")


def _no_points_message(rec: Recording) -> str:
    why = f"; {rec.trigger_problem}" if rec.trigger_problem else ""
    return (
        f"expected MeterValues during the transaction (MeterValueSampleInterval={rec.interval}); "
        f"the charger sent none for connector {rec.connector}{why}"
    )


# --- MV-1 ------------------------------------------------------------------------------------------


def mv1_grace(rec: Recording) -> float:
    """MV-1's rule (docs/rules-metering.md): a measurand is not concluded missing before two configured
    sample intervals, plus the cadence tolerance, have passed since MeterValuesSampledData was answered
    (a charger may apply a new list from its next sampling cycle on). The interval is the one asked for,
    or the one the charger reports if that is longer. Returns that moment (monotonic)."""
    interval = max(rec.interval, rec.interval_in_force or 0)
    return rec.sampled_data_at + 2 * interval + meter.cadence_tolerance(interval)


def what_arrived(points: list[Point]) -> str:
    """What the samples carried, for a failure: e.g. "only Energy.Active.Import.Register in kWh, every 15 s"."""
    return meter.what_arrived([p.samples(errors=[]) for p in points], [p.call.mono for p in points if p.periodic],
                              sum(1 for p in points if p.triggered))


def _has_power(p: Point) -> bool:
    try:
        return meter.power_w(p.samples(errors=[]))[1] != meter.ABSENT
    except meter.MeterFormatError:
        return False


@pytest.mark.requirement("MV-1")
async def test_power_or_current_and_voltage_in_every_sample(
    charger: ChargerSession, harness_settings: Settings, request: pytest.FixtureRequest
) -> None:
    """MV-1: every periodic MeterValues of a charging session carries Power.Active.Import, or
    Current.Import and Voltage (per phase allowed), in units the platform reads (OCPP 1.6 §4.7,
    §7.31, §7.43, §7.45; OCTT TC_070_CS). Samples taken within two configured sample intervals (plus
    tolerance) of the MeterValuesSampledData change are not held against it (docs/rules-metering.md)."""
    rec = await recorded_session(charger, harness_settings, request)
    all_points = rec.sample_points()
    assert all_points, _no_points_message(rec)
    grace = mv1_grace(rec)
    # Before the grace is over a sample without power is not held against the charger (it may still sample
    # its previous list); one with power counts already.
    points = [p for p in all_points if p.call.mono >= grace or _has_power(p)]
    early = len(all_points) - len(points)
    if early:
        charger.note(f"{early} sample(s) without power within two sample intervals (+ tolerance) of the "
                     f"MeterValuesSampledData change not judged (docs/rules-metering.md)")
    if not points:
        pytest.skip(
            f"not tested: no sample arrived two sample intervals (+ tolerance) after MeterValuesSampledData was "
            f"configured, so a missing measurand cannot be concluded yet (docs/rules-metering.md); the charger "
            f"sent {what_arrived(all_points)}"
        )
    problems: list[str] = []
    held: dict[str, int] = {}
    unitless: set[str] = set()
    for p in points:
        errors: list[meter.MeterFormatError] = []
        found = p.samples(errors)
        unreadable = [e for e in errors if not str(e).startswith("Energy")]
        if unreadable:
            problems.append(f"{p.describe()}: {'; '.join(map(str, unreadable))}")
            continue
        try:
            watts, how = meter.power_w(found)
        except meter.MeterFormatError as exc:
            problems.append(f"{p.describe()}: {exc}")
            continue
        present = meter.measurands(found)
        if how == meter.ABSENT:
            if meter.CURRENT in present and meter.VOLTAGE not in present:
                problems.append(f"{p.describe()}: Current.Import without Voltage (measurands: {sorted(present)})")
            elif meter.VOLTAGE in present and meter.CURRENT not in present:
                problems.append(f"{p.describe()}: Voltage without Current.Import (measurands: {sorted(present)})")
            else:
                problems.append(f"{p.describe()}: neither Power.Active.Import nor Current.Import with Voltage "
                                f"(measurands: {sorted(present)})")
            continue
        held[how] = held.get(how, 0) + 1
        unitless |= {s.measurand for s in found if s.unit is None and s.measurand in (meter.POWER, meter.CURRENT, meter.VOLTAGE)}
    kind = "periodic" if any(p.periodic for p in points) else "triggered"
    _fail(
        problems,
        f"expected Power.Active.Import, or Current.Import and Voltage, in every {kind} MeterValues (MV-1); the "
        f"charger sent {what_arrived(points)}. {len(problems)} of {len(points)} samples taken two sample "
        f"intervals or more after the configuration lack it:",
        rec,
    )
    main = max(held, key=lambda k: held[k])
    charger.details["alternative"] = ALTERNATIVE[main]
    charger.note(
        f"{len(points)} {kind} MeterValues, power from {', '.join(f'{ALTERNATIVE[k]} ({n})' for k, n in held.items())}"
    )
    if unitless:
        charger.note(f"no unit given for {', '.join(sorted(unitless))}: read as W / A / V (§7.43 defines a default only for energy)")


# --- MV-2 ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    what: str
    when: dt.datetime
    seq: int
    wh: Decimal
    resolution: Decimal
    raw: str

    @property
    def shown(self) -> str:
        return self.raw if self.raw.endswith(" Wh") else f"{self.raw} (= {self.wh} Wh)"


def _readings(rec: Recording, problems: list[str]) -> list[Reading]:
    """Every energy register reading of the session (MeterValues and StopTransaction.transactionData)."""
    found: list[Reading] = []
    sources: list[tuple[str, ReceivedCall, str | None, list[dict[str, Any]]]] = [
        (f"MeterValues {p.describe()}", p.call, p.raw_timestamp, p.entries) for p in rec.points
    ]
    if rec.stop is not None:
        for entry in rec.stop.get("transactionData") or []:
            if isinstance(entry, dict):
                sources.append((f"StopTransaction.transactionData {entry.get('timestamp')}", rec.stop,
                                entry.get("timestamp"), [entry]))
    for what, call, raw_time, entries in sources:
        errors: list[meter.MeterFormatError] = []
        samples = meter.samples(entries, errors=errors)
        problems += [f"{what}: {e}" for e in errors if str(e).startswith("Energy.Active.Import.Register")]
        try:
            when = ocppj.parse_datetime(raw_time) if isinstance(raw_time, str) else call.wall
        except ValueError:
            when = call.wall
        for s in meter.energy_registers(samples):
            try:
                found.append(Reading(what, when, call.seq, s.in_base_unit, s.resolution, f"{s.value} {s.unit or 'Wh'}"))
            except meter.MeterFormatError as exc:
                problems.append(f"{what}: {exc}")
    return found


@pytest.mark.requirement("MV-2")
async def test_energy_register_consistent_from_start_to_stop(
    charger: ChargerSession, harness_settings: Settings, request: pytest.FixtureRequest
) -> None:
    """MV-2: meterStart ≤ every Energy.Active.Import.Register sample ≤ meterStop, never decreasing,
    Wh or kWh converted; every periodic sample has the register and the transactionId (OCPP 1.6
    §4.7, §4.8, §4.10, §7.43; OCTT TC_070_CS)."""
    rec = await recorded_session(charger, harness_settings, request)
    _stop_or_skip(rec)
    assert rec.stop is not None, "expected a StopTransaction"
    problems: list[str] = []
    start = Decimal(str(rec.session.start.get("meterStart")))
    stop = Decimal(str(rec.stop.get("meterStop")))
    if stop < start:
        problems.append(f"meterStop {stop} Wh is below meterStart {start} Wh (StopTransaction frame #{rec.stop.seq})")

    points = rec.sample_points()
    if not points:
        problems.append(_no_points_message(rec))
    for p in points:
        if not meter.energy_registers(p.samples(errors=[])):
            problems.append(f"{p.describe()}: no Energy.Active.Import.Register")
    for call in {p.call.seq: p.call for p in points if p.periodic}.values():
        tx = call.get("transactionId")
        if tx is None:
            problems.append(f"MeterValues frame #{call.seq}: no transactionId (the session's is {rec.transaction_id})")
        elif tx != rec.transaction_id:
            problems.append(f"MeterValues frame #{call.seq}: transactionId {tx}, the session's is {rec.transaction_id}")

    readings = _readings(rec, problems)
    ordered = sorted(readings, key=lambda r: (r.when, r.seq))
    for a, b in zip(ordered, ordered[1:]):
        slack = Decimal(0) if a.resolution == b.resolution else max(a.resolution, b.resolution)
        if b.wh < a.wh - slack:
            problems.append(f"the register decreased: {a.shown} ({a.what}) then {b.shown} ({b.what})")
    for r in readings:
        slack = r.resolution if r.resolution > 1 else Decimal(1)
        if r.wh < start - slack:
            hint = ""
            if r.wh * 1000 >= start - 1000 and r.wh * 1000 <= max(stop, start) + 1000:
                hint = " (it looks like a kWh number labelled Wh)"
            problems.append(f"{r.what}: {r.shown} is below meterStart {start} Wh{hint}")
        elif stop >= start and r.wh > stop + slack:
            problems.append(f"{r.what}: {r.shown} is above meterStop {stop} Wh")
    _fail(problems, "expected consistent energy readings: meterStart ≤ samples ≤ meterStop, never decreasing (MV-2):", rec)
    units = sorted({r.raw.split()[-1] for r in readings})
    charger.note(
        f"meterStart {start} Wh, meterStop {stop} Wh; {len(readings)} register readings in {', '.join(units) or '-'}, "
        f"{min((r.wh for r in readings), default='-')}..{max((r.wh for r in readings), default='-')} Wh"
    )


# --- MV-3 ------------------------------------------------------------------------------------------


def _power(p: Point, phases: int | None = None) -> Decimal | None:
    """The point's power; a Current.Import without a phase counts on the charger profile's `phases`
    (docs/rules-metering.md)."""
    try:
        watts, how = meter.power_w(p.samples(errors=[]), phases=phases)
    except meter.MeterFormatError:
        return None
    return watts if how != meter.ABSENT else None


def _energy(p: Point) -> tuple[Decimal, Decimal] | None:
    try:
        registers = meter.energy_registers(p.samples(errors=[]))
        if not registers:
            return None
        best = max(registers, key=lambda s: s.in_base_unit)
        return best.in_base_unit, best.resolution
    except meter.MeterFormatError:
        return None


def _register_usable(series: list[tuple[Point, Decimal, Decimal]], start: Decimal, stop: Decimal) -> str | None:
    """Why the register samples cannot serve as MV-3's energy reference (an MV-2 matter), or None."""
    if len(series) < 2:
        return "fewer than two samples with both energy and power"
    for (_, a, ra), (_, b, rb) in zip(series, series[1:]):
        if b < a - (0 if ra == rb else max(ra, rb)):
            return "the register decreases"
    if any(e < start - max(r, Decimal(1)) for _, e, r in series):
        return "register samples below meterStart"
    if stop >= start and any(e > stop + max(r, Decimal(1)) for _, e, r in series):
        return "register samples above meterStop"
    return None


def _compare(delta: Decimal, integral: Decimal, extra: Decimal) -> tuple[bool, Decimal]:
    tolerance = RELATIVE_TOLERANCE * max(abs(delta), abs(integral)) + extra + ABSOLUTE_TOLERANCE_WH
    return abs(delta - integral) <= tolerance, tolerance


@pytest.mark.requirement("MV-3")
async def test_power_reflects_charging_and_agrees_with_energy(
    charger: ChargerSession, harness_settings: Settings, request: pytest.FixtureRequest
) -> None:
    """MV-3: power > 0 while Charging, ≈ 0 while the EV is suspended, and its integral over the
    session agrees with the energy register (OCPP 1.6 §4.7, §7.31 Power.Active.Import /
    Current.Import × Voltage; OCTT TC_070_CS)."""
    rec = await recorded_session(charger, harness_settings, request)
    powered = [(p, w) for p in rec.points if (w := _power(p, harness_settings.phases)) is not None]
    if not powered:
        pytest.skip("not tested: the charger reported no readable power (Power.Active.Import, or Current.Import "
                    "with Voltage): see MV-1")
    problems: list[str] = []
    untested: list[str] = []

    # Power while charging and while suspended.
    charging = [(p, w) for p, w in powered if p.judged and p.phase == CHARGING]
    suspended = [(p, w) for p, w in powered if p.judged and p.phase == SUSPENDED]
    for p, w in charging:
        if w <= NEAR_ZERO_W:
            problems.append(f"while charging ({rec.charging_reaction[1]} onwards), {p.describe()}: power {w} W")
    typical = Decimal(statistics.median([w for _, w in charging])) if charging else Decimal(0)
    near_zero = max(NEAR_ZERO_W, NEAR_ZERO_SHARE * typical)
    for p, w in suspended:
        if w > near_zero:
            why = rec.suspended_reaction[1] if rec.suspended_reaction else "the pause"
            problems.append(
                f"while the EV is suspended (after {why}), {p.describe()}: power {w} W, expected ≈ 0 (≤ {near_zero:.0f} W)"
            )
    if not charging:
        untested.append("no sample while charging")
    if not suspended:
        untested.append(rec.suspend_unsupported or "no sample while suspended")

    # Energy against ∫power.
    _stop_or_skip(rec)
    stop_call = rec.stop
    assert stop_call is not None, "expected a StopTransaction"
    start = Decimal(str(rec.session.start.get("meterStart")))
    stop = Decimal(str(stop_call.get("meterStop")))
    series = [(p, e[0], e[1]) for p, _ in powered if (e := _energy(p)) is not None]
    power_at = {id(p): w for p, w in powered}
    stamps = [p.raw_timestamp for p, _ in powered] + [rec.session.start.get("timestamp"), stop_call.get("timestamp")]
    ts_resolution = Decimal(str(meter.timestamp_resolution(stamps)))
    peak = max(w for _, w in powered)
    timing = peak * ts_resolution * 2 / 3600  # what timestamps as coarse as this can move ∫P
    unusable = _register_usable(series, start, stop)
    if unusable is None:
        # Register samples: compare within each stretch of one state (a window that straddles
        # the pause cannot be resolved by sampling; it is left out of both sides).
        delta = integral = granularity = resolution = Decimal(0)
        windows = 0
        for (a, ea, ra), (b, eb, rb) in zip(series, series[1:]):
            if a.segment != b.segment:
                continue
            part = meter.integrate_power([(a.timestamp, power_at[id(a)]), (b.timestamp, power_at[id(b)])])
            delta += eb - ea
            integral += part.wh
            granularity += part.granularity_wh
            resolution = max(resolution, ra, rb)
            windows += 1
        if windows == 0:
            untested.append("no two successive samples in one state to compare energy with power")
        segments = 1 + sum(1 for (a, _, _), (b, _, _) in zip(series, series[1:]) if a.segment != b.segment)
        ok, tolerance = _compare(delta, integral, granularity + resolution * segments + timing)
        reference = f"the Energy.Active.Import.Register samples ({windows} windows)"
    elif stop >= start:
        # The register samples are inconsistent (MV-2): compare with meterStop − meterStart instead,
        # holding the first and last power over the edges of the transaction.
        t0 = _when(rec.session.start)
        t1 = _when(stop_call)
        ordered = sorted(powered, key=lambda pw: pw[0].timestamp)
        first, last = ordered[0], ordered[-1]
        inner = meter.integrate_power([(p.timestamp, w) for p, w in ordered])
        head = first[1] * Decimal(str(max(0.0, (first[0].timestamp - t0).total_seconds()))) / 3600
        tail = last[1] * Decimal(str(max(0.0, (t1 - last[0].timestamp).total_seconds()))) / 3600
        delta = stop - start
        integral = inner.wh + head + tail
        ok, tolerance = _compare(delta, integral, inner.granularity_wh + head + tail + Decimal(1) + timing)
        reference = f"meterStop − meterStart (the register samples are not usable: {unusable}; see MV-2)"
    else:
        problems.append(
            f"no consistent energy reading to compare power with: {unusable}, and meterStop {stop} < meterStart {start}"
        )
        ok, delta, integral, tolerance, reference = True, Decimal(0), Decimal(0), Decimal(0), "none"
    if not ok:
        problems.append(
            f"energy from {reference}: {delta:.1f} Wh; ∫power dt over the same time: {integral:.1f} Wh "
            f"(tolerance {tolerance:.1f} Wh = {RELATIVE_TOLERANCE:.0%} + sampling granularity)"
        )
    _fail(problems, "expected power > 0 while charging, ≈ 0 while suspended, and agreeing with the energy register (MV-3):", rec)
    if reference != "none":
        charger.note(f"energy {delta:.1f} Wh vs ∫power {integral:.1f} Wh (tolerance {tolerance:.1f} Wh), from {reference}")
    charger.note(
        f"power while charging: {', '.join(f'{w:.0f}' for _, w in charging) or '-'} W; "
        f"while suspended: {', '.join(f'{w:.0f}' for _, w in suspended) or '-'} W (≈ 0 means ≤ {near_zero:.0f} W)"
    )
    if untested:
        pytest.skip(f"not tested: {'; '.join(untested)} (the rest of MV-3 held)")


def _when(call: ReceivedCall) -> dt.datetime:
    raw = call.get("timestamp")
    try:
        return ocppj.parse_datetime(raw) if isinstance(raw, str) else call.wall
    except ValueError:
        return call.wall


# --- CFG-2: the cadence ----------------------------------------------------------------------------


@pytest.mark.requirement("CFG-2")
async def test_samples_arrive_at_the_interval(
    charger: ChargerSession, harness_settings: Settings, request: pytest.FixtureRequest
) -> None:
    """CFG-2: during a transaction, Sample.Periodic MeterValues come every MeterValueSampleInterval
    seconds: 60 in certification mode, the mode's short interval in quick mode (OCPP 1.6 §4.7, §9.1
    MeterValueSampleInterval; OCTT TC_070_CS). Clock-aligned and triggered samples do not count."""
    rec = await recorded_session(charger, harness_settings, request)
    interval = rec.interval
    if rec.interval_status != ConfigurationStatus.accepted:
        if harness_settings.quick:
            pytest.skip(
                f"not tested: the charger answered {rec.interval_status} to the quick mode's "
                f"MeterValueSampleInterval={interval}; run with --mode certification to check the 60 s cadence"
            )
        pytest.fail(
            f"expected ChangeConfiguration MeterValueSampleInterval={interval} to be Accepted (OCPP 1.6 §5.3); "
            f"it was answered {rec.interval_status}",
            pytrace=False,
        )
    tolerance = meter.cadence_tolerance(interval)
    periodic = [p for p in rec.points if p.periodic]
    start = rec.session.start
    assert periodic, (
        f"expected a Sample.Periodic MeterValues every {interval} s after MeterValueSampleInterval={interval} was "
        f"Accepted; none came during the {(rec.stop.mono if rec.stop else start.mono) - start.mono:.1f} s transaction"
        + (f" ({rec.triggered} sample(s) had to be asked for with TriggerMessage)" if rec.triggered else "")
    )
    stamps = [p.raw_timestamp for p in periodic] + [start.get("timestamp")]
    resolution = meter.timestamp_resolution(stamps)
    # The charger's own timestamps say when it sampled; when they are too coarse for the tolerance
    # (whole seconds in quick mode), the arrival times stand in.
    if (meter.fine_for_cadence(resolution, interval) and all(p.raw_timestamp for p in periodic)
            and isinstance(start.get("timestamp"), str)):
        times = [p.timestamp.timestamp() for p in periodic]
        origin = _when(start).timestamp()
        end = _when(rec.stop).timestamp() if rec.stop is not None else None
        source = "the charger's timestamps"
    else:
        end = rec.stop.mono if rec.stop is not None else None
        source = "arrival times"
        if rec.offline is not None:
            # Readings delivered after NF-2's offline window arrive together: only those that arrived online say
            # when they were taken (docs/rules-timing.md). The cut ends the stretch judged.
            offline_at = rec.offline.cut_mono
            late = [p for p in periodic if p.call.mono >= offline_at]
            periodic = [p for p in periodic if p.call.mono < offline_at]
            end = offline_at
            source += f" of the {len(periodic)} samples that arrived before NF-2's connection loss"
            if late:
                charger.note(f"{len(late)} sample(s) delivered after the connection loss not used for the cadence: "
                             "their timestamps are too coarse for the tolerance")
            if not periodic:
                pytest.skip("not tested: no periodic sample arrived before NF-2's connection loss, and the charger's "
                            "timestamps are too coarse to read the cadence of those delivered later")
        times = [p.call.mono for p in periodic]
        origin = start.mono
    gaps = [b - a for a, b in zip(times, times[1:])]
    first = times[0] - origin
    charger.note(
        f"interval {interval} s: first sample {first:.2f} s after the start, then gaps "
        f"{', '.join(f'{g:.2f}' for g in gaps) or '-'} s ({source}; tolerance ±{tolerance:g} s)"
    )
    problems = []
    if first > interval + tolerance:
        problems.append(f"the first sample came {first:.2f} s after the start of the transaction")
    for i, gap in enumerate(gaps, start=1):
        if abs(gap - interval) > tolerance:
            problems.append(f"samples {i} and {i + 1} are {gap:.2f} s apart")
    if end is not None and end - times[-1] > interval + tolerance:
        problems.append(f"no sample in the last {end - times[-1]:.2f} s before the StopTransaction")
    assert not problems, (
        f"expected Sample.Periodic MeterValues every {interval} s (±{tolerance:g} s) during the transaction: "
        + "; ".join(problems) + f" (measured with {source})"
    )
    offline = rec.offline
    if (len(periodic) < 3 and offline is not None and offline.in_flight is not None
            and not any(p.measured >= offline.cut_mono for p in periodic)):
        # The charger sampled at the interval online; what it took offline never arrived: NF-2's loss, not CFG-2's.
        pytest.skip(f"not tested: only {len(periodic)} periodic samples arrived before NF-2's connection loss (at the "
                    "interval) and none taken offline was delivered (NF-2 judges that)")
    assert len(periodic) >= 3, (
        f"expected Sample.Periodic MeterValues every {interval} s during the transaction; only {len(periodic)} came "
        f"in {(end or times[-1]) - origin:.1f} s"
    )
