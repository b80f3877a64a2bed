"""The run's metered charging session: one transaction whose frames MV-1, MV-2, MV-3, CFG-2 and NF-2 judge.

Certification mode samples every 60 s, so evidence about sampling costs minutes. The requirements
about what a charger samples (MV-1/2/3), how often (CFG-2) and whether it loses it offline (NF-2)
are judged on the *same* transaction instead of one each (docs/rules-timing.md):

1. MeterValuesSampledData = the platform's list (Energy + Power; a Current+Voltage charger may
   reject it: then Energy + Current + Voltage). MeterValueSampleInterval = the mode's interval.
2. The EV is plugged in and the driver's card presented: a transaction, the EV charging.
3. Without NF-2: periodic samples while charging, then the EV pauses (the rig's ev_suspend) and
   the charger samples while suspended (the first sample after the pause may straddle it and is not
   judged), then RemoteStopTransaction.
4. With NF-2 selected: the first periodic sample is answered, the next one is left unanswered and
   the network is cut while it is in flight; the EV pauses; the charger samples offline (the
   straddling sample, then one while suspended); the driver's card ends the session at the
   charger; the network comes back. What the charger delivers is NF-2's evidence
   (suites/test_offline.py), and its offline samples, with their timestamps, are MV's and CFG-2's
   evidence too (§3.7: queued transaction messages keep the time they were produced).

Every sample is placed by when it was *taken* (its timestamp on the harness's clock), not when it
arrived, so a reading delivered late belongs to the stretch it was measured in. MV-3's evidence for
"≈ 0 while suspended" is a periodic sample, as the platform sees them: an instantaneous reading asked
for with TriggerMessage stands in only for a charger that sends no periodic sample.

The first test to need the session records it; the others judge the same recording (its frames are in
the evidence of the test that recorded it). When NF-2 is selected its test records (the suite order
puts it first, harness/ordering.py): the offline window's watches then file their findings in NF-2's
own test. A failure half-way (the charger never comes back) keeps what was recorded: each test judges
what it can from it and says what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
import weakref
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import pytest
from ocpp.v16 import call
from ocpp.v16.enums import ConfigurationStatus, MessageTrigger, TriggerMessageStatus

from harness import meter, ocppj, spec16
from harness.drivers.base import RigError
from harness.errors import CallErrorReceived, ChargerFailure, ExpectationTimeout
from harness.flows import (
    CURRENT_VOLTAGE_LIST,
    LATE_DELIVERY,
    POWER_LIST,
    Charging,
    change_configuration,
    configured_value,
    start_charging,
    stop_charging,
)
from harness.platform import default_answer
from harness.session import ChargerSession, ReceivedCall
from harness.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from harness.endpoint import Endpoint


SETTLE: Final = 1.5  # s a charger has to react to an act it reports no status for
CHARGING_SAMPLES: Final = 2  # judged samples while charging (one interval for MV-3's energy comparison)
SUSPENDED_SAMPLES: Final = 1  # judged samples while suspended (after the one that may straddle the pause)
CHARGING: Final = "charging"
SUSPENDED: Final = "suspended"
SUSPENDED_STATUSES: Final = (spec16.SUSPENDED_EV, spec16.SUSPENDED_EVSE)
NF2_NODE: Final = "test_offline.py::test_offline_transaction_messages_are_delivered"

#: The offline window never exceeds this (seconds).
MAX_OFFLINE_WINDOW: Final = 150.0


def offline_window(period: float) -> float:
    """How long the charger stays offline, from the cut to the end of the session at the charger.

    The EV pauses at the cut: the charger's next sample may straddle the pause, the one after it shows the EV
    suspended (MV-3), so the session ends 2.1 periods (at least 2 periods + 1 s) after the cut: the period is the
    charger's own, seen online, and the margin (6 s at 60 s) absorbs its timer's jitter. NF-2's loss rule
    flags a gap of more than 1.5 periods + 0.5 s between consecutive readings (docs/rules-offline.md): a lost first
    offline sample leaves a gap of two periods."""
    return min(MAX_OFFLINE_WINDOW, max(2.1 * period, 2 * period + 1.0))


@dataclass
class Point:
    """One metering instant: a `meterValue` entry of a MeterValues (entries with the same timestamp merged)."""

    call: ReceivedCall
    raw_timestamp: str | None
    entries: list[dict[str, Any]]
    phase: str = CHARGING
    judged: bool = False
    segment: int = 0  # which stretch of one state (the energy comparison never spans two)
    measured: float = 0.0  # monotonic: when it was taken, on the harness's clock (classify() sets it)

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
class Offline:
    """NF-2's connection loss during the session, as it happened (suites/test_offline.py judges it)."""

    how: str  # "rig" or "refused"
    cut_seq: int
    cut_mono: float
    interval: int  # the interval the charger samples at (0: not periodically)
    in_flight: ReceivedCall | None = None
    window: float = 0.0
    back_at: float | None = None  # when the network came back (monotonic)
    reconnected: float | None = None  # when the charger's new connection began (monotonic)
    reconnected_seq: int | None = None
    error: BaseException | None = None  # why the episode stopped half-way (NF-2 raises it)
    notes: list[str] = field(default_factory=list)


