"""CORE-1: the charger's Heartbeats, judged from what the session recorded (sans-I/O).

OCPP 1.6 §4.6: once its BootNotification is Accepted, the charge point sends Heartbeat every
HeartbeatInterval seconds (the interval of BootNotification.conf, or the one a ChangeConfiguration
set), and MAY skip one when it sent another PDU within the interval. The run records every frame
from boot to the end, so by the time CORE-1's heartbeat test runs late in the run, the evidence is
usually there already: this module reads it out of the trace, and the test waits only when it is not.

`read_record(entries, ...)` walks the trace from the charger's last Accepted BootNotification (or the
last accepted HeartbeatInterval change, whichever is later) and splits it into *windows*: one per
connection of that registration. In each window it keeps the periodic Heartbeats (a Heartbeat the
harness asked for with TriggerMessage is not periodic; the first Heartbeat after each TriggerMessage
Heartbeat is its answer), and the longest silence: the time the charger exchanged nothing with the
platform (its frames, and the platform's answers to its CALLs, each start the count afresh; while
the platform owes it an answer it cannot send, so nothing counts). The rule and its numbers:
docs/rules-heartbeat.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from harness import ocppj
from harness.reconnect import BOOT_GRACE, HEARTBEAT, PENDING, SILENT, ReconnectHeartbeat, tolerance
from harness.trace import EVENT, RX, TX, Trace, TraceEntry

#: Trace events after which the charger is going away (the rig cut its power or its network): its silence from
#: there to its next connection is not a Heartbeat matter (harness/rig.py writes them).
_GOING_AWAY_EVENTS = ("rig: power-cycle", "rig: network off")


@dataclass(frozen=True)
class Beat:
    """A periodic Heartbeat: its trace seq and times, and when the charger's previous exchange was."""

    seq: int
    mono: float
    wall: dt.datetime
    quiet_from: float  # monotonic time of the charger's last exchange with the platform before it


@dataclass(frozen=True)
class Silence:
    """A stretch of a connected window in which the charger exchanged nothing with the platform."""

    from_seq: int
    from_wall: dt.datetime
    to_seq: int | None  # None: still silent now (the current connection)
    seconds: float
    allowed: float


@dataclass
class Window:
    """One connection of the registration (from the registration's start, or the connect, to the disconnect)."""

    first_seq: int
    first_wall: dt.datetime
    reconnect: bool  # opened by a reconnect (its first silence may include a reboot's BootNotification grace)
    last_seq: int | None = None  # None: the current connection, still open
    last_wall: dt.datetime | None = None
    beats: list[Beat] = field(default_factory=list)
    longest: Silence | None = None  # the longest silence over the allowed bound, if any

    def name(self) -> str:
        end = (f"#{self.last_seq} {self.last_wall:%H:%M:%S}" if self.last_seq is not None and self.last_wall
               else "now (still connected)")
        return f"frames #{self.first_seq} {self.first_wall:%H:%M:%S} .. {end}"


@dataclass(frozen=True)
class Pair:
    """Two consecutive periodic Heartbeats on one connection."""

    first: Beat
    second: Beat

    @property
    def gap(self) -> float:
        return self.second.mono - self.first.mono

    @property
    def quiet(self) -> float:
        """Seconds from the charger's previous exchange to the second Heartbeat."""
        return self.second.mono - self.second.quiet_from

    def describe(self) -> str:
        return (f"Heartbeats #{self.first.seq} ({self.first.wall:%H:%M:%S}) and #{self.second.seq} "
                f"({self.second.wall:%H:%M:%S}): {self.gap:.2f} s apart, the second {self.quiet:.2f} s after the "
                "charger's previous exchange with the platform")


@dataclass
class Record:
    """What the trace says about the charger's Heartbeats since its registration (or the last interval change)."""

    interval: float | None  # the HeartbeatInterval the platform last gave; None: not registered in the trace
    start_seq: int = 0
    start_wall: dt.datetime | None = None
    started_by: str = ""  # "BootNotification.conf" or "ChangeConfiguration HeartbeatInterval"
    windows: list[Window] = field(default_factory=list)

    def pairs(self) -> list[Pair]:
        return [Pair(a, b) for w in self.windows for a, b in zip(w.beats, w.beats[1:])]

    def qualifying(self, interval: float) -> list[Pair]:
        """The pairs that meet CORE-1's rule: not more often than half the interval, and at most interval +
        tolerance after the charger's previous exchange (§4.6 lets it skip a Heartbeat after another PDU)."""
        return [p for p in self.pairs() if p.gap >= 0.5 * interval and p.quiet <= interval + tolerance(interval)]

    def typical_gap(self) -> float | None:
        """The median gap between consecutive periodic Heartbeats on one connection (the charger's own period)."""
        gaps = [p.gap for p in self.pairs()]
        return statistics.median(gaps) if gaps else None

    def silent_windows(self) -> list[Window]:
        return [w for w in self.windows if w.longest is not None]

    def span(self) -> str:
        if not self.windows:
            return "no connection"
        first, last = self.windows[0], self.windows[-1]
        end = (f"#{last.last_seq} {last.last_wall:%H:%M:%S}" if last.last_seq is not None and last.last_wall
               else "now")
        return (f"frames #{first.first_seq}..{end} ({first.first_wall:%H:%M:%S} onwards), "
                f"{len(self.windows)} connection(s)")


