"""The harness's file server (FW-1) against real clients other than its own libraries: urllib over HTTPS, ftplib
(the reference charger's aiohttp/aioftp clients are exercised by suites/test_firmware.py)."""

from __future__ import annotations

import asyncio
import ftplib
import io
import ssl
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from harness import tls
from harness.fileserver import FileServer

pytestmark = pytest.mark.asyncio(loop_scope="session")

FIRMWARE = bytes(range(256)) * 300  # 76.8 kB, every byte value


@pytest_asyncio.fixture(loop_scope="session")
async def server(certs_dir: Path) -> AsyncIterator[FileServer]:
    fs = FileServer(tls.CertStore(certs_dir), timeout=5)
    await fs.start()
    fs.add_file("/firmware/fw-2.0.0.bin", FIRMWARE)
    try:
        yield fs
    finally:
        await fs.stop()


def _opener(certs_dir: Path) -> urllib.request.OpenerDirector:
    ctx = tls.client_context(tls.CertStore(certs_dir).ca_pem)
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))


def _fetch(opener: urllib.request.OpenerDirector, request: urllib.request.Request | str) -> tuple[int, bytes]:
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# --- HTTPS ---------------------------------------------------------------------------------------


async def test_https_get_serves_the_file_and_records_it(server: FileServer, certs_dir: Path) -> None:
    url = server.url("/firmware/fw-2.0.0.bin")
    assert url.startswith("https://127.0.0.1:")
    status, body = await asyncio.to_thread(_fetch, _opener(certs_dir), url)
    assert (status, body) == (200, FIRMWARE)
    fetched = server.fetches("/firmware/fw-2.0.0.bin")
    assert len(fetched) == 1
    assert fetched[0].bytes_sent == len(FIRMWARE) and fetched[0].protocol == "https"
    assert fetched[0].user_agent and "Python-urllib" in fetched[0].user_agent


async def test_https_missing_file_is_404_and_recorded(server: FileServer, certs_dir: Path) -> None:
    status, _ = await asyncio.to_thread(_fetch, _opener(certs_dir), server.url("/firmware/missing.bin"))
    assert status == 404
    record = server.requests[-1]
    assert (record.method, record.path, record.status) == ("GET", "/firmware/missing.bin", 404)
    assert not server.fetches("/firmware/missing.bin")


async def test_https_head_sends_no_body(server: FileServer, certs_dir: Path) -> None:
    request = urllib.request.Request(server.url("/firmware/fw-2.0.0.bin"), method="HEAD")
    status, body = await asyncio.to_thread(_fetch, _opener(certs_dir), request)
    assert (status, body) == (200, b"")
    assert server.requests[-1].method == "HEAD" and server.requests[-1].bytes_sent == 0
    assert not server.fetches("/firmware/fw-2.0.0.bin", since=server.requests[-1].mono)


async def test_https_put_stores_an_upload(server: FileServer, certs_dir: Path) -> None:
    mark = time.monotonic()
    request = urllib.request.Request(server.url("/diagnostics/diag-1.txt"), data=b"log lines\n", method="PUT")
    status, _ = await asyncio.to_thread(_fetch, _opener(certs_dir), request)
    assert status == 201
    upload = await server.wait_upload(lambda u: u.filename == "diag-1.txt", within=2, since=mark)
    assert upload is not None and upload.content == b"log lines\n" and upload.method == "PUT"
    assert server.requests[-1].bytes_received == len(b"log lines\n")


async def test_https_post_multipart_stores_each_file(server: FileServer, certs_dir: Path) -> None:
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nnot a file\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"diag-2.log\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + b"\x00\x01binary\r\n" + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(server.url("/diagnostics/"), data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    status, _ = await asyncio.to_thread(_fetch, _opener(certs_dir), request)
    assert status == 200
    upload = await server.wait_upload(lambda u: u.filename == "diag-2.log", within=2)
    assert upload is not None and upload.content == b"\x00\x01binary\r\n"
    assert upload.path == "/diagnostics"