@dataclass
class Stretch:
    """One act of the session and the charger's reaction to it: from the reaction on, samples show `phase`."""

    phase: str
    act_seq: int
    act_done: float  # monotonic: the rig's act returned
    statuses: tuple[str, ...]
    offline: bool = False  # made while the charger was offline
    reaction: tuple[float, str] | None = None


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
    stretches: list[Stretch] = field(default_factory=list)
    suspend_unsupported: str | None = None
    triggered: int = 0
    trigger_problem: str | None = None
    notes: list[str] = field(default_factory=list)
    first_seq: int = 0
    last_seq: int = 0
    sampled_data_at: float = 0.0  # monotonic time MeterValuesSampledData was answered (MV-1's grace starts there)
    offline: Offline | None = None
    error: BaseException | None = None  # the session ended half-way: why

    @property
    def transaction_id(self) -> int:
        return self.session.transaction_id

    @property
    def charging_reaction(self) -> tuple[float, str]:
        last = next((s for s in reversed(self.stretches) if s.phase == CHARGING and s.reaction), None)
        return last.reaction if last is not None and last.reaction else (self.session.start.mono, "the start")

    @property
    def suspended_reaction(self) -> tuple[float, str] | None:
        return next((s.reaction for s in self.stretches if s.phase == SUSPENDED), None)

    def judged(self, phase: str | None = None) -> list[Point]:
        return [p for p in self.points if p.judged and (phase is None or p.phase == phase)]

    def sample_points(self) -> list[Point]:
        """The points MV-1/MV-2 require readings in: the periodic ones (the triggered ones if none came)."""
        periodic = [p for p in self.points if p.periodic]
        return periodic or [p for p in self.points if p.triggered]

    def seconds(self) -> float:
        """How long the session lasted: from its StartTransaction to its StopTransaction (or its last reading)."""
        start = self.session.start
        end = self.stop.mono if self.stop is not None else (self.points[-1].call.mono if self.points else start.mono)
        return end - start.mono

    def window(self) -> str:
        """The evidence window, for the report: frames and time."""
        return (f"transaction {self.transaction_id}, frames #{self.first_seq}..#{self.last_seq}, "
                f"{self.seconds():.1f} s from its StartTransaction"
                + (f" (offline {self.offline.window:g} s of it, NF-2)" if self.offline is not None else ""))

    def summary(self) -> list[dict[str, Any]]:
        rows = []
        for p in self.points:
            found = p.samples(errors=[])
            energy: Decimal | str | None
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


def nf2_selected(request: pytest.FixtureRequest) -> bool:
    """Whether NF-2's test runs in this session (then the session includes its connection loss)."""
    return any(item.nodeid.endswith(NF2_NODE) for item in request.session.items)


async def recorded_session(
    charger: ChargerSession, settings: Settings, request: pytest.FixtureRequest, csms: Endpoint | None = None
) -> Recording:
    """The metered session of this run (recorded now if no test recorded it yet)."""
    found = _RECORDINGS.get(charger)
    if found is None:
        with_offline = csms is not None and nf2_selected(request)
        try:
            found = await _record(charger, settings, request.node.nodeid, csms if with_offline else None)
        except BaseException as exc:  # noqa: BLE001 - every test of the session reports the same cause
            if not isinstance(exc, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)):
                _RECORDINGS[charger] = exc  # a failed or skipped recording: the other tests say the same
            raise
        _RECORDINGS[charger] = found
        charger.note(f"this test recorded the metered session that MV-1/2/3, CFG-2 and NF-2 judge: {found.window()}")
    elif isinstance(found, BaseException):
        raise found
    else:
        charger.note(f"judged on the metered session recorded during {found.test}: {found.window()}")
    charger.details["meter_readings"] = found.summary()
    # The evidence window (benchmarks/bench.py adds the record's to the sum-of-waits floor: what it would cost if
    # each requirement waited for a session of its own).
    charger.details["evidence_window"] = {
        "seconds": round(found.seconds(), 3), "frames": [found.first_seq, found.last_seq],
        "source": "waited" if found.test == request.node.nodeid else "record", "text": found.window(),
    }
    for note in found.notes:
        charger.note(note)
    return found


