"""TLS of the fake ev.energy endpoint: exactly AWS ``ELBSecurityPolicy-TLS-1-2-Ext-2018-06``.

Requirements served here (see docs/reference/ev-energy-requirements.md):
- TLS-1: "TLS 1.2 and a cipher suite allowed by the AWS load-balancer policy
  ELBSecurityPolicy-TLS-1-2-Ext-2018-06 ... no TLS 1.0/1.1, no TLS 1.3" -> :func:`CertStore.server_context`.
- TLS-3: "The charger validates the platform's server certificate (chain to a trusted CA, host name,
  validity dates)" -> the harness CA in :class:`CertStore` and :meth:`CertStore.bad_server_context`.
- AUTH-2 (security profile 3, client certificates) -> ``require_client_cert`` and
  :meth:`CertStore.issue_client_cert`.

When a charger's handshake fails, a manufacturer needs to know *why*: :func:`parse_client_hello`
reads the ClientHello peeked from the socket (sans-I/O) and :func:`describe_tls_failure` turns the
OpenSSL error into a sentence.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import enum
import functools
import ipaddress
import os
import re
import ssl
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trustme
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

try:  # POSIX only: serialises CertStore.ensure() across processes (pytest-xdist workers, `serve`).
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "POLICY_NAME",
    "POLICY_SUITES",
    "POLICY_SUITE_CODES",
    "TLS13_SUITE_CODES",
    "CertStore",
    "POLICY_GROUPS",
    "TlsFailure",
    "classify_tls_failure",
    "group_name",
    "ClientHello",
    "client_context",
    "describe_tls_failure",
    "parse_client_hello",
    "tls_version_name",
]

# --------------------------------------------------------------------------------------------------
# The policy
# --------------------------------------------------------------------------------------------------

POLICY_NAME: Final[str] = "ELBSecurityPolicy-TLS-1-2-Ext-2018-06"

# IANA code -> OpenSSL name, in the policy's order (AWS lists them in this order, and an ELB
# prefers them in this order: the server's preference decides the suite).
POLICY_SUITE_CODES: Final[dict[int, str]] = {
    0xC02B: "ECDHE-ECDSA-AES128-GCM-SHA256",
    0xC02F: "ECDHE-RSA-AES128-GCM-SHA256",
    0xC023: "ECDHE-ECDSA-AES128-SHA256",
    0xC027: "ECDHE-RSA-AES128-SHA256",
    0xC009: "ECDHE-ECDSA-AES128-SHA",
    0xC013: "ECDHE-RSA-AES128-SHA",
    0xC02C: "ECDHE-ECDSA-AES256-GCM-SHA384",
    0xC030: "ECDHE-RSA-AES256-GCM-SHA384",
    0xC024: "ECDHE-ECDSA-AES256-SHA384",
    0xC028: "ECDHE-RSA-AES256-SHA384",
    0xC014: "ECDHE-RSA-AES256-SHA",
    0xC00A: "ECDHE-ECDSA-AES256-SHA",
    0x009C: "AES128-GCM-SHA256",
    0x003C: "AES128-SHA256",
    0x002F: "AES128-SHA",
    0x009D: "AES256-GCM-SHA384",
    0x003D: "AES256-SHA256",
    0x0035: "AES256-SHA",
}
POLICY_SUITES: Final[tuple[str, ...]] = tuple(POLICY_SUITE_CODES.values())

# The policy's ECDHE groups, in the load balancer's preference order. AWS's TLS library s2n-tls defines
# ELBSecurityPolicy-TLS-1-2-Ext-2018-06 with ecc_preferences s2n_ecc_preferences_20140601 = secp256r1,
# secp384r1 (tls/s2n_security_policies.c, tls/s2n_ecc_preferences.c): no x25519, x448 or P-521. IANA code ->
# OpenSSL curve name (what SSLContext.set_ecdh_curve takes).
POLICY_GROUPS: Final[dict[int, str]] = {0x0017: "prime256v1", 0x0018: "secp384r1"}
_GROUP_NAMES: Final[dict[int, str]] = {
    0x0017: "P-256", 0x0018: "P-384", 0x0019: "P-521", 0x001D: "x25519", 0x001E: "x448",
    0x0100: "ffdhe2048", 0x0101: "ffdhe3072", 0x0102: "ffdhe4096", 0x001A: "brainpoolP256r1",
    0x001B: "brainpoolP384r1", 0x001C: "brainpoolP512r1", 0x0015: "secp224r1",
}


def group_name(code: int) -> str:
    """``0x0017`` -> ``"P-256"``; unknown groups keep their hex."""
    if code in _GROUP_NAMES:
        return _GROUP_NAMES[code]
    return f"GREASE (0x{code:04x})" if _is_grease(code) else f"0x{code:04X}"

# RFC 8446 §B.4. The policy has none of them: a TLS 1.3-only charger cannot connect.
TLS13_SUITE_CODES: Final[dict[int, str]] = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0x1304: "TLS_AES_128_CCM_SHA256",
    0x1305: "TLS_AES_128_CCM_8_SHA256",
}

# Signalling values that sit in the cipher-suite list but are not suites (RFC 5746, RFC 7507).
_SCSV_CODES: Final[dict[int, str]] = {
    0x00FF: "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
    0x5600: "TLS_FALLBACK_SCSV",
}

# A few suites embedded TLS stacks (mbedTLS, wolfSSL) commonly offer that OpenSSL may not list at
# the default build; names in OpenSSL style so reports read the same throughout.
_OTHER_SUITE_CODES: Final[dict[int, str]] = {
    0xCCA8: "ECDHE-RSA-CHACHA20-POLY1305",
    0xCCA9: "ECDHE-ECDSA-CHACHA20-POLY1305",
    0xCCAA: "DHE-RSA-CHACHA20-POLY1305",
    0x009E: "DHE-RSA-AES128-GCM-SHA256",
    0x009F: "DHE-RSA-AES256-GCM-SHA384",
    0x0033: "DHE-RSA-AES128-SHA",
    0x0039: "DHE-RSA-AES256-SHA",
    0x0067: "DHE-RSA-AES128-SHA256",
    0x006B: "DHE-RSA-AES256-SHA256",
    0x000A: "DES-CBC3-SHA",
    0xC012: "ECDHE-RSA-DES-CBC3-SHA",
    0x0005: "RC4-SHA",
    0x0004: "RC4-MD5",
    0xC0AC: "ECDHE-ECDSA-AES128-CCM",
    0xC0AE: "ECDHE-ECDSA-AES128-CCM8",
    0xC09C: "AES128-CCM",
    0xC0A0: "AES128-CCM8",
    0x00A8: "PSK-AES128-GCM-SHA256",
    0x00AE: "PSK-AES128-CBC-SHA256",
}

_TLS_VERSION_NAMES: Final[dict[int, str]] = {
    0x0002: "SSL 2.0",
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
}
_TLS12: Final[int] = 0x0303


def _is_grease(code: int) -> bool:
    # RFC 8701: 0x0A0A, 0x1A1A, ... 0xFAFA; clients sprinkle them into version and suite lists.
    return (code & 0x0F0F) == 0x0A0A and (code >> 8) == (code & 0xFF)


def tls_version_name(code: int) -> str:
    """``0x0303`` -> ``"TLS 1.2"``; unknown values keep their hex so nothing is hidden."""
    if code in _TLS_VERSION_NAMES:
        return _TLS_VERSION_NAMES[code]
    if _is_grease(code):
        return f"GREASE (0x{code:04x})"
    if 0x7F00 <= code <= 0x7FFF:  # pre-RFC 8446 drafts
        return f"TLS 1.3 draft {code & 0xFF}"
    return f"unknown version (0x{code:04x})"


@functools.cache
def _openssl_suite_names() -> dict[int, str]:
    # Everything this OpenSSL build knows, for naming suites outside the policy in reports.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with contextlib.suppress(ssl.SSLError):
        ctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    return {int(c["id"]) & 0xFFFF: str(c["name"]) for c in ctx.get_ciphers()}


def _suite_name(code: int) -> str:
    for table in (POLICY_SUITE_CODES, TLS13_SUITE_CODES, _SCSV_CODES, _OTHER_SUITE_CODES):
        if code in table:
            return table[code]
    return _openssl_suite_names().get(code, f"0x{code:04X}")


def _policy_server_context() -> ssl.SSLContext:
    """The policy without certificates; shared by the good and the deliberately bad servers."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # "TLS 1.2 only (no 1.0, 1.1, 1.3)".
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    # Python's defaults enable only 8 of the 18 (no SHA-1 MACs, no static RSA): name them all.
    # An explicit list keeps its order in OpenSSL, and with server preference that order decides.
    ctx.set_ciphers(":".join(POLICY_SUITES))
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx


# --------------------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------------------

_DEFAULT_SANS: Final[tuple[str, ...]] = ("localhost", "127.0.0.1")
_RENEW_WITHIN: Final[dt.timedelta] = dt.timedelta(days=30)
# 395 days (13 months), back-dating included: what AWS Certificate Manager issues for the platform's load
# balancer, and under the 398 days browsers and many TLS stacks accept for a server certificate.
_SERVER_LIFETIME: Final[dt.timedelta] = dt.timedelta(days=395)
_SERVER_VALIDITY: Final[dt.timedelta] = _SERVER_LIFETIME - dt.timedelta(days=1)  # from now (client certs too)
# A public intermediate lives for years (Amazon's RSA 2048 M0x: about 8); 5 years, and never past the root.
_INTERMEDIATE_LIFETIME: Final[dt.timedelta] = dt.timedelta(days=5 * 365)
_RSA_BITS: Final[int] = 2048
# Back-dated a day so a charger whose clock is a few hours behind still accepts a fresh cert.
_BACKDATE: Final[dt.timedelta] = dt.timedelta(days=1)
_ORG: Final[str] = "ev-energy-ocpp-harness"
_BAD_KINDS: Final[tuple[str, ...]] = ("untrusted-ca", "expired", "wrong-host")
_WRONG_HOST: Final[str] = "wrong-host.invalid"  # RFC 2606 .invalid: can never be the real host
_CLIENT_CAS: Final[tuple[str, ...]] = ("harness", "untrusted")

# kind -> (cert file, key file, trustme key type, public key class). RSA is the default leaf (what the
# platform's load balancer presents); the ECDSA leaf (P-256) serves the policy's ECDHE-ECDSA suites.
_SERVER_KINDS: Final[dict[str, tuple[str, str, trustme.KeyType, type]]] = {
    "rsa": ("server-rsa.pem", "server-rsa.key", trustme.KeyType.RSA, rsa.RSAPublicKey),
    "ec": ("server-ec.pem", "server-ec.key", trustme.KeyType.ECDSA, ec.EllipticCurvePublicKey),
}
_PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _new_key(kind: str) -> _PrivateKey:
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)


