"""One charger as the harness sees it: its connection, its trace, and the API suites use.

    response = await charger.call(call.GetConfiguration(key=["HeartbeatInterval"]))
    status = await charger.expect("StatusNotification", where={"status": "Charging"}, within=10)

`expect` looks at every CALL the charger sent since a mark (by default the start of the
test), so a message that arrived before the test started waiting is not missed. Every wait
is event-driven and bounded; on timeout the failure names what was expected and shows the
frames that did arrive.

`ChargerSession` is the asyncio layer: it wires the websockets connection (attach, receive, the platform's
answers and CALLs on the wire) to the sans-I/O parts that judge:
- `harness/conversation.py` (`Conversation`): frames in, events out; message ids, one outstanding CALL, answers;
- `harness/platform.py` (`PlatformModel`): boot, statuses (§4.9), transactions, the platform's answers;
- `harness/watches.py` (`Watches`): forbidden CALLs watched as frames arrive;
- `harness/findings.py` (`Findings`): the notebook of violations and harness faults.
Its waits (`expect`, `wait_until`, `forbid`, `settle_watches`, the silence rule) are its base, `harness/waits.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import inspect
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Generic, TypeVar, overload

from harness import ocppj
from harness.conversation import (
    Arrival,
    CallReceived,
    Conversation,
    ErrorReceived,
    Reply,
    ResultReceived,
    UnreadableAnswered,
    call_id,
)
from harness.conversation import ReceivedCall as ReceivedCall
from harness.errors import CallErrorReceived, ChargerDisconnected, NoAnswer, NotConnected
from harness.findings import MAX_VIOLATIONS as _MAX_VIOLATIONS  # noqa: F401 - read here by tests/test_fault_matrix.py
from harness.findings import Finding
from harness.findings import HarnessFault as HarnessFault
from harness.findings import Violation as Violation
from harness.platform import DEFAULT, AnswerHandler, PlatformModel, PlatformSettings
from harness.platform import Answer as Answer
from harness.platform import Transaction as Transaction
from harness.printable import printable
from harness.reconnect import PENDING, ReconnectHeartbeat
from harness.trace import RX, TX, Redactor, Trace, format_frames
from harness.waits import _INBOX as _INBOX  # noqa: F401 - read here by tests/test_fault_matrix.py
from harness.waits import WAIT_OBSERVERS as WAIT_OBSERVERS  # the plugin's live status line registers here
from harness.waits import SessionSettings as SessionSettings
from harness.waits import Waits, _observed
from harness.watches import Watch as Watch

# A CALL bigger than this (OCPP 1.6 messages are a few KiB) is kept in the inbox without its payload once it is
# answered: parsed, a 1 MiB frame of numbers is ~20 MB of Decimals, and 10,000 of them must not stay alive.
_INBOX_PAYLOAD_LIMIT = 64 * 1024
_CURRENT: Any = object()  # ChargerSession._reply's default: the connection the charger is on now


def _answering(self: ChargerSession, frame: ocppj.Call, *, timeout: float | None = None, text: str | None = None
               ) -> tuple[str, float]:
    return f"the answer to {frame.action}", self.settings.scaled(self.settings.call_timeout if timeout is None else timeout)


T = TypeVar("T")


class _Part(Generic[T]):
    """An attribute of the session that lives in one of its parts (`ChargerSession.boot` is `model.boot`)."""

    def __init__(self, part: str) -> None:
        self.part = part
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> _Part[T]: ...
    @overload
    def __get__(self, obj: object, objtype: type | None = None) -> T: ...
    def __get__(self, obj: object | None, objtype: type | None = None) -> T | _Part[T]:
        if obj is None:
            return self
        value: T = getattr(getattr(obj, self.part), self.name)
        return value

    def __set__(self, obj: object, value: T) -> None:
        setattr(getattr(obj, self.part), self.name, value)


class ChargerSession(Waits):
    """The harness side of one charge point id: it survives reconnects, for the whole run."""

    # The platform's view of the charger (harness/platform.py).
    boot = _Part[ReceivedCall | None]("model")
    boot_count = _Part[int]("model")
    registration = _Part[str | None]("model")
    heartbeat_interval = _Part[float | None]("model")
    connector_status = _Part[dict[int, str]]("model")
    status_history = _Part[deque[tuple[int, int, str]]]("model")
    transactions = _Part[dict[int, Transaction]]("model")
    platform = _Part[PlatformSettings]("model")
    # The notebook of findings (harness/findings.py).
    violations = _Part[list[Violation]]("findings")
    violation_count = _Part[int]("findings")
    harness_faults = _Part[list[HarnessFault]]("findings")

    def __init__(
        self,
        charger_id: str,
        authorization_key: str | None,
        *,
        settings: SessionSettings | None = None,
        platform: PlatformSettings | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.authorization_key = authorization_key
        self.redact = redactor or Redactor([authorization_key] if authorization_key else [])
        # The waits (harness/waits.py) own the inbox, the watches, the findings and the silence rule.
        super().__init__(charger_id, settings or SessionSettings(), Trace(self.redact),
                         PlatformModel(platform or PlatformSettings()))
        self.conversation = Conversation()
        self.connection_info: dict[str, Any] = {}
        self.connections = 0
        self.connected_seq = 0  # the trace seq of the current (or last) connection's start
        # A BootNotification received on the current connection whose answer is not yet on the wire: until it
        # is, no CALL of the harness goes out (a charger waiting for its answer may ignore CALLs; see send_call).
        self._boot_unanswered: str | None = None
        self.unreadable_answers: list[int] = []  # trace seqs of CALLERRORs taken as answers to unreadable frames
        self._pending: dict[str, asyncio.Future[ocppj.CallResult | ocppj.CallError]] = {}  # message id -> answer
        self._call_lock = asyncio.Lock()  # OCPP-J §4.1.1: the platform's CALLs queue here, one outstanding
        self._answer_tasks: set[asyncio.Task[Any]] = set()
        self.first_mark = 0  # the mark at the start of the run's first test: what came before is boot-time
        self.sent_calls: list[tuple[str, dict[str, Any]]] = []  # this test's CALLs (for restoring state)
        self.details: dict[str, Any] = {}  # facts a test records for the report (e.g. which alternative held)
        self.rig: Any = None  # the Rig for physical acts, set by the `charger` fixture

    def note(self, text: str) -> None:
        """A remark for the report, next to this test's verdict."""
        self.details.setdefault("notes", []).append(text)

    def active_transactions(self) -> list[Transaction]:
        return self.model.active_transactions()

    # --- calls from the harness ----------------------------------------------------------------

    async def call(self, request: Any, *, timeout: float | None = None) -> Any:
        """Send an `ocpp.v16.call` dataclass; return the CALLRESULT as its `call_result` dataclass."""
        action = ocppj.action_of(request)
        payload = await self.call_raw(action, ocppj.payload_of(request), timeout=timeout)
        return ocppj.response_dataclass(action, payload)

    async def call_raw(self, action: str, payload: Mapping[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Send a CALL built by hand (also for deliberately malformed ones); return the CALLRESULT payload."""
        frame = self.conversation.new_call(action, payload)
        answer = await self.send_call(frame, timeout=timeout)
        if isinstance(answer, ocppj.CallError):
            raise CallErrorReceived(action, answer.code, answer.description, answer.details)
        self.model.configured(action, payload, answer.payload)
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
            mark = self.trace.next_seq
            timed_out = False
            raw = self.conversation.call_sent(frame, text)  # outstanding from here: call_ended in `finally`
            try:
                self._pending[frame.unique_id] = future
                self.sent_calls.append((frame.action, dict(frame.payload)))
                self.watches.end(sent=frame.action)
                self.trace.record(TX, raw)
                sent_at = dt.datetime.now(dt.timezone.utc)
                await connection.send(raw)
                with self._waiting(f"the answer to {frame.action} (message id {frame.unique_id}, bound {bound:g} s)"):
                    async with asyncio.timeout(bound):
                        return await future
            except TimeoutError:
                # The first CALL left unanswered since the charger was last heard. Only a registered charger must
                # answer: while Pending (or Rejected) it may ignore requests (§4.2; docs/rules-frames.md).
                earlier = self._unanswered is not None
                if self._unanswered is None and self.registration == "Accepted":
                    self._unanswered = (frame.action, frame.unique_id, sent_at, bound)
                timed_out = True
                if earlier:
                    # An earlier CALL is unanswered too, and the charger may have been silent for the bound by now:
                    # that is the one cause to name, not this CALL's timeout (docs/rules-silence.md), whenever the
                    # test happened to start.
                    self.fail_if_silent(f"{frame.action} got no answer within {bound:g} s either")
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
                self.conversation.call_ended(frame.unique_id, timed_out_at=mark if timed_out else None)

    async def send_text(self, text: str) -> None:
        """Put raw text on the wire (robustness probes); no answer is awaited."""
        await self._wait_boot_answered("the raw frame", self.settings.scaled(self.settings.call_timeout))
        connection = self.connection
        if connection is None:
            raise NotConnected("cannot send: the charger is not connected")
        self.conversation.text_sent(text)
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

    # --- answers the platform gives (harness/platform.py) ------------------------------------------

    def answer(self, action: str, handler: AnswerHandler | Mapping[str, Any] | None) -> None:
        """Override the platform's answer to `action` until reset_answers() (the fixture resets per test).

        handler: a payload dict, or a function of the ReceivedCall returning a payload dict, an
        ocppj.CallError, or None to leave the CALL unanswered (a silent platform).
        """
        self.model.answer(action, handler)

    def answering(self, action: str, handler: AnswerHandler | Mapping[str, Any] | None
                  ) -> contextlib.AbstractContextManager[None]:
        """The platform answers `action` with `handler` inside the `with` block (then as before)."""
        return self.model.answering(action, handler)

    def reset_answers(self) -> None:
        self.model.reset_answers()

    # --- the connection side (called by the endpoint) ------------------------------------------

    def attach(self, connection: Any, info: Mapping[str, Any]) -> Any:
        """A new authenticated connection for this id; returns the one it replaces (to be closed)."""
        previous = self.connection
        if previous is not None:
            # CALLs sent on the old connection will never be answered on the new one.
            self._fail_pending()
        self.connection = connection
        self.connection_info = dict(info)
        self.connections += 1
        self.conversation.connection_opened()
        self._boot_unanswered = None  # a boot on the old connection is answered there or never
        connected = self.trace.event(
            f"connected: {info.get('tls_version', '?')} {info.get('cipher', '?')} from {info.get('peer', '?')}"
        )
        self.connected_seq = connected.seq
        self._heard(connected.seq, connected.wall, connected.mono)
        if self.boot is not None:  # it was registered before: a reconnect, Heartbeats must go on (CORE-1)
            interval = self.heartbeat_interval or float(self.platform.heartbeat_interval)
            self.reconnect_heartbeat = ReconnectHeartbeat(connected.seq, connected.mono, interval,
                                                          self.settings.timing.factor)
            self.reconnect_checks.append(self.reconnect_heartbeat)
            self._arm_heartbeat_timer()
        self._notify()
        return previous

    def _fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(_ConnectionClosed())

    def detach(self, connection: Any, reason: str) -> None:
        if self.connection is not connection:
            return
        self.connection = None
        self._boot_unanswered = None
        self.conversation.connection_closed()
        self.trace.event(f"disconnected: {reason}")
        self.watches.end(disconnected=True)
        if self.reconnect_heartbeat is not None:
            self.reconnect_heartbeat.disconnected()
            self._arm_heartbeat_timer()
        self._fail_pending()
        self._notify()

    # --- findings (harness/findings.py) --------------------------------------------------------

    def harness_fault(self, where: str, exc: BaseException) -> HarnessFault:
        """Record an exception in the harness's own frame handling: a harness error, never a finding about the
        charger (the plugin makes the test during which it happened an error, and the report lists it)."""
        error = printable(f"{type(exc).__name__}: {exc}", one_line=True)[:500]
        event = self.trace.event(f"harness error while {where}: {error} (the harness's fault: the charger is not judged by it)")
        return self.findings.fault(event.seq, event.wall, where, error, exc)

    # --- frames from the charger -----------------------------------------------------------------

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
            unique_id = call_id(message)
            answered = any(e.direction == TX and unique_id is not None and unique_id in e.text for e in self.trace.since(mark))
            if unique_id is not None and not answered:
                with contextlib.suppress(Exception):
                    self._reply(ocppj.CallError(unique_id, "InternalError", "the platform could not handle this CALL", {}))
            self._arrived()  # waiters look again at what did get recorded
            self._notify()

    def _receive(self, message: str | bytes) -> None:
        entry = self.trace.record(RX, message)
        self._heard(entry.seq, entry.wall, entry.mono)
        # The conversation's events, handled in order: a finding belongs to the trace entry recorded last.
        for event in self.conversation.receive(message, Arrival(entry.seq, entry.wall, entry.mono)):
            if isinstance(event, Finding):
                self._record(event)
            elif isinstance(event, Reply):
                self._reply(event.frame)
            elif isinstance(event, CallReceived):
                self._receive_call(event.call, len(message))
            elif isinstance(event, UnreadableAnswered):
                self.unreadable_answers.append(self.trace.next_seq - 1)
                self.trace.event("that CALLERROR answers the harness's unreadable frame (no message id to name): acceptable")
            elif isinstance(event, (ResultReceived, ErrorReceived)):
                self._receive_answer(event)

    def _receive_call(self, received: ReceivedCall, size: int) -> None:
        self._inbox.append(received if size <= _INBOX_PAYLOAD_LIMIT else _slim(received, size))
        self._track(received)
        if self.reconnect_heartbeat is not None:
            self.reconnect_heartbeat.charger_call(received.action, received.mono)
            self._arm_heartbeat_timer()
            self._notify()
        for found in self.watches.check(received, time.monotonic(), self._mark):
            self._record(found)
        if received.action == "BootNotification":
            self._boot_unanswered = received.unique_id  # no CALL goes out until its answer does (send_call)
        self._arrived()
        task = asyncio.get_running_loop().create_task(self._answer(received, self.connection))
        self._answer_tasks.add(task)
        task.add_done_callback(self._answer_tasks.discard)

    def _track(self, call: ReceivedCall) -> None:
        """Keep the platform's view of the charger up to date (boot, statuses, transactions)."""
        changed, findings = self.model.track(call)
        for found in findings:
            self._record(found)
        if changed:
            self._notify()

    def _receive_answer(self, event: ResultReceived | ErrorReceived) -> None:
        if self.reconnect_heartbeat is not None:
            self.reconnect_heartbeat.exchange(time.monotonic(), platform_answered=False)  # §4.6: any PDU it sent
            self._arm_heartbeat_timer()
        future = self._pending.get(event.frame.unique_id) if event.action is not None else None
        if future is not None and not future.done():
            future.set_result(event.frame)

    # --- the platform's answers ----------------------------------------------------------------

    async def _answer(self, call: ReceivedCall, connection: Any) -> None:
        try:
            await self._answer_guarded(call, connection)
        except Exception as exc:  # noqa: BLE001 - the harness's own bug: recorded, never the charger's
            self.harness_fault(f"answering the charger's {call.action}", exc)
            if self.conversation.peer_outstanding == call.unique_id:  # not answered yet: as a failed platform would
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
                self.model.boot_answered(call, frame)
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
        handler = self.model.override(call.action)
        try:
            if handler is DEFAULT:
                result: Any = self.model.default_answer(call)
            elif handler is None:
                return None, None  # the test wants the platform silent
            else:
                result = handler(call)
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
        if self.model.answered(call, payload):
            self._notify()
        answer = ocppj.CallResult(call.unique_id, payload)
        return answer, self._reply(answer, connection)

    def _reply(self, frame: ocppj.CallResult | ocppj.CallError, connection: Any = _CURRENT) -> asyncio.Task[bool] | None:
        """Write an answer (by default on the current connection); the task doing it says whether it was sent."""
        if connection is _CURRENT:
            connection = self.connection
        text = self.conversation.answer_sent(frame)
        self.trace.record(TX, text)
        if self.reconnect_heartbeat is not None and connection is not None:
            self.reconnect_heartbeat.exchange(time.monotonic())
            self._arm_heartbeat_timer()
            if self.reconnect_heartbeat.outcome == PENDING:
                self._arrived()  # a new deadline: settle_watches looks again
        if connection is None:
            return None
        task = asyncio.get_running_loop().create_task(_send_quietly(connection, text))
        self._answer_tasks.add(task)
        task.add_done_callback(self._answer_tasks.discard)
        return task

    async def settle_answers(self, within: float = 1.0) -> None:
        """Let the platform's answers to what already arrived finish (its own tasks: quick), so that a fault in
        them is filed with the test during which the CALL came."""
        if self._answer_tasks:
            await asyncio.wait(set(self._answer_tasks), timeout=within)


def _slim(call: ReceivedCall, size: int) -> ReceivedCall:
    """The inbox's copy of an oversized CALL: its identity and findings, not its parsed payload (the answer task
    holds the whole call until it is answered, then it is released)."""
    return dataclasses.replace(call, payload={"_dropped": f"{size} characters: payload not kept (over {_INBOX_PAYLOAD_LIMIT})"})


class _ConnectionClosed(Exception):
    pass


class BootNotAnswered(RuntimeError):
    """The platform's own answer to a BootNotification did not go out in time: a harness problem (a test's
    answer override), so not a finding about the charger."""


async def _send_quietly(connection: Any, text: str) -> bool:
    """Send; True once the frame is written (False if the connection had gone)."""
    try:
        await connection.send(text)
    except Exception:  # noqa: BLE001 - a closed connection: the answer is simply not delivered
        return False
    return True
