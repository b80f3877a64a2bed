"""The reference charger: a conformant OCPP 1.6J AC charge point with EVs, meters and smart charging.

It behaves as a good real charger does under OCPP 1.6 edition 2, OCPP-J 1.6 and the security
whitepaper, not as any particular test expects:

- connection: WSS with the server certificate checked against the given CA (chain and host name),
  Basic Auth (profile 2) or a client certificate (profile 3), subprotocol ocpp1.6, reconnection with
  bounded exponential backoff and jitter;
- §4.2 BootNotification at every boot (not at a mere reconnect), nothing else before Accepted except
  answers and triggered messages while Pending, Pending/Rejected retried after their interval;
- one outstanding CALL at a time; transaction messages queued (also offline) and delivered in order,
  each once (§3.7, offline.py); the central system's CALLs are answered concurrently;
- malformed requests answered with the OCPP-J §4.2.3 error code (ocppj.py), never a crash.

Each injected defect (defects.py) is a single flag check at the place the bug would live.
Physical acts (plug, card, pause, fault, power cycle, network) are methods; they return once done.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import itertools
import logging
import math
import os
import random
import re
import ssl
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aioftp
import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from harness import spec16
from harness.ocppj import (
    Call,
    CallError,
    CallResult,
    FrameError,
    UnknownMessageType,
    encode_frame,
    encode_json,
    parse_frame,
    schemas,
)
from harness.sim import defects as defects_mod
from harness.sim.defects import DefectName
from harness.sim.configuration import (
    CURRENT_VOLTAGE_MEASURANDS,
    SUPPORTED_MEASURANDS,
    Configuration,
    standard_configuration,
)
from harness.sim.model import EV, ChargePointModel, Snapshot, StatusChange, Transaction
from harness.sim.offline import QueuedMessage, TransactionQueue, TxRef
from harness.sim.smart_charging import ChargingProfileStore

log = logging.getLogger("harness.sim.charger")
frame_log = logging.getLogger("harness.sim.frames")

SUBPROTOCOL = "ocpp1.6"
# Cipher suites of the "non-policy-ciphers" defect: TLS 1.2 suites outside ELBSecurityPolicy-TLS-1-2-Ext-2018-06.
NON_POLICY_CIPHERS = (
    "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
)
STALE_CLOCK_OFFSET = dt.timedelta(minutes=10)
# The "slow-hardware" variant's reaction times (s): real hardware's, within what the quick mode's bounds allow.
SLOW_HARDWARE = {"limit_delay": 3.0, "install_time": 5.0, "power_on_delay": 2.0}
MAX_DOWNLOAD = 64 * 1024 * 1024
# CALLERROR codes that refuse a malformed request (not an unknown or unsupported action): ADV-1 defects.
_MALFORMED_REQUEST_CODES = frozenset(
    {"FormationViolation", "ProtocolError", "OccurenceConstraintViolation", "TypeConstraintViolation"}
)
_CALL_ID_RE = re.compile(r'^\s*\[\s*2\s*,\s*"([^"\\]{1,36})"')
_AUTH_KEY_VALUE_RE = re.compile(r'("value"\s*:\s*")((?:[^"\\]|\\.)*)(")')


class CallErrorReceived(Exception):
    def __init__(self, error: CallError) -> None:
        super().__init__(f"{error.code}: {error.description}")
        self.error = error


class NotConnected(ConnectionError):
    pass


@dataclass
class SimConfig:
    """Everything a reference charger needs; the defaults are a typical 22 kW three-phase wallbox."""

    url: str  # wss://host:port/ocpp (the charge point id is appended)
    charge_point_id: str
    authorization_key: str | None = None
    ca_file: str | None = None
    client_cert: tuple[str, str] | None = None  # (cert, key) for security profile 3
    security_profile: int = 2
    connectors: int = 1
    phases: int = 3
    voltage: float = 230.0
    max_current: float = 32.0
    vendor: str = "ev.energy"
    model: str = "RefCharger-22"
    serial: str | None = None  # default: the charge point id (at most 25 characters)
    firmware_version: str = "1.0.0"
    meter_type: str = "SimMeter 3P"
    defects: frozenset[str] = frozenset()
    # the EV plugged in by plugin()
    ev_phases: int = 3
    ev_max_current: float = 32.0
    ev_battery_wh: float = 60_000.0
    ev_soc: float = 50.0
    meter_start_wh: float = 1_000_000.0
    fault_error_code: str = "GroundFailure"  # errorCode of a fault raised without one
    # configuration defaults before the central system changes them
    heartbeat_interval: int = 300
    meter_value_sample_interval: int = 60
    transaction_message_attempts: int = 3
    transaction_message_retry_interval: int = 2
    connection_timeout: int = 60
    # timing knobs (quick by default: the harness sets the protocol intervals it wants)
    reconnect_backoff_min: float = 0.2
    reconnect_backoff_max: float = 3.0
    boot_retry_default: float = 5.0  # Pending/Rejected with interval 0
    # Reaction times, short so quick runs wait for nothing; non-zero to keep a real charger's order
    # (answer first, then the effect). The "slow-hardware" variant sets realistic ones.
    limit_delay: float = 0.02  # from a SetChargingProfile/ClearChargingProfile answer to the EV drawing the new current
    call_timeout: float = 20.0
    open_timeout: float = 10.0
    slow_response_delay: float = 1.0  # the "slow-responses" variant
    power_on_delay: float = 0.02  # from power-on (start or reboot) to the first connection attempt
    install_time: float = 0.02  # firmware installation
    late_defect_delay: float = 0.3  # defects that act late (after the test that provoked them has ended)
    late_flush_delay: float = 60.0  # the "late-queue-flush" variant: its offline queue goes out this long after reconnecting
    soft_reset_timeout: float = 5.0  # waiting for StopTransactions before a soft reset
    tick: float = 0.5  # physics: SoC and time-dependent schedules are re-evaluated at least this often
    transfer_timeout: float = 30.0  # firmware download, diagnostics upload

    def __post_init__(self) -> None:
        self.defects = defects_mod.validate(self.defects)
        if self.security_profile not in (1, 2, 3):
            raise ValueError("security_profile must be 1, 2 or 3")
        if self.connectors < 1 or self.phases not in (1, 2, 3):
            raise ValueError("connectors >= 1 and phases 1..3")
        # Conformant variants that are hardware, not firmware.
        if DefectName.TWO_CONNECTORS in self.defects:
            self.connectors = max(2, self.connectors)
        if DefectName.SINGLE_PHASE in self.defects:
            self.phases = 1
        if DefectName.SLOW_HARDWARE in self.defects:
            # IEC 61851-1 gives the EV up to 5 s to follow a new current offer; flashing and booting take seconds.
            self.limit_delay = max(self.limit_delay, SLOW_HARDWARE["limit_delay"])
            self.install_time = max(self.install_time, SLOW_HARDWARE["install_time"])
            self.power_on_delay = max(self.power_on_delay, SLOW_HARDWARE["power_on_delay"])


@dataclass(eq=False)
class _Outgoing:
    """A non-transaction message waiting to be sent (volatile: lost at power-off)."""

    key: tuple[int, int]  # (priority, sequence): lower goes first
    action: str
    payload: dict[str, Any]
    future: asyncio.Future[dict[str, Any]] | None = None
    triggered: bool = False  # may go out while Pending (§4.2.1, §5.17)
    keep_offline: bool = False  # status-like: kept and delivered after reconnecting
    on_result: Callable[[dict[str, Any]], None] | None = None


@dataclass
class _TxState:
    sampler: asyncio.Task[None] | None = None
    aligned: list[dict[str, Any]] = field(default_factory=list)  # StopTxnAlignedData meter values
    stop_tag: str | None = None
    last_power_w: float = 0.0  # the "power-not-zero-when-suspended" defect's stale reading


Handler = Callable[[dict[str, Any]], Awaitable[tuple[dict[str, Any], Callable[[], object] | None]]]


class ReferenceCharger:
    """One simulated charge point. Create, `await start()`, drive with the physical acts, `await stop()`."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.defects = config.defects
        self.id = config.charge_point_id
        # --- persistent state: survives reboots and disconnects -------------------------------
        # A Current+Voltage meter (the variant, and the defect that forgets its voltage channel) has no power.
        cv_meter = self._variant(DefectName.CURRENT_VOLTAGE) or DefectName.CURRENT_WITHOUT_VOLTAGE in self.defects
        measurands = CURRENT_VOLTAGE_MEASURANDS if cv_meter else SUPPORTED_MEASURANDS
        self.supported_measurands = frozenset(measurands)
        # The "power-rate-unit" variant: smart charging in W only (ChargingScheduleAllowedChargingRateUnit = Power).
        rate_units = ("Power",) if self._variant(DefectName.POWER_RATE_UNIT) else ("Current", "Power")
        self.configuration: Configuration = standard_configuration(
            connectors=config.connectors,
            measurands=measurands,
            authorization_key=config.authorization_key,
            security_profile=config.security_profile,
            heartbeat_interval=config.heartbeat_interval,
            meter_value_sample_interval=config.meter_value_sample_interval,
            transaction_message_attempts=config.transaction_message_attempts,
            transaction_message_retry_interval=config.transaction_message_retry_interval,
            connection_timeout=config.connection_timeout,
            allowed_rate_units=rate_units,
        )
        self.configuration.listeners.append(self._on_config_change)
        self.model = ChargePointModel(
            connectors=config.connectors, phases=config.phases, voltage=config.voltage,
            max_current=config.max_current, meter_start_wh=config.meter_start_wh, defects=config.defects,
            now=time.monotonic(),
        )
        self.profiles = ChargingProfileStore(
            config.connectors, voltage=config.voltage, phases=config.phases, rated_max_amps=config.max_current,
            allowed_units=tuple(spec16.RATE_UNIT_WORDS[w] for w in rate_units),
        )
        self.tx_queue = TransactionQueue()
        self._resend_after_stop: set[int] = set()  # the "resends-after-stop" defect: transactions (by TxRef id) to replay
        self.firmware_version = config.firmware_version
        self.auth_cache: dict[str, str] = {}  # idTag -> status of its last idTagInfo
        self.boot_count = 0
        self._active_key = config.authorization_key  # the key the connection uses
        self._used_keys = {config.authorization_key}  # every AuthorizationKey it has held (variant "rejects-key-reuse")
        self._seq = itertools.count(1)
        self._network_up = asyncio.Event()
        self._network_up.set()
        self._pending_stop_reason = "PowerLoss"  # why transactions found at boot were interrupted
        # --- volatile state: one power cycle -------------------------------------------------
        self._firmware: asyncio.Task[None] | None = None
        self._running = False
        self._reset_volatile()

    def _reset_volatile(self) -> None:
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._accepted = asyncio.Event()  # BootNotification Accepted in this power cycle
        self.registration: str | None = None
        self._outbox: list[_Outgoing] = []
        self._wake = asyncio.Event()
        self._boot_now = asyncio.Event()
        self._config_event = asyncio.Event()
        self._call_lock = asyncio.Lock()
        self._pending: tuple[str, str, asyncio.Future[dict[str, Any]]] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tx_state: dict[int, _TxState] = {}
        self._boot_sample_interval = self.configuration.int("MeterValueSampleInterval")
        self._deliberate_close = False
        self._connections = 0  # connections in this power cycle (more than one: reconnected without a reboot)
        self._flush_at = 0.0  # monotonic: the "late-queue-flush" variant holds its offline queue until then
        self.firmware_status = "Idle"
        self.diagnostics_status = "Idle"
        self._physics_wake = asyncio.Event()
        self._limits_settle_at = 0.0  # monotonic time from which the EVSE follows the latest profile change
        self._progress = asyncio.Event()  # broadcast: something was sent, acknowledged or changed
        self._disconnected = asyncio.Event()
        self._disconnected.set()
        self._connection_timers: dict[int, asyncio.TimerHandle] = {}
        self._pending_remote: dict[int, dict[str, Any] | None] = {}  # RemoteStart waiting for the EV: its TxProfile
        self.downloaded_firmware: bytes | None = None
        # Defect "falls-silent": the OCPP task is deadlocked (set once its first StatusNotification after an
        # Accepted boot is answered); it neither sends nor handles anything until a power cycle.
        self._hung = False

    def _variant(self, name: DefectName) -> bool:
        return name in self.defects

    # ============================================================================================
    # life cycle
    # ============================================================================================

    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        self._firmware = asyncio.get_running_loop().create_task(self._power_cycle(), name=f"sim-{self.id}")

    async def stop(self) -> None:
        self._running = False
        await self._power_off(graceful=True)

    async def _power_off(self, *, graceful: bool) -> None:
        task, self._firmware = self._firmware, None
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                if graceful:
                    async with asyncio.timeout(2):
                        await ws.close(1001, "charge point going away")
                else:
                    ws.transport.abort()
        for t in list(self._tasks):
            t.cancel()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for handle in self._connection_timers.values():
            handle.cancel()

    def _spawn(self, coro: Awaitable[Any], name: str = "") -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro, name=name or None)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: task %s failed", self.id, task.get_name(), exc_info=task.exception())

    async def _power_cycle(self) -> None:
        """One run of the firmware, from power-on to power-off."""
        self._reset_volatile()
        self.boot_count += 1
        if self._active_key is not None:
            self._active_key = self.configuration.value("AuthorizationKey")  # the firmware reads its key at power-on
        now = time.monotonic()
        # Transactions that were running at power-off end now (§4.10: stop reason PowerLoss, or the reset's).
        reason, self._pending_stop_reason = self._pending_stop_reason, "PowerLoss"
        for tx in self.model.transactions():
            self._stop_transaction(tx.connector_id, reason)
        for cid in self.model.connectors:
            self.model.clear_authorization(cid)  # an idTag presented before the power cut is forgotten
        self.model.update(now)  # the statuses are reported after boot, not as changes
        if self.config.power_on_delay > 0:
            await asyncio.sleep(self.config.power_on_delay)
        self._spawn(self._sender(), "sender")
        self._spawn(self._heartbeats(), "heartbeat")
        self._spawn(self._physics(), "physics")
        self._spawn(self._clock_aligned(), "clock-aligned")
        await self._connection_loop()

    async def _reboot(self, reason: str = "PowerLoss") -> None:
        log.info("%s: rebooting (%s)", self.id, reason)
        self._pending_stop_reason = reason
        # A power cut drops the link; a reboot the firmware decides on closes it properly first.
        await self._power_off(graceful=reason != "PowerLoss")
        if self._running:
            self._firmware = asyncio.get_running_loop().create_task(self._power_cycle(), name=f"sim-{self.id}")

    # ============================================================================================
    # physical acts
    # ============================================================================================

    def _check_connector(self, connector: int, *, allow_zero: bool = False) -> None:
        low = 0 if allow_zero else 1
        if not isinstance(connector, int) or isinstance(connector, bool) or not low <= connector <= len(self.model.connectors):
            raise ValueError(f"connector {connector!r} is not {low}..{len(self.model.connectors)}")

    async def plugin(self, connector: int = 1) -> None:
        self._check_connector(connector)
        now = time.monotonic()
        c = self.model.connector(connector)
        if c.plugged:
            return
        cfg = self.config
        self.model.plug(connector, now, EV(phases=cfg.ev_phases, max_current=cfg.ev_max_current,
                                            battery_wh=cfg.ev_battery_wh, soc=cfg.ev_soc))
        self._cancel_connection_timer(connector)
        tag = c.authorized_tag
        if tag is not None and self.model.can_start(connector):
            remote = connector in self._pending_remote
            self._start_transaction(connector, tag, remote=remote, profile=self._pending_remote.pop(connector, None))
        else:
            self._changed()

    async def plugout(self, connector: int = 1) -> None:
        self._check_connector(connector)
        c = self.model.connector(connector)
        if not c.plugged:
            return
        self._cancel_connection_timer(connector)
        held = False
        if c.transaction is not None and self.configuration.bool("StopTransactionOnEVSideDisconnect"):
            # Firmware bug "unplug-reason-local": every stop not asked for by the platform is reported as Local.
            reason = "Local" if DefectName.UNPLUG_REASON_LOCAL in self.defects else "EVDisconnected"
            # Firmware bug "reserved-after-unplug": an EV-side disconnect runs the stop path of a plugged EV
            # (Finishing is reported), then keeps the connector for its last user: Reserved (§4.9: Finishing →
            # Reserved is illegal), until the next plug-in.
            held = DefectName.RESERVED_AFTER_UNPLUG in self.defects
            # Variant "finishing-on-unplug": the stop is handled before the cable is gone: Finishing, then
            # Available (both legal in §4.9; the reference goes Charging → Available directly).
            self._stop_transaction(connector, reason, report=held or self._variant(DefectName.FINISHING_ON_UNPLUG))
        self.model.unplug(connector, time.monotonic())
        c.held = held
        self._changed()

    async def authorize(self, id_tag: str, connector: int = 1) -> None:
        self._check_connector(connector)
        if not isinstance(id_tag, str) or not 0 < len(id_tag) <= 20:
            raise ValueError("idTag must be 1..20 characters (IdToken, CiString20)")
        c = self.model.connector(connector)
        tx = c.transaction
        if tx is not None:
            if tx.id_tag.lower() == id_tag.lower():  # IdToken is case-insensitive
                self._tx_state_for(connector).stop_tag = id_tag
                self._stop_transaction(connector, "Local")
            else:
                log.info("%s: idTag %s presented at connector %d, busy with %s's session", self.id, id_tag, connector, tx.id_tag)
            return
        self._spawn(self._authorize_flow(connector, id_tag), f"authorize-{connector}")

    async def ev_suspend(self, suspended: bool, connector: int = 1) -> None:
        if self._variant(DefectName.RIG_WITHOUT_EV):  # the bench has no EV simulator that can pause: the act is refused
            from harness.drivers.base import ActNotSupported

            raise ActNotSupported("ev", "this rig's EV cannot pause or resume (no EV simulator on the bench)")
        self._check_connector(connector)
        self.model.ev_pause(connector, bool(suspended), time.monotonic())
        self._changed()

    async def fault(self, faulted: bool, connector: int = 1, error_code: str | None = None) -> None:
        self._check_connector(connector, allow_zero=True)
        code = (error_code or self.config.fault_error_code) if faulted else None
        self.model.set_fault(connector, code, time.monotonic())
        self._changed()

    async def reboot(self) -> None:
        """Power cycle: the firmware stops at once (no graceful stop) and boots again."""
        self._spawn_detached(self._reboot("PowerLoss"))

    async def network(self, online: bool) -> None:
        if online:
            self._network_up.set()
            return
        self._network_up.clear()
        ws = self._ws
        if ws is not None:
            ws.transport.abort()  # the link is gone: no close frame
            # Wait until the session noticed, so nothing is sent after the act returned.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._disconnected.wait()

    def _spawn_detached(self, coro: Awaitable[Any]) -> None:
        """A task outside the firmware's task set (it survives the power cycle it causes)."""
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        _DETACHED.add(task)
        task.add_done_callback(_DETACHED.discard)

    # ============================================================================================
    # connection
    # ============================================================================================

    def _ssl_context(self) -> ssl.SSLContext | None:
        from harness.tls import client_context

        cfg = self.config
        verify = DefectName.NO_CERT_CHECK not in self.defects
        ca_file, partial_chain = self._trust_store()
        ctx = client_context(ca_file, client_cert=cfg.client_cert if cfg.security_profile == 3 else None,
                             verify=verify, partial_chain=partial_chain)
        if DefectName.TLS13_ONLY in self.defects:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_3
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        if DefectName.NON_POLICY_CIPHERS in self.defects:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers(NON_POLICY_CIPHERS)
        return ctx

    def _trust_store(self) -> tuple[str | None, bool]:
        """The firmware's trusted CA file, and whether a non-root certificate in it is a trust anchor."""
        ca_file = self.config.ca_file
        if DefectName.TRUSTS_INTERMEDIATE_ONLY in self.defects and ca_file is not None:
            # The installer gave it the intermediate (beside ca.pem in the harness's certs/) instead of the root.
            return os.path.join(os.path.dirname(ca_file), "intermediate.pem"), True
        return ca_file, False

    def _url(self) -> str:
        base = self.config.url.rstrip("/")
        if DefectName.PLAIN_WS in self.defects and base.startswith("wss://"):
            base = "ws://" + base[len("wss://"):]
        return f"{base}/{urllib.parse.quote(self.id, safe='')}"

    def _headers(self) -> dict[str, str]:
        if self.config.security_profile == 3 or self._active_key is None:
            return {}
        if DefectName.NO_BASIC_AUTH in self.defects:
            return {}
        # Firmware bug "basic-auth-wrong-user": the user comes from a setting of its own, left at its factory default.
        user = "ocpp" if DefectName.BASIC_AUTH_WRONG_USER in self.defects else self.id
        password = self._active_key.encode()
        # Firmware bug "basic-auth-wrong-key": an off-by-one in the key buffer drops the key's last character.
        if DefectName.BASIC_AUTH_WRONG_KEY in self.defects:
            password = password[:-1]
        # Variant "basic-auth-decoded-key": the password is the key's hex digits decoded to bytes (whitepaper: both seen).
        if DefectName.BASIC_AUTH_DECODED_KEY in self.defects:
            with contextlib.suppress(ValueError):
                password = bytes.fromhex(self._active_key)
        token = base64.b64encode(user.encode() + b":" + password).decode("ascii")
        return {"Authorization": f"Basic {token}"}

    async def _connect(self) -> ClientConnection:
        url = self._url()
        ping = self.configuration.int("WebSocketPingInterval")
        ws = await connect(
            url,
            ssl=self._ssl_context() if url.startswith("wss://") else None,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            additional_headers=self._headers(),
            user_agent_header=f"{self.config.vendor}-{self.config.model}/{self.firmware_version}",
            open_timeout=self.config.open_timeout,
            ping_interval=ping if ping > 0 else None,
            ping_timeout=max(10.0, ping) if ping > 0 else None,
            close_timeout=2,
            proxy=None,
            compression=None,
            max_size=1024 * 1024,
        )
        if ws.subprotocol != SUBPROTOCOL:
            await ws.close(1002, "ocpp1.6 not agreed")
            raise ConnectionError(f"server did not agree to subprotocol {SUBPROTOCOL} (got {ws.subprotocol!r})")
        return ws

    async def _connection_loop(self) -> None:
        backoff = self.config.reconnect_backoff_min
        while True:
            await self._network_up.wait()
            try:
                ws = await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure means: wait and try again
                # Firmware bug "gives-up-after-401": it takes a 401 for a revoked key and stops until power-cycled.
                if (DefectName.GIVES_UP_AFTER_401 in self.defects and isinstance(exc, InvalidStatus)
                        and exc.response.status_code == 401):
                    log.warning("%s: HTTP 401: this firmware stops connecting until it is power-cycled", self.id)
                    await asyncio.Event().wait()
                delay = backoff * random.uniform(0.5, 1.0)
                log.info("%s: connection failed (%s: %s); retrying in %.2f s", self.id, type(exc).__name__, exc, delay)
                backoff = min(backoff * 2, self.config.reconnect_backoff_max)
                await self._sleep_unless_network_returns(delay)
                continue
            if not self._network_up.is_set():
                ws.transport.abort()
                continue
            started = time.monotonic()
            self._deliberate_close = False
            await self._session(ws)
            if self._deliberate_close:
                backoff = self.config.reconnect_backoff_min
                continue  # e.g. a new AuthorizationKey: reconnect at once
            if self._accepted.is_set() or time.monotonic() - started > 10:
                backoff = self.config.reconnect_backoff_min
            # Firmware bug "never-reconnects": a dropped connection is never re-established (nor by a deadlocked
            # OCPP task: "falls-silent").
            if DefectName.NEVER_RECONNECTS in self.defects or self._hung:
                log.warning("%s: connection lost; this firmware never reconnects", self.id)
                await asyncio.Event().wait()
            delay = backoff * random.uniform(0.5, 1.0)
            backoff = min(backoff * 2, self.config.reconnect_backoff_max)
            await self._sleep_unless_network_returns(delay)

    async def _sleep_unless_network_returns(self, delay: float) -> None:
        """Back off; a network that was down and comes back ends the wait early (the modem reports the link)."""
        if self._network_up.is_set():
            await asyncio.sleep(delay)
        else:
            await self._network_up.wait()

    async def _session(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._connections += 1
        # Conformant variant "late-queue-flush": what was queued offline is flushed by a timer after a reconnect.
        if self._variant(DefectName.LATE_QUEUE_FLUSH) and self._accepted.is_set() and len(self.tx_queue):
            self._flush_at = time.monotonic() + self.config.late_flush_delay
        self._connected.set()
        self._disconnected.clear()
        log.info("%s: connected to %s", self.id, self._url())
        boot: asyncio.Task[None] | None = None
        if not self._accepted.is_set():
            boot = self._spawn(self._boot_procedure(), "boot")
        self._wake.set()
        try:
            await self._reader(ws)
        finally:
            self._connected.clear()
            self._disconnected.set()
            self._ws = None
            if boot is not None:
                boot.cancel()
            pending = self._pending
            if pending is not None and not pending[2].done():
                pending[2].set_exception(NotConnected("connection closed"))
            # Volatile requests cannot survive the connection; status-like notifications can.
            kept: list[_Outgoing] = []
            for item in self._outbox:
                if item.keep_offline:
                    kept.append(item)
                elif item.future is not None and not item.future.done():
                    item.future.set_exception(NotConnected("connection closed"))
            self._outbox = kept
            self._bump()
            log.info("%s: disconnected (%s)", self.id, ws.close_reason or ws.close_code)

    async def _reader(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                self._on_message(message)
        except ConnectionClosed:
            pass
        except OSError as exc:
            log.info("%s: connection error %s", self.id, exc)

    def _on_message(self, message: str | bytes) -> None:
        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
        frame_log.info("%s < %s", self.id, _redact(text))
        if self._hung:
            return  # the deadlocked OCPP task never looks at it (the WebSocket layer still answers pings)
        try:
            frame = parse_frame(message)
        except UnknownMessageType as exc:
            log.warning("%s: ignoring frame: %s (OCPP-J §4.1.3)", self.id, exc.reason)
            return
        except FrameError as exc:
            match = _CALL_ID_RE.match(text) if isinstance(message, str) else None
            uid = exc.unique_id if exc.unique_id is not None else (match.group(1) if match else None)
            if match is not None and uid is not None:
                self._spawn(self._send_frame(CallError(uid, exc.code, exc.reason[:255], {})), "callerror")
            elif self._variant(DefectName.MINUS_ONE_ERROR_ID) and exc.message_type not in (3, 4):
                # Variant "minus-one-error-id": no id could be read, so the CALLERROR names "-1" (the OCPP 2.0.1
                # rule; 1.6 is silent). Never for a CALLRESULT or CALLERROR: nobody answers those.
                self._spawn(self._send_frame(CallError("-1", exc.code, exc.reason[:255], {})), "callerror")
            else:
                log.warning("%s: unusable frame (%s), no CALL id to answer: %.200s", self.id, exc.reason, text)
            return
        if isinstance(frame, Call):
            self._spawn(self._handle_call(frame), f"handle-{frame.action}")
            return
        pending = self._pending
        if pending is None or pending[0] != frame.unique_id:
            log.warning("%s: answer to an unknown CALL id %s ignored", self.id, frame.unique_id)
            return
        future = pending[2]
        if future.done():
            return
        if isinstance(frame, CallResult):
            future.set_result(frame.payload)
        else:
            future.set_exception(CallErrorReceived(frame))

    async def _send_frame(self, frame: Call | CallResult | CallError) -> bool:
        """Write one frame; False if the connection is gone."""
        ws = self._ws
        if ws is None:
            return False
        if isinstance(frame, CallError) and frame.code in _MALFORMED_REQUEST_CODES:
            # Firmware bugs "crashes-on-malformed" and "wrong-error-codes": the request parser's error path.
            if DefectName.CRASHES_ON_MALFORMED in self.defects:
                await ws.close(1011, "internal error")
                return False
            if DefectName.WRONG_ERROR_CODES in self.defects:
                frame = CallError(frame.unique_id, "GenericError", frame.description, frame.details)
        text = encode_frame(frame)
        if isinstance(frame, CallError) and self._variant(DefectName.STRING_ERROR_DETAILS):
            # Variant "string-error-details": the firmware's encoder puts a text where OCPP-J wants an object.
            text = encode_json([4, frame.unique_id, frame.code, frame.description, frame.description or "error"])
        frame_log.info("%s > %s", self.id, text)
        try:
            await ws.send(text)
        except ConnectionClosed:
            return False
        return True

    async def _call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one CALL and wait for its answer; one outstanding CALL at a time (OCPP-J §4.1.1)."""
        async with self._call_lock:
            ws = self._ws
            if ws is None or not self._connected.is_set():
                raise NotConnected("not connected")
            problems = schemas().request_problems(action, payload)
            if problems:
                log.log(logging.DEBUG if self.defects else logging.ERROR,
                        "%s: own %s breaks the schema: %s", self.id, action, "; ".join(map(str, problems)))
            uid = str(uuid.uuid4())
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            future.add_done_callback(_consume)
            self._pending = (uid, action, future)
            try:
                text = encode_frame(Call(uid, action, payload))
                frame_log.info("%s > %s", self.id, text)
                try:
                    await ws.send(text)
                except ConnectionClosed as exc:
                    raise NotConnected(str(exc)) from None
                async with asyncio.timeout(self.config.call_timeout):
                    return await future
            finally:
                self._pending = None

    # ============================================================================================
    # BootNotification (§4.2) and heartbeats (§4.6)
    # ============================================================================================

    def _boot_payload(self) -> dict[str, Any]:
        cfg = self.config
        vendor = cfg.vendor
        # Firmware bug "boot-bad-schema": the vendor string is the company's full name, over CiString20.
        if DefectName.BOOT_BAD_SCHEMA in self.defects:
            vendor = "ev.energy Reference Chargers International Ltd"
        return {
            "chargePointVendor": vendor,
            "chargePointModel": cfg.model,
            "chargePointSerialNumber": (cfg.serial or self.id)[:25],
            "firmwareVersion": self.firmware_version,
            "meterType": cfg.meter_type,
            "meterSerialNumber": f"M-{(cfg.serial or self.id)[:23]}",
        }

    async def _boot_procedure(self) -> None:
        while True:
            self._boot_now.clear()
            try:
                response = await self._call("BootNotification", self._boot_payload())
            except NotConnected:
                return  # the next connection boots again
            except (CallErrorReceived, TimeoutError) as exc:
                log.warning("%s: BootNotification failed: %s", self.id, exc)
                await self._wait_boot_retry(self.config.boot_retry_default)
                continue
            status = response.get("status")
            interval = response.get("interval")
            interval = int(interval) if isinstance(interval, (int, float)) and not isinstance(interval, bool) else 0
            self.registration = status if status in ("Accepted", "Pending", "Rejected") else "Rejected"
            # Firmware bug "sends-before-accepted": Pending is taken for Accepted.
            if status == "Accepted" or (status == "Pending" and DefectName.SENDS_BEFORE_ACCEPTED in self.defects):
                self._registered(interval)
                return
            wait = interval if interval > 0 else self.config.boot_retry_default
            log.info("%s: BootNotification %s; next one in %s s", self.id, status, wait)
            await self._wait_boot_retry(wait)

    async def _wait_boot_retry(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._boot_now.wait()  # a TriggerMessage BootNotification (Pending only)

    def _registered(self, interval: int) -> None:
        # Firmware bug "heartbeat-ignores-interval": the interval of BootNotification.conf is dropped.
        if interval > 0 and DefectName.HEARTBEAT_IGNORES_INTERVAL not in self.defects:
            self.configuration.set("HeartbeatInterval", str(interval))
        self.registration = "Accepted"
        self._accepted.set()
        # Statuses queued before Accepted are superseded by the full report that follows every boot.
        self._outbox = [o for o in self._outbox if o.action != "StatusNotification"]
        if DefectName.NO_STATUS_AFTER_BOOT not in self.defects:
            for change in self.model.current_statuses():
                self._enqueue_status(change, priority=0)
        self._wake.set()

    async def _heartbeats(self) -> None:
        """§4.6: a Heartbeat every HeartbeatInterval seconds; a new interval starts counting when it is set."""
        loop = asyncio.get_running_loop()
        await self._accepted.wait()
        last = loop.time()
        interval: float = self.configuration.int("HeartbeatInterval")
        while True:
            await self._accepted.wait()
            event = self._config_event
            current: float = self.configuration.int("HeartbeatInterval")
            if DefectName.HEARTBEAT_TOO_OFTEN in self.defects:  # firmware bug: a quarter of the interval
                current = current / 4
            if current != interval:
                interval, last = current, loop.time()
            if interval <= 0:
                await event.wait()
                continue
            try:
                async with asyncio.timeout(max(0.0, last + interval - loop.time())):
                    await event.wait()
                continue  # a configuration change: see whether it was the interval
            except TimeoutError:
                pass
            last = max(last + interval, loop.time() - interval)  # keep the cadence, but never catch up in bursts
            # Firmware bugs "no-heartbeat": the heartbeat timer fires but nothing is sent; "no-heartbeat-after-reconnect":
            # likewise once the connection was lost and re-established without a reboot.
            if (self._connected.is_set() and DefectName.NO_HEARTBEAT not in self.defects
                    and not (DefectName.NO_HEARTBEAT_AFTER_RECONNECT in self.defects and self._connections > 1)):
                self._enqueue("Heartbeat", {})

    # ============================================================================================
    # outgoing messages
    # ============================================================================================

    def _enqueue(self, action: str, payload: dict[str, Any], *, priority: int = 1, triggered: bool = False,
                 keep_offline: bool = False, want_result: bool = False,
                 on_result: Callable[[dict[str, Any]], None] | None = None) -> asyncio.Future[dict[str, Any]] | None:
        future = asyncio.get_running_loop().create_future() if want_result else None
        if future is not None:
            future.add_done_callback(_consume)
        self._outbox.append(_Outgoing((priority, next(self._seq)), action, payload, future, triggered, keep_offline,
                                      on_result))
        self._wake.set()
        self._bump()
        return future

    def _enqueue_status(self, change: StatusChange, *, priority: int = 1, triggered: bool = False) -> None:
        payload: dict[str, Any] = {
            "connectorId": change.connector_id,
            "errorCode": change.error_code,
            "status": change.status,
            "timestamp": self._timestamp(),
        }
        if change.info:
            payload["info"] = change.info
        self._enqueue("StatusNotification", payload, priority=priority, triggered=triggered, keep_offline=True)

    def _enqueue_tx(self, action: str, payload: dict[str, Any], tx: TxRef | None) -> None:
        offline = not self._connected.is_set()
        # Firmware bugs "no-offline-queue" / "loses-offline-stop": messages produced offline are not stored.
        if offline and (DefectName.NO_OFFLINE_QUEUE in self.defects
                        or (action == "StopTransaction" and DefectName.LOSES_OFFLINE_STOP in self.defects)):
            log.warning("%s: offline, %s not queued", self.id, action)
            return
        self.tx_queue.push(action, payload, tx, seq=next(self._seq))
        if offline and action == "StopTransaction" and tx is not None and DefectName.RESENDS_AFTER_STOP in self.defects:
            self._resend_after_stop.add(id(tx))
        self._wake.set()
        self._bump()

    def _next_message(self) -> tuple[_Outgoing | None, QueuedMessage | None, float | None]:
        """What to send next: an outbox item or the queue's head; else when to look again."""
        accepted = self._accepted.is_set()
        pending = self.registration == "Pending"
        best: _Outgoing | None = None
        for item in self._outbox:
            if accepted or (pending and item.triggered):
                if best is None or item.key < best.key:
                    best = item
        head = self.tx_queue.head() if accepted else None
        retry_in: float | None = None
        if head is not None:
            wait = max(head.not_before, self._flush_at) - time.monotonic()
            if wait > 0:
                retry_in, head = wait, None
            elif head.resolved() is None:
                head = None  # its StartTransaction has not been answered: impossible in FIFO order, but be safe
        if head is not None and (best is None or (1, head.seq) < best.key):
            return None, head, None
        return best, None, retry_in

    async def _sender(self) -> None:
        while True:
            await self._connected.wait()
            self._wake.clear()
            item, queued, retry_in = self._next_message()
            if item is None and queued is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(retry_in):
                        await self._wake.wait()
                continue
            lost = await self._send_queued(queued) if queued is not None else await self._send_outgoing(item)  # type: ignore[arg-type]
            self._bump()
            # Firmware bug "falls-silent": once the status report after an Accepted boot is answered, the OCPP task
            # deadlocks: nothing is sent or handled any more, the connection stays open, until a power cycle.
            if (DefectName.FALLS_SILENT in self.defects and item is not None and item.action == "StatusNotification"
                    and not lost and self._accepted.is_set()
                    and not any(o.action == "StatusNotification" for o in self._outbox)):
                self._hung = True
                log.warning("%s: the OCPP task is deadlocked: silent from now on (connection kept open)", self.id)
                await asyncio.Event().wait()
            if lost:
                await self._disconnected.wait()

    async def _send_outgoing(self, item: _Outgoing) -> bool:
        payload = item.payload
        try:
            response = await self._call(item.action, payload)
        except NotConnected:
            return True  # the session cleanup keeps or fails it
        except (CallErrorReceived, TimeoutError) as exc:
            log.warning("%s: %s failed: %s", self.id, item.action, exc)
            self._remove(item)
            if item.future is not None and not item.future.done():
                item.future.set_exception(exc)
            return False
        self._remove(item)
        if item.on_result is not None:
            try:
                item.on_result(response)
            except Exception:  # noqa: BLE001
                log.exception("%s: handling the answer to %s", self.id, item.action)
        if item.future is not None and not item.future.done():
            item.future.set_result(response)
        return False

    def _remove(self, item: _Outgoing) -> None:
        with contextlib.suppress(ValueError):
            self._outbox.remove(item)

    async def _send_queued(self, message: QueuedMessage) -> bool:
        payload = message.resolved()
        assert payload is not None
        try:
            response = await self._call(message.action, payload)
        except NotConnected:
            # Firmware bug "loses-in-flight-message": sent, unanswered, and taken off the queue as if delivered.
            if DefectName.LOSES_IN_FLIGHT_MESSAGE in self.defects:
                self.tx_queue.discard(message, "in flight when the connection dropped")
            else:
                self.tx_queue.requeue(message)
            return True
        except (CallErrorReceived, TimeoutError) as exc:
            attempts = self.configuration.int("TransactionMessageAttempts")
            interval = self.configuration.int("TransactionMessageRetryInterval")
            gave_up = self.tx_queue.failed(message, max_attempts=attempts, retry_interval=interval, now=time.monotonic())
            log.warning("%s: %s failed (%s)%s", self.id, message.action, exc, "; given up" if gave_up else "; will retry")
            return False
        self.tx_queue.ack(message, response)
        if message.action == "StartTransaction" and message.tx is not None:
            self._on_start_answer(message.tx, response)
        if message.action == "StopTransaction" and message.tx is not None and id(message.tx) in self._resend_after_stop:
            # Firmware bug "resends-after-stop": the transaction's last MeterValues goes out again after its stop.
            self._resend_after_stop.discard(id(message.tx))
            last = next((m for m in reversed(self.tx_queue.delivered)
                         if m.action == "MeterValues" and m.tx is message.tx), None)
            if last is not None:
                tx, again = message.tx, dict(last.payload)
                def resend() -> None:
                    self.tx_queue.push("MeterValues", again, tx, seq=next(self._seq))
                    self._wake.set()

                asyncio.get_running_loop().call_later(self.config.late_defect_delay, resend)
        return False

    def _bump(self) -> None:
        """Wake everything waiting for progress (queue drained, status changed, connection lost)."""
        event, self._progress = self._progress, asyncio.Event()
        event.set()

    async def _wait_progress(self) -> None:
        await self._progress.wait()

    # ============================================================================================
    # status, physics, smart charging
    # ============================================================================================

    def _changed(self) -> None:
        """Re-derive statuses from the model; queue a StatusNotification for each change."""
        for change in self.model.update(time.monotonic()):
            self._enqueue_status(change)
        self._physics_wake.set()
        self._bump()

    def _apply_limits(self, *, at_once: bool = False) -> None:
        """Give the EVSE (and so the EV) the limits of the profiles in force. After a profile change the old
        limits hold for limit_delay (`_limits_changed`); a transaction starting or ending sets them at once."""
        # Firmware bug "profile-no-effect": profiles are stored but the EVSE is never told about them.
        if DefectName.PROFILE_NO_EFFECT in self.defects:
            return
        now = time.monotonic()
        if not at_once and now < self._limits_settle_at:
            return
        now_dt = self._clock()
        for cid in self.model.connectors:
            limit = self.profiles.limit_at(cid, now_dt)
            self.model.set_limit(cid, limit.amps, limit.number_phases, now)

    async def _physics(self) -> None:
        """Keeps the EVs, the meters and the time-dependent limits current; reports what changed."""
        while True:
            self._physics_wake.clear()
            self._apply_limits()
            for change in self.model.update(time.monotonic()):
                self._enqueue_status(change)
            timeout = self.config.tick
            until_full = self.model.seconds_until_next_event()
            if until_full is not None:
                timeout = max(0.01, min(timeout, until_full + 0.01))
            until_limits = self._limits_settle_at - time.monotonic()
            if until_limits > 0:
                timeout = max(0.001, min(timeout, until_limits))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._physics_wake.wait()

    def _limits_changed(self) -> None:
        """A profile was set or cleared: the EV draws the new limit limit_delay later (another change restarts it)."""
        self._limits_settle_at = time.monotonic() + self.config.limit_delay
        self._physics_wake.set()

    # ============================================================================================
    # authorization and transactions (§4.1, §4.8, §4.10)
    # ============================================================================================

    async def _authorize_flow(self, connector: int, id_tag: str) -> None:
        status = await self._authorize_tag(id_tag)
        if status != "Accepted":
            log.info("%s: idTag %s not authorized (%s)", self.id, id_tag, status)
            return
        c = self.model.connector(connector)
        if c.transaction is not None or not self.model.can_start(connector):
            return
        if c.plugged:
            self._start_transaction(connector, id_tag)
        else:
            self.model.authorize_before_plug(connector, id_tag, time.monotonic())
            self._pending_remote.pop(connector, None)
            self._arm_connection_timer(connector)
            self._changed()

    async def _authorize_tag(self, id_tag: str) -> str:
        cached = self.auth_cache.get(id_tag)
        if cached == "Accepted" and self.configuration.bool("LocalPreAuthorize") and self._cache_enabled():
            return "Accepted"
        if self._accepted.is_set() and self._connected.is_set():
            future = self._enqueue("Authorize", {"idTag": id_tag}, want_result=True)
            assert future is not None
            try:
                response = await future
                info = response.get("idTagInfo") or {}
                status = str(info.get("status", "Invalid"))
                if self._cache_enabled():
                    self.auth_cache[id_tag] = status
                return status
            except (NotConnected, CallErrorReceived, TimeoutError) as exc:
                log.info("%s: Authorize failed (%s): authorizing offline", self.id, exc)
        # Offline (§3.5): the cache, then AllowOfflineTxForUnknownId.
        if self.configuration.bool("LocalAuthorizeOffline") and cached == "Accepted" and self._cache_enabled():
            return "Accepted"
        if self.configuration.bool("AllowOfflineTxForUnknownId"):
            return "Accepted"
        return cached or "Invalid"

    def _cache_enabled(self) -> bool:
        return self.configuration.bool("AuthorizationCacheEnabled")

    def _arm_connection_timer(self, connector: int) -> None:
        """ConnectionTimeOut: an authorization (or a plug without one) that leads to no session expires."""
        self._cancel_connection_timer(connector)
        c = self.model.connector(connector)
        if c.authorized_tag is None:
            return  # a plugged EV waits for a card as long as it stays plugged
        timeout = self.configuration.int("ConnectionTimeOut")
        self._connection_timers[connector] = asyncio.get_running_loop().call_later(
            timeout, self._connection_timed_out, connector)

    def _cancel_connection_timer(self, connector: int) -> None:
        handle = self._connection_timers.pop(connector, None)
        if handle is not None:
            handle.cancel()

    def _connection_timed_out(self, connector: int) -> None:
        self._connection_timers.pop(connector, None)
        c = self.model.connector(connector)
        if c.transaction is None and not c.plugged and c.authorized_tag is not None:
            log.info("%s: ConnectionTimeOut on connector %d", self.id, connector)
            self.model.clear_authorization(connector)
            self._pending_remote.pop(connector, None)
            self._changed()

    def _tx_state_for(self, connector: int) -> _TxState:
        return self._tx_state.setdefault(connector, _TxState())

    def _tx_key(self, tx: Transaction) -> int:
        ref: TxRef = tx.handle
        return ref.transaction_id if ref.transaction_id is not None else -ref.local_id

    def _start_transaction(self, connector: int, id_tag: str, *, remote: bool = False,
                           profile: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        ref = TxRef()
        for change in self.model.start_transaction(connector, ref, id_tag, now, remote=remote):
            self._enqueue_status(change)
        self._cancel_connection_timer(connector)
        tx = self.model.connector(connector).transaction
        assert tx is not None
        started = self._clock()
        tx.started_at = started
        self._tx_state[connector] = _TxState()
        self._enqueue_tx("StartTransaction", {
            "connectorId": connector,
            "idTag": id_tag,
            "meterStart": tx.meter_start_wh,
            "timestamp": _iso(started),
        }, ref)
        self.profiles.transaction_started(connector, self._tx_key(tx), started)
        if profile is not None:
            status = self.profiles.set_profile(connector, profile, transaction_id=self._tx_key(tx), now=started)
            log.info("%s: RemoteStart TxProfile %s (%s)", self.id, status, self.profiles.last_reason or "")
        self._apply_limits(at_once=True)
        self._changed()
        self._tx_state[connector].sampler = self._spawn(self._periodic_samples(connector, tx), f"sampler-{connector}")

    def _on_start_answer(self, ref: TxRef, response: dict[str, Any]) -> None:
        self._bump()  # a RemoteStop may be waiting for this transaction's id
        for cid, c in self.model.connectors.items():
            tx = c.transaction
            if tx is None or tx.handle is not ref:
                continue
            if ref.transaction_id is not None:
                # TxProfiles bound to the provisional id (e.g. from RemoteStart) move to the real one.
                bound = [p["csChargingProfiles"] for p in self.profiles.profiles(cid)
                         if p["csChargingProfiles"].get("chargingProfilePurpose") == "TxProfile"]
                self.profiles.transaction_started(cid, ref.transaction_id, tx.started_at)
                for profile in bound:
                    self.profiles.set_profile(cid, profile, transaction_id=ref.transaction_id, now=self._clock())
            info = response.get("idTagInfo") or {}
            status = info.get("status")
            if self._cache_enabled() and isinstance(status, str):
                self.auth_cache[tx.id_tag] = status
            if status != "Accepted" and self.configuration.bool("StopTransactionOnInvalidId"):
                log.info("%s: StartTransaction idTagInfo %s: stopping", self.id, status)
                self._stop_transaction(cid, "DeAuthorized")

    def _stop_transaction(self, connector: int, reason: str, *, report: bool = True) -> None:
        c = self.model.connector(connector)
        if c.transaction is None:
            return
        state = self._tx_state.pop(connector, _TxState())
        if state.sampler is not None:
            state.sampler.cancel()
        tx, end = self.model.stop_transaction(connector, time.monotonic())
        with contextlib.suppress(ValueError):
            self.profiles.transaction_ended(connector)
        stopped = self._clock()
        meter_stop = int(end.register_wh)
        # Firmware bug "meter-stop-below-start": meterStop is the session's energy, not the register.
        if DefectName.METER_STOP_BELOW_START in self.defects:
            meter_stop = int(end.register_wh) - tx.meter_start_wh
        payload: dict[str, Any] = {
            "meterStop": meter_stop,
            "timestamp": _iso(stopped),
            "reason": reason,
        }
        # Variant "local-reason-omitted": §6.49 "MAY only be omitted when the Reason is Local".
        if reason == "Local" and self._variant(DefectName.LOCAL_REASON_OMITTED):
            del payload["reason"]
        if state.stop_tag is not None:
            payload["idTag"] = state.stop_tag
        data: list[dict[str, Any]] = []
        measurands = self.configuration.list("StopTxnSampledData")
        if measurands:
            begin = self._sampled_values(tx.begin, measurands, spec16.CONTEXT_TX_BEGIN, tx)
            if begin:
                data.append({"timestamp": _iso(tx.started_at or stopped), "sampledValue": begin})
        data.extend(state.aligned)
        if measurands:
            end_values = self._sampled_values(end, measurands, spec16.CONTEXT_TX_END, tx)
            if end_values:
                data.append({"timestamp": _iso(stopped), "sampledValue": end_values})
        if data:
            payload["transactionData"] = data
        self._enqueue_tx("StopTransaction", payload, tx.handle)
        self._apply_limits(at_once=True)
        if report:
            self._changed()

    # ============================================================================================
    # meter values (§4.7)
    # ============================================================================================

    def _sample_interval(self) -> int:
        # Firmware bug "ignores-sample-interval": the sampler uses the value read at power-on.
        if DefectName.IGNORES_SAMPLE_INTERVAL in self.defects:
            return self._boot_sample_interval
        return self.configuration.int("MeterValueSampleInterval")

    async def _periodic_samples(self, connector: int, tx: Transaction) -> None:
        """Sample.Periodic every MeterValueSampleInterval seconds from the start of the transaction."""
        loop = asyncio.get_running_loop()
        base = loop.time()
        count = 0
        while True:
            event = self._config_event
            interval = self._sample_interval()
            if interval <= 0:
                await event.wait()
                base, count = loop.time(), 0
                continue
            due = base + (count + 1) * interval
            try:
                async with asyncio.timeout(max(0.0, due - loop.time())):
                    await event.wait()
                if self._sample_interval() != interval:
                    base, count = loop.time(), 0  # a new interval counts from now
                continue
            except TimeoutError:
                pass
            count += 1
            if self.model.connector(connector).transaction is not tx:
                return
            snap = self.model.snapshot(connector, time.monotonic())
            values = self._sampled_values(snap, self.configuration.list("MeterValuesSampledData"),
                                          spec16.CONTEXT_PERIODIC, tx)
            if values:
                self._enqueue_tx("MeterValues", {
                    "connectorId": connector,
                    "meterValue": [{"timestamp": self._timestamp(), "sampledValue": values}],
                }, tx.handle)

    async def _clock_aligned(self) -> None:
        """Sample.Clock at every multiple of ClockAlignedDataInterval after midnight (§9.1.3)."""
        while True:
            event = self._config_event
            interval = self.configuration.int("ClockAlignedDataInterval")
            if interval <= 0:
                await event.wait()
                continue
            now = self._clock()
            midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
            elapsed = (now - midnight).total_seconds()
            due = midnight + dt.timedelta(seconds=math.floor(elapsed / interval + 1) * interval)
            due = min(due, midnight + dt.timedelta(days=1))
            try:
                async with asyncio.timeout(max(0.0, (due - now).total_seconds())):
                    await event.wait()
                continue
            except TimeoutError:
                pass
            self._send_clock_aligned(due)

    def _send_clock_aligned(self, at: dt.datetime) -> None:
        measurands = self.configuration.list("MeterValuesAlignedData")
        stop_measurands = self.configuration.list("StopTxnAlignedData")
        for cid, c in self.model.connectors.items():
            snap = self.model.snapshot(cid, time.monotonic())
            tx = c.transaction
            if tx is not None and stop_measurands:
                values = self._sampled_values(snap, stop_measurands, spec16.CONTEXT_CLOCK, tx)
                if values:
                    state = self._tx_state_for(cid)
                    state.aligned.append({"timestamp": _iso(at), "sampledValue": values})
                    del state.aligned[:-100]
            if not measurands:
                continue
            values = self._sampled_values(snap, measurands, spec16.CONTEXT_CLOCK, tx)
            if not values:
                continue
            payload = {"connectorId": cid, "meterValue": [{"timestamp": _iso(at), "sampledValue": values}]}
            if tx is not None:
                self._enqueue_tx("MeterValues", payload, tx.handle)
            elif self._connected.is_set():
                self._enqueue("MeterValues", payload)

    def _sampled_values(self, snap: Snapshot, measurands: list[str], context: str,
                        tx: Transaction | None) -> list[dict[str, Any]]:
        """The meter's readings as SampledValue objects (§7.43), for the configured measurands."""
        d = self.defects
        kw = DefectName.KW_UNITS in d
        out: list[dict[str, Any]] = []

        def add(measurand: str, value: str, unit: str | None, *, phase: str | None = None,
                location: str = "Outlet") -> None:
            sv: dict[str, Any] = {"value": value, "context": context, "format": "Raw", "measurand": measurand,
                                  "location": location}
            if phase is not None:
                sv["phase"] = phase
            if unit is not None:
                sv["unit"] = unit
            out.append(sv)

        power = snap.power_w
        if tx is not None and context == spec16.CONTEXT_PERIODIC:
            state = self._tx_state_for(tx.connector_id)
            # Firmware bug "power-not-zero-when-suspended": the power reading is not refreshed once the current stops.
            if DefectName.POWER_NOT_ZERO_WHEN_SUSPENDED in d and power == 0.0 and state.last_power_w > 0:
                power = state.last_power_w
            if snap.power_w > 0:
                state.last_power_w = snap.power_w
        # Firmware bug "power-mismatch-energy": power from the line-to-line voltage (400 V) instead of 230 V.
        if DefectName.POWER_MISMATCH_ENERGY in d:
            power = power * math.sqrt(3)
        meter_can_power = not (DefectName.NO_POWER_MEASURAND in d)

        for m in measurands:
            if m == spec16.ENERGY_IMPORT_REGISTER:
                wh = math.floor(snap.register_wh)
                # Firmware bug "energy-decreasing": sign error, meterStart minus the energy delivered.
                if DefectName.ENERGY_DECREASING in d and tx is not None and context == spec16.CONTEXT_PERIODIC:
                    wh = tx.meter_start_wh - (wh - tx.meter_start_wh)
                if DefectName.WRONG_ENERGY_UNITS in d:
                    add(m, f"{wh / 1000:.3f}", "Wh")  # the kWh number, labelled Wh
                elif kw:
                    add(m, f"{wh / 1000:.3f}", "kWh")
                else:
                    add(m, str(wh), "Wh")
            elif m == spec16.POWER_IMPORT and meter_can_power:
                add(m, f"{power / 1000:.3f}", "kW") if kw else add(m, f"{power:.1f}", "W")
            elif m == spec16.POWER_OFFERED:
                offered = snap.offered_w
                add(m, f"{offered / 1000:.3f}", "kW") if kw else add(m, f"{offered:.1f}", "W")
            elif m == spec16.CURRENT_IMPORT and meter_can_power:
                for i, amps in enumerate(snap.currents):
                    add(m, f"{amps:.1f}", "A", phase=f"L{i + 1}")
            elif m == spec16.VOLTAGE and meter_can_power:
                # Firmware bug "current-without-voltage": the voltage channel is never read.
                if DefectName.CURRENT_WITHOUT_VOLTAGE in d:
                    continue
                for i, volts in enumerate(snap.voltages):
                    add(m, f"{volts:.1f}", "V", phase=f"L{i + 1}-N")
            elif m == spec16.CURRENT_OFFERED:
                add(m, f"{snap.offered_a:.1f}", "A")
            elif m == spec16.SOC:
                if snap.soc is not None:
                    add(m, str(int(snap.soc)), "Percent", location="EV")
        return out

    # ============================================================================================
    # the central system's requests (§5)
    # ============================================================================================

    async def _handle_call(self, call: Call) -> None:
        if self.registration == "Rejected" and not self._accepted.is_set():
            log.info("%s: Rejected: not answering %s (§4.2.1)", self.id, call.action)
            return
        if self._variant(DefectName.WAITS_FOR_BOOT_ACCEPTED) and (
            not self._accepted.is_set() or (self._pending is not None and self._pending[1] == "BootNotification")
        ):
            # Variant "waits-for-boot-accepted": the OCPP task takes requests only once registered, and not
            # while a BootNotification of its own (a triggered one too) waits for its answer.
            log.info("%s: waiting for the BootNotification answer: ignoring %s", self.id, call.action)
            return
        if DefectName.SLOW_RESPONSES in self.defects:
            await asyncio.sleep(self.config.slow_response_delay)
        handler: Handler | None = getattr(self, f"_on_{call.action}", None) if call.action.isalnum() else None
        if handler is None or call.action not in spec16.CENTRAL_SYSTEM_ACTIONS or call.action in _UNSUPPORTED:
            known = schemas().knows(call.action)
            code = "NotSupported" if known else "NotImplemented"
            await self._answer(CallError(call.unique_id, code, f"{call.action} is {'not supported' if known else 'unknown'}", {}))
            return
        problems = schemas().request_problems(call.action, call.payload)
        if problems:
            problem = problems[0]
            await self._answer(CallError(call.unique_id, problem.error_code, str(problem)[:255], {}))
            return
        try:
            payload, after = await handler(call.payload)
        except Exception as exc:  # noqa: BLE001 - never crash on a request
            log.exception("%s: handling %s", self.id, call.action)
            await self._answer(CallError(call.unique_id, "InternalError", f"{type(exc).__name__}: {exc}"[:255], {}))
            return
        problems = schemas().response_problems(call.action, payload)
        if problems:
            log.error("%s: own %s answer breaks the schema: %s", self.id, call.action, "; ".join(map(str, problems)))
        # The answer is on the wire before anything it causes (e.g. a triggered message) is sent.
        if await self._answer(CallResult(call.unique_id, payload)) and after is not None:
            after()

    async def _answer(self, frame: CallResult | CallError) -> bool:
        if await self._send_frame(frame):
            return True
        log.info("%s: connection gone before answering", self.id)
        return False

    # --- Core ----------------------------------------------------------------------------------

    async def _on_GetConfiguration(self, p: dict[str, Any]) -> tuple[dict[str, Any], None]:  # noqa: N802
        known, unknown = self.configuration.get(p.get("key"))
        answer: dict[str, Any] = {"configurationKey": known}
        if unknown:
            answer["unknownKey"] = unknown
        return answer, None

    async def _on_ChangeConfiguration(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        key, value = p["key"], p["value"]
        canonical = self.configuration.canonical(key)
        # Firmware bugs "rejects-sampled-data" / "rejects-sample-interval": the key's setter refuses every value.
        if canonical == "MeterValuesSampledData" and DefectName.REJECTS_SAMPLED_DATA in self.defects:
            return {"status": "Rejected"}, None
        if canonical == "MeterValueSampleInterval" and DefectName.REJECTS_SAMPLE_INTERVAL in self.defects:
            return {"status": "Rejected"}, None
        if canonical == spec16.KEY_AUTHORIZATION_KEY:
            # Variant "key-change-not-supported": the key is provisioned another way, not over OCPP.
            if DefectName.KEY_CHANGE_NOT_SUPPORTED in self.defects:
                return {"status": "NotSupported"}, None
            # ADV-2 defect "ignores-new-authorization-key": the setter is a no-op that reports success.
            if DefectName.IGNORES_NEW_AUTHORIZATION_KEY in self.defects:
                return {"status": "Accepted"}, None
            # Variant "rejects-key-reuse": a key it has held before is refused (no key reuse).
            if DefectName.REJECTS_KEY_REUSE in self.defects:
                if value in self._used_keys:
                    return {"status": "Rejected"}, None
                self._used_keys.add(value)
        status = self.configuration.change(key, value)
        after = None
        if canonical == spec16.KEY_AUTHORIZATION_KEY and status == "Accepted":
            # Variant "key-change-reboot-required": the key is stored and read at the next boot (OCPP §7.13).
            if DefectName.KEY_CHANGE_REBOOT_REQUIRED in self.defects:
                return {"status": "RebootRequired"}, None
            after = self._new_authorization_key
        return {"status": status}, after

    def _new_authorization_key(self) -> None:
        self._active_key = self.configuration.value("AuthorizationKey")
        if self.config.security_profile == 3:
            return  # profile 3 does not use the key
        # Whitepaper: reconnect with the new key once the answer is out.
        self._spawn(self._reconnect_now(), "reconnect-new-key")

    async def _reconnect_now(self) -> None:
        ws = self._ws
        if ws is None:
            return
        self._deliberate_close = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await ws.close(1000, "AuthorizationKey changed")

    def _on_config_change(self, key: str, old: str, new: str) -> None:
        ev, self._config_event = self._config_event, asyncio.Event()
        ev.set()

    async def _on_ChangeAvailability(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        cid = p["connectorId"]
        if not 0 <= cid <= len(self.model.connectors):
            return {"status": "Rejected"}, None
        status = self.model.change_availability(cid, p["type"] == "Operative")
        return {"status": status}, self._changed

    async def _on_ClearCache(self, p: dict[str, Any]) -> tuple[dict[str, Any], None]:  # noqa: N802
        self.auth_cache.clear()
        return {"status": "Accepted"}, None

    async def _on_DataTransfer(self, p: dict[str, Any]) -> tuple[dict[str, Any], None]:  # noqa: N802
        if p["vendorId"] == self.config.vendor:
            return {"status": "UnknownMessageId"}, None
        return {"status": "UnknownVendorId"}, None

    async def _on_RemoteStartTransaction(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        # Firmware bug "rejects-remote-start".
        if DefectName.REJECTS_REMOTE_START in self.defects:
            return {"status": "Rejected"}, None
        if not self._accepted.is_set():
            return {"status": "Rejected"}, None  # §4.2.1: not while Pending
        id_tag = p["idTag"]
        cid = p.get("connectorId")
        if cid is None:
            free = [c for c in self.model.connectors.values() if c.transaction is None and self.model.can_start(c.connector_id)
                    and c.authorized_tag is None]
            plugged = [c for c in free if c.plugged]
            cid = (plugged or free)[0].connector_id if (plugged or free) else None
        if cid is None or not 1 <= cid <= len(self.model.connectors):
            return {"status": "Rejected"}, None
        c = self.model.connector(cid)
        if c.transaction is not None or not self.model.can_start(cid):
            return {"status": "Rejected"}, None
        profile = p.get("chargingProfile")
        if profile is not None:
            if profile.get("chargingProfilePurpose") != "TxProfile":
                return {"status": "Rejected"}, None  # §5.11: only a TxProfile may come with RemoteStart
            if DefectName.CPMAX_ONLY in self.defects:
                profile = None  # this charger does smart charging through ChargePointMaxProfile only

        def after() -> None:
            self._spawn(self._remote_start(cid, id_tag, profile), f"remote-start-{cid}")

        return {"status": "Accepted"}, after

    async def _remote_start(self, cid: int, id_tag: str, profile: dict[str, Any] | None) -> None:
        if self.configuration.bool("AuthorizeRemoteTxRequests"):
            status = await self._authorize_tag(id_tag)
            if status != "Accepted":
                return
        c = self.model.connector(cid)
        if c.transaction is not None or not self.model.can_start(cid):
            return
        if c.plugged:
            self._start_transaction(cid, id_tag, remote=True, profile=profile)
        else:
            self.model.authorize_before_plug(cid, id_tag, time.monotonic())
            self._pending_remote[cid] = profile
            self._arm_connection_timer(cid)
            self._changed()

    async def _on_RemoteStopTransaction(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        wanted = p["transactionId"]
        if not self._accepted.is_set():
            return {"status": "Rejected"}, None  # §4.2.1: not while Pending

        def match() -> int | None:
            for cid, c in self.model.connectors.items():
                tx = c.transaction
                if tx is not None and tx.handle.transaction_id == wanted:
                    return cid
            return None

        def numbering() -> bool:
            # A transaction whose StartTransaction.conf is on the wire or being processed: its id is coming.
            return any(c.transaction is not None and c.transaction.handle.transaction_id is None
                       and not c.transaction.handle.start_failed and self.connected
                       for c in self.model.connectors.values())

        cid = match()
        if cid is None and numbering():
            with contextlib.suppress(TimeoutError):
                await self.wait_for(lambda: match() is not None or not numbering(), timeout=2.0)
            cid = match()
        if cid is not None:
            found = cid
            return {"status": "Accepted"}, lambda: self._stop_transaction(found, "Remote")
        return {"status": "Rejected"}, None

    async def _on_Reset(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], None]]:  # noqa: N802
        kind = p["type"]

        def after() -> None:
            self._spawn_detached(self._reset(kind))

        return {"status": "Accepted"}, after

    async def _reset(self, kind: str) -> None:
        reason = "SoftReset" if kind == "Soft" else "HardReset"
        if kind == "Soft":
            # §5.14: stop transactions gracefully, send their StopTransaction, then restart.
            for tx in self.model.transactions():
                self._stop_transaction(tx.connector_id, reason)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.soft_reset_timeout):
                    while len(self.tx_queue) and self._connected.is_set():
                        await self._wait_progress()
        await self._reboot(reason)

    async def _on_UnlockConnector(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        cid = p["connectorId"]
        if not 1 <= cid <= len(self.model.connectors):
            return {"status": "NotSupported"}, None
        if self.model.connector(cid).transaction is not None:
            return {"status": "Unlocked"}, lambda: self._stop_transaction(cid, "UnlockCommand")
        return {"status": "Unlocked"}, None

    # --- Smart Charging --------------------------------------------------------------------------

    async def _on_SetChargingProfile(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        cid = p["connectorId"]
        profile = p["csChargingProfiles"]
        purpose = profile.get("chargingProfilePurpose")
        # Firmware bug "rejects-all-profiles".
        if DefectName.REJECTS_ALL_PROFILES in self.defects:
            return {"status": "Rejected"}, None
        if DefectName.TXPROFILE_ONLY in self.defects and purpose == "ChargePointMaxProfile":
            return {"status": "Rejected"}, None
        if DefectName.CPMAX_ONLY in self.defects and purpose in ("TxProfile", "TxDefaultProfile"):
            return {"status": "Rejected"}, None
        tx_id = None
        if 1 <= cid <= len(self.model.connectors):
            tx = self.model.connector(cid).transaction
            if tx is not None:
                tx_id = self._tx_key(tx)
        status = self.profiles.set_profile(cid, profile, transaction_id=tx_id, now=self._clock())
        if status != "Accepted":
            log.info("%s: SetChargingProfile Rejected: %s", self.id, self.profiles.last_reason)
            return {"status": status}, None
        return {"status": status}, self._limits_changed

    async def _on_ClearChargingProfile(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        cleared = self.profiles.clear(profile_id=p.get("id"), connector_id=p.get("connectorId"),
                                      purpose=p.get("chargingProfilePurpose"), stack_level=p.get("stackLevel"))
        return {"status": "Accepted" if cleared else "Unknown"}, self._limits_changed if cleared else None

    async def _on_GetCompositeSchedule(self, p: dict[str, Any]) -> tuple[dict[str, Any], None]:  # noqa: N802
        cid = p["connectorId"]
        unit = p.get("chargingRateUnit")
        allowed = [spec16.RATE_UNIT_WORDS.get(w) for w in self.configuration.list("ChargingScheduleAllowedChargingRateUnit")]
        if unit is not None and unit not in allowed:
            return {"status": "Rejected"}, None
        schedule = self.profiles.composite_schedule(cid, p["duration"], unit, now=self._clock())
        if schedule is None:
            return {"status": "Rejected"}, None
        return {"status": "Accepted", "connectorId": cid, "scheduleStart": schedule["startSchedule"],
                "chargingSchedule": schedule}, None

    # --- Remote Trigger (§5.17) ------------------------------------------------------------------

    async def _on_TriggerMessage(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        requested = p["requestedMessage"]
        cid = p.get("connectorId")
        if cid is not None and not 0 <= cid <= len(self.model.connectors):
            return {"status": "Rejected"}, None
        if requested not in spec16.TRIGGERABLE_MESSAGES:
            return {"status": "NotImplemented"}, None
        return {"status": "Accepted"}, lambda: self._triggered(requested, cid)

    def _triggered(self, requested: str, cid: int | None) -> None:
        if requested == "BootNotification":
            # Firmware bug "trigger-boot-silent".
            if DefectName.TRIGGER_BOOT_SILENT in self.defects:
                return
            if not self._accepted.is_set():
                self._boot_now.set()  # the boot procedure sends it now (Pending)
                return

            def on_boot(response: dict[str, Any]) -> None:
                interval = response.get("interval")
                if response.get("status") == "Accepted" and isinstance(interval, int) and interval > 0:
                    self.configuration.set("HeartbeatInterval", str(interval))

            self._enqueue("BootNotification", self._boot_payload(), triggered=True, on_result=on_boot)
        elif requested == "Heartbeat":
            self._enqueue("Heartbeat", {}, triggered=True)
        elif requested == "StatusNotification":
            # Firmware bug "trigger-status-silent".
            if DefectName.TRIGGER_STATUS_SILENT in self.defects:
                return
            for change in self.model.current_statuses():
                if cid is None or change.connector_id == cid:
                    self._enqueue_status(change, triggered=True)
        elif requested == "MeterValues":
            targets = [cid] if cid else list(self.model.connectors)
            for target in targets:
                c = self.model.connector(target)
                snap = self.model.snapshot(target, time.monotonic())
                # Nothing configured: the register, the measurand a SampledValue defaults to (§7.43).
                measurands = self.configuration.list("MeterValuesSampledData") or [spec16.ENERGY_IMPORT_REGISTER]
                values = self._sampled_values(snap, measurands, spec16.CONTEXT_TRIGGER, c.transaction)
                payload: dict[str, Any] = {"connectorId": target,
                                           "meterValue": [{"timestamp": self._timestamp(), "sampledValue": values}]}
                if c.transaction is not None and c.transaction.handle.transaction_id is not None:
                    payload["transactionId"] = c.transaction.handle.transaction_id
                if values:
                    self._enqueue("MeterValues", payload, triggered=True)
        elif requested == "DiagnosticsStatusNotification":
            self._enqueue("DiagnosticsStatusNotification", {"status": self.diagnostics_status}, triggered=True)
        elif requested == "FirmwareStatusNotification":
            self._enqueue("FirmwareStatusNotification", {"status": self.firmware_status}, triggered=True)

    # --- Firmware Management (§5.19, §5.9) --------------------------------------------------------

    async def _on_UpdateFirmware(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        # Firmware bug "firmware-update-silent": the request is acknowledged and forgotten.
        if DefectName.FIRMWARE_UPDATE_SILENT in self.defects:
            return {}, None
        location = p["location"]
        retrieve = _parse_time(p["retrieveDate"])
        attempts = max(1, int(p.get("retries") or 1))
        retry_interval = int(p.get("retryInterval") or 0)
        return {}, lambda: self._spawn(self._update_firmware(location, retrieve, attempts, retry_interval), "firmware")

    def _notify(self, action: str, status: str, *, wait: bool = False) -> asyncio.Future[dict[str, Any]] | None:
        if action == "FirmwareStatusNotification":
            self.firmware_status = status
        else:
            self.diagnostics_status = status
        return self._enqueue(action, {"status": status}, keep_offline=True, want_result=wait)

    async def _update_firmware(self, location: str, retrieve: dt.datetime, attempts: int, retry_interval: int) -> None:
        delay = (retrieve - self._clock()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)  # the retrieveDate is a real protocol time
        self._notify("FirmwareStatusNotification", "Downloading")
        data: bytes | None = None
        for attempt in range(attempts):
            try:
                data = await self._download(location)
                break
            except Exception as exc:  # noqa: BLE001
                log.warning("%s: firmware download %d/%d from %s failed: %s", self.id, attempt + 1, attempts,
                            location, exc)
                if attempt + 1 < attempts:
                    await asyncio.sleep(retry_interval)
        if data is None:
            self._notify("FirmwareStatusNotification", "DownloadFailed")
            self.firmware_status = "Idle"
            if DefectName.INSTALLS_AFTER_FAILED_DOWNLOAD in self.defects:  # firmware bug: installs what it has anyway
                await asyncio.sleep(self.config.late_defect_delay)
                self._notify("FirmwareStatusNotification", "Installing")
                self._notify("FirmwareStatusNotification", "Installed")
                self.firmware_status = "Idle"
            return
        self.downloaded_firmware = data
        self._notify("FirmwareStatusNotification", "Downloaded")
        # A charger installs only when no transaction runs.
        while self.model.transactions():
            await self._wait_progress()
        self._notify("FirmwareStatusNotification", "Installing")
        await asyncio.sleep(self.config.install_time)
        installed = self._notify("FirmwareStatusNotification", "Installed", wait=True)
        self.firmware_version = _new_version(self.firmware_version, location)
        if installed is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.config.call_timeout):
                    await installed
        self.firmware_status = "Idle"
        self._spawn_detached(self._reboot("Reboot"))

    def _tls_for_transfers(self) -> ssl.SSLContext:
        from harness.tls import client_context

        ca_file, partial_chain = self._trust_store()
        return client_context(ca_file, partial_chain=partial_chain)

    def _http_client(self, scheme: str) -> aiohttp.ClientSession:
        """An HTTP(S) client for a transfer: the charger's trust store for HTTPS, no proxy, its User-Agent."""
        timeout = self.config.transfer_timeout
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._tls_for_transfers() if scheme == "https" else True),
            timeout=aiohttp.ClientTimeout(sock_connect=timeout, sock_read=timeout),
            headers={"User-Agent": f"{self.config.vendor}-{self.config.model}"},
            raise_for_status=True,
        )

    def _ftp_client(self, parts: urllib.parse.SplitResult) -> Any:
        """An FTP session (aioftp) logged in with the URL's user (anonymous if none), as async context."""
        timeout = self.config.transfer_timeout
        return aioftp.Client.context(
            parts.hostname or "", parts.port or 21, urllib.parse.unquote(parts.username or aioftp.DEFAULT_USER),
            urllib.parse.unquote(parts.password if parts.password is not None else aioftp.DEFAULT_PASSWORD),
            socket_timeout=timeout, connection_timeout=timeout,
        )

    async def _download(self, location: str) -> bytes:
        parts = urllib.parse.urlsplit(location)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https", "ftp"):
            raise ValueError(f"unsupported scheme {scheme!r}")
        if scheme == "ftp":
            async with self._ftp_client(parts) as ftp, ftp.download_stream(urllib.parse.unquote(parts.path)) as stream:
                data = await _read_bounded(stream.iter_by_block(), MAX_DOWNLOAD)
        else:
            async with self._http_client(scheme) as client, client.get(location) as response:
                data = await _read_bounded(response.content.iter_chunked(65536), MAX_DOWNLOAD)
        if not data:
            raise ValueError("empty firmware image")
        return data

    async def _on_GetDiagnostics(self, p: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], object] | None]:  # noqa: N802
        location = p["location"]
        attempts = max(1, int(p.get("retries") or 1))
        retry_interval = int(p.get("retryInterval") or 0)
        stamp = self._clock().strftime("%Y%m%dT%H%M%SZ")
        name = f"diagnostics-{re.sub(r'[^A-Za-z0-9._-]', '_', self.id)}-{stamp}.txt"
        return {"fileName": name}, lambda: self._spawn(self._upload_diagnostics(location, name, attempts, retry_interval),
                                                       "diagnostics")

    async def _upload_diagnostics(self, location: str, name: str, attempts: int, retry_interval: int) -> None:
        self._notify("DiagnosticsStatusNotification", "Uploading")
        # Firmware bug "no-diagnostics-upload": reports success without uploading anything.
        if DefectName.NO_DIAGNOSTICS_UPLOAD in self.defects:
            self._notify("DiagnosticsStatusNotification", "Uploaded")
            self.diagnostics_status = "Idle"
            return
        content = self._diagnostics_text().encode()
        ok = False
        for attempt in range(attempts):
            try:
                await self._upload(location, name, content)
                ok = True
                break
            except Exception as exc:  # noqa: BLE001
                log.warning("%s: diagnostics upload %d/%d to %s failed: %s", self.id, attempt + 1, attempts, location, exc)
                if attempt + 1 < attempts:
                    await asyncio.sleep(retry_interval)
        self._notify("DiagnosticsStatusNotification", "Uploaded" if ok else "UploadFailed")
        self.diagnostics_status = "Idle"

    def _diagnostics_text(self) -> str:
        known, _ = self.configuration.get()
        lines = [
            f"charge point {self.id}", f"vendor {self.config.vendor} model {self.config.model}",
            f"firmware {self.firmware_version}", f"boots {self.boot_count}", f"time {_iso(self._clock())}",
        ]
        for cid, c in self.model.connectors.items():
            lines.append(f"connector {cid}: {c.status.status} register {c.register_wh:.1f} Wh")
        lines += [f"{k['key']}={k['value']}" for k in known]
        return "\n".join(lines) + "\n"

    async def _upload(self, location: str, name: str, content: bytes) -> None:
        parts = urllib.parse.urlsplit(location)
        scheme = parts.scheme.lower()
        if scheme == "ftp":
            async with self._ftp_client(parts) as ftp:
                path = urllib.parse.unquote(parts.path)
                if path and path not in ("/", ""):
                    await ftp.change_directory(path)
                async with ftp.upload_stream(name) as stream:
                    await stream.write(content)
            return
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {scheme!r}")
        target = location if location.endswith("/") else location + "/"
        target += urllib.parse.quote(name)
        async with self._http_client(scheme) as client:
            # First PUT <location>/<fileName>; servers that take uploads by POST get a multipart form.
            try:
                async with client.put(target, data=content, headers={"Content-Type": "text/plain"}):
                    return
            except aiohttp.ClientResponseError as exc:
                if exc.status not in (404, 405, 501):
                    raise
            form = aiohttp.FormData()
            form.add_field("file", content, filename=name, content_type="text/plain")
            async with client.post(location, data=form):
                return

    # ============================================================================================
    # time
    # ============================================================================================

    def _clock(self) -> dt.datetime:
        """The charger's real-time clock (NTP-synchronised, unless the "stale-clock" defect)."""
        now = dt.datetime.now(dt.timezone.utc)
        # Firmware bug "stale-clock": the RTC runs 10 minutes ahead and is never synchronised.
        if DefectName.STALE_CLOCK in self.defects:
            now += STALE_CLOCK_OFFSET
        return now

    def _timestamp(self) -> str:
        return _iso(self._clock())

    # ============================================================================================
    # inspection (tests, control server)
    # ============================================================================================

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until predicate() is true, re-checked whenever the charger makes progress (bounded)."""
        async with asyncio.timeout(timeout):
            while not (result := predicate()):
                await self._wait_progress()
            return result

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def accepted(self) -> bool:
        return self._accepted.is_set()

    def status(self, connector: int) -> str:
        return self.model.status0.status if connector == 0 else self.model.connector(connector).status.status

    def transaction_id(self, connector: int = 1) -> int | None:
        tx = self.model.connector(connector).transaction
        return None if tx is None else tx.handle.transaction_id


# Actions a Central System may send that this charger does not support (no such feature profile).
_UNSUPPORTED = frozenset({"ReserveNow", "CancelReservation", "SendLocalList", "GetLocalListVersion"})
_DETACHED: set[asyncio.Task[Any]] = set()


def _consume(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen: nobody may be waiting any more (e.g. after power-off)."""
    if not future.cancelled():
        future.exception()


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _parse_time(value: str) -> dt.datetime:
    from harness.ocppj import parse_datetime

    return parse_datetime(value).astimezone(dt.timezone.utc)


async def _read_bounded(blocks: AsyncIterator[bytes], limit: int) -> bytes:
    """A transfer's bytes, refused beyond `limit` (a charger has so much room for a firmware image)."""
    data = bytearray()
    async for block in blocks:
        data += block
        if len(data) > limit:
            raise ValueError("firmware image too large")
    return bytes(data)


def _new_version(current: str, location: str) -> str:
    """The firmware version after an update: from the file name (fw-2.1.0.bin -> 2.1.0), else current + "-updated"."""
    name = urllib.parse.unquote(urllib.parse.urlsplit(location).path.rsplit("/", 1)[-1])
    match = re.search(r"\d+(?:\.\d+)+(?:[-+][A-Za-z0-9.]+)?", name)
    if match and match.group(0) != current:
        return match.group(0)[:50]
    return (current + "-updated")[:50]


def _redact(text: str) -> str:
    """Frames for the log, with the value of an AuthorizationKey change hidden."""
    if "authorizationkey" not in text.lower():
        return text
    return _AUTH_KEY_VALUE_RE.sub(lambda m: m.group(1) + "***" + m.group(3), text)
