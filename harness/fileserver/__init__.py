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

The protocols are the libraries'; this package adds what the harness needs on top: the files it
serves, the bounds, and the record (here: the server and its HTTPS side; `ftp`: the FTP side;
`records`: what was seen). All asyncio, on the caller's loop. Every request (also failed and
refused ones) is a `TransferRecord` in `requests`; every file received is an `Upload` in `uploads`.
Waits are event-driven and bounded (`wait_request`, `wait_upload`). What is accepted and why:
docs/rules-fileserver.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
import ssl
import urllib.parse
from collections.abc import Callable
from time import monotonic as _monotonic
from typing import TypeVar

from aiohttp import BodyPartReader, StreamReader, hdrs, web
from aiohttp.multipart import content_disposition_filename, parse_content_disposition

from harness import tls
from harness.endpoint.handshake import AlertingSSLProtocol
from harness.fileserver.ftp import FtpServer
from harness.fileserver.records import MAX_BODY, BodyError, TransferRecord, Upload, normalise

__all__ = ["MAX_BODY", "MAX_RECORDS", "FileServer", "TransferRecord", "Upload"]

log = logging.getLogger("harness.fileserver")

MAX_RECORDS = 2000

_T = TypeVar("_T")


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
        self._ftp: FtpServer | None = None
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
            self._ftp = FtpServer(self)
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
        normal = normalise(path)
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
        quoted = urllib.parse.quote(normalise(path), safe="/")
        return f"{scheme}://{host}:{port}{quoted}"

    # --- what happened -------------------------------------------------------------------------

    def fetches(self, path: str, since: float = 0.0) -> list[TransferRecord]:
        """Complete downloads of `path` (GET or RETR answered with success and the whole file sent)."""
        normal = normalise(path)
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
        path = normalise(request.path)
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
                except BodyError as exc:
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
            raise BodyError(411, "Content-Length required (or chunked transfer encoding)")
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise BodyError(413, f"body larger than {MAX_BODY} bytes")
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


class _PeerNoted(AlertingSSLProtocol):
    """The endpoint's server-side TLS (it sends the alert of a refused handshake), knowing its peer for the record."""

    peer = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)
        super().connection_made(transport)


async def _bounded(source: StreamReader | BodyPartReader, limit: int) -> bytes:
    """All of a body (an aiohttp StreamReader or BodyPartReader), or 413 beyond `limit` bytes."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = await (source.read_chunk(65536) if isinstance(source, BodyPartReader) else source.read(65536))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise BodyError(413, f"body larger than {MAX_BODY} bytes")
        chunks.append(chunk)


def _request_peer(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(request.remote)
