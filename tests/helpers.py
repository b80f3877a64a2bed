"""Raw WSS clients for the harness's own tests."""

from __future__ import annotations

import base64
import ssl
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from harness import tls
from harness.endpoint import Endpoint

CHARGER_ID = "CP-TEST-1"
KEY = "0123456789abcdef0123456789abcdef01234567"


def basic(user: str, password: str | bytes) -> dict[str, str]:
    raw = user.encode() + b":" + (password if isinstance(password, bytes) else password.encode())
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def client_ctx(endpoint: Endpoint, **kwargs: Any) -> ssl.SSLContext:
    return tls.client_context(endpoint.certs.ca_pem, **kwargs)


async def open_charger(
    endpoint: Endpoint,
    charger_id: str = CHARGER_ID,
    password: str | bytes | None = KEY,
    subprotocols: list[str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    **kwargs: Any,
) -> ClientConnection:
    headers = basic(charger_id, password) if password is not None else {}
    return await connect(
        endpoint.probe_url(charger_id),
        ssl=ssl_context or client_ctx(endpoint),
        subprotocols=subprotocols if subprotocols is not None else ["ocpp1.6"],  # type: ignore[arg-type]
        additional_headers=headers,
        open_timeout=5,
        **kwargs,
    )
