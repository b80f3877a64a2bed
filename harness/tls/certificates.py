"""Making certificates shaped like the platform's (root -> intermediate -> leaf, what AWS Certificate Manager
issues), checking that stored ones still have that shape, and writing them (keys mode 0600, atomically).

The pieces :class:`harness.tls.store.CertStore` and the deliberately bad certificates
(:mod:`harness.tls.bad_certificates`) are built from.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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

# kind -> (cert file, key file, trustme key type, public key class). RSA is the default leaf (what the
# platform's load balancer presents); the ECDSA leaf (P-256) serves the policy's ECDHE-ECDSA suites.
_SERVER_KINDS: Final[dict[str, tuple[str, str, trustme.KeyType, type]]] = {
    "rsa": ("server-rsa.pem", "server-rsa.key", trustme.KeyType.RSA, rsa.RSAPublicKey),
    "ec": ("server-ec.pem", "server-ec.key", trustme.KeyType.ECDSA, ec.EllipticCurvePublicKey),
}
_PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
_PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def _load_private_key(pem: bytes) -> _PrivateKey:
    """A PEM private key of a CA the harness issues with: RSA or EC (what _new_key and trustme make)."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise TypeError(f"expected an RSA or EC private key, found {type(key).__name__}")
    return key


def _issuer_public_key(cert: x509.Certificate) -> _PublicKey:
    """The public key of a CA the harness issues with (RSA or EC), for an AuthorityKeyIdentifier."""
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise TypeError(f"expected an RSA or EC CA key, found {type(key).__name__}")
    return key


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
            _issuer_public_key(root_cert)), critical=False)
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
            _issuer_public_key(issuer_cert)), critical=False)
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


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _safe_filename(name: str) -> str:
    # A CN is free text (serial numbers, "CPO/123"): keep file names portable.
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return safe or "client"