def _key_pem(key: _PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_usage(*, digital_signature: bool = False, key_encipherment: bool = False,
               key_cert_sign: bool = False, crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False,
                         key_encipherment=key_encipherment, data_encipherment=False, key_agreement=False,
                         key_cert_sign=key_cert_sign, crl_sign=crl_sign, encipher_only=False,
                         decipher_only=False)


def _issue_intermediate(root_cert: x509.Certificate, root_key: _PrivateKey, *, organization: str,
                        now: dt.datetime) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """root -> intermediate, shaped like a public issuing CA: RSA 2048, SHA-256, pathLen 0 (it signs
    leaves only), keyCertSign + cRLSign, its validity inside the root's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
    not_before = now - _BACKDATE
    not_after = min(not_before + _INTERMEDIATE_LIFETIME, root_cert.not_valid_after_utc)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "harness intermediate CA"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"{organization} intermediate CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(root_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            root_cert.public_key()), critical=False)  # type: ignore[arg-type]
        .sign(root_key, hashes.SHA256())
    )
    return cert, key


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _issue_leaf(issuer_cert: x509.Certificate, issuer_key: _PrivateKey, kind: str, names: list[str], *,
                common_name: str, unit: str, not_before: dt.datetime,
                not_after: dt.datetime) -> tuple[x509.Certificate, _PrivateKey]:
    """A TLS server certificate shaped like a public one (what AWS Certificate Manager issues): SHA-256,
    EKU serverAuth only, key usage matching the key (RSA: digitalSignature + keyEncipherment, for the
    policy's ECDHE-RSA and static-RSA suites; EC: digitalSignature), the bench's names and IPs as SANs."""
    key = _new_key(kind)
    usage = (_key_usage(digital_signature=True, key_encipherment=True) if kind == "rsa"
             else _key_usage(digital_signature=True))
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
                         x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        # The subject is not empty, so the SAN is not critical (RFC 5280 §4.2.1.6).
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_cert.public_key()), critical=False)  # type: ignore[arg-type]
        .sign(issuer_key, hashes.SHA256())
    )
    return cert, key


def _shaped_like_a_public_leaf(cert: x509.Certificate, kind: str) -> bool:
    """The properties _issue_leaf gives; a leaf from an older harness (root-signed, EKU with clientAuth and
    codeSigning, ...) lacks some and is reissued."""
    try:
        eku = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    key = cert.public_key()
    key_ok = (isinstance(key, rsa.RSAPublicKey) and key.key_size == _RSA_BITS and usage.key_encipherment) if kind == "rsa" \
        else (isinstance(key, ec.EllipticCurvePublicKey) and not usage.key_encipherment)
    return (
        key_ok
        and usage.digital_signature and not usage.key_cert_sign
        and eku == [ExtendedKeyUsageOID.SERVER_AUTH]
        and not basic.ca
        and isinstance(cert.signature_hash_algorithm, hashes.SHA256)
        and cert.not_valid_after_utc - cert.not_valid_before_utc <= _SERVER_LIFETIME
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Atomic write; the file has ``mode`` from creation, so a key is never readable by others."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # O_TRUNC on a stale temp file would keep its old, maybe looser, mode
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _write_private_key(path: Path, data: bytes) -> None:
    _write_file(path, data, 0o600)


def _write_public(path: Path, data: bytes) -> None:
    _write_file(path, data, 0o644)


def _normalise_name(host: str) -> str | None:
    """One spelling per SAN so "BENCH.local", "[::1]" and "bench.local." compare equal."""
    name = host.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if not name:
        return None
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    name = name.rstrip(".").lower()
    if not name.isascii():
        with contextlib.suppress(UnicodeError):
            name = name.encode("idna").decode("ascii")  # SANs hold A-labels
    return name or None


def _dedupe(names: Iterable[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        norm = _normalise_name(n)
        if norm is not None and norm not in out:
            out.append(norm)
    return out


def _sans(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    names: list[str] = []
    for gn in ext.value:
        if isinstance(gn, x509.DNSName):
            names.append(gn.value)
        elif isinstance(gn, x509.IPAddress):
            names.append(str(gn.value))
    return names


def _common_name(cert: x509.Certificate) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


def _public_key_of(key_pem: bytes) -> bytes:
    """SubjectPublicKeyInfo of a PEM private key, to check it belongs to a certificate.

    Only the public half is used here, so RSA's costly consistency check (tens of ms per key,
    and ensure() runs on every start) is skipped; OpenSSL checks the pair again when loading it.
    """
    key = serialization.load_pem_private_key(key_pem, password=None, unsafe_skip_rsa_key_validation=True)
    return _spki(key.public_key())


def _spki(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _safe_filename(name: str) -> str:
    # A CN is free text (serial numbers, "CPO/123"): keep file names portable.
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return safe or "client"


class CertStore:
    """The harness CA and server certificates in one folder (normally ``certs/``).

    Created on first use and reused afterwards: a bench charger is given ``ca.pem`` once and must
    keep trusting it, so the CA is never regenerated while ``ca.pem`` and ``ca.key`` exist.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory: Path = Path(directory)
        self._ready: bool = False
        self._bad: dict[str, concurrent.futures.Future[ssl.SSLContext]] = {}
        self._bad_lock = threading.Lock()

    # -- paths ---------------------------------------------------------------------------------

    @property
    def ca_pem(self) -> Path:
        """The CA certificate to install on the charger as its trusted root."""
        return self.directory / "ca.pem"

    @property
    def _ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def intermediate_pem(self) -> Path:
        """The intermediate CA (root -> intermediate -> leaf); the endpoint sends it after the leaf."""
        return self.directory / "intermediate.pem"

    @property
    def _intermediate_key(self) -> Path:
        return self.directory / "intermediate.key"

    def _server_paths(self, kind: str) -> tuple[Path, Path]:
        pem, key, _, _ = _SERVER_KINDS[kind]
        return self.directory / pem, self.directory / key

    # -- creation and reuse ----------------------------------------------------------------------

    def ensure(self, hosts: Iterable[str] = ()) -> CertStore:
        """Create or reuse the CA and the RSA + ECDSA server certificates; see the class doc."""
        hosts = [hosts] if isinstance(hosts, str) else list(hosts)  # ensure("bench.local") too
        wanted = _dedupe([*_DEFAULT_SANS, *hosts])
        primary = _dedupe(hosts)[:1]
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._locked():
            self._fix_key_modes()
            ca_cert = self._load_or_create_ca()
            issuer = self._load_or_create_intermediate(ca_cert)
            self._ensure_server_certs(issuer, wanted, primary[0] if primary else None)
        self._ready = True
        return self

    def _ensure_ready(self) -> None:
        if not self._ready:
            self.ensure()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Two processes creating the store at once would otherwise make two different CAs.
        if fcntl is None:  # pragma: no cover - Windows
            yield
            return
        fd = os.open(self.directory / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _fix_key_modes(self) -> None:
        # Keys created by older tools or copied around may be group/world readable.
        for key in self.directory.glob("*.key"):
            with contextlib.suppress(OSError):
                if key.stat().st_mode & 0o077:
                    key.chmod(0o600)

    def _load_or_create_ca(self) -> x509.Certificate:
        pem, key = self.ca_pem, self._ca_key
        if pem.exists() and key.exists():
            cert = x509.load_pem_x509_certificate(pem.read_bytes())
            if _public_key_of(key.read_bytes()) != _spki(cert.public_key()):
                raise RuntimeError(f"{key} does not belong to {pem}; restore the pair, or delete both "
                                   "to start a new CA (chargers then need the new ca.pem)")
            return cert
        if pem.exists() or key.exists():
            # Regenerating would silently break every charger that trusts the old ca.pem.
            present, missing = (pem, key) if pem.exists() else (key, pem)
            raise RuntimeError(f"{present} exists but {missing} is missing; restore it, or delete "
                               f"{present} to start a new CA (chargers then need the new ca.pem)")
        # RSA, so that chargers whose TLS stack only does RSA can still verify the chain.
        ca = trustme.CA(key_type=trustme.KeyType.RSA, organization_name=_ORG,
                        organization_unit_name="harness test CA")
        _write_private_key(key, ca.private_key_pem.bytes())
        _write_public(pem, ca.cert_pem.bytes())
        return x509.load_pem_x509_certificate(ca.cert_pem.bytes())

    def _load_or_create_intermediate(self, ca_cert: x509.Certificate) -> x509.Certificate:
        """Reuse the intermediate if it is the root's, matches its key and is not about to expire; else
        issue a new one (chargers trust the root, so a new intermediate needs nothing on their side).
        A store from before the chain existed (leaves signed by the root) gets one here."""
        pem, key = self.intermediate_pem, self._intermediate_key
        with contextlib.suppress(OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            cert = x509.load_pem_x509_certificate(pem.read_bytes())
            cert.verify_directly_issued_by(ca_cert)
            if (_public_key_of(key.read_bytes()) == _spki(cert.public_key())
                    and cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
                    and cert.not_valid_before_utc <= _now()
                    and cert.not_valid_after_utc - _now() > _RENEW_WITHIN + _SERVER_LIFETIME):
                return cert
        root_key = serialization.load_pem_private_key(self._ca_key.read_bytes(), password=None)
        cert, new_key = _issue_intermediate(ca_cert, root_key, organization=_ORG, now=_now())  # type: ignore[arg-type]
        _write_private_key(key, _key_pem(new_key))
        _write_public(pem, _cert_pem(cert))
        return cert

    def _intermediate(self) -> tuple[x509.Certificate, _PrivateKey]:
        cert = x509.load_pem_x509_certificate(self.intermediate_pem.read_bytes())
        key = serialization.load_pem_private_key(self._intermediate_key.read_bytes(), password=None)
        return cert, key  # type: ignore[return-value]

    def _read_server_cert(self, kind: str) -> x509.Certificate | None:
        pem, _ = self._server_paths(kind)
        try:
            return x509.load_pem_x509_certificate(pem.read_bytes())
        except (OSError, ValueError):
            return None

    def _server_cert_usable(self, kind: str, issuer: x509.Certificate, wanted: list[str]) -> bool:
        cert = self._read_server_cert(kind)
        _, key_path = self._server_paths(kind)
        if cert is None:
            return False
        try:
            key_spki = _public_key_of(key_path.read_bytes())
            cert.verify_directly_issued_by(issuer)  # a leaf signed by the root itself (older stores): reissued
            chain = x509.load_pem_x509_certificates(self._server_paths(kind)[0].read_bytes())
        except (OSError, ValueError, TypeError, InvalidSignature):
            return False
        now = _now()
        return (
            isinstance(cert.public_key(), _SERVER_KINDS[kind][3])
            and chain == [cert, issuer]  # exactly leaf + intermediate, what the load balancer sends
            and _shaped_like_a_public_leaf(cert, kind)
            and key_spki == _spki(cert.public_key())
            and cert.not_valid_before_utc <= now
            and cert.not_valid_after_utc - now > _RENEW_WITHIN  # "expire within 30 days" -> renew
            and set(wanted) <= set(_dedupe(_sans(cert)))
        )

    def _ensure_server_certs(self, issuer: x509.Certificate, wanted: list[str], primary: str | None) -> None:
        if all(self._server_cert_usable(kind, issuer, wanted) for kind in _SERVER_KINDS):
            return  # reuse byte for byte
        issuer_cert, issuer_key = self._intermediate()
        old = [c for c in (self._read_server_cert(k) for k in _SERVER_KINDS) if c is not None]
        # Keep every name served so far: another bench setup may still connect with it.
        names = _dedupe([*_DEFAULT_SANS, *(n for c in old for n in _sans(c)), *wanted])
        old_cn = next((cn for cn in map(_common_name, old) if cn and cn in names), None)
        # CN too, for chargers that still match the host against the CN instead of the SANs.
        common_name = primary or old_cn or "localhost"
        not_before = _now() - _BACKDATE
        # Reissue both together so the RSA and ECDSA certs always carry the same names.
        for kind in _SERVER_KINDS:
            leaf, key = _issue_leaf(issuer_cert, issuer_key, kind, names, common_name=common_name,
                                    unit="harness endpoint", not_before=not_before,
                                    not_after=not_before + _SERVER_LIFETIME)
            pem, key_path = self._server_paths(kind)
            _write_private_key(key_path, _key_pem(key))
            # leaf + intermediate, as the platform's load balancer sends them; the root is the charger's own.
            _write_public(pem, _cert_pem(leaf) + _cert_pem(issuer_cert))

    # -- queries ---------------------------------------------------------------------------------

    def server_names(self) -> list[str]:
        """The SANs of the current server certificates (DNS names and IPs), for printing."""
        self._ensure_ready()
        certs = [c for c in (self._read_server_cert(k) for k in _SERVER_KINDS) if c is not None]
        return _dedupe(n for c in certs for n in _sans(c))

    def _server_common_name(self) -> str:
        cert = self._read_server_cert("rsa")
        return (_common_name(cert) if cert is not None else None) or "localhost"

    def _harness_ca(self) -> trustme.CA:
        return trustme.CA.from_pem(self.ca_pem.read_bytes(), self._ca_key.read_bytes())

    # -- contexts --------------------------------------------------------------------------------

    def server_context(self, *, require_client_cert: bool = False, group: str = POLICY_GROUPS[0x0017]) -> ssl.SSLContext:
        """The endpoint's context: exactly the policy, RSA and ECDSA certificates loaded.

        ``group``: the one ECDHE curve it agrees to (a POLICY_GROUPS name). Python's ssl can set one
        group, not a list, so the endpoint keeps a context per policy group and picks the one the load
        balancer would use for each ClientHello (:meth:`ClientHello.policy_group`).

        ``require_client_cert`` is security profile 3: "server checks the client certificate
        chain" against the harness CA; no or an invalid certificate ends the handshake.
        """
        self._ensure_ready()
        if group not in POLICY_GROUPS.values():
            raise ValueError(f"{group!r} is not a group of {POLICY_NAME}: {', '.join(POLICY_GROUPS.values())}")
        ctx = _policy_server_context()
        ctx.set_ecdh_curve(group)
        # ECDSA suites need the EC certificate, RSA suites the RSA one; OpenSSL keeps one per type.
        for kind in _SERVER_KINDS:
            pem, key = self._server_paths(kind)
            ctx.load_cert_chain(pem, key)
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=self.ca_pem)
        return ctx

    def issue_client_cert(self, common_name: str, *, organization: str | None = None,
                          directory: str | os.PathLike[str] | None = None,
                          ca: str = "harness") -> tuple[Path, Path]:
        """An RSA client certificate for security profile 3: CN = charge point serial/identity,
        O = CPO name (whitepaper). ``ca="untrusted"`` signs it with a throwaway CA instead, for
        negative tests. Writes ``<cn>-client.pem`` (leaf + issuer) and ``<cn>-client.key`` (0600).
        """
        if ca not in _CLIENT_CAS:
            raise ValueError(f"unknown ca {ca!r}; valid: {', '.join(_CLIENT_CAS)}")
        if not common_name:
            raise ValueError("common_name must not be empty")
        self._ensure_ready()
        issuer = self._harness_ca() if ca == "harness" else trustme.CA(
            key_type=trustme.KeyType.RSA, organization_name="untrusted throwaway CA")
        issuer_cert = x509.load_pem_x509_certificate(issuer.cert_pem.bytes())
        issuer_key = serialization.load_pem_private_key(issuer.private_key_pem.bytes(), password=None)
        # Built with cryptography rather than trustme.issue_cert: given only a CN, trustme writes
        # an empty critical subjectAltName, which RFC 5280 §4.2.1.6 forbids and strict stacks
        # reject; a charger's client certificate needs no SAN, only CN (and O).
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if organization:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(issuer_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _SERVER_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=True, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer_cert.public_key()), critical=False)  # type: ignore[arg-type]
            .sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]
        )
        out = Path(directory) if directory is not None else self.directory
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        stem = _safe_filename(common_name)
        cert_path, key_path = out / f"{stem}-client.pem", out / f"{stem}-client.key"
        _write_private_key(key_path, key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
        _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM)
                      + issuer_cert.public_bytes(serialization.Encoding.PEM))
        return cert_path, key_path

    def bad_server_context(self, kind: str) -> ssl.SSLContext:
        """Same policy, but certificates a correct charger must refuse (TLS-3):

        - ``untrusted-ca``: right names and dates, issued by a fresh CA the charger does not know;
        - ``expired``: real CA and names, valid from 30 days ago until 1 day ago;
        - ``wrong-host``: real CA and dates, SAN (and CN) only ``wrong-host.invalid``.

        Only the tested property differs from the good certificate. Nothing is written to the store;
        each kind is made once per store object (see `prepare_bad_contexts`).
        """
        if kind not in _BAD_KINDS:
            raise ValueError(f"unknown bad certificate kind {kind!r}; valid kinds: {', '.join(_BAD_KINDS)}")
        self._ensure_ready()
        return self._bad_future(kind).result()

    def prepare_bad_contexts(self) -> None:
        """Start making every bad context in one background thread, so TLS-3 finds them ready.

        Their key generation is the slow part (~0.3 s) and releases the GIL: done while the run
        waits on the charger, it costs the run nothing.
        """
        self._ensure_ready()
        claimed = [(kind, future) for kind in _BAD_KINDS if (future := self._claim_bad(kind)) is not None]
        if claimed:
            def make_all() -> None:
                for k, f in claimed:
                    self._make_bad_into(k, f)

            threading.Thread(target=make_all,
                             name="harness-bad-certificates", daemon=True).start()

    def _bad_future(self, kind: str) -> concurrent.futures.Future[ssl.SSLContext]:
        future = self._claim_bad(kind)
        if future is not None:  # nobody is making it: make it here
            self._make_bad_into(kind, future)
        return self._bad[kind]

    def _claim_bad(self, kind: str) -> concurrent.futures.Future[ssl.SSLContext] | None:
        """A new future for `kind` if nobody makes it yet (the caller must then fill it), else None."""
        with self._bad_lock:
            if kind in self._bad:
                return None
            future = self._bad[kind] = concurrent.futures.Future()
            return future

    def _make_bad_into(self, kind: str, future: concurrent.futures.Future[ssl.SSLContext]) -> None:
        try:
            future.set_result(self._make_bad_context(kind))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the context
            future.set_exception(exc)

    def _make_bad_context(self, kind: str) -> ssl.SSLContext:
        names, common_name = self.server_names(), self._server_common_name()
        now = _now()
        not_before, not_after = now - _BACKDATE, now - _BACKDATE + _SERVER_LIFETIME
        # The same shape as the good chain (root -> intermediate -> leaf, leaf + intermediate sent), so
        # only the tested property differs, also for a charger anchored on the intermediate.
        issuer_key: _PrivateKey
        if kind == "untrusted-ca":
            throwaway = trustme.CA(key_type=trustme.KeyType.RSA, organization_name="untrusted throwaway CA")
            root_cert = x509.load_pem_x509_certificate(throwaway.cert_pem.bytes())
            root_key = serialization.load_pem_private_key(throwaway.private_key_pem.bytes(), password=None)
            issuer_cert, issuer_key = _issue_intermediate(root_cert, root_key,  # type: ignore[arg-type]
                                                          organization="untrusted throwaway CA", now=now)
        else:
            issuer_cert, issuer_key = self._intermediate()
        if kind == "expired":
            not_before, not_after = now - dt.timedelta(days=30), now - dt.timedelta(days=1)
        elif kind == "wrong-host":
            names, common_name = [_WRONG_HOST], _WRONG_HOST
        ctx = _policy_server_context()
        # load_cert_chain only reads files: a private temp dir (0700), deleted at once.
        with tempfile.TemporaryDirectory(prefix="harness-tls-") as tmp:
            for kind_name in _SERVER_KINDS:
                leaf, leaf_key = _issue_leaf(issuer_cert, issuer_key, kind_name, names, common_name=common_name,
                                             unit=f"harness bad certificate: {kind}", not_before=not_before,
                                             not_after=not_after)
                pem, key = Path(tmp) / f"{kind_name}.pem", Path(tmp) / f"{kind_name}.key"
                _write_private_key(key, _key_pem(leaf_key))
                _write_public(pem, _cert_pem(leaf) + _cert_pem(issuer_cert))
                ctx.load_cert_chain(pem, key)
        return ctx


