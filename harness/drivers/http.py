"""The `http` charger backend: physical acts through a rig's HTTP control API.

The API is docs/reference/charger-control-api.md (modelled on the OCA test tool's "SUT API"): every
act is a POST with its arguments in the query string and an empty body. 200 = done; 501 = the rig
cannot do it (the test is "not tested"); anything else, or no answer within the timeout, is a rig
failure reported with the status and the body.
"""

from __future__ import annotations

import asyncio
import urllib.parse

import aiohttp

from harness.drivers.base import ActNotSupported, ChargerBackend, EndpointInfo, RigError, refuse_if_interrupted

MAX_RESPONSE = 64 * 1024


class HttpBackend(ChargerBackend):
    name = "http"

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        # https:// too, as the charger profile's [rig.http] control_url and the README allow (the system's trust store)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"charger control URL {base_url!r}: expected http(s)://HOST:PORT[/prefix]")
        self.base_url = base_url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
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
        refuse_if_interrupted(act)
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
        query = {k: str(v) for k, v in args.items()}
        url = f"{self.base_url}{path}"
        # A connection per act (force_close), as a rig is driven once in a while; no proxy from the environment.
        connector = aiohttp.TCPConnector(force_close=True)
        try:
            async with asyncio.timeout(self.timeout):
                async with aiohttp.ClientSession(connector=connector, trust_env=False,
                                                 headers={"User-Agent": "ev-energy-ocpp-harness"}) as client:
                    async with client.request(method, url, params=query, data=b"") as response:
                        body = await response.content.read(MAX_RESPONSE)
                        return response.status, body.decode("utf-8", "replace")
        except TimeoutError:
            raise RigError(f"{method} {url}: no answer within {self.timeout:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ConnectionRefusedError):
                raise RigError(f"{method} {url}: connection refused (nothing listens at {self.host}:{self.port})") from None
            raise RigError(f"{method} {url}: {type(exc.os_error).__name__}: {exc.os_error}") from None
        except aiohttp.ClientResponseError as exc:  # not HTTP (a malformed status line or header)
            raise RigError(f"malformed HTTP answer from the rig at {url}: {exc.message}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise RigError(f"{method} {url}: {type(exc).__name__}: {exc}") from None


def _bool(value: bool) -> str:
    return "true" if value else "false"
