"""TLS-1, TLS-2, AUTH-1: how the charger reaches the platform (OCPP 1.6 security whitepaper, profile 2).

These tests judge the charger's connection attempts, so they do not need a booted charger:
a charger that never gets through (TLS 1.3 only, ws://, no Basic auth) fails here, with the
endpoint's reason, rather than leaving the run incomplete.
"""

from __future__ import annotations

import asyncio
import base64

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from harness import tls
from harness.endpoint import CONNECTED, PLAIN_WS, SILENT, TLS_FAILED, UNAUTHORIZED, Endpoint
from harness.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

REFUSED = {TLS_FAILED, PLAIN_WS, UNAUTHORIZED}


async def first_outcome(csms: Endpoint, settings: Settings, refusals: int = 3) -> tuple[bool, list[str]]:
    """Wait until the charger has connected, or been refused `refusals` times; return (connected, refusals)."""

    def settled() -> bool:
        attempts = [a for a in csms.attempts if a.outcome != "pending" and a.outcome != SILENT]
        return any(a.outcome == CONNECTED for a in attempts) or sum(a.outcome in REFUSED for a in attempts) >= refusals

    await csms.wait_attempt(lambda _a: settled(), within=settings.connect_timeout)
    connected = any(a.outcome == CONNECTED for a in csms.attempts)
    refused = [a.summary() + (f" ({a.client_hello})" if a.client_hello else "") for a in csms.attempts if a.outcome in REFUSED]
    return connected, refused


@pytest.mark.requirement("TLS-1")
async def test_tls12_with_a_policy_suite(csms: Endpoint, charger_backend: object, harness_settings: Settings) -> None:
    """TLS-1: WSS over TLS 1.2 with a suite of ELBSecurityPolicy-TLS-1-2-Ext-2018-06 (OCPP 1.6 security
    whitepaper §2, profile 2; OCTT TC_085)."""
    connected, refused = await first_outcome(csms, harness_settings)
    tls_refusals = [r for r in refused if TLS_FAILED in r]
    assert connected, (
        "expected a TLS 1.2 connection with a policy cipher suite; the charger never completed a handshake:\n  "
        + "\n  ".join(tls_refusals or refused or ["no connection attempt at all"])
    )
    session = csms.session(harness_settings.charger_id)
    info = next(a for a in csms.attempts if a.outcome == CONNECTED)
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
    url = csms.probe_url("harness-plain-ws-probe", scheme="ws")
    with pytest.raises(InvalidStatus) as probe:
        async with asyncio.timeout(harness_settings.scaled(10)):
            async with connect(url, subprotocols=["ocpp1.6"], open_timeout=None):  # type: ignore[list-item]
                pass
    assert probe.value.response.status_code == 400, f"expected HTTP 400 for ws://, got {probe.value.response.status_code}"
    # The charger's side: it must use wss:// only.
    connected, refused = await first_outcome(csms, harness_settings)
    plain = [a for a in csms.attempts if a.outcome == PLAIN_WS and a.charger_id == harness_settings.charger_id]
    assert not plain, (
        f"expected the charger to connect with wss:// only; it tried plain ws:// {len(plain)} time(s):\n  "
        + "\n  ".join(a.summary() for a in plain[:5])
    )
    assert connected, "expected the charger to connect over wss://; it never did:\n  " + "\n  ".join(refused)


@pytest.mark.requirement("AUTH-1")
async def test_basic_auth_with_the_authorization_key(
    csms: Endpoint, charger_backend: object, harness_settings: Settings
) -> None:
    """AUTH-1: HTTP Basic on the upgrade, user = charge point id, password = AuthorizationKey (security
    whitepaper §2.3, profile 2; OCTT TC_085). Wrong credentials are refused with 401."""
    if harness_settings.security_profile != 2:
        pytest.skip("not applicable: the run uses security profile 3 (AUTH-2)")
    connected, refused = await first_outcome(csms, harness_settings)
    unauthorized = [r for r in refused if UNAUTHORIZED in r]
    assert connected, (
        "expected the charger to authenticate with Basic auth (user = its id, password = its AuthorizationKey); "
        "it was refused:\n  " + "\n  ".join(unauthorized or refused or ["no attempt at all"])
    )
    # The endpoint's side: a wrong password gets 401.
    ctx = tls.client_context(csms.certs.ca_pem)
    charger_id = harness_settings.charger_id
    wrong = base64.b64encode(f"{charger_id}:not-the-key".encode()).decode()
    with pytest.raises(InvalidStatus) as probe:
        async with asyncio.timeout(harness_settings.scaled(10)):
            async with connect(
                csms.probe_url(charger_id),
                ssl=ctx,
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Basic {wrong}"},
                open_timeout=None,
            ):
                pass
    assert probe.value.response.status_code == 401, f"expected HTTP 401, got {probe.value.response.status_code}"
