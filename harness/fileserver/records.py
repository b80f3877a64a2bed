"""What the file server saw: a `TransferRecord` per request, an `Upload` per file received (harness.fileserver)."""

from __future__ import annotations

import datetime as dt
import posixpath
from dataclasses import dataclass, field
from time import monotonic as _monotonic
from typing import Any

MAX_BODY = 16 * 1024 * 1024  # a diagnostics file or a test firmware image; more is a bug or an attack


@dataclass
class TransferRecord:
    """One request to the file server, as it was answered."""

    protocol: str  # "https" or "ftp"
    method: str  # GET, HEAD, PUT, POST (HTTPS); RETR, STOR, SIZE, LIST, NLST (FTP); "TLS" for a failed handshake
    path: str  # decoded URL path / absolute FTP path
    peer: str
    status: int  # HTTP status, or the FTP reply code that ended the command (0: no reply, connection failed)
    bytes_sent: int = 0
    bytes_received: int = 0
    user_agent: str | None = None
    user: str | None = None  # FTP login name (never a password)
    detail: str = ""
    time: str = field(default_factory=lambda: _now())
    mono: float = field(default_factory=_monotonic)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def summary(self) -> str:
        moved = f", {self.bytes_sent} B sent" if self.bytes_sent else ""
        moved += f", {self.bytes_received} B received" if self.bytes_received else ""
        who = f" user {self.user!r}" if self.user else ""
        agent = f" ({self.user_agent})" if self.user_agent else ""
        extra = f": {self.detail}" if self.detail else ""
        return f"{self.protocol.upper()} {self.method} {self.path} from {self.peer}{who}{agent} -> {self.status}{moved}{extra}"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "mono"}


@dataclass
class Upload:
    """A file a client put on the server."""

    protocol: str
    method: str  # PUT, POST or STOR
    path: str  # where it was put (for POST multipart: the form's URL path)
    filename: str
    content: bytes
    peer: str
    time: str = field(default_factory=lambda: _now())
    mono: float = field(default_factory=_monotonic)

    def summary(self) -> str:
        return f"{self.protocol.upper()} {self.method} {self.filename!r} ({len(self.content)} B) to {self.path} from {self.peer}"


class BodyError(Exception):
    """An upload refused with `status` (HTTP 411/413, FTP 552), for `reason`."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def normalise(path: str) -> str:
    """An absolute, normalised POSIX path (no '..' escapes above the root)."""
    normal = posixpath.normpath("/" + path.lstrip("/"))
    while normal.startswith("//"):
        normal = normal[1:]
    return normal
