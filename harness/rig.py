"""What suites call for physical acts: a backend plus the memory of what was done, to undo it.

A rig that fails is not a charger that fails (docs/rules-verdicts.md):
- an act the rig cannot perform (HTTP 501, no command for it, the operator skipped it) makes the test
  "not tested" (a skip whose reason names the act), never "failed";
- an act the rig tried and broke on (HTTP 5xx, connection refused, no answer in time, a command's
  non-zero exit) raises RigError naming the act and the rig's answer: the test is an "error" (verdict
  incomplete), never a finding about the charger.
"""

from __future__ import annotations

from collections.abc import Awaitable

import pytest

from harness import bounds
from harness.drivers.base import ActNotSupported, ChargerBackend, RigError
from harness.session import ChargerSession


class Rig:
    def __init__(self, backend: ChargerBackend, session: ChargerSession) -> None:
        self.backend = backend
        self.session = session
        self.plugged: set[int] = set()
        self.faulted: set[int] = set()
        self.suspended: set[int] = set()
        self.offline = False

    async def _act(self, name: str, act: str, coro: Awaitable[None]) -> None:
        """Perform one act. `name` says it for people ("plug EV into connector 1"), `act` is the control
        API's name for it ("plugin", "ev", ...), used when the backend does not name it itself."""
        self.session.trace.event(f"rig: {name}")
        try:
            async with bounds.not_counted(self.backend.act_allowance):
                await coro
        except ActNotSupported as exc:
            which = exc.act or act
            detail = str(exc.args[0]) if exc.args else ""
            prefix = f"the charger rig cannot perform '{exc.act}'"
            detail = detail[len(prefix):].lstrip(": ") if detail.startswith(prefix) else detail
            self.session.trace.event(f"rig: the act '{which}' is not supported: {detail or 'no reason given'}")
            pytest.skip(
                f"not tested: the rig cannot perform the act '{which}' ({name})" + (f": {detail}" if detail else "")
            )
        except RigError as exc:
            which = exc.act or act
            self.session.trace.event(f"rig: the act '{which}' failed: {exc}")
            raise RigError(f"the rig failed to perform the act '{which}' ({name}): {exc}", act=which) from exc

    async def plugin(self, connector: int = 1) -> None:
        await self._act(f"plug EV into connector {connector}", "plugin", self.backend.plugin(connector))
        self.plugged.add(connector)

    async def plugout(self, connector: int = 1) -> None:
        await self._act(f"unplug EV from connector {connector}", "plugout", self.backend.plugout(connector))
        self.plugged.discard(connector)

    async def authorize(self, id_tag: str, connector: int = 1) -> None:
        await self._act(
            f"present idTag {id_tag} at connector {connector}", "authorize", self.backend.authorize(id_tag, connector)
        )

    async def ev_suspend(self, suspended: bool = True, connector: int = 1) -> None:
        word = "pauses" if suspended else "resumes"
        await self._act(f"EV on connector {connector} {word}", "ev", self.backend.ev_suspend(suspended, connector))
        (self.suspended.add if suspended else self.suspended.discard)(connector)

    async def fault(self, faulted: bool = True, connector: int = 1) -> None:
        word = "raise" if faulted else "clear"
        await self._act(f"{word} a fault on connector {connector}", "state", self.backend.fault(faulted, connector))
        (self.faulted.add if faulted else self.faulted.discard)(connector)

    async def reboot(self) -> None:
        await self._act("power-cycle the charger", "reboot", self.backend.reboot())

    async def network(self, online: bool) -> None:
        await self._act("network " + ("on" if online else "off"), "network", self.backend.network(online))
        self.offline = not online

    async def undo(self) -> None:
        """Put the rig back as a test found it: network on, faults cleared, EVs resumed and unplugged."""
        if self.offline:
            await self.backend.network(True)
            self.offline = False
        for connector in sorted(self.faulted):
            await self.backend.fault(False, connector)
        self.faulted.clear()
        for connector in sorted(self.suspended):
            await self.backend.ev_suspend(False, connector)
        self.suspended.clear()
        for connector in sorted(self.plugged):
            await self.backend.plugout(connector)
        self.plugged.clear()
