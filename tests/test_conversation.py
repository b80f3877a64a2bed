"""The sans-I/O parts of the session, frame by frame, without a socket or an event loop.

- `Conversation` (harness/conversation.py): every kind of frame a charger can send (CALL, CALLRESULT, CALLERROR,
  unknown type, malformed, binary), message ids (duplicates, unknown, late, "-1"), the one-outstanding-CALL rule in
  both directions, errorDetails that is not an object, and the order of the events.
- `PlatformModel` (harness/platform.py): §4.9 transitions, transactions, the boot counted once answered, overrides.
- `Watches` (harness/watches.py): a forbidden CALL found at once, later, too late, or after the watch ended.
"""

from __future__ import annotations

import datetime as dt
import inspect
import itertools
import json
from typing import Any

import pytest

from harness import conversation as conversation_mod
from harness import ocppj
from harness.conversation import (
    Arrival,
    CallReceived,
    Conversation,
    ErrorReceived,
    Event,
    ReceivedCall,
    Reply,
    ResultReceived,
    UnreadableAnswered,
    call_id,
)
from harness.findings import Finding
from harness.platform import DEFAULT, PlatformModel, PlatformSettings
from harness.watches import Watch, Watches, describe, matcher

WALL = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
_seqs = itertools.count(1)


def at(seq: int | None = None) -> Arrival:
    return Arrival(next(_seqs) if seq is None else seq, WALL, 0.0)


def frame(*parts: Any) -> str:
    return json.dumps(list(parts))


def kinds(events: list[Event]) -> list[str]:
    """The events as short names: a finding by its kind, anything else by its class."""
    return [e.kind if isinstance(e, Finding) else type(e).__name__ for e in events]


BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


def ids(*names: str) -> Any:
    it = iter(names)
    return lambda: next(it)


# --- CALLs from the charger -----------------------------------------------------------------------


def test_a_valid_call_is_received_and_outstanding_until_answered() -> None:
    conv = Conversation()
    events = conv.receive(frame(2, "c1", "BootNotification", BOOT), at(5))
    assert kinds(events) == ["CallReceived"]
    received = events[0].call  # type: ignore[union-attr]
    assert (received.seq, received.unique_id, received.action, received.payload, received.problems) == (
        5, "c1", "BootNotification", BOOT, ())
    assert conv.peer_outstanding == "c1"
    text = conv.answer_sent(ocppj.CallResult("c1", {"status": "Accepted"}))
    assert json.loads(text) == [3, "c1", {"status": "Accepted"}]
    assert conv.peer_outstanding is None


def test_schema_problems_come_before_the_call_and_travel_with_it() -> None:
    events = Conversation().receive(frame(2, "c1", "BootNotification", {"chargePointVendor": "V"}), at())
    assert kinds(events) == ["BootNotification schema", "CallReceived"]
    assert "chargePointModel" in events[0].message  # type: ignore[union-attr]
    assert events[1].call.problems  # type: ignore[union-attr]


def test_an_unknown_action_is_refused_not_implemented_and_is_not_outstanding() -> None:
    conv = Conversation()
    events = conv.receive(frame(2, "c1", "MakeCoffee", {}), at())
    assert kinds(events) == ["unknown action", "Reply"]
    reply = events[1]
    assert isinstance(reply, Reply) and isinstance(reply.frame, ocppj.CallError)
    assert (reply.frame.unique_id, reply.frame.code) == ("c1", "NotImplemented")
    assert conv.peer_outstanding is None


def test_a_central_system_action_is_an_advisory_finding_refused_not_supported() -> None:
    events = Conversation().receive(frame(2, "c1", "RemoteStartTransaction", {"idTag": "T"}), at())
    assert kinds(events) == ["advisory", "Reply"]
    assert events[0].requirement == "ADV-1"  # type: ignore[union-attr]
    assert events[1].frame.code == "NotSupported"  # type: ignore[union-attr]


