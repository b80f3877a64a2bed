"""harness.tls on real sockets (127.0.0.1): the endpoint speaks exactly
ELBSecurityPolicy-TLS-1-2-Ext-2018-06 (TLS-1), its certificates are checked the way a good charger
checks them (TLS-3), profile 3 client certificates (AUTH-2), and the ClientHello parser.

Each handshake runs a one-shot server in a thread (plain ssl sockets) against a client in the test
thread; every socket has a timeout, and no test sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import random
import shutil
import socket
import ssl
import stat
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.tls import (
    POLICY_NAME,
    POLICY_SUITE_CODES,
    POLICY_SUITES,
    TLS13_SUITE_CODES,
    CertStore,
    ClientHello,
    client_context,
    describe_tls_failure,
    parse_client_hello,
    tls_version_name,
)

TIMEOUT = 5.0
ECDSA_SUITES = [s for s in POLICY_SUITES if "ECDSA" in s]
RSA_SUITES = [s for s in POLICY_SUITES if "ECDSA" not in s]
KEY_FILES = ("ca.key", "intermediate.key", "server-rsa.key", "server-ec.key")
ALL_FILES = ("ca.pem", "intermediate.pem", "server-rsa.pem", "server-ec.pem", *KEY_FILES)


# ------------------------------------------------------------------------------------------------
# Real-socket helpers
# ------------------------------------------------------------------------------------------------


def peek_hello(conn: socket.socket) -> bytes:
    """The first TLS record, peeked (left in the socket for the TLS layer), as an endpoint would."""
    header = conn.recv(5, socket.MSG_PEEK | socket.MSG_WAITALL)
    if len(header) < 5 or header[0] != 22:
        return header
    return conn.recv(5 + int.from_bytes(header[3:5], "big"), socket.MSG_PEEK | socket.MSG_WAITALL)


@dataclass
class Handshake:
    hello: ClientHello | None = None
    server_error: BaseException | None = None
    server_cipher: str | None = None
    server_version: str | None = None
    server_peer: dict[str, Any] | None = None
    client_error: BaseException | None = None
    client_cipher: str | None = None
    leaf: x509.Certificate | None = None

    @property
    def ok(self) -> bool:
        return self.server_error is None and self.client_error is None and self.client_cipher is not None


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext,
              server_hostname: str = "localhost") -> Handshake:
    """One TLS connection on 127.0.0.1 with an echo round trip; records both sides' outcome."""
    result = Handshake()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)
        port = listener.getsockname()[1]

        def serve() -> None:
            try:
                conn, _ = listener.accept()
            except OSError as exc:
                result.server_error = exc
                return
            with conn:
                conn.settimeout(TIMEOUT)
                try:
                    result.hello = parse_client_hello(peek_hello(conn))
                    with server_ctx.wrap_socket(conn, server_side=True) as tls_conn:
                        result.server_cipher = tls_conn.cipher()[0]  # type: ignore[index]
                        result.server_version = tls_conn.version()
                        result.server_peer = tls_conn.getpeercert()
                        tls_conn.sendall(tls_conn.recv(64))
                except OSError as exc:  # ssl.SSLError is an OSError
                    result.server_error = exc

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
                with client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls_client:
                    der = tls_client.getpeercert(binary_form=True)
                    assert der is not None
                    result.leaf = x509.load_der_x509_certificate(der)
                    tls_client.sendall(b"ping")
                    assert tls_client.recv(64) == b"ping"
                    result.client_cipher = tls_client.cipher()[0]  # type: ignore[index]
        except OSError as exc:
            result.client_error = exc
        thread.join(TIMEOUT)
        assert not thread.is_alive(), "server thread did not finish"
    return result


def capture_hello(client_ctx: ssl.SSLContext, server_hostname: str = "localhost") -> bytes:
    """Raw ClientHello bytes of a real Python client, read on a plain TCP server."""
    captured: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                captured.append(peek_hello(conn))
            # closing without answering makes the client's handshake fail at once

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with socket.create_connection(listener.getsockname(), timeout=TIMEOUT) as raw:
            with pytest.raises(OSError):
                client_ctx.wrap_socket(raw, server_hostname=server_hostname)
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    assert captured and captured[0]
    return captured[0]


