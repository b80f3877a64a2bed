"""Scripted chargers that misbehave, for the fault matrix (tests/test_fault_matrix.py).

Each is a real client on 127.0.0.1: TLS 1.2 to the harness's endpoint, HTTP Basic auth with the
charge point id and its AuthorizationKey, subprotocol ocpp1.6. A `ScriptedCharger` boots, reports
its connectors Available and answers the platform's CALLs correctly, except the CALL whose action
is its *trigger* (DataTransfer by default): there it does what its behaviour says.

    silent        never answers it
    late          answers it only after the harness gave up: when the harness's next CALL arrives
                  (or when the test calls release()), the stale answer goes first
    wrong-id      answers it with a CALLRESULT carrying another message id
    callerror     answers it with a CALLERROR (InternalError)
    disconnect    drops the TCP connection instead of answering (no close frame), then reconnects
    invalid-utf8  answers with a text frame that is not UTF-8 (websockets closes with 1007), reconnects
    non-json      answers with a text frame that is not JSON
    huge-frame    answers with a single 16 MiB text frame (the endpoint's limit is 1 MiB), reconnects
    flood         sends 10,000 Heartbeats back to back without waiting for answers, then answers it

Connection-level faults (no OCPP session at all): `stall_tls` (TCP connect, half a ClientHello,
then nothing), `tls_without_upgrade` (TLS completes, no HTTP request ever), and never connecting.
`ScriptedBackend` puts any of them behind the `charger_backend` fixture for pytester runs.

No fixed sleeps: the "late" answer is released by an event (the next CALL, or the test).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import ssl
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from harness import tls
from harness.drivers.base import ActNotSupported, ChargerBackend, EndpointInfo
from tests.helpers import basic

TRIGGER = "DataTransfer"
BEHAVIOURS = (
    "good", "silent", "late", "wrong-id", "callerror", "disconnect", "invalid-utf8", "non-json", "huge-frame", "flood",
)
CONNECTION_FAULTS = ("never-connects", "tls-stall", "no-upgrade")
HUGE = 16 * 1024 * 1024
FLOOD = 10_000


@dataclass(frozen=True)
class Target:
    """Where a scripted charger dials: the endpoint's base URL (wss://host:port/ocpp) and its credentials."""

    url: str
    charger_id: str
    key: str | None
    ca_file: str

    @classmethod
    def of(cls, info: EndpointInfo) -> Target:
        return cls(info.url, info.charger_id, info.authorization_key, info.ca_file)

    @property
    def charger_url(self) -> str:
        return f"{self.url.rstrip('/')}/{urllib.parse.quote(self.charger_id, safe='')}"

    @property
    def host_port(self) -> tuple[str, int]:
        parsed = urllib.parse.urlsplit(self.url)
        assert parsed.hostname is not None and parsed.port is not None
        return parsed.hostname, parsed.port

    def context(self) -> ssl.SSLContext:
        return tls.client_context(self.ca_file)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class ScriptedCharger:
    """A WSS charge point whose script misbehaves on one action (see the module docstring)."""

    def __init__(
        self, target: Target, behaviour: str = "good", *, trigger: str = TRIGGER, reconnect: bool = True,
        flood: int = FLOOD, huge: int = HUGE,
    ) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; known: {', '.join(BEHAVIOURS)}")
        self.target = target
        self.behaviour = behaviour
        self.trigger = trigger
        self.reconnect = reconnect
        self.flood = flood
        self.huge = huge
        self.ws: ClientConnection | None = None
        self.connections = 0
        self.booted = asyncio.Event()
        self.triggered = asyncio.Event()  # the misbehaviour happened
        self.flooded = asyncio.Event()  # every flood frame is on the wire
        self.received: list[Any] = []  # CALLs from the platform, as parsed JSON
        self._late: list[str] = []  # stale answers held back by "late"
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._wake = asyncio.Event()

    # --- life cycle ----------------------------------------------------------------------------

    async def start(self) -> ScriptedCharger:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"scripted-{self.behaviour}")
        return self

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 2)
        for task in [self._task, *self._tasks]:
            if task is not None:
                task.cancel()
        pending = [t for t in [self._task, *self._tasks] if t is not None]
        if pending:
            await asyncio.wait(pending, timeout=3)

    async def __aenter__(self) -> ScriptedCharger:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_booted(self, within: float = 5.0) -> None:
        await asyncio.wait_for(self.booted.wait(), within)

    def release(self) -> None:
        """"late": send the held-back answers now."""
        self._spawn(self._flush_late())

    # --- the script ----------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                ws = await connect(
                    self.target.charger_url,
                    ssl=self.target.context(),
                    subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                    additional_headers=basic(self.target.charger_id, self.target.key or ""),
                    open_timeout=5,
                    max_size=None,
                    ping_interval=None,
                )
            except (OSError, InvalidHandshake, TimeoutError):
                if self._stopping or not self.reconnect:
                    return
                # A refused attempt: wait to be told to try again (stop()), never spin.
                self._wake.clear()
                await self._wake.wait()
                continue
            self.ws = ws
            self.connections += 1
            try:
                await self._session(ws)
            except (ConnectionClosed, TimeoutError):
                pass  # the link went, or the platform never answered the boot: start over
            finally:
                self.ws = None
            if self._stopping or not self.reconnect:
                return

    async def _session(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        reader = loop.create_task(self._reader(ws))
        self._tasks.add(reader)
        try:
            if not self.booted.is_set():
                # The platform may start sending as soon as the boot is Accepted: the reader runs meanwhile,
                # and if it ends (the script dropped the connection) the boot sequence ends with it.
                boot = loop.create_task(self._boot(ws))
                await asyncio.wait([boot, reader], return_when=asyncio.FIRST_COMPLETED)
                if not boot.done():
                    boot.cancel()
                    return
                boot.result()
            await reader
        finally:
            reader.cancel()
            self._tasks.discard(reader)

    async def _boot(self, ws: ClientConnection) -> None:
        await self._call(ws, "BootNotification", {"chargePointVendor": "Scripted", "chargePointModel": "Fault"})
        for connector in (0, 1):
            await self._call(
                ws, "StatusNotification",
                {"connectorId": connector, "errorCode": "NoError", "status": "Available", "timestamp": _now()},
            )
        self.booted.set()

    async def _call(self, ws: ClientConnection, action: str, payload: dict[str, Any]) -> None:
        """A CALL of the charger's own; its answer is read (and ignored) by the reader."""
        uid = uuid.uuid4().hex[:20]
        self._answered = asyncio.get_running_loop().create_future()
        self._awaiting = uid
        await ws.send(json.dumps([2, uid, action, payload]))
        await asyncio.wait_for(self._answered, 5)

    _awaiting: str | None = None
    _answered: asyncio.Future[None] | None = None

    async def _reader(self, ws: ClientConnection) -> None:
        async for message in ws:
            try:
                frame = json.loads(message)
            except ValueError:
                continue
            if not isinstance(frame, list) or len(frame) < 3:
                continue
            if frame[0] in (3, 4):
                if frame[1] == self._awaiting and self._answered is not None and not self._answered.done():
                    self._answered.set_result(None)
                continue
            if frame[0] != 2:
                continue
            self.received.append(frame)
            if self._late:
                await self._flush_late()  # "late": the harness moved on; the stale answers go first
            if frame[2] == self.trigger and self.behaviour != "good":
                self.triggered.set()
                await self._misbehave(ws, frame)
                if self.behaviour in ("disconnect", "invalid-utf8", "huge-frame"):
                    return
                continue
            await ws.send(json.dumps([3, frame[1], self._good_answer(frame[2], frame[3])]))

    @staticmethod
    def _good_answer(action: str, payload: Any) -> dict[str, Any]:
        answers: dict[str, dict[str, Any]] = {
            "GetConfiguration": {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]},
            "ChangeConfiguration": {"status": "Accepted"},
            "DataTransfer": {"status": "Accepted"},
            "TriggerMessage": {"status": "Rejected"},
            "RemoteStartTransaction": {"status": "Rejected"},
            "RemoteStopTransaction": {"status": "Rejected"},
            "ClearChargingProfile": {"status": "Unknown"},
        }
        return answers.get(action, {})

    async def _misbehave(self, ws: ClientConnection, frame: list[Any]) -> None:
        uid, action = frame[1], frame[2]
        good = json.dumps([3, uid, self._good_answer(action, frame[3])])
        behaviour = self.behaviour
        if behaviour == "silent":
            return
        if behaviour == "late":
            self._late.append(good)
        elif behaviour == "wrong-id":
            await ws.send(json.dumps([3, "not-" + uid[:30], self._good_answer(action, frame[3])]))
        elif behaviour == "callerror":
            await ws.send(json.dumps([4, uid, "InternalError", "scripted failure", {}]))
        elif behaviour == "disconnect":
            ws.transport.abort()  # no close frame: the link just goes
        elif behaviour == "invalid-utf8":
            await ws.send(b'[3,"' + uid.encode() + b'",{"status":"Accepted\xff\xfe"}]', text=True)
            await ws.wait_closed()
        elif behaviour == "non-json":
            await ws.send("this is not JSON {" + uid)
        elif behaviour == "huge-frame":
            await send_huge_text_frame(ws, self.huge)
            await ws.wait_closed()
        elif behaviour == "flood":
            for n in range(self.flood):
                await ws.send(f'[2,"flood-{n}","Heartbeat",{{}}]')
            self.flooded.set()
            await ws.send(good)

    async def _flush_late(self) -> None:
        ws, held, self._late = self.ws, self._late, []
        if ws is None:
            return
        for text in held:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(text)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def send_huge_text_frame(ws: ClientConnection, size: int, chunk: int = 64 * 1024) -> int:
    """One text frame announcing `size` payload bytes, streamed in chunks with flow control.

    Written straight onto the transport (FIN + text opcode, 64-bit length, masking key 0 so the
    masked bytes are the bytes), so neither side ever holds the whole frame: what the test
    measures is the endpoint, not this client. Returns the payload bytes written before the
    endpoint closed the connection.
    """
    transport = ws.transport
    transport.write(bytes([0x81, 0x80 | 127]) + size.to_bytes(8, "big") + b"\x00\x00\x00\x00")
    block = b"x" * chunk
    sent = 0
    while sent < size and not transport.is_closing():
        transport.write(block[: min(chunk, size - sent)])
        sent += min(chunk, size - sent)
        try:
            await ws.drain()
        except (ConnectionError, OSError):
            break
    return sent