def test_a_reused_message_id_is_a_finding_even_across_reconnects() -> None:
    conv = Conversation()
    conv.receive(frame(2, "same", "Heartbeat", {}), at())
    conv.answer_sent(ocppj.CallResult("same", {"currentTime": "2026-01-01T00:00:00Z"}))
    conv.connection_closed()
    conv.connection_opened()
    events = conv.receive(frame(2, "same", "Heartbeat", {}), at())
    assert kinds(events) == ["duplicate message id", "CallReceived"]


def test_a_second_outstanding_call_of_the_charger_is_a_finding_but_not_after_a_reconnect() -> None:
    conv = Conversation()
    conv.receive(frame(2, "c1", "Heartbeat", {}), at())
    events = conv.receive(frame(2, "c2", "Heartbeat", {}), at())
    assert kinds(events) == ["more than one outstanding CALL", "CallReceived"]
    assert "'c1'" in events[0].message  # type: ignore[union-attr]
    conv.connection_opened()  # nothing from the old connection waits for an answer on the new one
    assert kinds(conv.receive(frame(2, "c3", "Heartbeat", {}), at())) == ["CallReceived"]


def test_an_answer_to_another_call_leaves_the_outstanding_one() -> None:
    conv = Conversation()
    conv.receive(frame(2, "c1", "Heartbeat", {}), at())
    conv.answer_sent(ocppj.CallError("other", "InternalError", "", {}))
    assert conv.peer_outstanding == "c1"


def test_findings_come_in_order_duplicate_outstanding_schema_then_the_call() -> None:
    conv = Conversation()
    conv.receive(frame(2, "c1", "Heartbeat", {}), at())
    events = conv.receive(frame(2, "c1", "Heartbeat", {"extra": 1}), at())
    assert kinds(events) == ["duplicate message id", "more than one outstanding CALL", "Heartbeat schema", "CallReceived"]


# --- answers from the charger ---------------------------------------------------------------------


def test_a_callresult_answers_the_outstanding_call_once() -> None:
    conv = Conversation(new_id=ids("m1"))
    call = conv.new_call("GetConfiguration", {"key": ["HeartbeatInterval"]})
    text = conv.call_sent(call)
    assert json.loads(text) == [2, "m1", "GetConfiguration", {"key": ["HeartbeatInterval"]}]
    events = conv.receive(frame(3, "m1", {"configurationKey": []}), at())
    assert kinds(events) == ["ResultReceived"] and events[0].action == "GetConfiguration"  # type: ignore[union-attr]
    assert not conv.outstanding
    again = conv.receive(frame(3, "m1", {"configurationKey": []}), at())  # a second answer answers nothing
    assert kinds(again) == ["CALLRESULT for unknown id", "ResultReceived"] and again[1].action is None  # type: ignore[union-attr]


def test_a_callresult_against_its_schema() -> None:
    conv = Conversation(new_id=ids("m1"))
    conv.call_sent(conv.new_call("ChangeConfiguration", {"key": "K", "value": "1"}))
    events = conv.receive(frame(3, "m1", {"status": "Maybe"}), at())
    assert kinds(events) == ["ChangeConfiguration.conf schema", "ResultReceived"]


@pytest.mark.parametrize("kind, text", [
    ("CALLRESULT", frame(3, "nobody", {})),
    ("CALLERROR", frame(4, "nobody", "InternalError", "", {})),
])
def test_an_answer_with_an_unknown_id_is_a_finding(kind: str, text: str) -> None:
    events = Conversation().receive(text, at())
    assert kinds(events)[0] == f"{kind} for unknown id"
    assert getattr(events[-1], "action", "x") is None


def test_a_callerror_answers_the_call_and_its_code_is_judged() -> None:
    conv = Conversation(new_id=ids("m1", "m2"))
    conv.call_sent(conv.new_call("Reset", {"type": "Soft"}))
    events = conv.receive(frame(4, "m1", "NotSupported", "no", {}), at())
    assert kinds(events) == ["ErrorReceived"] and events[0].action == "Reset"  # type: ignore[union-attr]
    conv.call_sent(conv.new_call("Reset", {"type": "Soft"}))
    events = conv.receive(frame(4, "m2", "FormatViolation", "2.0 name", {}), at())  # not one of 1.6's ten codes
    assert kinds(events) == ["CALLERROR code", "ErrorReceived"] and events[1].action == "Reset"  # type: ignore[union-attr]


