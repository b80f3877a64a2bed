"""The harness's own file server for FW-1: firmware to download, a place to upload diagnostics.

The platform tells a charger where to fetch firmware (UpdateFirmware.location) and where to put
its diagnostics (GetDiagnostics.location); a charger does that with HTTP(S) or FTP (OCPP 1.6
§5.9, §5.19; the `SupportedFileTransferProtocols` key lists FTP, FTPS, HTTP, HTTPS). To check
that a transfer *really* happened, the harness serves both ends itself and records every request:

- HTTPS, with the harness CA's server certificate (the one the endpoint presents, so a charger
  that trusts the endpoint trusts this server too). GET/HEAD serve the files added with
  `add_file`; PUT stores the body as an upload named by the path; POST stores a raw body, or each
  file of a multipart/form-data body. `Expect: 100-continue`, chunked bodies and keep-alive work.
- FTP (plain, RFC 959; standard library only): anonymous or any login, passive (PASV, EPSV) and
  active (PORT, EPRT) data connections, RETR/STOR/SIZE/LIST/NLST, virtual directories. No FTPS:
  `AUTH TLS` is answered 502 ("not implemented"), which a client takes as "no TLS here".

All asyncio, on the caller's loop. Every request (also failed and refused ones) is a
`TransferRecord` in `requests`; every file received is an `Upload` in `uploads`. Waits are
event-driven and bounded (`wait_request`, `wait_upload`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.parser
import email.policy
import ipaddress
import logging
import posixpath
import ssl
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic as _monotonic
from typing import Any

from harness import tls

log = logging.getLogger("harness.fileserver")

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024  # a diagnostics file or a test firmware image; more is a bug or an attack
MAX_RECORDS = 2000


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
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._event = asyncio.Event()

    # --- life cycle ----------------------------------------------------------------------------

    async def start(self) -> FileServer:
        if self.enable_https:
            assert self.certs is not None
            self._ssl = self.certs.server_context()
            server = await asyncio.start_server(self._http_client, self.host, 0, limit=MAX_HEAD)
            self._servers.append(server)
            self.https_port = server.sockets[0].getsockname()[1]
        if self.enable_ftp:
            server = await asyncio.start_server(self._ftp_client, self.host, 0, limit=MAX_HEAD)
            self._servers.append(server)
            self.ftp_port = server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)
        self._servers.clear()

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

    async def _wait(self, find: Callable[[], Any], within: float) -> Any:
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

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ==========================================================================================
    # HTTPS
    # ==========================================================================================

    async def _http_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        peer = _peer(writer)
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    await writer.start_tls(self._ssl)  # type: ignore[arg-type]
            except (ssl.SSLError, OSError, TimeoutError, ConnectionError) as exc:
                self._record(TransferRecord("https", "TLS", "", peer, 0, detail=tls.describe_tls_failure(exc)))
                return
            while await self._http_request(reader, writer, peer):
                pass
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _http_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str) -> bool:
        """Serve one request; True to read another on the same connection (keep-alive)."""
        try:
            async with asyncio.timeout(self.timeout):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                self._record(TransferRecord("https", "?", "", peer, 0, detail="connection closed inside the request head"))
            return False
        except asyncio.LimitOverrunError:
            await _respond(writer, 431, b"request head too large\n", close=True)
            self._record(TransferRecord("https", "?", "", peer, 431, detail="request head too large"))
            return False
        except TimeoutError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            await _respond(writer, 400, b"bad request line\n", close=True)
            self._record(TransferRecord("https", "?", "", peer, 400, detail=f"bad request line {lines[0][:80]!r}"))
            return False
        method, target, version = parts[0].upper(), parts[1], parts[2]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        path = _normalise(urllib.parse.unquote(urllib.parse.urlsplit(target).path or "/"))
        agent = headers.get("user-agent")
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        record = TransferRecord("https", method, path, peer, 0, user_agent=agent)

        if method in ("GET", "HEAD"):
            content = self.files.get(path)
            if content is None:
                record.status = 404
                await _respond(writer, 404, b"no such file\n", close=not keep, head_only=method == "HEAD")
                record.detail = "no such file"
            else:
                record.status = 200
                await _respond(writer, 200, content, close=not keep, head_only=method == "HEAD",
                               content_type="application/octet-stream")
                record.bytes_sent = 0 if method == "HEAD" else len(content)
            self._record(record)
            return keep

        if method in ("PUT", "POST"):
            try:
                body = await self._http_body(reader, writer, headers)
            except _BodyError as exc:
                record.status = exc.status
                record.detail = exc.reason
                await _respond(writer, exc.status, exc.reason.encode() + b"\n", close=True)
                self._record(record)
                return False
            record.bytes_received = len(body)
            files = _uploaded_files(method, path, headers, body)
            for filename, content in files:
                self._store(Upload("https", method, path, filename, content, peer))
            record.status = 201 if method == "PUT" else 200
            record.detail = ", ".join(f"{name!r} ({len(content)} B)" for name, content in files) or "no file in the body"
            await _respond(writer, record.status, b"stored\n", close=not keep)
            self._record(record)
            return keep

        record.status = 405
        await _respond(writer, 405, b"method not allowed\n", close=True, extra={"Allow": "GET, HEAD, PUT, POST"})
        self._record(record)
        return False

    async def _http_body(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str]) -> bytes:
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        async with asyncio.timeout(self.timeout):
            if "chunked" in headers.get("transfer-encoding", "").lower():
                chunks: list[bytes] = []
                total = 0
                while True:
                    size_line = await reader.readuntil(b"\r\n")
                    try:
                        size = int(size_line.split(b";", 1)[0].strip(), 16)
                    except ValueError:
                        raise _BodyError(400, "bad chunk size") from None
                    if size == 0:
                        # trailers, up to the empty line
                        while (await reader.readuntil(b"\r\n")) != b"\r\n":
                            pass
                        return b"".join(chunks)
                    total += size
                    if total > MAX_BODY:
                        raise _BodyError(413, f"body larger than {MAX_BODY} bytes")
                    chunks.append(await reader.readexactly(size))
                    await reader.readexactly(2)
            length_text = headers.get("content-length")
            if length_text is None:
                raise _BodyError(411, "Content-Length required (or chunked transfer encoding)")
            try:
                length = int(length_text)
            except ValueError:
                raise _BodyError(400, "bad Content-Length") from None
            if length < 0 or length > MAX_BODY:
                raise _BodyError(413, f"body larger than {MAX_BODY} bytes")
            return await reader.readexactly(length)

    # ==========================================================================================
    # FTP (RFC 959, passive and active; no TLS)
    # ==========================================================================================

    async def _ftp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        session = _FtpSession(self, reader, writer)
        try:
            await session.run()
        except (ConnectionError, OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            await session.close_data()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)


class _BodyError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _FtpSession:
    """One FTP control connection."""

    def __init__(self, server: FileServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.peer = _peer(writer)
        self.user: str | None = None
        self.logged_in = False
        self.cwd = "/"
        self.passive: asyncio.Server | None = None
        self.passive_conn: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None = None
        self.active: tuple[str, int] | None = None

    async def reply(self, text: str) -> None:
        self.writer.write((text + "\r\n").encode("utf-8"))
        await self.writer.drain()

    async def run(self) -> None:
        await self.reply("220 ev.energy OCPP harness file server (FTP)")
        while True:
            async with asyncio.timeout(self.server.timeout):
                line = await self.reader.readline()
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            command, _, argument = text.partition(" ")
            command = command.upper()
            if command == "QUIT":
                await self.reply("221 bye")
                return
            handler = getattr(self, f"cmd_{command}", None)
            if handler is None:
                await self.reply(f"502 {command} not implemented")
                continue
            if not self.logged_in and command not in _FTP_BEFORE_LOGIN:
                await self.reply("530 log in with USER and PASS first")
                continue
            await handler(argument)

    # --- login and navigation ---

    async def cmd_USER(self, arg: str) -> None:  # noqa: N802
        self.user = arg or "anonymous"
        self.logged_in = False
        await self.reply("331 any password will do")

    async def cmd_PASS(self, arg: str) -> None:  # noqa: N802
        if self.user is None:
            await self.reply("503 USER first")
            return
        self.logged_in = True
        await self.reply("230 logged in")

    async def cmd_AUTH(self, arg: str) -> None:  # noqa: N802
        await self.reply("502 no TLS on this server (plain FTP)")

    async def cmd_SYST(self, arg: str) -> None:  # noqa: N802
        await self.reply("215 UNIX Type: L8")

    async def cmd_FEAT(self, arg: str) -> None:  # noqa: N802
        await self.reply("211-Features:\r\n SIZE\r\n EPSV\r\n EPRT\r\n UTF8\r\n211 End")

    async def cmd_OPTS(self, arg: str) -> None:  # noqa: N802
        await self.reply("200 ok")

    async def cmd_NOOP(self, arg: str) -> None:  # noqa: N802
        await self.reply("200 ok")

    async def cmd_TYPE(self, arg: str) -> None:  # noqa: N802
        await self.reply(f"200 type {arg.upper() or 'I'}")

    async def cmd_MODE(self, arg: str) -> None:  # noqa: N802
        await self.reply("200 stream mode" if arg.upper() in ("S", "") else "504 only stream mode")

    async def cmd_STRU(self, arg: str) -> None:  # noqa: N802
        await self.reply("200 file structure" if arg.upper() in ("F", "") else "504 only file structure")

    async def cmd_PWD(self, arg: str) -> None:  # noqa: N802
        await self.reply(f'257 "{self.cwd}" is the current directory')

    cmd_XPWD = cmd_PWD

    async def cmd_CWD(self, arg: str) -> None:  # noqa: N802
        self.cwd = self.resolve(arg or "/")
        await self.reply(f'250 directory is now "{self.cwd}"')

    async def cmd_CDUP(self, arg: str) -> None:  # noqa: N802
        self.cwd = posixpath.dirname(self.cwd.rstrip("/")) or "/"
        await self.reply(f'250 directory is now "{self.cwd}"')

    async def cmd_MKD(self, arg: str) -> None:  # noqa: N802
        await self.reply(f'257 "{self.resolve(arg)}" created')

    def resolve(self, arg: str) -> str:
        return _normalise(arg if arg.startswith("/") else posixpath.join(self.cwd, arg))

    # --- data connections ---

    async def close_data(self) -> None:
        if self.passive is not None:
            self.passive.close()
            self.passive = None
        if self.passive_conn is not None and self.passive_conn.done() and not self.passive_conn.cancelled():
            with contextlib.suppress(Exception):
                self.passive_conn.result()[1].close()
        self.passive_conn = None

    async def _listen(self) -> int:
        await self.close_data()
        self.active = None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = loop.create_future()

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if future.done():
                writer.close()
                return
            future.set_result((reader, writer))

        local = self.writer.get_extra_info("sockname")[0]
        self.passive = await asyncio.start_server(accepted, local, 0)
        self.passive_conn = future
        return self.passive.sockets[0].getsockname()[1]

    async def cmd_PASV(self, arg: str) -> None:  # noqa: N802
        local = self.writer.get_extra_info("sockname")[0]
        try:
            address = ipaddress.ip_address(local)
        except ValueError:
            address = None
        if address is not None and address.version == 6:
            mapped = address.ipv4_mapped  # type: ignore[union-attr]
            if mapped is None:
                await self.reply("522 use EPSV on IPv6")
                return
            local = str(mapped)
        port = await self._listen()
        numbers = local.split(".") + [str(port >> 8), str(port & 0xFF)]
        await self.reply(f"227 Entering Passive Mode ({','.join(numbers)})")

    async def cmd_EPSV(self, arg: str) -> None:  # noqa: N802
        if arg.upper() == "ALL":
            await self.reply("200 EPSV ALL ok")
            return
        port = await self._listen()
        await self.reply(f"229 Entering Extended Passive Mode (|||{port}|)")

    async def cmd_PORT(self, arg: str) -> None:  # noqa: N802
        numbers = arg.split(",")
        try:
            values = [int(n) for n in numbers]
            if len(values) != 6 or not all(0 <= v <= 255 for v in values):
                raise ValueError
        except ValueError:
            await self.reply("501 bad PORT argument")
            return
        await self.close_data()
        self.active = (".".join(str(v) for v in values[:4]), values[4] * 256 + values[5])
        await self.reply("200 PORT ok")

    async def cmd_EPRT(self, arg: str) -> None:  # noqa: N802
        if len(arg) < 2:
            await self.reply("501 bad EPRT argument")
            return
        fields = arg[1:-1].split(arg[0])
        try:
            host, port = fields[1], int(fields[2])
        except (IndexError, ValueError):
            await self.reply("501 bad EPRT argument")
            return
        await self.close_data()
        self.active = (host, port)
        await self.reply("200 EPRT ok")

    async def _data(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The data connection for the transfer that follows; None after a 425 reply."""
        timeout = self.server.timeout
        try:
            if self.passive_conn is not None:
                async with asyncio.timeout(timeout):
                    conn = await self.passive_conn
                if self.passive is not None:
                    self.passive.close()
                    self.passive = None
                self.passive_conn = None
                return conn
            if self.active is not None:
                host, port = self.active
                self.active = None
                async with asyncio.timeout(timeout):
                    return await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as exc:
            await self.reply(f"425 cannot open the data connection: {exc}")
            return None
        await self.reply("425 use PASV, EPSV, PORT or EPRT first")
        return None

    # --- transfers ---

    async def cmd_SIZE(self, arg: str) -> None:  # noqa: N802
        path = self.resolve(arg)
        content = self.server.files.get(path)
        if content is None:
            await self.reply("550 no such file")
            return
        await self.reply(f"213 {len(content)}")

    async def cmd_RETR(self, arg: str) -> None:  # noqa: N802
        path = self.resolve(arg)
        record = TransferRecord("ftp", "RETR", path, self.peer, 0, user=self.user)
        content = self.server.files.get(path)
        if content is None:
            await self.close_data()
            await self.reply("550 no such file")
            record.status, record.detail = 550, "no such file"
            self.server._record(record)
            return
        conn = await self._data()
        if conn is None:
            record.status, record.detail = 425, "no data connection"
            self.server._record(record)
            return
        _, data_writer = conn
        await self.reply(f"150 sending {path} ({len(content)} bytes)")
        try:
            data_writer.write(content)
            await data_writer.drain()
            data_writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(data_writer.wait_closed(), self.server.timeout)
        except (OSError, ConnectionError) as exc:
            await self.reply("426 transfer aborted")
            record.status, record.detail = 426, str(exc)
            self.server._record(record)
            return
        await self.reply("226 transfer complete")
        record.status, record.bytes_sent = 226, len(content)
        self.server._record(record)

    async def cmd_STOR(self, arg: str) -> None:  # noqa: N802
        path = self.resolve(arg)
        record = TransferRecord("ftp", "STOR", path, self.peer, 0, user=self.user)
        conn = await self._data()
        if conn is None:
            record.status, record.detail = 425, "no data connection"
            self.server._record(record)
            return
        data_reader, data_writer = conn
        await self.reply(f"150 ready to receive {path}")
        chunks: list[bytes] = []
        total = 0
        try:
            async with asyncio.timeout(self.server.timeout):
                while True:
                    chunk = await data_reader.read(65536)
                    if not chunk:
                        break
                    total += len(chunk)
                    if total > MAX_BODY:
                        raise _BodyError(552, f"file larger than {MAX_BODY} bytes")
                    chunks.append(chunk)
        except (_BodyError, OSError, ConnectionError, TimeoutError) as exc:
            data_writer.close()
            code = exc.status if isinstance(exc, _BodyError) else 426
            await self.reply(f"{code} transfer aborted")
            record.status, record.detail, record.bytes_received = code, str(exc) or type(exc).__name__, total
            self.server._record(record)
            return
        data_writer.close()
        content = b"".join(chunks)
        self.server._store(Upload("ftp", "STOR", path, posixpath.basename(path), content, self.peer))
        await self.reply("226 file stored")
        record.status, record.bytes_received = 226, len(content)
        self.server._record(record)

    cmd_APPE = cmd_STOR

    async def _listing(self, arg: str, names_only: bool) -> None:
        target = self.resolve(arg.split()[-1]) if arg and not arg.startswith("-") else self.cwd
        record = TransferRecord("ftp", "NLST" if names_only else "LIST", target, self.peer, 0, user=self.user)
        conn = await self._data()
        if conn is None:
            record.status = 425
            self.server._record(record)
            return
        _, data_writer = conn
        prefix = target.rstrip("/") + "/"
        names = sorted({p[len(prefix):].split("/", 1)[0] for p in self.server.files if p.startswith(prefix)})
        if names_only:
            text = "".join(f"{n}\r\n" for n in names)
        else:
            text = "".join(
                f"-rw-r--r-- 1 ftp ftp {len(self.server.files.get(prefix + n, b''))} Jan 01 00:00 {n}\r\n"
                for n in names
            )
        await self.reply("150 listing")
        data_writer.write(text.encode("utf-8"))
        with contextlib.suppress(Exception):
            await data_writer.drain()
        data_writer.close()
        await self.reply("226 listing sent")
        record.status, record.bytes_sent = 226, len(text)
        self.server._record(record)

    async def cmd_LIST(self, arg: str) -> None:  # noqa: N802
        await self._listing(arg, names_only=False)

    async def cmd_NLST(self, arg: str) -> None:  # noqa: N802
        await self._listing(arg, names_only=True)

    async def cmd_ABOR(self, arg: str) -> None:  # noqa: N802
        await self.close_data()
        await self.reply("226 nothing to abort")