def _parse(entry: TraceEntry) -> ocppj.Frame | None:
    with contextlib.suppress(ocppj.FrameError):
        return ocppj.parse_frame(entry.text)
    return None


def _number(value: object) -> float | None:
    with contextlib.suppress(TypeError, ValueError):
        number = float(value)  # type: ignore[arg-type]
        return number if number > 0 else None
    return None


def _registration(entries: list[TraceEntry]) -> tuple[int | None, float | None, str]:
    """Where the current registration's Heartbeat count starts (the index in `entries`), its interval, and what
    started it: the platform's Accepted answer to the charger's last BootNotification, or a later accepted
    ChangeConfiguration HeartbeatInterval (the charger's answer). (None, None, "") when the charger's last
    BootNotification was not Accepted, or none is in the trace."""
    boots: set[str] = set()
    changes: dict[str, float | None] = {}
    start: int | None = None
    interval: float | None = None
    how = ""
    for index, entry in enumerate(entries):
        if entry.direction == EVENT:
            continue
        frame = _parse(entry)
        if frame is None:
            continue
        if entry.direction == RX:
            if isinstance(frame, ocppj.Call) and frame.action == "BootNotification":
                boots.add(frame.unique_id)
            elif isinstance(frame, ocppj.CallResult) and frame.unique_id in changes:
                value = changes.pop(frame.unique_id)
                if frame.payload.get("status") == "Accepted" and start is not None and value is not None:
                    start, interval, how = index, value, "ChangeConfiguration HeartbeatInterval"
        elif isinstance(frame, ocppj.CallResult) and frame.unique_id in boots:
            boots.discard(frame.unique_id)
            if frame.payload.get("status") == "Accepted":
                start, interval, how = index, _number(frame.payload.get("interval")), "BootNotification.conf"
            else:  # Pending or Rejected: not registered; no Heartbeat is due (§4.2)
                start, interval, how = None, None, ""
        elif isinstance(frame, ocppj.Call) and frame.action == "ChangeConfiguration":
            if frame.payload.get("key") == "HeartbeatInterval":
                changes[frame.unique_id] = _number(frame.payload.get("value"))
    return start, interval, how


def read_record(entries: Iterable[TraceEntry], *, now: float, connected: bool, default_interval: float,
                factor: float = 1.0) -> Record:
    """The Heartbeat record of the charger's current registration, from the trace `entries` (in order).

    `now` (monotonic) ends the current connection's window when `connected`; `default_interval` is used when the
    BootNotification.conf gave none; `factor` (the run's timeout factor) scales the silence allowed, as the
    reconnect check does (harness/reconnect.py).
    """
    kept = list(entries)
    index, interval, how = _registration(kept)
    if index is None:
        return Record(interval=None)
    interval = interval or default_interval
    first = kept[index]
    record = Record(interval=interval, start_seq=first.seq, start_wall=first.wall, started_by=how)
    allowed = (interval + tolerance(interval)) * factor
    grace = max(allowed, BOOT_GRACE * factor)

    opened = Window(first.seq, first.wall, reconnect=False)
    record.windows.append(opened)
    window: Window | None = opened  # None between a disconnect and the next connection
    clock_from = first.mono  # the last exchange: the silence counts from here
    first_gap = False  # the next silence is the first after a reconnect (grace for a BootNotification)
    owed: str | None = None  # a CALL of the charger the platform has not answered yet
    triggers = 0  # TriggerMessage Heartbeat requests not yet matched by a Heartbeat
    resets: set[str] = set()  # message ids of the platform's Reset requests
    away = False  # the charger is going away (an accepted Reset, the rig cut its power or network)

    def silent(until: TraceEntry | None, mono: float) -> None:
        if window is None or away or owed is not None:
            return
        bound = grace if first_gap else allowed
        seconds = mono - clock_from
        if seconds > bound and (window.longest is None or seconds > window.longest.seconds):
            start = next((e for e in reversed(seen) if e.mono <= clock_from), first)
            window.longest = Silence(start.seq, start.wall, until.seq if until is not None else None, seconds, bound)

    seen: list[TraceEntry] = [first]
    for entry in kept[index + 1:]:
        seen.append(entry)
        if entry.direction == EVENT:
            if entry.text.startswith("connected"):
                opened = Window(entry.seq, entry.wall, reconnect=True)
                record.windows.append(opened)
                window = opened
                clock_from, first_gap, owed, triggers, away = entry.mono, True, None, 0, False
            elif entry.text.startswith("disconnected") and window is not None:
                silent(entry, entry.mono)
                window.last_seq, window.last_wall = entry.seq, entry.wall
                window = None
            elif entry.text.startswith(_GOING_AWAY_EVENTS):
                away = True
            continue
        if window is None:
            continue  # a frame written after the disconnect (an answer that lost the race): no connection
        frame = _parse(entry)
        if entry.direction == RX:
            silent(entry, entry.mono)
            if isinstance(frame, ocppj.Call):
                if frame.action == "Heartbeat":
                    if triggers:
                        triggers -= 1
                    elif not away:
                        window.beats.append(Beat(entry.seq, entry.mono, entry.wall, clock_from))
                owed = frame.unique_id
            elif isinstance(frame, ocppj.CallResult) and frame.unique_id in resets:
                resets.discard(frame.unique_id)
                away = away or frame.payload.get("status") == "Accepted"  # it is about to reboot
            clock_from, first_gap = entry.mono, False
        elif entry.direction == TX and frame is not None:
            if isinstance(frame, ocppj.Call):
                if frame.action == "TriggerMessage" and frame.payload.get("requestedMessage") == "Heartbeat":
                    triggers += 1
                elif frame.action == "Reset":
                    resets.add(frame.unique_id)
            elif frame.unique_id == owed:
                owed, clock_from = None, entry.mono  # the platform answered: an exchange
    if window is not None and connected:
        silent(None, now)
    elif window is not None:  # the trace ends without a disconnect event (e.g. it is being written): close here
        window.last_seq, window.last_wall = seen[-1].seq, seen[-1].wall
    return record


