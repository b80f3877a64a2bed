"""The base of the endpoint's rooms (accept.py, upgrade.py: mixins of Endpoint in server.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio
    import socket
    import ssl
    from collections import deque
    from collections.abc import Callable
    from typing import Any

    from websockets.asyncio.server import ServerConnection

    from harness import tls
    from harness.endpoint.attempts import ConnectionAttempt
    from harness.endpoint.config import EndpointConfig
    from harness.session import ChargerSession
    from harness.trace import Redactor


class EndpointRoom:
    """Empty at run time. For the type checker it declares the endpoint's state and the methods one room calls
    in another (Endpoint in server.py sets the state in __init__ and start)."""

    if TYPE_CHECKING:
        # --- state (server.py: Endpoint.__init__, start) -----------------------------------------
        config: EndpointConfig
        certs: tls.CertStore
        sessions: dict[str, ChargerSession]
        attempts: deque[ConnectionAttempt]
        redact: Redactor
        _released: asyncio.Event
        _server_contexts: dict[str, ssl.SSLContext]
        _override_context: ssl.SSLContext | None
        _listen: socket.socket | None
        _accept_task: asyncio.Task[None] | None
        _tasks: set[asyncio.Task[Any]]
        _ws_factory: Callable[[], ServerConnection] | None

        # --- methods one room calls in another ---------------------------------------------------
        def _finish(self, attempt: ConnectionAttempt, outcome: str, detail: str = "",
                    status: int | None = None) -> None: ...  # server.py
        def _charger_id(self, path: str) -> str | None: ...  # server.py
