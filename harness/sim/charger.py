# Over ~500 lines on purpose (#15): the composition root the rooms plug into (state, life cycle, acts, boot, actions).
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
import contextlib
import datetime as dt
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from ocpp.v16.enums import Action
from websockets.asyncio.client import ClientConnection

from harness import spec16
from harness.errors import ActNotSupported
from harness.ocppj import Call, CallError, CallResult, schemas
from harness.sim.common import (
    STALE_CLOCK_OFFSET,
    CallErrorReceived,
    NotConnected,
    SimConfig,
    _Outgoing,
    _TxState,
    _iso,
)
from harness.sim.configuration import (
    CURRENT_VOLTAGE_MEASURANDS,
    SUPPORTED_MEASURANDS,
    Configuration,
    standard_configuration,
)
from harness.sim.defects import DefectName
from harness.sim.handlers import HandlersMixin
from harness.sim.link import LinkMixin
from harness.sim.metering import MeteringMixin
from harness.sim.model import EV, ChargePointModel
from harness.sim.offline import TransactionQueue
from harness.sim.smart_charging import ChargingProfileStore
from harness.sim.transactions import TransactionsMixin
from harness.sim.transfers import TransfersMixin

__all__ = ["ReferenceCharger", "SimConfig"]  # SimConfig lives in common.py; importers take it from here

log = logging.getLogger("harness.sim.charger")
_T = TypeVar("_T")  # what a spawned task or an awaited predicate gives back


class ReferenceCharger(LinkMixin, MeteringMixin, TransactionsMixin, HandlersMixin, TransfersMixin):
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
        self._last_call_at = 0.0  # loop time of its last request to the central system (§4.6: skipping Heartbeats)
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

    def _spawn(self, coro: Coroutine[Any, Any, _T], name: str = "") -> asyncio.Task[_T]:
        task = asyncio.get_running_loop().create_task(coro, name=name or None)
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

    def _spawn_detached(self, coro: Coroutine[Any, Any, object]) -> None:
        """A task outside the firmware's task set (it survives the power cycle it causes)."""
        task = asyncio.get_running_loop().create_task(coro)
        _DETACHED.add(task)
        task.add_done_callback(_DETACHED.discard)

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

    def _heartbeat_interval_from_boot(self, interval: int) -> None:
        """§4.2: the interval of an Accepted BootNotification.conf is the HeartbeatInterval (any boot, triggered too)."""
        # Firmware bug "heartbeat-ignores-interval": the interval of BootNotification.conf is dropped.
        if interval > 0 and DefectName.HEARTBEAT_IGNORES_INTERVAL not in self.defects:
            self.configuration.set("HeartbeatInterval", str(interval))

    def _registered(self, interval: int) -> None:
        self._heartbeat_interval_from_boot(interval)
        self.registration = "Accepted"
        self._accepted.set()
        # Statuses queued before Accepted are superseded by the full report that follows every boot.
        self._outbox = [o for o in self._outbox if o.action != "StatusNotification"]
        # Defect "no-status-after-boot" (breaks CORE-1): no StatusNotification after the boot is Accepted.
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
            # Variant "skips-heartbeat-while-busy" (§4.6 MAY): a request sent within the interval stands in for the
            # Heartbeat; the next one is due an interval after that request.
            if self._variant(DefectName.SKIPS_HEARTBEAT_WHILE_BUSY) and loop.time() - self._last_call_at < interval:
                last = self._last_call_at
                continue
            last = max(last + interval, loop.time() - interval)  # keep the cadence, but never catch up in bursts
            # Firmware bugs "no-heartbeat": the heartbeat timer fires but nothing is sent; "no-heartbeat-after-reconnect":
            # likewise once the connection was lost and re-established without a reboot.
            if (self._connected.is_set() and DefectName.NO_HEARTBEAT not in self.defects
                    and not (DefectName.NO_HEARTBEAT_AFTER_RECONNECT in self.defects and self._connections > 1)):
                self._enqueue("Heartbeat", {})

    # ============================================================================================
    # the central system's requests (§5)
    # ============================================================================================

    async def _handle_call(self, call: Call) -> None:
        if self.registration == "Rejected" and not self._accepted.is_set():
            log.info("%s: Rejected: not answering %s (§4.2.1)", self.id, call.action)
            return
        # Variant "waits-for-boot-accepted" (allowed by CORE-1): requests ignored until its own BootNotification is Accepted.
        if self._variant(DefectName.WAITS_FOR_BOOT_ACCEPTED) and (
            not self._accepted.is_set() or (self._pending is not None and self._pending[1] == "BootNotification")
        ):
            # Variant "waits-for-boot-accepted": the OCPP task takes requests only once registered, and not
            # while a BootNotification of its own (a triggered one too) waits for its answer.
            log.info("%s: waiting for the BootNotification answer: ignoring %s", self.id, call.action)
            return
        # Variant "slow-responses" (allowed by CORE-1): every answer about a second late.
        if DefectName.SLOW_RESPONSES in self.defects:
            await asyncio.sleep(self.config.slow_response_delay)
        handler = _HANDLERS.get(call.action)
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
            payload, after = await handler(self, call.payload)
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

    async def wait_for(self, predicate: Callable[[], _T], timeout: float = 10.0) -> _T:
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


# The central system's requests this charger answers, each to its handler in the room where it lives. An
# action not here (or in _UNSUPPORTED) is answered CALLERROR NotSupported (OCPP 1.6 knows it) or NotImplemented.
# A handler: the charger and the request's payload -> the answer's payload and what to do once it is sent.
Handler = Callable[[ReferenceCharger, dict[str, Any]], Awaitable[tuple[dict[str, Any], Callable[[], object] | None]]]
_HANDLERS: dict[str, Handler] = {
    # Core (handlers.py, transactions.py)
    Action.get_configuration: HandlersMixin._on_GetConfiguration,
    Action.change_configuration: HandlersMixin._on_ChangeConfiguration,
    Action.change_availability: HandlersMixin._on_ChangeAvailability,
    Action.clear_cache: HandlersMixin._on_ClearCache,
    Action.data_transfer: HandlersMixin._on_DataTransfer,
    Action.remote_start_transaction: TransactionsMixin._on_RemoteStartTransaction,
    Action.remote_stop_transaction: TransactionsMixin._on_RemoteStopTransaction,
    Action.reset: HandlersMixin._on_Reset,
    Action.unlock_connector: HandlersMixin._on_UnlockConnector,
    # Smart Charging (handlers.py)
    Action.set_charging_profile: HandlersMixin._on_SetChargingProfile,
    Action.clear_charging_profile: HandlersMixin._on_ClearChargingProfile,
    Action.get_composite_schedule: HandlersMixin._on_GetCompositeSchedule,
    # Remote Trigger (handlers.py)
    Action.trigger_message: HandlersMixin._on_TriggerMessage,
    # Firmware Management (transfers.py)
    Action.update_firmware: TransfersMixin._on_UpdateFirmware,
    Action.get_diagnostics: TransfersMixin._on_GetDiagnostics,
}
