"""TLS-1, TLS-2, AUTH-1: how the charger reaches the platform (OCPP 1.6 security whitepaper, profile 2).

These tests judge the charger's connection attempts, so they do not need a booted charger:
a charger that never gets through (TLS 1.3 only, ws://, no Basic auth) fails here, with the
endpoint's reason, rather than leaving the run incomplete.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from harness import tls
from harness.endpoint import (
    CONNECTED,
    PLAIN_WS,
    PROBE_USER_AGENT,
    SILENT,
    TLS_FAILED,
    UNAUTHORIZED,
    BasicAuth,
    ConnectionAttempt,
    Endpoint,
)
from harness.fixtures import ChargerNeverConnected
from harness.settings import Settings

PROBE_ID = "harness-plain-ws-probe"  # the harness's own ws:// probe, not the charger

pytestmark = pytest.mark.asyncio(loop_scope="session")

REFUSED = {TLS_FAILED, PLAIN_WS, UNAUTHORIZED}


def _tls_done(attempt: ConnectionAttempt) -> bool:
    """TLS completed, whatever the HTTP upgrade then did (401, 404, no subprotocol, connected)."""
    return attempt.tls_version is not None


async def settled_attempts(csms: Endpoint, settings: Settings, enough: Callable[[list[ConnectionAttempt]], bool]) -> list[ConnectionAttempt]:
    """The charger's finished connection attempts, once `enough` of them are in (bounded by the connect timeout)."""

    def finished() -> list[ConnectionAttempt]:
        return [a for a in csms.attempts if a.outcome not in ("pending", SILENT) and a.charger_id != PROBE_ID]

    await csms.wait_attempt(lambda _a: enough(finished()), within=settings.connect_timeout)
    attempts = finished()
    if not attempts:
        raise ChargerNeverConnected(
            f"charger never connected: no connection attempt reached {csms.charger_url(settings.charger_id)} "
            f"within {settings.scaled(settings.connect_timeout):g} s"
        )
    return attempts


def _describe(attempts: list[ConnectionAttempt]) -> str:
    return "\n  ".join(a.summary() + (f" ({a.client_hello})" if a.client_hello else "") for a in attempts[-8:])


@pytest.mark.requirement("TLS-1")
async def test_tls12_with_a_policy_suite(csms: Endpoint, charger_backend: object, harness_settings: Settings) -> None:
    """TLS-1: WSS over TLS 1.2 with a suite of ELBSecurityPolicy-TLS-1-2-Ext-2018-06 (OCPP 1.6 security
    whitepaper §2, profile 2; OCTT TC_085). Judged on the TLS handshake alone: what the HTTP upgrade then
    does (Basic auth, subprotocol) is AUTH-1's and CORE-1's business."""
    attempts = await settled_attempts(
        csms, harness_settings, lambda got: any(map(_tls_done, got)) or sum(a.outcome == TLS_FAILED for a in got) >= 3
    )
    done = [a for a in attempts if _tls_done(a)]
    assert done, (
        "expected a TLS 1.2 handshake with a policy cipher suite; the charger never completed one:\n  "
        + _describe([a for a in attempts if a.outcome == TLS_FAILED] or attempts)
    )
    info = next((a for a in done if a.outcome == CONNECTED), done[0])
    session = csms.session(harness_settings.charger_id)
    session.note(
        f"negotiated {info.tls_version} {info.cipher}; the charger offered {len(info.offered_policy_suites)} "
        f"of the policy's {len(tls.POLICY_SUITES)} suites: {', '.join(info.offered_policy_suites)}"
    )
    session.details["tls"] = {"version": info.tls_version, "cipher": info.cipher, "offered": info.offered_policy_suites}
    assert info.tls_version == "TLSv1.2", f"expected TLSv1.2, negotiated {info.tls_version}"
    assert info.cipher in tls.POLICY_SUITES, f"expected a policy suite, negotiated {info.cipher}"


@pytest.mark.requirement("TLS-2")
async def test_plain_ws_is_refused(csms: Endpoint, charger_backend: object, harness_settings: Settings) -> None:
    """TLS-2: plain ws:// is not accepted: the endpoint refuses it, and a charger that tries it fails."""
    # The endpoint's side: a ws:// upgrade is refused (probed under an id of its own, not the charger's).
    url = csms.probe_url(PROBE_ID, scheme="ws")
    with pytest.raises(InvalidStatus) as probe:
        async with asyncio.timeout(harness_settings.scaled(10)):
            async with connect(url, subprotocols=["ocpp1.6"], open_timeout=None):  # type: ignore[list-item]
                pass
    assert probe.value.response.status_code == 400, f"expected HTTP 400 for ws://, got {probe.value.response.status_code}"
    # The charger's side: it must use wss:// only.
    attempts = await settled_attempts(
        csms, harness_settings,
        lambda got: any(a.transport == "tls" for a in got) or sum(a.outcome == PLAIN_WS for a in got) >= 3,
    )
    plain = [a for a in attempts if a.outcome == PLAIN_WS]
    assert not plain, (
        f"expected the charger to connect with wss:// only; it tried plain ws:// {len(plain)} time(s):\n  "
        + _describe(plain)
    )