@pytest.mark.parametrize("text", [
    frame(4, "m1", "GenericError", "x", "a string"),
    frame(4, "m1", "GenericError", "x", None),
    frame(4, "m1", "GenericError", "x", [1]),
    frame(4, "m1", "GenericError", "x"),  # errorDetails left out
])
def test_errordetails_not_an_object_is_one_advisory_finding_and_still_the_answer(text: str) -> None:
    conv = Conversation(new_id=ids("m1", "m2"))
    conv.call_sent(conv.new_call("Reset", {"type": "Soft"}))
    events = conv.receive(text, at())
    assert kinds(events) == ["advisory", "ErrorReceived"]
    assert events[0].requirement == "ADV-1" and events[1].action == "Reset"  # type: ignore[union-attr]
    conv.call_sent(conv.new_call("Reset", {"type": "Soft"}))
    assert kinds(conv.receive(text.replace('"m1"', '"m2"'), at())) == ["ErrorReceived"]  # once per run


def test_a_late_answer_belongs_to_the_call_that_timed_out() -> None:
    conv = Conversation(new_id=ids(*(f"m{i}" for i in range(100))))
    first = conv.new_call("Heartbeat", {})
    conv.call_sent(first)
    conv.call_ended(first.unique_id, timed_out_at=7)
    events = conv.receive(frame(3, "m0", {"currentTime": "2026-01-01T00:00:00Z"}), at(20))
    assert kinds(events) == ["late answer", "ResultReceived"]
    assert events[0].seq == 7 and events[1].action is None  # type: ignore[union-attr]
    for seq in range(64):  # the memory of timed-out ids is bounded: the oldest is forgotten
        call = conv.new_call("Heartbeat", {})
        conv.call_sent(call)
        conv.call_ended(call.unique_id, timed_out_at=100 + seq)
    assert kinds(conv.receive(frame(3, "m0", {}), at()))[0] == "CALLRESULT for unknown id"
    assert kinds(conv.receive(frame(3, "m64", {}), at()))[0] == "late answer"


def test_an_answer_after_the_connection_dropped_answers_nothing() -> None:
    conv = Conversation(new_id=ids("m1"))
    conv.call_sent(conv.new_call("Heartbeat", {}))
    conv.connection_closed()
    assert kinds(conv.receive(frame(3, "m1", {}), at()))[0] == "CALLRESULT for unknown id"


def test_the_platform_has_one_outstanding_call_at_a_time() -> None:
    conv = Conversation(new_id=ids("m1", "m2", "m3"))
    conv.call_sent(conv.new_call("Heartbeat", {}))
    with pytest.raises(RuntimeError, match="one at a time"):
        conv.call_sent(conv.new_call("Heartbeat", {}))
    conv.call_ended("m1")
    conv.call_sent(conv.new_call("Heartbeat", {}))
    assert list(conv.outstanding) == ["m3"]


def test_new_ids_are_fresh_and_fit_ocppj() -> None:
    conv = Conversation()
    made = {conv.new_call("Heartbeat", {}).unique_id for _ in range(100)}
    assert len(made) == 100 and all(len(i) <= ocppj.MAX_ID_LENGTH for i in made)


# --- frames that cannot be read -------------------------------------------------------------------


@pytest.mark.parametrize("text, answered", [
    ("not json", None),
    ("{}", None),
    ("[]", None),
    ('["2", "x", "Heartbeat", {}]', None),
    (b'[2, "x", "Heartbeat", {}]', None),  # a binary WebSocket frame
    (frame(2, "x", "Heartbeat"), "x"),  # a CALL with a readable id is answered CALLERROR
    (frame(2, "x", "Heartbeat", []), "x"),
    (frame(2, "x" * 37, "Heartbeat", {}), "x" * 37),
    (frame(2, 5, "Heartbeat", {}), None),
    (frame(3, "x"), None),  # nobody answers a CALLRESULT or a CALLERROR
    (frame(3, "x", []), None),
    (frame(4, "x", 1, "d", {}), None),
])
def test_a_malformed_frame_is_a_finding_and_only_a_call_is_answered(text: str | bytes, answered: str | None) -> None:
    conv = Conversation()
    events = conv.receive(text, at())
    if answered is None:
        assert kinds(events) == ["malformed frame"]
    else:
        assert kinds(events) == ["malformed frame", "Reply"]
        reply = events[1].frame  # type: ignore[union-attr]
        assert reply.unique_id == answered and reply.code == "FormationViolation"
    assert conv.peer_outstanding is None


