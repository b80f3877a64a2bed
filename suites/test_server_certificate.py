"""TLS-3: the charger validates the platform's server certificate, and keeps its clock right.

OCPP 1.6 security whitepaper (edition 3), security profile 2: the Charge Point checks the Central
System's certificate (chain to a CA it trusts, the host name it dialled, the validity dates) and
ends the connection when a check fails; checking the dates needs a correct clock, kept with NTP.
OCTT TC_086_CS (TLS: server certificate). ev.energy: "A charger that connects to a server with an
untrusted, expired or wrong-host certificate fails."

How a refusal is seen: the endpoint records every connection attempt. A TLS handshake that fails
is a refusal; an attempt that sends a request after TLS (the HTTP upgrade, even a malformed one)
means the charger completed TLS with the bad certificate and went on talking: it accepted it (fail).
An attempt that completes TLS but never sends a request is a refusal too (the charger hung up after
looking at the certificate). A TCP connection with nothing sent decides nothing.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from ocpp.v16 import call
from ocpp.v16.enums import MessageTrigger, TriggerMessageStatus

from harness import ocppj
from harness.endpoint import CONNECTED, NOT_HTTP, SILENT, TLS_FAILED, ConnectionAttempt, Endpoint
from harness.errors import CallErrorReceived, ChargerFailure, ExpectationTimeout
from harness.flows import start_charging, stop_charging
from harness.session import ChargerSession, ReceivedCall
from harness.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

#: harness.tls.CertStore.bad_server_context kinds, with what a correct charger sees wrong.
BAD_CERTIFICATES = {
    "untrusted-ca": "issued by a CA the charger was not given (chain check)",
    "expired": "expired yesterday (validity dates check)",
    "wrong-host": "issued for wrong-host.invalid, not the host it dials (host name check)",
}

#: How far the charger's clock may be from the harness's (seconds). A minute: an NTP-synchronised
#: clock is within milliseconds, and message latency on a live connection is well under a second,
#: so 60 s leaves room for a charger that sets its clock only from BootNotification.conf currentTime
#: (OCPP 1.6 §4.2 recommends that) and drifts a little between boots; a clock off by more is not
#: synchronised at all. A minute is also the platform's metering resolution (MeterValueSampleInterval
#: 60 s): a larger error puts readings in the wrong interval, and a clock minutes or days off breaks
#: the certificate date check that TLS-3 relies on.
CLOCK_TOLERANCE = 60.0


def _retry_bound(settings: Settings) -> float:
    """How long to wait for the charger's next connection attempt after a refused one (its back-off)."""
    return 20.0 if settings.quick else 180.0


def _reconnect_bound(settings: Settings) -> float:
    """How long the charger may take to come back once the good certificate is presented again."""
    return 20.0 if settings.quick else 180.0


def _reached_http(attempt: ConnectionAttempt) -> bool:
    """The attempt got past TLS and sent a request (the upgrade, even a broken one): the certificate was accepted."""
    return (
        attempt.path is not None
        or attempt.http_status is not None
        or attempt.outcome == CONNECTED
        or (attempt.transport == "tls" and attempt.outcome == NOT_HTTP)
    )


def _refused(attempt: ConnectionAttempt) -> bool:
    """The TLS handshake failed, or it completed and the charger hung up without a request."""
    return attempt.outcome == TLS_FAILED or (attempt.transport == "tls" and attempt.outcome == SILENT)


def _decided(attempt: ConnectionAttempt) -> bool:
    return _refused(attempt) or _reached_http(attempt)


def _tls_without_upgrade(csms: Endpoint, since: float) -> list[ConnectionAttempt]:
    """Attempts that began TLS, never failed it, and never sent the HTTP upgrade (the charger hung up)."""
    return [
        a for a in csms.attempts
        if a.mono >= since and a.transport == "tls" and a.outcome == "pending" and not _reached_http(a)
    ]


