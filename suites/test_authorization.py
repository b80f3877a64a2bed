"""AUTH-1 (401 handling), ADV-2 (AuthorizationKey rotation) and AUTH-2: the credentials the charger connects with.

AUTH-1, security profile 2, is HTTP Basic auth itself: the Authorization header on every connection
attempt, user = the charge point identity, password = the AuthorizationKey (hex text or the bytes it
encodes), and a charger refused with 401 connects once its key is accepted. The credentials are judged
from the recorded connection attempts in suites/test_transport_security.py; here: the 401 handling.

ADV-2 is the security whitepaper's key rotation (ChangeConfiguration AuthorizationKey). ev.energy's
minimum is "Basic auth OR certificates": rotation is recommended, so it is an advisory finding and never
decides AUTH-1. Every answer OCPP allows is followed through (docs/rules-auth.md):
- Accepted: the charger reconnects with the new key, and the old key stops working;
- RebootRequired (OCPP 1.6 §7.13): the harness reboots the charger (Reset, else the rig) and checks it
  comes back with the new key;
- NotSupported, Rejected (or a CALLERROR): "key rotation over OCPP not supported", nothing more.
The bench is left as it was found: the charger ends on the run's key, and where the harness cannot put
it back, the run says so in one line and the report tells the operator what to do.

AUTH-2, security profile 3: TLS with a client certificate that chains to the platform's CA, its
subject CN the charge point identity (whitepaper "Client side certificate"; OCTT TC_087).

The verdict for AUTH is AUTH-1 OR AUTH-2 ("Basic Auth OR Certificates"): the report aggregates;
the member that does not apply to the run's security profile is "not applicable".

Secrets: every key the harness makes up is registered with the endpoint's redactor before it is ever
sent; no message here contains a key.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from ocpp.v16 import call
from ocpp.v16.enums import ConfigurationStatus, ResetStatus, ResetType
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from harness import tls
from harness.drivers.base import RigError
from harness.endpoint import CONNECTED, PROBE_USER_AGENT, UNAUTHORIZED, BasicAuth, ConnectionAttempt, Endpoint
from harness.errors import CallErrorReceived, ChargerFailure, ExpectationTimeout
from harness.run_state import tell
from harness.session import ChargerSession
from harness.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROTATION = "ADV-2"  # AuthorizationKey rotation over OCPP: advisory (harness/requirements.py)


# --- bounds (docs/rules-auth.md) ------------------------------------------------------------------


def _reconnect_bound(settings: Settings) -> float:
    """How long a charger may take to drop its connection and come back (new key, or after the platform closed it)."""
    return 10.0 if settings.quick else 60.0


def _retry_bound(settings: Settings) -> float:
    """How long a charger refused with 401 may back off before it tries again and gets in."""
    return 15.0 if settings.quick else 300.0


def _reboot_bound(settings: Settings) -> float:
    """How long a reboot may take, from the Reset (or the rig's act) to the charger's first connection attempt."""
    return max(settings.connect_timeout, 30.0 if settings.quick else 300.0)


def _new_key() -> str:
    """A fresh AuthorizationKey as the whitepaper sizes it: 20 random bytes, 40 hex digits."""
    return secrets.token_hex(20)


def _mine(charger_id: str) -> Callable[[ConnectionAttempt], bool]:
    """The charger's own attempts that reached the HTTP upgrade (not the harness's probes)."""
    return lambda a: a.charger_id == charger_id and not a.is_probe and a.outcome in (CONNECTED, UNAUTHORIZED)


def _attempts_text(csms: Endpoint, charger_id: str, since: float) -> str:
    got = [a for a in csms.attempts_for(charger_id, since) if not a.is_probe]
    return "; ".join(a.summary() for a in got[-8:]) or "none"


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
                user_agent_header=PROBE_USER_AGENT,
                open_timeout=None,
            ):
                return 101
    except InvalidStatus as exc:
        return exc.response.status_code


# --- AUTH-1: 401 handled --------------------------------------------------------------------------


@pytest.mark.requirement("AUTH-1")
async def test_reconnects_after_401_once_the_key_is_accepted(
    charger: ChargerSession, csms: Endpoint, harness_settings: Settings
) -> None:
    """AUTH-1: a connection attempt refused with HTTP 401 is not the end: once the platform accepts the
    charger's key again, the charger connects (security whitepaper, profile 2: wrong credentials get 401).
    The platform closes the connection and, for a while, holds another key; then it takes the charger's key
    back. Bounds: docs/rules-auth.md."""
    settings = harness_settings
    if settings.security_profile != 2:
        pytest.skip("not applicable: the run uses security profile 3 (client certificates, AUTH-2), not Basic auth")
    charger_id = settings.charger_id
    key = charger.authorization_key
    if not key:
        pytest.skip("not tested: the harness does not know the charger's AuthorizationKey")
    mine = _mine(charger_id)
    since = time.monotonic()
    csms.register(charger_id, _new_key())  # a key the charger does not have: its attempts get 401
    try:
        connection = charger.connection
        if connection is not None:
            charger.trace.event("harness: the platform closes the connection (it restarts) and refuses the key for a while")
            await connection.close(1012, "service restart")
        refused = await csms.wait_attempt(lambda a: mine(a) and a.outcome == UNAUTHORIZED, _reconnect_bound(settings), since)
    finally:
        csms.register(charger_id, key)  # whatever happened: the platform accepts the charger's key again
    back_since = time.monotonic()
    if refused is None:
        back = await csms.wait_attempt(lambda a: mine(a) and a.outcome == CONNECTED, _retry_bound(settings), since)
        pytest.skip(
            f"not tested: the charger made no connection attempt within {settings.scaled(_reconnect_bound(settings)):g} s "
            "of the platform closing the connection, so it was never refused (NF-2 judges reconnection)"
            + ("" if back is not None else "; it has not reconnected since")
        )
    charger.note(f"refused with 401 ({refused.detail or 'wrong password'}) after the platform closed the connection")
    back = await csms.wait_attempt(lambda a: mine(a) and a.outcome == CONNECTED, _retry_bound(settings), back_since)
    assert back is not None, (
        f"expected the charger, refused with HTTP 401, to try again and connect once the platform accepted its "
        f"AuthorizationKey again; it did not connect within {settings.scaled(_retry_bound(settings)):g} s. "
        f"Attempts since the platform closed the connection: {_attempts_text(csms, charger_id, since)}"
    )
    await charger.wait_connected(within=10)
    charger.note(f"connected {back.mono - back_since:.1f} s after its key was accepted again")


# --- ADV-2: AuthorizationKey rotation over OCPP ---------------------------------------------------


class Held(enum.Enum):
    """Which key the charger connects with, as far as the harness has seen."""

    ORIGINAL = "the run's key"
    NEW = "the key generated for the rotation"
    UNKNOWN = "unknown (it did not come back)"


@dataclass
class _Rotation:
    charger: ChargerSession
    csms: Endpoint
    settings: Settings
    original: str
    new: str
    held: Held = Held.ORIGINAL
    answer: str = ""  # the ChangeConfiguration answer to the new key
    reboots: list[str] = field(default_factory=list)

    @property
    def charger_id(self) -> str:
        return self.settings.charger_id

    def advise(self, text: str) -> None:
        self.charger.advise(ROTATION, text)
        self.charger.note(f"{ROTATION} finding: {text}")

    async def change_key(self, key: str) -> str:
        """ChangeConfiguration AuthorizationKey; its status, "CALLERROR <code>", or "no answer: …". Never shows a key."""
        try:
            answer = await self.charger.call(call.ChangeConfiguration(key="AuthorizationKey", value=key))
        except CallErrorReceived as exc:
            return f"CALLERROR {exc.code}"
        except ChargerFailure as exc:  # no answer or disconnected: the message may quote the request
            return "no answer: " + self.csms.redact(str(exc).splitlines()[0])
        return str(answer.status)

    async def wait_key(self, since: float, within: float) -> ConnectionAttempt | None:
        """The charger's first connection since `since`; failing that, its second refusal (two: it is not
        trying another key), or its only one once `within` has passed; None if it made no attempt."""
        mine = _mine(self.charger_id)
        refusals: dict[int, ConnectionAttempt] = {}

        def decisive(a: ConnectionAttempt) -> bool:
            if not mine(a):
                return False
            if a.outcome == UNAUTHORIZED:
                refusals[id(a)] = a
            return a.outcome == CONNECTED or len(refusals) >= 2

        found = await self.csms.wait_attempt(decisive, within, since)
        if found is None and refusals:
            found = list(refusals.values())[-1]
        if found is not None and found.outcome == CONNECTED:
            with contextlib.suppress(ExpectationTimeout):
                await self.charger.wait_connected(within=10)
        return found

    async def reboot(self) -> str:
        """Reboot the charger: OCPP Reset Hard, else the rig's reboot act. How it was done; RuntimeError if neither."""
        why: list[str] = []
        try:
            answer = await self.charger.call(call.Reset(type=ResetType.hard))
            if answer.status == ResetStatus.accepted:
                self.reboots.append("Reset Hard")
                return "Reset Hard"
            why.append(f"Reset Hard answered {answer.status}")
        except ChargerFailure as exc:
            why.append(f"Reset Hard: {str(exc).splitlines()[0]}")
        rig = self.charger.rig
        try:
            if rig is None:
                raise RigError("no rig")
            await rig.reboot()
        except (RigError, pytest.skip.Exception) as exc:  # the rig cannot (501/skip) or failed
            why.append(f"the rig's reboot act: {exc}")
            raise RuntimeError("; ".join(why)) from None
        self.reboots.append("the rig's reboot act")
        return "the rig's reboot act"

    async def back_after_reboot(self, since: float, boots: int) -> ConnectionAttempt | None:
        found = await self.wait_key(since, _reboot_bound(self.settings))
        if found is not None and found.outcome == CONNECTED:
            # It rebooted: let it register (BootNotification) before the platform asks it anything.
            with contextlib.suppress(ExpectationTimeout):
                await self.charger.wait_until(lambda: self.charger.boot_count > boots, 30, "a BootNotification after the reboot")
        return found

    async def force_reconnect(self) -> None:
        """The platform closes the connection (as a restarting platform does): the charger's next attempt shows its key."""
        connection = self.charger.connection
        if connection is not None:
            self.charger.trace.event("harness: the platform closes the connection to see which key the charger reconnects with")
            await connection.close(1012, "service restart")

    # -- the rotation -----------------------------------------------------------------------------

    async def run(self) -> None:
        since = time.monotonic()
        # From here on the endpoint (and its redactor) knows only the new key: the old one must stop working.
        self.csms.register(self.charger_id, self.new)
        self.answer = await self.change_key(self.new)
        self.charger.note(f"ChangeConfiguration AuthorizationKey (a new 40-hex-digit key): {self.answer}")
        if self.answer == ConfigurationStatus.accepted:
            await self._accepted(since)
        elif self.answer == ConfigurationStatus.reboot_required:
            await self._reboot_required()
        elif self.answer.startswith("no answer"):
            self.advise(f"ChangeConfiguration AuthorizationKey got {self.answer}; the harness watched which key it "
                        "then connected with")
            await self._accepted(since)
        else:  # NotSupported, Rejected, CALLERROR: provisioned another way (OCPP §5.3 allows each)
            self.csms.register(self.charger_id, self.original)
            self.advise(f"key rotation over OCPP not supported: ChangeConfiguration AuthorizationKey answered {self.answer}")

    async def _accepted(self, since: float) -> None:
        bound = _reconnect_bound(self.settings)
        found = await self.wait_key(since, bound)
        prompted = False
        if found is None and self.charger.connected:
            # Still on the connection opened with the old key: make it reconnect, to see which key it uses.
            prompted = True
            since = time.monotonic()
            await self.force_reconnect()
            found = await self.wait_key(since, bound)
        if found is None:
            self.held = Held.UNKNOWN if not self.charger.connected else Held.ORIGINAL
            self.advise(
                f"after answering Accepted it made no connection attempt with the new key within "
                f"{self.settings.scaled(bound):g} s{' of the platform closing the connection' if prompted else ''}. "
                f"Attempts: {_attempts_text(self.csms, self.charger_id, since)}"
            )
            return
        if found.outcome != CONNECTED:
            self.held = Held.ORIGINAL
            what = ("kept the old key" if found.basic_auth == BasicAuth.WRONG_PASSWORD
                    else f"reconnected with credentials the platform refuses ({found.detail})")
            self.advise(
                f"answered Accepted to the new AuthorizationKey but {what}: its next connection attempts were refused "
                f"(HTTP 401), so it would lock itself out once the platform switched keys. "
                f"Attempts: {_attempts_text(self.csms, self.charger_id, since)}"
            )
            return
        self.held = Held.NEW
        if prompted:
            self.advise(
                f"answered Accepted but did not disconnect by itself within {self.settings.scaled(bound):g} s to "
                "reconnect with the new key (security whitepaper); it used the new key when the platform closed the "
                "connection"
            )
        else:
            self.charger.note(f"reconnected by itself with the new key {found.mono - since:.1f} s after Accepted")
        await self._old_key_refused()

    async def _reboot_required(self) -> None:
        # OCPP 1.6 §7.13: RebootRequired = the change takes effect after a reboot. Follow it through.
        boots = self.charger.boot_count
        since = time.monotonic()
        try:
            how = await self.reboot()
        except RuntimeError as exc:
            self.csms.register(self.charger_id, self.original)  # it still runs with the run's key
            self.advise(f"answered RebootRequired; the harness could not reboot the charger ({exc}), so whether it "
                        "uses the new key after a reboot was not checked")
            return
        found = await self.back_after_reboot(since, boots)
        if found is None:
            self.held = Held.UNKNOWN
            self.advise(f"answered RebootRequired; after {how} it made no connection attempt within "
                        f"{self.settings.scaled(_reboot_bound(self.settings)):g} s")
            return
        if found.outcome != CONNECTED:
            self.held = Held.ORIGINAL
            self.advise(
                f"answered RebootRequired but after {how} it still connected with a password that is not the new "
                f"key (HTTP 401): it would lock itself out once the platform switched keys. "
                f"Attempts: {_attempts_text(self.csms, self.charger_id, since)}"
            )
            return
        self.held = Held.NEW
        self.charger.note(f"after {how} it connected with the new key")
        await self._old_key_refused()

    async def _old_key_refused(self) -> None:
        status = await _probe(self.csms, self.charger_id, self.original, self.settings)
        if status != 401:  # the endpoint holds only the new key: anything else is the harness's fault
            raise RuntimeError(f"harness error: a connection with the old key got HTTP {status} after the switch, not 401")
        self.charger.note("a connection with the old key is refused (HTTP 401)")

    # -- putting the bench back -------------------------------------------------------------------

    async def restore(self) -> str | None:
        """Put the charger back on the run's key, with the endpoint agreeing; a problem for the operator, or None."""
        if self.held is Held.NEW:
            return await self._restore_from_new()
        # The charger connects with the run's key (or has not come back): the endpoint takes that key again.
        self.csms.register(self.charger_id, self.original)
        if not self.charger.connected:
            with contextlib.suppress(ExpectationTimeout):
                await self.charger.wait_connected(within=_retry_bound(self.settings))
        if not self.charger.connected and self.held is Held.UNKNOWN:
            # Perhaps it switched after all, only slowly: try the new key before giving up.
            since = time.monotonic()
            self.csms.register(self.charger_id, self.new)
            found = await self.wait_key(since, _retry_bound(self.settings))
            if found is not None and found.outcome == CONNECTED:
                self.held = Held.NEW
                return await self._restore_from_new()
            self.csms.register(self.charger_id, self.original)
        if not self.charger.connected:
            return "the charger did not come back with the run's AuthorizationKey after the key-rotation check"
        if self.answer in (ConfigurationStatus.accepted, ConfigurationStatus.reboot_required) or self.answer.startswith("no answer"):
            # It may have stored the new key (for its next boot): store the run's key again, so they agree.
            answer = await self.change_key(self.original)
            if answer == ConfigurationStatus.accepted and self.answer != ConfigurationStatus.accepted:
                # A charger that did switch on Accepted now reconnects with the run's key: wait for it.
                await self.wait_key(time.monotonic(), _reconnect_bound(self.settings))
            self.charger.note(f"the run's key stored again on the charger: {answer}")
        return None

    async def _restore_from_new(self) -> str | None:
        since = time.monotonic()
        boots = self.charger.boot_count
        self.csms.register(self.charger_id, self.original)
        answer = await self.change_key(self.original)
        found: ConnectionAttempt | None = None
        how = ""
        if answer == ConfigurationStatus.accepted:
            found = await self.wait_key(since, _reconnect_bound(self.settings))
            if found is None and self.charger.connected:
                since = time.monotonic()
                await self.force_reconnect()
                found = await self.wait_key(since, _reconnect_bound(self.settings))
        elif answer == ConfigurationStatus.reboot_required:
            try:
                how = await self.reboot()
            except RuntimeError as exc:
                answer = f"RebootRequired, and no reboot: {exc}"
            else:
                found = await self.back_after_reboot(since, boots)
        if found is not None and found.outcome == CONNECTED:
            self.held = Held.ORIGINAL
            self.charger.note("the run's AuthorizationKey restored; the charger reconnected with it"
                              + (f" after {how}" if how else ""))
            return None
        # It still uses the key generated here: let the endpoint accept that one, so the run goes on.
        self.csms.register(self.charger_id, self.new)
        if not self.charger.connected:
            found = await self.wait_key(time.monotonic(), _retry_bound(self.settings))
            if found is not None and found.outcome != CONNECTED and answer.startswith("no answer"):
                # It took the run's key without answering: the endpoint takes that one back after all.
                self.csms.register(self.charger_id, self.original)
                found = await self.wait_key(time.monotonic(), _retry_bound(self.settings))
                if found is not None and found.outcome == CONNECTED:
                    self.held = Held.ORIGINAL
                    self.charger.note("the run's AuthorizationKey restored (the charger switched without answering)")
                    return None
                self.csms.register(self.charger_id, self.new)
        return f"could not put the run's AuthorizationKey back on the charger (ChangeConfiguration answered {answer})"


