"""The one interface every charger backend implements.

OCPP cannot ask a charger to have an EV plugged in, a card presented or its network cut: those
are physical acts. The harness asks the rig for them through a backend (in-process reference
charger, the HTTP control API of charger-control-api.md, an operator prompt, a shell command).
An act returns once the rig has done it, not once the charger has reported it: suites then
wait for the charger's OCPP messages.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.errors import ActNotSupported, RigError

if TYPE_CHECKING:  # pragma: no cover
    from harness.session import ChargerSession

#: The backends' errors live in harness/errors.py (the reference charger raises them too, without importing
#: the drivers); they are part of this interface.
__all__ = ["ActNotSupported", "ChargerBackend", "EndpointInfo", "RigError", "refuse_if_interrupted"]


def refuse_if_interrupted(act: str) -> None:
    """After Ctrl-C/SIGTERM no rig act starts: a manual prompt would wait for the operator, a rig command for its end
    (a test's `finally` putting the bench back runs while the run is being stopped; docs/rules-first-hour.md)."""
    from harness import interrupt

    by = interrupt.requested()
    if by is not None:
        raise RigError(f"the run was interrupted by {by}: the act '{act}' was not started", act=act)


@dataclass(frozen=True)
class EndpointInfo:
    """What a charger needs to reach the harness's fake ev.energy endpoint."""

    url: str  # wss://host:port/ocpp  (the charger appends /<chargePointId>)
    charger_id: str
    authorization_key: str | None
    ca_file: str
    security_profile: int
    client_cert: tuple[str, str] | None = None  # (cert, key) for security profile 3


class ChargerBackend(abc.ABC):
    """Physical acts on the charger under test. Connector numbers start at 1."""

    name: str = "abstract"
    #: Seconds an act may take that do not count against the test's bound (a person doing it): 0 for a
    #: machine, the prompt timeout for the manual backend.
    act_allowance: float = 0.0

    def attach(self, session: ChargerSession) -> None:  # noqa: B027 - optional hook
        """The harness's view of this charger (its OCPP messages), given before start().

        A backend that watches what the charger reports (the manual backend proceeds once the
        charger's messages show an act happened) keeps it; the others ignore it.
        """

    async def start(self, endpoint: EndpointInfo) -> None:  # noqa: B027 - optional hook
        """Bring the charger up (or just check the rig is reachable)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Release whatever start() took."""

    @abc.abstractmethod
    async def plugin(self, connector: int = 1) -> None:
        """An EV is plugged into the connector (it draws power once allowed)."""

    @abc.abstractmethod
    async def plugout(self, connector: int = 1) -> None:
        """The EV on the connector is unplugged."""

    @abc.abstractmethod
    async def authorize(self, id_tag: str, connector: int = 1) -> None:
        """An RFID card with this idTag is presented at the connector."""

    @abc.abstractmethod
    async def ev_suspend(self, suspended: bool, connector: int = 1) -> None:
        """The EV stops drawing power by itself (True) or resumes (False)."""

    @abc.abstractmethod
    async def fault(self, faulted: bool, connector: int = 1) -> None:
        """A fault is raised on the connector (True) or cleared (False)."""

    @abc.abstractmethod
    async def reboot(self) -> None:
        """The charger is power-cycled."""

    @abc.abstractmethod
    async def network(self, online: bool) -> None:
        """The charger loses (False) or regains (True) its network."""