def client_context(ca_file: str | os.PathLike[str] | None, *,
                   client_cert: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
                   check_hostname: bool = True, verify: bool = True,
                   partial_chain: bool = False) -> ssl.SSLContext:
    """What a good charger uses: TLS >= 1.2, chain checked against ``ca_file`` (the system store if
    None) and the host name checked (TLS-3). ``verify=False`` turns both off: only for the reference
    charger's "no server-certificate check" defect. ``client_cert`` = (cert, key) for profile 3.
    ``partial_chain``: any certificate in ``ca_file`` is a trust anchor, not only a self-signed root
    (OpenSSL's X509_V_FLAG_PARTIAL_CHAIN; RFC 5280 §6.1.1 lets a trust anchor be any CA), for a
    charger given the intermediate as its trusted CA.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if verify:
        if ca_file is not None:
            ctx.load_verify_locations(cafile=ca_file)
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        ctx.check_hostname = check_hostname  # CERT_REQUIRED stays: the chain is always checked
        if partial_chain:
            ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    else:
        ctx.check_hostname = False  # must be off before verify_mode can drop to CERT_NONE
        ctx.verify_mode = ssl.CERT_NONE
    if client_cert is not None:
        ctx.load_cert_chain(client_cert[0], client_cert[1])
    return ctx


# --------------------------------------------------------------------------------------------------
# ClientHello (sans-I/O)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientHello:
    """What a charger offered, as raw wire values (GREASE and SCSVs included)."""

    record_version: int
    legacy_version: int
    supported_versions: tuple[int, ...]  # from extension 43 (supported_versions), else (legacy_version,)
    cipher_suites: tuple[int, ...]
    server_name: str | None
    groups: tuple[int, ...] | None = None  # supported_groups (extension 10); None when it was not sent

    def policy_group(self) -> str | None:
        """The ECDHE curve the platform's load balancer would pick: its first preference the charger offers.
        None when the charger offers neither P-256 nor P-384 (then no ECDHE suite can be agreed). A hello
        without the extension lets the server choose (RFC 8422 §4): the load balancer's first, P-256."""
        if self.groups is None:
            return POLICY_GROUPS[0x0017]
        return next((name for code, name in POLICY_GROUPS.items() if code in self.groups), None)

    def offered_groups(self) -> list[str]:
        return [group_name(g) for g in self.groups or () if not _is_grease(g)]

    def offered_policy_suites(self) -> list[str]:
        """OpenSSL names of the offered suites the policy allows, in the charger's order."""
        return [POLICY_SUITE_CODES[c] for c in self.cipher_suites if c in POLICY_SUITE_CODES]

    def offers_tls12(self) -> bool:
        return _TLS12 in self.supported_versions

    def describe(self) -> str:
        """One line for humans: the versions, and how many policy suites, were offered."""
        versions = [v for v in self.supported_versions if not _is_grease(v)]
        if not self.offers_tls12():
            if len(versions) == 1 and versions[0] == self.legacy_version and versions[0] < _TLS12:
                # No supported_versions extension: legacy_version is only the highest version.
                return f"offered {tls_version_name(versions[0])} at most"
            return f"offered {_join_and([tls_version_name(v) for v in versions]) or 'no version'} only"
        head = f"offered {_join_and([tls_version_name(v) for v in versions])}"
        policy = list(dict.fromkeys(self.offered_policy_suites()))
        if policy:
            return f"{head} with {len(policy)} of {len(POLICY_SUITES)} policy suites ({', '.join(policy)})"
        offered = [_suite_name(c) for c in self.cipher_suites if not _is_grease(c) and c not in _SCSV_CODES]
        return (f"{head} with 0 of {len(POLICY_SUITES)} policy suites "
                f"(offered: {', '.join(offered) or 'nothing'})")


