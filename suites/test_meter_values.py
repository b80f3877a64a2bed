"""MV-1, MV-2, MV-3 (and CFG-2's cadence): the meter values of a real charging session (OCPP 1.6 §4.7
MeterValues, §4.8 StartTransaction.meterStart, §4.10 StopTransaction.meterStop, §7.31 Measurand,
§7.43 SampledValue, §9.1 MeterValuesSampledData and MeterValueSampleInterval; OCTT TC_070_CS).

One session serves the four checks, each judged separately (a defect of one requirement must not
fail another). The first of these tests to run records it; the others judge the same recording
(its frames are in the evidence of the test that recorded it):

1. MeterValuesSampledData = the platform's list (Energy + Power). A Current+Voltage charger may
   reject it: then Energy + Current + Voltage. If it rejects both (a CFG-1 failure), the session
   runs with whatever the charger samples by default and MV judges only what MV requires.
   MeterValueSampleInterval = the mode's interval (1 s quick, 60 s certification).
2. The EV is plugged in and the driver's card presented: a transaction, the EV charging.
3. A few samples while charging, then the EV pauses (the rig's ev_suspend): samples while suspended.
4. RemoteStopTransaction (or the card again): StopTransaction with meterStop.

If periodic samples do not come at the interval set (a CFG-2 failure, judged there), the session
asks for each sample with TriggerMessage MeterValues, so MV is still judged on real readings.

Which samples show a state: a sample is "while charging" when it arrived after the charger had
reacted to the start (its Charging StatusNotification, or SETTLE seconds without one) and before
the EV paused; "while suspended" when it arrived after the charger reacted to the pause
(SuspendedEV/SuspendedEVSE, or SETTLE seconds) — except the first periodic one after that point,
which may have been measured over an interval that straddles the change (averaging meters).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import time
import weakref
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from ocpp.v16 import call
from ocpp.v16.enums import ConfigurationStatus, MessageTrigger, TriggerMessageStatus

from harness import meter, ocppj, spec16
from harness.errors import CallErrorReceived, ExpectationTimeout
from harness.flows import Charging, configured_value, start_charging, stop_charging
from harness.session import ChargerSession, ReceivedCall
from harness.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

POWER_LIST = f"{meter.ENERGY},{meter.POWER}"
CURRENT_VOLTAGE_LIST = f"{meter.ENERGY},{meter.CURRENT},{meter.VOLTAGE}"
# MV-1's alternatives, as the requirement catalogue names them.
ALTERNATIVE = {meter.VIA_POWER: "Power.Active.Import", meter.VIA_CURRENT_VOLTAGE: "Current.Import+Voltage"}

SETTLE = 1.5  # s a charger has to react to an act it reports no status for
CHARGING_SAMPLES = 3  # judged samples while charging
SUSPENDED_SAMPLES = 2  # judged samples while suspended
NEAR_ZERO_W = Decimal(100)  # power at or below this is "not charging" (the least an EV charges with is 6 A × 230 V)
NEAR_ZERO_SHARE = Decimal("0.02")  # ... or 2 % of the power seen while charging, if that is more
RELATIVE_TOLERANCE = Decimal("0.15")  # energy register vs ∫power
ABSOLUTE_TOLERANCE_WH = Decimal(1)

CHARGING = "charging"
SUSPENDED = "suspended"
SUSPENDED_STATUSES = (spec16.SUSPENDED_EV, spec16.SUSPENDED_EVSE)


# --- the recording ------------------------------------------------------------------------------


@dataclass
class Point:
    """One metering instant: a `meterValue` entry of a MeterValues (entries with the same timestamp merged)."""

    call: ReceivedCall
    raw_timestamp: str | None
    entries: list[dict[str, Any]]
    phase: str = CHARGING
    judged: bool = False

    @property
    def timestamp(self) -> dt.datetime:
        try:
            return ocppj.parse_datetime(self.raw_timestamp) if isinstance(self.raw_timestamp, str) else self.call.wall
        except ValueError:
            return self.call.wall

    @property
    def contexts(self) -> set[str]:
        return {sv.get("context") or spec16.CONTEXT_PERIODIC for e in self.entries for sv in e.get("sampledValue") or []}

    @property
    def periodic(self) -> bool:
        return spec16.CONTEXT_PERIODIC in self.contexts

    @property
    def triggered(self) -> bool:
        return spec16.CONTEXT_TRIGGER in self.contexts and not self.periodic

    def samples(self, errors: list[meter.MeterFormatError] | None = None) -> list[meter.Sample]:
        return meter.samples(self.entries, errors=errors)

    def describe(self) -> str:
        return f"{self.raw_timestamp or self.call.wall.isoformat()} ({'/'.join(sorted(self.contexts))}, frame #{self.call.seq})"


@dataclass
class Recording:
    test: str  # nodeid of the test that recorded it
    connector: int
    measurands_configured: str | None  # the alternative whose list was Accepted, or None
    sampled_data: str | None  # MeterValuesSampledData as the charger reports it after the change
    interval: int  # the interval the harness asked for
    interval_status: str  # the charger's answer to it
    interval_in_force: int | None  # as the charger reports it
    session: Charging
    stop: ReceivedCall | None = None
    points: list[Point] = field(default_factory=list)
    charging_reaction: tuple[float, str] = (0.0, "")
    suspend_act: float | None = None  # monotonic time of the pause
    suspended_reaction: tuple[float, str] | None = None
    suspend_unsupported: str | None = None
    triggered: int = 0
    trigger_problem: str | None = None
    notes: list[str] = field(default_factory=list)
    first_seq: int = 0
    last_seq: int = 0
    sampled_data_at: float = 0.0  # monotonic time MeterValuesSampledData was answered (MV-1's grace starts there)

    @property
    def transaction_id(self) -> int:
        return self.session.transaction_id

    def judged(self, phase: str | None = None) -> list[Point]:
        return [p for p in self.points if p.judged and (phase is None or p.phase == phase)]

    def sample_points(self) -> list[Point]:
        """The points MV-1/MV-2 require readings in: the periodic ones (the triggered ones if none came)."""
        periodic = [p for p in self.points if p.periodic]
        return periodic or [p for p in self.points if p.triggered]

    def summary(self) -> list[dict[str, Any]]:
        rows = []
        for p in self.points:
            found = p.samples(errors=[])
            try:
                energy = meter.energy_wh(found)
            except meter.MeterFormatError as exc:
                energy = f"unreadable: {exc}"
            try:
                watts, how = meter.power_w(found)
            except meter.MeterFormatError as exc:
                watts, how = None, f"unreadable: {exc}"
            rows.append({
                "timestamp": p.raw_timestamp, "contexts": sorted(p.contexts), "phase": p.phase, "judged": p.judged,
                "energy_wh": None if energy is None else str(energy), "power_w": None if watts is None else str(watts),
                "power_from": how, "transactionId": p.call.get("transactionId"), "seq": p.call.seq,
            })
        return rows


_RECORDINGS: weakref.WeakKeyDictionary[ChargerSession, Recording | BaseException] = weakref.WeakKeyDictionary()


async def recorded_session(charger: ChargerSession, settings: Settings, request: pytest.FixtureRequest) -> Recording:
    """The session of this run (recorded now if no MV test recorded it yet)."""
    found = _RECORDINGS.get(charger)
    if found is None:
        try:
            found = await _record(charger, settings, request.node.nodeid)
        except BaseException as exc:  # noqa: BLE001 - every MV test reports the same cause
            if not isinstance(exc, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)):
                _RECORDINGS[charger] = exc  # a failed or skipped recording: the other MV tests say the same
            raise
        _RECORDINGS[charger] = found
        charger.note(
            f"this test recorded the session the MV tests judge (frames #{found.first_seq}..#{found.last_seq})"
        )
    elif isinstance(found, BaseException):
        raise found
    else:
        charger.note(f"judged on the session recorded during {found.test} (frames #{found.first_seq}..#{found.last_seq})")
    charger.details["meter_readings"] = found.summary()
    for note in found.notes:
        charger.note(note)
    return found


async def change_configuration(charger: ChargerSession, key: str, value: str) -> str:
    """ChangeConfiguration's status, or "CALLERROR <code>"."""
    try:
        answer = await charger.call(call.ChangeConfiguration(key=key, value=value))
    except CallErrorReceived as exc:
        return f"CALLERROR {exc.code}"
    return str(answer.status)


