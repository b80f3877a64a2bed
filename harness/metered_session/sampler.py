"""Collecting the session's samples, and placing each in the stretch it was taken in (harness/metered_session).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from ocpp.v16 import call
from ocpp.v16.enums import MessageTrigger, TriggerMessageStatus

from harness import meter
from harness.errors import CallErrorReceived, ExpectationTimeout
from harness.metered_session.model import SETTLE, SUSPENDED, SUSPENDED_STATUSES, Point, Stretch, Recording
from harness.session import ChargerSession, ReceivedCall
from harness.settings import Settings


class Sampler:
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
