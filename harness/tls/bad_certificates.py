"""The deliberately bad server certificates of TLS-3: the same policy and chain shape as the good ones, with
only the tested property wrong. Made once per store, in a background thread (:meth:`prepare_bad_contexts`).

A mixin of :class:`harness.tls.store.CertStore`: its methods use the store's state on ``self``.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import ssl
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Final

import trustme
from cryptography import x509

from harness.tls.certificates import (
    _BACKDATE,
    _SERVER_KINDS,
    _SERVER_LIFETIME,
    _cert_pem,
    _issue_intermediate,
    _issue_leaf,
    _key_pem,
    _load_private_key,
    _now,
    _PrivateKey,
    _write_private_key,
    _write_public,
)
from harness.tls.policy import _policy_server_context

_BAD_KINDS: Final[tuple[str, ...]] = ("untrusted-ca", "expired", "wrong-host")
_WRONG_HOST: Final[str] = "wrong-host.invalid"  # RFC 2606 .invalid: can never be the real host


class BadCertificates:
    """CertStore's deliberately bad server contexts (TLS-3)."""

    if TYPE_CHECKING:
        # CertStore's state and the methods of it used here (store.py: __init__ and the queries).
        _bad: dict[str, concurrent.futures.Future[ssl.SSLContext]]
        _bad_lock: threading.Lock
        def _ensure_ready(self) -> None: ...
        def server_names(self) -> list[str]: ...
        def _server_common_name(self) -> str: ...
        def _intermediate(self) -> tuple[x509.Certificate, _PrivateKey]: ...

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
            root_key = _load_private_key(throwaway.private_key_pem.bytes())
            issuer_cert, issuer_key = _issue_intermediate(root_cert, root_key,
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
