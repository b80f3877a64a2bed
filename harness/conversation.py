"""The OCPP-J 1.6 conversation with one charger, sans-I/O: messages in, events out; frames out for the platform.

    conversation = Conversation()
    for event in conversation.receive(text, Arrival(seq, wall, mono)):
        ...  # Finding, Reply, CallReceived, ResultReceived, ErrorReceived, UnreadableAnswered
    frame = conversation.new_call("GetConfiguration", {})
    text = conversation.call_sent(frame)  # now it is the one outstanding CALL of the platform

It owns the message ids (the platform's new ones, the charger's seen ones), the one-outstanding-CALL rule in both
directions, and the matching of answers to CALLs, and judges the frames as OCPP-J 1.6 (shape, schema, error codes,
duplicate ids). No sockets, no asyncio, no clock: the caller passes when a message arrived (`Arrival`) and writes
what it is told to (`Reply`) through `answer_sent`. The asyncio session (harness/session.py) wires it to a
connection; tests/test_conversation.py drives it frame by frame.

Events come in the order in which they are to be recorded: a finding's trace seq defaults to the last entry
recorded when it is handled, so a finding that follows a Reply belongs to that reply (as it always has).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Union

from harness import ocppj, spec16
from harness.findings import Finding

#: How many timed-out message ids are remembered, so that their late answer is blamed on the right test.
_LATE_IDS = 64


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


class Arrival(NamedTuple):
    """When a message arrived: its trace seq, wall-clock and monotonic times (the caller's clock, not ours)."""

    seq: int
    wall: dt.datetime
    mono: float


# --- events -----------------------------------------------------------------------------------

#: A protocol finding about what the charger sent (a violation, or an advisory one: kind "advisory").
ProtocolFinding = Finding


@dataclass(frozen=True)
class Reply:
    """A frame the platform must send now (a CALLERROR to a CALL it cannot take); send it with `answer_sent`."""

    frame: ocppj.CallResult | ocppj.CallError


@dataclass(frozen=True)
class CallReceived:
    """A readable CALL of a known charger action: the platform answers it (it is now the charger's outstanding
    CALL). Its schema problems, if any, came just before as findings."""

    call: ReceivedCall


@dataclass(frozen=True)
class ResultReceived:
    """A CALLRESULT. `action` is that of the platform's CALL it answers; None when it answers none (the finding
    saying so came just before)."""

    frame: ocppj.CallResult
    action: str | None


@dataclass(frozen=True)
class ErrorReceived:
    """A CALLERROR; `action` as for ResultReceived. A CALLERROR is an answer even when it deviates."""

    frame: ocppj.CallError
    action: str | None


@dataclass(frozen=True)
class UnreadableAnswered:
    """A CALLERROR taken as the answer to an unreadable frame the platform sent (see Conversation._stray_callerror)."""


Event = Union[Finding, Reply, CallReceived, ResultReceived, ErrorReceived, UnreadableAnswered]


def _new_id() -> str:
    return uuid.uuid4().hex[:32]


class Conversation:
    """One charger's OCPP-J conversation with the platform, over every connection of the run."""

    def __init__(self, new_id: Callable[[], str] = _new_id) -> None:
        self._new_id = new_id
        self._peer_ids = ocppj.IdTracker()  # OCPP-J §4.1.3: unique per sender, across reconnects
        self.peer_outstanding: str | None = None  # the charger's CALL the platform has not answered yet
        self.outstanding: dict[str, str] = {}  # the platform's CALL awaiting its answer: message id -> action
        self._timed_out: OrderedDict[str, int] = OrderedDict()  # message id -> seq of the CALL that timed out
        # Unreadable frames the platform sent on this connection that a stray CALLERROR may still answer
        # (a charger cannot name an id it could not read: "-1" is the 2.0.1 rule; see _stray_callerror).
        self.unreadable_unanswered = 0
        self._details_advised = False  # the errorDetails deviation is one finding per run, not one per CALLERROR

    # --- the connection ---------------------------------------------------------------------------

    def connection_opened(self) -> None:
        """A new connection: nothing the charger sent before is waiting for an answer on it, and no CALL of the
        platform sent on the old one will be answered on it."""
        self.outstanding.clear()
        self.peer_outstanding = None
        self.unreadable_unanswered = 0

    def connection_closed(self) -> None:
        self.outstanding.clear()
        self.unreadable_unanswered = 0

    # --- what the platform sends ------------------------------------------------------------------

    def new_call(self, action: str, payload: Mapping[str, Any]) -> ocppj.Call:
        """A CALL of the platform with a fresh message id."""
        return ocppj.Call(self._new_id(), action, dict(payload))

    def call_sent(self, frame: ocppj.Call, text: str | None = None) -> str:
        """The text to write for the platform's CALL (`text`: raw text carrying its id), now outstanding.

        OCPP-J §4.1.1: one outstanding CALL per direction; the session queues its CALLs, so a second one here is
        the harness's own bug.
        """
        if self.outstanding:
            raise RuntimeError(f"harness bug: {frame.action} sent while CALL {next(iter(self.outstanding))!r} is "
                               "outstanding (OCPP-J §4.1.1: one at a time)")
        self.outstanding[frame.unique_id] = frame.action
        if text is None:
            return ocppj.encode_frame(frame)
        self.text_sent(text)
        return text

    def text_sent(self, text: str) -> None:
        """Raw text the platform sends on purpose (robustness probes): if it cannot be parsed, a charger's parser
        may not get as far as its message id, so a CALLERROR that names no CALL of ours may answer it."""
        try:
            ocppj.parse_frame(text)
        except ocppj.FrameError:
            self.unreadable_unanswered += 1

    def call_ended(self, unique_id: str, *, timed_out_at: int | None = None) -> None:
        """The platform no longer waits for this CALL's answer; `timed_out_at`: the trace seq of a CALL left
        unanswered, whose late answer is that test's finding, not the running one's."""
        self.outstanding.pop(unique_id, None)
        if timed_out_at is not None:
            self._timed_out[unique_id] = timed_out_at
            while len(self._timed_out) > _LATE_IDS:
                self._timed_out.popitem(last=False)

    def answer_sent(self, frame: ocppj.CallResult | ocppj.CallError) -> str:
        """The text of the platform's answer to a charger's CALL; that CALL is no longer outstanding."""
        if self.peer_outstanding == frame.unique_id:
            self.peer_outstanding = None
        return ocppj.encode_frame(frame)

    # --- what the charger sends -------------------------------------------------------------------

    def receive(self, message: str | bytes, at: Arrival) -> list[Event]:
        """Judge one WebSocket message from the charger: the events, in the order they are to be handled."""
        try:
            frame = ocppj.parse_frame(message)
        except ocppj.UnknownMessageType as exc:
            # OCPP-J §4.1.3: ignored by the receiver, but it is not 1.6.
            return [Finding("unknown message type", exc.reason, message)]
        except ocppj.FrameError as exc:
            if (exc.message_type == ocppj.MessageType.CALLERROR and exc.unique_id not in self.outstanding
                    and self._stray_callerror()):
                return [UnreadableAnswered()]  # an answer to an unreadable frame of ours, whatever its id: acceptable
            events: list[Event] = [Finding("malformed frame", exc.reason, message)]
            # Only a CALL is answered (OCPP-J §4.2.3 answers a CALL with a CALLERROR); nobody answers a
            # CALLRESULT or a CALLERROR, however malformed: the charger is not waiting for anything.
            if exc.unique_id is not None and exc.message_type == ocppj.MessageType.CALL:
                events.append(Reply(ocppj.CallError(exc.unique_id, exc.code, exc.reason[:200], {})))
            return events
        if isinstance(frame, ocppj.Call):
            return self._receive_call(frame, at, message)
        return self._receive_answer(frame, message)

    def _receive_call(self, frame: ocppj.Call, at: Arrival, raw: str | bytes) -> list[Event]:
        events: list[Event] = []
        if self._peer_ids.seen_before(frame.unique_id):
            events.append(Finding("duplicate message id",
                                  f"message id {frame.unique_id!r} was used before by the charger", raw))
        if self.peer_outstanding is not None:
            events.append(Finding(
                "more than one outstanding CALL",
                f"{frame.action} sent before the answer to the charger's previous CALL {self.peer_outstanding!r} "
                "(OCPP-J §4.1.1: one outstanding CALL at a time)",
                raw,
            ))
        registry = ocppj.schemas()
        if not registry.knows(frame.action):
            events.append(Finding("unknown action", f"{frame.action!r} is not an OCPP 1.6 action", raw))
            events.append(Reply(ocppj.CallError(frame.unique_id, "NotImplemented", f"unknown action {frame.action}", {})))
            return events
        if frame.action in spec16.CENTRAL_SYSTEM_ONLY_ACTIONS:
            # §5: e.g. RemoteStartTransaction or SetChargingProfile are the central system's requests. The platform
            # does not carry them out: it refuses (NotSupported) and notes it; the charger's own requirements decide.
            events.append(Finding("advisory", f"the charger sent {frame.action}, which only the central system sends "
                                  "(OCPP 1.6 §5); answered CALLERROR NotSupported", raw, requirement="ADV-1"))
            events.append(Reply(ocppj.CallError(frame.unique_id, "NotSupported",
                                                f"{frame.action} is sent by the central system, not a charge point", {})))
            return events
        problems = tuple(registry.request_problems(frame.action, frame.payload))
        events.extend(Finding(f"{frame.action} schema", str(problem), raw) for problem in problems)
        self.peer_outstanding = frame.unique_id
        events.append(CallReceived(ReceivedCall(at.seq, frame.unique_id, frame.action, frame.payload, at.wall, at.mono,
                                                problems)))
        return events

    def _receive_answer(self, frame: ocppj.CallResult | ocppj.CallError, raw: str | bytes) -> list[Event]:
        events: list[Event] = []
        action = self.outstanding.pop(frame.unique_id, None)
        if action is None:
            if frame.unique_id in self._timed_out:
                # It belongs to the test whose CALL timed out (already failed with NoAnswer), not to
                # the test that happens to be running when it arrives.
                events.append(Finding("late answer", f"answer to message id {frame.unique_id!r} arrived after its "
                                      "timeout", raw, seq=self._timed_out[frame.unique_id]))
            elif isinstance(frame, ocppj.CallError) and self._stray_callerror():
                events.append(UnreadableAnswered())
                events.extend(self._check_details(frame, raw))  # an answer all the same: its errorDetails is judged
            else:
                kind = "CALLRESULT" if isinstance(frame, ocppj.CallResult) else "CALLERROR"
                events.append(Finding(
                    f"{kind} for unknown id",
                    f"{kind} with message id {frame.unique_id!r} matches no outstanding CALL from the harness",
                    raw,
                ))
        elif isinstance(frame, ocppj.CallResult):
            events.extend(Finding(f"{action}.conf schema", str(problem), raw)
                          for problem in ocppj.schemas().response_problems(action, frame.payload))
        else:
            if frame.code not in ocppj.ERROR_CODES_16:
                events.append(Finding(
                    "CALLERROR code",
                    f"error code {frame.code!r} is not one of OCPP-J 1.6's ({', '.join(sorted(ocppj.ERROR_CODES_16))})",
                    raw,
                ))
            events.extend(self._check_details(frame, raw))
        # A CALLERROR with a deviating errorDetails still answers the CALL: the test judges the answer.
        events.append(ResultReceived(frame, action) if isinstance(frame, ocppj.CallResult)
                      else ErrorReceived(frame, action))
        return events

    def _stray_callerror(self) -> bool:
        """Whether a CALLERROR that names no CALL of ours answers an unreadable frame the harness sent.

        OCPP-J 1.6 says nothing of the answer to a frame whose message id cannot be read: chargers answer
        with CALLERROR id "-1" (the 2.0.1 rule), with any CALLERROR, or not at all, and all are acceptable
        (docs/rules-frames.md). One such CALLERROR per unreadable frame sent on this connection is taken as
        its answer, whatever its id and code; any other is a CALLERROR for an unknown id.
        """
        if self.unreadable_unanswered <= 0:
            return False
        self.unreadable_unanswered -= 1
        return True

    def _check_details(self, frame: ocppj.CallError, raw: str | bytes) -> list[Event]:
        """A CALLERROR whose errorDetails is not a JSON object: exactly that schema deviation, an advisory
        finding (ADV-1), once per run; the CALLERROR still counts as the charger's answer."""
        if not frame.details_problem or self._details_advised:
            return []
        self._details_advised = True
        return [Finding("advisory", f"{frame.details_problem}; the CALLERROR is taken as the answer all the same "
                        "(later CALLERRORs with the same deviation are not listed again)", raw, requirement="ADV-1")]


def call_id(message: str | bytes) -> str | None:
    """The message id of a frame if it reads as a CALL ([2, "<id>", ...]), else None."""
    with contextlib.suppress(Exception):
        frame = json.loads(message)
        if isinstance(frame, list) and len(frame) >= 2 and frame[0] == 2 and isinstance(frame[1], str):
            return frame[1][:36]
    return None