async def _record(charger: ChargerSession, settings: Settings, nodeid: str) -> Recording:
    notes: list[str] = []
    # 1. What to sample.
    configured: str | None = None
    answers = []
    for alternative, value in (("Power.Active.Import", POWER_LIST), ("Current.Import+Voltage", CURRENT_VOLTAGE_LIST)):
        status = await change_configuration(charger, "MeterValuesSampledData", value)
        answers.append(f"{value!r}: {status}")
        if status == ConfigurationStatus.accepted:
            configured = alternative
            break
    sampled_data_at = time.monotonic()
    sampled_data = await configured_value(charger, "MeterValuesSampledData")
    if configured is None:
        notes.append(
            f"MeterValuesSampledData was not accepted ({'; '.join(answers)}; see CFG-1): the session ran "
            f"with the charger's own list {sampled_data!r}"
        )
    elif configured != "Power.Active.Import":
        notes.append(f"MeterValuesSampledData: {'; '.join(answers)}")
    interval = settings.meter_sample_interval
    status = await change_configuration(charger, "MeterValueSampleInterval", str(interval))
    raw_interval = await configured_value(charger, "MeterValueSampleInterval")
    in_force = int(raw_interval.strip()) if raw_interval and raw_interval.strip().isdigit() else None
    if status != ConfigurationStatus.accepted:
        notes.append(
            f"MeterValueSampleInterval={interval} was answered {status} (see CFG-2); the charger reports {raw_interval!r}"
        )

    # 2. Charge.
    session = await start_charging(charger)
    rec = Recording(nodeid, session.connector, configured, sampled_data, interval, status, in_force, session,
                    notes=notes, first_seq=session.since, sampled_data_at=sampled_data_at)
    sampler = _Sampler(charger, rec, settings)
    await sampler.collect(CHARGING, CHARGING_SAMPLES)

    # 3. The EV pauses.
    act_seq = charger.trace.next_seq
    rec.suspend_act = time.monotonic()  # samples arriving from here on are no longer "while charging"
    try:
        await charger.rig.ev_suspend(True, session.connector)
    except pytest.skip.Exception as exc:
        rec.suspend_act = None
        rec.suspend_unsupported = str(exc)
        notes.append(f"the EV could not be paused ({exc}): power while suspended not tested")
    else:
        sampler.suspend_seq = act_seq
        sampler.suspend_done = time.monotonic()  # the charger's reaction time counts from here
        await sampler.collect(SUSPENDED, SUSPENDED_SAMPLES)

    # 4. Stop.
    try:
        rec.stop = await stop_charging(charger, session, remote=True)
    except (AssertionError, CallErrorReceived):
        notes.append("RemoteStopTransaction did not stop the session: stopped with the driver's card")
        rec.stop = await stop_charging(charger, session, remote=False)
    # MeterValues queued before the stop may still be in flight: take what arrived.
    sampler.take_arrived()
    sampler.classify()
    rec.last_seq = charger.trace.next_seq - 1
    if rec.triggered:
        notes.append(
            f"{rec.triggered} sample(s) were requested with TriggerMessage MeterValues: no periodic sample came "
            f"within {interval * 1.5 + 1:g} s at MeterValueSampleInterval={interval}"
        )
    return rec