def test_an_unknown_message_type_is_a_finding_and_not_answered() -> None:
    assert kinds(Conversation().receive(frame(5, "x", {}), at())) == ["unknown message type"]


@pytest.mark.parametrize("answer", [
    frame(4, "-1", "FormationViolation", "unreadable", {}),  # the 2.0.1 rule
    frame(4, "anything", "GenericError", "", {}),  # any CALLERROR
    frame(4, "-1", "ProtocolError"),  # itself unreadable
])
def test_a_callerror_may_answer_an_unreadable_frame_of_the_platform(answer: str) -> None:
    conv = Conversation()
    conv.text_sent("[2, not json")
    conv.text_sent(frame(2, "ok", "Heartbeat", {}))  # readable: a charger can name its id
    assert conv.unreadable_unanswered == 1
    events = conv.receive(answer, at())
    assert kinds(events)[0] == "UnreadableAnswered" and not [e for e in events if isinstance(e, Finding)]
    again = conv.receive(answer, at())  # one answer per unreadable frame
    assert kinds(again)[0] in ("CALLERROR for unknown id", "malformed frame")


def test_a_stray_callerror_still_has_its_errordetails_judged() -> None:
    conv = Conversation()
    conv.text_sent("garbage")
    events = conv.receive(frame(4, "-1", "FormationViolation", "x", "details"), at())
    assert kinds(events) == ["UnreadableAnswered", "advisory", "ErrorReceived"]


def test_unreadable_frames_count_per_connection_and_a_raw_call_counts_too() -> None:
    conv = Conversation(new_id=ids("m1"))
    conv.text_sent("garbage")
    conv.connection_opened()
    assert conv.unreadable_unanswered == 0
    assert kinds(conv.receive(frame(4, "-1", "ProtocolError", "", {}), at()))[0] == "CALLERROR for unknown id"
    call = conv.new_call("Heartbeat", {})
    assert conv.call_sent(call, text='[2, "m1", "Heartbeat", {]') == '[2, "m1", "Heartbeat", {]'
    assert conv.unreadable_unanswered == 1 and list(conv.outstanding) == ["m1"]
    conv.connection_closed()
    assert conv.unreadable_unanswered == 0 and not conv.outstanding


def test_an_unreadable_callerror_naming_the_outstanding_call_is_no_stray_answer() -> None:
    conv = Conversation(new_id=ids("m1"))
    conv.call_sent(conv.new_call("Heartbeat", {}), text="garbage")
    assert kinds(conv.receive(frame(4, "m1", 1, "x", {}), at())) == ["malformed frame"]


def test_call_id_reads_only_a_calls_id() -> None:
    assert call_id(frame(2, "abc", "Heartbeat", {})) == "abc"
    assert call_id(frame(2, "x" * 50)) == "x" * 36
    assert call_id(frame(3, "abc", {})) is None
    assert call_id("garbage") is None and call_id(b"\xff") is None


def test_the_conversation_does_no_io_and_reads_no_clock() -> None:
    source = inspect.getsource(conversation_mod)
    for forbidden in ("import asyncio", "import socket", "websockets", "time.monotonic", "datetime.now"):
        assert forbidden not in source, forbidden


# --- the platform's model of the charger ----------------------------------------------------------


def received(action: str, payload: dict[str, Any], seq: int = 1, problems: tuple[Any, ...] = ()) -> ReceivedCall:
    return ReceivedCall(seq, f"id{seq}", action, payload, WALL, 0.0, problems)


def status(connector: int, value: str, seq: int = 1) -> ReceivedCall:
    return received("StatusNotification", {"connectorId": connector, "errorCode": "NoError", "status": value}, seq)