def _join_and(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


class _Malformed(Exception):
    """Internal: the bytes are not a complete, well-formed ClientHello."""


class _Reader:
    """Bounds-checked reader: every read past the end raises _Malformed, nothing else."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._data):
            raise _Malformed
        chunk = self._data[self._pos:self._pos + n]
        self._pos += n
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> bytes:
        return self.take(self.uint(length_size))

    def at_end(self) -> bool:
        return self._pos >= len(self._data)


_CONTENT_HANDSHAKE: Final[int] = 22
_HANDSHAKE_CLIENT_HELLO: Final[int] = 1
_MAX_RECORD: Final[int] = 2**14 + 2048  # RFC 5246 §6.2.3 ceiling for any record
_MAX_HELLO: Final[int] = 2**17  # far above any real ClientHello; refuses absurd lengths early
_EXT_SERVER_NAME: Final[int] = 0
_EXT_SUPPORTED_VERSIONS: Final[int] = 43
_EXT_SUPPORTED_GROUPS: Final[int] = 10


def parse_client_hello(data: bytes) -> ClientHello | None:
    """Parse the ClientHello at the start of ``data`` (bytes peeked from a socket).

    Handles a hello split over several handshake records. Returns None for anything that is not a
    complete TLS ClientHello (plain HTTP, SSLv2, garbage, truncated); never raises.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return None
    buf = bytes(data)
    try:
        handshake = bytearray()
        record_version: int | None = None
        pos = 0
        need: int | None = None
        while need is None or len(handshake) < need:
            header = _Reader(buf[pos:pos + 5])
            content_type, version, length = header.uint(1), header.uint(2), header.uint(2)
            if content_type != _CONTENT_HANDSHAKE or version >> 8 != 3 or not 0 < length <= _MAX_RECORD:
                return None
            if record_version is None:
                record_version = version
            handshake += _Reader(buf[pos + 5:pos + 5 + length]).take(length)
            pos += 5 + length
            if need is None and len(handshake) >= 4:
                if handshake[0] != _HANDSHAKE_CLIENT_HELLO:
                    return None
                need = 4 + int.from_bytes(handshake[1:4], "big")
                if need > _MAX_HELLO:
                    return None
        assert record_version is not None and need is not None
        return _parse_hello_body(bytes(handshake[4:need]), record_version)
    except _Malformed:
        return None


def _parse_hello_body(body: bytes, record_version: int) -> ClientHello:
    r = _Reader(body)
    legacy_version = r.uint(2)
    r.take(32)  # random
    if len(r.vector(1)) > 32:  # legacy_session_id
        raise _Malformed
    suites = r.vector(2)
    if not suites or len(suites) % 2:
        raise _Malformed
    if not r.vector(1):  # compression methods: at least "null"
        raise _Malformed
    server_name: str | None = None
    versions: tuple[int, ...] | None = None
    groups: tuple[int, ...] | None = None
    if not r.at_end():  # extensions are optional before TLS 1.3
        exts = _Reader(r.vector(2))
        while not exts.at_end():
            ext_type, ext_data = exts.uint(2), exts.vector(2)
            if ext_type == _EXT_SERVER_NAME and server_name is None:
                names = _Reader(_Reader(ext_data).vector(2))
                while not names.at_end():
                    name_type, name = names.uint(1), names.vector(2)
                    if name_type == 0:  # host_name
                        server_name = name.decode("ascii", errors="replace")
                        break
            elif ext_type == _EXT_SUPPORTED_GROUPS and groups is None:
                raw = _Reader(ext_data).vector(2)
                if len(raw) % 2:
                    raise _Malformed
                groups = tuple(int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2))
            elif ext_type == _EXT_SUPPORTED_VERSIONS and versions is None:
                raw = _Reader(ext_data).vector(1)
                if not raw or len(raw) % 2:
                    raise _Malformed
                versions = tuple(int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2))
    return ClientHello(
        record_version=record_version,
        legacy_version=legacy_version,
        supported_versions=versions if versions is not None else (legacy_version,),
        cipher_suites=tuple(int.from_bytes(suites[i:i + 2], "big") for i in range(0, len(suites), 2)),
        server_name=server_name,
        groups=groups,
    )