# --- Heartbeats after a reconnect: the checks the session already made ------------------------------------------


@dataclass(frozen=True)
class Reconnect:
    """A reconnect of the run whose Heartbeat check was decided, with the frames that decided it."""

    check: ReconnectHeartbeat
    connected: TraceEntry
    heartbeat: TraceEntry | None  # the first Heartbeat after it (HEARTBEAT); None when it stayed silent

    def name(self) -> str:
        return f"the reconnect at frame #{self.connected.seq} ({self.connected.wall:%H:%M:%S})"

    def describe(self) -> str:
        if self.heartbeat is None:
            return f"{self.name()}: silent"
        return (f"{self.name()}: first Heartbeat at frame #{self.heartbeat.seq} ({self.heartbeat.wall:%H:%M:%S}), "
                f"{self.heartbeat.mono - self.connected.mono:.2f} s after reconnecting "
                f"(HeartbeatInterval {self.check.interval:g} s)")


def decided_reconnects(checks: Iterable[ReconnectHeartbeat], trace: Trace) -> list[Reconnect]:
    """The reconnects of the run whose check ended HEARTBEAT or SILENT (decided), oldest first. A Heartbeat the
    harness asked for with TriggerMessage says nothing about the charger's own timer: a reconnect whose first
    Heartbeat came after one is not evidence either way (left out)."""
    out: list[Reconnect] = []
    for check in checks:
        if check.outcome not in (HEARTBEAT, SILENT):
            continue
        entries = trace.since(check.connected_seq)
        if not entries or entries[0].seq != check.connected_seq:
            continue  # the bounded trace no longer holds it: it cannot be named
        heartbeat: TraceEntry | None = None
        triggered = False
        for entry in entries[1:]:
            if check.outcome != HEARTBEAT or (entry.direction == EVENT and entry.text.startswith("disconnected")):
                break
            frame = _parse(entry) if entry.direction != EVENT else None
            if not isinstance(frame, ocppj.Call):
                continue
            if entry.direction == TX and frame.action == "TriggerMessage" and frame.payload.get("requestedMessage") == "Heartbeat":
                triggered = True
            elif entry.direction == RX and frame.action == "Heartbeat":
                heartbeat = entry
                break
        if check.outcome == HEARTBEAT and (heartbeat is None or triggered):
            continue
        out.append(Reconnect(check, entries[0], heartbeat))
    return out


def must_see_out(current: ReconnectHeartbeat | None, checks: Iterable[ReconnectHeartbeat], trace: Trace) -> bool:
    """Whether the run, before it ends, waits for the check of the current connection's reconnect to decide.

    Only when it would be the run's evidence: no earlier reconnect of the run was decided (docs/rules-offline.md).
    CORE-1's test judges the decided ones (suites/test_offline.py); the check of the run's last reconnect, often
    NF-2's at the end of the metered session, would otherwise keep the run waiting up to a whole HeartbeatInterval
    (plus its tolerance) after everything else is done: in certification mode, up to 75 s. A check that decides
    while the run still goes on is filed as always (a silence is a finding of the test then running)."""
    if current is None or current.outcome != PENDING:
        return False
    return not decided_reconnects((c for c in checks if c is not current), trace)