def test_the_model_checks_section_4_9_transitions() -> None:
    model = PlatformModel(PlatformSettings())
    assert model.track(status(1, "Available", 1)) == (True, [])
    assert model.track(status(1, "Preparing", 2)) == (True, [])
    changed, findings = model.track(status(1, "Finishing", 3))  # Preparing -> Finishing is legal (B6)
    assert changed and not findings
    changed, findings = model.track(status(1, "Preparing", 4))  # Finishing -> Preparing is legal (F2)
    assert not findings
    changed, findings = model.track(status(1, "Reserved", 5))  # Preparing -> Reserved is not in the table
    assert [(f.kind, f.requirement) for f in findings] == [("illegal status transition", "ST-1")]
    assert model.connector_status == {1: "Reserved"}
    assert list(model.status_history) == [(1, 1, "Available"), (2, 1, "Preparing"), (3, 1, "Finishing"),
                                          (4, 1, "Preparing"), (5, 1, "Reserved")]


def test_the_model_allows_only_three_statuses_on_connector_0() -> None:
    model = PlatformModel(PlatformSettings())
    _, findings = model.track(status(0, "Charging"))
    assert [f.requirement for f in findings] == ["ST-1"] and "connector 0" in findings[0].message
    assert PlatformModel(PlatformSettings()).track(status(0, "Unavailable")) == (True, [])


def test_the_model_ignores_a_status_it_cannot_read() -> None:
    model = PlatformModel(PlatformSettings())
    assert model.track(received("StatusNotification", {"connectorId": "1", "status": "Available"})) == (False, [])
    assert model.track(received("StatusNotification", {"connectorId": 1}, problems=("x",))) == (False, [])
    assert model.track(received("Heartbeat", {})) == (False, []) and not model.connector_status


def test_the_model_keeps_transactions_from_the_platforms_answers() -> None:
    model = PlatformModel(PlatformSettings())
    start = received("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0,
                                          "timestamp": "2026-01-01T00:00:00Z"}, 3)
    assert model.answered(start, {"transactionId": 42, "idTagInfo": {"status": "Accepted"}})
    assert [t.transaction_id for t in model.active_transactions()] == [42]
    stop = received("StopTransaction", {"transactionId": 42, "meterStop": 5, "timestamp": "2026-01-01T00:01:00Z"}, 9)
    assert model.answered(stop, {})
    assert model.transactions[42].stopped is stop and not model.active_transactions()
    assert not model.answered(received("StopTransaction", {"transactionId": 7}), {})  # unknown: nothing changes


def test_the_model_counts_a_boot_once_its_answer_is_written() -> None:
    model = PlatformModel(PlatformSettings())
    boot = received("BootNotification", BOOT)
    model.answered(boot, {"status": "Accepted", "interval": 60, "currentTime": "2026-01-01T00:00:00Z"})
    assert model.heartbeat_interval == 60.0 and model.boot is None  # answered, not yet on the wire
    model.boot_answered(boot, ocppj.CallResult("b", {"status": "Rejected"}))
    assert (model.registration, model.boot_count) == ("Rejected", 0)
    model.boot_answered(boot, ocppj.CallResult("b", {"status": "Pending"}))
    assert (model.registration, model.boot_count, model.boot) == ("Pending", 1, boot)
    bad = received("BootNotification", {}, problems=("x",))
    model.boot_answered(bad, ocppj.CallResult("b", {"status": "Accepted"}))
    assert model.boot_count == 1  # an invalid BootNotification is not a boot


