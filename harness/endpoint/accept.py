"""The accept path: our own accept loop (with its back-off when descriptors run out), the first byte that tells
TLS from plain HTTP, the TLS handshake with its diagnosis, and the refusal of ws:// (TLS-2). Every attempt is
recorded; a completed handshake is handed to websockets (upgrade.py).

A mixin of Endpoint (server.py): its methods use the endpoint's state on ``self``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
import time
from typing import Any

from websockets.asyncio.server import ServerConnection

from harness import tls
from harness.endpoint.attempts import NOT_HTTP, PLAIN_WS, SILENT, TLS_FAILED, ConnectionAttempt, _now
from harness.endpoint.handshake import _peek, _tls_handshake
from harness.endpoint.room import EndpointRoom

try:  # imported now: once descriptors run out, an import (which opens files) fails
    import resource
except ImportError:  # pragma: no cover - not POSIX
    resource = None  # type: ignore[assignment]  # not POSIX: the users check for None

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


class AcceptMixin(EndpointRoom):
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
            connection.harness_attempt = attempt  # type: ignore[attr-defined]  # our tag, read back in upgrade.py
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