# --------------------------------------------------------------------------------------------------
# Explaining failures
# --------------------------------------------------------------------------------------------------

# Alerts a charger sends when it refuses the server certificate (TLS-3), by OpenSSL reason. On the
# server side an OpenSSL reason "SSLV3_ALERT_x"/"TLSV1_ALERT_x" means the *peer* (the charger) sent alert x.
_CERT_ALERTS: Final[dict[str, str]] = {
    "TLSV1_ALERT_UNKNOWN_CA": "unknown_ca: the chain does not lead to a CA it trusts",
    "SSLV3_ALERT_BAD_CERTIFICATE": "bad_certificate: e.g. the host name does not match",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "certificate_expired (or not yet valid by the charger's clock)",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "certificate_unknown",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "unsupported_certificate (key type or extensions)",
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "certificate_revoked",
    "TLSV1_ALERT_ACCESS_DENIED": "access_denied",
}
# The endpoint's own refusals of the version (OpenSSL server-side reasons), and the charger's
# protocol_version alert.
_VERSION_REASONS: Final[frozenset[str]] = frozenset({
    "UNSUPPORTED_PROTOCOL", "VERSION_TOO_LOW", "VERSION_TOO_HIGH", "WRONG_VERSION_NUMBER",
    "TLSV1_ALERT_PROTOCOL_VERSION", "UNKNOWN_PROTOCOL", "NO_PROTOCOLS_AVAILABLE",
})
_POLICY_TAIL: Final[str] = f"the endpoint speaks TLS 1.2 only ({POLICY_NAME}: no TLS 1.0/1.1/1.3)"


