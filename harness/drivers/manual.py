"""`--charger manual`: the operator performs each physical act, prompted in the terminal.

    [harness] ACT  Plug the EV into connector 1
    [harness]      goes on by itself once the charger sends a StatusNotification Preparing, Charging,
                   SuspendedEV or SuspendedEVSE on connector 1; Enter = done, s + Enter = skip (...)
    [harness]      180 s left
    [harness]      seen: StatusNotification Preparing on connector 1

Each prompt has a countdown (the timeout comes from the charger profile's [rig.manual]
prompt_timeout, times the timeout factor). It ends as soon as the charger's OCPP messages since
the prompt show the act happened, or when the operator presses Enter; `s` + Enter skips the act
(ActNotSupported: the test becomes "not tested"); no sign and no answer before the countdown ends
is a RigError.

Prompts work under pytest's output capture: while one is shown, capture is suspended (stdin
included, as pdb does), and stdin is read with the event loop's add_reader so the endpoint keeps
serving the charger meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import stat
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from harness.drivers.base import ActNotSupported, ChargerBackend, EndpointInfo, RigError, refuse_if_interrupted
from harness.timing import DEFAULT_PROMPT_TIMEOUT

if TYPE_CHECKING:  # pragma: no cover
    import pytest

    from harness.session import ChargerSession

SKIP_WORDS = ("s", "skip")
PLUGGED = ("Preparing", "Charging", "SuspendedEV", "SuspendedEVSE")
POLL = 0.2  # seconds between looks at the charger's messages (and countdown updates)


# --- where prompts go and answers come from -----------------------------------------------------


class Console:
    """The operator's terminal. Subclasses decide where lines go and how capture is handled."""

    input_fd: int = 0
    interactive: bool = False  # a terminal: the countdown is rewritten in place

    def show(self, line: str) -> None:
        raise NotImplementedError

    def countdown(self, text: str) -> None:
        """A transient status line (rewritten in place on a terminal)."""
        self.show(text)

    def end_countdown(self) -> None:
        return None

    @contextlib.contextmanager
    def operator(self) -> Iterator[None]:
        """The terminal belongs to the operator while the block runs."""
        yield


class StreamConsole(Console):
    """Plain streams (tests, or use outside pytest)."""

    def __init__(self, out: TextIO | None = None, input_fd: int | None = None) -> None:
        self.out = out or sys.stdout
        self.input_fd = sys.stdin.fileno() if input_fd is None else input_fd
        self.interactive = bool(getattr(self.out, "isatty", lambda: False)()) and os.isatty(self.input_fd)
        self._transient = False

    def show(self, line: str) -> None:
        self.end_countdown()
        self.out.write(line + "\n")
        self.out.flush()

    def countdown(self, text: str) -> None:
        if self.interactive:
            self.out.write("\r" + text + "\x1b[K")
            self.out.flush()
            self._transient = True
        else:
            self.show(text)

    def end_countdown(self) -> None:
        if self._transient:
            self.out.write("\n")
            self.out.flush()
            self._transient = False


