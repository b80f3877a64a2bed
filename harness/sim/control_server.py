"""The reference charger's rig: the HTTP control API of docs/reference/charger-control-api.md.

    POST /plugin?connector=N            POST /plugout?connector=N
    POST /authorize?id=TAG&connector=N  POST /ev?connector=N&suspended=true|false
    POST /state?connector=N&faulted=true|false[&errorCode=GroundFailure]
    POST /reboot                        POST /network?online=true|false

200 done (JSON body), 400 bad arguments, 404 unknown path, 405 not POST, 501 the act is not
supported by this rig, 500 the act failed. HTTP is aiohttp's; bodies (the API sends none) are
bounded in size and time; loopback by default. Unknown query parameters are ignored (rigs built
for other tools may add their own); known ones are checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import hdrs, web

from harness import spec16
from harness.errors import ActNotSupported

log = logging.getLogger("harness.sim.control")

MAX_BODY = 64 * 1024  # the API sends empty bodies; anything is read and ignored up to this size
MAX_FIELDS = 32  # query parameters
READ_TIMEOUT = 10.0


class Rig(Protocol):
    """What the server drives: a ReferenceCharger or any ChargerBackend."""

    async def plugin(self, connector: int = 1) -> None: ...
    async def plugout(self, connector: int = 1) -> None: ...
    async def authorize(self, id_tag: str, connector: int = 1) -> None: ...
    async def ev_suspend(self, suspended: bool, connector: int = 1) -> None: ...
    async def fault(self, faulted: bool, connector: int = 1) -> None: ...
    async def reboot(self) -> None: ...
    async def network(self, online: bool) -> None: ...


class BadRequest(ValueError):
    pass


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"'{name}' given {len(values)} times")
    return values[0]


def _connector(query: dict[str, list[str]], connectors: int | None, *, allow_zero: bool = False) -> int:
    raw = _one(query, "connector")
    if raw is None:
        return 1
    if not raw.isdigit() or len(raw) > 4:
        raise BadRequest(f"connector={raw!r} is not a connector number")
    number = int(raw)
    low = 0 if allow_zero else 1
    if number < low or (connectors is not None and number > connectors):
        top = f"..{connectors}" if connectors is not None else " or more"
        raise BadRequest(f"connector={number} does not exist (valid: {low}{top})")
    return number


def _flag(query: dict[str, list[str]], name: str) -> bool:
    raw = _one(query, name)
    if raw is None:
        raise BadRequest(f"'{name}=true' or '{name}=false' is required")
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise BadRequest(f"{name}={raw!r} is not true or false")


class ControlServer:
    """Serves the control API for one charger on host:port (port 0 = any free port)."""

    def __init__(self, rig: Rig, host: str = "127.0.0.1", port: int = 0, *, connectors: int | None = None) -> None:
        self.rig = rig
        self.host = host
        self.port = port
        self.connectors = connectors if connectors is not None else _connectors_of(rig)
        self._runner: web.AppRunner | None = None
        self._lock = asyncio.Lock()  # one act at a time, as a physical rig does them
        self.acts: list[str] = []  # what was done, for tests and logs
        self._routes: dict[str, Callable[[dict[str, list[str]]], Awaitable[str]]] = {
            "/plugin": self._plugin,
            "/plugout": self._plugout,
            "/authorize": self._authorize,
            "/ev": self._ev,
            "/state": self._state,
            "/reboot": self._reboot,
            "/network": self._network,
        }

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> ControlServer:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{path:.*}", self._request)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]
        log.info("control API on %s", self.url)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> ControlServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- HTTP ---------------------------------------------------------------------------------

    async def _request(self, request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                await request.read()  # the API has no body; read it (bounded) to keep the connection sane
        except web.HTTPRequestEntityTooLarge:
            return _answer(413, {"error": f"body larger than {MAX_BODY} bytes"})
        except TimeoutError:
            return _answer(408, {"error": "request not received in time"})
        status, body = await self._dispatch(request)
        return _answer(status, body)

    async def _dispatch(self, request: web.Request) -> tuple[int, dict[str, Any]]:
        handler = self._routes.get(request.path.rstrip("/") or "/")
        if handler is None:
            return 404, {"error": f"no such call {request.path}; calls: {', '.join(self._routes)}"}
        if request.method != "POST":
            return 405, {"error": f"{request.path} takes POST, not {request.method}"}
        if len(request.query) > MAX_FIELDS:
            return 400, {"error": f"bad query string: more than {MAX_FIELDS} parameters"}
        query = {name: request.query.getall(name) for name in request.query}
        try:
            async with self._lock:
                done = await handler(query)
        except BadRequest as exc:
            return 400, {"error": str(exc)}
        except ActNotSupported as exc:
            return 501, {"error": str(exc)}
        except ValueError as exc:  # the charger refused the arguments (e.g. no such connector)
            return 400, {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001
            log.exception("act %s failed", request.path)
            return 500, {"error": f"{type(exc).__name__}: {exc}"}
        self.acts.append(done)
        log.info("rig: %s", done)
        return 200, {"ok": True, "done": done}

    # --- the acts -------------------------------------------------------------------------------

    async def _plugin(self, q: dict[str, list[str]]) -> str:
        connector = _connector(q, self.connectors)
        await self.rig.plugin(connector)
        return f"EV plugged into connector {connector}"

    async def _plugout(self, q: dict[str, list[str]]) -> str:
        connector = _connector(q, self.connectors)
        await self.rig.plugout(connector)
        return f"EV unplugged from connector {connector}"

    async def _authorize(self, q: dict[str, list[str]]) -> str:
        tag = _one(q, "id")
        if not tag:
            raise BadRequest("'id' (the idTag) is required")
        if len(tag) > 20:
            raise BadRequest(f"id={tag!r} is longer than 20 characters (IdToken)")
        connector = _connector(q, self.connectors)
        await self.rig.authorize(tag, connector)
        return f"idTag {tag} presented at connector {connector}"

    async def _ev(self, q: dict[str, list[str]]) -> str:
        suspended = _flag(q, "suspended")
        connector = _connector(q, self.connectors)
        await self.rig.ev_suspend(suspended, connector)
        return f"EV on connector {connector} {'suspended' if suspended else 'resumed'}"

    async def _state(self, q: dict[str, list[str]]) -> str:
        faulted = _flag(q, "faulted")
        connector = _connector(q, self.connectors, allow_zero=True)
        code = _one(q, "errorCode")
        if code is not None:
            if code not in spec16.FAULT_ERROR_CODES:
                raise BadRequest(f"errorCode={code!r} is not a ChargePointErrorCode (other than NoError)")
            # Only some rigs can choose the code (the ReferenceCharger's fault() takes it; the Rig protocol's does
            # not): called through a loose signature, and a rig that cannot take it raises TypeError.
            fault: Callable[..., Awaitable[None]] = self.rig.fault
            try:
                await fault(faulted, connector, error_code=code)
            except TypeError:
                raise BadRequest("this rig cannot choose the error code") from None
        else:
            await self.rig.fault(faulted, connector)
        return f"fault {'raised' if faulted else 'cleared'} on connector {connector}"

    async def _reboot(self, q: dict[str, list[str]]) -> str:
        await self.rig.reboot()
        return "charger power-cycled"

    async def _network(self, q: dict[str, list[str]]) -> str:
        online = _flag(q, "online")
        await self.rig.network(online)
        return f"network {'restored' if online else 'cut'}"


def _answer(status: int, body: dict[str, Any]) -> web.Response:
    response = web.json_response(body, status=status)
    if status == 405:
        response.headers[hdrs.ALLOW] = "POST"
    return response


def _connectors_of(rig: object) -> int | None:
    model = getattr(rig, "model", None)
    connectors = getattr(model, "connectors", None)
    return len(connectors) if connectors is not None else None