async def _record(charger: ChargerSession, settings: Settings, nodeid: str, csms: Endpoint | None) -> Recording:
    notes: list[str] = []
    # 1. What to sample, and how often.
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
    rec.stretches.append(Stretch(CHARGING, session.since, session.start.mono, (spec16.CHARGING,)))
    sampler = _Sampler(charger, rec, settings)
    try:
        if csms is not None:
            # 3-4. Charging online, NF-2's connection loss with the EV pausing offline, the end at the charger.
            await _with_connection_loss(charger, csms, settings, rec, sampler)
        else:
            # 3. Charging, then the EV pauses, then the end of the session.
            await sampler.collect(CHARGING, CHARGING_SAMPLES)
            if await sampler.pause():
                await sampler.collect(SUSPENDED, SUSPENDED_SAMPLES)
            else:
                await sampler.collect(CHARGING, CHARGING_SAMPLES + 1)  # CFG-2 still reads two gaps
            try:
                rec.stop = await stop_charging(charger, session, remote=True)
            except (AssertionError, CallErrorReceived):
                notes.append("RemoteStopTransaction did not stop the session: stopped with the driver's card")
                rec.stop = await stop_charging(charger, session, remote=False)
    finally:
        # MeterValues queued before the stop may still be in flight: take what arrived.
        sampler.take_arrived()
        sampler.classify()
        rec.last_seq = charger.trace.next_seq - 1
    if rec.triggered:
        notes.append(
            f"{rec.triggered} sample(s) while charging were requested with TriggerMessage MeterValues: no periodic "
            f"sample came within {interval * 1.5 + 1:g} s at MeterValueSampleInterval={interval}"
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
        self.seen: set[str] = set()

    def _mine(self, call: ReceivedCall) -> bool:
        return call.action == "MeterValues" and call.get("connectorId") == self.rec.connector

    def _add(self, call: ReceivedCall) -> None:
        for entry in call.get("meterValue") or []:
            if not isinstance(entry, dict):
                continue
            stamp = entry.get("timestamp")
            # A reading sent again (the message in flight at NF-2's connection loss, an at-least-once retry) is one
            # reading: the same timestamp and the same values.
            key = json.dumps(entry, sort_keys=True, default=str)
            if key in self.seen:
                continue
            self.seen.add(key)
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
            await self.charger.expect("MeterValues", where=self._mine, within=within, since=self.cursor,
                                      describe=f"a MeterValues for connector {self.rec.connector}")
        except ExpectationTimeout:
            return False
        self.take_arrived()
        return True

    async def _trigger(self) -> bool:
        """Ask for a reading now (TriggerMessage MeterValues); False when the charger will not give one."""
        if not self.trigger_usable:
            return False
        rec = self.rec
        try:
            answer = await self.charger.call(
                call.TriggerMessage(requested_message=MessageTrigger.meter_values, connector_id=rec.connector)
            )
            status = str(answer.status)
        except CallErrorReceived as exc:
            status = f"CALLERROR {exc.code}"
        if status == TriggerMessageStatus.accepted:
            if await self._wait(10):
                return True
            status = "Accepted, but no MeterValues followed within 10 s"
        self.trigger_usable = False
        rec.trigger_problem = f"TriggerMessage MeterValues: {status}"
        rec.notes.append(f"TriggerMessage MeterValues was answered {status}: periodic samples only")
        return False

    async def next_sample(self) -> bool:
        """Wait for the next MeterValues; False if none came even when asked for."""
        rec = self.rec
        if await self._wait(rec.interval * 1.5 + 1):
            return True
        if await self._trigger():
            rec.triggered += 1
            return True
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

    async def pause(self, *, offline: bool = False) -> bool:
        """The EV pauses (the rig's ev_suspend); False when the rig cannot make it (MV-3's suspended part is then not
        tested, naming the act)."""
        rec = self.rec
        act_seq = self.charger.trace.next_seq
        try:
            await self.charger.rig.ev_suspend(True, rec.connector)
        except pytest.skip.Exception as exc:
            rec.suspend_unsupported = str(exc)
            rec.notes.append(f"the EV could not be paused ({exc}): power while suspended not tested")
            return False
        rec.stretches.append(Stretch(SUSPENDED, act_seq, time.monotonic(), SUSPENDED_STATUSES, offline=offline))
        return True

    def _reaction(self, stretch: Stretch) -> tuple[float, str]:
        """When the charger had reacted to an act: its StatusNotification, or SETTLE seconds after the act. An act
        made while the charger is offline has no status to wait for (it may come after the reconnect, or never)."""
        if not stretch.offline:
            for call in self.charger.received("StatusNotification", since=stretch.act_seq):
                if call.get("connectorId") == self.rec.connector and call.get("status") in stretch.statuses:
                    return max(call.mono, stretch.act_done), f"{call.get('status')} StatusNotification (frame #{call.seq})"
        return (stretch.act_done + self.settings.scaled(SETTLE),
                f"{SETTLE:g} s after the act (no {'/'.join(stretch.statuses)} status"
                + (" can come while offline)" if stretch.offline else ")"))

    def _measured(self) -> None:
        """When each point was taken, on the harness's clock: its timestamp moved by the charger's clock offset (the
        least arrival − timestamp over the points, i.e. the offset plus the shortest transmission delay, as SC-2's
        readings are placed: docs/rules-metering.md). A point without a usable timestamp counts from its arrival."""
        lags = []
        for p in self.rec.points:
            if isinstance(p.raw_timestamp, str):
                lags.append((p.call.wall - p.timestamp).total_seconds())
        least = min(lags, default=0.0)
        for p in self.rec.points:
            if isinstance(p.raw_timestamp, str):
                p.measured = p.call.mono - ((p.call.wall - p.timestamp).total_seconds() - least)
            else:
                p.measured = p.call.mono

    def _period(self) -> float:
        """The longest sampling period the charger may be using: the configured interval, the one it reports, and the
        median gap between its periodic samples (a sample may average over that much time before it was taken)."""
        rec = self.rec
        times = sorted(p.measured for p in rec.points if p.periodic)
        gaps = sorted(b - a for a, b in zip(times, times[1:]))
        seen = gaps[len(gaps) // 2] if gaps else 0.0
        return float(max(rec.interval, rec.interval_in_force or 0, seen))

    def classify(self) -> None:
        """Label each point charging/suspended and judged or not (see the module docstring).

        A point belongs to the last act before it was taken. It is judged once the charger had reacted to that act,
        except the first periodic one while suspended when its sampling interval holds the pause: it may have been
        measured over an interval that straddles the change (averaging meters)."""
        rec = self.rec
        self._measured()
        for stretch in rec.stretches:
            stretch.reaction = self._reaction(stretch)
        period = self._period()
        straddled: set[int] = set()
        for p in rec.points:
            index = max((i for i, s in enumerate(rec.stretches) if s.act_done <= p.measured), default=0)
            stretch = rec.stretches[index]
            p.segment = index
            p.phase = stretch.phase
            reaction = stretch.reaction
            p.judged = False
            if not (p.periodic or p.triggered) or reaction is None or p.measured < reaction[0]:
                continue
            if p.phase == SUSPENDED and p.periodic and index not in straddled:
                straddled.add(index)
                if p.measured - period <= stretch.act_done:
                    continue  # its sampling interval holds the change: an averaging meter straddles it
            p.judged = True


def _quantities(entries: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """What the entries measure (measurand, phase, location): two readings of one quantity are two instants."""
    return {
        (sv.get("measurand") or meter.ENERGY, sv.get("phase"), sv.get("location"))
        for e in entries for sv in e.get("sampledValue") or [] if isinstance(sv, dict)
    }


# --- NF-2's connection loss --------------------------------------------------------------------------


def reconnect_bound(settings: Settings) -> float:
    """How long the charger may take to come back once the network is back."""
    return 15.0 if settings.quick else 180.0


async def _go_offline(charger: ChargerSession, csms: Endpoint) -> Offline:
    """Cut the network at the rig; if the rig cannot, refuse the charger at the platform instead."""
    cut_seq, cut_mono = charger.trace.next_seq, time.monotonic()
    try:
        await charger.rig.network(False)
        await charger.wait_disconnected(within=10)
        return Offline("rig", cut_seq, cut_mono, 0)
    except pytest.skip.Exception:
        pass
    # The platform side: a certificate the charger must refuse (TLS-3), then drop the socket.
    csms.present(csms.certs.bad_server_context("untrusted-ca"))
    charger.note("the rig cannot cut the network: the platform dropped the socket and refused reconnection")
    if charger.connection is not None:
        await charger.connection.close(1001, "harness: connection loss (NF-2)")
    await charger.wait_disconnected(within=10)
    return Offline("refused", cut_seq, cut_mono, 0)


async def _go_online(charger: ChargerSession, csms: Endpoint, offline: Offline) -> None:
    if offline.how == "rig":
        await charger.rig.network(True)
    else:
        csms.present(None)


def periodic_times(call: ReceivedCall) -> list[dt.datetime]:
    """The timestamps of the periodic readings (context Sample.Periodic, or none given) in a MeterValues."""
    times = []
    for entry in call.payload.get("meterValue") or []:
        values = entry.get("sampledValue") or []
        if values and any(v.get("context") in (None, spec16.CONTEXT_PERIODIC) for v in values):
            try:
                times.append(ocppj.parse_datetime(str(entry.get("timestamp"))))
            except ValueError:
                continue
    return times


def _is_periodic(call: ReceivedCall) -> bool:
    """Whether a MeterValues carries a periodic reading (context Sample.Periodic, or none given: §7.43's default)."""
    return any(isinstance(e, dict) and any(isinstance(v, dict) and v.get("context") in (None, spec16.CONTEXT_PERIODIC)
                                           for v in e.get("sampledValue") or [])
               for e in call.payload.get("meterValue") or [])


def own_period(times: list[dt.datetime]) -> float | None:
    """The charger's own sampling period, from its periodic readings taken online (None: too few to tell)."""
    ordered = sorted(set(times))
    gaps = sorted((b - a).total_seconds() for a, b in zip(ordered, ordered[1:]))
    return gaps[len(gaps) // 2] if gaps else None


def _connected_mono(charger: ChargerSession) -> float:
    """When the current connection began (the trace's connect event)."""
    entries = charger.trace.since(charger.connected_seq)
    return entries[0].mono if entries else time.monotonic()


async def _with_connection_loss(
    charger: ChargerSession, csms: Endpoint, settings: Settings, rec: Recording, sampler: _Sampler
) -> None:
    """NF-2's part of the session: a MeterValues in flight, the cut, the offline window, the end of the session at the
    charger, the network back. Problems are kept in `rec.offline.error` for NF-2 (what was recorded stays MV's)."""
    session = rec.session
    tx = session.transaction_id
    interval = await _sampling_interval(charger, rec)
    # Before the cut: enough periodic samples answered online for the charger's own period to show (two readings,
    # one gap), then the next one is left unanswered: in flight when the link is cut. When the charger's timestamps
    # are too coarse for CFG-2 to read its cadence from them (whole seconds at a 1 s interval), CFG-2 reads arrival
    # times, which only online samples have: one more then.
    resolution = meter.timestamp_resolution([session.start.get("timestamp")])
    answered_first = 1 if resolution < max(0.5, 0.2 * max(interval, 1)) / 2 else 2
    answered: list[ReceivedCall] = []
    held: list[ReceivedCall] = []

    def hold(c: ReceivedCall) -> object:
        # Called as each CALL arrives, in order: the first periodic MeterValues of the transaction after
        # `answered_first` answered ones gets no answer and stays in flight.
        if c.get("transactionId") == tx and _is_periodic(c):
            if len(answered) >= answered_first and not held:
                held.append(c)
                return None
            answered.append(c)
        return default_answer(charger, c)

    # The hold lasts until the link is cut (answers are tasks: one written after the hold ended would release it).
    with charger.answering("MeterValues", hold):
        if interval > 0:
            # Periodic samples; a charger that does not sample at the interval (CFG-2's finding) is asked for
            # readings (TriggerMessage), so MV is still judged on real readings, and is cut without a MeterValues
            # in flight.
            def periodic_of_tx() -> int:
                return sum(1 for c in charger.received("MeterValues", since=session.since)
                           if c.get("transactionId") == tx and _is_periodic(c))

            for _ in range(answered_first + 4):
                if periodic_of_tx() > answered_first or not await sampler.next_sample():
                    break
            # The platform's answers are tasks: once they ran, the hold has decided.
            await charger.settle_answers()
            if not held:
                rec.notes.append(
                    f"the charger sent fewer than {answered_first + 1} periodic MeterValues of transaction {tx} at "
                    f"MeterValueSampleInterval {interval} s (its sampling cadence is CFG-2's): the link is cut without "
                    "a MeterValues in flight")
        else:
            rec.notes.append("the charger does not sample periodically: the link is cut without a MeterValues in flight")
        if not held:
            # No periodic sample to hold, so none will be taken offline either: the reading while suspended is taken
            # online (asked for, as the charging ones were), before the cut.
            if await sampler.pause():
                await sampler.collect(SUSPENDED, SUSPENDED_SAMPLES)
        offline = await _go_offline(charger, csms)
    sampler.take_arrived()
    offline.interval = interval
    offline.in_flight = held[0] if held else None
    rec.offline = offline
    earlier = [c for c in charger.received("MeterValues", since=session.since) if c.get("transactionId") == tx and c.seq < offline.cut_seq]
    period = own_period(sorted({t for c in earlier for t in periodic_times(c)}))
    offline.window = offline_window(max(interval, period or 0)) if interval > 0 else 0.0
    restored = False
    try:
        try:
            # Offline for a while: the requirement is about what the charger produces in that time (a deliberate
            # window, not a synchronisation). A charger that does not sample periodically produces nothing offline
            # but the StopTransaction: no window then.
            # The EV pauses while the charger is offline: its next sample may straddle the pause, the one after it
            # shows the EV suspended (MV-3), delivered with the rest of the queue.
            if held:
                await sampler.pause(offline=True)
            if offline.window:
                await asyncio.sleep(offline.window)
            if charger.connected:
                if offline.how == "refused":
                    pytest.skip("not tested: the charger reconnected through a certificate it must refuse, so the "
                                "platform cannot keep it offline (see TLS-3); the rig cannot cut its network either")
                raise RigError("the rig reported the network cut, but the charger reconnected during the offline window")
            # End the session at the charger: the driver's card, then the unplug (either ends it, §4.10).
            await charger.rig.authorize(charger.platform.id_tag, session.connector)
            await charger.rig.plugout(session.connector)
            offline.back_at = time.monotonic()
            await _go_online(charger, csms, offline)
            restored = True
            bound = reconnect_bound(settings)
            try:
                await charger.wait_connected(within=bound)
            except ChargerFailure:
                raise ChargerFailure(
                    f"expected the charger to reconnect by itself within {settings.scaled(bound):g} s after the "
                    f"network came back ({'rig network restored' if offline.how == 'rig' else 'good certificate presented again'}); "
                    "it did not. Attempts since: "
                    + ("; ".join(a.summary() for a in csms.attempts if a.mono >= offline.back_at) or "none")
                ) from None
            offline.reconnected = _connected_mono(charger)
            offline.reconnected_seq = charger.connected_seq
            offline.notes.append(f"offline {offline.back_at - offline.cut_mono:.1f} s ({offline.how}); reconnected "
                                 f"{offline.reconnected - offline.back_at:.2f} s after the network came back")
        finally:
            if not restored:
                await _go_online(charger, csms, offline)
    except (AssertionError, ChargerFailure, ExpectationTimeout, pytest.skip.Exception) as exc:
        offline.error = exc  # NF-2's verdict; what was recorded until now stays MV's evidence
        return
    except Exception as exc:  # noqa: BLE001 - a rig failure: NF-2 reports it; MV judges what was recorded
        offline.error = exc
        return
    # The StopTransaction, produced offline, may come late (a flush timer: late is not lost, docs/rules-offline.md).
    with contextlib.suppress(ExpectationTimeout):
        rec.stop = await charger.expect(
            "StopTransaction", where=lambda c: c.get("transactionId") == tx, since=offline.cut_seq,
            within=LATE_DELIVERY, describe=f"the StopTransaction of transaction {tx}, produced while offline",
        )
    sampler.take_arrived()


async def _sampling_interval(charger: ChargerSession, rec: Recording) -> int:
    """The interval the charger samples at: the one set if Accepted, else the one it reports (0: none)."""
    if rec.interval_status == ConfigurationStatus.accepted:
        return rec.interval
    charger.note(f"MeterValueSampleInterval={rec.interval} answered {rec.interval_status}: using the charger's own")
    return rec.interval_in_force or 0
