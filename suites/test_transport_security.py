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
from harness.endpoint import CONNECTED, PLAIN_WS, SILENT, TLS_FAILED, UNAUTHORIZED, ConnectionAttempt, Endpoint
from harness.plugin import ChargerNeverConnected
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
    """AUTH-1: HTTP Basic on the upgrade, user = charge point id, password = AuthorizationKey (security
    whitepaper §2.3, profile 2; OCTT TC_085). Wrong credentials are refused with 401."""
    if harness_settings.security_profile != 2:
        pytest.skip("not applicable: the run uses security profile 3 (AUTH-2)")
    attempts = await settled_attempts(
        csms, harness_settings,
        lambda got: any(a.outcome == CONNECTED for a in got) or sum(a.outcome == UNAUTHORIZED for a in got) >= 3,
    )
    assert any(a.outcome == CONNECTED for a in attempts), (
        "expected the charger to authenticate with Basic auth (user = its id, password = its AuthorizationKey); "
        "it was refused:\n  " + _describe([a for a in attempts if a.outcome == UNAUTHORIZED] or attempts)
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
