"""The harness's certificate store (normally ``certs/``): the CA the charger trusts, the intermediate, the RSA and
ECDSA server certificates (TLS-3), the endpoint's server contexts (TLS-1), and client certificates for security
profile 3 (AUTH-2).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import ssl
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

import trustme
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.tls.bad_certificates import BadCertificates
from harness.tls.certificates import (
    _BACKDATE,
    _DEFAULT_SANS,
    _ORG,
    _RENEW_WITHIN,
    _SERVER_KINDS,
    _SERVER_LIFETIME,
    _SERVER_VALIDITY,
    _cert_pem,
    _common_name,
    _dedupe,
    _issue_intermediate,
    _issue_leaf,
    _issuer_public_key,
    _key_pem,
    _load_private_key,
    _now,
    _PrivateKey,
    _public_key_of,
    _safe_filename,
    _sans,
    _shaped_like_a_public_leaf,
    _spki,
    _write_private_key,
    _write_public,
)
from harness.tls.policy import POLICY_GROUPS, POLICY_NAME, _policy_server_context

try:  # POSIX only: serialises CertStore.ensure() across processes (pytest-xdist workers, `serve`).
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # no fcntl on Windows: _locked checks for None

_CLIENT_CAS: Final[tuple[str, ...]] = ("harness", "untrusted")


class CertStore(BadCertificates):
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
        root_key = _load_private_key(self._ca_key.read_bytes())
        cert, new_key = _issue_intermediate(ca_cert, root_key, organization=_ORG, now=_now())
        _write_private_key(key, _key_pem(new_key))
        _write_public(pem, _cert_pem(cert))
        return cert

    def _intermediate(self) -> tuple[x509.Certificate, _PrivateKey]:
        cert = x509.load_pem_x509_certificate(self.intermediate_pem.read_bytes())
        return cert, _load_private_key(self._intermediate_key.read_bytes())

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
        issuer_key = _load_private_key(issuer.private_key_pem.bytes())
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
                _issuer_public_key(issuer_cert)), critical=False)
            .sign(issuer_key, hashes.SHA256())
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
