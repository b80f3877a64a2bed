"""The fake endpoint against real clients on loopback: TLS policy, auth, frames, bounded waits."""

from __future__ import annotations

import asyncio
import json
import ssl
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from harness import tls
from harness.endpoint import (
    CONNECTED,
    NO_SUBPROTOCOL,
    PLAIN_WS,
    TLS_FAILED,
    UNAUTHORIZED,
    UNKNOWN_CHARGER,
    BasicAuth,
    Endpoint,
)
from harness.errors import CallErrorReceived, ExpectationTimeout, NoAnswer
from tests.helpers import CHARGER_ID, KEY, client_ctx, open_charger

pytestmark = pytest.mark.asyncio(loop_scope="session")

BOOT = '[2,"b1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]'


async def last_attempt(endpoint: Endpoint, since: float):
    attempt = await endpoint.wait_attempt(lambda a: True, within=5, since=since)
    assert attempt is not None, "the endpoint recorded no attempt"
    return attempt


# --- TLS policy ------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", tls.POLICY_SUITES)
async def test_each_policy_suite_connects(endpoint: Endpoint, suite: str) -> None:
    ctx = client_ctx(endpoint)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(suite)
    since = time.monotonic()
    ws = await open_charger(endpoint, ssl_context=ctx)
    await ws.close()
    attempt = await last_attempt(endpoint, since)
    assert (attempt.outcome, attempt.tls_version, attempt.cipher) == (CONNECTED, "TLSv1.2", suite)


@pytest.mark.parametrize(
    ("name", "configure", "reason"),
    [
        ("TLS 1.1", lambda c: (setattr(c, "minimum_version", ssl.TLSVersion.TLSv1_1),
                               setattr(c, "maximum_version", ssl.TLSVersion.TLSv1_1),
                               c.set_ciphers("DEFAULT:@SECLEVEL=0")), "TLS 1.2"),
        ("TLS 1.3 only", lambda c: setattr(c, "minimum_version", ssl.TLSVersion.TLSv1_3), "TLS 1.2"),
        ("suites outside the policy", lambda c: (setattr(c, "maximum_version", ssl.TLSVersion.TLSv1_2),
                                                  c.set_ciphers("ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256")),
         "suite"),
    ],
)
async def test_tls_outside_the_policy_is_refused(endpoint: Endpoint, name: str, configure, reason: str) -> None:
    ctx = client_ctx(endpoint)
    configure(ctx)
    since = time.monotonic()
    with pytest.raises((ssl.SSLError, OSError, ConnectionError)):
        await open_charger(endpoint, ssl_context=ctx)
    attempt = await last_attempt(endpoint, since)
    assert attempt.outcome == TLS_FAILED, attempt
    assert reason.lower() in attempt.detail.lower(), attempt.detail


async def test_plain_ws_is_refused_and_recorded(endpoint: Endpoint) -> None:
    from websockets.asyncio.client import connect

    since = time.monotonic()
    with pytest.raises(InvalidStatus) as refused:
        await connect(endpoint.probe_url(CHARGER_ID, scheme="ws"), subprotocols=["ocpp1.6"], open_timeout=5)
    assert refused.value.response.status_code == 400
    attempt = await last_attempt(endpoint, since)
    assert (attempt.outcome, attempt.charger_id, attempt.transport) == (PLAIN_WS, CHARGER_ID, "plain")


async def test_silent_tcp_client_is_dropped_within_the_bound(endpoint: Endpoint) -> None:
    since = time.monotonic()
    reader, writer = await asyncio.open_connection(endpoint.local_host, endpoint.port)
    attempt = await endpoint.wait_attempt(lambda a: True, within=6, since=since)
    assert attempt is not None and attempt.outcome == "silent"
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()


# --- HTTP upgrade: auth, id, subprotocol ---------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "password", "status", "judged"),
    [
        (CHARGER_ID, KEY, None, BasicAuth.KEY_AS_TEXT),
        (CHARGER_ID, bytes.fromhex(KEY), None, BasicAuth.KEY_AS_BYTES),  # the key's hex-decoded bytes are accepted too
        ("SOMEONE-ELSE", KEY, 401, BasicAuth.WRONG_USER),
        (CHARGER_ID, "wrong-password", 401, BasicAuth.WRONG_PASSWORD),
        (CHARGER_ID, None, 401, BasicAuth.NO_HEADER),
    ],
    ids=["right", "right-hex-decoded", "wrong-user", "wrong-password", "missing"],
)
async def test_basic_auth(endpoint: Endpoint, user: str, password, status: int | None, judged: BasicAuth) -> None:
    since = time.monotonic()
    if status is None:
        ws = await open_charger(endpoint, password=password)
        await ws.close()
        attempt = await last_attempt(endpoint, since)
        assert attempt.outcome == CONNECTED and attempt.basic_auth == judged
        return
    from tests.helpers import basic
    from websockets.asyncio.client import connect

    headers = basic(user, password) if password is not None else {}
    with pytest.raises(InvalidStatus) as refused:
        await connect(endpoint.probe_url(CHARGER_ID), ssl=client_ctx(endpoint), subprotocols=["ocpp1.6"],
                      additional_headers=headers, open_timeout=5)
    assert refused.value.response.status_code == status
    attempt = await last_attempt(endpoint, since)
    assert attempt.outcome == UNAUTHORIZED and attempt.http_status == 401 and attempt.basic_auth == judged
    assert KEY not in json.dumps(attempt.as_dict()), "the AuthorizationKey leaked into the attempt record"
    assert attempt.headers.get("Authorization", "Basic «redacted»").endswith("«redacted»")


