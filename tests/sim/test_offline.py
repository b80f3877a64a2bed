"""The transaction message queue (§3.7, §4.7): order, id rewrite, once each, retries."""

from __future__ import annotations

import pytest

from harness.sim.offline import TransactionQueue, TxRef


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
