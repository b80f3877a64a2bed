"""The fake ev.energy OCPP 1.6J endpoint: WSS under the platform's TLS policy, Basic Auth.

I/O only; OCPP logic lives in ocppj (frames) and session (one charger). The accept loop is
ours rather than the asyncio server's so that every connection attempt is seen before TLS:
the first byte tells a TLS ClientHello (0x16) from a plain `GET` (a ws:// attempt, refused
and recorded, TLS-2), and a failed handshake is recorded with its reason instead of vanishing
into asyncio's logs. A TLS connection is then handed to websockets' own server machinery.

The rooms:
- :mod:`harness.endpoint.server`: :class:`Endpoint` (life cycle, URLs, registered chargers, waiting for attempts);
- :mod:`harness.endpoint.config`: :class:`EndpointConfig`;
- :mod:`harness.endpoint.attempts`: :class:`ConnectionAttempt` and the outcomes of an attempt;
- :mod:`harness.endpoint.accept`: the accept loop (back-off when descriptors run out), TLS or plain, the
  handshake and its diagnosis, the refusal of ws://;
- :mod:`harness.endpoint.handshake`: peeking at a socket, server-side TLS that sends its alert;
- :mod:`harness.endpoint.upgrade`: websockets' server machinery, the HTTP upgrade (404, 401, subprotocol), the
  connected charger;
- :mod:`harness.endpoint.auth`: HTTP Basic credentials (profile 2) and the client certificate's subject (3).

Everything a user of the package needs is imported from here (``from harness.endpoint import Endpoint``).
"""

from __future__ import annotations

from harness.endpoint.attempts import (
    CONNECTED,
    NO_SUBPROTOCOL,
    NOT_HTTP,
    PLAIN_WS,
    PROBE_USER_AGENT,
    SILENT,
    TLS_FAILED,
    UNAUTHORIZED,
    UNKNOWN_CHARGER,
    ConnectionAttempt,
)
from harness.endpoint.auth import BasicAuth
from harness.endpoint.config import MAX_FRAME, OCPP_SUBPROTOCOL, EndpointConfig
from harness.endpoint.server import Endpoint

__all__ = [
    "CONNECTED",
    "MAX_FRAME",
    "NOT_HTTP",
    "NO_SUBPROTOCOL",
    "OCPP_SUBPROTOCOL",
    "PLAIN_WS",
    "PROBE_USER_AGENT",
    "SILENT",
    "TLS_FAILED",
    "UNAUTHORIZED",
    "UNKNOWN_CHARGER",
    "BasicAuth",
    "ConnectionAttempt",
    "Endpoint",
    "EndpointConfig",
]
