"""What the reference charger's rooms share: its settings (SimConfig), small records, constants and helpers.

Split out of harness/sim/charger.py so that the rooms (link, metering, transactions, handlers, transfers)
import it and not the charger: no import circle."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from harness.ocppj import CallError
from harness.sim import defects as defects_mod
from harness.sim.defects import DefectName

if TYPE_CHECKING:  # ChargerRoom's declarations only; these modules never import the charger or its rooms
    import itertools
    from collections.abc import Coroutine

    from websockets.asyncio.client import ClientConnection

    from harness.ocppj import Call
    from harness.sim.configuration import Configuration
    from harness.sim.model import ChargePointModel, Snapshot, StatusChange, Transaction
    from harness.sim.offline import TransactionQueue, TxRef
    from harness.sim.smart_charging import ChargingProfileStore

_T = TypeVar("_T")  # what a spawned task or an awaited predicate gives back

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
        # Variant "single-phase" (allowed by MV-1): current and voltage on L1 only.
        if DefectName.SINGLE_PHASE in self.defects:
            self.phases = 1
        # Variant "slow-hardware" (allowed by SC-2): real hardware's limit, install and boot times.
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

class ChargerRoom:
    """The base of the reference charger's rooms (link.py, metering.py, ...; mixins of ReferenceCharger).

    Empty at run time. For the type checker it declares the charger's state and the methods one room
    calls in another (ReferenceCharger in charger.py sets the state in __init__ and _reset_volatile)."""

    if TYPE_CHECKING:
        # --- state (charger.py: __init__, _reset_volatile) ------------------------------------
        config: SimConfig
        defects: frozenset[str]
        id: str
        configuration: Configuration
        model: ChargePointModel
        profiles: ChargingProfileStore
        tx_queue: TransactionQueue
        auth_cache: dict[str, str]
        boot_count: int
        firmware_version: str
        firmware_status: str
        diagnostics_status: str
        downloaded_firmware: bytes | None
        registration: str | None
        _resend_after_stop: set[int]
        _active_key: str | None
        _used_keys: set[str | None]
        _seq: itertools.count[int]
        _network_up: asyncio.Event
        _ws: ClientConnection | None
        _connected: asyncio.Event
        _accepted: asyncio.Event
        _disconnected: asyncio.Event
        _outbox: list[_Outgoing]
        _wake: asyncio.Event
        _boot_now: asyncio.Event
        _config_event: asyncio.Event
        _physics_wake: asyncio.Event
        _progress: asyncio.Event
        _call_lock: asyncio.Lock
        _pending: tuple[str, str, asyncio.Future[dict[str, Any]]] | None
        _last_call_at: float
        _tx_state: dict[int, _TxState]
        _boot_sample_interval: int
        _connections: int
        _deliberate_close: bool
        _hung: bool
        _connection_timers: dict[int, asyncio.TimerHandle]
        _pending_remote: dict[int, dict[str, Any] | None]

        # --- methods one room calls in another -----------------------------------------------
        def _variant(self, name: DefectName) -> bool: ...  # charger.py
        def _spawn(self, coro: Coroutine[Any, Any, _T], name: str = "") -> asyncio.Task[_T]: ...  # charger.py
        async def _reboot(self, reason: str = "PowerLoss") -> None: ...  # charger.py
        def _spawn_detached(self, coro: Coroutine[Any, Any, object]) -> None: ...  # charger.py
        def _boot_payload(self) -> dict[str, Any]: ...  # charger.py
        def _heartbeat_interval_from_boot(self, interval: int) -> None: ...  # charger.py
        async def _boot_procedure(self) -> None: ...  # charger.py
        async def _handle_call(self, call: Call) -> None: ...  # charger.py
        def _clock(self) -> dt.datetime: ...  # charger.py
        def _timestamp(self) -> str: ...  # charger.py
        async def wait_for(self, predicate: Callable[[], _T], timeout: float = 10.0) -> _T: ...  # charger.py
        @property
        def connected(self) -> bool: ...  # charger.py
        def _trust_store(self) -> tuple[str | None, bool]: ...  # link.py
        def _enqueue(self, action: str, payload: dict[str, Any], *, priority: int = 1, triggered: bool = False,
                     keep_offline: bool = False, want_result: bool = False,
                     on_result: Callable[[dict[str, Any]], None] | None = None) -> asyncio.Future[dict[str, Any]] | None: ...  # link.py
        def _enqueue_status(self, change: StatusChange, *, priority: int = 1, triggered: bool = False) -> None: ...  # link.py
        def _enqueue_tx(self, action: str, payload: dict[str, Any], tx: TxRef | None) -> None: ...  # link.py
        def _bump(self) -> None: ...  # link.py
        async def _wait_progress(self) -> None: ...  # link.py
        def _changed(self) -> None: ...  # metering.py
        def _apply_limits(self, *, at_once: bool = False) -> None: ...  # metering.py
        def _limits_changed(self) -> None: ...  # metering.py
        async def _periodic_samples(self, connector: int, tx: Transaction) -> None: ...  # metering.py
        def _sampled_values(self, snap: Snapshot, measurands: list[str], context: str,
                            tx: Transaction | None) -> list[dict[str, Any]]: ...  # metering.py
        def _tx_state_for(self, connector: int) -> _TxState: ...  # transactions.py
        def _tx_key(self, tx: Transaction) -> int: ...  # transactions.py
        def _on_start_answer(self, ref: TxRef, response: dict[str, Any]) -> None: ...  # transactions.py
        def _stop_transaction(self, connector: int, reason: str, *, report: bool = True) -> None: ...  # transactions.py



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