class PytestConsole(Console):
    """pytest's terminal: writes through the terminal reporter, with output capture suspended."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.input_fd = 0
        self.interactive = False  # known once the operator has the terminal (fd 0 is captured until then)
        self._transient = False

    @property
    def _reporter(self) -> pytest.TerminalReporter | None:
        return self.config.pluginmanager.get_plugin("terminalreporter")

    @contextlib.contextmanager
    def operator(self) -> Iterator[None]:
        capman = self.config.pluginmanager.get_plugin("capturemanager")
        if capman is None:
            reporter = self._reporter
            self.interactive = bool(reporter is not None and reporter.isatty) and _isatty(self.input_fd)
            yield
            return
        with capman.global_and_fixture_disabled():
            # global_and_fixture_disabled() leaves stdin captured (fd 0 on /dev/null): like pdb,
            # give the operator stdin too. Capture (stdin included) resumes when the block ends.
            capman.suspend_global_capture(in_=True)
            reporter = self._reporter
            self.interactive = bool(reporter is not None and reporter.isatty) and _isatty(self.input_fd)
            if reporter is not None:
                with contextlib.suppress(Exception):
                    reporter.ensure_newline()
            try:
                yield
            finally:
                self.end_countdown()

    def show(self, line: str) -> None:
        reporter = self._reporter
        self.end_countdown()
        if reporter is None:
            print(line, flush=True)
            return
        reporter.write_line(line)
        reporter.flush()

    def countdown(self, text: str) -> None:
        reporter = self._reporter
        if reporter is None or not self.interactive:
            self.show(text)
            return
        reporter.rewrite(text, erase=True)
        reporter.flush()
        self._transient = True

    def end_countdown(self) -> None:
        if self._transient:
            self._transient = False
            reporter = self._reporter
            if reporter is not None:
                reporter.write("\n")
                reporter.flush()


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


class _LineReader:
    """Lines typed by the operator, read without blocking the event loop.

    Lines that arrive between prompts are kept for the next one (scripted stdin), except on a
    terminal, where keys pressed before a prompt was shown are discarded.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lines: deque[str] = deque()
        self.eof = False
        self._partial = bytearray()
        self._arrived = asyncio.Event()
        self._listening = False
        self._thread_read: asyncio.Future[bytes] | None = None
        self._mode: str | None = None  # "reader", "file" or "thread"

    def _feed(self, data: bytes) -> None:
        if not data:
            self.eof = True
            if self._partial:
                self.lines.append(self._partial.decode("utf-8", "replace"))
                self._partial.clear()
        else:
            self._partial += data
            while b"\n" in self._partial:
                line, _, rest = bytes(self._partial).partition(b"\n")
                self._partial = bytearray(rest)
                self.lines.append(line.decode("utf-8", "replace").rstrip("\r"))
        self._arrived.set()

    def discard_typed_ahead(self) -> None:
        if not _isatty(self.fd):
            return
        self.lines.clear()
        self._partial.clear()
        with contextlib.suppress(Exception):
            import termios

            termios.tcflush(self.fd, termios.TCIFLUSH)

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        self._mode = "reader"
        try:
            mode = os.fstat(self.fd).st_mode
            if stat.S_ISREG(mode):
                self._mode = "file"  # reads from a file never block (and epoll refuses files)
        except OSError:
            self.eof = True
        if self._mode == "reader" and not self.eof:
            try:
                loop.add_reader(self.fd, self._readable)
                self._listening = True
            except (NotImplementedError, ValueError, OSError):
                self._mode = "thread"
        try:
            yield
        finally:
            if self._listening:
                loop.remove_reader(self.fd)
                self._listening = False

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        self._feed(data)
        if self.eof and self._listening:
            asyncio.get_running_loop().remove_reader(self.fd)
            self._listening = False

    async def line(self, within: float) -> str | None:
        """The next line, or None if none arrives within `within` seconds (or stdin is at its end)."""
        if self.lines:
            return self.lines.popleft()
        if self.eof:
            await asyncio.sleep(within)
            return None
        if self._mode == "file":
            try:
                self._feed(os.read(self.fd, 4096))
            except OSError:
                self._feed(b"")
            if not self.lines:
                await asyncio.sleep(within)
            return self.lines.popleft() if self.lines else None
        if self._mode == "thread":
            if self._thread_read is None or self._thread_read.done():
                loop = asyncio.get_running_loop()
                self._thread_read = loop.run_in_executor(None, os.read, self.fd, 4096)
            done, _ = await asyncio.wait({self._thread_read}, timeout=within)
            if done:
                try:
                    self._feed(self._thread_read.result())
                except OSError:
                    self._feed(b"")
                self._thread_read = None
            return self.lines.popleft() if self.lines else None
        self._arrived.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._arrived.wait(), within)
        return self.lines.popleft() if self.lines else None


# --- the acts and the evidence that they happened -----------------------------------------------


@dataclass
class _Act:
    name: str  # the backend method, for ActNotSupported
    instruction: str  # what the operator is asked to do
    evidence: str  # what the harness watches for, as a clause ("the charger sends a BootNotification")
    seen: Callable[[int], str | None]  # since the prompt's mark: a description of the evidence, or None


