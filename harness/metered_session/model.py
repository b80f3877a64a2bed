"""The metered session's records: its samples (Point), its stretches of one state, NF-2's connection loss, the recording.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final


from harness import meter, ocppj, spec16
from harness.flows import Charging
from harness.session import ReceivedCall


SETTLE: Final = 1.5  # s a charger has to react to an act it reports no status for
CHARGING_SAMPLES: Final = 2  # judged samples while charging (one interval for MV-3's energy comparison)
#: Below this sampling interval (s) one interval holds too little energy against the register's step: MV-3 gets
#: three samples (two intervals) while charging.
SHORT_INTERVAL: Final = 10
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
    # Before the cut: the transaction's MeterValues that had arrived, the times of their periodic readings, and the
    # charger's own sampling period they show (None: fewer than two readings). The offline window and NF-2's loss
    # rule both go by that period.
    online: list[ReceivedCall] = field(default_factory=list)
    online_times: list[dt.datetime] = field(default_factory=list)
    own_period: float | None = None
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
