"""Ctrl-C and SIGTERM end a certification run at once, with a report (docs/rules-first-hour.md).

- The first SIGINT or SIGTERM raises KeyboardInterrupt in the main thread, wherever the run is (a test
  waiting for a frame, a manual prompt waiting for Enter, a rig command or HTTP act in progress); while the
  event loop runs, from a callback of the loop, never inside a task (see _handler): pytest
  stops, the tear-downs see :func:`requested` and skip what would wait on the charger, the rig or the
  operator, and the report is written as "incomplete (interrupted)" with everything gathered so far.
- A second signal exits at once (exit status 2, pytest's "interrupted"), after writing the report from what
  the run has gathered (the callbacks registered with :func:`on_second`), if the first did not get there.

The handler is installed by the harness plugin for the controller process only (pytest-xdist workers keep
Python's own: the controller stops them).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

#: pytest's exit status for an interrupted run.
EXIT_INTERRUPTED = 2

#: What signal.getsignal() gives back and signal.signal() takes (typeshed's private signal._HANDLER).
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

_requested: str | None = None
_count = 0
_stack: list[dict[signal.Signals, _Handler]] = []  # the handlers each install() replaced (nested in-process runs)
_second: list[Callable[[], None]] = []

_NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


def requested() -> str | None:
    """What interrupted the run ("Ctrl-C (SIGINT)", "SIGTERM"), or None while it goes on."""
    return _requested


def on_second(callback: Callable[[], None]) -> None:
    """Run `callback` (best effort) before a second signal ends the process."""
    _second.append(callback)


def _handler(signum: int, frame: FrameType | None) -> None:
    global _requested, _count
    _count += 1
    name = _NAMES.get(signal.Signals(signum), f"signal {signum}")
    if _count == 1:
        _requested = name
        loop = asyncio._get_running_loop()  # the loop running in this (the main) thread, if any
        if loop is not None and not loop.is_closed():
            # Not raised here, in whatever task step the signal fell: that task would keep the KeyboardInterrupt
            # and raise it again at whoever awaits it (a tear-down), out of pytest's handling. Raised from a
            # plain callback of the loop instead, it leaves run_until_complete at once and no task keeps it.
            loop.call_soon_threadsafe(_raise, name)
            return
        raise KeyboardInterrupt(f"interrupted by {name}")
    # A second signal: no more waiting for anything.
    for callback in list(_second):
        try:
            callback()
        except BaseException:  # noqa: BLE001 - exiting anyway; the report is best effort here
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.write(f"\n[harness] {name} again: stopped at once (exit status {EXIT_INTERRUPTED})\n")
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(EXIT_INTERRUPTED)


def _raise(name: str) -> None:
    raise KeyboardInterrupt(f"interrupted by {name}")


def install() -> None:
    """Take SIGINT and SIGTERM (main thread only; a no-op elsewhere)."""
    global _requested, _count
    if threading.current_thread() is not threading.main_thread():
        return
    _requested, _count = None, 0
    _second.clear()
    _stack.append({sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)})
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _handler)


def uninstall() -> None:
    """Give the signals back (the run is over)."""
    if threading.current_thread() is not threading.main_thread() or not _stack:
        return
    for sig, previous in _stack.pop().items():
        try:
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        except (TypeError, ValueError):
            pass
    _second.clear()


@contextlib.contextmanager
def waking(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """While the block runs, a signal wakes `loop` at once.

    Python runs a signal handler in the main thread, when it next executes bytecode. A signal the kernel hands
    to another thread (the run has some: executors, the reference charger's) leaves the main thread asleep in
    the event loop's select() until its next timer, up to a second or more later. A wake-up fd the loop
    watches ends that sleep (asyncio's own add_signal_handler works the same way)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)

    def drain() -> None:
        with contextlib.suppress(OSError):
            reader.recv(4096)

    try:
        previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except (ValueError, OSError):
        reader.close()
        writer.close()
        yield
        return
    loop.add_reader(reader.fileno(), drain)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            loop.remove_reader(reader.fileno())
        with contextlib.suppress(ValueError, OSError):
            signal.set_wakeup_fd(previous)
        reader.close()
        writer.close()
