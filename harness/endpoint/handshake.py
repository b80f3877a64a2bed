"""Low-level pieces of the accept path, on a raw accepted socket: waiting for bytes without consuming them
(the first byte, the ClientHello), and server-side TLS whose refusal sends its TLS alert.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import socket
import ssl
from collections.abc import Callable


class AlertingSSLProtocol(asyncio.sslproto.SSLProtocol):
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


_AlertingSSLProtocol = AlertingSSLProtocol  # the old private name, for code written against it


# The private hooks the fix overrides; if a future asyncio lacks them, the stock path is used (no alert).
_ALERTS_SUPPORTED = all(hasattr(asyncio.sslproto.SSLProtocol, name) for name in ("_fatal_error", "_process_outgoing"))


async def _tls_handshake(
    protocol_factory: Callable[[], asyncio.Protocol], sock: socket.socket, context: ssl.SSLContext, timeout: float
) -> asyncio.BaseTransport:
    """Server-side TLS on an accepted socket, like loop.connect_accepted_socket(ssl=...), but a refused
    handshake sends its TLS alert (see AlertingSSLProtocol). Raises what the handshake raised."""
    loop = asyncio.get_running_loop()
    if not _ALERTS_SUPPORTED:  # pragma: no cover - guards an asyncio internals change
        transport, _ = await loop.connect_accepted_socket(
            protocol_factory, sock, ssl=context, ssl_handshake_timeout=timeout)
        return transport
    waiter: asyncio.Future[None] = loop.create_future()
    tls_protocol = AlertingSSLProtocol(loop, protocol_factory(), context, waiter, server_side=True,
                                       ssl_handshake_timeout=timeout)  # type: ignore[arg-type]  # typeshed says int
    raw, _ = await loop.connect_accepted_socket(lambda: tls_protocol, sock)
    try:
        await waiter  # set by the protocol: handshake done, failed, or timed out
    except BaseException:
        raw.close()
        raise
    return tls_protocol._app_transport


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