async def test_unknown_charger_gets_404(endpoint: Endpoint) -> None:
    since = time.monotonic()
    with pytest.raises(InvalidStatus) as refused:
        await open_charger(endpoint, charger_id="NOBODY")
    assert refused.value.response.status_code == 404
    assert (await last_attempt(endpoint, since)).outcome == UNKNOWN_CHARGER


async def test_no_ocpp16_subprotocol_is_refused(endpoint: Endpoint) -> None:
    since = time.monotonic()
    ws = await open_charger(endpoint, subprotocols=["ocpp2.0.1"])
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 1002
    attempt = await last_attempt(endpoint, since)
    assert attempt.outcome == NO_SUBPROTOCOL
    assert not endpoint.session(CHARGER_ID).connected


# --- frames ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        ("{not json", "malformed frame"),
        ('[7,"x",{}]', "unknown message type"),
        ('[3,"nobody-asked",{}]', "CALLRESULT for unknown id"),
        ('[2,"s1","StatusNotification",{"connectorId":"1","errorCode":"NoError","status":"Available"}]',
         "StatusNotification schema"),
        ('[2,"s2","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available",'
         '"timestamp":"2024-02-30T10:00:00Z"}]', "StatusNotification schema"),
        ('[2,"' + "x" * 37 + '","Heartbeat",{}]', "malformed frame"),
        ('[2,"u1","MakeCoffee",{}]', "unknown action"),
    ],
)
async def test_bad_frames_are_violations_and_the_endpoint_keeps_serving(endpoint: Endpoint, frame: str, kind: str) -> None:
    session = endpoint.session(CHARGER_ID)
    start = session.mark()
    async with await open_charger(endpoint) as ws:
        await ws.send(frame)
        await ws.send(BOOT)
        answer = None
        async with asyncio.timeout(5):
            while answer is None or json.loads(answer)[1] != "b1":
                answer = await ws.recv()
    kinds = [v.kind for v in session.violations_since(start)]
    assert kind in kinds, kinds


async def test_duplicate_id_and_oversized_frame(endpoint: Endpoint) -> None:
    session = endpoint.session(CHARGER_ID)
    start = session.mark()
    async with await open_charger(endpoint) as ws:
        await ws.send('[2,"same","Heartbeat",{}]')
        await ws.recv()
        await ws.send('[2,"same","Heartbeat",{}]')
        await ws.recv()
        await ws.send('[2,"big","DataTransfer",{"vendorId":"V","data":"' + "x" * (2 * 1024 * 1024) + '"}]')
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()
    await session.wait_disconnected(5)  # the endpoint's side of the close is recorded when its handler ends
    kinds = [v.kind for v in session.violations_since(start)]
    assert "duplicate message id" in kinds and "frame too large" in kinds, kinds
    async with await open_charger(endpoint) as ws:  # still serving
        await ws.send(BOOT)
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))[2]["status"] == "Accepted"


async def test_binary_frame_is_a_violation(endpoint: Endpoint) -> None:
    session = endpoint.session(CHARGER_ID)
    start = session.mark()
    async with await open_charger(endpoint) as ws:
        await ws.send(b"\x00\x01binary")
        await ws.send(BOOT)
        await asyncio.wait_for(ws.recv(), 5)
    assert "malformed frame" in [v.kind for v in session.violations_since(start)]


# --- the session API -----------------------------------------------------------------------------


async def test_call_returns_the_result_and_callerror_raises(endpoint: Endpoint) -> None:
    from ocpp.v16 import call

    session = endpoint.session(CHARGER_ID)
    async with await open_charger(endpoint) as ws:
        await session.wait_connected(5)

        async def charger_side() -> None:
            request = json.loads(await ws.recv())
            await ws.send(json.dumps([3, request[1], {"status": "Accepted"}]))
            request = json.loads(await ws.recv())
            await ws.send(json.dumps([4, request[1], "NotSupported", "no such thing", {}]))

        task = asyncio.create_task(charger_side())
        result = await session.call(call.ChangeConfiguration(key="HeartbeatInterval", value="10"))
        assert result.status == "Accepted"
        with pytest.raises(CallErrorReceived) as error:
            await session.call(call.ChangeConfiguration(key="Nope", value="1"))
        assert error.value.code == "NotSupported"
        await task