class _Sampler:
    """Collects the connector's MeterValues; asks for one with TriggerMessage when the periodic one does not come."""

    def __init__(self, charger: ChargerSession, rec: Recording, settings: Settings) -> None:
        self.charger = charger
        self.rec = rec
        self.settings = settings
        self.cursor = rec.session.since
        self.trigger_usable = True
        self.suspend_seq: int | None = None
        self.suspend_done = 0.0

    def _mine(self, call: ReceivedCall) -> bool:
        return call.action == "MeterValues" and call.get("connectorId") == self.rec.connector

    def _add(self, call: ReceivedCall) -> None:
        for entry in call.get("meterValue") or []:
            if not isinstance(entry, dict):
                continue
            stamp = entry.get("timestamp")
            last = self.rec.points[-1] if self.rec.points else None
            if (last is not None and stamp is not None and last.raw_timestamp == stamp
                    and not _quantities([entry]) & _quantities(last.entries)):
                last.entries.append(entry)  # one instant reported in several entries or messages
            else:
                self.rec.points.append(Point(call, stamp if isinstance(stamp, str) else None, [entry]))

    def take_arrived(self) -> None:
        for call in self.charger.received("MeterValues", since=self.cursor):
            if self._mine(call):
                self._add(call)
        self.cursor = self.charger.trace.next_seq

    async def _wait(self, within: float) -> bool:
        try:
            got = await self.charger.expect("MeterValues", where=self._mine, within=within, since=self.cursor,
                                            describe=f"a MeterValues for connector {self.rec.connector}")
        except ExpectationTimeout:
            return False
        self.take_arrived()
        del got
        return True

    async def next_sample(self) -> bool:
        """Wait for the next MeterValues; False if none came even when asked for."""
        rec = self.rec
        if await self._wait(rec.interval * 1.5 + 1):
            return True
        if self.trigger_usable:
            try:
                answer = await self.charger.call(
                    call.TriggerMessage(requested_message=MessageTrigger.meter_values, connector_id=rec.connector)
                )
                status = answer.status
            except CallErrorReceived as exc:
                status = f"CALLERROR {exc.code}"
            if status == TriggerMessageStatus.accepted:
                if await self._wait(10):
                    rec.triggered += 1
                    return True
                status = "Accepted, but no MeterValues followed within 10 s"
            self.trigger_usable = False
            rec.trigger_problem = f"TriggerMessage MeterValues: {status}"
            rec.notes.append(f"no periodic sample came, and TriggerMessage MeterValues was answered {status}")
        longer = rec.interval_in_force
        if longer is not None and longer > rec.interval:
            return await self._wait(longer * 1.5 + 1)
        return False

    async def collect(self, phase: str, wanted: int) -> None:
        for _ in range(wanted + 4):
            self.classify()
            if len(self.rec.judged(phase)) >= wanted:
                return
            if not await self.next_sample():
                return
        self.classify()

    def _reaction(self, after_seq: int, statuses: tuple[str, ...], act: float) -> tuple[float, str]:
        """When the charger had reacted to an act: its StatusNotification, or SETTLE seconds after the act."""
        for call in self.charger.received("StatusNotification", since=after_seq):
            if call.get("connectorId") == self.rec.connector and call.get("status") in statuses:
                return call.mono, f"{call.get('status')} StatusNotification (frame #{call.seq})"
        return act + self.settings.scaled(SETTLE), f"{SETTLE:g} s after the act (no {'/'.join(statuses)} status)"

    def classify(self) -> None:
        """Label each point charging/suspended and judged or not (see the module docstring)."""
        rec = self.rec
        start = rec.session.start
        status_time, why = self._reaction(rec.session.since, (spec16.CHARGING,), start.mono)
        rec.charging_reaction = (max(status_time, start.mono), why)
        if self.suspend_seq is not None and rec.suspend_act is not None:
            rec.suspended_reaction = self._reaction(self.suspend_seq, SUSPENDED_STATUSES, self.suspend_done)
        skipped_first = False
        for p in rec.points:
            eligible = p.periodic or p.triggered
            if rec.suspend_act is None or p.call.mono < rec.suspend_act:
                p.phase = CHARGING
                p.judged = eligible and p.call.mono >= rec.charging_reaction[0]
                continue
            p.phase = SUSPENDED
            reaction = rec.suspended_reaction
            p.judged = False
            if not eligible or reaction is None or p.call.mono < reaction[0]:
                continue
            if p.periodic and not skipped_first:
                skipped_first = True  # may have been measured across the change
                continue
            p.judged = True


