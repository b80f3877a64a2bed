"""The endpoint: its life cycle, its URLs, the chargers registered with it, and the record of connection
attempts that suites wait on. The accept path is in accept.py, websockets' side in upgrade.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection

from harness import tls
from harness.endpoint.accept import AcceptMixin
from harness.endpoint.attempts import ConnectionAttempt
from harness.endpoint.config import EndpointConfig
from harness.endpoint.upgrade import UpgradeMixin
from harness.session import ChargerSession
from harness.trace import Redactor


class Endpoint(AcceptMixin, UpgradeMixin):
    """Serves wss://HOST:PORT/ocpp/<chargePointId> for the chargers registered with it."""

    def __init__(
        self,
        config: EndpointConfig,
        *,
        on_attempt: Callable[[ConnectionAttempt], None] | None = None,
    ) -> None:
        self.config = config
        self.on_attempt = on_attempt
        self.certs = tls.CertStore(config.certs_dir)
        self.sessions: dict[str, ChargerSession] = {}
        self.attempts: deque[ConnectionAttempt] = deque(maxlen=1000)
        self.redact = Redactor()
        self._attempt_event = asyncio.Event()
        self._released = asyncio.Event()  # a connection ended (a file descriptor is free again)
        self._server_contexts: dict[str, ssl.SSLContext] = {}  # one per policy ECDHE group (tls.POLICY_GROUPS)
        self._listen: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ws_server: Server | None = None
        self._ws_factory: Callable[[], ServerConnection] | None = None
        self.port = config.port

    # --- life cycle ----------------------------------------------------------------------------

    async def start(self) -> Endpoint:
        hosts = list(self.config.extra_hosts)
        if self.config.host not in ("0.0.0.0", "::", "", "127.0.0.1", "localhost"):
            hosts.append(self.config.host)  # the certificate must name the address chargers dial
        self.certs.ensure(hosts)
        self._server_contexts = {
            group: self.certs.server_context(require_client_cert=self.config.security_profile == 3, group=group)
            for group in tls.POLICY_GROUPS.values()
        }
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        listen = socket.socket(family, socket.SOCK_STREAM)
        listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listen.bind((self.config.host, self.config.port))
        listen.listen(128)
        listen.setblocking(False)
        self._listen = listen
        self.port = listen.getsockname()[1]
        self._ws_server, self._ws_factory = await self._websockets_server()
        self._accept_task = asyncio.get_running_loop().create_task(self._accept_loop(), name="endpoint-accept")
        return self

    async def stop(self) -> None:
        if self._accept_task:
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
        if self._listen:
            self._listen.close()
        for session in self.sessions.values():
            if session.connection is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(session.connection.close(1001, "harness stopping"), 2)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
        if self._ws_server is not None:
            self._ws_server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws_server.wait_closed(), 3)

    async def __aenter__(self) -> Endpoint:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        host = self.config.host
        if host in ("0.0.0.0", "::", ""):
            # Listening on every interface: show a name the server certificate covers (the charger checks
            # it, TLS-3), the first one given to `certs` that is not loopback; else this machine's name.
            lan = [n for n in self.certs.server_names() if n not in ("localhost", "127.0.0.1", "::1")]
            host = lan[0] if lan else socket.gethostname()
        shown = f"[{host}]" if ":" in host else host
        return f"wss://{shown}:{self.port}{self.config.base_path}"

    @property
    def local_host(self) -> str:
        """An address of this endpoint reachable from this machine (for the harness's own probes)."""
        host = self.config.host
        return "127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host)

    def probe_url(self, charger_id: str, scheme: str = "wss") -> str:
        host = f"[{self.local_host}]" if ":" in self.local_host else self.local_host
        return f"{scheme}://{host}:{self.port}{self.config.base_path}/{urllib.parse.quote(charger_id, safe='')}"

    def charger_url(self, charger_id: str) -> str:
        return f"{self.url}/{urllib.parse.quote(charger_id, safe='')}"

    def _charger_id(self, path: str) -> str | None:
        raw = path.split("?", 1)[0]
        prefix = self.config.base_path.rstrip("/") + "/"
        if not raw.startswith(prefix):
            return None
        charger_id = urllib.parse.unquote(raw[len(prefix) :])
        return charger_id if charger_id and "/" not in charger_id else None

    # --- chargers ------------------------------------------------------------------------------

    def register(self, charger_id: str, authorization_key: str | None) -> ChargerSession:
        """Make a charge point id known (others get HTTP 404), with its AuthorizationKey."""
        self.redact.add(authorization_key)
        session = self.sessions.get(charger_id)
        if session is None:
            session = ChargerSession(
                charger_id,
                authorization_key,
                settings=self.config.session,
                platform=self.config.platform,
                redactor=self.redact,
            )
            self.sessions[charger_id] = session
        else:
            session.authorization_key = authorization_key
        return session

    def session(self, charger_id: str) -> ChargerSession:
        return self.sessions[charger_id]

    def present(self, context: ssl.SSLContext | None) -> None:
        """Present another server certificate from now on (TLS-3 tests); None restores the good one."""
        self._override_context = context

    _override_context: ssl.SSLContext | None = None

    def attempts_for(self, charger_id: str, since: float = 0.0) -> list[ConnectionAttempt]:
        return [a for a in self.attempts if a.charger_id == charger_id and a.mono >= since]

    async def wait_attempt(
        self, predicate: Callable[[ConnectionAttempt], bool], within: float, since: float = 0.0
    ) -> ConnectionAttempt | None:
        """The first finished attempt since `since` (monotonic) matching predicate, or None after `within` s."""
        deadline = time.monotonic() + self.config.timing.scaled(within)
        while True:
            for attempt in self.attempts:
                if attempt.mono >= since and attempt.outcome != "pending" and predicate(attempt):
                    return attempt
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            event = self._attempt_event
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await event.wait()

    def _finish(self, attempt: ConnectionAttempt, outcome: str, detail: str = "", status: int | None = None) -> None:
        attempt.outcome = outcome
        attempt.detail = self.redact(detail)
        attempt.http_status = status
        if attempt.charger_id in self.sessions:
            self.sessions[attempt.charger_id].trace.event(f"connection attempt: {attempt.summary()}")
        event, self._attempt_event = self._attempt_event, asyncio.Event()
        event.set()
        if self.on_attempt:
            with contextlib.suppress(Exception):
                self.on_attempt(attempt)
