"""The reference charger's queue of transaction-related messages (OCPP 1.6 §3.7, §4.7, §4.8).

StartTransaction, StopTransaction and the MeterValues of a transaction are queued in the order
they happen and delivered one at a time, each once, in that order, whether the charger is online
or not. Sans-I/O: the charger takes `head()`, sends `payload_of(head)`, then calls `ack()` with
the answer or `failed()` after a CALLERROR or a timeout.

A transaction started offline has no transactionId until the central system answers its
StartTransaction. Messages of that transaction refer to it by a `TxRef`; their `transactionId`
is filled in when they are sent, from the id assigned by then (so a queued StopTransaction
carries the id the central system gave to the queued StartTransaction before it).
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("harness.sim.offline")

_refs = itertools.count(1)


@dataclass(eq=False)
class TxRef:
    """A transaction as the charger knows it before (and after) the central system numbers it."""

    local_id: int = field(default_factory=lambda: next(_refs))
    transaction_id: int | None = None  # from StartTransaction.conf
    start_failed: bool = False  # the StartTransaction was given up: its id will never be known

    def __repr__(self) -> str:
        return f"TxRef(local={self.local_id}, id={self.transaction_id})"


@dataclass(eq=False)
class QueuedMessage:
    action: str  # StartTransaction, StopTransaction or MeterValues
    payload: dict[str, Any]  # without transactionId where `tx` provides it
    tx: TxRef | None = None
    seq: int = 0  # order of creation (shared with the charger's other outgoing messages)
    attempts: int = 0
    not_before: float = 0.0  # monotonic time before which a retry must not be sent

    def resolved(self) -> dict[str, Any] | None:
        """The payload to send, with the transactionId filled in; None if the id is not known (yet)."""
        if self.action == "StartTransaction" or self.tx is None:
            return dict(self.payload)
        if self.tx.transaction_id is None:
            return None
        return {**self.payload, "transactionId": self.tx.transaction_id}


class TransactionQueue:
    """FIFO of transaction messages; survives disconnects and reboots (the charger keeps the object)."""

    def __init__(self, max_length: int = 10_000) -> None:
        self._items: deque[QueuedMessage] = deque()
        self.max_length = max_length
        self.delivered: list[QueuedMessage] = []  # for diagnostics and tests (bounded below)
        self.dropped: list[tuple[QueuedMessage, str]] = []

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[QueuedMessage]:
        return iter(self._items)

    def push(self, action: str, payload: dict[str, Any], tx: TxRef | None = None, *, seq: int = 0) -> QueuedMessage:
        message = QueuedMessage(action, dict(payload), tx, seq)
        if len(self._items) >= self.max_length:
            # Storage full: the oldest MeterValues go first (Start and Stop matter more for billing).
            for item in self._items:
                if item.action == "MeterValues":
                    self._items.remove(item)
                    self._drop(item, "queue full")
                    break
            else:
                self._drop(self._items.popleft(), "queue full")
        self._items.append(message)
        return message

    def head(self) -> QueuedMessage | None:
        """The next message to send, skipping (dropping) messages whose transaction will never be numbered."""
        while self._items:
            item = self._items[0]
            if item.tx is not None and item.action != "StartTransaction" and item.tx.start_failed:
                self._items.popleft()
                self._drop(item, "its StartTransaction was never accepted")
                continue
            return item
        return None

    def ack(self, message: QueuedMessage, response: dict[str, Any]) -> None:
        """The central system answered `message` (CALLRESULT): remove it; a StartTransaction numbers its TxRef."""
        if not self._items or self._items[0] is not message:
            raise ValueError("ack for a message that is not at the head of the queue")
        self._items.popleft()
        if message.action == "StartTransaction" and message.tx is not None:
            tx_id = response.get("transactionId")
            if isinstance(tx_id, int) and not isinstance(tx_id, bool):
                message.tx.transaction_id = tx_id
            else:
                message.tx.start_failed = True
                log.error("StartTransaction.conf without an integer transactionId: %r", response)
        self.delivered.append(message)
        del self.delivered[:-1000]

    def failed(self, message: QueuedMessage, *, max_attempts: int, retry_interval: float, now: float) -> bool:
        """A CALLERROR or no answer. §4.7: retry after retry_interval x attempts; True if it was given up."""
        message.attempts += 1
        if message.attempts >= max_attempts:
            if self._items and self._items[0] is message:
                self._items.popleft()
            if message.action == "StartTransaction" and message.tx is not None:
                message.tx.start_failed = True
            self._drop(message, f"no success after {message.attempts} attempts")
            return True
        message.not_before = now + retry_interval * message.attempts
        return False

    def requeue(self, message: QueuedMessage) -> None:
        """The connection dropped while `message` was in flight: it stays at the head, not counted as an attempt."""
        message.not_before = 0.0

    def discard(self, message: QueuedMessage, reason: str) -> None:
        """Take `message` off the queue undelivered (only a defect does this to a message in flight)."""
        if message in self._items:
            self._items.remove(message)
            self._drop(message, reason)

    def _drop(self, message: QueuedMessage, reason: str) -> None:
        log.warning("dropping queued %s (%s): %s", message.action, message.tx, reason)
        self.dropped.append((message, reason))
        del self.dropped[:-1000]
