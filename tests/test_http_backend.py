"""The `http` backend drives the reference charger through its control server (charger-control-api.md)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from harness import tls
from harness.drivers.base import ActNotSupported, EndpointInfo, RigError
from harness.drivers.http import HttpBackend
from harness.drivers.sim import SimBackend
from harness.sim.charger import ReferenceCharger, SimConfig
from harness.sim.control_server import ControlServer
from tests.sim.test_charger import CP_ID, KEY, MiniCsms, booted

TIMEOUT = 15


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def stub(answer: Handler) -> AsyncIterator[str]:
    """A rig (an aiohttp server) that answers every request with `answer`."""
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", answer)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        async with asyncio.timeout(5):
            await runner.cleanup()


def fixed(status: int, body: bytes) -> Handler:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body)

    return answer


@pytest_asyncio.fixture(loop_scope="session")
async def rig(certs_dir: Path) -> AsyncIterator[tuple[MiniCsms, ReferenceCharger, HttpBackend]]:
    csms = await MiniCsms(certs_dir).start()
    charger = ReferenceCharger(SimConfig(url=csms.url, charge_point_id=CP_ID, authorization_key=KEY,
                                         ca_file=str(tls.CertStore(certs_dir).ca_pem), connectors=2))
    await charger.start()
    control = await ControlServer(charger).start()
    try:
        async with asyncio.timeout(TIMEOUT * 2):
            yield csms, charger, HttpBackend(control.url, timeout=5)
    finally:
        await control.stop()
        await charger.stop()
        await csms.stop()


@pytest.mark.asyncio
async def test_http_backend_drives_the_reference_charger(rig: tuple[MiniCsms, ReferenceCharger, HttpBackend]) -> None:
    csms, charger, backend = rig
    await backend.start(EndpointInfo(url=csms.url, charger_id=CP_ID, authorization_key=KEY, ca_file="",
                                     security_profile=2))
    await booted(csms, connectors=2)
    m = csms.mark()
    await backend.plugin(2)
    await csms.expect("StatusNotification", lambda p: p["connectorId"] == 2 and p["status"] == "Preparing", since=m)
    await backend.authorize("CARD-7", 2)
    start = await csms.expect("StartTransaction", since=m)
    assert start.payload["idTag"] == "CARD-7" and start.payload["connectorId"] == 2
    await csms.expect("StatusNotification", lambda p: p["connectorId"] == 2 and p["status"] == "Charging", since=m)
    await backend.ev_suspend(True, 2)
    await csms.expect("StatusNotification", lambda p: p["connectorId"] == 2 and p["status"] == "SuspendedEV", since=m)
    await backend.ev_suspend(False, 2)
    await backend.fault(True, 2)
    faulted = await csms.expect("StatusNotification", lambda p: p["status"] == "Faulted", since=m)
    assert faulted.payload["errorCode"] not in ("NoError", None)
    await backend.fault(False, 2)
    await csms.expect("StatusNotification", lambda p: p["connectorId"] == 2 and p["status"] == "Charging",
                      since=csms.events.index(("call", faulted)))
    await backend.network(False)
    await csms.wait(lambda: csms.events[-1][0] == "close")
    await backend.network(True)
    await csms.wait(lambda: csms.opens() == 2)
    m = csms.mark()
    await backend.plugout(2)
    await csms.expect("StopTransaction", since=m)
    await backend.reboot()
    await csms.wait(lambda: len(csms.calls("BootNotification")) == 2)
    with pytest.raises(RigError, match="HTTP 400"):
        await backend.plugin(3)  # the charger has two connectors


@pytest.mark.asyncio
async def test_control_server_answers(rig: tuple[MiniCsms, ReferenceCharger, HttpBackend]) -> None:
    _, charger, backend = rig
    assert (await backend._request("GET", "/plugin", {}))[0] == 405
    assert (await backend._request("POST", "/nothing", {}))[0] == 404
    assert (await backend._request("POST", "/ev", {"connector": 1}))[0] == 400  # suspended missing
    assert (await backend._request("POST", "/ev", {"connector": 1, "suspended": "maybe"}))[0] == 400
    assert (await backend._request("POST", "/authorize", {"connector": 1}))[0] == 400  # id missing
    assert (await backend._request("POST", "/authorize", {"id": "X" * 21}))[0] == 400
    assert (await backend._request("POST", "/plugin", {"connector": "one"}))[0] == 400
    assert (await backend._request("POST", "/state", {"faulted": "true", "errorCode": "Sneezing"}))[0] == 400
    status, body = await backend._request("POST", "/plugin", {})  # connector defaults to 1
    assert status == 200 and '"ok": true' in body
    assert charger.model.connector(1).plugged
    status, _ = await backend._request("POST", "/state", {"connector": 1, "faulted": "true", "errorCode": "HighTemperature"})
    assert status == 200 and charger.model.connector(1).fault == "HighTemperature"
    await backend.fault(False, 1)
    await backend.plugout(1)


@pytest.mark.asyncio
async def test_501_means_not_supported() -> None:
    async with stub(fixed(501, b"no relay for that")) as url:
        backend = HttpBackend(url, timeout=2)
        with pytest.raises(ActNotSupported) as info:
            await backend.network(False)
        assert info.value.act == "network" and "no relay for that" in str(info.value)


@pytest.mark.asyncio
async def test_control_server_maps_act_not_supported_to_501() -> None:
    class NoNetworkRig(SimBackend):
        async def network(self, online: bool) -> None:
            raise ActNotSupported("network", "this bench has no switchable uplink")

    async with ControlServer(NoNetworkRig()) as control:
        with pytest.raises(ActNotSupported, match="no switchable uplink"):
            await HttpBackend(control.url).network(False)
        with pytest.raises(RigError, match="HTTP 500"):
            await HttpBackend(control.url).plugin(1)  # SimBackend not started: the act fails


@pytest.mark.asyncio
async def test_500_is_a_rig_error_with_status_and_body() -> None:
    async with stub(fixed(500, b"relay board on fire")) as url:
        with pytest.raises(RigError, match=r"HTTP 500: relay board on fire"):
            await HttpBackend(url, timeout=2).plugin(1)


@pytest.mark.asyncio
async def test_no_answer_is_a_rig_error() -> None:
    hold = asyncio.Event()

    async def silent(request: web.Request) -> web.StreamResponse:
        await hold.wait()  # never answers (until the test ends)
        return web.Response()

    async with stub(silent) as url:
        try:
            with pytest.raises(RigError, match="no answer within 0.3 s"):
                await HttpBackend(url, timeout=0.3).reboot()
        finally:
            hold.set()


@pytest.mark.asyncio
async def test_unreachable_rig() -> None:
    async with stub(fixed(200, b"")) as url:
        pass  # closed: the port is free again
    backend = HttpBackend(url, timeout=2)
    with pytest.raises(RigError, match="does not answer"):
        await backend.start(EndpointInfo(url="wss://x/ocpp", charger_id="X", authorization_key=None, ca_file="",
                                         security_profile=2))
    with pytest.raises(RigError):
        await backend.plugin(1)
    with pytest.raises(ValueError):
        HttpBackend("ftp://rig")


@pytest.mark.asyncio
async def test_an_answer_that_is_not_http_is_a_rig_error() -> None:
    """Something listens but does not speak HTTP (a raw socket on purpose: the answer is malformed)."""

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        with pytest.raises(RigError) as info:
            await HttpBackend(url, timeout=2).plugin(1)
        assert info.value.act == "plugin"
    finally:
        server.close()
        async with asyncio.timeout(2):
            await server.wait_closed()