def one_suite_client(ca: Path, suite: str) -> ssl.SSLContext:
    ctx = client_context(ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(suite)
    return ctx


def tls11_client() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():  # TLSv1_1 is deprecated in Python: exactly the point
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 refuses TLS 1.1 at the default level
    return ctx


def tls13_client(ca: Path) -> ssl.SSLContext:
    ctx = client_context(ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def outside_policy_client(ca: Path) -> ssl.SSLContext:
    ctx = client_context(ca)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256")
    return ctx


def sans(cert: x509.Certificate) -> list[x509.GeneralName]:
    return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)


def load_pems(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in ALL_FILES}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> CertStore:
    return CertStore(tmp_path_factory.mktemp("certs")).ensure()


@pytest.fixture
def store_dir(store: CertStore, tmp_path: Path) -> Path:
    """A private copy of an existing store (as a later run finds it); saves key generation."""
    directory = tmp_path / "certs"
    directory.mkdir()
    for name in ALL_FILES:
        shutil.copy2(store.directory / name, directory / name)  # modes too
    return directory


# ------------------------------------------------------------------------------------------------
# The policy
# ------------------------------------------------------------------------------------------------


def test_policy_tables_match_openssl() -> None:
    assert POLICY_NAME == "ELBSecurityPolicy-TLS-1-2-Ext-2018-06"
    assert len(POLICY_SUITES) == 18 == len(set(POLICY_SUITES))
    assert POLICY_SUITES[:2] == ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256")
    assert POLICY_SUITES[-1] == "AES256-SHA"
    assert POLICY_SUITE_CODES[0xC02F] == "ECDHE-RSA-AES128-GCM-SHA256"
    assert tuple(POLICY_SUITE_CODES.values()) == POLICY_SUITES
    # The IANA codes agree with what this OpenSSL calls those suites.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers(":".join(POLICY_SUITES))
    openssl = {c["id"] & 0xFFFF: c["name"] for c in ctx.get_ciphers()}
    assert {code: openssl[code] for code in POLICY_SUITE_CODES} == POLICY_SUITE_CODES
    assert {code: openssl[code] for code in (0x1301, 0x1302, 0x1303)} == {
        code: TLS13_SUITE_CODES[code] for code in (0x1301, 0x1302, 0x1303)}


def test_server_context_is_exactly_the_policy(store: CertStore) -> None:
    ctx = store.server_context()
    assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_2
    assert ssl.OP_NO_COMPRESSION in ctx.options and ssl.OP_CIPHER_SERVER_PREFERENCE in ctx.options
    assert ctx.verify_mode == ssl.CERT_NONE
    tls12 = [c["name"] for c in ctx.get_ciphers() if c["protocol"] != "TLSv1.3"]
    assert tls12 == list(POLICY_SUITES)  # all 18, in the policy's order
    # Negative control: Python's defaults would serve only 8 of them.
    default = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    assert len([c for c in default.get_ciphers() if c["name"] in POLICY_SUITES]) == 8


@pytest.mark.parametrize("suite", POLICY_SUITES)
def test_each_policy_suite_negotiates_with_the_matching_certificate(store: CertStore, suite: str) -> None:
    result = handshake(store.server_context(), one_suite_client(store.ca_pem, suite))
    assert result.ok, (result.server_error, result.client_error)
    assert result.client_cipher == result.server_cipher == suite
    assert result.server_version == "TLSv1.2"
    assert result.leaf is not None
    expected_key = ec.EllipticCurvePublicKey if "ECDSA" in suite else rsa.RSAPublicKey
    assert isinstance(result.leaf.public_key(), expected_key)
    assert result.hello is not None and result.hello.offered_policy_suites() == [suite]


@pytest.mark.parametrize(("suite", "loaded"), [(ECDSA_SUITES[0], "rsa"), (RSA_SUITES[0], "ec")])
def test_suite_needs_the_certificate_of_its_key_type(store: CertStore, suite: str, loaded: str) -> None:
    # Negative control for the dual-certificate setup: with only the other key type loaded,
    # the suite cannot be served.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(":".join(POLICY_SUITES))
    ctx.load_cert_chain(store.directory / f"server-{loaded}.pem", store.directory / f"server-{loaded}.key")
    result = handshake(ctx, one_suite_client(store.ca_pem, suite))
    assert isinstance(result.server_error, ssl.SSLError)
    assert result.server_error.reason == "NO_SHARED_CIPHER"
    assert result.client_error is not None


def test_server_preference_is_the_policy_order(store: CertStore) -> None:
    everything_reversed = one_suite_client(store.ca_pem, ":".join(reversed(POLICY_SUITES)))
    assert handshake(store.server_context(), everything_reversed).server_cipher == POLICY_SUITES[0]
    rsa_only_reversed = one_suite_client(store.ca_pem, ":".join(reversed(RSA_SUITES)))
    result = handshake(store.server_context(), rsa_only_reversed)
    assert result.server_cipher == "ECDHE-RSA-AES128-GCM-SHA256"
    assert result.leaf is not None and isinstance(result.leaf.public_key(), rsa.RSAPublicKey)


def test_default_good_charger_connects_with_tls12(store: CertStore) -> None:
    # Positive control for the refusals below: an ordinary TLS 1.2+1.3 client gets TLS 1.2.
    result = handshake(store.server_context(), client_context(store.ca_pem))
    assert result.ok, (result.server_error, result.client_error)
    assert result.server_version == "TLSv1.2" and result.server_cipher in POLICY_SUITES
    assert result.hello is not None and result.hello.offers_tls12()


@pytest.mark.parametrize(
    ("make_client", "reason", "hello_text", "human"),
    [
        (lambda ca: tls11_client(), "UNSUPPORTED_PROTOCOL", "offered TLS 1.1 at most",
         "did not offer TLS 1.2: it offered TLS 1.1 at most"),
        (tls13_client, "UNSUPPORTED_PROTOCOL", "offered TLS 1.3 only",
         "did not offer TLS 1.2: it offered TLS 1.3 only"),
        (outside_policy_client, "NO_SHARED_CIPHER",
         "offered TLS 1.2 with 0 of 18 policy suites "
         "(offered: ECDHE-RSA-CHACHA20-POLY1305, DHE-RSA-AES128-GCM-SHA256)",
         "offered none of the 18 suites of ELBSecurityPolicy-TLS-1-2-Ext-2018-06"),
    ],
    ids=["tls1.1-only", "tls1.3-only", "suites-outside-policy"],
)
def test_refused_clients_get_a_human_reason(store: CertStore, make_client: Any, reason: str,
                                            hello_text: str, human: str) -> None:
    result = handshake(store.server_context(), make_client(store.ca_pem))
    assert not result.ok
    assert isinstance(result.server_error, ssl.SSLError) and result.server_error.reason == reason
    assert isinstance(result.client_error, ssl.SSLError)
    assert result.hello is not None and result.hello.describe() == hello_text
    message = describe_tls_failure(result.server_error, result.hello)
    assert human in message
    # Without the hello the reason is still right, only less detailed.
    short = describe_tls_failure(result.server_error)
    assert ("TLS 1.2" in short) if reason == "UNSUPPORTED_PROTOCOL" else ("none of the 18 suites" in short)


def test_plain_http_on_the_tls_port_is_explained(store: CertStore) -> None:
    ctx = store.server_context()
    request = b"GET /ocpp/CP1 HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\r\n"
    errors: list[BaseException] = []
    hellos: list[ClientHello | None] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT)

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                hellos.append(parse_client_hello(peek_hello(conn)))
                try:
                    ctx.wrap_socket(conn, server_side=True)
                except ssl.SSLError as exc:
                    errors.append(exc)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with socket.create_connection(listener.getsockname(), timeout=TIMEOUT) as raw:
            raw.sendall(request)
            with contextlib.suppress(OSError):  # the server may answer with a reset
                raw.recv(64)
        thread.join(TIMEOUT)
    assert hellos == [None]  # not a ClientHello
    assert len(errors) == 1
    assert "ws:// instead of wss://" in describe_tls_failure(errors[0])


def test_stalled_handshake_is_explained(store: CertStore) -> None:
    ctx = store.server_context()
    errors: list[BaseException] = []
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname(), timeout=TIMEOUT):
        listener.settimeout(TIMEOUT)
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(0.05)  # the client connected but never sends a ClientHello
            try:
                ctx.wrap_socket(conn, server_side=True)
            except OSError as exc:
                errors.append(exc)
    assert len(errors) == 1 and isinstance(errors[0], TimeoutError)
    assert describe_tls_failure(errors[0]).startswith("TLS handshake stalled")
    wrapped = RuntimeError("handshake failed")
    wrapped.__cause__ = errors[0]
    assert "stalled" in describe_tls_failure(wrapped)


