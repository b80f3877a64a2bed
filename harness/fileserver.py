"""The harness's own file server for FW-1: firmware to download, a place to upload diagnostics.

The platform tells a charger where to fetch firmware (UpdateFirmware.location) and where to put
its diagnostics (GetDiagnostics.location); a charger does that with HTTP(S) or FTP (OCPP 1.6
§5.9, §5.19; the `SupportedFileTransferProtocols` key lists FTP, FTPS, HTTP, HTTPS). To check
that a transfer *really* happened, the harness serves both ends itself and records every request:

- HTTPS (aiohttp's server), with the harness CA's server certificate (the one the endpoint presents,
  so a charger that trusts the endpoint trusts this server too). GET/HEAD serve the files added with
  `add_file`; PUT stores the body as an upload named by the path; POST stores a raw body, or each
  file of a multipart/form-data body. `Expect: 100-continue`, chunked bodies and keep-alive work.
  The TLS handshake is done before aiohttp sees the connection (as the endpoint does it), so a
  refused handshake is recorded with its diagnosis.
- FTP (aioftp's server, plain RFC 959): anonymous or any login, passive (PASV, EPSV) and active
  (PORT, EPRT) data connections, RETR/STOR/APPE/SIZE/LIST/NLST, virtual directories (every path
  that is not a file is a directory). No FTPS: `AUTH TLS` is answered 502 ("not implemented"),
  which a client takes as "no TLS here".

The protocols are the libraries'; this module adds what the harness needs on top: the files it
serves, the bounds, and the record. All asyncio, on the caller's loop. Every request (also failed and refused ones) is a
`TransferRecord` in `requests`; every file received is an `Upload` in `uploads`. Waits are
event-driven and bounded (`wait_request`, `wait_upload`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import logging
import os
import posixpath
import ssl
import stat
import urllib.parse
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from time import monotonic as _monotonic
from typing import Any, TypeVar

import aioftp
from aiohttp import BodyPartReader, hdrs, web
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from harness import tls
from harness.endpoint import _AlertingSSLProtocol

log = logging.getLogger("harness.fileserver")

MAX_BODY = 16 * 1024 * 1024  # a diagnostics file or a test firmware image; more is a bug or an attack
MAX_RECORDS = 2000

_T = TypeVar("_T")


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


class FileServer:
    """HTTPS and FTP on one host; `url(path, scheme)` gives what to put in UpdateFirmware/GetDiagnostics."""

    def __init__(
        self,
        certs: tls.CertStore | None,
        host: str = "127.0.0.1",
        *,
        url_host: str | None = None,
        https: bool = True,
        ftp: bool = True,
        timeout: float = 30.0,
    ) -> None:
        if https and certs is None:
            raise ValueError("HTTPS needs the harness CertStore (its server certificate)")
        self.certs = certs
        self.host = host
        self.url_host = url_host or ("127.0.0.1" if host in ("0.0.0.0", "") else ("::1" if host == "::" else host))
        self.enable_https = https
        self.enable_ftp = ftp
        self.timeout = timeout
        self.files: dict[str, bytes] = {}
        self.requests: list[TransferRecord] = []
        self.uploads: list[Upload] = []
        self.https_port = 0
        self.ftp_port = 0
        self._ssl: ssl.SSLContext | None = None
        self._listener: asyncio.Server | None = None
        self._runner: web.AppRunner | None = None
        self._ftp: _FtpServer | None = None
        self._event = asyncio.Event()

    # --- life cycle ----------------------------------------------------------------------------

    async def start(self) -> FileServer:
        if self.enable_https:
            assert self.certs is not None
            self._ssl = self.certs.server_context()
            app = web.Application(client_max_size=MAX_BODY)
            app.router.add_route("*", "/{path:.*}", self._http)
            self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
            await self._runner.setup()
            # A plain TCP listener whose protocol does the TLS itself, then hands over to aiohttp.
            self._listener = await asyncio.get_running_loop().create_server(self._tls_protocol, self.host, 0)
            self.https_port = self._listener.sockets[0].getsockname()[1]
        if self.enable_ftp:
            self._ftp = _FtpServer(self)
            await self._ftp.start(self.host, 0)
            self.ftp_port = self._ftp.address[1]
        return self

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._runner.cleanup(), 2)
            self._runner = None
        if self._ftp is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ftp.close(), 2)
            self._ftp = None

    async def __aenter__(self) -> FileServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- content and URLs ----------------------------------------------------------------------

    def add_file(self, path: str, content: bytes) -> str:
        """Serve `content` at `path` (over every enabled protocol); returns the normalised path."""
        normal = _normalise(path)
        self.files[normal] = bytes(content)
        return normal

    def url(self, path: str, scheme: str = "https") -> str:
        scheme = scheme.lower()
        if scheme == "https":
            if not self.enable_https:
                raise ValueError("HTTPS is not enabled on this file server")
            port = self.https_port
        elif scheme == "ftp":
            if not self.enable_ftp:
                raise ValueError("FTP is not enabled on this file server")
            port = self.ftp_port
        else:
            raise ValueError(f"unknown scheme {scheme!r}: use https or ftp")
        host = f"[{self.url_host}]" if ":" in self.url_host else self.url_host
        quoted = urllib.parse.quote(_normalise(path), safe="/")
        return f"{scheme}://{host}:{port}{quoted}"

    # --- what happened -------------------------------------------------------------------------

    def fetches(self, path: str, since: float = 0.0) -> list[TransferRecord]:
        """Complete downloads of `path` (GET or RETR answered with success and the whole file sent)."""
        normal = _normalise(path)
        size = len(self.files.get(normal, b""))
        return [
            r for r in self.requests
            if r.mono >= since and r.path == normal and r.method in ("GET", "RETR") and r.ok and r.bytes_sent == size
        ]

    def requests_since(self, since: float = 0.0) -> list[TransferRecord]:
        return [r for r in self.requests if r.mono >= since]

    def uploads_since(self, since: float = 0.0) -> list[Upload]:
        return [u for u in self.uploads if u.mono >= since]

    def describe(self, since: float = 0.0) -> str:
        got = self.requests_since(since)
        if not got:
            return "the file server received no request at all"
        lines = [f"the file server received {len(got)} request(s):"]
        lines += [f"  {r.summary()}" for r in got[-15:]]
        return "\n".join(lines)

    async def wait_request(
        self, predicate: Callable[[TransferRecord], bool], within: float, since: float = 0.0
    ) -> TransferRecord | None:
        """The first finished request since `since` (monotonic) matching predicate, or None after `within` s."""
        return await self._wait(lambda: next((r for r in self.requests if r.mono >= since and predicate(r)), None), within)

    async def wait_upload(
        self, predicate: Callable[[Upload], bool] | None, within: float, since: float = 0.0
    ) -> Upload | None:
        match = predicate or (lambda _u: True)
        return await self._wait(lambda: next((u for u in self.uploads if u.mono >= since and match(u)), None), within)

    async def _wait(self, find: Callable[[], _T | None], within: float) -> _T | None:
        deadline = _monotonic() + within
        while True:
            found = find()
            if found is not None:
                return found
            remaining = deadline - _monotonic()
            if remaining <= 0:
                return None
            event = self._event
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await event.wait()

    def _record(self, record: TransferRecord) -> TransferRecord:
        # `mono` is when the request finished: waits since a mark see requests made after it.
        record.mono = _monotonic()
        self.requests.append(record)
        del self.requests[:-MAX_RECORDS]
        log.info("%s", record.summary())
        self._wake()
        return record

    def _store(self, upload: Upload) -> None:
        upload.mono = _monotonic()
        self.uploads.append(upload)
        del self.uploads[:-MAX_RECORDS]
        self._wake()

    def _wake(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    # ==========================================================================================
    # HTTPS (aiohttp)
    # ==========================================================================================

    def _tls_protocol(self) -> asyncio.BaseProtocol:
        """A new connection: TLS first (the endpoint's server-side TLS, which sends its alert on a refusal), then
        aiohttp's protocol; a refused or abandoned handshake is recorded with its diagnosis."""
        assert self._runner is not None and self._runner.server is not None and self._ssl is not None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        protocol = _PeerNoted(loop, self._runner.server(), self._ssl, waiter, server_side=True,
                              ssl_handshake_timeout=self.timeout)  # type: ignore[arg-type]  # typeshed says int

        def handshake_done(done: asyncio.Future[None]) -> None:
            exc = None if done.cancelled() else done.exception()
            if exc is not None:
                self._record(TransferRecord("https", "TLS", "", protocol.peer, 0, detail=tls.describe_tls_failure(exc)))

        waiter.add_done_callback(handshake_done)
        return protocol

    async def _http(self, request: web.Request) -> web.StreamResponse:
        method = request.method.upper()
        path = _normalise(request.path)
        record = TransferRecord("https", method, path, _request_peer(request), 0,
                                user_agent=request.headers.get(hdrs.USER_AGENT))
        try:
            if method in ("GET", "HEAD"):
                content = self.files.get(path)
                if content is None:
                    record.status, record.detail = 404, "no such file"
                    return web.Response(status=404, text="no such file\n")
                record.status = 200
                record.bytes_sent = 0 if method == "HEAD" else len(content)
                return web.Response(body=content, content_type="application/octet-stream")
            if method in ("PUT", "POST"):
                try:
                    async with asyncio.timeout(self.timeout):
                        files, received = await self._http_upload(request, method, path)
                except _BodyError as exc:
                    record.status, record.detail = exc.status, exc.reason
                    refused = web.Response(status=exc.status, text=exc.reason + "\n")
                    refused.force_close()  # the rest of the body is not read: the connection cannot go on
                    return refused
                record.bytes_received = received
                for filename, content in files:
                    self._store(Upload("https", method, path, filename, content, record.peer))
                record.status = 201 if method == "PUT" else 200
                record.detail = ", ".join(f"{name!r} ({len(data)} B)" for name, data in files) or "no file in the body"
                return web.Response(status=record.status, text="stored\n")
            record.status = 405
            return web.Response(status=405, text="method not allowed\n", headers={hdrs.ALLOW: "GET, HEAD, PUT, POST"})
        finally:
            self._record(record)

    async def _http_upload(self, request: web.Request, method: str, path: str) -> tuple[list[tuple[str, bytes]], int]:
        """The files in a PUT/POST, and the bytes received: PUT = the body, named by the path; POST = each file
        of a multipart/form-data body, or the raw body (named by Content-Disposition, else the path)."""
        if request.content_length is None and not request.headers.get(hdrs.TRANSFER_ENCODING):
            # A body with neither length nor chunking would be empty (RFC 9112 §6.3): a client that meant to
            # upload something framed it wrong, which is worth its own answer rather than an empty file.
            raise _BodyError(411, "Content-Length required (or chunked transfer encoding)")
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise _BodyError(413, f"body larger than {MAX_BODY} bytes")
        if method == "POST" and request.content_type == "multipart/form-data":
            files: list[tuple[str, bytes]] = []
            total = 0
            async for part in await request.multipart():
                if not isinstance(part, BodyPartReader):
                    continue  # a nested multipart: no file of ours
                data = await _bounded(part, MAX_BODY - total)
                total += len(data)
                if part.filename is not None:
                    files.append((posixpath.basename(part.filename), data))
            return files, total
        body = await _bounded(request.content, MAX_BODY)
        name = None
        disposition = request.headers.get(hdrs.CONTENT_DISPOSITION)
        if disposition:
            name = content_disposition_filename(parse_content_disposition(disposition)[1], "filename")
        name = name or posixpath.basename(path) or "upload"
        return [(posixpath.basename(name), body)], len(body)


class _PeerNoted(_AlertingSSLProtocol):
    """The endpoint's server-side TLS (it sends the alert of a refused handshake), knowing its peer for the record."""

    peer = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)
        super().connection_made(transport)