_FTP_BEFORE_LOGIN = frozenset({"USER", "PASS", "AUTH", "SYST", "FEAT", "OPTS", "NOOP"})


# --- helpers -------------------------------------------------------------------------------------


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def _normalise(path: str) -> str:
    """An absolute, normalised POSIX path (no '..' escapes above the root)."""
    normal = posixpath.normpath("/" + path.lstrip("/"))
    while normal.startswith("//"):
        normal = normal[1:]
    return normal


_REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            411: "Length Required", 413: "Content Too Large", 431: "Request Header Fields Too Large"}


async def _respond(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    *,
    close: bool,
    head_only: bool = False,
    content_type: str = "text/plain; charset=utf-8",
    extra: dict[str, str] | None = None,
) -> None:
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
        "Server: ev.energy-ocpp-harness-fileserver",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        f"Connection: {'close' if close else 'keep-alive'}",
    ]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body))
    await writer.drain()


def _uploaded_files(method: str, path: str, headers: dict[str, str], body: bytes) -> list[tuple[str, bytes]]:
    """The files in a PUT/POST: PUT = the body, named by the path; POST = multipart parts, or the raw body."""
    content_type = headers.get("content-type", "")
    if method == "POST" and content_type.lower().startswith("multipart/form-data"):
        parser = email.parser.BytesParser(policy=email.policy.HTTP)
        message = parser.parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body)
        files: list[tuple[str, bytes]] = []
        if message.is_multipart():
            for part in message.iter_parts():
                filename = part.get_filename()
                if filename is None:
                    continue
                payload = part.get_payload(decode=True)
                files.append((posixpath.basename(filename), payload if isinstance(payload, bytes) else b""))
        return files
    name = None
    disposition = headers.get("content-disposition")
    if disposition:
        parser = email.parser.BytesParser(policy=email.policy.HTTP)
        name = parser.parsebytes(f"Content-Disposition: {disposition}\r\n\r\n".encode("latin-1")).get_filename()
    name = name or posixpath.basename(path) or "upload"
    return [(posixpath.basename(name), body)]