@pytest.mark.asyncio
async def test_asyncio_server_failures_are_explained(store: CertStore) -> None:
    # The endpoint hands accepted sockets to asyncio (connect_accepted_socket with a handshake
    # timeout): its exceptions must be explained as well as the plain ssl ones.
    loop = asyncio.get_running_loop()

    async def server_failure(client: Callable[[socket.socket], None]) -> BaseException:
        server_sock, client_sock = socket.socketpair()
        with client_sock:
            client_sock.settimeout(TIMEOUT)
            server_sock.setblocking(False)
            client_thread = threading.Thread(target=client, args=(client_sock,), daemon=True)
            client_thread.start()
            try:
                async with asyncio.timeout(TIMEOUT):
                    with pytest.raises(Exception) as info:
                        await loop.connect_accepted_socket(
                            asyncio.Protocol, server_sock, ssl=store.server_context(), ssl_handshake_timeout=0.1)
            finally:
                server_sock.close()
            await asyncio.to_thread(client_thread.join, TIMEOUT)
        return info.value

    def silent(sock: socket.socket) -> None:  # connects, never says a word
        with contextlib.suppress(OSError):
            sock.recv(1)

    def outside_policy(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            outside_policy_client(store.ca_pem).wrap_socket(sock, server_hostname="localhost")

    stalled = await server_failure(silent)
    assert describe_tls_failure(stalled).startswith("TLS handshake stalled"), repr(stalled)
    no_suite = await server_failure(outside_policy)
    assert "offered none of the 18 suites" in describe_tls_failure(no_suite), repr(no_suite)


# ------------------------------------------------------------------------------------------------
# CertStore
# ------------------------------------------------------------------------------------------------


def test_ensure_creates_the_files_with_private_keys_0600(tmp_path: Path) -> None:
    directory = tmp_path / "certs"
    store = CertStore(directory)
    assert not directory.exists()  # nothing before first use
    assert store.ensure() is store
    assert store.ca_pem == directory / "ca.pem"
    for name in KEY_FILES:
        assert mode(directory / name) == 0o600, name
    for name in ("ca.pem", "intermediate.pem", "server-rsa.pem", "server-ec.pem"):
        assert mode(directory / name) == 0o644, name  # certificates are public

    [ca] = load_pems(directory / "ca.pem")
    assert isinstance(ca.public_key(), rsa.RSAPublicKey)  # RSA-only chargers can verify it
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    [intermediate] = load_pems(store.intermediate_pem)
    intermediate.verify_directly_issued_by(ca)
    assert intermediate.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert intermediate.not_valid_after_utc <= ca.not_valid_after_utc
    for kind, key_type in (("rsa", rsa.RSAPublicKey), ("ec", ec.EllipticCurvePublicKey)):
        leaf, chain_ca = load_pems(directory / f"server-{kind}.pem")  # leaf + intermediate, never the root
        assert chain_ca == intermediate
        leaf.verify_directly_issued_by(intermediate)
        key = leaf.public_key()
        assert isinstance(key, key_type)
        assert key.key_size == (2048 if kind == "rsa" else 256)
        if isinstance(key, ec.EllipticCurvePublicKey):
            assert isinstance(key.curve, ec.SECP256R1)
        names = sans(leaf)
        assert x509.DNSName("localhost") in names
        assert x509.IPAddress(ipaddress.ip_address("127.0.0.1")) in names
    assert store.server_names() == ["localhost", "127.0.0.1"]

    # Second use (a new process, same folder): everything reused byte for byte.
    before = snapshot(directory)
    CertStore(directory).ensure()
    CertStore(directory).ensure(["localhost", "127.0.0.1"])  # names it already has
    assert snapshot(directory) == before


def test_loose_key_modes_are_fixed(store_dir: Path) -> None:
    for name in KEY_FILES:
        (store_dir / name).chmod(0o644)
    store = CertStore(store_dir).ensure()
    assert [mode(store_dir / name) for name in KEY_FILES] == [0o600] * len(KEY_FILES)
    key_path = store_dir / "CP-LOOSE-client.key"  # e.g. a client key copied in by hand
    shutil.copy2(store_dir / "server-ec.key", key_path)
    key_path.chmod(0o640)
    CertStore(store_dir).ensure()
    assert mode(key_path) == 0o600


def test_second_ensure_reuses_everything_byte_for_byte(store_dir: Path) -> None:
    before = snapshot(store_dir)
    store = CertStore(store_dir)
    assert store.server_names() == ["localhost", "127.0.0.1"]  # first use in this process
    store.server_context()
    CertStore(store_dir).ensure(["127.0.0.1", "LOCALHOST", "[127.0.0.1]", ""])
    assert snapshot(store_dir) == before


def test_new_hosts_reissue_server_certs_but_keep_the_ca(store_dir: Path) -> None:
    tmp_path = store_dir
    before = snapshot(tmp_path)
    store = CertStore(tmp_path).ensure(["bench.local", "192.168.1.50"])
    after = snapshot(tmp_path)
    assert after["ca.pem"] == before["ca.pem"] and after["ca.key"] == before["ca.key"]
    assert all(after[f] != before[f] for f in ("server-rsa.pem", "server-ec.pem", "server-rsa.key"))
    assert after["intermediate.pem"] == before["intermediate.pem"]  # new names need no new intermediate
    assert store.server_names() == ["localhost", "127.0.0.1", "bench.local", "192.168.1.50"]
    leaf = load_pems(tmp_path / "server-ec.pem")[0]
    assert x509.IPAddress(ipaddress.ip_address("192.168.1.50")) in sans(leaf)  # an IP SAN
    assert x509.DNSName("bench.local") in sans(leaf)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "bench.local"

    CertStore(tmp_path).ensure(["BENCH.local"])  # already a SAN (names compare case-insensitively)
    assert snapshot(tmp_path) == after
    # A further host keeps the earlier ones.
    store = CertStore(tmp_path).ensure(["other.local"])
    assert store.server_names() == ["localhost", "127.0.0.1", "bench.local", "192.168.1.50", "other.local"]
    assert (tmp_path / "ca.pem").read_bytes() == before["ca.pem"]

    # The re-issued server really serves the new names, under the unchanged CA.
    for host in ("bench.local", "192.168.1.50", "other.local"):
        assert handshake(store.server_context(), client_context(store.ca_pem), host).ok, host


def test_server_certs_expiring_within_30_days_are_renewed(store_dir: Path) -> None:
    tmp_path = store_dir
    before = snapshot(tmp_path)
    ca = trustme.CA.from_pem(before["intermediate.pem"], before["intermediate.key"])
    now = dt.datetime.now(dt.timezone.utc)
    soon = ca.issue_cert("localhost", "127.0.0.1", not_before=now - dt.timedelta(days=300),
                         not_after=now + dt.timedelta(days=29), key_type=trustme.KeyType.ECDSA)
    (tmp_path / "server-ec.pem").write_bytes(soon.cert_chain_pems[0].bytes() + before["intermediate.pem"])
    (tmp_path / "server-ec.key").write_bytes(soon.private_key_pem.bytes())
    CertStore(tmp_path).ensure()
    for kind in ("rsa", "ec"):  # renewed together, so both keep the same names
        leaf = load_pems(tmp_path / f"server-{kind}.pem")[0]
        assert leaf.not_valid_after_utc - now > dt.timedelta(days=300)
        assert mode(tmp_path / f"server-{kind}.key") == 0o600
    assert (tmp_path / "ca.pem").read_bytes() == before["ca.pem"]


def test_half_a_ca_is_an_error_not_a_silent_new_ca(store_dir: Path) -> None:
    tmp_path = store_dir
    ca_pem = (tmp_path / "ca.pem").read_bytes()
    (tmp_path / "ca.key").unlink()
    with pytest.raises(RuntimeError, match="ca.key is missing"):
        CertStore(tmp_path).ensure()
    assert (tmp_path / "ca.pem").read_bytes() == ca_pem
    shutil.copy2(tmp_path / "server-rsa.key", tmp_path / "ca.key")  # a key of another certificate
    with pytest.raises(RuntimeError, match="does not belong to"):
        CertStore(tmp_path).ensure()
    assert (tmp_path / "ca.pem").read_bytes() == ca_pem


def test_concurrent_first_use_makes_one_ca(tmp_path: Path) -> None:
    # pytest-xdist workers and `serve` may all start on an empty certs/ at once.
    barrier = threading.Barrier(3, timeout=TIMEOUT)
    errors: list[BaseException] = []

    def first_use() -> None:
        try:
            barrier.wait()
            CertStore(tmp_path).ensure()
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=first_use, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert errors == [] and not any(t.is_alive() for t in threads)
    [ca] = load_pems(tmp_path / "ca.pem")
    [intermediate] = load_pems(tmp_path / "intermediate.pem")
    intermediate.verify_directly_issued_by(ca)
    for kind in ("rsa", "ec"):
        leaf, chain_ca = load_pems(tmp_path / f"server-{kind}.pem")
        assert chain_ca == intermediate
        leaf.verify_directly_issued_by(intermediate)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_client_context_verifies_the_real_server(store: CertStore, host: str) -> None:
    result = handshake(store.server_context(), client_context(store.ca_pem), host)
    assert result.ok, (result.server_error, result.client_error)
    # Negative control: the same server is refused when the charger trusts another CA.
    other = trustme.CA()  # ECDSA: quick to make, and just as untrusted
    with other.cert_pem.tempfile() as other_ca:
        refused = handshake(store.server_context(), client_context(other_ca), host)
    assert isinstance(refused.client_error, ssl.SSLCertVerificationError)


# ------------------------------------------------------------------------------------------------
# Bad server certificates (TLS-3)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "verify_codes", "alert_text"),
    [
        # 19 = self-signed certificate in chain (the fresh CA travels in the chain), 20 = unknown issuer
        ("untrusted-ca", {19, 20}, "unknown_ca"),
        ("expired", {10}, "certificate_expired"),
        ("wrong-host", {62}, "bad_certificate"),  # 62 = X509_V_ERR_HOSTNAME_MISMATCH
    ],
)
def test_bad_server_certificates_are_refused_by_a_good_charger(
    store: CertStore, kind: str, verify_codes: set[int], alert_text: str
) -> None:
    listing = sorted(p.name for p in store.directory.iterdir())
    bad_ctx = store.bad_server_context(kind)
    assert sorted(p.name for p in store.directory.iterdir()) == listing  # nothing written
    bad = handshake(bad_ctx, client_context(store.ca_pem))
    assert isinstance(bad.client_error, ssl.SSLCertVerificationError)
    assert bad.client_error.verify_code in verify_codes, bad.client_error.verify_message
    assert bad.server_error is not None
    message = describe_tls_failure(bad.server_error, bad.hello)
    assert message.startswith("the charger refused our certificate") and alert_text in message
    assert bad.hello is not None and bad.hello.offers_tls12() and "did not offer" not in message
    # The bad server speaks the same policy: a charger that checks nothing gets through...
    careless = handshake(bad_ctx, client_context(store.ca_pem, verify=False))
    assert careless.ok and careless.server_cipher in POLICY_SUITES
    # check_hostname=False skips the host name only: the chain and the dates are still checked.
    no_host_check = handshake(bad_ctx, client_context(store.ca_pem, check_hostname=False))
    assert no_host_check.ok == (kind == "wrong-host")
    # ...and the good server is accepted by the same good charger.
    assert handshake(store.server_context(), client_context(store.ca_pem)).ok


