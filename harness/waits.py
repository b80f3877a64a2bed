"""The waits of a ChargerSession: what suites wait for, bounded and event-driven, and the findings they file.

`Waits` is the half of the asyncio session (harness/session.py) that suites wait with: `expect` (a CALL of the
charger since a mark), `expect_none`, `wait_until` (a state change), `forbid` and `settle_watches` (harness/watches.py),
the silence rule (docs/rules-silence.md: a charger that neither answers nor sends anything is not waited for), the
CORE-1 check of Heartbeats after a reconnect (harness/reconnect.py), and the notebook of findings (harness/findings.py).
It holds no connection: the session feeds it (`_inbox`, `_arrived`, `_notify`) as frames arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from harness import ocppj
from harness.conversation import ReceivedCall
from harness.errors import ChargerSilent, ExpectationTimeout
from harness.findings import Finding, Findings, Violation
from harness.heartbeats import must_see_out
from harness.platform import PlatformModel
from harness.reconnect import ReconnectHeartbeat
from harness.timing import Timing
from harness.trace import Trace, format_frames
from harness.watches import Watch, Watches, describe as _describe, matcher as _matcher


_INBOX = 10_000


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


#: Observers of the session's waits (the plugin's live status line, harness/progress.py). Each is called as
#: observer(session, what, seconds) when expect / wait_until / send_call starts waiting, and returns a callable
#: called when that wait ends (or None).
WAIT_OBSERVERS: list[Callable[[Waits, str, float], Callable[[], None] | None]] = []


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def _observed(describe: Callable[..., tuple[str, float]]) -> Callable[[F], F]:
    """Tell WAIT_OBSERVERS what the decorated wait waits for and for how long (describe(self, *args, **kwargs))."""

    def decorate(method: F) -> F:
        @functools.wraps(method)
        async def observed(self: Waits, *args: Any, **kwargs: Any) -> Any:
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

        return cast(F, observed)  # the same signature: it passes everything through

    return decorate


def _expecting(self: Waits, action: str, where: Any = None, within: float | None = None,
               since: int | None = None, describe: str | None = None) -> tuple[str, float]:
    if describe is None and callable(where) and not getattr(where, "__doc__", None):
        describe = f"a {action}"  # a lambda says nothing a person can read
    return describe or _describe(action, where), self.settings.scaled(self.settings.expect_within if within is None else within)


def _waiting_until(self: Waits, predicate: Any, within: float, what: str) -> tuple[str, float]:
    return what, self.settings.scaled(within)


class Waits:
    """Waiting for the charger, and the findings. A base of ChargerSession, which feeds it as frames arrive."""

    def __init__(self, charger_id: str, settings: SessionSettings, trace: Trace, model: PlatformModel) -> None:
        self.id = charger_id
        self.settings = settings
        self.trace = trace
        self.model = model
        self.watches = Watches()
        self.findings = Findings(trace.redact)
        self.connection: Any = None  # websockets ServerConnection while connected
        self._inbox: deque[ReceivedCall] = deque(maxlen=_INBOX)  # the charger's CALLs, in seq order
        self._arrival = asyncio.Event()  # set (and replaced) when a frame arrives: expect looks again
        self._state_change = asyncio.Event()  # set (and replaced) on a change of state: wait_until looks again
        self._mark = 0
        # Silence (docs/rules-silence.md): when the charger was last heard (any frame from it, or a new connection:
        # monotonic, wall, trace seq), and the first CALL of the harness that got no answer since then
        # (action, message id, when it was sent, its bound).
        self.heard: tuple[float, dt.datetime, int] | None = None
        self._unanswered: tuple[str, str, dt.datetime, float] | None = None
        self.waiting_for: str | None = None  # what the harness is waiting for right now (named by the test's bound)
        self.cancelled_wait: str | None = None  # the last wait that was cancelled (a test's bound fired during it)
        # CORE-1: Heartbeats after a reconnect without BootNotification (harness/reconnect.py), per connection.
        self.reconnect_heartbeat: ReconnectHeartbeat | None = None
        self.reconnect_checks: deque[ReconnectHeartbeat] = deque(maxlen=200)  # every one of the run, oldest first
        self._heartbeat_timer: asyncio.TimerHandle | None = None

    @property
    def connected(self) -> bool:
        return self.connection is not None

    def _notify(self) -> None:
        self._state_change.set()
        self._state_change = asyncio.Event()

    def _arrived(self) -> None:
        """Wake whoever waits for a frame (expect, settle_watches): they look again."""
        arrival, self._arrival = self._arrival, asyncio.Event()
        arrival.set()

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
        """Watch for a CALL the charger must not send, from `since` on, without waiting for it (harness/watches.py).

        Every later frame is checked as it arrives, for `lasts` seconds (or until the harness sends one of
        `until_sent`, or the connection drops if `until_disconnect`), and a match fails the test it arrives in,
        filed under `requirement`. The window is still honoured: the run does not leave a watch before `window`
        seconds have passed (`settle_watches`, awaited by the plugin when no charger test follows). Both are scaled.
        """
        now = time.monotonic()
        watch = Watch(
            action, _matcher(where), since, now + self.settings.scaled(window), now + self.settings.scaled(lasts),
            requirement, what, origin, frozenset(until_sent), until_disconnect,
        )
        found = self.watches.add(watch, self.received(action, since=since))
        if found is not None:  # already here: the current test's finding
            self._record(found)

    def watching(self) -> bool:
        """Whether a watch is open, or a reconnect's Heartbeat is still due (settle_watches sees them out)."""
        return bool(self.watches) or self._heartbeat_to_see_out() is not None

    def _heartbeat_to_see_out(self) -> ReconnectHeartbeat | None:
        """The current reconnect's Heartbeat check, when it is still due and the run must see it out before leaving:
        only when no earlier reconnect of the run was decided (harness/heartbeats.py `must_see_out`)."""
        check = self.reconnect_heartbeat
        if check is None or not self.connected or not must_see_out(check, self.reconnect_checks, self.trace):
            return None
        return check

    async def settle_watches(self) -> None:
        """Wait until every watch has been open for its window (returns at once if none is pending)."""
        heartbeat_until: float | None = None
        # While the platform owes the charger an answer the check has no deadline (the charger cannot send); the
        # answer is being written and wakes this loop (ChargerSession._reply): look again then, within a CALL's bound.
        answer_until = time.monotonic() + self.settings.call_timeout
        while True:
            now = time.monotonic()
            pending = self.watches.pending(now)
            self._heartbeat_due()
            check = self._heartbeat_to_see_out()
            if check is not None and check.deadline == float("inf"):
                if answer_until > now:
                    pending.append(answer_until)
            elif check is not None:
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
        return self.findings.take(start)

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
        given = self.model.heartbeat_interval
        heartbeat = given if given is not None else float(self.model.platform.heartbeat_interval)
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

    # --- CORE-1: Heartbeats after a reconnect (harness/reconnect.py) ------------------------------

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
        self._arrived()  # settle_watches waits on arrivals

    # --- findings (harness/findings.py) --------------------------------------------------------

    def violation(
        self, kind: str, message: str, frame: str | bytes = "", *, seq: int | None = None,
        requirement: str | None = None, watched: bool = False,
    ) -> None:
        """Record a violation; it belongs to the test running at `seq` (default: the frame just received)."""
        at = self.trace.next_seq - 1 if seq is None else seq
        self.findings.record(kind, message, frame, at, requirement=requirement, watched=watched)

    def advise(self, requirement: str, message: str, frame: str | bytes = "", *, seq: int | None = None) -> None:
        """Record an advisory finding: about an advisory requirement (ADV-*), or a deviation that no
        mandatory requirement decides. It never fails a test or the run; the plugin lists it with the
        advisory findings (terminal summary, report, JUnit)."""
        self.violation("advisory", message, frame, seq=seq, requirement=requirement)

    def _record(self, found: Finding) -> None:
        self.violation(found.kind, found.message, found.frame, seq=found.seq, requirement=found.requirement,
                       watched=found.watched)

    def violations_since(self, seq: int) -> list[Violation]:
        return self.findings.since(seq)

