"""The file server's FTP side: aioftp's server plus what the harness needs (harness.fileserver).

Any login; passive (aioftp's PASV/EPSV) and active (PORT/EPRT, added here) data connections;
RETR/STOR/APPE recorded and bounded; SIZE, NLST, NOOP, OPTS; virtual directories (every path that
is not a file is a directory). See docs/rules-fileserver.md.
"""

from __future__ import annotations

import asyncio
import io
import os
import posixpath
import stat
from collections.abc import AsyncIterable, AsyncIterator, Coroutine
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

import aioftp

from harness.fileserver.records import MAX_BODY, BodyError, TransferRecord, Upload, normalise


class Owner(Protocol):
    """What the FTP side needs of the file server: its files, its timeout, its record."""

    files: dict[str, bytes]
    timeout: float

    def _record(self, record: TransferRecord) -> TransferRecord: ...
    def _store(self, upload: Upload) -> None: ...


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
        return self.files.get(normalise(str(path)))

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
        names = _names_in(self.files, normalise(str(path)))

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


class FtpServer(aioftp.Server):
    """aioftp's server, plus what the harness needs: its transfers recorded and bounded, active mode
    (PORT/EPRT; aioftp is passive only), SIZE, NLST, NOOP, OPTS, and MKD in virtual directories."""

    def __init__(self, owner: Owner) -> None:
        view = type("_OwnersFiles", (_FilesView,), {"files": owner.files})
        super().__init__(_AnyLogin(), path_io_factory=view, socket_timeout=owner.timeout,
                         idle_timeout=owner.timeout, wait_future_timeout=owner.timeout,
                         welcome_message="ev.energy OCPP harness file server (FTP)")
        self.owner = owner
        self.commands_mapping.update(
            {"size": self.size, "nlst": self.nlst, "port": self.port, "eprt": self.eprt, "noop": self.noop,
             "opts": self.opts}
        )

    # aioftp declares tuple[str, str], but its connection loop also takes a bool from this task (False: the session
    # ends), which is what this override returns when the client is gone.
    async def parse_command(  # type: ignore[override]  # returns False too (see above)
        self, stream: aioftp.StreamIO, censor_commands: tuple[str] = ("pass",)
    ) -> tuple[str, str] | bool:
        """The next command; False (end of the session) when the client closed the control connection or went
        silent. aioftp raises there, and after QUIT nobody retrieves it ("Task exception was never retrieved")."""
        try:
            return await super().parse_command(stream, censor_commands)
        except (ConnectionError, TimeoutError):
            return False

    def _where(self, connection: aioftp.Connection, rest: str | PurePosixPath) -> str:
        return normalise(str(self.get_paths(connection, rest)[1]))

    def _record(self, connection: aioftp.Connection, method: str, path: str, status: int, *,
                bytes_sent: int = 0, bytes_received: int = 0, detail: str = "") -> None:
        user = connection.user.login if connection.future.user.done() else None
        self.owner._record(TransferRecord("ftp", method, path, _ftp_peer(connection), status, user=user,
                                          bytes_sent=bytes_sent, bytes_received=bytes_received, detail=detail))

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

    def _transfer(self, connection: aioftp.Connection, work: Coroutine[Any, Any, None]) -> None:
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
        target = self._where(connection, argument) if argument else normalise(str(connection.current_directory))
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
                        raise BodyError(552, f"file larger than {MAX_BODY} bytes")
                    chunks.append(chunk)
        except (BodyError, OSError, TimeoutError, asyncio.CancelledError) as exc:
            code = exc.status if isinstance(exc, BodyError) else 426
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
