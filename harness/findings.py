"""The notebook of findings about one charger: violations, advisory findings, the harness's own faults.

A finding is recorded against a trace seq: it belongs to the test during which that seq was written (the plugin
hands each test its slice, `take_findings`). No I/O and no asyncio here: the session records what the
conversation (harness/conversation.py), the platform model (harness/platform.py) and the watches
(harness/watches.py) found.
"""

from __future__ import annotations

import datetime as dt
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.printable import printable

MAX_VIOLATIONS = 500
_MAX_MESSAGE = 1000  # characters of a finding's message (a reason may quote what the charger sent)


@dataclass(frozen=True)
class Finding:
    """Something wrong that a part of the harness saw, not yet recorded (the session records it as a Violation).

    `seq` is the trace seq it belongs to (None: the frame just recorded). An advisory finding has kind
    "advisory" and an ADV-* requirement.
    """

    kind: str
    message: str
    frame: str | bytes = ""
    seq: int | None = None
    requirement: str | None = None
    watched: bool = False


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


class Findings:
    """Every violation and harness fault of one charger, bounded (a flood of bad frames cannot exhaust memory)."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        self.redact = redact
        self.violations: list[Violation] = []
        self.violation_count = 0
        self.watch_findings: list[Violation] = []  # watch findings not yet handed to a test (see take)
        self.harness_faults: list[HarnessFault] = []

    def record(self, kind: str, message: str, frame: str | bytes, at: int, *, requirement: str | None = None,
               watched: bool = False) -> None:
        """Record a violation belonging to the test running at trace seq `at`."""
        self.violation_count += 1
        text = frame if isinstance(frame, str) else f"<binary {len(frame)} bytes>"
        if len(self.violations) < MAX_VIOLATIONS:
            if len(message) > _MAX_MESSAGE:
                message = message[:_MAX_MESSAGE] + f"… ({len(message)} characters)"
            found = Violation(at, dt.datetime.now(dt.timezone.utc), kind, message, self.redact(text[:2000]),
                              requirement, watched)
            self.violations.append(found)
            if watched:
                self.watch_findings.append(found)

    def since(self, seq: int) -> list[Violation]:
        return [v for v in self.violations if v.seq >= seq]

    def take(self, start: int) -> list[Violation]:
        """The violations to fail the current test with: those since `start`, and watch findings not yet
        handed to a test (a finding that arrived between two tests goes to the next one, never lost)."""
        found = self.since(start)
        late = [v for v in self.watch_findings if v.seq < start]
        self.watch_findings = []
        return late + found

    def fault(self, seq: int, wall: dt.datetime, where: str, error: str, exc: BaseException) -> HarnessFault:
        fault = HarnessFault(seq, wall, where, error, "".join(traceback.format_exception(exc)).strip()[-8000:])
        if len(self.harness_faults) < MAX_VIOLATIONS:
            self.harness_faults.append(fault)
        return fault