def test_prepared_bad_contexts_are_made_once_in_the_background_and_still_refused(tmp_path: Path) -> None:
    store = CertStore(tmp_path / "certs").ensure()
    listing = sorted(p.name for p in store.directory.iterdir())
    store.prepare_bad_contexts()
    store.prepare_bad_contexts()  # a second call starts nothing more
    contexts = {kind: store.bad_server_context(kind) for kind in ("untrusted-ca", "expired", "wrong-host")}
    assert all(store.bad_server_context(k) is c for k, c in contexts.items())  # made once per store
    assert sorted(p.name for p in store.directory.iterdir()) == listing  # nothing written
    for ctx in contexts.values():  # negative control: a good charger refuses each; the good server is accepted
        assert isinstance(handshake(ctx, client_context(store.ca_pem)).client_error, ssl.SSLCertVerificationError)
    assert handshake(store.server_context(), client_context(store.ca_pem)).ok


def test_a_failure_making_a_bad_context_reaches_the_caller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = CertStore(tmp_path / "certs").ensure()

    def broken(kind: str) -> ssl.SSLContext:
        raise OSError(f"cannot make {kind}")

    monkeypatch.setattr(store, "_make_bad_context", broken)
    store.prepare_bad_contexts()
    with pytest.raises(OSError, match="cannot make expired"):
        store.bad_server_context("expired")


def test_bad_server_context_rejects_unknown_kinds(store: CertStore) -> None:
    with pytest.raises(ValueError, match="untrusted-ca, expired, wrong-host"):
        store.bad_server_context("self-signed")


# ------------------------------------------------------------------------------------------------
# Security profile 3 (AUTH-2)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client_cert(store: CertStore, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return store.issue_client_cert("CP-0001", organization="Example CPO",
                                   directory=tmp_path_factory.mktemp("clients"))


def test_profile3_accepts_a_harness_client_certificate(store: CertStore, client_cert: tuple[Path, Path]) -> None:
    cert, key = client_cert
    assert (cert.name, key.name) == ("CP-0001-client.pem", "CP-0001-client.key")
    assert mode(key) == 0o600
    leaf, issuer = load_pems(cert)
    assert issuer == load_pems(store.ca_pem)[0] and isinstance(leaf.public_key(), rsa.RSAPublicKey)
    server_ctx = store.server_context(require_client_cert=True)
    assert server_ctx.verify_mode == ssl.CERT_REQUIRED
    result = handshake(server_ctx, client_context(store.ca_pem, client_cert=(cert, key)))
    assert result.ok, (result.server_error, result.client_error)
    assert result.server_peer is not None
    subject = dict(rdn[0] for rdn in result.server_peer["subject"])
    assert subject == {"commonName": "CP-0001", "organizationName": "Example CPO"}


def test_profile3_refuses_no_certificate(store: CertStore) -> None:
    result = handshake(store.server_context(require_client_cert=True), client_context(store.ca_pem))
    assert not result.ok and result.server_error is not None
    assert describe_tls_failure(result.server_error) == (
        "the charger sent no client certificate (security profile 3 requires one)")