async def test_a_charger_that_never_answers_fails_within_the_timeout(endpoint: Endpoint) -> None:
    session = endpoint.session(CHARGER_ID)
    async with await open_charger(endpoint) as ws:
        await session.wait_connected(5)
        started = time.monotonic()
        with pytest.raises(NoAnswer) as failure:
            await session.call_raw("GetConfiguration", {})
        assert time.monotonic() - started < 3  # call_timeout is 1 s in this fixture
        assert "GetConfiguration" in str(failure.value) and "did not answer" in str(failure.value)
        late = json.loads(await ws.recv())
        await ws.send(json.dumps([3, late[1], {}]))  # too late: recorded
        await session.expect_none("Heartbeat", within=0.2)
    assert any(v.kind == "late answer" for v in session.violations)


async def test_expect_sees_messages_that_arrived_before_it_was_called(endpoint: Endpoint) -> None:
    session = endpoint.session(CHARGER_ID)
    session.mark()
    async with await open_charger(endpoint) as ws:
        await ws.send('[2,"h1","Heartbeat",{}]')
        await ws.recv()
        got = await session.expect("Heartbeat", within=1)  # already there: no wait
        assert got.unique_id == "h1"
        started = time.monotonic()
        with pytest.raises(ExpectationTimeout) as failure:
            await session.expect("StatusNotification", where={"status": "Charging"}, within=0.3)
        assert time.monotonic() - started < 1
        assert "StatusNotification with status='Charging'" in str(failure.value)
        assert "Heartbeat" in str(failure.value)  # the frames that did arrive are shown


async def test_answers_can_be_overridden_per_test(endpoint: Endpoint) -> None:
    session = endpoint.session(CHARGER_ID)
    async with await open_charger(endpoint) as ws:
        with session.answering("BootNotification", {"status": "Pending", "currentTime": "2026-01-01T00:00:00Z", "interval": 1}):
            await ws.send(BOOT)
            assert json.loads(await ws.recv())[2]["status"] == "Pending"
        await ws.send(BOOT.replace("b1", "b2"))
        assert json.loads(await ws.recv())[2]["status"] == "Accepted"


async def test_a_client_hello_split_across_segments_is_still_recorded(endpoint: Endpoint) -> None:
    """The evidence of a failed handshake includes what the charger offered, however its hello was segmented."""
    import socket as socket_mod

    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    ctx = client_ctx(endpoint)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3  # a TLS 1.3-only client: refused, and the record says why
    tls_object = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls_object.do_handshake()
    hello = outgoing.read()
    since = time.monotonic()
    reader, writer = await asyncio.open_connection(endpoint.local_host, endpoint.port)
    writer.get_extra_info("socket").setsockopt(socket_mod.IPPROTO_TCP, socket_mod.TCP_NODELAY, 1)
    writer.write(hello[:40])
    await writer.drain()
    await asyncio.sleep(0.05)  # deliberately a second TCP segment: the property under test is about timing
    writer.write(hello[40:])
    await writer.drain()
    await asyncio.wait_for(reader.read(), 5)  # the server answers with an alert and closes
    writer.close()
    attempt = await last_attempt(endpoint, since)
    assert attempt.outcome == TLS_FAILED
    assert attempt.client_hello and "TLS 1.3 only" in attempt.client_hello, attempt.client_hello


async def test_url_on_every_interface_names_what_the_certificate_covers(tmp_path) -> None:
    """Listening on 0.0.0.0, the URL shown to the user is one a checking charger accepts (TLS-3): a name
    of the server certificate, not this machine's host name (which the certificate may not cover)."""
    import socket

    from harness.endpoint import EndpointConfig

    bench = Endpoint(EndpointConfig(host="0.0.0.0", port=0, certs_dir=tmp_path / "a", extra_hosts=("bench.local",)))
    await bench.start()
    try:
        assert bench.charger_url("CP-1") == f"wss://bench.local:{bench.port}/ocpp/CP-1"
        # A charger dialling that name and checking it gets through the handshake.
        ctx = tls.client_context(bench.certs.ca_pem)
        ok = await asyncio.open_connection("127.0.0.1", bench.port, ssl=ctx, server_hostname="bench.local")
        ok[1].close()
    finally:
        await bench.stop()
    plain = Endpoint(EndpointConfig(host="0.0.0.0", port=0, certs_dir=tmp_path / "b"))
    await plain.start()
    try:  # nothing but loopback names in the certificate: the machine's name is all there is to show
        assert plain.url == f"wss://{socket.gethostname()}:{plain.port}/ocpp"
    finally:
        await plain.stop()