async def test_https_raw_post_uses_content_disposition_name(server: FileServer, certs_dir: Path) -> None:
    request = urllib.request.Request(server.url("/upload"), data=b"abc", method="POST",
                                     headers={"Content-Disposition": 'attachment; filename="d3.txt"'})
    status, _ = await asyncio.to_thread(_fetch, _opener(certs_dir), request)
    assert status == 200
    assert await server.wait_upload(lambda u: u.filename == "d3.txt" and u.content == b"abc", within=2)


async def test_https_chunked_put_with_expect_continue(server: FileServer) -> None:
    ctx = tls.client_context(server.certs.ca_pem)  # type: ignore[union-attr]
    reader, writer = await asyncio.open_connection("127.0.0.1", server.https_port, ssl=ctx, server_hostname="127.0.0.1")
    writer.write(b"PUT /diagnostics/chunked.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                 b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
    await writer.drain()
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100 Continue")
    writer.write(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")
    await writer.drain()
    response = await reader.read()
    writer.close()
    assert response.startswith(b"HTTP/1.1 201")
    upload = await server.wait_upload(lambda u: u.filename == "chunked.txt", within=2)
    assert upload is not None and upload.content == b"hello world"


async def test_https_keep_alive_serves_several_requests(server: FileServer) -> None:
    ctx = tls.client_context(server.certs.ca_pem)  # type: ignore[union-attr]
    reader, writer = await asyncio.open_connection("127.0.0.1", server.https_port, ssl=ctx, server_hostname="127.0.0.1")
    for _ in range(2):
        writer.write(b"GET /firmware/fw-2.0.0.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        # HTTP/1.1 connections persist unless a side says "Connection: close" (RFC 9112 §9.3)
        assert head.startswith(b"HTTP/1.1 200") and b"connection: close" not in head.lower()
        assert await reader.readexactly(len(FIRMWARE)) == FIRMWARE
    writer.close()
    assert len(server.fetches("/firmware/fw-2.0.0.bin")) >= 2


async def test_https_unsupported_method_is_405(server: FileServer, certs_dir: Path) -> None:
    request = urllib.request.Request(server.url("/firmware/fw-2.0.0.bin"), method="DELETE")
    status, _ = await asyncio.to_thread(_fetch, _opener(certs_dir), request)
    assert status == 405
    assert server.requests[-1].status == 405


async def test_https_body_without_length_is_411(server: FileServer) -> None:
    ctx = tls.client_context(server.certs.ca_pem)  # type: ignore[union-attr]
    reader, writer = await asyncio.open_connection("127.0.0.1", server.https_port, ssl=ctx, server_hostname="127.0.0.1")
    writer.write(b"PUT /x HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    assert (await reader.read()).startswith(b"HTTP/1.1 411")
    writer.close()


async def test_tls_failure_is_recorded(server: FileServer) -> None:
    untrusted = ssl.create_default_context()  # the system store does not know the harness CA
    with pytest.raises(ssl.SSLError):
        await asyncio.open_connection("127.0.0.1", server.https_port, ssl=untrusted, server_hostname="127.0.0.1")
    record = await server.wait_request(lambda r: r.method == "TLS", within=2)
    assert record is not None and record.status == 0 and record.detail


async def test_server_certificate_is_the_harness_one(server: FileServer) -> None:
    ctx = tls.client_context(server.certs.ca_pem)  # type: ignore[union-attr]
    _, writer = await asyncio.open_connection("localhost", server.https_port, ssl=ctx, server_hostname="localhost")
    ssl_object = writer.get_extra_info("ssl_object")
    assert ssl_object.version() == "TLSv1.2"
    writer.close()


# --- FTP -----------------------------------------------------------------------------------------


def _ftp(server: FileServer, *, passive: bool = True) -> ftplib.FTP:
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", server.ftp_port, timeout=5)
    ftp.login()  # anonymous
    ftp.set_pasv(passive)
    return ftp


@pytest.mark.parametrize("passive", [True, False], ids=["passive", "active"])
async def test_ftp_retr(server: FileServer, passive: bool) -> None:
    def fetch() -> bytes:
        ftp = _ftp(server, passive=passive)
        out = io.BytesIO()
        ftp.cwd("/firmware")
        ftp.retrbinary("RETR fw-2.0.0.bin", out.write)
        size = ftp.size("fw-2.0.0.bin")
        ftp.quit()
        assert size == len(FIRMWARE)
        return out.getvalue()

    assert await asyncio.to_thread(fetch) == FIRMWARE
    record = server.fetches("/firmware/fw-2.0.0.bin")[-1]
    assert (record.protocol, record.method, record.user) == ("ftp", "RETR", "anonymous")


async def test_ftp_extended_passive(server: FileServer) -> None:
    def fetch() -> bytes:
        ftp = _ftp(server)
        ftp.af = 10  # AF_INET6 makes ftplib use EPSV (the connection itself stays IPv4)
        out = io.BytesIO()
        ftp.retrbinary("RETR /firmware/fw-2.0.0.bin", out.write)
        ftp.quit()
        return out.getvalue()

    assert await asyncio.to_thread(fetch) == FIRMWARE


async def test_ftp_missing_file_is_550(server: FileServer) -> None:
    def fetch() -> None:
        ftp = _ftp(server)
        try:
            ftp.retrbinary("RETR /firmware/none.bin", lambda _b: None)
        finally:
            ftp.close()

    with pytest.raises(ftplib.error_perm, match="550"):
        await asyncio.to_thread(fetch)
    assert (server.requests[-1].method, server.requests[-1].status) == ("RETR", 550)


async def test_ftp_stor_stores_an_upload(server: FileServer) -> None:
    def store() -> None:
        ftp = _ftp(server)
        ftp.cwd("/diagnostics")
        ftp.storbinary("STOR diag-ftp.txt", io.BytesIO(b"ftp upload\n"))
        ftp.quit()

    await asyncio.to_thread(store)
    upload = await server.wait_upload(lambda u: u.filename == "diag-ftp.txt", within=2)
    assert upload is not None and upload.content == b"ftp upload\n"
    assert (upload.protocol, upload.path) == ("ftp", "/diagnostics/diag-ftp.txt")


async def test_ftp_listing_and_login_required(server: FileServer) -> None:
    def listing() -> list[str]:
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", server.ftp_port, timeout=5)
        with pytest.raises(ftplib.error_perm, match="not logged in"):
            ftp.sendcmd("PWD")
        ftp.login("user", "secret")
        assert ftp.mkd("/diagnostics/new") == "/diagnostics/new"  # virtual directories: creating one succeeds
        names = ftp.nlst("/firmware")
        assert ftp.pwd() == "/"
        ftp.quit()
        return names

    assert await asyncio.to_thread(listing) == ["fw-2.0.0.bin"]


async def test_ftp_refuses_tls_and_unknown_commands(server: FileServer) -> None:
    def probe() -> None:
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", server.ftp_port, timeout=5)
        with pytest.raises(ftplib.error_perm, match="502"):
            ftp.sendcmd("AUTH TLS")
        ftp.login()
        with pytest.raises(ftplib.error_perm, match="502"):
            ftp.sendcmd("SITE CHMOD 777 x")
        ftp.quit()

    await asyncio.to_thread(probe)


async def test_urllib_ftp_download(server: FileServer) -> None:
    """The way a Python charger built on the standard library downloads an ftp:// URL (CWD per directory, RETR)."""

    def fetch() -> bytes:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(server.url("/firmware/fw-2.0.0.bin", "ftp"), timeout=5) as response:
            return response.read()

    assert await asyncio.to_thread(fetch) == FIRMWARE


async def test_path_traversal_stays_inside_the_root(server: FileServer) -> None:
    assert server.url("/../../etc/passwd").endswith("/etc/passwd")
    assert server.add_file("a/../../b.bin", b"x") == "/b.bin"
    assert server.url("/sp ace.bin").endswith("/sp%20ace.bin")


async def test_url_scheme_checks(certs_dir: Path) -> None:
    fs = FileServer(tls.CertStore(certs_dir), https=False)
    await fs.start()
    try:
        with pytest.raises(ValueError, match="HTTPS is not enabled"):
            fs.url("/x")
        with pytest.raises(ValueError, match="unknown scheme"):
            fs.url("/x", "sftp")
        assert fs.url("/x", "ftp").startswith("ftp://127.0.0.1:")
    finally:
        await fs.stop()
    with pytest.raises(ValueError, match="CertStore"):
        FileServer(None)