# --- connection-level faults -----------------------------------------------------------------


async def stall_tls(target: Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """TCP connect, send the first half of a real ClientHello, then nothing: the caller holds the socket."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    hello_maker = target.context().wrap_bio(incoming, outgoing, server_hostname=target.host_port[0])
    with contextlib.suppress(ssl.SSLWantReadError):
        hello_maker.do_handshake()
    hello = outgoing.read()
    reader, writer = await asyncio.open_connection(*target.host_port)
    writer.write(hello[: len(hello) // 2])
    await writer.drain()
    return reader, writer


async def tls_without_upgrade(target: Target) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """TCP connect and a complete TLS 1.2 handshake, then no HTTP request ever."""
    host, port = target.host_port
    return await asyncio.open_connection(host, port, ssl=target.context(), server_hostname=host)


class ScriptedBackend(ChargerBackend):
    """The `charger_backend` of a pytester run: a scripted charger, or a connection-level fault.

    It has no physical acts (they make a test "not tested").
    """

    name = "scripted"

    def __init__(self, behaviour: str) -> None:
        if behaviour not in BEHAVIOURS + CONNECTION_FAULTS:
            raise ValueError(f"unknown behaviour {behaviour!r}")
        self.behaviour = behaviour
        self.charger: ScriptedCharger | None = None
        self._held: list[asyncio.StreamWriter] = []

    async def start(self, endpoint: EndpointInfo) -> None:
        target = Target.of(endpoint)
        if self.behaviour == "never-connects":
            return
        if self.behaviour == "tls-stall":
            self._held.append((await stall_tls(target))[1])
        elif self.behaviour == "no-upgrade":
            self._held.append((await tls_without_upgrade(target))[1])
        else:
            self.charger = await ScriptedCharger(target, self.behaviour).start()

    async def stop(self) -> None:
        if self.charger is not None:
            await self.charger.stop()
        for writer in self._held:
            writer.close()

    async def _no(self, act: str) -> None:
        raise ActNotSupported(act, "a scripted charger has no physical side")

    async def plugin(self, connector: int = 1) -> None:
        await self._no("plugin")

    async def plugout(self, connector: int = 1) -> None:
        await self._no("plugout")

    async def authorize(self, id_tag: str, connector: int = 1) -> None:
        await self._no("authorize")

    async def ev_suspend(self, suspended: bool, connector: int = 1) -> None:
        await self._no("ev_suspend")

    async def fault(self, faulted: bool, connector: int = 1) -> None:
        await self._no("fault")

    async def reboot(self) -> None:
        await self._no("reboot")

    async def network(self, online: bool) -> None:
        await self._no("network")


__all__ = [
    "BEHAVIOURS", "CONNECTION_FAULTS", "FLOOD", "HUGE", "TRIGGER", "ScriptedBackend", "ScriptedCharger", "Target",
    "send_huge_text_frame", "stall_tls", "tls_without_upgrade",
]
