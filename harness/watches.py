"""Watches: CALLs the charger must not send, checked as frames arrive instead of by waiting (`ChargerSession.forbid`).

The negative half of a check ("and then it sends no Installing") needs an observation window. Instead of sleeping
through it, the test sets a watch and ends; every later CALL is checked as it arrives, for the watch's life (or until
the platform sends one of its `until_sent`, or the connection drops), and a match is a finding for the test it arrives
in, filed under the requirement of the test that set it. The window is still honoured: `settle_at` is when the setting
test would otherwise have stopped waiting, and the session does not leave a watch before it (`settle_watches`).

No I/O, no asyncio and no clock here: the session passes `now` (monotonic seconds) in. Also here: how `expect` and
`forbid` match a CALL (`matcher`) and say what they look for (`describe`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from harness import ocppj
from harness.conversation import ReceivedCall
from harness.findings import Finding

Where = Mapping[str, Any] | Callable[[ReceivedCall], bool] | None


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

    def found(self, call: ReceivedCall, *, current: bool) -> Finding:
        """The finding a matching CALL makes: the setting test's own (`current`) or, later, the running test's."""
        origin = "" if current or not self.origin else f" (watched since {self.origin})"
        return Finding(
            f"{self.requirement} watch",
            f"{self.what}{origin}; it sent {call.action} {ocppj.encode_json(call.payload)}",
            ocppj.encode_json([2, call.unique_id, call.action, call.payload]),
            seq=call.seq, requirement=self.requirement, watched=not current,
        )


class Watches:
    """The open watches of one charger."""

    def __init__(self) -> None:
        self._open: list[Watch] = []

    def __bool__(self) -> bool:
        return bool(self._open)

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[Watch]:
        return iter(self._open)

    def add(self, watch: Watch, arrived: Iterable[ReceivedCall]) -> Finding | None:
        """Open `watch`; `arrived` is what the charger already sent since the watch's start. A match there is the
        current test's finding at once (the watch then ends)."""
        for call in arrived:
            if watch.match(call):
                return watch.found(call, current=True)
        self._open.append(watch)
        return None

    def check(self, call: ReceivedCall, now: float, mark: int) -> list[Finding]:
        """A CALL just arrived: the findings of the watches it trips (each ends). `mark` is the running test's start:
        a watch set since then is still that test's own."""
        if not self._open:
            return []
        found: list[Finding] = []
        keep: list[Watch] = []
        for watch in self._open:
            if watch.expires_at <= now:
                continue
            if watch.action == call.action and call.seq >= watch.since and watch.match(call):
                found.append(watch.found(call, current=watch.since >= mark))  # still the setting test?
                continue
            keep.append(watch)
        self._open = keep
        return found

    def end(self, *, sent: str | None = None, disconnected: bool = False) -> None:
        """The platform sent `sent`, or the connection dropped: the watches that last until then end."""
        if self._open:
            self._open = [w for w in self._open
                          if not ((sent is not None and sent in w.until_sent) or (disconnected and w.until_disconnect))]

    def pending(self, now: float) -> list[float]:
        """Drop the expired watches; when the open ones' windows end (those still to come)."""
        self._open = [w for w in self._open if w.expires_at > now]
        return [w.settle_at for w in self._open if w.settle_at > now]


def matcher(where: Where) -> Callable[[ReceivedCall], bool]:
    if where is None:
        return lambda _call: True
    if callable(where):
        def safe(call: ReceivedCall) -> bool:
            try:
                return bool(where(call))
            except Exception:  # noqa: BLE001 - a malformed payload simply does not match
                return False

        return safe
    expected = dict(where)
    return lambda call: all(call.payload.get(k) == v for k, v in expected.items())


def describe(action: str, where: Where) -> str:
    if where is None:
        return f"a {action}"
    if callable(where):
        doc = getattr(where, "__doc__", None) or getattr(where, "__name__", "a condition")
        return f"a {action} matching {doc}"
    return f"a {action} with " + ", ".join(f"{k}={v!r}" for k, v in where.items())
