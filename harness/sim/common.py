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
from typing import Any


from harness.ocppj import CallError
from harness.sim import defects as defects_mod
from harness.sim.defects import DefectName

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