def test_the_model_learns_the_heartbeat_interval_from_an_accepted_change() -> None:
    model = PlatformModel(PlatformSettings())
    model.configured("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "30"}, {"status": "Rejected"})
    assert model.heartbeat_interval is None
    model.configured("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "30"}, {"status": "Accepted"})
    assert model.heartbeat_interval == 30.0


def test_the_models_answer_overrides_nest_and_reset() -> None:
    model = PlatformModel(PlatformSettings(id_tags=("CARD",)))
    assert model.override("Authorize") is DEFAULT
    assert model.default_answer(received("Authorize", {"idTag": "CARD"})) == {"idTagInfo": {"status": "Accepted"}}
    with model.answering("Authorize", {"idTagInfo": {"status": "Blocked"}}):
        handler = model.override("Authorize")
        assert handler is not None and handler is not DEFAULT
        assert handler(received("Authorize", {})) == {"idTagInfo": {"status": "Blocked"}}
        with model.answering("Authorize", None):
            assert model.override("Authorize") is None  # a silent platform
        assert model.override("Authorize") is handler
    assert model.override("Authorize") is DEFAULT
    model.answer("Heartbeat", None)
    model.reset_answers()
    assert model.override("Heartbeat") is DEFAULT


# --- watches --------------------------------------------------------------------------------------


def watch(action: str = "Heartbeat", since: int = 10, *, settle_at: float = 5.0, expires_at: float = 100.0,
          until_sent: frozenset[str] = frozenset(), until_disconnect: bool = False) -> Watch:
    return Watch(action, matcher(None), since, settle_at, expires_at, "FW-1", "expected no Heartbeat", "test_x",
                 until_sent, until_disconnect)


def test_a_watch_finds_what_already_arrived_as_the_current_tests_finding() -> None:
    watches = Watches()
    found = watches.add(watch(), [received("Heartbeat", {}, 12)])
    assert found is not None and not found.watched and found.seq == 12 and found.requirement == "FW-1"
    assert "watched since" not in found.message and not watches


def test_a_watch_finds_a_later_call_and_names_the_test_that_set_it() -> None:
    watches = Watches()
    assert watches.add(watch(), []) is None and len(watches) == 1
    assert watches.check(received("StatusNotification", {}, 20), now=1.0, mark=10) == []
    assert watches.check(received("Heartbeat", {}, 8), now=1.0, mark=10) == []  # before the watch's start
    found = watches.check(received("Heartbeat", {}, 30), now=1.0, mark=25)  # a later test runs now
    assert [(f.kind, f.watched, f.seq) for f in found] == [("FW-1 watch", True, 30)]
    assert "(watched since test_x)" in found[0].message and not watches  # a finding ends the watch


def test_a_watch_expires_and_ends_on_a_sent_action_or_a_disconnect() -> None:
    watches = Watches()
    watches.add(watch(expires_at=2.0), [])
    assert watches.check(received("Heartbeat", {}, 30), now=3.0, mark=10) == [] and not watches
    watches.add(watch(until_sent=frozenset({"UpdateFirmware"})), [])
    watches.add(watch(until_disconnect=True), [])
    watches.end(sent="Reset")
    assert len(watches) == 2
    watches.end(sent="UpdateFirmware")
    assert [w.until_disconnect for w in watches] == [True]
    watches.end(disconnected=True)
    assert not watches


def test_watches_say_when_their_windows_end() -> None:
    watches = Watches()
    watches.add(watch(settle_at=5.0, expires_at=50.0), [])
    watches.add(watch(settle_at=1.0, expires_at=2.0), [])
    assert watches.pending(now=0.5) == [5.0, 1.0]
    assert watches.pending(now=3.0) == [5.0] and len(watches) == 1  # the expired one is dropped
    assert watches.pending(now=6.0) == [] and len(watches) == 1  # settled, still watching


def test_matcher_and_describe() -> None:
    call = received("StatusNotification", {"connectorId": 1, "status": "Charging"})
    assert matcher({"status": "Charging"})(call) and not matcher({"status": "Available"})(call)

    def broken(_call: ReceivedCall) -> bool:
        """a condition that breaks"""
        raise KeyError("x")

    assert matcher(broken)(call) is False  # a malformed payload simply does not match
    assert describe("Heartbeat", None) == "a Heartbeat"
    assert describe("StatusNotification", {"status": "Charging"}) == "a StatusNotification with status='Charging'"
    assert describe("X", broken) == "a X matching a condition that breaks"


def test_events_are_plain_values() -> None:
    """What the session dispatches on: each event type is a frozen dataclass (or the finding)."""
    for kind in (CallReceived, ResultReceived, ErrorReceived, UnreadableAnswered, Reply, Finding):
        assert getattr(kind, "__dataclass_params__").frozen, kind
