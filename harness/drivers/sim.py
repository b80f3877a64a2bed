"""The `sim` charger backend: the built-in reference charger, in process, on the running event loop."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Any

from harness.drivers.base import ChargerBackend, EndpointInfo, RigError
from harness.sim.charger import ReferenceCharger, SimConfig
from harness.sim.defects import validate


class SimBackend(ChargerBackend):
    """Physical acts go straight to a ReferenceCharger; `knobs` are SimConfig fields (e.g. heartbeat_interval)."""

    name = "sim"

    def __init__(self, *, defects: Iterable[str] = (), connectors: int = 1, phases: int = 3, **knobs: Any) -> None:
        self.defects = validate(defects)
        self.connectors = connectors
        self.phases = phases
        self.knobs = knobs
        self.charger: ReferenceCharger | None = None

    async def start(self, endpoint: EndpointInfo) -> None:
        if self.charger is not None:
            await self.charger.stop()
        config = SimConfig(
            url=endpoint.url,
            charge_point_id=endpoint.charger_id,
            authorization_key=endpoint.authorization_key,
            ca_file=endpoint.ca_file,
            client_cert=endpoint.client_cert,
            security_profile=endpoint.security_profile,
            connectors=self.connectors,
            phases=self.phases,
            defects=self.defects,
            **self.knobs,
        )
        self.charger = ReferenceCharger(config)
        await self.charger.start()

    async def stop(self) -> None:
        if self.charger is not None:
            await self.charger.stop()
            self.charger = None

    def _sim(self) -> ReferenceCharger:
        if self.charger is None:
            raise RigError("the reference charger is not running (SimBackend.start was not called)")
        return self.charger

    async def _do(self, act: Awaitable[None]) -> None:
        try:
            await act
        except ValueError as exc:  # e.g. a connector this charger does not have
            raise RigError(f"the reference charger refused the act: {exc}") from None

    async def plugin(self, connector: int = 1) -> None:
        await self._do(self._sim().plugin(connector))

    async def plugout(self, connector: int = 1) -> None:
        await self._do(self._sim().plugout(connector))

    async def authorize(self, id_tag: str, connector: int = 1) -> None:
        await self._do(self._sim().authorize(id_tag, connector))

    async def ev_suspend(self, suspended: bool, connector: int = 1) -> None:
        await self._do(self._sim().ev_suspend(suspended, connector))

    async def fault(self, faulted: bool, connector: int = 1) -> None:
        await self._do(self._sim().fault(faulted, connector))

    async def reboot(self) -> None:
        await self._do(self._sim().reboot())

    async def network(self, online: bool) -> None:
        await self._do(self._sim().network(online))
