"""A live status line while the harness waits: the requirement, what it waits for, the time left.

    CFG-2 · waiting for a MeterValues · 41 s left

Certification mode waits minutes for 60 s cadences; without this the screen stays silent. On a terminal the
line is rewritten in place once a second (and erased when the wait ends); in a log (not a terminal, or
CI=true, or the `ci` option) a plain line is printed for waits of more than LONG_WAIT seconds, once they have
lasted LONG_WAIT seconds and then at most every LOG_EVERY seconds. Off with -q. It listens to the session's
waits (harness/session.py WAIT_OBSERVERS); see docs/rules-first-hour.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the session registers this observer; no import at run time
    from harness.waits import Waits

#: Seconds a wait must last (and be bounded beyond) before a log line is printed for it.
LONG_WAIT = 5.0
#: Seconds between two log lines about waits.
LOG_EVERY = 15.0
#: Seconds between two updates of the line on a terminal.
TICK = 1.0
MAX_WHAT = 100  # characters of "what" shown (a long `where` condition is cut)


def status_text(requirements: list[str] | tuple[str, ...], what: str, left: float, test: str = "") -> str:
    """`CFG-2 · waiting for a MeterValues · 41 s left` (the test's name when it names no requirement)."""
    who = "/".join(requirements) or test or "set-up"
    if len(what) > MAX_WHAT:
        what = what[: MAX_WHAT - 1] + "…"
    seconds = max(0, math.ceil(left))
    return f"{who} · waiting for {what} · {seconds} s left"


def _ci(config: pytest.Config) -> bool:
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        return True
    with contextlib.suppress(ValueError, AttributeError):
        return bool(config.getoption("ci", default=False))
    return False


@dataclass
class _Wait:
    what: str
    deadline: float
    started: float
    requirements: tuple[str, ...]
    test: str


@dataclass
class StatusLine:
    """Registered as an observer of the session's waits for the run (the `csms` fixture does it)."""

    config: pytest.Config
    current: Callable[[], tuple[tuple[str, ...], str]]  # (requirement IDs, test name) of the running test
    waits: list[_Wait] = field(default_factory=list)
    _shown: bool = False  # a transient line is on the terminal
    _last_log: float = -math.inf
    _ticker: asyncio.TimerHandle | None = None
    # pytest's progress line (its file, text, column) before the status line went below it
    _saved: tuple[Path | str | int | None, str, int] = (None, "", 0)

    @property
    def enabled(self) -> bool:
        return self.config.get_verbosity() >= 0 and self.config.pluginmanager.get_plugin("terminalreporter") is not None

    @property
    def in_place(self) -> bool:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        return bool(reporter is not None and reporter.isatty and not _ci(self.config))

    # --- the observer ---------------------------------------------------------------------------

    def __call__(self, session: Waits, what: str, seconds: float) -> Callable[[], None] | None:
        if not self.enabled or seconds <= (1.0 if self.in_place else LONG_WAIT):
            return None
        now = time.monotonic()
        requirements, test = self.current()
        wait = _Wait(what, now + seconds, now, requirements, test)
        self.waits.append(wait)
        self._schedule()

        def end() -> None:
            with contextlib.suppress(ValueError):
                self.waits.remove(wait)
            if not self.waits:
                self.erase()
                if self._ticker is not None:
                    self._ticker.cancel()
                    self._ticker = None

        return end

    def _schedule(self) -> None:
        if self._ticker is None:
            with contextlib.suppress(RuntimeError):
                self._ticker = asyncio.get_running_loop().call_later(TICK, self._tick)

    def _tick(self) -> None:
        self._ticker = None
        if not self.waits:
            return
        wait = self.waits[-1]  # the innermost
        now = time.monotonic()
        text = status_text(wait.requirements, wait.what, wait.deadline - now, wait.test)
        if self.in_place:
            self._write("\r" + text + "\x1b[K", transient=True)
        elif now - wait.started >= LONG_WAIT and now - self._last_log >= LOG_EVERY:
            self._last_log = now
            self._write(f"[harness {time.strftime('%H:%M:%S')}] {text}\n", transient=False)
        self._schedule()

    # --- the terminal ---------------------------------------------------------------------------

    def _terminal(self) -> contextlib.AbstractContextManager[object]:
        """pytest's output capture off (fd 1 is captured during a test): the lines reach the terminal."""
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        return capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext()

    def _write(self, text: str, *, transient: bool) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        with self._terminal():
            if transient and not self._shown:
                # The line goes below pytest's progress line, which is left as it is and put back as it was when
                # the line is erased (the cursor goes back to its end).
                self._saved = (reporter.currentfspath, getattr(reporter._tw, "_current_line", ""),
                               reporter._tw.width_of_current_line)
                if self._saved[2]:
                    reporter.write("\n")
            elif not transient:
                reporter.ensure_newline()
            reporter.write(text)
            reporter.flush()
        self._shown = transient

    def erase(self) -> None:
        """Take the in-place line off the terminal (before another line is written)."""
        if self._shown:
            self._shown = False
            reporter = self.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                fspath, line, column = self._saved
                with self._terminal():
                    reporter.write("\r\x1b[K" + (f"\x1b[A\x1b[{column}C" if column else ""))
                    reporter.flush()
                reporter.currentfspath = fspath
                with contextlib.suppress(AttributeError):
                    reporter._tw._current_line = line  # pytest's record of its line, for its [NN%] column

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self.erase()
        self.waits.clear()