def test_profile3_refuses_a_certificate_from_an_untrusted_ca(
    store: CertStore, client_cert: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = store.issue_client_cert("CP-0001", directory=tmp_path, ca="untrusted")
    leaf, issuer = load_pems(cert)
    assert issuer != load_pems(store.ca_pem)[0]
    result = handshake(store.server_context(require_client_cert=True),
                       client_context(store.ca_pem, client_cert=(cert, key)))
    assert not result.ok
    assert isinstance(result.server_error, ssl.SSLCertVerificationError)
    assert describe_tls_failure(result.server_error).startswith("the charger's client certificate was refused")
    # Positive control on the same server: the harness-issued certificate for the same CN passes.
    assert handshake(store.server_context(require_client_cert=True),
                     client_context(store.ca_pem, client_cert=client_cert)).ok


def test_issue_client_cert_defaults_and_validation(store_dir: Path) -> None:
    store = CertStore(store_dir)
    cert, key = store.issue_client_cert("CPO/serial 7")  # free-text CN, default directory
    assert cert.parent == store_dir and mode(key) == 0o600 and cert.name == "CPO_serial_7-client.pem"
    leaf = load_pems(cert)[0]
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CPO/serial 7"
    assert isinstance(leaf.public_key(), rsa.RSAPublicKey)
    with pytest.raises(ValueError, match="harness, untrusted"):
        store.issue_client_cert("CP", ca="other")


# ------------------------------------------------------------------------------------------------
# ClientHello parsing (sans-I/O) on real bytes
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_hello(store: CertStore) -> tuple[bytes, ssl.SSLContext]:
    ctx = client_context(store.ca_pem)
    return capture_hello(ctx), ctx


def test_parse_real_client_hello(real_hello: tuple[bytes, ssl.SSLContext]) -> None:
    data, ctx = real_hello
    hello = parse_client_hello(data)
    assert hello is not None
    offered = [c["id"] & 0xFFFF for c in ctx.get_ciphers()]
    assert [c for c in hello.cipher_suites if c != 0x00FF] == offered  # 0x00FF: renegotiation SCSV
    assert hello.supported_versions == (0x0304, 0x0303)
    assert hello.legacy_version == 0x0303 and hello.record_version in (0x0301, 0x0303)
    assert hello.server_name == "localhost"
    assert hello.offers_tls12()
    policy = hello.offered_policy_suites()
    assert len(policy) == 8 and set(policy) <= set(POLICY_SUITES)
    assert hello.describe().startswith("offered TLS 1.3 and TLS 1.2 with 8 of 18 policy suites (")


def test_parse_tls13_only_and_ip_hellos(store: CertStore) -> None:
    hello = parse_client_hello(capture_hello(tls13_client(store.ca_pem)))
    assert hello is not None
    assert hello.supported_versions == (0x0304,) and not hello.offers_tls12()
    assert hello.describe() == "offered TLS 1.3 only"
    by_ip = parse_client_hello(capture_hello(client_context(store.ca_pem), "127.0.0.1"))
    assert by_ip is not None and by_ip.server_name is None  # no SNI for an IP address


def test_parse_hello_split_over_two_records(real_hello: tuple[bytes, ssl.SSLContext]) -> None:
    data, _ = real_hello
    whole = parse_client_hello(data)
    body = data[5:]
    cut = 100
    split = (data[:3] + cut.to_bytes(2, "big") + body[:cut]
             + data[:3] + (len(body) - cut).to_bytes(2, "big") + body[cut:])
    assert parse_client_hello(split) == whole
    assert parse_client_hello(split[:-1]) is None


def test_parse_truncated_and_garbage_is_none(real_hello: tuple[bytes, ssl.SSLContext]) -> None:
    data, _ = real_hello
    assert parse_client_hello(data) is not None
    assert parse_client_hello(data + b"\x17\x03\x03garbage after") is not None  # trailing bytes ignored
    for n in range(len(data)):
        assert parse_client_hello(data[:n]) is None, n
    assert parse_client_hello(b"") is None
    assert parse_client_hello(b"GET / HTTP/1.1\r\n\r\n") is None
    assert parse_client_hello(b"\x80\x2e\x01\x03\x01") is None  # SSLv2-style hello
    assert parse_client_hello(b"\x15\x03\x03\x00\x02\x02\x28") is None  # an alert record
    assert parse_client_hello("not bytes") is None  # type: ignore[arg-type]
    rng = random.Random(1234)
    for _ in range(3000):
        parse_client_hello(rng.randbytes(rng.randrange(0, 600)))
        header = b"\x16\x03\x01" + rng.randrange(0, 1 << 16).to_bytes(2, "big") + b"\x01"
        parse_client_hello(header + rng.randbytes(rng.randrange(0, 600)))
        mutated = bytearray(data)
        for _ in range(rng.randrange(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        result = parse_client_hello(bytes(mutated))
        assert result is None or isinstance(result, ClientHello)


def test_describe_lists_what_was_offered() -> None:
    hello = ClientHello(record_version=0x0301, legacy_version=0x0303, supported_versions=(0x0A0A, 0x0303),
                        cipher_suites=(0x1A1A, 0xCCA8, 0x1301, 0x00FF, 0xFEFE), server_name=None)
    assert hello.describe() == ("offered TLS 1.2 with 0 of 18 policy suites "
                                "(offered: ECDHE-RSA-CHACHA20-POLY1305, TLS_AES_128_GCM_SHA256, 0xFEFE)")
    assert hello.offered_policy_suites() == []
    hello = ClientHello(0x0301, 0x0303, (0x0303,), (0x002F, 0xC02F), "cp.example")
    assert hello.offered_policy_suites() == ["AES128-SHA", "ECDHE-RSA-AES128-GCM-SHA256"]
    assert hello.describe() == ("offered TLS 1.2 with 2 of 18 policy suites "
                                "(AES128-SHA, ECDHE-RSA-AES128-GCM-SHA256)")


def test_tls_version_names() -> None:
    assert tls_version_name(0x0303) == "TLS 1.2"
    assert tls_version_name(0x0304) == "TLS 1.3"
    assert tls_version_name(0x0301) == "TLS 1.0"
    assert tls_version_name(0x0300) == "SSL 3.0"
    assert tls_version_name(0x3A3A) == "GREASE (0x3a3a)"
    assert tls_version_name(0x7F1C) == "TLS 1.3 draft 28"
    assert tls_version_name(0x1234) == "unknown version (0x1234)"


def test_describe_tls_failure_falls_back_to_the_openssl_reason() -> None:
    assert describe_tls_failure(ValueError("odd")) == "TLS handshake failed: ValueError: odd"
    assert "without a TLS alert" in describe_tls_failure(ConnectionResetError())


# ------------------------------------------------------------------------------------------------
# Refusals carry their TLS alert (the live endpoint, asyncio)
# ------------------------------------------------------------------------------------------------


def _client_outcome(port: int, ctx: ssl.SSLContext) -> BaseException | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as conn:
                # TLS 1.2: a refused client certificate is only known once the server's Finished is due.
                conn.recv(1)
    except OSError as exc:
        return exc
    return None


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("make_client", "alert", "detail"),
    [
        (tls13_client, "TLSV1_ALERT_PROTOCOL_VERSION", "did not offer TLS 1.2"),
        (lambda ca: tls11_client(), "TLSV1_ALERT_PROTOCOL_VERSION", "did not offer TLS 1.2"),
        (outside_policy_client, "SSLV3_ALERT_HANDSHAKE_FAILURE", "no shared cipher suite"),
    ],
    ids=["tls1.3-only", "tls1.1-only", "suites-outside-policy"],
)
async def test_endpoint_refusals_send_the_tls_alert(store: CertStore, make_client: Any, alert: str,
                                                     detail: str) -> None:
    # Before the fix asyncio dropped the alert OpenSSL wrote (python/cpython#98078): the client saw
    # SSLEOFError UNEXPECTED_EOF_WHILE_READING and its log could not say why.
    from harness.endpoint import TLS_FAILED, Endpoint, EndpointConfig

    async with Endpoint(EndpointConfig(certs_dir=store.directory, handshake_timeout=TIMEOUT)) as endpoint:
        error = await asyncio.to_thread(_client_outcome, endpoint.port, make_client(store.ca_pem))
        attempt = await endpoint.wait_attempt(lambda a: True, within=TIMEOUT)
    assert isinstance(error, ssl.SSLError) and not isinstance(error, ssl.SSLEOFError), repr(error)
    assert error.reason == alert, repr(error)
    assert attempt is not None and attempt.outcome == TLS_FAILED and detail in attempt.detail, attempt


@pytest.mark.asyncio
async def test_endpoint_profile3_refusal_sends_the_tls_alert(store: CertStore, tmp_path: Path) -> None:
    from harness.endpoint import TLS_FAILED, Endpoint, EndpointConfig

    cert, key = store.issue_client_cert("CP-0001", directory=tmp_path, ca="untrusted")
    client = client_context(store.ca_pem, client_cert=(cert, key))
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    config = EndpointConfig(certs_dir=store.directory, handshake_timeout=TIMEOUT, security_profile=3)
    async with Endpoint(config) as endpoint:
        error = await asyncio.to_thread(_client_outcome, endpoint.port, client)
        attempt = await endpoint.wait_attempt(lambda a: True, within=TIMEOUT)
    assert isinstance(error, ssl.SSLError) and error.reason == "TLSV1_ALERT_UNKNOWN_CA", repr(error)
    assert attempt is not None and attempt.outcome == TLS_FAILED
    assert "client certificate was refused" in attempt.detail, attempt.detail


# ------------------------------------------------------------------------------------------------
# The diagnosis agrees with the ClientHello it quotes
# ------------------------------------------------------------------------------------------------


def _ssl_error(reason: str, cls: type[ssl.SSLError] = ssl.SSLError) -> ssl.SSLError:
    """An ssl error as OpenSSL raises it on the server side (reason set, library SSL)."""
    exc = cls(1, f"[SSL: {reason}] {reason.lower().replace('_', ' ')} (_ssl.c:1000)")
    exc.reason = reason
    exc.library = "SSL"
    return exc


HELLO_12 = ClientHello(0x0301, 0x0303, (0x0304, 0x0303), (0x1301, 0xC02F, 0x002F, 0x00FF), "localhost")
HELLO_12_NO_POLICY = ClientHello(0x0301, 0x0303, (0x0303,), (0xCCA8, 0x009E), "localhost")
HELLO_13_ONLY = ClientHello(0x0301, 0x0303, (0x0304,), (0x1301, 0x1302), "localhost")
HELLO_11 = ClientHello(0x0301, 0x0302, (0x0302,), (0x002F, 0xC013), None)


@pytest.mark.parametrize(
    ("exc", "hello", "expected"),
    [
        # Offered TLS 1.2 and the policy, then refused the certificate: never a version story.
        (_ssl_error("SSLV3_ALERT_BAD_CERTIFICATE"), HELLO_12, "the charger refused our certificate (TLS alert bad_certificate"),
        (_ssl_error("TLSV1_ALERT_UNKNOWN_CA"), HELLO_12, "the charger refused our certificate (TLS alert unknown_ca"),
        (_ssl_error("SSLV3_ALERT_CERTIFICATE_EXPIRED"), HELLO_12, "refused our certificate (TLS alert certificate_expired"),
        # No TLS 1.2: a version refusal, whichever OpenSSL reason came with it.
        (_ssl_error("UNSUPPORTED_PROTOCOL"), HELLO_13_ONLY, "the charger did not offer TLS 1.2: it offered TLS 1.3 only"),
        (_ssl_error("UNSUPPORTED_PROTOCOL"), HELLO_11, "the charger did not offer TLS 1.2: it offered TLS 1.1 at most"),
        (_ssl_error("NO_SHARED_CIPHER"), HELLO_13_ONLY, "the charger did not offer TLS 1.2: it offered TLS 1.3 only"),
        # TLS 1.2 offered but no policy suite: a cipher-suite refusal.
        (_ssl_error("NO_SHARED_CIPHER"), HELLO_12_NO_POLICY, "no shared cipher suite: the charger offered none of the 18"),
        # TLS 1.2 and policy suites offered, yet no shared cipher: say so, do not claim it offered none.
        (_ssl_error("NO_SHARED_CIPHER"), HELLO_12, "no usable cipher suite although the charger offered 2 policy suite(s)"),
        # A version error although TLS 1.2 was offered: the contradiction is stated, not papered over.
        (_ssl_error("WRONG_VERSION_NUMBER"), HELLO_12, "the TLS version was not agreed (WRONG_VERSION_NUMBER), although the charger offered TLS 1.3 and TLS 1.2"),
        (_ssl_error("TLSV1_ALERT_PROTOCOL_VERSION"), HELLO_12, "the charger answered with a protocol_version alert, although the charger offered TLS 1.3 and TLS 1.2"),
        (_ssl_error("SSLV3_ALERT_HANDSHAKE_FAILURE"), HELLO_12, "the charger aborted the handshake (handshake_failure alert)"),
        (_ssl_error("TLSV1_ALERT_DECODE_ERROR"), HELLO_12, "the charger aborted the handshake with the TLS alert decode_error"),
        (_ssl_error("UNEXPECTED_EOF_WHILE_READING", ssl.SSLEOFError), HELLO_12, "closed the connection during the handshake without a TLS alert"),
        (ConnectionResetError(), HELLO_12, "closed the connection during the handshake without a TLS alert"),
        (_ssl_error("PEER_DID_NOT_RETURN_A_CERTIFICATE"), HELLO_12, "the charger sent no client certificate"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
def test_diagnosis_follows_the_error_and_the_hello(exc: BaseException, hello: ClientHello, expected: str) -> None:
    message = describe_tls_failure(exc, hello)
    assert message.startswith(expected) or expected in message, message
    # Whatever is quoted of the hello is the hello's own description.
    if hello.describe() in message:
        assert any(f"{who} {hello.describe()}" in message for who in ("it", "the charger")), message


_ALL_REASONS = ["SSLV3_ALERT_BAD_CERTIFICATE", "TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_CERTIFICATE_EXPIRED",
                "UNSUPPORTED_PROTOCOL", "WRONG_VERSION_NUMBER", "TLSV1_ALERT_PROTOCOL_VERSION", "NO_SHARED_CIPHER",
                "SSLV3_ALERT_HANDSHAKE_FAILURE", "TLSV1_ALERT_DECODE_ERROR", "HTTP_REQUEST", "SOMETHING_ELSE",
                "PEER_DID_NOT_RETURN_A_CERTIFICATE"]


@pytest.mark.parametrize("reason", _ALL_REASONS)
@pytest.mark.parametrize("hello", [HELLO_12, HELLO_12_NO_POLICY, HELLO_13_ONLY, HELLO_11, None],
                         ids=["tls12", "tls12-no-policy", "tls13-only", "tls11", "no-hello"])
def test_no_diagnosis_contradicts_its_client_hello(reason: str, hello: ClientHello | None) -> None:
    message = describe_tls_failure(_ssl_error(reason), hello)
    if hello is None:
        return
    if hello.offers_tls12():
        assert "did not offer TLS 1.2" not in message, message
    else:
        assert "refused our certificate" not in message or reason.startswith(("SSLV3_ALERT", "TLSV1_ALERT")), message
        if reason in ("UNSUPPORTED_PROTOCOL", "NO_SHARED_CIPHER", "WRONG_VERSION_NUMBER"):
            assert "did not offer TLS 1.2" in message, message
    if hello.offered_policy_suites():
        assert "offered none of the" not in message, message
    elif hello.offers_tls12() and reason == "NO_SHARED_CIPHER":
        assert "offered none of the 18" in message, message


def test_the_reason_decides_not_a_word_in_the_message() -> None:
    # A certificate alert whose wrapper happens to mention "protocol version" is still a certificate refusal.
    outer = RuntimeError("handshake failed: unsupported protocol version?")
    outer.__cause__ = _ssl_error("SSLV3_ALERT_BAD_CERTIFICATE")
    assert describe_tls_failure(outer, HELLO_12).startswith("the charger refused our certificate")


# ------------------------------------------------------------------------------------------------
# A chain shaped like the platform's: root -> intermediate -> leaf, leaf + intermediate sent
# ------------------------------------------------------------------------------------------------


def leaf_only_context(store: CertStore) -> ssl.SSLContext:
    """The endpoint's policy and keys, but each leaf sent alone (the intermediate left out)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(":".join(POLICY_SUITES))
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("rsa", "ec"):
            leaf = load_pems(store.directory / f"server-{kind}.pem")[0]
            path = Path(tmp) / f"{kind}.pem"
            path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
            ctx.load_cert_chain(path, store.directory / f"server-{kind}.key")
    return ctx


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_leaves_are_shaped_like_public_certificates(store: CertStore, kind: str) -> None:
    leaf = load_pems(store.directory / f"server-{kind}.pem")[0]
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA256)
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH]  # serverAuth only: no clientAuth, no codeSigning
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert usage.value.key_encipherment is (kind == "rsa")  # static-RSA suites need it; an EC key cannot
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime <= dt.timedelta(days=395)  # 13 months, like AWS Certificate Manager's; not year 3000
    assert leaf.not_valid_after_utc.year < 2100
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert not san.critical and x509.DNSName("localhost") in san.value
    assert x509.IPAddress(ipaddress.ip_address("127.0.0.1")) in san.value


def test_the_endpoint_must_send_the_intermediate(store: CertStore) -> None:
    # A charger given the root only (what the README tells users to install) needs the intermediate
    # from the server: with the leaf alone it cannot build the chain, with leaf + intermediate it can.
    root_only = client_context(store.ca_pem)
    leaf_only = handshake(leaf_only_context(store), root_only)
    assert isinstance(leaf_only.client_error, ssl.SSLCertVerificationError)
    assert leaf_only.client_error.verify_code == 20, leaf_only.client_error.verify_message  # unable to get local issuer
    assert handshake(store.server_context(), client_context(store.ca_pem)).ok
    # What the endpoint loads is exactly leaf + intermediate for both key types.
    for kind in ("rsa", "ec"):
        assert [c.subject for c in load_pems(store.directory / f"server-{kind}.pem")][1:] == [
            load_pems(store.intermediate_pem)[0].subject]


def test_a_charger_anchored_on_the_intermediate_validates_and_still_refuses_bad_certificates(
    store: CertStore,
) -> None:
    # TLS-3 asks for a chain to a CA the charger trusts; the intermediate is such a CA (RFC 5280 §6.1.1:
    # a trust anchor need not be self-signed). OpenSSL needs X509_V_FLAG_PARTIAL_CHAIN to stop there.
    anchored = client_context(store.intermediate_pem, partial_chain=True)
    assert handshake(store.server_context(), anchored).ok
    without_flag = handshake(store.server_context(), client_context(store.intermediate_pem))
    assert isinstance(without_flag.client_error, ssl.SSLCertVerificationError)  # OpenSSL wants the root then
    for kind, code in (("untrusted-ca", 20), ("expired", 10), ("wrong-host", 62)):
        bad = handshake(store.bad_server_context(kind), client_context(store.intermediate_pem, partial_chain=True))
        assert isinstance(bad.client_error, ssl.SSLCertVerificationError), kind
        assert bad.client_error.verify_code == code, (kind, bad.client_error.verify_message)


@pytest.mark.parametrize("kind", ["untrusted-ca", "expired", "wrong-host"])
def test_bad_certificates_have_the_good_chains_shape(store: CertStore, kind: str) -> None:
    # Only the tested property differs: a bad leaf also comes as leaf + intermediate.
    ctx = store.bad_server_context(kind)
    result = handshake(ctx, client_context(store.ca_pem, verify=False))
    assert result.ok and result.leaf is not None
    issuer = result.leaf.issuer
    intermediate = load_pems(store.intermediate_pem)[0]
    assert (issuer == intermediate.subject) is (kind != "untrusted-ca")
    assert list(result.leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH]


def _old_style_store(directory: Path) -> None:
    """certs/ as an earlier harness left it: trustme root, leaves signed by the root directly (EKU
    clientAuth + serverAuth + codeSigning), each file leaf + root, no intermediate."""
    directory.mkdir(mode=0o700)
    ca = trustme.CA(key_type=trustme.KeyType.RSA, organization_name="ev-energy-ocpp-harness")
    (directory / "ca.pem").write_bytes(ca.cert_pem.bytes())
    (directory / "ca.key").write_bytes(ca.private_key_pem.bytes())
    now = dt.datetime.now(dt.timezone.utc)
    for kind, key_type in (("rsa", trustme.KeyType.RSA), ("ec", trustme.KeyType.ECDSA)):
        leaf = ca.issue_cert("localhost", "127.0.0.1", "bench.local", common_name="bench.local",
                             not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=397),
                             key_type=key_type)
        (directory / f"server-{kind}.pem").write_bytes(leaf.cert_chain_pems[0].bytes() + ca.cert_pem.bytes())
        (directory / f"server-{kind}.key").write_bytes(leaf.private_key_pem.bytes())
    for key in directory.glob("*.key"):
        key.chmod(0o644)  # older tools left keys readable


def test_a_store_from_before_the_chain_is_upgraded_keeping_its_root(tmp_path: Path) -> None:
    directory = tmp_path / "certs"
    _old_style_store(directory)
    root = {name: (directory / name).read_bytes() for name in ("ca.pem", "ca.key")}
    store = CertStore(directory).ensure()
    # The root chargers already trust is kept byte for byte; an intermediate now sits under it.
    assert {name: (directory / name).read_bytes() for name in root} == root
    [ca], [intermediate] = load_pems(directory / "ca.pem"), load_pems(store.intermediate_pem)
    intermediate.verify_directly_issued_by(ca)
    for kind in ("rsa", "ec"):
        leaf, sent = load_pems(directory / f"server-{kind}.pem")
        assert sent == intermediate
        leaf.verify_directly_issued_by(intermediate)
        assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
            ExtendedKeyUsageOID.SERVER_AUTH]
    assert store.server_names() == ["localhost", "127.0.0.1", "bench.local"]  # names served so far are kept
    assert all(mode(directory / name) == 0o600 for name in KEY_FILES)
    # A charger that was given the old ca.pem connects to the upgraded endpoint without any change.
    assert handshake(store.server_context(), client_context(directory / "ca.pem"), "bench.local").ok
    # And the upgrade is done once: the next start reuses everything.
    before = snapshot(directory)
    CertStore(directory).ensure()
    assert snapshot(directory) == before


def test_an_intermediate_not_from_the_root_or_expiring_is_replaced(store_dir: Path) -> None:
    before = snapshot(store_dir)
    (store_dir / "intermediate.pem").write_bytes(trustme.CA().cert_pem.bytes())  # another CA's certificate
    store = CertStore(store_dir).ensure()
    after = snapshot(store_dir)
    assert after["ca.pem"] == before["ca.pem"] and after["intermediate.pem"] != before["intermediate.pem"]
    load_pems(store.intermediate_pem)[0].verify_directly_issued_by(load_pems(store.ca_pem)[0])
    assert handshake(store.server_context(), client_context(store.ca_pem)).ok


# ------------------------------------------------------------------------------------------------
# ECDHE groups: the policy's P-256 and P-384, chosen as the load balancer chooses
# ------------------------------------------------------------------------------------------------


def test_parse_supported_groups(real_hello: tuple[bytes, ssl.SSLContext]) -> None:
    hello = parse_client_hello(real_hello[0])
    assert hello is not None and hello.groups is not None
    assert {"x25519", "P-256", "P-384"} <= set(hello.offered_groups())
    assert hello.policy_group() == "prime256v1"  # P-256 first, whatever the charger prefers
    assert ClientHello(0x0301, 0x0303, (0x0303,), (0xC02F,), None, groups=(0x001D, 0x0018)).policy_group() == "secp384r1"
    assert ClientHello(0x0301, 0x0303, (0x0303,), (0xC02F,), None, groups=(0x001D,)).policy_group() is None
    assert ClientHello(0x0301, 0x0303, (0x0303,), (0xC02F,), None).policy_group() == "prime256v1"  # no extension


def test_server_context_agrees_only_its_policy_group(store: CertStore) -> None:
    with pytest.raises(ValueError, match="prime256v1, secp384r1"):
        store.server_context(group="X25519")
    for curve, group, ok in (("prime256v1", "prime256v1", True), ("secp384r1", "secp384r1", True),
                             ("X25519", "prime256v1", False), ("secp521r1", "prime256v1", False)):
        client = one_suite_client(store.ca_pem, "ECDHE-RSA-AES128-GCM-SHA256")
        client.set_ecdh_curve(curve)
        assert handshake(store.server_context(group=group), client).ok is ok, curve


def _curve_client(ca: Path, curve: str, suites: str) -> ssl.SSLContext:
    ctx = one_suite_client(ca, suites)
    ctx.set_ecdh_curve(curve)  # the ClientHello's supported_groups holds this curve only
    return ctx


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("curve", "suites", "expected"),
    [
        ("prime256v1", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256"),
        ("secp384r1", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384"),
        # TLS 1.2 (RFC 8422 §5.1.1): the charger's curve list binds the ECDSA certificate's key too (P-256 here).
        ("secp384r1", "ECDHE-ECDSA-AES256-GCM-SHA384", "SSLV3_ALERT_HANDSHAKE_FAILURE"),
        # x25519 only: no ECDHE at the platform; a static-RSA policy suite still works there, and here.
        ("X25519", "ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256", "AES128-GCM-SHA256"),
        ("X25519", "ECDHE-RSA-AES128-GCM-SHA256", "SSLV3_ALERT_HANDSHAKE_FAILURE"),
        ("secp521r1", "ECDHE-ECDSA-AES128-GCM-SHA256", "SSLV3_ALERT_HANDSHAKE_FAILURE"),
    ],
)
async def test_endpoint_offers_the_policy_groups_only(store: CertStore, curve: str, suites: str, expected: str) -> None:
    from harness.endpoint import CONNECTED, TLS_FAILED, Endpoint, EndpointConfig

    def connect(port: int) -> str:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
                with _curve_client(store.ca_pem, curve, suites).wrap_socket(raw, server_hostname="localhost") as conn:
                    return str(conn.cipher()[0])  # type: ignore[index]
        except ssl.SSLError as exc:
            return str(exc.reason)

    async with Endpoint(EndpointConfig(certs_dir=store.directory, handshake_timeout=TIMEOUT)) as endpoint:
        got = await asyncio.to_thread(connect, endpoint.port)
        attempt = await endpoint.wait_attempt(lambda a: True, within=TIMEOUT)
    assert got == expected
    assert attempt is not None and attempt.client_hello is not None and "groups: " in attempt.client_hello
    if expected.startswith("SSLV3"):
        assert attempt.outcome == TLS_FAILED
        assert "P-256" in attempt.detail, attempt.detail
    else:
        assert attempt.outcome != CONNECTED or attempt.cipher == expected  # TLS done; no upgrade was sent


@pytest.mark.asyncio
async def test_endpoint_says_when_the_good_chain_is_refused(store: CertStore) -> None:
    from harness.endpoint import TLS_FAILED, Endpoint, EndpointConfig

    other = trustme.CA()  # a charger given some other CA: it answers unknown_ca to the good chain
    with other.cert_pem.tempfile() as other_ca:
        client = client_context(other_ca)
        async with Endpoint(EndpointConfig(certs_dir=store.directory, handshake_timeout=TIMEOUT)) as endpoint:
            error = await asyncio.to_thread(_client_outcome, endpoint.port, client)
            attempt = await endpoint.wait_attempt(lambda a: True, within=TIMEOUT)
    assert isinstance(error, ssl.SSLCertVerificationError)
    assert attempt is not None and attempt.outcome == TLS_FAILED
    assert attempt.detail.startswith("the charger refused our certificate (TLS alert unknown_ca"), attempt.detail
    assert "this was the good certificate (leaf + intermediate" in attempt.detail
