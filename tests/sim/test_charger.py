"""The reference charger against a small real central system: TLS 1.2 (the policy), Basic Auth, ocpp1.6.

Everything runs on 127.0.0.1 with real sockets; every wait is on an event and bounded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import itertools
import ssl
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import BodyPartReader, web
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from harness import spec16, tls
from harness.ocppj import Call, CallError, CallResult, decode_json, encode_frame, parse_frame, schemas
from harness.sim.charger import ReferenceCharger, SimConfig

CP_ID = "SIM-TEST-1"
KEY = "0123456789abcdef0123456789abcdef01234567"
TIMEOUT = 15


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class MiniCsms:
    """A tiny central system: records every frame, answers with scripted payloads, sends CALLs."""

    def __init__(self, certs_dir: Path, *, key: str = KEY, boot: list[tuple[str, int]] | None = None,
                 heartbeat: int = 60, client_certs: bool = False) -> None:
        self.store = tls.CertStore(certs_dir)
        self.client_certs = client_certs
        self.presented: ssl.SSLContext | None = None  # another server certificate to present (TLS-3 tests)
        self.handshakes = 0
        self.key = key
        self.boot_script = list(boot or [])  # (status, interval) answers, then Accepted
        self.heartbeat = heartbeat
        self.events: list[tuple[str, Any]] = []  # ("call", Call) / ("result", CallResult|CallError) / ("open", headers) / ("close", None)
        self.changed = asyncio.Condition()
        self.ws: ServerConnection | None = None
        self.port = 0
        self.tx_ids = itertools.count(100)
        self.uids = itertools.count(1)
        self.last_tx_id: int | None = None
        self.answers: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {}
        self._server: Any = None
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self.auth_failures = 0

    async def start(self) -> MiniCsms:
        context = self.store.server_context(require_client_cert=self.client_certs)
        context.sni_callback = self._sni
        self._server = await serve(self._handler, "127.0.0.1", 0, ssl=context,
                                   subprotocols=["ocpp1.6"], process_request=self._auth)  # type: ignore[list-item]
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._server.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(3):
                await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"wss://127.0.0.1:{self.port}/ocpp"

    def _sni(self, ssl_object: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        self.handshakes += 1
        if self.presented is not None:
            ssl_object.context = self.presented
        self.changed_soon()

    def changed_soon(self) -> None:
        async def notify() -> None:
            async with self.changed:
                self.changed.notify_all()

        asyncio.get_running_loop().create_task(notify())

    def _auth(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.client_certs:
            return None if request.path == f"/ocpp/{CP_ID}" else connection.respond(404, "unknown\n")
        expected = "Basic " + base64.b64encode(f"{CP_ID}:{self.key}".encode()).decode()
        if request.path != f"/ocpp/{CP_ID}":
            return connection.respond(404, "unknown charge point\n")
        if request.headers.get("Authorization") != expected:
            self.auth_failures += 1
            return connection.respond(401, "bad credentials\n")
        return None

    async def _record(self, kind: str, item: Any) -> None:
        async with self.changed:
            self.events.append((kind, item))
            self.changed.notify_all()

    async def _handler(self, ws: ServerConnection) -> None:
        self.ws = ws
        await self._record("open", Headers(ws.request.headers) if ws.request else None)
        try:
            async for message in ws:
                frame = parse_frame(message)
                if isinstance(frame, Call):
                    await self._record("call", frame)
                    answer = self._answer(frame)
                    if answer is not None:
                        await ws.send(encode_frame(CallResult(frame.unique_id, answer)))
                else:
                    await self._record("result", frame)
                    fut = self._waiting.pop(frame.unique_id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(frame)
        except Exception:  # noqa: BLE001 - a dropped connection ends the handler
            pass
        finally:
            await self._record("close", None)

    def _answer(self, call: Call) -> dict[str, Any] | None:
        if call.action in self.answers:
            return self.answers[call.action](call.payload)
        if call.action == "BootNotification":
            status, interval = self.boot_script.pop(0) if self.boot_script else ("Accepted", self.heartbeat)
            return {"status": status, "currentTime": _now(), "interval": interval}
        if call.action == "Heartbeat":
            return {"currentTime": _now()}
        if call.action == "Authorize":
            return {"idTagInfo": {"status": "Accepted"}}
        if call.action == "StartTransaction":
            self.last_tx_id = next(self.tx_ids)
            return {"transactionId": self.last_tx_id, "idTagInfo": {"status": "Accepted"}}
        if call.action == "DataTransfer":
            return {"status": "Accepted"}
        return {}

    # --- helpers for tests ------------------------------------------------------------------

    def calls(self, action: str | None = None, since: int = 0) -> list[Call]:
        return [e[1] for e in self.events[since:] if e[0] == "call" and (action is None or e[1].action == action)]

    def mark(self) -> int:
        return len(self.events)

    async def wait(self, predicate: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
        async with asyncio.timeout(timeout):
            async with self.changed:
                while not (result := predicate()):
                    await self.changed.wait()
                return result

    async def expect(self, action: str, where: Callable[[dict[str, Any]], bool] = lambda p: True, *,
                     since: int = 0, timeout: float = TIMEOUT) -> Call:
        return await self.wait(lambda: next((c for c in self.calls(action, since) if where(c.payload)), None), timeout)

    async def call(self, action: str, payload: dict[str, Any], timeout: float = TIMEOUT) -> CallResult | CallError:
        assert self.ws is not None
        uid = f"csms-{next(self.uids)}"
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[uid] = fut
        await self.ws.send(encode_frame(Call(uid, action, payload)))
        async with asyncio.timeout(timeout):
            return await fut

    async def send_raw(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send(text)

    async def result_for(self, uid: str, timeout: float = TIMEOUT) -> Any:
        return await self.wait(lambda: next((e[1] for e in self.events if e[0] == "result" and e[1].unique_id == uid), None),
                               timeout)

    def opens(self) -> int:
        return sum(1 for kind, _ in self.events if kind == "open")


def statuses(csms: MiniCsms, connector: int, since: int = 0) -> list[str]:
    return [c.payload["status"] for c in csms.calls("StatusNotification", since) if c.payload["connectorId"] == connector]


def assert_legal(csms: MiniCsms) -> None:
    for connector in (0, 1, 2):
        seq = statuses(csms, connector)
        for old, new in zip(seq, seq[1:]):
            assert spec16.is_legal_transition(old, new, connector_id=connector), f"{connector}: {old} -> {new} in {seq}"


def assert_valid(csms: MiniCsms, *, allow: tuple[str, ...] = ()) -> None:
    """Every request the charger sent conforms to the 1.6 JSON schemas."""
    for call in csms.calls():
        if call.action in allow:
            continue
        problems = schemas().request_problems(call.action, decode_json(encode_frame(call))[3])
        assert not problems, f"{call.action}: {problems}"


def sampled(call: Call) -> dict[tuple[str, str | None], Decimal]:
    values = {}
    for mv in call.payload["meterValue"]:
        for sv in mv["sampledValue"]:
            values[(sv.get("measurand", spec16.DEFAULT_MEASURAND), sv.get("phase"))] = Decimal(sv["value"])
    return values


@pytest_asyncio.fixture(loop_scope="session")
async def csms(certs_dir: Path) -> AsyncIterator[MiniCsms]:
    server = await MiniCsms(certs_dir, heartbeat=60).start()
    try:
        yield server
    finally:
        await server.stop()


def make_charger(csms: MiniCsms, certs_dir: Path, **kwargs: Any) -> ReferenceCharger:
    config = SimConfig(url=csms.url, charge_point_id=CP_ID, authorization_key=kwargs.pop("key", KEY),
                       ca_file=str(tls.CertStore(certs_dir).ca_pem), **kwargs)
    return ReferenceCharger(config)


@contextlib.asynccontextmanager
async def running(csms: MiniCsms, certs_dir: Path, **kwargs: Any) -> AsyncIterator[ReferenceCharger]:
    charger = make_charger(csms, certs_dir, **kwargs)
    await charger.start()
    try:
        async with asyncio.timeout(TIMEOUT * 2):
            yield charger
    finally:
        await charger.stop()


async def booted(csms: MiniCsms, connectors: int = 1) -> None:
    await csms.expect("BootNotification")
    await csms.wait(lambda: {c.payload["connectorId"] for c in csms.calls("StatusNotification")} >= set(range(connectors + 1)))


async def configure(csms: MiniCsms, key: str, value: str) -> str:
    result = await csms.call("ChangeConfiguration", {"key": key, "value": value})
    assert isinstance(result, CallResult), result
    return result.payload["status"]


# --- boot, heartbeat, status ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_boot_heartbeat_and_status(certs_dir: Path) -> None:
    csms = await MiniCsms(certs_dir, heartbeat=1).start()
    try:
        async with running(csms, certs_dir, connectors=2):
            boot = await csms.expect("BootNotification")
            headers = csms.events[0][1]
            assert headers["Sec-WebSocket-Protocol"] == "ocpp1.6"
            assert headers["Authorization"] == "Basic " + base64.b64encode(f"{CP_ID}:{KEY}".encode()).decode()
            assert boot.payload["chargePointVendor"] and boot.payload["firmwareVersion"] == "1.0.0"
            await booted(csms, connectors=2)
            first = csms.calls("StatusNotification")[:3]
            assert [c.payload["connectorId"] for c in first] == [0, 1, 2]
            assert all(c.payload["status"] == "Available" and c.payload["errorCode"] == "NoError" for c in first)
            # The interval of BootNotification.conf (1 s) is the heartbeat interval.
            await csms.wait(lambda: len(csms.calls("Heartbeat")) >= 2, timeout=4)
            boot_index = next(i for i, e in enumerate(csms.events) if e[0] == "call" and e[1].action == "BootNotification")
            assert all(e[1].action != "Heartbeat" for e in csms.events[:boot_index] if e[0] == "call")
            result = await csms.call("GetConfiguration", {"key": ["HeartbeatInterval", "NumberOfConnectors"]})
            values = {k["key"]: k["value"] for k in result.payload["configurationKey"]}
            assert values == {"HeartbeatInterval": "1", "NumberOfConnectors": "2"}
            assert_valid(csms)
    finally:
        await csms.stop()


@pytest.mark.asyncio
async def test_pending_then_accepted_sends_nothing_else(certs_dir: Path) -> None:
    csms = await MiniCsms(certs_dir, boot=[("Pending", 1)]).start()
    try:
        async with running(csms, certs_dir) as charger:
            await csms.wait(lambda: len(csms.calls("BootNotification")) >= 2, timeout=5)
            second = next(i for i, e in enumerate(csms.events) if e[0] == "call" and e[1] is csms.calls("BootNotification")[1])
            assert [c.action for c in csms.calls()[: 1]] == ["BootNotification"]
            assert all(e[1].action == "BootNotification" for e in csms.events[:second] if e[0] == "call")
            await booted(csms)
            assert charger.accepted
    finally:
        await csms.stop()


@pytest.mark.asyncio
async def test_pending_answers_and_triggered_boot(certs_dir: Path) -> None:
    csms = await MiniCsms(certs_dir, boot=[("Pending", 300)]).start()
    try:
        async with running(csms, certs_dir):
            await csms.expect("BootNotification")
            # While Pending the central system may read the configuration, and trigger the boot.
            result = await csms.call("GetConfiguration", {"key": ["MeterValueSampleInterval"]})
            assert result.payload["configurationKey"][0]["key"] == "MeterValueSampleInterval"
            result = await csms.call("TriggerMessage", {"requestedMessage": "BootNotification"})
            assert result.payload == {"status": "Accepted"}
            await csms.wait(lambda: len(csms.calls("BootNotification")) == 2, timeout=3)
            await booted(csms)
            assert [c.action for c in csms.calls()][:2] == ["BootNotification", "BootNotification"]
    finally:
        await csms.stop()


# --- a whole session ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_transaction_with_meter_values(csms: MiniCsms, certs_dir: Path) -> None:
    async with running(csms, certs_dir) as charger:
        await booted(csms)
        start_mark = csms.mark()
        assert await configure(csms, "MeterValuesSampledData",
                               "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage,SoC") == "Accepted"
        assert await configure(csms, "MeterValueSampleInterval", "1") == "Accepted"
        assert await configure(csms, "StopTxnSampledData", "Energy.Active.Import.Register") == "Accepted"
        await charger.plugin(1)
        await csms.expect("StatusNotification", lambda p: p["status"] == "Preparing", since=start_mark)
        await charger.authorize("TAG-1", 1)
        auth = await csms.expect("Authorize", since=start_mark)
        assert auth.payload == {"idTag": "TAG-1"}
        start = await csms.expect("StartTransaction", since=start_mark)
        await csms.expect("StatusNotification", lambda p: p["status"] == "Charging", since=start_mark)
        mv = [await csms.expect("MeterValues", since=start_mark)]
        await csms.wait(lambda: len(csms.calls("MeterValues", start_mark)) >= 3, timeout=5)
        mv = csms.calls("MeterValues", start_mark)
        tx_id = csms.last_tx_id
        registers = []
        for call in mv:
            assert call.payload["transactionId"] == tx_id
            assert call.payload["connectorId"] == 1
            sv = call.payload["meterValue"][0]["sampledValue"]
            assert {s["context"] for s in sv} == {"Sample.Periodic"}
            units = {(s["measurand"], s["unit"]) for s in sv}
            assert units == {("Energy.Active.Import.Register", "Wh"), ("Power.Active.Import", "W"),
                             ("Current.Import", "A"), ("Voltage", "V"), ("SoC", "Percent")}
            values = sampled(call)
            power = sum(values[("Voltage", f"L{i}-N")] * values[("Current.Import", f"L{i}")] for i in (1, 2, 3))
            assert abs(values[("Power.Active.Import", None)] - power) < 1
            assert values[("Power.Active.Import", None)] == Decimal("22080.0")  # 3 x 230 V x 32 A
            registers.append(values[("Energy.Active.Import.Register", None)])
        assert registers == sorted(registers) and registers[0] >= start.payload["meterStart"]
        # Cadence: one sample a second.
        times = [dt.datetime.fromisoformat(c.payload["meterValue"][0]["timestamp"].replace("Z", "+00:00")) for c in mv]
        gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
        assert all(0.7 < g < 1.5 for g in gaps), gaps
        # Energy agrees with power over time: 22080 W for ~1 s is ~6.1 Wh.
        assert 3 <= registers[-1] - registers[-2] <= 9
        await charger.plugout(1)
        stop = await csms.expect("StopTransaction", since=start_mark)
        assert stop.payload["transactionId"] == tx_id
        assert stop.payload["reason"] == "EVDisconnected"
        assert stop.payload["meterStop"] >= registers[-1] >= start.payload["meterStart"]
        contexts = [d["sampledValue"][0]["context"] for d in stop.payload["transactionData"]]
        assert contexts == ["Transaction.Begin", "Transaction.End"]
        await csms.expect("StatusNotification", lambda p: p["status"] == "Available" and p["connectorId"] == 1,
                          since=csms.events.index(("call", stop)))
        assert_legal(csms)
        assert_valid(csms)
        # The charger sent one CALL at a time: every CALL after the first came after the answer to the one before.
        assert charger.model.connector(1).status.history


@pytest.mark.asyncio
async def test_smart_charging_limit_zero_suspends_and_lifting_resumes(csms: MiniCsms, certs_dir: Path) -> None:
    async with running(csms, certs_dir) as charger:
        await booted(csms)
        m = csms.mark()
        await charger.plugin(1)
        await charger.authorize("TAG-2", 1)
        start = await csms.expect("StartTransaction", since=m)
        await csms.expect("StatusNotification", lambda p: p["status"] == "Charging", since=m)
        tx_id = csms.last_tx_id
        profile = {
            "chargingProfileId": 7, "stackLevel": 1, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute", "transactionId": tx_id,
            "chargingSchedule": {"chargingRateUnit": "A", "startSchedule": "2020-01-01T00:00:00Z",
                                 "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 0}]},
        }
        result = await csms.call("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": profile})
        assert result.payload == {"status": "Accepted"}
        await csms.expect("StatusNotification", lambda p: p["status"] == "SuspendedEVSE", since=m, timeout=2)
        assert charger.model.snapshot(1, time.monotonic()).power_w == 0
        composite = await csms.call("GetCompositeSchedule", {"connectorId": 1, "duration": 60, "chargingRateUnit": "A"})
        assert composite.payload["status"] == "Accepted"
        assert composite.payload["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 0
        # 6.3 A (multipleOf 0.1 must hold for Decimal parsing) and then clear.
        profile["chargingSchedule"]["chargingSchedulePeriod"] = [{"startPeriod": 0, "limit": Decimal("6.3")}]
        result = await csms.call("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": profile})
        assert result.payload == {"status": "Accepted"}
        await csms.expect("StatusNotification", lambda p: p["status"] == "Charging",
                          since=csms.events.index(("call", csms.calls("StatusNotification", m)[-1])), timeout=2)
        assert charger.model.connector(1).limit_amps == pytest.approx(6.3)
        result = await csms.call("ClearChargingProfile", {"id": 7})
        assert result.payload == {"status": "Accepted"}
        result = await csms.call("ClearChargingProfile", {"id": 7})
        assert result.payload == {"status": "Unknown"}
        # TxProfile on a connector without transaction: Rejected.
        result = await csms.call("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": {**profile, "transactionId": 9999}})
        assert result.payload == {"status": "Rejected"}
        result = await csms.call("RemoteStopTransaction", {"transactionId": tx_id})
        assert result.payload == {"status": "Accepted"}
        stop = await csms.expect("StopTransaction", since=m)
        assert stop.payload["reason"] == "Remote" and stop.payload["meterStop"] >= start.payload["meterStart"]
        await csms.expect("StatusNotification", lambda p: p["status"] == "Finishing", since=m)
        await charger.plugout(1)
        await csms.expect("StatusNotification", lambda p: p["status"] == "Available" and p["connectorId"] == 1,
                          since=csms.events.index(("call", stop)))
        assert_legal(csms)


@pytest.mark.asyncio
async def test_a_new_limit_reaches_the_ev_after_limit_delay(csms: MiniCsms, certs_dir: Path) -> None:
    """The EV keeps drawing the old current for limit_delay after the answer (physics ticks do not apply it early)."""
    async with running(csms, certs_dir, limit_delay=0.6) as charger:
        await booted(csms)
        await charger.plugin(1)
        await charger.authorize("TAG-2", 1)
        await csms.expect("StatusNotification", lambda p: p["status"] == "Charging")
        await csms.wait(lambda: csms.last_tx_id is not None)
        m = csms.mark()
        profile = {
            "chargingProfileId": 8, "stackLevel": 1, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute", "transactionId": csms.last_tx_id,
            "chargingSchedule": {"chargingRateUnit": "A", "startSchedule": "2020-01-01T00:00:00Z",
                                 "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 0}]},
        }
        asked = time.monotonic()
        result = await csms.call("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": profile})
        assert result.payload == {"status": "Accepted"}
        assert charger.model.snapshot(1, time.monotonic()).power_w > 0  # not yet
        await csms.expect("StatusNotification", lambda p: p["status"] == "SuspendedEVSE", since=m, timeout=5)
        assert time.monotonic() - asked >= 0.6
        assert charger.model.snapshot(1, time.monotonic()).power_w == 0


def test_slow_hardware_variant_sets_realistic_timings() -> None:
    base = SimConfig(url="wss://127.0.0.1/ocpp", charge_point_id="CP")
    slow = SimConfig(url="wss://127.0.0.1/ocpp", charge_point_id="CP", defects=frozenset({"slow-hardware"}))
    assert (base.limit_delay, base.install_time, base.power_on_delay) == (0.02, 0.02, 0.02)
    assert (slow.limit_delay, slow.install_time, slow.power_on_delay) == (3.0, 5.0, 2.0)
    slower = SimConfig(url="wss://127.0.0.1/ocpp", charge_point_id="CP", defects=frozenset({"slow-hardware"}),
                       install_time=20.0)
    assert slower.install_time == 20.0  # a longer explicit value is kept


@pytest.mark.asyncio
async def test_remote_start_with_tx_profile(csms: MiniCsms, certs_dir: Path) -> None:
    async with running(csms, certs_dir) as charger:
        await booted(csms)
        m = csms.mark()
        profile = {
            "chargingProfileId": 3, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10}]},
        }
        result = await csms.call("RemoteStartTransaction", {"idTag": "REMOTE", "connectorId": 1, "chargingProfile": profile})
        assert result.payload == {"status": "Accepted"}
        await csms.expect("StatusNotification", lambda p: p["status"] == "Preparing", since=m)
        await charger.plugin(1)
        start = await csms.expect("StartTransaction", since=m)
        assert start.payload["idTag"] == "REMOTE"
        await csms.expect("StatusNotification", lambda p: p["status"] == "Charging", since=m)
        assert charger.model.connector(1).limit_amps == 10
        # The profile followed the transaction to the id the central system gave it.
        await csms.wait(lambda: charger.transaction_id(1) is not None)
        assert charger.model.connector(1).limit_amps == 10
        result = await csms.call("RemoteStartTransaction", {"idTag": "OTHER", "connectorId": 1})
        assert result.payload == {"status": "Rejected"}  # busy
        await charger.plugout(1)
        await csms.expect("StopTransaction", since=m)
        assert_legal(csms)


# --- triggers, configuration, errors -------------------------------------------------------------


@pytest.mark.asyncio
async def test_trigger_answer_comes_before_the_message(csms: MiniCsms, certs_dir: Path) -> None:
    async with running(csms, certs_dir, connectors=2):
        await booted(csms, connectors=2)
        for requested in spec16.TRIGGERABLE_MESSAGES:
            m = csms.mark()
            payload: dict[str, Any] = {"requestedMessage": requested}
            if requested == "MeterValues":
                payload["connectorId"] = 2
            result = await csms.call("TriggerMessage", payload)
            assert result.payload == {"status": "Accepted"}, requested
            call = await csms.expect(requested, since=m, timeout=3)
            if requested == "StatusNotification":
                await csms.wait(lambda: len(csms.calls("StatusNotification", m)) == 3, timeout=3)
            kinds = [(e[0], getattr(e[1], "action", None)) for e in csms.events[m:]]
            assert kinds.index(("result", None)) < kinds.index(("call", requested)), kinds
            if requested == "MeterValues":
                assert call.payload["connectorId"] == 2
                assert {s["context"] for s in call.payload["meterValue"][0]["sampledValue"]} == {"Trigger"}
            if requested in ("FirmwareStatusNotification", "DiagnosticsStatusNotification"):
                assert call.payload == {"status": "Idle"}
        m = csms.mark()
        await csms.call("TriggerMessage", {"requestedMessage": "StatusNotification"})
        await csms.wait(lambda: len(csms.calls("StatusNotification", m)) == 3, timeout=3)
        assert [c.payload["connectorId"] for c in csms.calls("StatusNotification", m)] == [0, 1, 2]
        m = csms.mark()
        await csms.call("TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 2})
        await csms.wait(lambda: len(csms.calls("StatusNotification", m)) == 1, timeout=3)
        assert csms.calls("StatusNotification", m)[0].payload["connectorId"] == 2
        result = await csms.call("TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 5})
        assert result.payload == {"status": "Rejected"}
        assert_valid(csms)


@pytest.mark.asyncio
async def test_configuration_over_ocpp(csms: MiniCsms, certs_dir: Path) -> None:
    async with running(csms, certs_dir):
        await booted(csms)
        assert await configure(csms, "MeterValuesSampledData", "Energy.Active.Import.Register,Power.Active.Import") == "Accepted"
        assert await configure(csms, "MeterValuesSampledData", "Energy.Active.Import.Register,RPM") == "Rejected"
        assert await configure(csms, "MeterValueSampleInterval", "60") == "Accepted"
        assert await configure(csms, "MeterValueSampleInterval", "-5") == "Rejected"
        assert await configure(csms, "NumberOfConnectors", "4") == "Rejected"
        assert await configure(csms, "NoSuchKey", "1") == "NotSupported"
        result = await csms.call("GetConfiguration", {"key": ["MeterValuesSampledData", "MeterValueSampleInterval",
                                                              "AuthorizationKey", "NoSuchKey"]})
        values = {k["key"]: k["value"] for k in result.payload["configurationKey"]}
        assert values == {"MeterValuesSampledData": "Energy.Active.Import.Register,Power.Active.Import",
                          "MeterValueSampleInterval": "60"}
        assert result.payload["unknownKey"] == ["AuthorizationKey", "NoSuchKey"]
        everything = await csms.call("GetConfiguration", {})
        keys = {k["key"] for k in everything.payload["configurationKey"]}
        assert "AuthorizationKey" not in keys and "SupportedFeatureProfiles" in keys
        assert KEY not in encode_frame(everything)


@pytest.mark.asyncio
async def test_new_authorization_key_reconnects(certs_dir: Path) -> None:
    csms = await MiniCsms(certs_dir).start()
    try:
        async with running(csms, certs_dir):
            await booted(csms)
            new_key = "fedcba9876543210fedcba9876543210"
            csms.key = new_key  # the server knows the new key from now on; the old one is refused
            assert await configure(csms, "AuthorizationKey", new_key) == "Accepted"
            await csms.wait(lambda: csms.opens() == 2, timeout=5)
            headers = [e[1] for e in csms.events if e[0] == "open"][-1]
            assert headers["Authorization"] == "Basic " + base64.b64encode(f"{CP_ID}:{new_key}".encode()).decode()
            assert len(csms.calls("BootNotification")) == 1  # a reconnect, not a reboot
            assert await configure(csms, "AuthorizationKey", "short") == "Rejected"
    finally:
        await csms.stop()


@pytest.mark.asyncio
async def test_malformed_requests_get_the_right_callerror(csms: MiniCsms, certs_dir: Path) -> None:
    async with running(csms, certs_dir):
        await booted(csms)
        result = await csms.call("FlyToTheMoon", {})
        assert isinstance(result, CallError) and result.code == "NotImplemented"
        result = await csms.call("ReserveNow", {"connectorId": 1, "expiryDate": _now(), "idTag": "X", "reservationId": 1})
        assert isinstance(result, CallError) and result.code == "NotSupported"
        result = await csms.call("ChangeConfiguration", {"key": "HeartbeatInterval"})
        assert isinstance(result, CallError) and result.code == "OccurenceConstraintViolation"
        result = await csms.call("ChangeConfiguration", {"key": "HeartbeatInterval", "value": 5})
        assert isinstance(result, CallError) and result.code == "TypeConstraintViolation"
        result = await csms.call("Reset", {"type": "Sideways"})
        assert isinstance(result, CallError) and result.code == "PropertyConstraintViolation"
        result = await csms.call("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "5", "extra": 1})
        assert isinstance(result, CallError) and result.code == "FormationViolation"
        await csms.send_raw('[2,"raw-1","Heartbeat",[]]')
        err = await csms.result_for("raw-1")
        assert isinstance(err, CallError) and err.code == "FormationViolation"
        await csms.send_raw('[2,"raw-2","Heartbeat",{]')
        err = await csms.result_for("raw-2")
        assert isinstance(err, CallError) and err.code == "FormationViolation"
        await csms.send_raw('[7,"raw-3",{}]')  # unknown message type: ignored (OCPP-J §4.1.3)
        result = await csms.call("DataTransfer", {"vendorId": "someone.else"})
        assert result.payload == {"status": "UnknownVendorId"}
        assert not any(getattr(e[1], "unique_id", None) == "raw-3" for e in csms.events)


@pytest.mark.asyncio
async def test_defect_is_observable(csms: MiniCsms, certs_dir: Path) -> None:
    async with running(csms, certs_dir, defects=frozenset({"rejects-sample-interval", "trigger-status-silent"})):
        await booted(csms)
        assert await configure(csms, "MeterValueSampleInterval", "1") == "Rejected"
        assert await configure(csms, "HeartbeatInterval", "30") == "Accepted"
        m = csms.mark()
        result = await csms.call("TriggerMessage", {"requestedMessage": "StatusNotification"})
        assert result.payload == {"status": "Accepted"}
        result = await csms.call("TriggerMessage", {"requestedMessage": "Heartbeat"})  # a marker that comes later
        await csms.expect("Heartbeat", since=m, timeout=3)
        assert not csms.calls("StatusNotification", m)


@pytest.mark.asyncio
async def test_variant_current_voltage_and_kw(csms: MiniCsms, certs_dir: Path) -> None:
    async with running(csms, certs_dir, defects=frozenset({"current-voltage", "kw-units", "single-phase"})) as charger:
        await booted(csms)
        assert await configure(csms, "MeterValuesSampledData", "Energy.Active.Import.Register,Power.Active.Import") == "Rejected"
        assert await configure(csms, "MeterValuesSampledData", "Energy.Active.Import.Register,Current.Import,Voltage") == "Accepted"
        await charger.plugin(1)
        await charger.authorize("T", 1)
        m = csms.mark()
        result = await csms.call("TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 1})
        assert result.payload["status"] == "Accepted"
        call = await csms.expect("MeterValues", since=m)
        svs = call.payload["meterValue"][0]["sampledValue"]
        assert {(s["measurand"], s["unit"], s.get("phase")) for s in svs} == {
            ("Energy.Active.Import.Register", "kWh", None), ("Current.Import", "A", "L1"), ("Voltage", "V", "L1-N")}


# --- offline, reboot --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_offline_queue_in_order_once(csms: MiniCsms, certs_dir: Path) -> None:
    async with running(csms, certs_dir) as charger:
        await booted(csms)
        assert await configure(csms, "MeterValueSampleInterval", "1") == "Accepted"
        await charger.plugin(1)
        await charger.authorize("TAG-OFF", 1)
        await csms.expect("StartTransaction")
        await csms.expect("MeterValues")
        await charger.network(False)
        await csms.wait(lambda: csms.events[-1][0] == "close", timeout=3)
        offline_mark = csms.mark()
        # Samples made offline wait in the charger's queue.
        await charger.wait_for(lambda: len(charger.tx_queue) >= 2, timeout=4)
        await charger.plugout(1)
        assert len(charger.tx_queue) >= 3 and list(charger.tx_queue)[-1].action == "StopTransaction"
        queued = [m.action for m in charger.tx_queue]
        await charger.network(True)
        stop = await csms.expect("StopTransaction", since=offline_mark, timeout=5)
        delivered = [c for c in csms.calls(since=offline_mark) if c.action in spec16.TRANSACTION_MESSAGES]
        assert [c.action for c in delivered] == queued
        assert [c.action for c in csms.calls(since=offline_mark)][0] != "BootNotification"
        tx_id = stop.payload["transactionId"]
        assert all(c.payload["transactionId"] == tx_id for c in delivered)
        stamps = [c.payload["meterValue"][0]["timestamp"] for c in delivered if c.action == "MeterValues"]
        assert len(stamps) == len(set(stamps)) and stamps == sorted(stamps)
        await charger.wait_for(lambda: len(charger.tx_queue) == 0, timeout=3)
        assert_legal(csms)


@pytest.mark.asyncio
async def test_transaction_started_offline_gets_its_id_rewritten(csms: MiniCsms, certs_dir: Path) -> None:
    async with running(csms, certs_dir) as charger:
        await booted(csms)
        charger.configuration.change("AllowOfflineTxForUnknownId", "true")
        await charger.network(False)
        await csms.wait(lambda: csms.events[-1][0] == "close", timeout=3)
        m = csms.mark()
        await charger.plugin(1)
        await charger.authorize("OFFLINE-TAG", 1)
        await charger.wait_for(lambda: charger.model.connector(1).transaction is not None, timeout=3)
        await charger.plugout(1)
        assert [q.action for q in charger.tx_queue] == ["StartTransaction", "StopTransaction"]
        await charger.network(True)
        start = await csms.expect("StartTransaction", since=m)
        stop = await csms.expect("StopTransaction", since=m)
        assert start.payload["idTag"] == "OFFLINE-TAG"
        assert stop.payload["transactionId"] == csms.last_tx_id


@pytest.mark.asyncio
async def test_reboot_boots_again_and_keeps_the_meter(csms: MiniCsms, certs_dir: Path) -> None:
    async with running(csms, certs_dir) as charger:
        await booted(csms)
        await charger.plugin(1)
        await charger.authorize("TAG-R", 1)
        start = await csms.expect("StartTransaction")
        m = csms.mark()
        await charger.reboot()
        await csms.wait(lambda: len(csms.calls("BootNotification")) == 2, timeout=5)
        stop = await csms.expect("StopTransaction", since=m)
        assert stop.payload["reason"] == "PowerLoss"
        assert stop.payload["meterStop"] >= start.payload["meterStart"]
        await csms.expect("StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] == "Finishing", since=m)
        assert_legal(csms)


# --- firmware and diagnostics over real HTTP --------------------------------------------------------


class _FileServer:
    """A plain-HTTP file server (aiohttp): GET serves *.bin, PUT stores; under /form/ PUT is refused (405) and a
    multipart POST stores each file, as servers that take uploads by form do."""

    def __init__(self) -> None:
        self.uploads: dict[str, bytes] = {}
        self.fetched: list[str] = []
        self.base = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET":
            self.fetched.append(request.path)
            return web.Response(body=b"FIRMWARE" * 100) if request.path.endswith(".bin") else web.Response(status=404)
        if request.method == "PUT" and not request.path.startswith("/form/"):
            self.uploads[request.path] = await request.read()
            return web.Response(status=201)
        if request.method == "POST" and request.path.startswith("/form/"):
            async for part in await request.multipart():
                if isinstance(part, BodyPartReader) and part.filename:
                    self.uploads[request.path.rstrip("/") + "/" + part.filename] = await part.read()
            return web.Response(status=200)
        return web.Response(status=405)


@pytest_asyncio.fixture
async def file_server() -> AsyncIterator[_FileServer]:
    server = _FileServer()
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", server.handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    server.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_firmware_update_and_diagnostics(csms: MiniCsms, certs_dir: Path, file_server: _FileServer) -> None:
    base = file_server.base
    async with running(csms, certs_dir):
        await booted(csms)
        m = csms.mark()
        result = await csms.call("GetDiagnostics", {"location": f"{base}/upload/"})
        name = result.payload["fileName"]
        await csms.expect("DiagnosticsStatusNotification", lambda p: p["status"] == "Uploaded", since=m)
        assert [c.payload["status"] for c in csms.calls("DiagnosticsStatusNotification", m)] == ["Uploading", "Uploaded"]
        assert b"firmware 1.0.0" in file_server.uploads[f"/upload/{name}"]
        m = csms.mark()  # a server that refuses the PUT (405) gets a multipart POST of the file
        result = await csms.call("GetDiagnostics", {"location": f"{base}/form/"})
        await csms.expect("DiagnosticsStatusNotification", lambda p: p["status"] == "Uploaded", since=m)
        assert b"firmware 1.0.0" in file_server.uploads[f"/form/{result.payload['fileName']}"]
        m = csms.mark()
        result = await csms.call("UpdateFirmware", {"location": f"{base}/missing.img", "retrieveDate": _now()})
        assert result.payload == {}
        await csms.expect("FirmwareStatusNotification", lambda p: p["status"] == "DownloadFailed", since=m)
        m = csms.mark()
        await csms.call("UpdateFirmware", {"location": f"{base}/fw-2.4.1.bin", "retrieveDate": _now()})
        boot = await csms.expect("BootNotification", since=m)
        assert [c.payload["status"] for c in csms.calls("FirmwareStatusNotification", m)] == [
            "Downloading", "Downloaded", "Installing", "Installed"]
        assert boot.payload["firmwareVersion"] == "2.4.1"
        assert "/fw-2.4.1.bin" in file_server.fetched


# --- security ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_security_profile_3_uses_the_client_certificate(certs_dir: Path) -> None:
    csms = await MiniCsms(certs_dir, client_certs=True).start()
    cert, key = csms.store.issue_client_cert(CP_ID)
    try:
        async with running(csms, certs_dir, security_profile=3, client_cert=(str(cert), str(key))):
            await booted(csms)
            headers = csms.events[0][1]
            assert "Authorization" not in headers
            peer = csms.ws.transport.get_extra_info("ssl_object").getpeercert()
            assert dict(x[0] for x in peer["subject"])["commonName"] == CP_ID
    finally:
        await csms.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["untrusted-ca", "expired", "wrong-host"])
async def test_bad_server_certificate_is_refused_then_good_one_accepted(certs_dir: Path, kind: str) -> None:
    csms = await MiniCsms(certs_dir).start()
    csms.presented = csms.store.bad_server_context(kind)
    try:
        async with running(csms, certs_dir, reconnect_backoff_max=0.3) as charger:
            await csms.wait(lambda: csms.handshakes >= 3, timeout=5)  # it tried, refused, tried again
            assert csms.opens() == 0 and not charger.connected
            csms.presented = None
            await booted(csms)  # it reconnects by itself
    finally:
        await csms.stop()


@pytest.mark.asyncio
async def test_no_cert_check_defect_connects_to_a_bad_certificate(certs_dir: Path) -> None:
    csms = await MiniCsms(certs_dir).start()
    csms.presented = csms.store.bad_server_context("untrusted-ca")
    try:
        async with running(csms, certs_dir, defects=frozenset({"no-cert-check"})):
            await booted(csms)
    finally:
        await csms.stop()


def test_transport_defects_are_where_firmware_keeps_them(certs_dir: Path) -> None:
    def charger(*defects: str) -> ReferenceCharger:
        return ReferenceCharger(SimConfig(url="wss://127.0.0.1:1/ocpp", charge_point_id="CP/1", authorization_key=KEY,
                                          ca_file=str(tls.CertStore(certs_dir).ca_pem), defects=frozenset(defects)))

    good = charger()
    assert good._url() == "wss://127.0.0.1:1/ocpp/CP%2F1"
    ctx = good._ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert set(tls.POLICY_SUITES) & {c["name"] for c in ctx.get_ciphers()}
    assert good._headers()["Authorization"] == "Basic " + base64.b64encode(f"CP/1:{KEY}".encode()).decode()
    assert charger("plain-ws")._url().startswith("ws://")
    assert charger("tls13-only")._ssl_context().minimum_version == ssl.TLSVersion.TLSv1_3
    weird = charger("non-policy-ciphers")._ssl_context()
    offered = {c["name"] for c in weird.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert offered and not offered & set(tls.POLICY_SUITES)
    assert charger("no-basic-auth")._headers() == {}

    def credentials(*defects: str) -> bytes:
        return base64.b64decode(charger(*defects)._headers()["Authorization"].removeprefix("Basic "))

    assert credentials("basic-auth-wrong-user") == f"ocpp:{KEY}".encode()
    assert credentials("basic-auth-wrong-key") == f"CP/1:{KEY[:-1]}".encode()
    assert credentials("basic-auth-decoded-key") == b"CP/1:" + bytes.fromhex(KEY)
    assert charger("no-cert-check")._ssl_context().verify_mode == ssl.CERT_NONE


def test_frames_are_logged_without_the_authorization_key() -> None:
    from harness.sim.common import _redact

    text = '[2,"1","ChangeConfiguration",{"key":"AuthorizationKey","value":"s3cr3t-0123456789"}]'
    assert "s3cr3t" not in _redact(text) and '"value":"***"' in _redact(text)
    assert _redact('[2,"1","Heartbeat",{}]') == '[2,"1","Heartbeat",{}]'