@pytest.mark.requirement(ROTATION)
async def test_authorization_key_rotation(
    charger: ChargerSession, csms: Endpoint, harness_settings: Settings, pytestconfig: pytest.Config
) -> None:
    """ADV-2 (advisory): ChangeConfiguration AuthorizationKey with a new 40-hex-digit key, followed through
    for every answer OCPP allows (security whitepaper ed. 3, updating the Basic auth password; OCTT TC_073;
    OCPP 1.6 §7.13 for RebootRequired). Accepted: the charger reconnects with the new key and the old one is
    refused. RebootRequired: after a reboot (Reset, else the rig) it connects with the new key. NotSupported
    or Rejected: key rotation over OCPP is not supported. Findings are advisory; AUTH-1 does not depend on
    them. The run's key is put back at the end."""
    settings = harness_settings
    if settings.security_profile != 2:
        pytest.skip("not applicable: the run uses security profile 3 (client certificates, AUTH-2), not Basic auth")
    original = charger.authorization_key
    if not original:
        pytest.skip("not tested: the harness does not know the charger's AuthorizationKey")
    rotation = _Rotation(charger, csms, settings, original, _new_key())
    rotation_details: dict[str, object] = {}
    charger.details["key_rotation"] = rotation_details
    try:
        await rotation.run()
    finally:
        try:
            problem = await rotation.restore()
        except Exception as exc:  # noqa: BLE001 - report it with the bench state, below
            problem = f"putting the run's AuthorizationKey back failed: {csms.redact(str(exc).splitlines()[0])}"
        rotation_details.update({"answer": rotation.answer, "reboots": rotation.reboots, "charger_key": rotation.held.value})
        if problem:
            _bench_not_restored(charger, rotation, problem, pytestconfig)


def _bench_not_restored(charger: ChargerSession, rotation: _Rotation, problem: str, config: pytest.Config) -> None:
    """Say it once on the terminal, and tell the operator in the report what to do."""
    held = rotation.held
    if held is Held.NEW:
        now = ("the charger now uses a key the harness generated for this check (never shown); the endpoint accepts "
               "it for the rest of this run")
    else:
        now = f"the charger's key is {held.value}"
    tell(config, f"bench not restored: {problem}; {now}. Re-provision the charger's AuthorizationKey before the next run.")
    charger.note(
        f"BENCH NOT RESTORED: {problem}; {now}. Before the next run, set the charger's AuthorizationKey back to the "
        "key you configured for this run (the way you provisioned it: its web interface, tool or configuration file)."
    )
    charger.details["key_rotation"]["bench_restored"] = False


# --- AUTH-2 ---------------------------------------------------------------------------------------


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
