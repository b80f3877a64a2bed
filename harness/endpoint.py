"""The fake ev.energy OCPP 1.6J endpoint: WSS under the platform's TLS policy, Basic Auth.

I/O only; OCPP logic lives in ocppj (frames) and session (one charger). The accept loop is
ours rather than the asyncio server's so that every connection attempt is seen before TLS:
the first byte tells a TLS ClientHello (0x16) from a plain `GET` (a ws:// attempt, refused
and recorded, TLS-2), and a failed handshake is recorded with its reason instead of vanishing
into asyncio's logs. A TLS connection is then handed to websockets' own server machinery.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import base64
import binascii
import contextlib
import datetime as dt
import errno
import enum
import http
import logging
import socket
import ssl
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from harness import tls
from harness.printable import printable
from harness.platform import PlatformSettings
from harness.session import ChargerSession, SessionSettings
from harness.timing import Timing
from harness.trace import Redactor

try:  # imported now: once descriptors run out, an import (which opens files) fails
    import resource
except ImportError:  # pragma: no cover - not POSIX
    resource = None  # type: ignore[assignment]

log = logging.getLogger("harness.endpoint")

# accept() errors that mean "out of descriptors or memory", not "this one connection failed".
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_ACCEPT_BACKOFF_MIN = 0.05  # seconds; doubled while accept() keeps failing for lack of descriptors
_ACCEPT_BACKOFF_MAX = 1.0


def _open_file_limit() -> str:
    if resource is None:  # pragma: no cover - not POSIX
        return "unknown"
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):  # pragma: no cover
        return "unknown"
    return "unlimited" if soft == resource.RLIM_INFINITY else str(soft)

OCPP_SUBPROTOCOL = "ocpp1.6"
MAX_FRAME = 1024 * 1024  # OCPP 1.6 frames are small; a 16 MiB frame is an attack or a bug

# Outcomes of a connection attempt.
CONNECTED = "connected"
TLS_FAILED = "tls-failed"
PLAIN_WS = "plain-ws-refused"
UNAUTHORIZED = "unauthorized"
UNKNOWN_CHARGER = "unknown-charger"
NO_SUBPROTOCOL = "no-subprotocol"
NOT_HTTP = "not-tls-or-http"
SILENT = "silent"

#: The User-Agent of the harness's own probe connections (made under the charger's id): never the charger's.
PROBE_USER_AGENT = "ev.energy-harness-probe"


class BasicAuth(enum.StrEnum):
    """What the HTTP Basic credentials of one upgrade request were (security profile 2; AUTH-1)."""

    KEY_AS_TEXT = "key-as-text"  # user = the identity, password = the AuthorizationKey as configured (hex text)
    KEY_AS_BYTES = "key-as-bytes"  # user = the identity, password = the key's hex digits decoded to bytes
    NO_HEADER = "no-header"
    NOT_BASIC = "not-basic"  # another scheme (Bearer, Digest, ...)
    MALFORMED = "malformed"  # not base64, or no ':' between user and password
    WRONG_USER = "wrong-user"
    WRONG_PASSWORD = "wrong-password"

    @property
    def accepted(self) -> bool:
        return self in (BasicAuth.KEY_AS_TEXT, BasicAuth.KEY_AS_BYTES)


_monotonic = time.monotonic  # (ConnectionAttempt has a field named `time`)


@dataclass
class ConnectionAttempt:
    """Everything the endpoint learnt about one TCP connection to it."""

    time: str
    peer: str
    transport: str = "unknown"  # "tls", "plain" or "unknown"
    outcome: str = "pending"
    detail: str = ""
    tls_version: str | None = None
    cipher: str | None = None
    offered_policy_suites: list[str] = field(default_factory=list)
    client_hello: str | None = None
    client_certificate: str | None = None
    path: str | None = None
    charger_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    subprotocols_offered: list[str] = field(default_factory=list)
    subprotocol: str | None = None
    http_status: int | None = None
    basic_auth: BasicAuth | None = None  # security profile 2: the credentials of the upgrade request
    mono: float = field(default_factory=_monotonic)

    @property
    def is_probe(self) -> bool:
        """The harness's own probe (see PROBE_USER_AGENT), not the charger."""
        return any(k.lower() == "user-agent" and v == PROBE_USER_AGENT for k, v in self.headers.items())

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("mono")
        # Plain values only: the dict crosses process boundaries (pytest-xdist's execnet refuses str subclasses).
        data["basic_auth"] = None if self.basic_auth is None else self.basic_auth.value
        return data

    def summary(self) -> str:
        who = f" {self.charger_id!r}" if self.charger_id else ""
        tls_part = f" [{self.tls_version} {self.cipher}]" if self.tls_version else ""
        status = f" HTTP {self.http_status}" if self.http_status else ""
        line = f"{self.peer}{who}{tls_part}: {self.outcome}{status}" + (f": {self.detail}" if self.detail else "")
        return printable(line, one_line=True)  # the identity, path and headers are the charger's


