"""The record of one TCP connection to the endpoint (:class:`ConnectionAttempt`) and the outcomes it can end with.

Suites and the plugin judge connection behaviour (TLS-1/2/3, AUTH-1/2, silence) from these records.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.endpoint.auth import BasicAuth
from harness.printable import printable

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


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
