"""The reference charger's rig: the HTTP control API of docs/reference/charger-control-api.md.

    POST /plugin?connector=N            POST /plugout?connector=N
    POST /authorize?id=TAG&connector=N  POST /ev?connector=N&suspended=true|false
    POST /state?connector=N&faulted=true|false[&errorCode=GroundFailure]
    POST /reboot                        POST /network?online=true|false

200 done (JSON body), 400 bad arguments, 404 unknown path, 405 not POST, 501 the act is not
supported by this rig, 500 the act failed. A deliberately small HTTP/1.1 server: one request per
connection, bounded sizes and times, loopback by default. Unknown query parameters are ignored
(rigs built for other tools may add their own); known ones are checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from harness import spec16
from harness.drivers.base import ActNotSupported

log = logging.getLogger("harness.sim.control")

MAX_HEAD = 16 * 1024  # request line + headers
MAX_BODY = 64 * 1024  # the API sends empty bodies; anything is read and ignored up to this size
READ_TIMEOUT = 10.0
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
            411: "Length Required", 413: "Content Too Large", 431: "Request Header Fields Too Large",
            500: "Internal Server Error", 501: "Not Implemented", 505: "HTTP Version Not Supported"}


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


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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
        self._server: asyncio.Server | None = None
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
        self._server = await asyncio.start_server(self._connection, self.host, self.port, limit=MAX_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("control API on %s", self.url)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> ControlServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- HTTP ---------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(READ_TIMEOUT):
                    method, target, headers = await self._read_head(reader)
                    await self._read_body(reader, headers)
                status, body = await self._dispatch(method, target)
            except _HttpError as exc:
                status, body = exc.status, {"error": str(exc)}
            except TimeoutError:
                status, body = 408, {"error": "request not received in time"}
            extra = {"Allow": "POST"} if status == 405 else {}
            await self._respond(writer, status, body, extra)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # noqa: BLE001 - one bad connection must not stop the rig
            log.exception("control API connection failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_head(self, reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _HttpError(431, f"request head larger than {MAX_HEAD} bytes") from None
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise
            raise _HttpError(400, "incomplete request") from None
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes everything
            raise _HttpError(400, "undecodable request") from None
        lines = text.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise _HttpError(400, "malformed request line")
        method, target, version = parts
        if not version.startswith("HTTP/1."):
            raise _HttpError(505, f"{version} not supported")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _HttpError(400, "malformed header line")
            headers[name.lower()] = value.strip()
        if len(headers) > 100:
            raise _HttpError(431, "too many headers")
        return method, target, headers

    async def _read_body(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> None:
        if "transfer-encoding" in headers:
            raise _HttpError(411, "send the (empty) body with Content-Length")
        raw = headers.get("content-length", "0")
        if not raw.isdigit():
            raise _HttpError(400, "bad Content-Length")
        length = int(raw)
        if length > MAX_BODY:
            raise _HttpError(413, f"body larger than {MAX_BODY} bytes")
        if length:
            await reader.readexactly(length)  # the API has no body; read it to keep the connection sane

    async def _dispatch(self, method: str, target: str) -> tuple[int, dict[str, Any]]:
        parts = urllib.parse.urlsplit(target)
        handler = self._routes.get(parts.path.rstrip("/") or "/")
        if handler is None:
            return 404, {"error": f"no such call {parts.path}; calls: {', '.join(self._routes)}"}
        if method != "POST":
            return 405, {"error": f"{parts.path} takes POST, not {method}"}
        try:
            query = urllib.parse.parse_qs(parts.query, keep_blank_values=True, max_num_fields=32)
        except ValueError as exc:
            return 400, {"error": f"bad query string: {exc}"}
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
            log.exception("act %s failed", parts.path)
            return 500, {"error": f"{type(exc).__name__}: {exc}"}
        self.acts.append(done)
        log.info("rig: %s", done)
        return 200, {"ok": True, "done": done}

    async def _respond(self, writer: asyncio.StreamWriter, status: int, body: dict[str, Any],
                       extra: dict[str, str]) -> None:
        data = (json.dumps(body) + "\n").encode()
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "Content-Type: application/json",
                f"Content-Length: {len(data)}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in extra.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()

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
            try:
                await self.rig.fault(faulted, connector, error_code=code)  # type: ignore[call-arg]
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


def _connectors_of(rig: Any) -> int | None:
    model = getattr(rig, "model", None)
    connectors = getattr(model, "connectors", None)
    return len(connectors) if connectors is not None else None
