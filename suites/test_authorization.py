"""AUTH-1 (key change) and AUTH-2: the credentials the charger connects with.

AUTH-1, security profile 2: HTTP Basic on the WebSocket upgrade with the AuthorizationKey as the
password (suites/test_transport_security.py checks the basic case). Here: the platform rotates
the key. OCPP 1.6 security whitepaper (edition 3), "Updating the Charge Point password for HTTP
Basic Authentication": after ChangeConfiguration AuthorizationKey is Accepted the Charge Point
disconnects and reconnects with the new password, and the old one no longer works (OCTT TC_073).

AUTH-2, security profile 3: TLS with a client certificate that chains to the platform's CA, its
subject CN the charge point identity (whitepaper "Client side certificate"; OCTT TC_087).

The verdict for AUTH is AUTH-1 OR AUTH-2 ("Basic Auth OR Certificates"): the report aggregates;
the member that does not apply to the run's security profile is "not applicable".

Secrets: the new key is registered with the endpoint (whose redactor then hides it in every
frame, attempt and report) before it is ever sent; no message here contains a key.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import time

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from harness import tls
from harness.endpoint import CONNECTED, UNAUTHORIZED, Endpoint
from harness.errors import ChargerFailure
from harness.session import ChargerSession
from harness.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _reconnect_bound(settings: Settings) -> float:
    """How long the charger may take to disconnect and come back with the new key."""
    return 10.0 if settings.quick else 60.0


def _new_key() -> str:
    """A fresh AuthorizationKey as the whitepaper sizes it: 20 random bytes, 40 hex digits."""
    return secrets.token_hex(20)


async def _change_key(charger: ChargerSession, csms: Endpoint, key: str) -> str | None:
    """ChangeConfiguration AuthorizationKey; the status, or None with the reason noted. Never shows the key."""
    try:
        answer = await charger.call_raw("ChangeConfiguration", {"key": "AuthorizationKey", "value": key})
    except ChargerFailure as exc:  # CALLERROR, no answer, disconnected: the message may quote the request
        raise ChargerFailure(csms.redact(f"ChangeConfiguration AuthorizationKey failed: {exc}")) from None
    status = answer.get("status")
    return status if isinstance(status, str) else repr(status)


async def _probe(csms: Endpoint, charger_id: str, key: str, settings: Settings) -> int:
    """Open a WebSocket as `charger_id` with `key` as the Basic auth password; the HTTP status (101 = accepted)."""
    token = base64.b64encode(f"{charger_id}:{key}".encode()).decode("ascii")
    try:
        async with asyncio.timeout(settings.scaled(10)):
            async with connect(
                csms.probe_url(charger_id),
                ssl=tls.client_context(csms.certs.ca_pem),
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Basic {token}"},
                open_timeout=None,
            ):
                return 101
    except InvalidStatus as exc:
        return exc.response.status_code


@pytest.mark.requirement("AUTH-1")
async def test_authorization_key_change(charger: ChargerSession, csms: Endpoint, harness_settings: Settings) -> None:
    """AUTH-1: ChangeConfiguration AuthorizationKey (a new 40-hex-digit key) is Accepted, the charger
    reconnects with the new key by itself, the old key is refused from then on, and the original key
    is restored at the end (OCPP 1.6 security whitepaper ed. 3, security profile 2, updating the Basic
    Auth password; OCTT TC_073_CS)."""
    settings = harness_settings
    if settings.security_profile != 2:
        pytest.skip("not applicable: the run uses security profile 3 (client certificates, AUTH-2), not Basic auth")
    charger_id = settings.charger_id
    original = charger.authorization_key
    if not original:
        pytest.skip("not tested: the harness does not know the charger's AuthorizationKey")
    new = _new_key()
    bound = _reconnect_bound(settings)
    switched = False  # the charger was seen connecting with the new key
    failure: BaseException | None = None
    try:
        since = time.monotonic()
        csms.register(charger_id, new)  # from now on the endpoint (and its redactor) knows only the new key
        status = await _change_key(charger, csms, new)
        assert status == "Accepted", (
            f"expected ChangeConfiguration AuthorizationKey (a new 40-hex-digit key) to be Accepted; the charger "
            f"answered {status}. The platform rotates keys over OCPP: a charger that refuses a new key (Rejected, "
            "NotSupported, or RebootRequired: it must reconnect with it at once) fails AUTH-1."
        )
        reconnected = await csms.wait_attempt(
            lambda a: a.charger_id == charger_id and a.outcome == CONNECTED, within=bound, since=since
        )
        if reconnected is None:
            refused = [a for a in csms.attempts_for(charger_id, since) if a.outcome == UNAUTHORIZED]
            if refused:
                what = (f"it reconnected {len(refused)} time(s) with a password that is not the new key (HTTP 401): "
                        "it keeps using the old key")
            elif charger.connected:
                what = "it did not disconnect: it stayed on the connection opened with the old key"
            else:
                what = "it disconnected but made no new connection attempt"
            raise ChargerFailure(
                f"expected the charger to disconnect and reconnect with the new AuthorizationKey within "
                f"{settings.scaled(bound):g} s of answering Accepted (whitepaper; OCTT TC_073_CS step 3); {what}.\n"
                "Attempts since the change: "
                + ("; ".join(a.summary() for a in csms.attempts_for(charger_id, since)) or "none")
            )
        switched = True
        await charger.wait_connected(within=5)
        charger.note(f"reconnected with the new key {reconnected.mono - since:.2f} s after the change")
        wrong = [a for a in csms.attempts_for(charger_id, since) if a.outcome == UNAUTHORIZED and a.mono < reconnected.mono]
        if wrong:
            charger.note(f"{len(wrong)} attempt(s) with a wrong password (401) before it used the new key")
        # The old key no longer works.
        old_status = await _probe(csms, charger_id, original, settings)
        assert old_status == 401, (
            f"expected a connection with the old AuthorizationKey to be refused with HTTP 401 after the change; got {old_status}"
        )
        charger.note("a connection with the old key is refused (HTTP 401)")
    except BaseException as exc:
        failure = exc
        raise
    finally:
        problem = await _restore(charger, csms, charger_id, original, new, switched=switched, bound=bound)
        if problem:
            if failure is None:
                raise ChargerFailure(problem)
            failure.add_note(problem)


async def _restore(
    charger: ChargerSession, csms: Endpoint, charger_id: str, original: str, new: str, *, switched: bool, bound: float
) -> str | None:
    """Put the original AuthorizationKey back, on the charger and in the endpoint; a problem, or None."""
    if not switched:
        # The charger never connected with the new key: it still uses the original one (or stores the new
        # one unused). Make the endpoint accept the original again and tell the charger the original key.
        csms.register(charger_id, original)
        if charger.connected:
            with contextlib.suppress(Exception):
                await _change_key(charger, csms, original)
        return None
    with contextlib.suppress(Exception):
        await charger.wait_connected(within=bound)
    since = time.monotonic()
    csms.register(charger_id, original)
    status: str | None = None
    reason = ""
    try:
        status = await _change_key(charger, csms, original)
    except ChargerFailure as exc:
        reason = str(exc).splitlines()[0]
    if status == "Accepted":
        back = await csms.wait_attempt(
            lambda a: a.charger_id == charger_id and a.outcome == CONNECTED, within=bound, since=since
        )
        if back is not None:
            with contextlib.suppress(Exception):
                await charger.wait_connected(within=5)
            charger.note("original AuthorizationKey restored; the charger reconnected with it")
            return None
        reason = f"it answered Accepted but did not reconnect with it within {charger.settings.scaled(bound):g} s"
    elif status is not None:
        reason = f"it answered {status}"
    # The charger still uses the key generated for this test: let the endpoint accept it, so the run goes on.
    csms.register(charger_id, new)
    return (
        f"could not restore the charger's original AuthorizationKey ({reason}). The charger now uses a key the "
        "harness generated for this test (not shown); the endpoint accepts it for the rest of this run. Set the "
        "charger's AuthorizationKey back before the next run."
    )


@pytest.mark.requirement("AUTH-2")
async def test_client_certificate(csms: Endpoint, charger_backend: object, harness_settings: Settings) -> None:
    """AUTH-2: with security profile 3 the charger presents a client certificate that chains to the
    platform's CA, with subject CN = the charge point identity (OCPP 1.6 security whitepaper ed. 3,
    security profile 3; OCTT TC_087_CS)."""
    settings = harness_settings
    if settings.security_profile != 3:
        pytest.skip(
            "not applicable: the run uses security profile 2 (Basic auth, AUTH-1); client certificates (AUTH-2) "
            "are tested with --security-profile 3"
        )
    # Like the other transport tests, this judges the connection itself: no booted charger needed.
    attempt = await csms.wait_attempt(
        lambda a: a.charger_id == settings.charger_id and a.outcome == CONNECTED, within=settings.connect_timeout
    )
    if attempt is None:
        refused = csms.attempts_for(settings.charger_id) or list(csms.attempts)
        raise ChargerFailure(
            "expected the charger to connect with a client certificate (security profile 3); it never connected:\n  "
            + "\n  ".join(a.summary() for a in refused[-10:] or ["no connection attempt at all"])
        )
    assert attempt.client_certificate, (
        "expected the charger's TLS connection to carry a client certificate (security profile 3); it had none"
    )
    session = csms.session(settings.charger_id)
    await session.wait_connected(within=10)
    connection = session.connection
    ssl_object = connection.transport.get_extra_info("ssl_object") if connection is not None else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    assert der, "expected a client certificate on the live TLS connection; the TLS layer has none"
    cert = x509.load_der_x509_certificate(der)
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    assert names == [settings.charger_id], (
        f"expected the client certificate's subject CN to be the charge point identity {settings.charger_id!r}; "
        f"it is {names or 'absent'} (subject: {cert.subject.rfc4514_string()})"
    )
    # The endpoint's TLS layer required a certificate chaining to the harness CA (CERT_REQUIRED with only
    # that CA loaded), so the handshake itself proves the chain. Directly issued: check the signature too.
    ca = x509.load_pem_x509_certificate(csms.certs.ca_pem.read_bytes())
    if cert.issuer == ca.subject:
        try:
            cert.verify_directly_issued_by(ca)
        except Exception as exc:  # noqa: BLE001 - InvalidSignature, unsupported key types
            raise ChargerFailure(
                f"the client certificate names the harness CA as issuer but its signature does not verify: {exc!r}"
            ) from None
        chain = "issued directly by the harness CA (signature verified)"
    else:
        chain = f"issued by {cert.issuer.rfc4514_string()}, chained to the harness CA by the TLS handshake"
    organisations = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    session.note(f"client certificate CN={names[0]}" + (f", O={organisations[0]}" if organisations else "") + f"; {chain}")
