"""Why a server-side handshake with the charger failed: the kind of failure from the OpenSSL error
(:func:`classify_tls_failure`), and a sentence for the manufacturer that checks every claim against the
ClientHello (:func:`describe_tls_failure`).
"""

from __future__ import annotations

import enum
import ssl
from collections.abc import Iterator
from typing import Final

from harness.tls.client_hello import ClientHello
from harness.tls.policy import POLICY_NAME, POLICY_SUITES

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
