"""Socket-level fuzzing of the live endpoint: random OCPP-J-ish frames, WebSocket fragmentation and raw bytes
after TLS, from a real WSS client with Basic auth. Whatever arrives, the endpoint keeps serving: afterwards a
conformant charger connects, boots and is answered. Seeded, so a failure names the seed that reproduces it
(`FUZZ_SEED=<n>`); `FUZZ_FRAMES` raises the count for a nightly run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import ssl
import string
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from harness.endpoint import Endpoint
from tests.helpers import CHARGER_ID, client_ctx, open_charger
from tests.test_fault_matrix import GOOD_ID, GOOD_KEY, assert_serves_a_good_charger, ep  # noqa: F401 - fixture

pytestmark = pytest.mark.asyncio(loop_scope="session")

FRAMES = int(os.environ.get("FUZZ_FRAMES", "300"))
ACTIONS = ["BootNotification", "Heartbeat", "StatusNotification", "MeterValues", "StartTransaction",
           "StopTransaction", "DataTransfer", "Authorize", "RemoteStartTransaction", "NoSuchAction", ""]


def _scalar(rng: random.Random) -> object:
    return rng.choice([
        None, True, False, rng.randint(-2**70, 2**70), rng.random() * 10 ** rng.randint(-30, 30),
        "".join(rng.choice(string.printable + "\x1b\x00\u202e\x9b") for _ in range(rng.randint(0, 30))),
        "1e27", -0.0,
    ])


def _value(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if depth > 3 or roll < 0.5:
        return _scalar(rng)
    if roll < 0.75:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["connectorId", "status", "errorCode", "meterValue", "idTag", "x", ""]): _value(rng, depth + 1)
            for _ in range(rng.randint(0, 4))}


def _frame(rng: random.Random, n: int) -> str | bytes:
    kind = rng.random()
    uid = rng.choice([f"fz-{n}", "-1", "", "x" * 40, n])
    if kind < 0.35:
        return json.dumps([2, uid, rng.choice(ACTIONS), _value(rng)])
    if kind < 0.5:
        return json.dumps([rng.choice([3, 4]), uid, _value(rng), _value(rng), _value(rng)][: rng.randint(2, 5)])
    if kind < 0.6:
        return json.dumps([rng.choice([0, 1, 5, 99, -1, "2", None]), uid, "Heartbeat", {}])
    if kind < 0.7:
        return json.dumps(_value(rng))
    if kind < 0.8:
        return "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 200)))
    if kind < 0.85:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
    if kind < 0.9:  # huge numbers and deep nesting
        return f'[2,"{uid}","MeterValues",{{"connectorId":1,"meterValue":[{{"timestamp":"2026-01-01T00:00:00Z",' \
               f'"sampledValue":[{{"value":"1","x":{rng.choice(["1e999999", "9" * 5000, "[" * 500 + "]" * 500])}}}]}}]}}'
    return '[2,"' + str(n) + '","Heartbeat",{' * rng.randint(1, 3)  # cut short


def _fragments(text: str | bytes, rng: random.Random) -> Iterator[str | bytes]:
    cut = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(1, 4)))) if len(text) > 1 else []
    start = 0
    for end in [*cut, len(text)]:
        yield text[start:end]
        start = end


async def _drain(ws: object) -> None:
    """Read whatever the endpoint answers, without waiting for answers that need not come."""
    while True:
        try:
            await asyncio.wait_for(ws.recv(), 0.01)  # type: ignore[attr-defined]
        except TimeoutError:
            return


async def test_random_frames_and_fragments_never_stop_the_endpoint(ep: Endpoint) -> None:  # noqa: F811
    seed = int(os.environ.get("FUZZ_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    session = ep.session(CHARGER_ID)
    crashes: list[dict[str, object]] = []  # an exception no task handled: the harness's, never acceptable
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: crashes.append(context))
    try:
        await _fuzz(ep, rng, session)
    finally:
        loop.set_exception_handler(previous)
    assert not crashes, f"seed {seed}: unhandled exceptions in the harness: {crashes[:3]}"
    assert session.violation_count > 0, f"seed {seed}: nothing was found wrong in {FRAMES} random frames"
    await assert_serves_a_good_charger(ep)


async def _fuzz(ep: Endpoint, rng: random.Random, session: object) -> None:  # noqa: F811
    sent = 0
    while sent < FRAMES:
        try:
            async with await open_charger(ep, max_size=None) as ws:
                while sent < FRAMES:
                    frame = _frame(rng, sent)
                    sent += 1
                    if isinstance(frame, str) and len(frame) > 1 and rng.random() < 0.3:
                        await ws.send(_fragments(frame, rng))  # one message in several WebSocket frames
                    else:
                        await ws.send(frame)
                    await _drain(ws)
        except ConnectionClosed:
            continue  # the endpoint may close on what it cannot take (e.g. invalid UTF-8): connect again


async def test_raw_bytes_after_tls_never_stop_the_endpoint(ep: Endpoint) -> None:  # noqa: F811
    seed = int(os.environ.get("FUZZ_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    host, port = ep.url.split("//")[1].split("/")[0].rsplit(":", 1)
    for _ in range(20):
        reader, writer = await asyncio.open_connection(host.strip("[]"), int(port), ssl=client_ctx(ep),
                                                       server_hostname=host.strip("[]"))
        garbage = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 2048)))
        if rng.random() < 0.5:  # a plausible upgrade request, then garbage where WebSocket frames go
            garbage = (f"GET /ocpp/{CHARGER_ID} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode() + garbage
        writer.write(garbage)
        try:
            await writer.drain()
            await asyncio.wait_for(reader.read(4096), 2)
        except (ConnectionError, TimeoutError, ssl.SSLError):
            pass
        writer.close()
    await assert_serves_a_good_charger(ep)
