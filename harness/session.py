"""One charger as the harness sees it: its connection, its trace, and the API suites use.

    response = await charger.call(call.GetConfiguration(key=["HeartbeatInterval"]))
    status = await charger.expect("StatusNotification", where={"status": "Charging"}, within=10)

`expect` looks at every CALL the charger sent since a mark (by default the start of the
test), so a message that arrived before the test started waiting is not missed. Every wait
is event-driven and bounded; on timeout the failure names what was expected and shows the
frames that did arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import inspect
import json
import time
import traceback
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from harness import ocppj, spec16
from harness.printable import printable
from harness.errors import (
    CallErrorReceived,
    ChargerDisconnected,
    ChargerSilent,
    ExpectationTimeout,
    NoAnswer,
    NotConnected,
)
from harness.platform import PlatformSettings, default_answer
from harness.reconnect import ReconnectHeartbeat
from harness.trace import RX, TX, Redactor, Trace, format_frames
from harness.timing import Timing

# OCPP 1.6 §4.9: only these statuses exist on connector 0.
_MAX_VIOLATIONS = 500
_INBOX = 10_000
# A CALL bigger than this (OCPP 1.6 messages are a few KiB) is kept in the inbox without its payload once it is
# answered: parsed, a 1 MiB frame of numbers is ~20 MB of Decimals, and 10,000 of them must not stay alive.
_INBOX_PAYLOAD_LIMIT = 64 * 1024
_MAX_MESSAGE = 1000  # characters of a finding's message (a reason may quote what the charger sent)
_CURRENT: Any = object()  # ChargerSession._reply's default: the connection the charger is on now


@dataclass(frozen=True)
class ReceivedCall:
    """A CALL the charger sent, as received (numbers are Decimal)."""

    seq: int
    unique_id: str
    action: str
    payload: dict[str, Any]
    wall: dt.datetime
    mono: float
    problems: tuple[ocppj.SchemaProblem, ...] = ()

    @property
    def message(self) -> Any:
        """The payload as its `ocpp.v16.call` dataclass."""
        return ocppj.request_dataclass(self.action, self.payload)

    def get(self, key: str, default: Any = None) -> Any:
        return self.payload.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.payload[key]


@dataclass(frozen=True)
class Violation:
    """A frame from the charger that broke OCPP-J 1.6 (or a watch): fails the test during which it arrived.

    `requirement` names the requirement the finding is about when it is not that test's own (a §4.9
    transition is ST-1's; a watch's finding is the requirement of the test that set the watch).
    """

    seq: int
    wall: dt.datetime
    kind: str
    message: str
    frame: str
    requirement: str | None = None
    watched: bool = False  # found by a watch set by an earlier test

    def __str__(self) -> str:
        frame = self.frame if len(self.frame) <= 400 else self.frame[:400] + "…"
        return printable(f"[{self.kind}] {self.message}\n      frame: {frame}")


Answer = Union[Mapping[str, Any], ocppj.CallError, None, object]
AnswerHandler = Callable[[ReceivedCall], Any]


@dataclass(frozen=True)
class HarnessFault:
    """An exception in the harness's own frame handling (docs/rules-silence.md §2): the harness's fault, never
    the charger's. The test during which it happened becomes an error (verdict incomplete)."""

    seq: int  # the trace event that records it
    wall: dt.datetime
    where: str
    error: str  # "KeyError: 'x'"
    traceback: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "time": self.wall.isoformat(timespec="milliseconds"), "where": self.where,
                "error": self.error, "traceback": self.traceback}


@dataclass
class SessionSettings:
    call_timeout: float = 10.0  # seconds the charger has to answer a CALL (before the timeout factor)
    expect_within: float = 10.0  # default bound of expect()
    timing: Timing = field(default_factory=Timing)  # the run's timeout factor (harness/timing.py)
    # The silence bound (docs/rules-silence.md): a charger that left a CALL of the harness unanswered and has sent
    # nothing (no frame, no new connection) for this long is silent; waits that need it then fail at once.
    # At least a CALL's timeout, and longer than two heartbeat intervals (quick mode: 1 s; the plugin sets 150 s for
    # certification's 60 s) so that a live conformant charger, even a slow one, is always heard within it.
    silence_after: float = 10.0

    def scaled(self, seconds: float) -> float:
        return self.timing.scaled(seconds)

    @property
    def timeout_factor(self) -> float:
        return self.timing.factor


@dataclass
class Transaction:
    transaction_id: int
    connector_id: int
    id_tag: Any
    meter_start: Any
    started: ReceivedCall
    stopped: ReceivedCall | None = None


@dataclass
class Watch:
    """A CALL the charger must not send, watched as frames arrive instead of by waiting (see `forbid`)."""

    action: str
    match: Callable[[ReceivedCall], bool]
    since: int
    settle_at: float  # monotonic: the end of the window the setting test would otherwise have waited
    expires_at: float  # monotonic: a match after this is no longer the setting test's finding
    requirement: str
    what: str
    origin: str
    until_sent: frozenset[str]
    until_disconnect: bool


@dataclass
class _Pending:
    action: str
    future: asyncio.Future[ocppj.CallResult | ocppj.CallError]
    sent_at: float = field(default_factory=time.monotonic)


#: Observers of the session's waits (the plugin's live status line, harness/progress.py). Each is called as
#: observer(session, what, seconds) when expect / wait_until / send_call starts waiting, and returns a callable
#: called when that wait ends (or None).
WAIT_OBSERVERS: list[Callable[[ChargerSession, str, float], Callable[[], None] | None]] = []


def _observed(describe: Callable[..., tuple[str, float]]) -> Callable[[Any], Any]:
    """Tell WAIT_OBSERVERS what the decorated wait waits for and for how long (describe(self, *args, **kwargs))."""

    def decorate(method: Any) -> Any:
        @functools.wraps(method)
        async def observed(self: ChargerSession, *args: Any, **kwargs: Any) -> Any:
            if not WAIT_OBSERVERS:
                return await method(self, *args, **kwargs)
            try:
                what, seconds = describe(self, *args, **kwargs)
            except Exception:  # a display aid never breaks a wait
                return await method(self, *args, **kwargs)
            ends = [observer(self, what, seconds) for observer in list(WAIT_OBSERVERS)]
            try:
                return await method(self, *args, **kwargs)
            finally:
                for end in ends:
                    if end is not None:
                        end()

        return observed

    return decorate