@pytest.mark.requirement("TLS-3")
async def test_refuses_bad_server_certificates(
    charger: ChargerSession, csms: Endpoint, harness_settings: Settings
) -> None:
    """TLS-3: an untrusted, an expired and a wrong-host server certificate are each refused (no
    WebSocket upgrade over them); with the good certificate back, the charger reconnects by itself
    (OCPP 1.6 security whitepaper ed. 3 §2, profile 2; OCTT TC_086_CS)."""
    settings = harness_settings
    retry = _retry_bound(settings)
    results: dict[str, str] = {}
    accepted: list[str] = []
    window_start = time.monotonic()
    try:
        for kind, what in BAD_CERTIFICATES.items():
            csms.present(csms.certs.bad_server_context(kind))
            since = time.monotonic()
            if charger.connection is not None:
                # Drop the connection from the platform side: the charger's next attempt meets the bad certificate.
                await charger.connection.close(1001, "harness: certificate check (TLS-3)")
            attempt = await csms.wait_attempt(_decided, within=retry, since=since)
            if attempt is None:
                hung_up = _tls_without_upgrade(csms, since)
                if hung_up:
                    results[kind] = "refused (TLS completed, then no HTTP upgrade)"
                    continue
                raise ChargerFailure(
                    f"expected the charger to try to reconnect while the {kind} certificate ({what}) was presented; "
                    f"it made no connection attempt within {settings.scaled(retry):g} s after the platform closed "
                    f"the connection, so whether it refuses that certificate cannot be seen. A charger must keep "
                    f"reconnecting by itself (TLS-3, NF-2).\nAttempts so far: "
                    + "; ".join(a.summary() for a in list(csms.attempts)[-5:])
                )
            if _reached_http(attempt):
                accepted.append(kind)
                results[kind] = f"ACCEPTED: {attempt.summary()}"
            else:
                results[kind] = f"refused: {(attempt.detail or attempt.outcome).split(';')[0]}"
    finally:
        csms.present(None)
    window_end = time.monotonic()

    # Every attempt made while a bad certificate was presented counts, not only the first per kind.
    late = [a for a in csms.attempts if window_start <= a.mono < window_end and _reached_http(a)]
    for kind, text in results.items():
        charger.note(f"{kind} certificate: {text}")
    charger.details["certificates"] = results
    assert not accepted and not late, (
        "expected the charger to refuse every bad server certificate (no WebSocket upgrade over it); it completed "
        f"TLS and sent the HTTP upgrade with: {', '.join(accepted) or 'a bad certificate'}"
        f" ({'; '.join(BAD_CERTIFICATES[k] for k in accepted)}). It does not check the server certificate "
        "(chain, host name, dates) as TLS-3 requires.\n"
        + "\n".join(f"  {k}: {v}" for k, v in results.items())
        + ("\n  attempts that reached HTTP: " + "; ".join(a.summary() for a in late) if late else "")
    )

    # The good certificate again: the charger comes back by itself (and over the good certificate).
    restored = time.monotonic()
    if charger.connection is not None:
        await charger.connection.close(1001, "harness: certificate restored")
    bound = _reconnect_bound(settings)
    good = await csms.wait_attempt(
        lambda a: a.outcome == CONNECTED and a.charger_id == settings.charger_id, within=bound, since=restored
    )
    assert good is not None, (
        f"expected the charger to reconnect by itself within {settings.scaled(bound):g} s once the good "
        "certificate was presented again; it did not. Attempts since: "
        + ("; ".join(a.summary() for a in csms.attempts if a.mono >= restored) or "none")
    )
    await charger.wait_connected(within=5)
    charger.note(f"reconnected {good.mono - restored:.2f} s after the good certificate was restored")


# --- clock -------------------------------------------------------------------------------------


def _timestamps(call: ReceivedCall) -> list[tuple[str, str]]:
    """(where, timestamp) of each charger-set time in a CALL."""
    found: list[tuple[str, str]] = []
    payload = call.payload
    if call.action in ("StatusNotification", "StartTransaction", "StopTransaction"):
        if isinstance(payload.get("timestamp"), str):
            found.append((f"{call.action}.timestamp", payload["timestamp"]))
    if call.action == "MeterValues":
        for i, entry in enumerate(payload.get("meterValue") or []):
            if isinstance(entry, dict) and isinstance(entry.get("timestamp"), str):
                found.append((f"MeterValues.meterValue[{i}].timestamp", entry["timestamp"]))
    return found