def _statuses(session: ChargerSession, since: int, connectors: tuple[int, ...], wanted: Callable[[str], bool]) -> str | None:
    for call in session.received("StatusNotification", since=since):
        connector, status = call.get("connectorId"), call.get("status")
        if connector in connectors and isinstance(status, str) and wanted(status):
            return f"StatusNotification {status} on connector {connector}"
    return None


class ManualBackend(ChargerBackend):
    name = "manual"

    def __init__(self, console: Console | None = None, *, timeout: float = DEFAULT_PROMPT_TIMEOUT, charger_id: str = "") -> None:
        self.console = console or StreamConsole()
        self.timeout = timeout
        self.charger_id = charger_id
        self.session: ChargerSession | None = None
        self._reader: _LineReader | None = None
        self._lock = asyncio.Lock()
        self.history: list[tuple[str, str]] = []  # (act, outcome: "seen …" / "confirmed" / "skipped" / "timed out")
        self.act_allowance = timeout  # the operator's time is not the charger's (harness/bounds.py)

    def attach(self, session: ChargerSession) -> None:
        self.session = session

    async def start(self, endpoint: EndpointInfo) -> None:
        self.charger_id = self.charger_id or endpoint.charger_id
        with self.console.operator():
            self.console.show(
                f"[harness] manual rig: you will be asked for physical acts on charger {self.charger_id!r}. "
                f"Each prompt waits up to {self.timeout:g} s and goes on by itself once the charger's OCPP "
                "messages show the act happened; press Enter when you have done it, or type s + Enter to "
                "skip an act you cannot do (the test that needs it becomes 'not tested')."
            )

    # --- the acts ------------------------------------------------------------------------------

    async def plugin(self, connector: int = 1) -> None:
        await self._prompt(
            _Act(
                "plugin",
                f"Plug the EV into connector {connector}",
                f"the charger sends a StatusNotification {', '.join(PLUGGED[:-1])} or {PLUGGED[-1]} on connector {connector}",
                lambda since: self._status(since, (connector,), lambda s: s in PLUGGED),
            )
        )

    async def plugout(self, connector: int = 1) -> None:
        await self._prompt(
            _Act(
                "plugout",
                f"Unplug the EV from connector {connector}",
                f"the charger sends a StatusNotification Available or Finishing on connector {connector}",
                lambda since: self._status(since, (connector,), lambda s: s in ("Available", "Finishing")),
            )
        )

    async def authorize(self, id_tag: str, connector: int = 1) -> None:
        def seen(since: int) -> str | None:
            session = self._session()
            for action in ("Authorize", "StartTransaction"):
                for call in session.received(action, since=since):
                    if call.get("idTag") == id_tag:
                        return f"{action} with idTag {id_tag}"
            return None

        await self._prompt(
            _Act(
                "authorize",
                f"Present the RFID card with idTag {id_tag} at connector {connector}",
                f"the charger sends an Authorize or StartTransaction with idTag {id_tag}",
                seen,
            )
        )

    async def ev_suspend(self, suspended: bool, connector: int = 1) -> None:
        if suspended:
            act = _Act(
                "ev_suspend",
                f"Make the EV on connector {connector} stop drawing power by itself (pause charging in the EV or its app)",
                f"the charger sends a StatusNotification SuspendedEV on connector {connector}",
                lambda since: self._status(since, (connector,), lambda s: s == "SuspendedEV"),
            )
        else:
            act = _Act(
                "ev_suspend",
                f"Make the EV on connector {connector} resume drawing power",
                f"the charger sends a StatusNotification Charging or SuspendedEVSE on connector {connector}",
                lambda since: self._status(since, (connector,), lambda s: s in ("Charging", "SuspendedEVSE")),
            )
        await self._prompt(act)

    async def fault(self, faulted: bool, connector: int = 1) -> None:
        if faulted:
            act = _Act(
                "fault",
                f"Raise a fault on connector {connector} (e.g. press the RCD test button, or open the CP line)",
                f"the charger sends a StatusNotification Faulted on connector {connector} (or 0)",
                lambda since: self._status(since, (connector, 0), lambda s: s == "Faulted"),
            )
        else:
            act = _Act(
                "fault",
                f"Clear the fault on connector {connector}",
                f"the charger sends a StatusNotification other than Faulted on connector {connector}",
                lambda since: self._status(since, (connector,), lambda s: s != "Faulted"),
            )
        await self._prompt(act)

    async def reboot(self) -> None:
        await self._prompt(
            _Act(
                "reboot",
                "Power-cycle the charger (switch it off, wait a few seconds, switch it on)",
                "the charger sends a BootNotification",
                lambda since: "BootNotification" if self._session().received("BootNotification", since=since) else None,
            )
        )

    async def network(self, online: bool) -> None:
        session = self.session
        was_connected = session is not None and session.connected
        connections = session.connections if session is not None else 0
        if online:
            def seen(since: int) -> str | None:
                s = self._session()
                if s.connected and (not was_connected or s.connections > connections):
                    return "the charger connected again"
                return None

            act = _Act(
                "network",
                "Restore the charger's network (plug the cable back in, switch the access point or modem on)",
                "the charger connects again",
                seen,
            )
        else:
            act = _Act(
                "network",
                "Cut the charger's network (unplug its Ethernet cable, switch off its WiFi access point or modem)",
                "the charger's connection drops",
                lambda since: None if self._session().connected else "the charger disconnected",
            )
        await self._prompt(act)

    # --- prompting -----------------------------------------------------------------------------

    def _session(self) -> ChargerSession:
        assert self.session is not None
        return self.session

    def _status(self, since: int, connectors: tuple[int, ...], wanted: Callable[[str], bool]) -> str | None:
        return _statuses(self._session(), since, connectors, wanted)

    async def _prompt(self, act: _Act) -> None:
        refuse_if_interrupted(act.name)
        async with self._lock:  # one act at a time: the operator has two hands
            await self._ask(act)

    async def _ask(self, act: _Act) -> None:
        console = self.console
        session = self.session
        since = session.trace.next_seq if session is not None else 0
        seen = act.seen if session is not None else (lambda _since: None)
        if self._reader is None or self._reader.fd != console.input_fd:
            self._reader = _LineReader(console.input_fd)
        reader = self._reader
        deadline = time.monotonic() + self.timeout
        how = f"goes on by itself once {act.evidence}; " if session is not None else ""
        with console.operator(), reader.listening():
            reader.discard_typed_ahead()
            console.show(f"[harness] ACT  {act.instruction}")
            console.show(f"[harness]      {how}Enter = done, s + Enter = skip (the test becomes 'not tested')")
            last_shown: int | None = None
            while True:
                evidence = seen(since)
                if evidence:
                    console.show(f"[harness]      seen: {evidence}")
                    self.history.append((act.name, f"seen {evidence}"))
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    console.show(f"[harness]      no sign of it within {self.timeout:g} s")
                    self.history.append((act.name, "timed out"))
                    raise RigError(
                        f"manual rig: '{act.instruction}' did not happen within {self.timeout:g} s: "
                        + (f"the charger's messages did not show it (waiting until {act.evidence}), " if session is not None else "")
                        + "and nobody pressed Enter"
                    )
                seconds = math.ceil(left)
                if seconds != last_shown and (console.interactive or _milestone(seconds, self.timeout)):
                    console.countdown(f"[harness]      {seconds} s left")
                    last_shown = seconds
                line = await reader.line(min(POLL, left))
                if line is None:
                    continue
                answer = line.strip().lower()
                if answer in SKIP_WORDS:
                    console.show("[harness]      skipped by the operator")
                    self.history.append((act.name, "skipped"))
                    raise ActNotSupported(act.name, f"the operator skipped '{act.instruction}'")
                evidence = seen(since)
                console.show("[harness]      done (Enter)" + (f"; seen: {evidence}" if evidence else ""))
                self.history.append((act.name, "confirmed"))
                return


def _milestone(seconds: int, total: float) -> bool:
    """Countdown lines for a non-terminal (a log): the start, every 30 s, then the last 10 s by fives."""
    return seconds >= math.ceil(total) or seconds % 30 == 0 or seconds in (10, 5)