class TlsFailure(enum.Enum):
    """What went wrong in a server-side handshake, read from the error alone (no ClientHello)."""

    STALLED = "stalled"
    PLAIN_HTTP = "plain-http"
    VERSION = "version"  # no common TLS version (our refusal, or the charger's protocol_version alert)
    NO_SHARED_SUITE = "no-shared-suite"
    CERT_REFUSED = "cert-refused"  # the charger sent a certificate alert: it refused our certificate
    PEER_HANDSHAKE_FAILURE = "peer-handshake-failure"  # the charger sent handshake_failure
    PEER_ALERT = "peer-alert"  # another fatal alert from the charger
    NO_CLIENT_CERT = "no-client-cert"
    CLIENT_CERT_REFUSED = "client-cert-refused"
    CLOSED_WITHOUT_ALERT = "closed-without-alert"
    OTHER = "other"


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _alert_name(reason: str) -> str:
    # "SSLV3_ALERT_HANDSHAKE_FAILURE" -> "handshake_failure" (RFC 5246 §7.2 spelling)
    return reason.split("_ALERT_", 1)[1].lower()


def classify_tls_failure(exc: BaseException) -> tuple[TlsFailure, str]:
    """The kind of failure and OpenSSL's reason ("" if none). ``exc`` may wrap the ssl error.

    The OpenSSL reason decides whenever there is one; the message text is read only when there is
    none (asyncio's timeouts, wrapped errors), so a certificate alert can never be mistaken for a
    version problem by a word in some message.
    """
    chain = list(_exception_chain(exc))
    ssl_exc = next((e for e in chain if isinstance(e, ssl.SSLError)), None)
    reason = str(getattr(ssl_exc, "reason", None) or "").upper()
    text = " ".join(str(e) for e in chain).lower()
    if any(isinstance(e, TimeoutError) for e in chain) or "taking longer than" in text:
        return TlsFailure.STALLED, reason
    if reason:
        if reason == "NO_SHARED_CIPHER":
            return TlsFailure.NO_SHARED_SUITE, reason
        if reason == "HTTP_REQUEST":
            return TlsFailure.PLAIN_HTTP, reason
        if reason in _VERSION_REASONS:
            return TlsFailure.VERSION, reason
        if reason in _CERT_ALERTS:
            return TlsFailure.CERT_REFUSED, reason
        if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return TlsFailure.NO_CLIENT_CERT, reason
        if isinstance(ssl_exc, ssl.SSLCertVerificationError):
            return TlsFailure.CLIENT_CERT_REFUSED, reason
        if reason == "SSLV3_ALERT_HANDSHAKE_FAILURE":
            return TlsFailure.PEER_HANDSHAKE_FAILURE, reason
        if "_ALERT_" in reason:
            return TlsFailure.PEER_ALERT, reason
    if isinstance(ssl_exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)) or any(
        isinstance(e, (ConnectionResetError, BrokenPipeError, EOFError)) for e in chain
    ) or "eof occurred" in text or "unexpected eof" in text:
        return TlsFailure.CLOSED_WITHOUT_ALERT, reason
    if not reason:  # no OpenSSL reason: the wording is all there is
        if "no shared cipher" in text:
            return TlsFailure.NO_SHARED_SUITE, reason
        if "http request" in text:
            return TlsFailure.PLAIN_HTTP, reason
        if "unsupported protocol" in text or "wrong version number" in text:
            return TlsFailure.VERSION, reason
        if "peer did not return a certificate" in text:
            return TlsFailure.NO_CLIENT_CERT, reason
    return TlsFailure.OTHER, reason


