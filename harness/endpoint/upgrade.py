"""websockets' side of the endpoint: its server machinery without its listener, the HTTP upgrade (404 for an
unknown charger, 401 for wrong credentials, the ocpp1.6 subprotocol), and the connected charger's frames handed
to its session.

A mixin of Endpoint (server.py): its methods use the endpoint's state on ``self``.
"""

from __future__ import annotations

import asyncio
import http
import socket
from collections.abc import Callable, Sequence
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from harness import tls
from harness.endpoint.attempts import CONNECTED, NO_SUBPROTOCOL, UNAUTHORIZED, UNKNOWN_CHARGER, ConnectionAttempt, _now
from harness.endpoint.auth import _check_basic, _common_name, _subject
from harness.endpoint.config import OCPP_SUBPROTOCOL
from harness.endpoint.room import EndpointRoom
from harness.session import ChargerSession


class UpgradeMixin(EndpointRoom):
    async def _websockets_server(self) -> tuple[Server, Callable[[], ServerConnection]]:
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
            subprotocols=[_OCPP16],
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


class _ListenerShim:
    """Stands in for websockets' asyncio listener, which never listens: our accept loop does."""

    def __init__(self, inner: asyncio.Server, serving: Callable[[], bool]) -> None:
        self._inner = inner
        self._serving = serving

    def is_serving(self) -> bool:
        return self._serving()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


_OCPP16 = Subprotocol(OCPP_SUBPROTOCOL)


def _select_ocpp16(connection: ServerConnection, subprotocols: Sequence[Subprotocol]) -> Subprotocol | None:
    return _OCPP16 if _OCPP16 in subprotocols else None


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
