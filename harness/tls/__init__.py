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

The rooms:
- :mod:`harness.tls.policy`: the policy (suites, groups, versions and their names), the server context without
  certificates, and the client context a good charger uses;
- :mod:`harness.tls.certificates`: issuing and checking certificates shaped like the platform's
  (root -> intermediate -> leaf), writing them (keys 0600);
- :mod:`harness.tls.store`: :class:`CertStore`, the CA and server certificates in ``certs/``, the endpoint's
  contexts, client certificates (profile 3);
- :mod:`harness.tls.bad_certificates`: the deliberately bad certificates of TLS-3 (a mixin of CertStore);
- :mod:`harness.tls.client_hello`: the ClientHello parser (sans-I/O);
- :mod:`harness.tls.diagnosis`: why a handshake failed, in a sentence.

Everything a user of the package needs is imported from here (``from harness.tls import CertStore``).
"""

from __future__ import annotations

from harness.tls.client_hello import ClientHello, parse_client_hello
from harness.tls.diagnosis import TlsFailure, classify_tls_failure, describe_tls_failure
from harness.tls.policy import (
    POLICY_GROUPS,
    POLICY_NAME,
    POLICY_SUITE_CODES,
    POLICY_SUITES,
    TLS13_SUITE_CODES,
    client_context,
    group_name,
    tls_version_name,
)
from harness.tls.store import CertStore

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