def describe_tls_failure(exc: BaseException, hello: ClientHello | None = None) -> str:
    """A sentence for the manufacturer on why a server-side handshake with the charger failed.

    ``exc`` may be the ssl error itself or wrap it (``__cause__``/``__context__`` are searched);
    ``hello`` (from :func:`parse_client_hello`) is what the charger offered. Every claim about what
    the charger offered is checked against ``hello``: where the error and the ClientHello disagree
    (a version error although TLS 1.2 was offered, say), the sentence says so instead of guessing.
    """
    kind, reason = classify_tls_failure(exc)
    chain = list(_exception_chain(exc))
    ssl_exc = next((e for e in chain if isinstance(e, ssl.SSLError)), None)
    offered = f"; the charger {hello.describe()}" if hello is not None else ""
    if kind is TlsFailure.STALLED:
        where = "after the charger's ClientHello" if hello is not None else "before a complete ClientHello"
        return f"TLS handshake stalled: no complete handshake in time ({where}){offered}"
    if kind is TlsFailure.PLAIN_HTTP:
        return "the charger sent plain HTTP to the TLS port (ws:// instead of wss://; TLS-2)"
    if kind in (TlsFailure.VERSION, TlsFailure.NO_SHARED_SUITE) and hello is not None and not hello.offers_tls12():
        # Whatever OpenSSL called it, the ClientHello shows the cause: no TLS 1.2 on offer.
        return f"the charger did not offer TLS 1.2: it {hello.describe()}; {_POLICY_TAIL}"
    if kind is TlsFailure.VERSION:
        if hello is None:
            return f"the charger did not offer TLS 1.2; {_POLICY_TAIL}"
        who = ("the charger answered with a protocol_version alert" if reason == "TLSV1_ALERT_PROTOCOL_VERSION"
               else f"the TLS version was not agreed ({reason or 'unsupported protocol'})")
        return (f"{who}, although the charger {hello.describe()} (a malformed or inconsistent version in "
                f"a later record); {_POLICY_TAIL}")
    if kind is TlsFailure.NO_SHARED_SUITE:
        msg = f"no shared cipher suite: the charger offered none of the {len(POLICY_SUITES)} suites of {POLICY_NAME}"
        if hello is None:
            return msg
        policy = hello.offered_policy_suites()
        if policy and hello.policy_group() is None and all(s.startswith("ECDHE-") for s in policy):
            return (f"no usable cipher suite: the charger offered only ECDHE policy suites and none of the "
                    f"policy's groups P-256, P-384 (it offered {', '.join(hello.offered_groups()) or 'no group'}); "
                    f"it {hello.describe()}")
        if policy:
            # It did offer policy suites: what it allows with them (curves, signature algorithms) ruled them out.
            groups = (f" (its groups: {', '.join(hello.offered_groups()) or 'none'}; the endpoint's are P-256 and "
                      "P-384, and its ECDSA certificate's key is P-256)") if hello.groups is not None else ""
            return (f"no usable cipher suite although the charger offered {len(set(policy))} policy suite(s): "
                    f"the elliptic curves or signature algorithms it allows match none of the endpoint's "
                    f"certificates and groups{groups}; it {hello.describe()}")
        return f"{msg}; it {hello.describe()}"
    if kind is TlsFailure.CERT_REFUSED:
        return f"the charger refused our certificate (TLS alert {_CERT_ALERTS[reason]}){offered}"
    if kind is TlsFailure.NO_CLIENT_CERT:
        return "the charger sent no client certificate (security profile 3 requires one)"
    if kind is TlsFailure.CLIENT_CERT_REFUSED:
        assert isinstance(ssl_exc, ssl.SSLCertVerificationError)
        detail = ssl_exc.verify_message or ssl_exc.reason or "verification failed"
        return f"the charger's client certificate was refused: {detail} (profile 3: it must chain to the harness CA)"
    if kind is TlsFailure.PEER_HANDSHAKE_FAILURE:
        return ("the charger aborted the handshake (handshake_failure alert): it accepted none of the "
                f"server's choices (suite, curve, signature algorithm or certificate type){offered}")
    if kind is TlsFailure.PEER_ALERT:
        return f"the charger aborted the handshake with the TLS alert {_alert_name(reason)}{offered}"
    if kind is TlsFailure.CLOSED_WITHOUT_ALERT:
        return ("the charger closed the connection during the handshake without a TLS alert (some "
                f"embedded stacks refuse the certificate or the parameters this way){offered}")
    if ssl_exc is not None:
        return f"TLS handshake failed: {reason or 'unknown reason'} ({ssl_exc}){offered}"
    return f"TLS handshake failed: {type(exc).__name__}: {exc}{offered}"