@pytest.mark.requirement("AUTH-1")
async def test_basic_auth_with_the_authorization_key(
    csms: Endpoint, charger_backend: object, harness_settings: Settings
) -> None:
    """AUTH-1: HTTP Basic on every WebSocket upgrade the charger makes: user = its charge point identity,
    password = its AuthorizationKey, as the hex text or as the bytes it encodes (OCPP 1.6 security whitepaper
    ed. 3, security profile 2; OCTT TC_085). Judged from the charger's recorded connection attempts (every one
    of the run so far); the endpoint refuses wrong credentials with 401. A refusal for a wrong password alone
    is no failure while the charger then connects with the key (the harness itself switches keys in ADV-2 and
    in the 401 check). Changing the key over OCPP is ADV-2's, never AUTH-1's (docs/rules-auth.md)."""
    settings = harness_settings
    if settings.security_profile != 2:
        pytest.skip("not applicable: the run uses security profile 3 (AUTH-2)")
    charger_id = settings.charger_id

    def upgrades(got: list[ConnectionAttempt]) -> list[ConnectionAttempt]:
        """The charger's attempts that reached the HTTP upgrade (so had their credentials checked)."""
        return [a for a in got if a.charger_id == charger_id and a.basic_auth is not None and not a.is_probe]

    attempts = await settled_attempts(
        csms, settings,
        lambda got: any(a.basic_auth is not None and a.basic_auth.accepted for a in upgrades(got))
        or sum(a.outcome == UNAUTHORIZED for a in upgrades(got)) >= 3,
    )
    judged = upgrades(attempts)
    if not judged:
        pytest.skip(
            "not tested: no connection attempt of the charger got past TLS to the HTTP upgrade, where Basic auth "
            "is checked (TLS-1/TLS-2 say why):\n  " + _describe(attempts)
        )
    # Whatever the key: the header on every attempt, Basic, well formed, user = the identity.
    accepted = [a for a in judged if a.basic_auth is not None and a.basic_auth.accepted]
    malformed = [a for a in judged if a not in accepted and a.basic_auth != BasicAuth.WRONG_PASSWORD]
    assert not malformed, (
        f"expected every connection attempt to carry HTTP Basic credentials with user = the charge point identity "
        f"{charger_id!r} (security whitepaper, profile 2); {len(malformed)} of the charger's {len(judged)} attempts "
        "did not:\n  " + _describe(malformed)
    )
    assert accepted, (
        "expected the charger to authenticate with its AuthorizationKey as the Basic auth password (the hex text "
        "as configured, or the bytes it encodes); every attempt was refused for a wrong password:\n  "
        + _describe(judged)
    )
    session = csms.session(charger_id)
    forms = sorted({str(a.basic_auth) for a in accepted})
    session.note(
        f"{len(judged)} connection attempt(s) judged, each with Basic credentials for {charger_id!r}; "
        f"{len(accepted)} accepted (password sent as {' and '.join(f.removeprefix('key-as-') for f in forms)})"
    )
    session.details["basic_auth"] = {"attempts": len(judged), "accepted": len(accepted), "password_forms": forms}
    refused = [a for a in judged if a.basic_auth == BasicAuth.WRONG_PASSWORD]
    if refused:
        session.note(f"{len(refused)} attempt(s) refused for a password that was not the key the platform held "
                     "then (harness key switches, or a key fixed on the bench); the charger connected afterwards")
    # The endpoint's side: a wrong password gets 401.
    ctx = tls.client_context(csms.certs.ca_pem)
    wrong = base64.b64encode(f"{charger_id}:not-the-key".encode()).decode()
    with pytest.raises(InvalidStatus) as probe:
        async with asyncio.timeout(harness_settings.scaled(10)):
            async with connect(
                csms.probe_url(charger_id),
                ssl=ctx,
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Basic {wrong}"},
                user_agent_header=PROBE_USER_AGENT,
                open_timeout=None,
            ):
                pass
    assert probe.value.response.status_code == 401, f"expected HTTP 401, got {probe.value.response.status_code}"