def _expecting(self: ChargerSession, action: str, where: Any = None, within: float | None = None,
               since: int | None = None, describe: str | None = None) -> tuple[str, float]:
    if describe is None and callable(where) and not getattr(where, "__doc__", None):
        describe = f"a {action}"  # a lambda says nothing a person can read
    return describe or _describe(action, where), self.settings.scaled(self.settings.expect_within if within is None else within)


def _waiting_until(self: ChargerSession, predicate: Any, within: float, what: str) -> tuple[str, float]:
    return what, self.settings.scaled(within)


def _answering(self: ChargerSession, frame: ocppj.Call, *, timeout: float | None = None, text: str | None = None
               ) -> tuple[str, float]:
    return f"the answer to {frame.action}", self.settings.scaled(self.settings.call_timeout if timeout is None else timeout)


class ChargerSession:
    """The harness side of one charge point id: it survives reconnects, for the whole run."""

    def __init__(
        self,
        charger_id: str,
        authorization_key: str | None,
        *,
        settings: SessionSettings | None = None,
        platform: PlatformSettings | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.id = charger_id
        self.authorization_key = authorization_key
        self.settings = settings or SessionSettings()
        self.platform = platform or PlatformSettings()
        self.redact = redactor or Redactor([authorization_key] if authorization_key else [])
        self.trace = Trace(self.redact)
        self.violations: list[Violation] = []
        self.violation_count = 0
        self.watches: list[Watch] = []
        self._watch_findings: list[Violation] = []  # watch findings not yet handed to a test (see take_findings)
        self.connection: Any = None  # websockets ServerConnection while connected
        self.connection_info: dict[str, Any] = {}
        self.connections = 0
        self.connected_seq = 0  # the trace seq of the current (or last) connection's start
        # The last BootNotification the platform answered Accepted or Pending, counted once that answer was
        # on the wire (OCPP 1.6 §4.2: the boot completes with the answer; see _answer).
        self.boot: ReceivedCall | None = None
        self.boot_count = 0
        # A BootNotification received on the current connection whose answer is not yet on the wire: until it
        # is, no CALL of the harness goes out (a charger waiting for its answer may ignore CALLs; see send_call).
        self._boot_unanswered: str | None = None
        # Unreadable frames the harness sent on this connection that a stray CALLERROR may still answer
        # (a charger cannot name an id it could not read: "-1" is the 2.0.1 rule; see _stray_callerror).
        self._unreadable_unanswered = 0
        self._details_advised = False  # the errorDetails deviation is one finding per run, not one per CALLERROR
        self.unreadable_answers: list[int] = []  # trace seqs of CALLERRORs taken as answers to unreadable frames
        self.connector_status: dict[int, str] = {}
        self.status_history: deque[tuple[int, int, str]] = deque(maxlen=5000)  # (seq, connector, status)
        self.transactions: dict[int, Transaction] = {}
        self._inbox: deque[ReceivedCall] = deque(maxlen=_INBOX)
        self._arrival = asyncio.Event()
        self._state_change = asyncio.Event()
        self._pending: dict[str, _Pending] = {}
        self._timed_out: OrderedDict[str, int] = OrderedDict()  # message id -> seq of the CALL that timed out
        self._call_lock = asyncio.Lock()
        self._peer_ids = ocppj.IdTracker()
        self._peer_outstanding: str | None = None
        self._answers: dict[str, AnswerHandler] = {}
        self._answer_tasks: set[asyncio.Task[Any]] = set()
        self._mark = 0
        self.first_mark = 0  # the mark at the start of the run's first test: what came before is boot-time
        self.sent_calls: list[tuple[str, dict[str, Any]]] = []  # this test's CALLs (for restoring state)
        self.details: dict[str, Any] = {}  # facts a test records for the report (e.g. which alternative held)
        self.rig: Any = None  # the Rig for physical acts, set by the `charger` fixture
        # Silence (docs/rules-silence.md): when the charger was last heard (any frame from it, or a new connection:
        # monotonic, wall, trace seq), and the first CALL of the harness that got no answer since then
        # (action, message id, when it was sent, its bound).
        self.heard: tuple[float, dt.datetime, int] | None = None
        self._unanswered: tuple[str, str, dt.datetime, float] | None = None
        self.registration: str | None = None  # the status of the platform's last answer to a BootNotification
        self.waiting_for: str | None = None  # what the harness is waiting for right now (named by the test's bound)
        self.cancelled_wait: str | None = None  # the last wait that was cancelled (a test's bound fired during it)
        self.harness_faults: list[HarnessFault] = []  # exceptions in the harness's own frame handling
        # CORE-1: Heartbeats after a reconnect without BootNotification (harness/reconnect.py), per connection.
        self.heartbeat_interval: float | None = None  # the HeartbeatInterval the platform gave (boot, configuration)
        self.reconnect_heartbeat: ReconnectHeartbeat | None = None
        self._heartbeat_timer: asyncio.TimerHandle | None = None

    def note(self, text: str) -> None:
        """A remark for the report, next to this test's verdict."""
        self.details.setdefault("notes", []).append(text)

    # --- state ---------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.connection is not None

    def _notify(self) -> None:
        self._state_change.set()
        self._state_change = asyncio.Event()

    def active_transactions(self) -> list[Transaction]:
        return [t for t in self.transactions.values() if t.stopped is None]

    # --- marks and expectations ----------------------------------------------------------------

    def mark(self) -> int:
        """Start looking from here: later expect() calls ignore what arrived before."""
        self._mark = self.trace.next_seq
        return self._mark

    def received(self, action: str | None = None, since: int | None = None) -> list[ReceivedCall]:
        start = self._mark if since is None else since
        return [c for c in self._inbox if c.seq >= start and (action is None or c.action == action)]

    @_observed(_expecting)
    async def expect(
        self,
        action: str,
        where: Mapping[str, Any] | Callable[[ReceivedCall], bool] | None = None,
        within: float | None = None,
        since: int | None = None,
        describe: str | None = None,
    ) -> ReceivedCall:
        """The first `action` CALL from the charger since the mark that matches `where`."""
        bound = self.settings.scaled(self.settings.expect_within if within is None else within)
        start = self._mark if since is None else since
        match = _matcher(where)
        deadline = time.monotonic() + bound
        checked = 0  # inbox entries already looked at (by seq)
        while True:
            # Only what arrived since the last look (the inbox is in seq order): a flood stays O(n).
            fresh: list[ReceivedCall] = []
            for received in reversed(self._inbox):
                if received.seq < max(start, checked):
                    break
                fresh.append(received)
            for received in reversed(fresh):
                if received.action == action and match(received):
                    return received
            checked = self.trace.next_seq
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self.fail_if_silent(f"not waited for: {describe or _describe(action, where)}")
            arrival = self._arrival
            with self._waiting(f"{describe or _describe(action, where)} (expect, bound {bound:g} s)"):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await arrival.wait()
        wanted = describe or _describe(action, where)
        got = [c for c in self._inbox if c.seq >= start and c.action == action]
        seen = (
            f"It sent {len(got)} {action} that did not match, the last: {ocppj.encode_json(got[-1].payload)}"
            if got
            else f"It sent no {action} at all."
        )
        raise ExpectationTimeout(
            f"expected the charger to send {wanted} within {bound:g} s; it did not. {seen}"
            f"{'' if self.connected else ' (the charger is not connected)'}\n"
            f"Frames since the mark:\n{format_frames(self.trace.since(start))}"
        )

    async def expect_none(
        self,
        action: str,
        where: Mapping[str, Any] | Callable[[ReceivedCall], bool] | None = None,
        within: float = 1.0,
        since: int | None = None,
    ) -> None:
        """Assert the charger sends no matching CALL during `within` seconds (a deliberate observation window)."""
        # A silent charger sends nothing, so it cannot send the forbidden CALL either.
        with contextlib.suppress(ExpectationTimeout, ChargerSilent):
            got = await self.expect(action, where, within=within, since=since)
            raise ExpectationTimeout(
                f"expected no {_describe(action, where)}, but the charger sent one: {ocppj.encode_json(got.payload)}"
            )

    def forbid(
        self,
        action: str,
        where: Mapping[str, Any] | Callable[[ReceivedCall], bool] | None = None,
        *,
        since: int,
        window: float,
        requirement: str,
        what: str,
        origin: str = "",
        lasts: float = 120.0,
        until_sent: tuple[str, ...] = (),
        until_disconnect: bool = False,
    ) -> None:
        """Watch for a CALL the charger must not send, from `since` on, without waiting for it.

        The negative half of a check ("and then it sends no Installing") needs an observation window.
        Instead of sleeping through it, the test sets a watch and ends; every later frame is checked as
        it arrives, for `lasts` seconds (or until the harness sends one of `until_sent`, or the connection
        drops if `until_disconnect`), and a match fails the test it arrives in, filed under `requirement`.
        The window is still honoured: the run does not leave a watch before `window` seconds have passed
        (`settle_watches`, awaited by the plugin when no charger test follows). Both are scaled.
        """
        now = time.monotonic()
        watch = Watch(
            action, _matcher(where), since, now + self.settings.scaled(window), now + self.settings.scaled(lasts),
            requirement, what, origin, frozenset(until_sent), until_disconnect,
        )
        for call in self.received(action, since=since):
            if watch.match(call):  # already here: the current test's finding
                self._watch_found(watch, call, current=True)
                return
        self.watches.append(watch)

    def watching(self) -> bool:
        """Whether a watch is open, or a reconnect's Heartbeat is still due (settle_watches sees them out)."""
        check = self.reconnect_heartbeat
        return bool(self.watches) or (check is not None and self.connected and check.deadline < float("inf"))

    async def settle_watches(self) -> None:
        """Wait until every watch has been open for its window (returns at once if none is pending)."""
        heartbeat_until: float | None = None
        while True:
            now = time.monotonic()
            self.watches = [w for w in self.watches if w.expires_at > now]
            pending = [w.settle_at for w in self.watches if w.settle_at > now]
            self._heartbeat_due()
            check = self.reconnect_heartbeat
            if check is not None and self.connected and check.deadline < float("inf"):
                # A reconnect's Heartbeat is still due: see it out, up to the deadline as it stood when the
                # settling began (a charger that keeps talking may skip Heartbeats, §4.6, and moves it on).
                heartbeat_until = min(heartbeat_until or check.deadline, check.deadline)
                if heartbeat_until > now:
                    pending.append(heartbeat_until)
            if not pending:
                return
            arrival = self._arrival  # a finding ends its watch: look again when a frame arrives
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(pending) - now):
                    await arrival.wait()

    def take_findings(self, start: int) -> list[Violation]:
        """The violations to fail the current test with: those since `start`, and watch findings not yet
        handed to a test (a finding that arrived between two tests goes to the next one, never lost)."""
        found = self.violations_since(start)
        late = [v for v in self._watch_findings if v.seq < start]
        self._watch_findings = []
        return late + found

    def _check_watches(self, call: ReceivedCall) -> None:
        now = time.monotonic()
        keep: list[Watch] = []
        for watch in self.watches:
            if watch.expires_at <= now:
                continue
            if watch.action == call.action and call.seq >= watch.since and watch.match(call):
                self._watch_found(watch, call, current=watch.since >= self._mark)  # still the setting test?
                continue
            keep.append(watch)
        self.watches = keep

    def _watch_found(self, watch: Watch, call: ReceivedCall, *, current: bool) -> None:
        origin = "" if current or not watch.origin else f" (watched since {watch.origin})"
        self.violation(
            f"{watch.requirement} watch",
            f"{watch.what}{origin}; it sent {call.action} {ocppj.encode_json(call.payload)}",
            ocppj.encode_json([2, call.unique_id, call.action, call.payload]),
            seq=call.seq, requirement=watch.requirement, watched=not current,
        )

    def _end_watches(self, *, sent: str | None = None, disconnected: bool = False) -> None:
        if self.watches:
            self.watches = [w for w in self.watches
                            if not ((sent is not None and sent in w.until_sent) or (disconnected and w.until_disconnect))]

    @_observed(_waiting_until)
    async def wait_until(self, predicate: Callable[[], bool], within: float, what: str) -> None:
        """Wait for a state change of this session (connection, boot, status) until predicate() holds."""
        bound = self.settings.scaled(within)
        deadline = time.monotonic() + bound
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ExpectationTimeout(
                    f"expected {what} within {bound:g} s; it did not happen.\n"
                    f"Frames:\n{format_frames(self.trace.tail(25))}"
                )
            self.fail_if_silent(f"not waited for: {what}")
            change = self._state_change
            with self._waiting(f"{what} (bound {bound:g} s)"):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await change.wait()

    async def wait_connected(self, within: float = 30.0) -> None:
        await self.wait_until(lambda: self.connected, within, f"charger {self.id!r} to connect")

    async def wait_disconnected(self, within: float = 10.0) -> None:
        await self.wait_until(lambda: not self.connected, within, f"charger {self.id!r} to disconnect")

    # --- silence (docs/rules-silence.md) ----------------------------------------------------------

    def _heard(self, seq: int, wall: dt.datetime, mono: float) -> None:
        """The charger did something (a frame, a new connection): it is not silent, whatever came before."""
        self.heard = (mono, wall, seq)
        self._unanswered = None

    def silence(self) -> str | None:
        """The one cause to fail with when the charger is silent, else None.

        Silent: a CALL of the harness got no answer within its timeout, and the charger has sent nothing at all
        (no frame, no new connection) for the silence bound. A CALL must always be answered (OCPP-J §4.2.2, §4.2.3: a
        CALLRESULT or a CALLERROR) and a registered charger sends a Heartbeat every HeartbeatInterval (§4.6),
        so a live charger, however slow, never meets both.
        """
        if self._unanswered is None or self.heard is None:
            return None
        bound = self.silence_bound()
        quiet = time.monotonic() - self.heard[0]
        if quiet < bound:
            return None
        action, unique_id, sent_at, waited = self._unanswered
        last = self.trace.since(self.heard[2])[:1]
        last_text = last[0].line()[:300] if last else "(not kept)"
        return (
            f"charger silent since {self.heard[1]:%H:%M:%S} UTC (nothing from it for more than the silence bound of "
            f"{bound:g} s): "
            f"it left {action} (message id {unique_id}, sent {sent_at:%H:%M:%S}) unanswered for {waited:g} s and has "
            f"sent nothing since; its last frame: {last_text}. The harness no longer waits for it "
            "(docs/rules-silence.md)"
        )

    def silence_bound(self) -> float:
        """The silence bound: `silence_after` x the timeout factor, but never less than two heartbeat intervals (the
        one the platform gave; not scaled: the charger's own timer) plus a CALL's timeout, so that a live charger is
        heard within it even when the timeout factor shortens every wait of the harness."""
        heartbeat = self.heartbeat_interval if self.heartbeat_interval is not None else float(self.platform.heartbeat_interval)
        return max(self.settings.scaled(self.settings.silence_after),
                   2 * heartbeat + self.settings.scaled(self.settings.call_timeout))

    def fail_if_silent(self, what: str) -> None:
        cause = self.silence()
        if cause is not None:
            raise ChargerSilent(f"{cause}; {what}")

    @contextlib.contextmanager
    def _waiting(self, what: str) -> Iterator[None]:
        """Name what the harness waits for, so that a test's bound, when it fires, can say it."""
        previous, self.waiting_for = self.waiting_for, what
        try:
            yield
        except asyncio.CancelledError:
            self.cancelled_wait = what  # e.g. the test's bound fired: the plugin names what was awaited
            raise
        finally:
            self.waiting_for = previous

    # --- calls from the harness ----------------------------------------------------------------

    async def call(self, request: Any, *, timeout: float | None = None) -> Any:
        """Send an `ocpp.v16.call` dataclass; return the CALLRESULT as its `call_result` dataclass."""
        action = ocppj.action_of(request)
        payload = await self.call_raw(action, ocppj.payload_of(request), timeout=timeout)
        return ocppj.response_dataclass(action, payload)

    async def call_raw(self, action: str, payload: Mapping[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Send a CALL built by hand (also for deliberately malformed ones); return the CALLRESULT payload."""
        frame = ocppj.Call(uuid.uuid4().hex[:32], action, dict(payload))
        answer = await self.send_call(frame, timeout=timeout)
        if isinstance(answer, ocppj.CallError):
            raise CallErrorReceived(action, answer.code, answer.description, answer.details)
        if (action == "ChangeConfiguration" and payload.get("key") == "HeartbeatInterval"
                and answer.payload.get("status") == "Accepted"):
            with contextlib.suppress(KeyError, TypeError, ValueError):
                self.heartbeat_interval = float(payload.get("value"))  # type: ignore[arg-type]
        return answer.payload

    @_observed(_answering)
    async def send_call(
        self, frame: ocppj.Call, *, timeout: float | None = None, text: str | None = None
    ) -> ocppj.CallResult | ocppj.CallError:
        """Send one CALL (or raw text carrying its id) and wait for the matching answer."""
        bound = self.settings.scaled(self.settings.call_timeout if timeout is None else timeout)
        # OCPP-J §4.1.1: one outstanding CALL per direction; later calls queue here.
        async with self._call_lock:
            self.fail_if_silent(f"{frame.action} not sent (the harness would have waited {bound:g} s for its answer)")
            await self._wait_boot_answered(frame.action, bound)
            connection = self.connection
            if connection is None:
                raise NotConnected(
                    f"cannot send {frame.action}: the charger is not connected.\n"
                    f"Frames:\n{format_frames(self.trace.tail(15))}"
                )
            future: asyncio.Future[ocppj.CallResult | ocppj.CallError] = asyncio.get_running_loop().create_future()
            self._pending[frame.unique_id] = _Pending(frame.action, future)
            self.sent_calls.append((frame.action, dict(frame.payload)))
            self._end_watches(sent=frame.action)
            raw = text if text is not None else ocppj.encode_frame(frame)
            if text is not None:
                self._count_unreadable(raw)
            mark = self.trace.next_seq
            self.trace.record(TX, raw)
            sent_at = dt.datetime.now(dt.timezone.utc)
            try:
                await connection.send(raw)
                with self._waiting(f"the answer to {frame.action} (message id {frame.unique_id}, bound {bound:g} s)"):
                    async with asyncio.timeout(bound):
                        return await future
            except TimeoutError:
                # The first CALL left unanswered since the charger was last heard. Only a registered charger must
                # answer: while Pending (or Rejected) it may ignore requests (§4.2; docs/rules-frames.md).
                if self._unanswered is None and self.registration == "Accepted":
                    self._unanswered = (frame.action, frame.unique_id, sent_at, bound)
                self._timed_out[frame.unique_id] = mark
                while len(self._timed_out) > 64:
                    self._timed_out.popitem(last=False)
                raise NoAnswer(
                    f"the charger did not answer {frame.action} (message id {frame.unique_id}) within {bound:g} s.\n"
                    f"Frames since the request:\n{format_frames(self.trace.since(mark))}"
                ) from None
            except _ConnectionClosed:
                raise ChargerDisconnected(
                    f"the connection closed while waiting for the answer to {frame.action}.\n"
                    f"Frames since the request:\n{format_frames(self.trace.since(mark))}"
                ) from None
            finally:
                self._pending.pop(frame.unique_id, None)

    async def send_text(self, text: str) -> None:
        """Put raw text on the wire (robustness probes); no answer is awaited."""
        await self._wait_boot_answered("the raw frame", self.settings.scaled(self.settings.call_timeout))
        connection = self.connection
        if connection is None:
            raise NotConnected("cannot send: the charger is not connected")
        self._count_unreadable(text)
        self.trace.record(TX, text)
        await connection.send(text)

    async def _wait_boot_answered(self, what: str, bound: float) -> None:
        """Hold a CALL of the harness until the BootNotification received on this connection is answered.

        OCPP 1.6 §4.2: the boot completes when the Central System answers Accepted or Pending, and a charger
        waiting for that answer may ignore or refuse CALLs (real ones do). So the platform answers first and
        asks afterwards. A reconnect without BootNotification (legal in 1.6) has nothing to wait for.
        """
        deadline = time.monotonic() + bound
        while self._boot_unanswered is not None and self.connection is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # Our own answer never went out (a test's answer override is silent or slow): a harness
                # problem, not the charger's, so not a ChargerFailure.
                raise BootNotAnswered(
                    f"cannot send {what}: the platform has not answered the charger's BootNotification "
                    f"(message id {self._boot_unanswered}) within {bound:g} s, and OCPP 1.6 §4.2 has it answered "
                    f"before the platform asks anything.\nFrames:\n{format_frames(self.trace.tail(15))}"
                )
            change = self._state_change
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await change.wait()

    def _count_unreadable(self, text: str) -> None:
        """Note a frame the harness sends on purpose that cannot be parsed: a charger's parser may not get
        as far as its message id, so a CALLERROR that names no CALL of ours may answer it (_stray_callerror)."""
        try:
            ocppj.parse_frame(text)
        except ocppj.FrameError:
            self._unreadable_unanswered += 1

    # --- answers the platform gives --------------------------------------------------------------

    def answer(self, action: str, handler: AnswerHandler | Mapping[str, Any] | None) -> None:
        """Override the platform's answer to `action` until reset_answers() (the fixture resets per test).

        handler: a payload dict, or a function of the ReceivedCall returning a payload dict, an
        ocppj.CallError, or None to leave the CALL unanswered (a silent platform).
        """
        if handler is None or callable(handler):
            self._answers[action] = handler  # type: ignore[assignment]
        else:
            fixed = dict(handler)
            self._answers[action] = lambda _call: fixed

    @contextlib.contextmanager
    def answering(self, action: str, handler: AnswerHandler | Mapping[str, Any] | None) -> Iterator[None]:
        previous = self._answers.get(action, _NO_OVERRIDE)
        self.answer(action, handler)
        try:
            yield
        finally:
            if previous is _NO_OVERRIDE:
                self._answers.pop(action, None)
            else:
                self._answers[action] = previous  # type: ignore[assignment]

    def reset_answers(self) -> None:
        self._answers.clear()

    # --- the connection side (called by the endpoint) ------------------------------------------

    def attach(self, connection: Any, info: Mapping[str, Any]) -> Any:
        """A new authenticated connection for this id; returns the one it replaces (to be closed)."""
        previous = self.connection
        if previous is not None:
            # CALLs sent on the old connection will never be answered on the new one.
            for pending in self._pending.values():
                if not pending.future.done():
                    pending.future.set_exception(_ConnectionClosed())
        self.connection = connection
        self.connection_info = dict(info)
        self.connections += 1
        self._peer_outstanding = None
        self._boot_unanswered = None  # a boot on the old connection is answered there or never
        self._unreadable_unanswered = 0
        connected = self.trace.event(
            f"connected: {info.get('tls_version', '?')} {info.get('cipher', '?')} from {info.get('peer', '?')}"
        )
        self.connected_seq = connected.seq
        self._heard(connected.seq, connected.wall, connected.mono)
        if self.boot is not None:  # it was registered before: a reconnect, Heartbeats must go on (CORE-1)
            interval = self.heartbeat_interval or float(self.platform.heartbeat_interval)
            self.reconnect_heartbeat = ReconnectHeartbeat(connected.seq, connected.mono, interval,
                                                          self.settings.timing.factor)
            self._arm_heartbeat_timer()
        self._notify()
        return previous

    def _arm_heartbeat_timer(self) -> None:
        if self._heartbeat_timer is not None:
            self._heartbeat_timer.cancel()
            self._heartbeat_timer = None
        check = self.reconnect_heartbeat
        if check is None or check.deadline == float("inf"):
            return
        loop = asyncio.get_running_loop()
        self._heartbeat_timer = loop.call_later(max(0.0, check.deadline - time.monotonic()), self._heartbeat_due)

    def _heartbeat_due(self) -> None:
        """CORE-1: the charger stayed silent after a reconnect: a finding for whichever test is running."""
        check = self.reconnect_heartbeat
        if check is None or not self.connected or not check.due(time.monotonic()):
            return
        self.violation("CORE-1 heartbeat after reconnect", check.finding(), requirement="CORE-1", watched=True)
        self._notify()
        arrival, self._arrival = self._arrival, asyncio.Event()
        arrival.set()  # settle_watches waits on arrivals

    def detach(self, connection: Any, reason: str) -> None:
        if self.connection is not connection:
            return
        self.connection = None
        self._boot_unanswered = None
        self._unreadable_unanswered = 0
        self.trace.event(f"disconnected: {reason}")
        self._end_watches(disconnected=True)
        if self.reconnect_heartbeat is not None:
            self.reconnect_heartbeat.disconnected()
            self._arm_heartbeat_timer()
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(_ConnectionClosed())
        self._notify()

    def violation(
        self, kind: str, message: str, frame: str | bytes = "", *, seq: int | None = None,
        requirement: str | None = None, watched: bool = False,
    ) -> None:
        """Record a violation; it belongs to the test running at `seq` (default: the frame just received)."""
        self.violation_count += 1
        text = frame if isinstance(frame, str) else f"<binary {len(frame)} bytes>"
        if len(self.violations) < _MAX_VIOLATIONS:
            at = self.trace.next_seq - 1 if seq is None else seq
            if len(message) > _MAX_MESSAGE:
                message = message[:_MAX_MESSAGE] + f"… ({len(message)} characters)"
            found = Violation(at, dt.datetime.now(dt.timezone.utc), kind, message, self.redact(text[:2000]),
                              requirement, watched)
            self.violations.append(found)
            if watched:
                self._watch_findings.append(found)

    def advise(self, requirement: str, message: str, frame: str | bytes = "", *, seq: int | None = None) -> None:
        """Record an advisory finding: about an advisory requirement (ADV-*), or a deviation that no
        mandatory requirement decides. It never fails a test or the run; the plugin lists it with the
        advisory findings (terminal summary, report, JUnit)."""
        self.violation("advisory", message, frame, seq=seq, requirement=requirement)

    def violations_since(self, seq: int) -> list[Violation]:
        return [v for v in self.violations if v.seq >= seq]

    async def settle_answers(self, within: float = 1.0) -> None:
        """Let the platform's answers to what already arrived finish (its own tasks: quick), so that a fault in
        them is filed with the test during which the CALL came."""
        if self._answer_tasks:
            await asyncio.wait(set(self._answer_tasks), timeout=within)

    def harness_fault(self, where: str, exc: BaseException) -> HarnessFault:
        """Record an exception in the harness's own frame handling: a harness error, never a finding about the
        charger (the plugin makes the test during which it happened an error, and the report lists it)."""
        error = printable(f"{type(exc).__name__}: {exc}", one_line=True)[:500]
        event = self.trace.event(f"harness error while {where}: {error} (the harness's fault: the charger is not judged by it)")
        fault = HarnessFault(event.seq, event.wall, where, error,
                             "".join(traceback.format_exception(exc)).strip()[-8000:])
        if len(self.harness_faults) < _MAX_VIOLATIONS:
            self.harness_faults.append(fault)
        return fault

    def receive(self, message: str | bytes) -> None:
        """Handle one WebSocket message from the charger: record, parse, validate, dispatch.

        Never raises: an exception in this handling is the harness's (harness_fault); a CALL it interrupted is
        answered CALLERROR InternalError, as a platform that failed would, and the connection stays open.
        """
        mark = self.trace.next_seq
        try:
            self._receive(message)
        except Exception as exc:  # noqa: BLE001 - the harness's own bug: recorded, never the charger's
            self.harness_fault("handling a frame from the charger", exc)
            unique_id = _call_id(message)
            answered = any(e.direction == TX and unique_id is not None and unique_id in e.text for e in self.trace.since(mark))
            if unique_id is not None and not answered:
                with contextlib.suppress(Exception):
                    self._reply(ocppj.CallError(unique_id, "InternalError", "the platform could not handle this CALL", {}))
            arrival, self._arrival = self._arrival, asyncio.Event()  # waiters look again at what did get recorded
            arrival.set()
            self._notify()

    def _receive(self, message: str | bytes) -> None:
        entry = self.trace.record(RX, message)
        self._heard(entry.seq, entry.wall, entry.mono)
        try:
            frame = ocppj.parse_frame(message)
        except ocppj.UnknownMessageType as exc:
            # OCPP-J §4.1.3: ignored by the receiver, but it is not 1.6.
            self.violation("unknown message type", exc.reason, message)
            return
        except ocppj.FrameError as exc:
            if (exc.message_type == ocppj.MessageType.CALLERROR and exc.unique_id not in self._pending
                    and self._stray_callerror(message)):
                return  # an answer to an unreadable frame of ours, whatever its id: acceptable (ocpp16-notes)
            self.violation("malformed frame", exc.reason, message)
            # Only a CALL is answered (OCPP-J §4.2.3 answers a CALL with a CALLERROR); nobody answers a
            # CALLRESULT or a CALLERROR, however malformed: the charger is not waiting for anything.
            if exc.unique_id is not None and exc.message_type == ocppj.MessageType.CALL:
                self._reply(ocppj.CallError(exc.unique_id, exc.code, exc.reason[:200], {}))
            return
        if isinstance(frame, ocppj.Call):
            self._receive_call(frame, entry.seq, entry.wall, entry.mono, message)
        else:
            self._receive_answer(frame, message)

    def _receive_call(self, frame: ocppj.Call, seq: int, wall: dt.datetime, mono: float, raw: str | bytes) -> None:
        if self._peer_ids.seen_before(frame.unique_id):
            self.violation("duplicate message id", f"message id {frame.unique_id!r} was used before by the charger", raw)
        if self._peer_outstanding is not None:
            self.violation(
                "more than one outstanding CALL",
                f"{frame.action} sent before the answer to the charger's previous CALL {self._peer_outstanding!r} "
                "(OCPP-J §4.1.1: one outstanding CALL at a time)",
                raw,
            )
        registry = ocppj.schemas()
        if not registry.knows(frame.action):
            self.violation("unknown action", f"{frame.action!r} is not an OCPP 1.6 action", raw)
            self._reply(ocppj.CallError(frame.unique_id, "NotImplemented", f"unknown action {frame.action}", {}))
            return
        if frame.action in spec16.CENTRAL_SYSTEM_ONLY_ACTIONS:
            # §5: e.g. RemoteStartTransaction or SetChargingProfile are the central system's requests. The platform
            # does not carry them out: it refuses (NotSupported) and notes it; the charger's own requirements decide.
            self.advise("ADV-1", f"the charger sent {frame.action}, which only the central system sends (OCPP 1.6 "
                        "§5); answered CALLERROR NotSupported", raw)
            self._reply(ocppj.CallError(frame.unique_id, "NotSupported",
                                        f"{frame.action} is sent by the central system, not a charge point", {}))
            return
        problems = tuple(registry.request_problems(frame.action, frame.payload))
        for problem in problems:
            self.violation(f"{frame.action} schema", str(problem), raw)
        received = ReceivedCall(seq, frame.unique_id, frame.action, frame.payload, wall, mono, problems)
        self._inbox.append(received if len(raw) <= _INBOX_PAYLOAD_LIMIT else _slim(received, len(raw)))
        self._track(received)
        if self.reconnect_heartbeat is not None:
            self.reconnect_heartbeat.charger_call(frame.action, mono)
            self._arm_heartbeat_timer()
            self._notify()
        if self.watches:
            self._check_watches(received)
        self._peer_outstanding = frame.unique_id
        if frame.action == "BootNotification":
            self._boot_unanswered = frame.unique_id  # no CALL goes out until its answer does (send_call)
        arrival, self._arrival = self._arrival, asyncio.Event()
        arrival.set()
        task = asyncio.get_running_loop().create_task(self._answer(received, self.connection))
        self._answer_tasks.add(task)
        task.add_done_callback(self._answer_tasks.discard)

    def _track(self, call: ReceivedCall) -> None:
        """Keep the platform's view of the charger up to date (boot, statuses, transactions)."""
        payload = call.payload
        if call.action == "StatusNotification" and isinstance(payload.get("connectorId"), int) and not call.problems:
            connector, new = payload["connectorId"], str(payload.get("status"))
            old = self.connector_status.get(connector)
            if old is not None and not spec16.is_legal_transition(old, new, connector_id=connector):
                # §4.9: every observed transition must be one the table allows; the test it happens in fails.
                allowed = sorted((spec16.CONNECTOR0_TRANSITIONS if connector == 0 else spec16.LEGAL_TRANSITIONS)
                                 .get(old, frozenset()))
                self.violation(
                    "illegal status transition",
                    f"connector {connector}: {old} → {new} is not allowed by OCPP 1.6 §4.9 "
                    f"(from {old}: {', '.join(allowed)})",
                    ocppj.encode_json(payload),
                    requirement="ST-1",
                )
            elif old is None and connector == 0 and new not in spec16.CONNECTOR0_STATUSES:
                self.violation(
                    "illegal status transition",
                    f"connector 0 reported {new}: §4.9 allows only Available, Unavailable, Faulted on connector 0",
                    ocppj.encode_json(payload),
                    requirement="ST-1",
                )
            self.connector_status[connector] = new
            self.status_history.append((call.seq, connector, new))
            self._notify()

    async def _answer(self, call: ReceivedCall, connection: Any) -> None:
        try:
            await self._answer_guarded(call, connection)
        except Exception as exc:  # noqa: BLE001 - the harness's own bug: recorded, never the charger's
            self.harness_fault(f"answering the charger's {call.action}", exc)
            if self._peer_outstanding == call.unique_id:  # not answered yet: as a platform that failed would
                with contextlib.suppress(Exception):
                    self._reply(ocppj.CallError(call.unique_id, "InternalError", "the platform could not answer", {}), connection)

    async def _answer_guarded(self, call: ReceivedCall, connection: Any) -> None:
        if call.action != "BootNotification":
            await self._answer_call(call, connection)
            return
        frame: ocppj.CallResult | ocppj.CallError | None = None
        try:
            frame, written = await self._answer_call(call, connection)
            if written is not None and await written and isinstance(frame, ocppj.CallResult):
                self.registration = str(frame.payload.get("status"))
                # OCPP 1.6 §4.2: the boot completes with Accepted or Pending; the platform counts the charger
                # as booted once that answer is on the wire (the send completed), not when the request came.
                if frame.payload.get("status") in ("Accepted", "Pending") and not call.problems:
                    self.boot = call
                    self.boot_count += 1
        finally:
            # Answered (Accepted, Pending, or refused): the harness may ask again. A test that keeps the
            # platform silent keeps the gate shut: the next BootNotification's answer opens it.
            if frame is not None and self._boot_unanswered == call.unique_id and self.connection is connection:
                self._boot_unanswered = None
            self._notify()

    async def _answer_call(
        self, call: ReceivedCall, connection: Any
    ) -> tuple[ocppj.CallResult | ocppj.CallError | None, asyncio.Task[bool] | None]:
        """Answer one CALL of the charger on the connection it came on: the answer, and the task writing it."""
        handler = self._answers.get(call.action, _NO_OVERRIDE)
        try:
            if handler is _NO_OVERRIDE:
                result: Any = default_answer(self, call)
            elif handler is None:
                return None, None  # the test wants the platform silent
            else:
                result = handler(call)  # type: ignore[operator]
                if inspect.isawaitable(result):
                    result = await result
        except Exception as exc:  # noqa: BLE001 - a bad payload must not kill the endpoint
            # The platform's answer function is the harness's code (a default answer or a test's override): its
            # exception is a harness error, whatever the payload. The charger gets what a failing platform sends.
            self.harness_fault(f"answering the charger's {call.action}", exc)
            error = ocppj.CallError(call.unique_id, "InternalError", f"platform could not answer: {exc}"[:200], {})
            return error, self._reply(error, connection)
        if result is None:
            return None, None
        if isinstance(result, ocppj.CallError):
            return result, self._reply(result, connection)
        payload = ocppj.payload_of(result)
        if call.action == "BootNotification" and payload.get("status") == "Accepted":
            with contextlib.suppress(TypeError, ValueError):
                self.heartbeat_interval = float(payload["interval"]) or None  # §4.2: the interval to use
        if call.action == "StartTransaction" and "transactionId" in payload:
            self.transactions[int(payload["transactionId"])] = Transaction(
                int(payload["transactionId"]), call.get("connectorId"), call.get("idTag"), call.get("meterStart"), call
            )
            self._notify()
        elif call.action == "StopTransaction":
            tx = self.transactions.get(call.get("transactionId"))  # type: ignore[arg-type]
            if tx is not None:
                tx.stopped = call
                self._notify()
        answer = ocppj.CallResult(call.unique_id, payload)
        return answer, self._reply(answer, connection)

    def _reply(self, frame: ocppj.CallResult | ocppj.CallError, connection: Any = _CURRENT) -> asyncio.Task[bool] | None:
        """Write an answer (by default on the current connection); the task doing it says whether it was sent."""
        if connection is _CURRENT:
            connection = self.connection
        text = ocppj.encode_frame(frame)
        if self._peer_outstanding == frame.unique_id:
            self._peer_outstanding = None
        self.trace.record(TX, text)
        if self.reconnect_heartbeat is not None and connection is not None:
            self.reconnect_heartbeat.exchange(time.monotonic())
            self._arm_heartbeat_timer()
        if connection is None:
            return None
        task = asyncio.get_running_loop().create_task(_send_quietly(connection, text))
        self._answer_tasks.add(task)
        task.add_done_callback(self._answer_tasks.discard)
        return task

    def _receive_answer(self, frame: ocppj.CallResult | ocppj.CallError, raw: str | bytes) -> None:
        if self.reconnect_heartbeat is not None:
            self.reconnect_heartbeat.exchange(time.monotonic(), platform_answered=False)  # §4.6: any PDU it sent
            self._arm_heartbeat_timer()
        pending = self._pending.get(frame.unique_id)
        if pending is None or pending.future.done():
            if frame.unique_id in self._timed_out:
                # It belongs to the test whose CALL timed out (already failed with NoAnswer), not to
                # the test that happens to be running when it arrives.
                self.violation(
                    "late answer", f"answer to message id {frame.unique_id!r} arrived after its timeout", raw,
                    seq=self._timed_out[frame.unique_id],
                )
            elif isinstance(frame, ocppj.CallError) and self._stray_callerror(raw):
                self._check_details(frame, raw)  # an answer all the same: its errorDetails is still judged
            else:
                kind = "CALLRESULT" if isinstance(frame, ocppj.CallResult) else "CALLERROR"
                self.violation(
                    f"{kind} for unknown id",
                    f"{kind} with message id {frame.unique_id!r} matches no outstanding CALL from the harness",
                    raw,
                )
            return
        if isinstance(frame, ocppj.CallResult):
            for problem in ocppj.schemas().response_problems(pending.action, frame.payload):
                self.violation(f"{pending.action}.conf schema", str(problem), raw)
        else:
            if frame.code not in ocppj.ERROR_CODES_16:
                self.violation(
                    "CALLERROR code",
                    f"error code {frame.code!r} is not one of OCPP-J 1.6's ({', '.join(sorted(ocppj.ERROR_CODES_16))})",
                    raw,
                )
            self._check_details(frame, raw)
        # A CALLERROR with a deviating errorDetails still answers the CALL: the test judges the answer.
        pending.future.set_result(frame)

    def _stray_callerror(self, raw: str | bytes) -> bool:
        """Whether a CALLERROR that names no CALL of ours answers an unreadable frame the harness sent.

        OCPP-J 1.6 says nothing of the answer to a frame whose message id cannot be read: chargers answer
        with CALLERROR id "-1" (the 2.0.1 rule), with any CALLERROR, or not at all, and all are acceptable
        (docs/rules-frames.md). One such CALLERROR per unreadable frame sent on this connection is taken as
        its answer, whatever its id and code; any other is a CALLERROR for an unknown id.
        """
        if self._unreadable_unanswered <= 0:
            return False
        self._unreadable_unanswered -= 1
        self.unreadable_answers.append(self.trace.next_seq - 1)
        self.trace.event("that CALLERROR answers the harness's unreadable frame (no message id to name): acceptable")
        return True

    def _check_details(self, frame: ocppj.CallError, raw: str | bytes) -> None:
        """A CALLERROR whose errorDetails is not a JSON object: exactly that schema deviation, an advisory
        finding (ADV-1), once per run; the CALLERROR still counts as the charger's answer."""
        if frame.details_problem and not self._details_advised:
            self._details_advised = True
            self.advise("ADV-1", f"{frame.details_problem}; the CALLERROR is taken as the answer all the same "
                        "(later CALLERRORs with the same deviation are not listed again)", raw)


def _call_id(message: str | bytes) -> str | None:
    """The message id of a frame if it reads as a CALL ([2, "<id>", ...]), else None."""
    with contextlib.suppress(Exception):
        frame = json.loads(message)
        if isinstance(frame, list) and len(frame) >= 2 and frame[0] == 2 and isinstance(frame[1], str):
            return frame[1][:36]
    return None


def _slim(call: ReceivedCall, size: int) -> ReceivedCall:
    """The inbox's copy of an oversized CALL: its identity and findings, not its parsed payload (the answer task
    holds the whole call until it is answered, then it is released)."""
    return dataclasses.replace(call, payload={"_dropped": f"{size} characters: payload not kept (over {_INBOX_PAYLOAD_LIMIT})"})


class _ConnectionClosed(Exception):
    pass


class BootNotAnswered(RuntimeError):
    """The platform's own answer to a BootNotification did not go out in time: a harness problem (a test's
    answer override), so not a finding about the charger."""


_NO_OVERRIDE = object()


async def _send_quietly(connection: Any, text: str) -> bool:
    """Send; True once the frame is written (False if the connection had gone)."""
    try:
        await connection.send(text)
    except Exception:  # noqa: BLE001 - a closed connection: the answer is simply not delivered
        return False
    return True


def _matcher(where: Mapping[str, Any] | Callable[[ReceivedCall], bool] | None) -> Callable[[ReceivedCall], bool]:
    if where is None:
        return lambda _call: True
    if callable(where):
        def safe(call: ReceivedCall) -> bool:
            try:
                return bool(where(call))  # type: ignore[operator]
            except Exception:  # noqa: BLE001 - a malformed payload simply does not match
                return False

        return safe
    expected = dict(where)
    return lambda call: all(call.payload.get(k) == v for k, v in expected.items())


def _describe(action: str, where: Mapping[str, Any] | Callable[[ReceivedCall], bool] | None) -> str:
    if where is None:
        return f"a {action}"
    if callable(where):
        doc = getattr(where, "__doc__", None) or getattr(where, "__name__", "a condition")
        return f"a {action} matching {doc}"
    return f"a {action} with " + ", ".join(f"{k}={v!r}" for k, v in where.items())
