"""The `http` charger backend: physical acts through a rig's HTTP control API.

The API is docs/reference/charger-control-api.md (modelled on the OCA test tool's "SUT API"): every
act is a POST with its arguments in the query string and an empty body. 200 = done; 501 = the rig
cannot do it (the test is "not tested"); anything else, or no answer within the timeout, is a rig
failure reported with the status and the body.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse

from harness.drivers.base import ActNotSupported, ChargerBackend, EndpointInfo, RigError

MAX_RESPONSE = 64 * 1024


class HttpBackend(ChargerBackend):
    name = "http"

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"charger control URL {base_url!r}: expected http://HOST:PORT[/prefix]")
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout

    async def start(self, endpoint: EndpointInfo) -> None:
        """Check that the rig answers at all (any HTTP status will do)."""
        try:
            await self._request("GET", "/", {})
        except RigError as exc:
            raise RigError(f"the charger rig at {self.base_url} does not answer: {exc}") from None

    # --- the acts -------------------------------------------------------------------------------

    async def plugin(self, connector: int = 1) -> None:
        await self._act("plugin", {"connector": connector})

    async def plugout(self, connector: int = 1) -> None:
        await self._act("plugout", {"connector": connector})

    async def authorize(self, id_tag: str, connector: int = 1) -> None:
        await self._act("authorize", {"id": id_tag, "connector": connector})

    async def ev_suspend(self, suspended: bool, connector: int = 1) -> None:
        await self._act("ev", {"connector": connector, "suspended": _bool(suspended)})

    async def fault(self, faulted: bool, connector: int = 1) -> None:
        await self._act("state", {"connector": connector, "faulted": _bool(faulted)})

    async def reboot(self) -> None:
        await self._act("reboot", {})

    async def network(self, online: bool) -> None:
        await self._act("network", {"online": _bool(online)})

    # --- HTTP -----------------------------------------------------------------------------------

    async def _act(self, act: str, args: dict[str, object]) -> None:
        try:
            status, body = await self._request("POST", f"/{act}", args)
        except RigError as exc:
            raise RigError(str(exc), act=act) from None
        if status == 200:
            return
        if status == 501:  # the rig says it cannot do this act: "not tested", not a rig failure
            raise ActNotSupported(act, f"HTTP 501: {body.strip()[:500] or '(empty body)'}")
        raise RigError(f"POST {self.base_url}/{act}: HTTP {status}: {body.strip()[:500] or '(empty body)'}", act=act)

    async def _request(self, method: str, path: str, args: dict[str, object]) -> tuple[int, str]:
        query = urllib.parse.urlencode({k: str(v) for k, v in args.items()})
        target = self.prefix + path + (f"?{query}" if query else "")
        url = f"{self.base_url}{path}"
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                host = f"[{self.host}]" if ":" in self.host else self.host
                writer.write(
                    f"{method} {target} HTTP/1.1\r\nHost: {host}:{self.port}\r\nContent-Length: 0\r\n"
                    "Connection: close\r\nUser-Agent: ev-energy-ocpp-harness\r\n\r\n".encode()
                )
                await writer.drain()
                return await _read_response(reader)
        except TimeoutError:
            raise RigError(f"{method} {url}: no answer within {self.timeout:g} s") from None
        except ConnectionRefusedError:
            raise RigError(f"{method} {url}: connection refused (nothing listens at {self.host}:{self.port})") from None
        except OSError as exc:
            raise RigError(f"{method} {url}: {type(exc).__name__}: {exc}") from None
        finally:
            if writer is not None:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, str]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise RigError(f"malformed HTTP answer from the rig ({type(exc).__name__})") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise RigError(f"malformed HTTP status line from the rig: {lines[0][:100]!r}")
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        body = await reader.readexactly(min(int(length), MAX_RESPONSE))
    else:
        body = await reader.read(MAX_RESPONSE)  # until the rig closes (Connection: close)
    return status, body.decode("utf-8", "replace")


def _bool(value: bool) -> str:
    return "true" if value else "false"
