"""The transaction message queue (§3.7, §4.7): order, id rewrite, once each, retries; and the reference charger
across a lost connection: the message in flight, the late-flush variant, heartbeats after a reconnect (and their defects)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from harness.ocppj import Call
from harness.sim.charger import ReferenceCharger
from harness.sim.offline import TransactionQueue, TxRef
from tests.sim.test_charger import MiniCsms, booted, configure, csms, running  # noqa: F401 - csms is a fixture


def drain(queue: TransactionQueue, answers: dict[str, dict]) -> list[tuple[str, dict]]:
    sent = []
    while (head := queue.head()) is not None:
        payload = head.resolved()
        assert payload is not None
        sent.append((head.action, payload))
        queue.ack(head, answers.get(head.action, {}))
    return sent


def test_order_and_transaction_id_rewrite() -> None:
    q = TransactionQueue()
    tx = TxRef()
    q.push("StartTransaction", {"connectorId": 1, "meterStart": 10}, tx)
    q.push("MeterValues", {"connectorId": 1, "meterValue": [1]}, tx)
    q.push("MeterValues", {"connectorId": 1, "meterValue": [2]}, tx)
    q.push("StopTransaction", {"meterStop": 20}, tx)
    # Before the StartTransaction is answered, later messages have no id to carry.
    assert list(q)[1].resolved() is None
    sent = drain(q, {"StartTransaction": {"transactionId": 4711, "idTagInfo": {"status": "Accepted"}}})
    assert [a for a, _ in sent] == ["StartTransaction", "MeterValues", "MeterValues", "StopTransaction"]
    assert "transactionId" not in sent[0][1]
    assert [p["transactionId"] for _, p in sent[1:]] == [4711, 4711, 4711]
    assert [p["meterValue"] for a, p in sent if a == "MeterValues"] == [[1], [2]]
    assert len(q) == 0 and tx.transaction_id == 4711


def test_two_transactions_keep_their_own_ids() -> None:
    q = TransactionQueue()
    a, b = TxRef(), TxRef()
    q.push("StartTransaction", {"connectorId": 1}, a)
    q.push("StartTransaction", {"connectorId": 2}, b)
    q.push("StopTransaction", {"c": 2}, b)
    q.push("StopTransaction", {"c": 1}, a)
    ids = iter([1, 2])
    sent = []
    while (head := q.head()) is not None:
        sent.append((head.action, head.resolved()))
        q.ack(head, {"transactionId": next(ids)} if head.action == "StartTransaction" else {})
    assert sent[2] == ("StopTransaction", {"c": 2, "transactionId": 2})
    assert sent[3] == ("StopTransaction", {"c": 1, "transactionId": 1})


def test_each_message_once_even_across_a_lost_connection() -> None:
    q = TransactionQueue()
    tx = TxRef(transaction_id=9)
    q.push("MeterValues", {"n": 1}, tx)
    q.push("MeterValues", {"n": 2}, tx)
    head = q.head()
    assert head is not None
    q.requeue(head)  # connection dropped while it was in flight: sent again, not twice more
    assert q.head() is head
    q.ack(head, {})
    assert [m.payload["n"] for m in q] == [2]
    with pytest.raises(ValueError):
        q.ack(head, {})  # a second answer for the same message is refused
    assert [p["n"] for _, p in drain(q, {})] == [2]
    assert [m.payload["n"] for m in q.delivered] == [1, 2]


def test_retries_then_gives_up() -> None:
    q = TransactionQueue()
    tx = TxRef(transaction_id=1)
    q.push("StopTransaction", {"meterStop": 5}, tx)
    head = q.head()
    assert head is not None
    assert q.failed(head, max_attempts=3, retry_interval=10, now=100.0) is False
    assert head.not_before == 110.0
    assert q.failed(head, max_attempts=3, retry_interval=10, now=110.0) is False
    assert head.not_before == 130.0  # interval x attempts
    assert q.failed(head, max_attempts=3, retry_interval=10, now=130.0) is True
    assert len(q) == 0 and q.dropped[-1][0] is head


def test_failed_start_drops_its_transaction_messages() -> None:
    q = TransactionQueue()
    doomed, other = TxRef(), TxRef(transaction_id=3)
    q.push("StartTransaction", {"connectorId": 1}, doomed)
    q.push("MeterValues", {"x": 1}, doomed)
    q.push("MeterValues", {"x": 2}, other)
    q.push("StopTransaction", {"x": 3}, doomed)
    start = q.head()
    assert start is not None
    assert q.failed(start, max_attempts=1, retry_interval=0, now=0.0)
    sent = drain(q, {})
    assert sent == [("MeterValues", {"x": 2, "transactionId": 3})]
    assert [m.action for m, _ in q.dropped] == ["StartTransaction", "MeterValues", "StopTransaction"]


def test_start_answer_without_id_fails_the_transaction() -> None:
    q = TransactionQueue()
    tx = TxRef()
    q.push("StartTransaction", {}, tx)
    q.push("StopTransaction", {}, tx)
    head = q.head()
    assert head is not None
    q.ack(head, {"idTagInfo": {"status": "Accepted"}})
    assert tx.start_failed and q.head() is None


def test_full_queue_sacrifices_meter_values_first() -> None:
    q = TransactionQueue(max_length=3)
    tx = TxRef(transaction_id=1)
    q.push("StartTransaction", {"n": 0}, tx)
    q.push("MeterValues", {"n": 1}, tx)
    q.push("MeterValues", {"n": 2}, tx)
    q.push("StopTransaction", {"n": 3}, tx)
    assert [m.payload["n"] for m in q] == [0, 2, 3]


def test_discard_takes_a_message_off_undelivered() -> None:
    q = TransactionQueue()
    tx = TxRef(transaction_id=7)
    first = q.push("MeterValues", {"n": 1}, tx)
    q.push("StopTransaction", {"n": 2}, tx)
    q.discard(first, "in flight when the connection dropped")
    assert [m.payload["n"] for m in q] == [2]
    assert q.dropped[-1] == (first, "in flight when the connection dropped") and first not in q.delivered
    q.discard(first, "again")  # not queued any more: nothing happens
    assert len(q.dropped) == 1


# --- the reference charger across a lost connection (real sockets, see tests/sim/test_charger.py) ---------------


async def _charging_with_a_message_in_flight(csms: MiniCsms, charger: ReferenceCharger) -> Call:
    """Charge, sample every second, leave the next MeterValues unanswered, and cut the link while it is in flight."""
    await booted(csms)
    assert await configure(csms, "MeterValueSampleInterval", "1") == "Accepted"
    await charger.plugin(1)
    await charger.authorize("TAG-FLIGHT", 1)
    await csms.expect("StartTransaction")
    await csms.expect("MeterValues")
    mark = csms.mark()
    csms.answers["MeterValues"] = lambda _payload: None  # the central system holds its answer
    held = await csms.expect("MeterValues", since=mark)
    await charger.network(False)
    await csms.wait(lambda: csms.events[-1][0] == "close", timeout=3)
    del csms.answers["MeterValues"]
    return held


def _stamp(call: Call) -> str:
    return str(call.payload["meterValue"][0]["timestamp"])


@pytest.mark.asyncio
async def test_a_message_in_flight_is_sent_again_after_reconnecting(csms: MiniCsms, certs_dir: Path) -> None:
    async with running(csms, certs_dir) as charger:
        held = await _charging_with_a_message_in_flight(csms, charger)
        back = csms.mark()
        await charger.plugout(1)
        await charger.network(True)
        await csms.expect("StopTransaction", since=back, timeout=5)
        again = [c for c in csms.calls("MeterValues", since=back) if _stamp(c) == _stamp(held)]
        assert len(again) == 1, "the MeterValues in flight must be sent again, once"
        first_tx = next(c for c in csms.calls(since=back) if c.action in ("MeterValues", "StopTransaction"))
        assert first_tx is again[0], "it is still the head of the queue: it goes first"


@pytest.mark.asyncio
async def test_loses_in_flight_message_defect(csms: MiniCsms, certs_dir: Path) -> None:
    async with running(csms, certs_dir, defects={"loses-in-flight-message"}) as charger:
        held = await _charging_with_a_message_in_flight(csms, charger)
        back = csms.mark()
        await charger.plugout(1)
        await charger.network(True)
        await csms.expect("StopTransaction", since=back, timeout=5)
        assert not [c for c in csms.calls("MeterValues", since=back) if _stamp(c) == _stamp(held)]
        assert any(reason.startswith("in flight") for _m, reason in charger.tx_queue.dropped)


@pytest.mark.asyncio
async def test_late_queue_flush_variant_delivers_on_its_timer(csms: MiniCsms, certs_dir: Path) -> None:
    delay = 1.5
    async with running(csms, certs_dir, defects={"late-queue-flush"}, late_flush_delay=delay) as charger:
        await _charging_with_a_message_in_flight(csms, charger)
        await charger.plugout(1)
        back = csms.mark()
        await charger.network(True)
        await csms.wait(lambda: any(e[0] == "open" for e in csms.events[back:]), timeout=5)
        opened = time.monotonic()
        await csms.expect("StatusNotification", since=back, timeout=5)  # statuses go at once
        assert not [c for c in csms.calls(since=back) if c.action in ("MeterValues", "StopTransaction")]
        await csms.expect("StopTransaction", since=back, timeout=delay + 5)
        assert time.monotonic() - opened >= delay - 0.2
        await charger.wait_for(lambda: len(charger.tx_queue) == 0, timeout=3)  # the whole queue went out


async def _heartbeats_after_reconnect(certs_dir: Path, defects: set[str]) -> tuple[int, int]:
    """(Heartbeats in 3 s before the cut, in 3 s after the reconnect), at HeartbeatInterval 1 s."""
    csms = await MiniCsms(certs_dir, heartbeat=1).start()
    try:
        async with running(csms, certs_dir, defects=defects) as charger:
            await booted(csms)
            before = csms.mark()
            await csms.wait(lambda: len(csms.calls("Heartbeat", since=before)) >= 2, timeout=4)
            n_before = len(csms.calls("Heartbeat", since=before))
            await charger.network(False)
            await csms.wait(lambda: csms.events[-1][0] == "close", timeout=3)
            back = csms.mark()
            await charger.network(True)
            await csms.wait(lambda: any(e[0] == "open" for e in csms.events[back:]), timeout=5)
            with contextlib.suppress(TimeoutError):
                await csms.wait(lambda: len(csms.calls("Heartbeat", since=back)) >= 2, timeout=3)
            assert not csms.calls("BootNotification", since=back), "a reconnect, not a reboot"
            return n_before, len(csms.calls("Heartbeat", since=back))
    finally:
        await csms.stop()


@pytest.mark.asyncio
async def test_heartbeats_go_on_after_a_reconnect(certs_dir: Path) -> None:
    assert (await _heartbeats_after_reconnect(certs_dir, set()))[1] >= 2


@pytest.mark.asyncio
async def test_no_heartbeat_after_reconnect_defect(certs_dir: Path) -> None:
    before, after = await _heartbeats_after_reconnect(certs_dir, {"no-heartbeat-after-reconnect"})
    assert before >= 2 and after == 0