class _BodyError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def _bounded(source: Any, limit: int) -> bytes:
    """All of a body (an aiohttp StreamReader or BodyPartReader), or 413 beyond `limit` bytes."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = await (source.read_chunk(65536) if isinstance(source, BodyPartReader) else source.read(65536))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise _BodyError(413, f"body larger than {MAX_BODY} bytes")
        chunks.append(chunk)


def _request_peer(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(request.remote)


# ==============================================================================================
# FTP (aioftp)
# ==============================================================================================


class _AnyLogin(aioftp.AbstractUserManager):
    """Any user name with any password (anonymous too): the harness checks the transfer, not the login."""

    async def get_user(self, login: str) -> tuple[aioftp.AbstractUserManager.GetUserResponse, aioftp.User | None, str]:
        user = aioftp.User(login or "anonymous", base_path=Path("/"), home_path=PurePosixPath("/"))
        return aioftp.AbstractUserManager.GetUserResponse.PASSWORD_REQUIRED, user, "any password will do"

    async def authenticate(self, user: aioftp.User, password: str) -> bool:
        return True

    async def notify_logout(self, user: aioftp.User) -> None:
        return None


class _FilesView(aioftp.AbstractPathIO[PurePosixPath]):
    """The file server's files as aioftp's file system: read-only, every path that is no file is a directory.

    Transfers do not come through here (the server's RETR/STOR record them); this answers CWD, MLSD/MLST.
    """

    files: dict[str, bytes] = {}  # set per server by a subclass (`_FtpServer`)

    def _content(self, path: PurePosixPath) -> bytes | None:
        return self.files.get(_normalise(str(path)))

    async def exists(self, path: PurePosixPath) -> bool:
        return True

    async def is_dir(self, path: PurePosixPath) -> bool:
        return self._content(path) is None

    async def is_file(self, path: PurePosixPath) -> bool:
        return self._content(path) is not None

    async def mkdir(self, path: PurePosixPath, *, parents: bool = False, exist_ok: bool = False) -> None:
        return None  # virtual directories: every directory exists already

    async def rmdir(self, path: PurePosixPath) -> None:
        raise aioftp.PathIOError("read-only")

    async def unlink(self, path: PurePosixPath) -> None:
        raise aioftp.PathIOError("read-only")

    def list(self, path: PurePosixPath) -> AsyncIterable[PurePosixPath]:
        names = _names_in(self.files, _normalise(str(path)))

        async def entries() -> AsyncIterator[PurePosixPath]:
            for name in names:
                yield path / name

        return entries()

    async def stat(self, path: PurePosixPath) -> os.stat_result:
        content = self._content(path)
        mode = stat.S_IFDIR | 0o755 if content is None else stat.S_IFREG | 0o644
        return os.stat_result((mode, 0, 0, 1, 0, 0, len(content or b""), 0, 0, 0))

    async def _open(self, path: PurePosixPath, mode: str) -> io.BytesIO:
        raise aioftp.PathIOError("transfers are served by the file server, not the path layer")

    async def seek(self, file: io.BytesIO, offset: int, whence: int = io.SEEK_SET) -> int:
        return file.seek(offset, whence)

    async def write(self, file: io.BytesIO, data: bytes) -> int:
        return file.write(data)

    async def read(self, file: io.BytesIO, block_size: int) -> bytes:
        return file.read(block_size)

    async def close(self, file: io.BytesIO) -> None:
        file.close()

    async def rename(self, source: PurePosixPath, destination: PurePosixPath) -> PurePosixPath:
        raise aioftp.PathIOError("read-only")


class _FtpServer(aioftp.Server):
    """aioftp's server, plus what the harness needs: its transfers recorded and bounded, active mode
    (PORT/EPRT; aioftp is passive only), SIZE, NLST, NOOP, OPTS, and MKD in virtual directories."""

    def __init__(self, owner: FileServer) -> None:
        view = type("_OwnersFiles", (_FilesView,), {"files": owner.files})
        super().__init__(_AnyLogin(), path_io_factory=view, socket_timeout=owner.timeout,
                         idle_timeout=owner.timeout, wait_future_timeout=owner.timeout,
                         welcome_message="ev.energy OCPP harness file server (FTP)")
        self.owner = owner
        self.commands_mapping.update(
            {"size": self.size, "nlst": self.nlst, "port": self.port, "eprt": self.eprt, "noop": self.noop,
             "opts": self.opts}
        )

    async def parse_command(self, stream: Any, censor_commands: tuple[str] = ("pass",)) -> Any:
        """The next command; False (end of the session) when the client closed the control connection or went
        silent. aioftp raises there, and after QUIT nobody retrieves it ("Task exception was never retrieved")."""
        try:
            return await super().parse_command(stream, censor_commands)
        except (ConnectionError, TimeoutError):
            return False

    def _where(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> str:
        return _normalise(str(self.get_paths(connection, rest)[1]))

    def _record(self, connection: aioftp.Connection, method: str, path: str, status: int, **more: Any) -> None:
        user = connection.user.login if connection.future.user.done() else None
        self.owner._record(TransferRecord("ftp", method, path, _ftp_peer(connection), status, user=user, **more))

    # --- data connections: passive as aioftp does it, or active (the client's PORT/EPRT address) ---

    async def port(self, connection: aioftp.Connection, rest: str) -> bool:
        if not _logged_in(connection):
            return True
        try:
            values = [int(n) for n in rest.split(",")]
            if len(values) != 6 or not all(0 <= v <= 255 for v in values):
                raise ValueError
        except ValueError:
            connection.response("501", "bad PORT argument")
            return True
        connection.active_address = (".".join(str(v) for v in values[:4]), values[4] * 256 + values[5])
        connection.response("200", "PORT ok")
        return True

    async def eprt(self, connection: aioftp.Connection, rest: str) -> bool:
        if not _logged_in(connection):
            return True
        fields = rest[1:-1].split(rest[0]) if len(rest) >= 2 else []
        try:
            connection.active_address = (fields[1], int(fields[2]))
        except (IndexError, ValueError):
            connection.response("501", "bad EPRT argument")
            return True
        connection.response("200", "EPRT ok")
        return True

    async def _data(self, connection: aioftp.Connection) -> aioftp.ThrottleStreamIO | None:
        """The data connection for the transfer just announced (150); None after a 425 reply."""
        timeout = self.owner.timeout
        try:
            if "active_address" in connection and connection.future.active_address.done():
                host, port = connection.active_address
                del connection.active_address
                async with asyncio.timeout(timeout):
                    reader, writer = await asyncio.open_connection(host, port)
                return aioftp.ThrottleStreamIO(reader, writer, throttles=connection.command_connection.throttles,
                                               timeout=timeout)
            if "passive_server" in connection and connection.future.passive_server.done():
                async with asyncio.timeout(timeout):
                    stream: aioftp.ThrottleStreamIO = await asyncio.shield(connection.future.data_connection)
                del connection.data_connection
                return stream
        except (OSError, TimeoutError) as exc:
            connection.response("425", f"cannot open the data connection: {exc or type(exc).__name__}")
            return None
        connection.response("425", "use PASV, EPSV, PORT or EPRT first")
        return None

    def _transfer(self, connection: aioftp.Connection, work: Any) -> None:
        task = asyncio.create_task(work)
        connection.extra_workers.add(task)

    # --- transfers ---

    async def size(self, connection: aioftp.Connection, rest: str) -> bool:
        if not _logged_in(connection):
            return True
        content = self.owner.files.get(self._where(connection, rest))
        connection.response(*(("550", "no such file") if content is None else ("213", str(len(content)))))
        return True

    async def noop(self, connection: aioftp.Connection, rest: str) -> bool:
        if not _logged_in(connection):
            return True
        connection.response("200", "ok")
        return True

    async def mkd(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
        # Virtual directories: every one exists, so creating one succeeds (aioftp would answer 550 "exists",
        # which a client creating its upload folder first may take as a failure).
        if not _logged_in(connection):
            return True
        connection.response("257", f'"{self._where(connection, rest)}" created')
        return True

    async def opts(self, connection: aioftp.Connection, rest: str) -> bool:
        connection.response("200", "ok")  # OPTS UTF8 ON: names are UTF-8 already
        return True

    async def retr(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
        if not _logged_in(connection):
            return True
        path = self._where(connection, rest)
        content = self.owner.files.get(path)
        if content is None:
            connection.response("550", "no such file")
            self._record(connection, "RETR", path, 550, detail="no such file")
            return True
        connection.response("150", f"sending {path} ({len(content)} bytes)")
        self._transfer(connection, self._send(connection, "RETR", path, content))
        return True

    async def stor(self, connection: aioftp.Connection, rest: str | PurePosixPath, mode: str = "wb") -> bool:
        if not _logged_in(connection):
            return True
        path = self._where(connection, rest)
        connection.response("150", f"ready to receive {path}")
        self._transfer(connection, self._receive(connection, "STOR" if mode == "wb" else "APPE", path))
        return True

    async def _list(self, connection: aioftp.Connection, rest: str, names_only: bool) -> bool:
        argument = rest.split()[-1] if rest and not rest.startswith("-") else ""
        target = self._where(connection, argument) if argument else _normalise(str(connection.current_directory))
        names = _names_in(self.owner.files, target)
        if names_only:
            text = "".join(f"{n}\r\n" for n in names)
        else:
            text = "".join(f"-rw-r--r-- 1 ftp ftp {len(self.owner.files.get(posixpath.join(target, n), b''))} "
                           f"Jan 01 00:00 {n}\r\n" for n in names)
        connection.response("150", "listing")
        self._transfer(connection, self._send(connection, "NLST" if names_only else "LIST", target, text.encode()))
        return True

    async def list(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> bool:
        if not _logged_in(connection):
            return True
        return await self._list(connection, str(rest), names_only=False)

    async def nlst(self, connection: aioftp.Connection, rest: str) -> bool:
        if not _logged_in(connection):
            return True
        return await self._list(connection, rest, names_only=True)

    async def _send(self, connection: aioftp.Connection, method: str, path: str, content: bytes) -> None:
        stream = await self._data(connection)
        if stream is None:
            self._record(connection, method, path, 425, detail="no data connection")
            return
        try:
            async with stream:
                for offset in range(0, len(content), connection.block_size):
                    await stream.write(content[offset:offset + connection.block_size])
        except (OSError, TimeoutError, asyncio.CancelledError) as exc:
            connection.response("426", "transfer aborted")
            self._record(connection, method, path, 426, detail=str(exc) or type(exc).__name__)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        connection.response("226", "transfer complete")
        self._record(connection, method, path, 226, bytes_sent=len(content))

    async def _receive(self, connection: aioftp.Connection, method: str, path: str) -> None:
        stream = await self._data(connection)
        if stream is None:
            self._record(connection, method, path, 425, detail="no data connection")
            return
        chunks: list[bytes] = []
        total = 0
        try:
            async with stream:
                async for chunk in stream.iter_by_block(connection.block_size):
                    total += len(chunk)
                    if total > MAX_BODY:
                        raise _BodyError(552, f"file larger than {MAX_BODY} bytes")
                    chunks.append(chunk)
        except (_BodyError, OSError, TimeoutError, asyncio.CancelledError) as exc:
            code = exc.status if isinstance(exc, _BodyError) else 426
            connection.response(str(code), "transfer aborted")
            self._record(connection, method, path, code, bytes_received=total, detail=str(exc) or type(exc).__name__)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        content = b"".join(chunks)
        self.owner._store(Upload("ftp", method, path, posixpath.basename(path), content, _ftp_peer(connection)))
        connection.response("226", "file stored")
        self._record(connection, method, path, 226, bytes_received=len(content))


def _logged_in(connection: aioftp.Connection) -> bool:
    """aioftp's login check (its ConnectionConditions decorator, which is typed for its own class's methods)."""
    if connection.future.logged.done():
        return True
    connection.response("503", "bad sequence of commands (not logged in)")
    return False


def _ftp_peer(connection: aioftp.Connection) -> str:
    return f"{connection.client_host}:{connection.client_port}"


def _names_in(files: dict[str, bytes], directory: str) -> list[str]:
    """The entries (files and virtual directories) directly in `directory`."""
    prefix = directory.rstrip("/") + "/"
    return sorted({p[len(prefix):].split("/", 1)[0] for p in files if p.startswith(prefix)})


# --- helpers -------------------------------------------------------------------------------------


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _normalise(path: str) -> str:
    """An absolute, normalised POSIX path (no '..' escapes above the root)."""
    normal = posixpath.normpath("/" + path.lstrip("/"))
    while normal.startswith("//"):
        normal = normal[1:]
    return normal