@dataclass
class EndpointConfig:
    host: str = "127.0.0.1"
    port: int = 0
    certs_dir: Path = Path("certs")
    extra_hosts: tuple[str, ...] = ()
    security_profile: int = 2
    base_path: str = "/ocpp"
    timing: Timing = field(default_factory=Timing)  # the run's timeout factor (harness/timing.py)
    handshake_timeout: float = 10.0  # TLS + HTTP upgrade, before the timeout factor
    ping_interval: float | None = None  # chargers ping; a fake platform need not
    max_frame: int = MAX_FRAME
    platform: PlatformSettings = field(default_factory=PlatformSettings)
    session: SessionSettings = field(default_factory=SessionSettings)

    def __post_init__(self) -> None:
        # One timing per run: the sessions wait by the endpoint's (it is given once, here).
        if self.session.timing is not self.timing:
            self.session = replace(self.session, timing=self.timing)


class Endpoint:
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
        self._ws_server: Any = None
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

    async def _websockets_server(self) -> tuple[Any, Callable[[], ServerConnection]]:
        """websockets' server, minus its listener: we accept and do TLS ourselves, it does the rest.

        `serve` on a socket that never listens (start_serving=False) builds the connection factory
        with all of websockets' handshake, keepalive and close logic; we feed it accepted sockets.
        """
        dummy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server = await serve(
            self._connection_handler,
            sock=dummy,
            start_serving=False,
            process_request=self._process_request,
            subprotocols=[OCPP_SUBPROTOCOL],  # type: ignore[list-item]
            select_subprotocol=_select_ocpp16,
            max_size=self.config.max_frame,
            ping_interval=self.config.ping_interval,
            open_timeout=self.config.timing.scaled(self.config.handshake_timeout),
            close_timeout=self.config.timing.close,
            server_header="ev.energy-ocpp-harness",
        )
        listener = server.server
        factory = getattr(listener, "_protocol_factory", None)
        if factory is None:  # pragma: no cover - guards a CPython/websockets internals change
            raise RuntimeError("this Python's asyncio.Server has no _protocol_factory; pin websockets<18")
        # websockets answers 503 while its listener is "not serving": ours is the accept loop.
        serving = lambda: self._accept_task is not None and not self._accept_task.done()  # noqa: E731
        server.server = _ListenerShim(listener, serving)  # type: ignore[assignment]  # duck-typed asyncio.Server
        return server, factory

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

    # --- accepting -----------------------------------------------------------------------------

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._listen is not None
        backoff = _ACCEPT_BACKOFF_MIN
        exhausted = False
        while True:
            try:
                sock, address = await loop.sock_accept(self._listen)
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    log.warning("accept failed: %s", exc)
                    continue
                # The pending connection stays in the listen backlog, so the socket stays readable: accepting again
                # at once would spin at 100% CPU and starve everything else (signals included). Wait for one of our
                # connections to end (it frees a descriptor), bounded, since descriptors may be freed elsewhere.
                if not exhausted:
                    exhausted = True
                    log.error("cannot accept connections: %s (open-file limit %s, %d connection(s) open); "
                              "waiting for descriptors to free up", exc.strerror or exc, _open_file_limit(), len(self._tasks))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(), backoff)
                self._released.clear()
                backoff = min(backoff * 2, _ACCEPT_BACKOFF_MAX)
                continue
            if exhausted:
                exhausted, backoff = False, _ACCEPT_BACKOFF_MIN
                log.warning("accepting connections again (%d connection(s) open)", len(self._tasks))
            task = loop.create_task(self._handle_socket(sock, address))
            self._tasks.add(task)
            task.add_done_callback(self._connection_ended)

    def _connection_ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._released.set()

    async def _handle_socket(self, sock: socket.socket, address: Any) -> None:
        peer = f"{address[0]}:{address[1]}"
        attempt = ConnectionAttempt(time=_now(), peer=peer)
        self.attempts.append(attempt)
        timeout = self.config.timing.scaled(self.config.handshake_timeout)
        sock.setblocking(False)
        # No Nagle: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and ours (from
        # socket.socket(family, SOCK_STREAM), proto 0) is not; without it a small frame written while the
        # previous one is unacknowledged waits for the peer's delayed ACK (~40 ms on Linux).
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            first = await _peek(sock, 1, timeout)
        except TimeoutError:
            sock.close()
            self._finish(attempt, SILENT, f"TCP connection opened but nothing sent within {timeout:g} s")
            return
        if not first:
            sock.close()
            self._finish(attempt, SILENT, "TCP connection closed before anything was sent")
            return
        if first[0] == 0x16:  # TLS record type 22 (handshake): a ClientHello
            attempt.transport = "tls"
            await self._handle_tls(sock, attempt, timeout)
        else:
            await self._refuse_plain(sock, attempt, timeout)

    async def _handle_tls(self, sock: socket.socket, attempt: ConnectionAttempt, timeout: float) -> None:
        hello: tls.ClientHello | None = None
        with contextlib.suppress(OSError, TimeoutError):
            # The whole first record, for the evidence: a ClientHello may span several TCP segments.
            header = await _peek(sock, 5, timeout)
            wanted = min(5 + int.from_bytes(header[3:5], "big"), 16384) if len(header) == 5 else 5
            try:
                data = await _peek(sock, wanted, min(timeout, 2.0))
            except TimeoutError:
                data = sock.recv(16384, socket.MSG_PEEK)
            hello = tls.parse_client_hello(data)
            if hello is not None:
                attempt.client_hello = hello.describe()
                if hello.groups is not None:  # the ECDHE curves, for "no shared suite" cases (tls.POLICY_GROUPS)
                    attempt.client_hello += f"; groups: {', '.join(hello.offered_groups()) or 'none'}"
                attempt.offered_policy_suites = hello.offered_policy_suites()
        # The group the platform's load balancer would agree with this charger (P-256, else P-384, else none:
        # then only the policy's non-ECDHE suites can be agreed, as there).
        group = hello.policy_group() if hello is not None else None
        context = self._override_context or self._server_contexts[group or tls.POLICY_GROUPS[0x0017]]
        factory = self._ws_factory
        assert factory is not None

        def tagged() -> ServerConnection:
            connection = factory()
            connection.harness_attempt = attempt  # type: ignore[attr-defined]
            connection.connection_lost_waiter.add_done_callback(
                lambda _lost: self._lost_before_upgrade(attempt, connection, timeout)
            )
            return connection

        try:
            await _tls_handshake(tagged, sock, context, timeout)
        except (ssl.SSLError, OSError, TimeoutError, ConnectionError) as exc:
            sock.close()
            detail = tls.describe_tls_failure(exc, hello)
            if context is not self._override_context and tls.classify_tls_failure(exc)[0] is tls.TlsFailure.CERT_REFUSED:
                # The good chain was refused: name what it is, the usual cause being a missing trust anchor or a
                # stack that cannot build a chain through an intermediate (the platform's chain has one too).
                detail += (f" - this was the good certificate (leaf + intermediate, chaining to {self.certs.ca_pem.name}):"
                           " install ca.pem on the charger as its trusted root; a charger that trusts it and still"
                           " refuses cannot build a chain through the intermediate")
            self._finish(attempt, TLS_FAILED, detail)
        except Exception as exc:  # noqa: BLE001 - never let one bad client kill the accept loop
            sock.close()
            self._finish(attempt, TLS_FAILED, f"{type(exc).__name__}: {exc}")

    def _lost_before_upgrade(self, attempt: ConnectionAttempt, connection: ServerConnection, timeout: float) -> None:
        """TLS was done but the connection ended before any outcome: no (or no valid) HTTP upgrade request."""
        if attempt.outcome != "pending":
            return
        failure = connection.protocol.handshake_exc
        cause = (failure.__cause__ or failure) if failure is not None else None
        elapsed = time.monotonic() - attempt.mono
        if connection.request is None and (cause is None or isinstance(cause, EOFError)):
            self._finish(
                attempt, SILENT, f"TLS handshake completed, then no HTTP upgrade request: the connection ended "
                f"after {elapsed:.1f} s (the limit is {timeout:g} s)"
            )
        elif failure is not None:
            self._finish(attempt, NOT_HTTP, f"TLS handshake completed, then an invalid HTTP upgrade request: {cause}")
        else:
            self._finish(attempt, NOT_HTTP, "the connection ended during the WebSocket upgrade")

    async def _refuse_plain(self, sock: socket.socket, attempt: ConnectionAttempt, timeout: float) -> None:
        """TLS-2: a ws:// (or other plain) attempt. Record it against its charger, answer 400, close."""
        attempt.transport = "plain"
        try:
            reader, writer = await asyncio.open_connection(sock=sock, limit=16384)
        except OSError:
            sock.close()
            self._finish(attempt, NOT_HTTP, "connection failed")
            return
        try:
            async with asyncio.timeout(timeout):
                head = await reader.readuntil(b"\r\n\r\n")
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as exc:
            writer.close()
            self._finish(attempt, NOT_HTTP, f"neither TLS nor an HTTP request ({type(exc).__name__})")
            return
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) >= 2:
            attempt.path = parts[1]
            attempt.charger_id = self._charger_id(parts[1])
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                attempt.headers[name.strip()] = self.redact.header(name.strip(), value.strip())
        body = b"Plain WebSocket (ws://) is not accepted: connect with wss:// (TLS 1.2).\n"
        with contextlib.suppress(OSError):
            writer.write(
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await asyncio.wait_for(writer.drain(), timeout)
        writer.close()
        if lines[0].upper().startswith(("GET ", "POST ", "HEAD ", "PUT ", "OPTIONS ")):
            self._finish(attempt, PLAIN_WS, "plain HTTP/WebSocket without TLS: refused (TLS-2)", 400)
        else:
            self._finish(attempt, NOT_HTTP, f"neither TLS nor an HTTP request: {lines[0][:60]!r}")

    def _charger_id(self, path: str) -> str | None:
        raw = path.split("?", 1)[0]
        prefix = self.config.base_path.rstrip("/") + "/"
        if not raw.startswith(prefix):
            return None
        charger_id = urllib.parse.unquote(raw[len(prefix) :])
        return charger_id if charger_id and "/" not in charger_id else None

    # --- HTTP upgrade: 404, 401, subprotocol ---------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        attempt: ConnectionAttempt = getattr(connection, "harness_attempt", None) or ConnectionAttempt(_now(), "?")
        ssl_object = connection.transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            attempt.tls_version = ssl_object.version()
            cipher = ssl_object.cipher()
            attempt.cipher = cipher[0] if cipher else None
            shared = ssl_object.shared_ciphers() or []
            offered = [name for name, _version, _bits in shared if name in tls.POLICY_SUITES]
            if offered:
                attempt.offered_policy_suites = offered
            peer_cert = ssl_object.getpeercert()
            if peer_cert:
                attempt.client_certificate = _subject(peer_cert)
        attempt.path = request.path
        attempt.headers = {name: self.redact.header(name, value) for name, value in request.headers.raw_items()}
        attempt.subprotocols_offered = [
            p.strip() for value in request.headers.get_all("Sec-WebSocket-Protocol") for p in value.split(",")
        ]
        charger_id = self._charger_id(request.path)
        attempt.charger_id = charger_id
        if charger_id is None or charger_id not in self.sessions:
            what = "no charge point id in the path" if charger_id is None else f"unknown charge point id {charger_id!r}"
            self._finish(attempt, UNKNOWN_CHARGER, f"{what} (path {request.path!r})", 404)
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"{what}\n")
        session = self.sessions[charger_id]
        problem = self._authenticate(charger_id, session, request, attempt)
        if problem is not None:
            self._finish(attempt, UNAUTHORIZED, problem, 401)
            response = connection.respond(http.HTTPStatus.UNAUTHORIZED, f"{problem}\n")
            if self.config.security_profile == 2:
                response.headers["WWW-Authenticate"] = 'Basic realm="ev.energy OCPP", charset="UTF-8"'
            return response
        return None

    def _authenticate(
        self, charger_id: str, session: ChargerSession, request: Request, attempt: ConnectionAttempt
    ) -> str | None:
        if self.config.security_profile == 3:
            # Profile 3: the TLS layer already required a certificate chaining to the harness CA.
            if attempt.client_certificate is None:
                return "security profile 3: no client certificate"
            cn = _common_name(attempt.client_certificate)
            if cn != charger_id:
                return f"security profile 3: client certificate CN {cn!r} is not the charge point id {charger_id!r}"
            return None
        attempt.basic_auth, problem = _check_basic(request.headers.get("Authorization"), charger_id, session.authorization_key)
        return problem

    # --- connected -----------------------------------------------------------------------------

    async def _connection_handler(self, connection: ServerConnection) -> None:
        attempt: ConnectionAttempt = getattr(connection, "harness_attempt", None) or ConnectionAttempt(_now(), "?")
        attempt.subprotocol = connection.subprotocol
        if connection.subprotocol != OCPP_SUBPROTOCOL:
            # OCPP-J §3.1.2: no agreed subprotocol -> complete the handshake without it, then close.
            self._finish(
                attempt, NO_SUBPROTOCOL, f"subprotocol ocpp1.6 not offered (offered: {attempt.subprotocols_offered})"
            )
            await connection.close(1002, "subprotocol ocpp1.6 required")
            return
        assert attempt.charger_id is not None
        session = self.sessions[attempt.charger_id]
        self._finish(attempt, CONNECTED)
        previous = session.attach(
            connection,
            {
                "peer": attempt.peer,
                "tls_version": attempt.tls_version,
                "cipher": attempt.cipher,
                "offered_policy_suites": attempt.offered_policy_suites,
                "client_certificate": attempt.client_certificate,
                "time": attempt.time,
            },
        )
        if previous is not None:
            # A charger that reconnects replaces its old connection (it may not know it is dead).
            task = asyncio.get_running_loop().create_task(previous.close(1000, "replaced by a new connection"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        reason = "closed"
        try:
            async for message in connection:
                try:
                    session.receive(message)
                except Exception as exc:  # noqa: BLE001 - the harness's bug, not the charger's: no 1011 close
                    session.harness_fault("handling a frame from the charger", exc)
        except ConnectionClosed as exc:
            reason = _close_reason(exc)
            harness_closed_first = exc.sent is not None and (exc.rcvd is None or exc.rcvd_then_sent is False)
            if harness_closed_first and exc.sent is not None and exc.sent.code in _PROTOCOL_CLOSES:
                # websockets failed the connection because of what the charger sent (RFC 6455 §7.4.1).
                kind, what = _PROTOCOL_CLOSES[exc.sent.code]
                what = what.format(max_frame=self.config.max_frame, reason=exc.sent.reason)
                session.violation(kind, f"{what}: the harness closed the connection with code {exc.sent.code}", "")
        finally:
            if reason == "closed" and connection.close_code is not None:
                reason = f"code {connection.close_code} {connection.close_reason or ''}".strip()
            session.detach(connection, reason)


class _AlertingSSLProtocol(asyncio.sslproto.SSLProtocol):
    """asyncio's TLS protocol, plus the fatal alert OpenSSL wrote for the peer when the handshake fails.

    CPython's asyncio (3.11 here; python/cpython#98078, fixed upstream by PR #153620) force-closes the
    transport on an ssl.SSLError without flushing the outgoing MemoryBIO, so the protocol_version or
    handshake_failure alert OpenSSL produced never leaves the machine and the charger only sees the TCP
    connection end ("unexpected EOF"). A blocking ssl socket does send it. This is the upstream fix: write
    what OpenSSL left for the peer before the transport is force-closed. On a Python that has the fix, the
    BIO is already empty here and this does nothing.
    """

    def _fatal_error(self, exc: BaseException, message: str = "Fatal error on transport") -> None:
        transport = self._transport
        if isinstance(exc, ssl.SSLError) and transport is not None and not transport.is_closing():
            # A few bytes onto an idle socket: the selector transport sends them at once, before the close.
            with contextlib.suppress(Exception):
                self._process_outgoing()  # type: ignore[attr-defined]  # CPython's private hook
        super()._fatal_error(exc, message)


# The private hooks the fix overrides; if a future asyncio lacks them, the stock path is used (no alert).
_ALERTS_SUPPORTED = all(hasattr(asyncio.sslproto.SSLProtocol, name) for name in ("_fatal_error", "_process_outgoing"))


async def _tls_handshake(
    protocol_factory: Callable[[], asyncio.Protocol], sock: socket.socket, context: ssl.SSLContext, timeout: float
) -> asyncio.BaseTransport:
    """Server-side TLS on an accepted socket, like loop.connect_accepted_socket(ssl=...), but a refused
    handshake sends its TLS alert (see _AlertingSSLProtocol). Raises what the handshake raised."""
    loop = asyncio.get_running_loop()
    if not _ALERTS_SUPPORTED:  # pragma: no cover - guards an asyncio internals change
        transport, _ = await loop.connect_accepted_socket(
            protocol_factory, sock, ssl=context, ssl_handshake_timeout=timeout)
        return transport
    waiter: asyncio.Future[None] = loop.create_future()
    tls_protocol = _AlertingSSLProtocol(loop, protocol_factory(), context, waiter, server_side=True,
                                        ssl_handshake_timeout=timeout)  # type: ignore[arg-type]  # typeshed says int
    raw, _ = await loop.connect_accepted_socket(lambda: tls_protocol, sock)
    try:
        await waiter  # set by the protocol: handshake done, failed, or timed out
    except BaseException:
        raw.close()
        raise
    return tls_protocol._app_transport


class _ListenerShim:
    """Stands in for websockets' asyncio listener, which never listens: our accept loop does."""

    def __init__(self, inner: asyncio.Server, serving: Callable[[], bool]) -> None:
        self._inner = inner
        self._serving = serving

    def is_serving(self) -> bool:
        return self._serving()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _select_ocpp16(connection: ServerConnection, subprotocols: Any) -> Any:
    return OCPP_SUBPROTOCOL if OCPP_SUBPROTOCOL in subprotocols else None


def _check_basic(header: str | None, charger_id: str, key: str | None) -> tuple[BasicAuth, str | None]:
    """Judge an Authorization header (security whitepaper, profile 2): what it was, and why it is refused (or None)."""
    if header is None:
        return BasicAuth.NO_HEADER, "security profile 2: no Authorization header (HTTP Basic auth required)"
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return BasicAuth.NOT_BASIC, f"security profile 2: Authorization scheme {scheme!r}, expected Basic"
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return BasicAuth.MALFORMED, "security profile 2: the Basic credentials are not valid base64"
    user, sep, password = decoded.partition(b":")
    if not sep:
        return BasicAuth.MALFORMED, "security profile 2: the Basic credentials have no ':' between user and password"
    if user.decode("utf-8", "replace") != charger_id:
        return (BasicAuth.WRONG_USER,
                f"security profile 2: Basic auth user {user.decode('utf-8', 'replace')!r} is not the charge point id")
    form = _password_form(password, key)
    if form is None:
        return BasicAuth.WRONG_PASSWORD, "security profile 2: wrong password (it is not the AuthorizationKey)"
    return form, None


def _password_form(password: bytes, key: str | None) -> BasicAuth | None:
    """The password on the wire may be the configured key as text or its hex-decoded bytes (sources disagree,
    ocpp16-notes): accept both and say which; None when it is neither."""
    if key is None:
        return None
    if password == key.encode():
        return BasicAuth.KEY_AS_TEXT
    with contextlib.suppress(ValueError):
        if password == bytes.fromhex(key):
            return BasicAuth.KEY_AS_BYTES
    return None


def _subject(cert: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for rdn in cert.get("subject", ()) for k, v in rdn]
    return ", ".join(parts)


def _common_name(subject: str) -> str | None:
    for part in subject.split(", "):
        if part.startswith("commonName="):
            return part[len("commonName=") :]
    return None


# Close codes websockets sends when the peer broke the WebSocket protocol, as violation kinds.
_PROTOCOL_CLOSES = {
    1002: ("WebSocket protocol error", "the charger broke RFC 6455 ({reason})"),
    1007: ("invalid UTF-8", "a text frame was not valid UTF-8 ({reason})"),
    1009: ("frame too large", "a frame exceeded {max_frame} bytes"),
}


def _close_reason(exc: ConnectionClosed) -> str:
    if exc.rcvd is not None:
        return f"charger closed: code {exc.rcvd.code} {exc.rcvd.reason}".strip()
    if exc.sent is not None:
        return f"harness closed: code {exc.sent.code} {exc.sent.reason}".strip()
    return "connection lost without a close frame"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


async def _peek(sock: socket.socket, count: int, timeout: float) -> bytes:
    """Wait until `count` bytes (or EOF) are buffered and return them without consuming them.

    SO_RCVLOWAT makes the socket readable only once `count` bytes are there, so the wait is one
    event, not a poll, even when a ClientHello arrives in several TCP segments.
    """
    loop = asyncio.get_running_loop()
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, count)
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    data = sock.recv(count, socket.MSG_PEEK)
                    if len(data) >= count or not data:
                        return data
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    return b""
                readable: asyncio.Future[None] = loop.create_future()
                loop.add_reader(sock.fileno(), lambda: None if readable.done() else readable.set_result(None))
                try:
                    await readable
                finally:
                    loop.remove_reader(sock.fileno())
    finally:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)