async def _triggered(charger: ChargerSession, message: MessageTrigger, connector: int) -> list[ReceivedCall]:
    """Ask for `message` now (TriggerMessage); the CALLs it produced, or [] if the charger declined."""
    since = charger.trace.next_seq
    try:
        answer = await charger.call(call.TriggerMessage(requested_message=message, connector_id=connector))
    except CallErrorReceived as exc:
        charger.note(f"TriggerMessage {message}: CALLERROR {exc.code}")
        return []
    if answer.status != TriggerMessageStatus.accepted:
        charger.note(f"TriggerMessage {message}: {answer.status}")
        return []
    try:
        got = await charger.expect(message, where={"connectorId": connector}, since=since, within=10)
    except ExpectationTimeout:
        # Accepted but not sent: a Remote Trigger finding (RT-1/RT-2), not a clock one; look elsewhere.
        charger.note(f"TriggerMessage {message} Accepted, but no {message} followed")
        return []
    return [got]


@pytest.mark.requirement("TLS-3")
async def test_clock_is_synchronised(charger: ChargerSession, harness_settings: Settings) -> None:
    """TLS-3: the charger's clock, as seen in the timestamps of the messages it sends now, is within
    60 s of the harness clock; certificate date checks need it, NTP is advised (ev.energy TLS-3;
    OCPP 1.6 §4.2: synchronise with BootNotification.conf currentTime; §7 timestamps are UTC)."""
    # Messages produced now, on a live connection: their timestamps are "now" by the charger's clock.
    calls = await _triggered(charger, MessageTrigger.status_notification, 1)
    calls += await _triggered(charger, MessageTrigger.meter_values, 1)
    stamped = [(c, where, value) for c in calls for where, value in _timestamps(c)]
    if not stamped:
        # No timestamp from a trigger: a transaction's StartTransaction.timestamp is required.
        charger.note("no timestamp in triggered messages: using a transaction's StartTransaction/StopTransaction")
        session = await start_charging(charger)
        stop = await stop_charging(charger, session)
        stamped = [(c, where, value) for c in (session.start, stop) for where, value in _timestamps(c)]
    assert stamped, "expected timestamps in the charger's messages (StatusNotification, MeterValues, StartTransaction)"

    offsets: list[tuple[float, str, str, dt.datetime]] = []
    for call, where, value in stamped:
        try:
            stamp = ocppj.parse_datetime(value)
        except ValueError:
            raise ChargerFailure(f"{where} {value!r} is not an RFC 3339 date-time (OCPP-J §4.1.6)") from None
        offsets.append(((stamp - call.wall).total_seconds(), where, value, call.wall))
    worst = max(offsets, key=lambda o: abs(o[0]))
    charger.details["clock_offset_s"] = round(worst[0], 3)
    charger.note(
        f"charger clock offset: {worst[0]:+.2f} s ({len(offsets)} timestamp(s); tolerance ±{CLOCK_TOLERANCE:g} s)"
    )
    bad = [o for o in offsets if abs(o[0]) > CLOCK_TOLERANCE]
    if bad:
        raise ChargerFailure(
            f"expected the charger's clock within ±{CLOCK_TOLERANCE:g} s of the harness clock (UTC); it is "
            f"{'ahead' if worst[0] > 0 else 'behind'} by {abs(worst[0]):.1f} s: {worst[1]} = {worst[2]!r} arrived at "
            f"{_utc(worst[3])}. The charger's clock is not synchronised: keep it with NTP (or at least from "
            "BootNotification.conf currentTime). Without a correct clock it cannot check certificate validity "
            "dates (TLS-3), and its meter values and transactions carry wrong times.\n"
            + "\n".join(f"  {where} = {value!r}, harness clock {_utc(wall)}: {off:+.1f} s" for off, where, value, wall in bad[:10])
        )


def _utc(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")