def _quantities(entries: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """What the entries measure (measurand, phase, location): two readings of one quantity are two instants."""
    return {
        (sv.get("measurand") or meter.ENERGY, sv.get("phase"), sv.get("location"))
        for e in entries for sv in e.get("sampledValue") or [] if isinstance(sv, dict)
    }


def _fail(problems: list[str], headline: str, rec: Recording) -> None:
    if problems:
        shown = problems[:8] + ([f"… and {len(problems) - 8} more"] if len(problems) > 8 else [])
        pytest.fail(
            f"{headline}\n  " + "\n  ".join(shown)
            + f"\n  (MeterValuesSampledData in force: {rec.sampled_data!r}; transaction {rec.transaction_id})",
            pytrace=False,
        )


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
    return rec.sampled_data_at + 2 * interval + cadence_tolerance(interval)


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
            if a.phase != b.phase:
                continue
            part = meter.integrate_power([(a.timestamp, power_at[id(a)]), (b.timestamp, power_at[id(b)])])
            delta += eb - ea
            integral += part.wh
            granularity += part.granularity_wh
            resolution = max(resolution, ra, rb)
            windows += 1
        if windows == 0:
            untested.append("no two successive samples in one state to compare energy with power")
        segments = 1 + sum(1 for (a, _, _), (b, _, _) in zip(series, series[1:]) if a.phase != b.phase)
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


def cadence_tolerance(interval: float) -> float:
    """How far one sampling gap may be from the interval: ±max(0.5 s, 20 %)."""
    return max(0.5, 0.2 * interval)


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
    tolerance = cadence_tolerance(interval)
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
    if resolution < tolerance / 2 and all(p.raw_timestamp for p in periodic) and isinstance(start.get("timestamp"), str):
        times = [p.timestamp.timestamp() for p in periodic]
        origin = _when(start).timestamp()
        end = _when(rec.stop).timestamp() if rec.stop is not None else None
        source = "the charger's timestamps"
    else:
        times = [p.call.mono for p in periodic]
        origin = start.mono
        end = rec.stop.mono if rec.stop is not None else None
        source = "arrival times"
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
    assert len(periodic) >= 3, (
        f"expected Sample.Periodic MeterValues every {interval} s during the transaction; only {len(periodic)} came "
        f"in {(end or times[-1]) - origin:.1f} s"
    )
