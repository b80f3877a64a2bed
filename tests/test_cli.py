"""`python -m harness serve` and `python -m harness certs` as a user runs them, in a real subprocess."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import ssl
import stat
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from harness import tls
from tests.helpers import basic

pytestmark = pytest.mark.asyncio(loop_scope="session")

ID = "CP-CLI-1"
KEY = "00112233445566778899aabbccddeeff00112233"


async def read_until(stream: asyncio.StreamReader, pattern: str, within: float = 10) -> str:
    seen = []
    async with asyncio.timeout(within):
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"output ended before {pattern!r}; got:\n{''.join(seen)}")
            seen.append(line)
            if re.search(pattern, line):
                return line


async def test_serve_accepts_a_good_charger_and_prints_refusals(certs_dir: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "harness", "serve", "--csms-port", "0", "--certs-dir", str(certs_dir),
        "--charger-id", ID, "--authorization-key", KEY,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    try:
        url = (await read_until(process.stdout, r"URL:")).split()[-1]
        assert url.endswith(f"/ocpp/{ID}")
        ctx = tls.client_context(certs_dir / "ca.pem")
        # A good charger: connected, its BootNotification answered Accepted and printed.
        async with await connect(url, ssl=ctx, subprotocols=["ocpp1.6"], additional_headers=basic(ID, KEY)) as ws:
            await read_until(process.stdout, r"OK .*connected")
            await ws.send('[2,"1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]')
            answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert answer[2]["status"] == "Accepted"
            await read_until(process.stdout, r"BootNotification")
        # Refusals, each printed with its reason.
        with pytest.raises(InvalidStatus):
            await connect(url, ssl=ctx, subprotocols=["ocpp1.6"], additional_headers=basic(ID, "wrong"))
        await read_until(process.stdout, r"NO .*unauthorized HTTP 401.*wrong password")
        with pytest.raises(InvalidStatus):
            await connect(url.replace(ID, "NOBODY"), ssl=ctx, subprotocols=["ocpp1.6"], additional_headers=basic("NOBODY", KEY))
        await read_until(process.stdout, r"NO .*unknown-charger HTTP 404")
        with pytest.raises(InvalidStatus):
            await connect(url.replace("wss://", "ws://"), subprotocols=["ocpp1.6"])
        await read_until(process.stdout, r"NO .*plain-ws-refused")
        modern = tls.client_context(certs_dir / "ca.pem")
        modern.minimum_version = ssl.TLSVersion.TLSv1_3
        with pytest.raises((ssl.SSLError, OSError)):
            await connect(url, ssl=modern, subprotocols=["ocpp1.6"], additional_headers=basic(ID, KEY))
        await read_until(process.stdout, r"NO .*tls-failed")
        ws = await connect(url, ssl=ctx, subprotocols=["ocpp2.0.1"], additional_headers=basic(ID, KEY))
        await read_until(process.stdout, r"NO .*no-subprotocol")
        await ws.close()
        assert KEY not in (await process.stdout.read(0)).decode()
    finally:
        process.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(process.stdout.read(), 10)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        assert KEY.encode() not in rest


async def run_certs(certs_dir: Path, *args: str) -> str:
    """`python -m harness certs` in a subprocess; its output (it must succeed)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "harness", "certs", "--certs-dir", str(certs_dir), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, out.decode()
    return out.decode()


async def test_certs_command_extends_the_server_certificate(tmp_path: Path) -> None:
    text = await run_certs(tmp_path, "--host", "bench.local", "--ip", "192.168.7.20")
    assert "ca.pem" in text and "bench.local" in text and "192.168.7.20" in text
    assert "wss://bench.local:" in text
    for key in tmp_path.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ca_before = (tmp_path / "ca.pem").read_bytes()
    assert "bench.local" in tls.CertStore(tmp_path).ensure().server_names()
    assert (tmp_path / "ca.pem").read_bytes() == ca_before
    # The chain is shaped like the platform's: the user is told what the endpoint sends and what to install.
    assert "leaf + intermediate" in text and "intermediate.pem" in text
    from cryptography import x509

    [root] = x509.load_pem_x509_certificates((tmp_path / "ca.pem").read_bytes())
    [intermediate] = x509.load_pem_x509_certificates((tmp_path / "intermediate.pem").read_bytes())
    intermediate.verify_directly_issued_by(root)
    for kind in ("rsa", "ec"):
        leaf, sent = x509.load_pem_x509_certificates((tmp_path / f"server-{kind}.pem").read_bytes())
        leaf.verify_directly_issued_by(intermediate)
        assert sent == intermediate


async def test_certs_command_upgrades_a_store_from_before_the_chain(tmp_path: Path) -> None:
    """certs/ made by an earlier harness (leaf signed by the root): `certs` keeps the root, adds the intermediate."""
    from tests.test_tls import _old_style_store

    directory = tmp_path / "certs"
    _old_style_store(directory)
    root = (directory / "ca.pem").read_bytes(), (directory / "ca.key").read_bytes()
    text = await run_certs(directory, "--host", "bench.local")
    assert ((directory / "ca.pem").read_bytes(), (directory / "ca.key").read_bytes()) == root
    assert "leaf + intermediate" in text and (directory / "intermediate.pem").exists()
    for key in directory.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    from cryptography import x509

    [intermediate] = x509.load_pem_x509_certificates((directory / "intermediate.pem").read_bytes())
    leaf, sent = x509.load_pem_x509_certificates((directory / "server-rsa.pem").read_bytes())
    leaf.verify_directly_issued_by(intermediate)
    assert sent == intermediate


async def test_certs_command_issues_a_profile_3_client_certificate(tmp_path: Path) -> None:
    text = await run_certs(tmp_path, "--client-cert", "CP-BENCH-3", "--organization", "Acme CPO")
    cert, key = tmp_path / "CP-BENCH-3-client.pem", tmp_path / "CP-BENCH-3-client.key"
    assert str(cert.resolve()) in text and str(key.resolve()) in text
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    subject = x509.load_pem_x509_certificate(cert.read_bytes()).subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CP-BENCH-3"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Acme CPO"
    # A profile-3 endpoint accepts it; the same charger without it is refused (negative control).
    store = tls.CertStore(tmp_path)
    for client_cert, accepted in (((cert, key), True), (None, False)):
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0,
                                            ssl=store.server_context(require_client_cert=True))
        port = server.sockets[0].getsockname()[1]
        try:
            ctx = tls.client_context(tmp_path / "ca.pem", client_cert=client_cert)
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=ctx), 10)
                # TLS 1.3 would report a refused client certificate only on the first read; 1.2 in the handshake.
                refused = False
                writer.close()
            except (ssl.SSLError, ConnectionResetError):
                refused = True
            assert refused is not accepted
        finally:
            server.close()
            await server.wait_closed()
