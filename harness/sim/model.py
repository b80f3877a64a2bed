"""The reference charger's physical model: connectors, EVs, meters and the §4.9 status machine.

Sans-I/O and clock-free: every call takes `now`, monotonic seconds. The charger advances the
model, changes it (plug, pause, fault, limit, transaction) and collects the status changes it
must report with StatusNotification.

Physics (IEC 61851-1 mode 3, simplified):
- The EVSE offers a current per phase: min(hardware maximum, smart-charging limit). An offer
  below 6 A cannot be signalled on the control pilot, so it means "no energy" (SuspendedEVSE).
- The EV draws min(offer, its own maximum) on min(its phases, the installation's phases, the
  limit's numberPhases) phases, unless it paused, its battery is full, or no transaction runs.
- Power = sum of V x I per phase; the meter integrates it into a monotonic register (Wh) that
  survives reboots (the model object outlives the charger's connection).
- Status is derived from that state; SuspendedEVSE wins over SuspendedEV (§4.9).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness import spec16
from harness.sim.defects import DefectName

log = logging.getLogger("harness.sim.model")

MIN_PILOT_CURRENT = 6.0  # A: IEC 61851-1, the lowest current a PWM control pilot can offer


class IllegalTransition(AssertionError):
    """A status change §4.9 does not allow (raised only by a strict StatusMachine)."""


class StatusMachine:
    """The status last reported for one connector; refuses (strict) or logs illegal §4.9 transitions."""

    def __init__(self, connector_id: int, initial: str = spec16.AVAILABLE, *, strict: bool = False) -> None:
        self.connector_id = connector_id
        self.status = initial
        self.strict = strict
        self.history: list[tuple[str, str]] = []  # (from, to) of every change, for tests and diagnostics

    def can(self, new: str) -> bool:
        return spec16.is_legal_transition(self.status, new, connector_id=self.connector_id)

    def set(self, new: str) -> bool:
        """Move to `new`; True if the status changed."""
        if new == self.status:
            return False
        if not self.can(new):
            message = f"connector {self.connector_id}: illegal transition {self.status} -> {new} (OCPP 1.6 §4.9)"
            if self.strict:
                raise IllegalTransition(message)
            log.warning(message)
        self.history.append((self.status, new))
        del self.history[:-1000]
        self.status = new
        return True


@dataclass
class EV:
    """The vehicle on a connector."""

    phases: int = 3
    max_current: float = 32.0  # A per phase its on-board charger accepts
    battery_wh: float = 60_000.0
    soc: float = 50.0  # percent
    paused: bool = False  # stopped drawing by itself (S2 open, or the driver paused it)

    @property
    def full(self) -> bool:
        return self.soc >= 100.0

    @property
    def wants_power(self) -> bool:
        return not self.paused and not self.full


@dataclass(frozen=True)
class Snapshot:
    """What the meter and the EVSE measure on a connector at one instant."""

    register_wh: float  # Energy.Active.Import.Register
    power_w: float  # Power.Active.Import (sum of V x I)
    currents: tuple[float, ...]  # Current.Import per installation phase (L1, L2, L3)
    voltages: tuple[float, ...]  # Voltage per installation phase (to N)
    offered_a: float  # Current.Offered per phase
    phases_offered: int
    soc: float | None  # SoC of the EV, None without an EV
    frequency: float = 50.0
    temperature: float = 25.0

    @property
    def offered_w(self) -> float:
        return sum(v * self.offered_a for v in self.voltages[: self.phases_offered])


@dataclass
class Transaction:
    """A transaction on a connector; `handle` is the charger's (e.g. its offline queue's TxRef)."""

    handle: Any  # opaque to the model (any object in its tests); the charger's TxRef, whose fields it reads
    connector_id: int
    id_tag: str
    meter_start_wh: int
    started_mono: float
    begin: Snapshot
    started_at: dt.datetime | None = None  # the charger's timestamp for it
    remote: bool = False


@dataclass(frozen=True)
class StatusChange:
    connector_id: int
    status: str
    error_code: str
    info: str | None = None


@dataclass
class Connector:
    connector_id: int
    phases: int  # of the installation
    voltage: float
    max_current: float  # A per phase, hardware / cable rating
    register_wh: float = 0.0
    ev: EV | None = None
    fault: str | None = None  # error code while faulted
    unavailable: bool = False  # ChangeAvailability Inoperative, in force
    scheduled_unavailable: bool | None = None  # ChangeAvailability waiting for the transaction to end
    transaction: Transaction | None = None
    finished: bool = False  # a transaction ended and the EV is still plugged (Finishing)
    authorized_tag: str | None = None  # an idTag accepted before the EV was plugged
    held: bool = False  # kept for its last user after an unplug (reported Reserved): defect "reserved-after-unplug"
    authorized_mono: float = 0.0
    limit_amps: float | None = None  # composite smart-charging limit in force (None = none)
    limit_phases: int | None = None
    last_mono: float = 0.0
    status: StatusMachine = field(init=False)

    def __post_init__(self) -> None:
        self.status = StatusMachine(self.connector_id)

    @property
    def plugged(self) -> bool:
        return self.ev is not None

    # --- electrical state ----------------------------------------------------------------------

    def offered(self, cp_blocked: bool) -> tuple[float, int]:
        """(amps per phase, phases) the EVSE offers; 0 A when it cannot or may not deliver energy."""
        phases = self.phases if self.limit_phases is None else max(1, min(self.phases, self.limit_phases))
        if cp_blocked or self.fault is not None or self.unavailable or self.transaction is None:
            return 0.0, phases
        amps = self.max_current if self.limit_amps is None else min(self.max_current, max(0.0, self.limit_amps))
        if amps < MIN_PILOT_CURRENT:
            return 0.0, phases
        return amps, phases

    def evse_suspended(self, cp_blocked: bool) -> bool:
        return self.transaction is not None and self.offered(cp_blocked)[0] <= 0.0

    def drawn(self, cp_blocked: bool) -> tuple[float, int]:
        """(amps per phase, phases) the EV actually draws."""
        amps, phases = self.offered(cp_blocked)
        ev = self.ev
        if ev is None or amps <= 0.0 or not ev.wants_power:
            return 0.0, 0
        return min(amps, ev.max_current), min(ev.phases, phases)

    def snapshot(self, cp_blocked: bool) -> Snapshot:
        amps, used = self.drawn(cp_blocked)
        offered, phases_offered = self.offered(cp_blocked)
        currents = tuple(amps if i < used else 0.0 for i in range(self.phases))
        voltages = tuple(self.voltage for _ in range(self.phases))
        power = sum(v * i for v, i in zip(voltages, currents))
        return Snapshot(
            register_wh=self.register_wh,
            power_w=power,
            currents=currents,
            voltages=voltages,
            offered_a=offered,
            phases_offered=phases_offered,
            soc=None if self.ev is None else round(self.ev.soc, 1),
        )

    def advance(self, now: float, cp_blocked: bool) -> None:
        """Integrate the power drawn since the last call into the register and the EV's battery."""
        dt = now - self.last_mono
        self.last_mono = max(self.last_mono, now)
        if dt <= 0:
            return
        power = self.snapshot(cp_blocked).power_w
        if power <= 0 or self.ev is None:
            return
        ev = self.ev
        room_wh = max(0.0, (100.0 - ev.soc) / 100.0 * ev.battery_wh)
        energy = min(power * dt / 3600.0, room_wh)  # a full battery takes no more
        self.register_wh += energy
        ev.soc = min(100.0, ev.soc + energy / ev.battery_wh * 100.0) if room_wh > energy else 100.0

    def seconds_until_full(self, cp_blocked: bool) -> float | None:
        power = self.snapshot(cp_blocked).power_w
        if power <= 0 or self.ev is None:
            return None
        return max(0.0, (100.0 - self.ev.soc) / 100.0 * self.ev.battery_wh) / power * 3600.0


class ChargePointModel:
    """All connectors of one charge point plus connector 0 (the charge point as a whole)."""

    def __init__(
        self,
        *,
        connectors: int = 1,
        phases: int = 3,
        voltage: float = 230.0,
        max_current: float = 32.0,
        meter_start_wh: float = 1_000_000.0,
        defects: Iterable[str] = (),
        strict: bool = False,
        now: float = 0.0,
    ) -> None:
        if connectors < 1:
            raise ValueError("at least one connector")
        if phases not in (1, 2, 3):
            raise ValueError("phases must be 1, 2 or 3")
        self.defects = frozenset(defects)
        self.phases = phases
        self.voltage = voltage
        self.max_current = max_current
        self.connectors: dict[int, Connector] = {}
        for cid in range(1, connectors + 1):
            c = Connector(cid, phases, voltage, max_current, register_wh=meter_start_wh + (cid - 1) * 100_000.0,
                          last_mono=now)
            c.status = StatusMachine(cid, strict=strict)
            self.connectors[cid] = c
        self.status0 = StatusMachine(0, strict=strict)
        self.cp_unavailable = False
        self.cp_scheduled_unavailable: bool | None = None
        self.cp_fault: str | None = None

    # --- helpers -------------------------------------------------------------------------------

    def connector(self, connector_id: int) -> Connector:
        try:
            return self.connectors[connector_id]
        except KeyError:
            raise ValueError(f"no connector {connector_id} (this charge point has 1..{len(self.connectors)})") from None

    @property
    def cp_blocked(self) -> bool:
        return self.cp_fault is not None or self.cp_unavailable

    def advance(self, now: float) -> None:
        for c in self.connectors.values():
            c.advance(now, self.cp_blocked)

    def snapshot(self, connector_id: int, now: float) -> Snapshot:
        self.advance(now)
        return self.connector(connector_id).snapshot(self.cp_blocked)

    def transactions(self) -> list[Transaction]:
        return [c.transaction for c in self.connectors.values() if c.transaction is not None]

    # --- physical acts -------------------------------------------------------------------------

    def plug(self, connector_id: int, now: float, ev: EV | None = None) -> None:
        c = self.connector(connector_id)
        self.advance(now)
        c.held = False
        if c.ev is None:
            c.ev = ev or EV(phases=self.phases)

    def unplug(self, connector_id: int, now: float) -> None:
        c = self.connector(connector_id)
        self.advance(now)
        c.ev = None
        c.authorized_tag = None
        # Firmware bug "never-available-after-unplug": the session-finished flag is not cleared.
        if DefectName.NEVER_AVAILABLE_AFTER_UNPLUG not in self.defects:
            c.finished = False

    def ev_pause(self, connector_id: int, paused: bool, now: float) -> None:
        c = self.connector(connector_id)
        self.advance(now)
        if c.ev is not None:
            c.ev.paused = paused

    def set_fault(self, connector_id: int, error_code: str | None, now: float) -> None:
        """Raise (error_code) or clear (None) a fault; connector 0 = the whole charge point."""
        if error_code is not None and error_code not in spec16.FAULT_ERROR_CODES:
            raise ValueError(f"{error_code!r} is not a ChargePointErrorCode other than NoError")
        self.advance(now)
        if connector_id == 0:
            self.cp_fault = error_code
        else:
            self.connector(connector_id).fault = error_code

    def set_limit(self, connector_id: int, amps: float | None, phases: int | None, now: float) -> None:
        c = self.connector(connector_id)
        if c.limit_amps == amps and c.limit_phases == phases:
            return
        self.advance(now)
        c.limit_amps, c.limit_phases = amps, phases

    # --- authorization and transactions ---------------------------------------------------------

    def authorize_before_plug(self, connector_id: int, id_tag: str, now: float) -> None:
        c = self.connector(connector_id)
        c.authorized_tag, c.authorized_mono = id_tag, now

    def clear_authorization(self, connector_id: int) -> None:
        self.connector(connector_id).authorized_tag = None

    def can_start(self, connector_id: int) -> bool:
        c = self.connector(connector_id)
        return c.transaction is None and c.fault is None and not c.unavailable and not self.cp_blocked

    def start_transaction(self, connector_id: int, handle: Any, id_tag: str, now: float, *,
                          remote: bool = False) -> list[StatusChange]:
        """Start a transaction; the status changes to report first (Finishing -> Preparing for a new session)."""
        c = self.connector(connector_id)
        if c.transaction is not None:
            raise ValueError(f"connector {connector_id} already has a transaction")
        self.advance(now)
        changes: list[StatusChange] = []
        if c.finished:
            # §4.9: Finishing -> Charging is not a legal transition; a new session starts from Preparing.
            c.finished = False
            changes = self.update(now)
        snap = c.snapshot(self.cp_blocked)
        c.transaction = Transaction(handle, connector_id, id_tag, int(snap.register_wh), now, snap, remote=remote)
        c.authorized_tag = None
        return changes

    def stop_transaction(self, connector_id: int, now: float) -> tuple[Transaction, Snapshot]:
        """End the transaction; (the transaction, the meter at its end)."""
        c = self.connector(connector_id)
        if c.transaction is None:
            raise ValueError(f"connector {connector_id} has no transaction")
        self.advance(now)
        end = c.snapshot(self.cp_blocked)
        tx, c.transaction = c.transaction, None
        c.finished = c.plugged
        c.limit_amps, c.limit_phases = None, None  # a TxProfile ends with its transaction; re-applied by the charger
        return tx, end

    # --- availability ---------------------------------------------------------------------------

    def busy(self, connector_id: int) -> bool:
        """In use: ChangeAvailability to Inoperative must wait (Scheduled)."""
        c = self.connector(connector_id)
        if c.unavailable and c.transaction is None:
            return False  # already out of service: nobody can be using it
        return c.transaction is not None or (c.plugged and not c.finished) or c.authorized_tag is not None

    def change_availability(self, connector_id: int, operative: bool) -> str:
        """§5.2: "Accepted" (done) or "Scheduled" (after the running transaction); connector 0 = all."""
        targets = list(self.connectors.values()) if connector_id == 0 else [self.connector(connector_id)]
        scheduled = False
        if connector_id == 0:
            if not operative and any(self.busy(c.connector_id) for c in targets):
                self.cp_scheduled_unavailable = True
                scheduled = True
            else:
                self.cp_unavailable = not operative
                self.cp_scheduled_unavailable = None
        for c in targets:
            if not operative and self.busy(c.connector_id):
                c.scheduled_unavailable = True
                scheduled = True
            else:
                c.unavailable = not operative
                c.scheduled_unavailable = None
                if not operative:
                    c.finished = False
        return "Scheduled" if scheduled else "Accepted"

    def _apply_scheduled(self) -> None:
        for c in self.connectors.values():
            if c.scheduled_unavailable and not self.busy(c.connector_id):
                c.unavailable, c.scheduled_unavailable = True, None
                c.finished = False  # the session is over; back in operation a plugged EV makes it Preparing
        if self.cp_scheduled_unavailable and not any(self.busy(cid) for cid in self.connectors):
            self.cp_unavailable, self.cp_scheduled_unavailable = True, None

    # --- status ---------------------------------------------------------------------------------

    def derived_status(self, connector_id: int) -> tuple[str, str]:
        """(status, errorCode) the connector is in, from its state (§4.9)."""
        d = self.defects
        if connector_id == 0:
            if self.cp_fault is not None:
                return spec16.FAULTED, self.cp_fault
            return (spec16.UNAVAILABLE if self.cp_unavailable else spec16.AVAILABLE), spec16.NO_ERROR
        c = self.connector(connector_id)
        fault = c.fault or self.cp_fault
        # Defect "never-faulted" (breaks ST-3): a fault never shows Faulted.
        if fault is not None and DefectName.NEVER_FAULTED not in d:
            return spec16.FAULTED, fault
        if c.unavailable or self.cp_unavailable:
            return spec16.UNAVAILABLE, spec16.NO_ERROR
        if c.transaction is not None:
            if c.evse_suspended(self.cp_blocked):
                status = spec16.SUSPENDED_EVSE
                # Firmware bug "charging-under-zero-limit": the status logic does not count a smart-charging
                # limit below the minimum current as a suspension (it stays Charging at 0 W).
                if DefectName.CHARGING_UNDER_ZERO_LIMIT in d and c.limit_amps is not None and c.limit_amps < MIN_PILOT_CURRENT:
                    status = spec16.CHARGING
            elif c.ev is None or not c.ev.wants_power:
                status = spec16.SUSPENDED_EV
            else:
                status = spec16.CHARGING
            # Defect "never-suspended" (breaks ST-4): Charging while suspended.
            if DefectName.NEVER_SUSPENDED in d and status in (spec16.SUSPENDED_EV, spec16.SUSPENDED_EVSE):
                status = spec16.CHARGING
            # Defect "never-charging-status" (breaks ST-2): SuspendedEV while the EV draws power.
            if DefectName.NEVER_CHARGING_STATUS in d and status == spec16.CHARGING:
                status = spec16.SUSPENDED_EV
            return status, spec16.NO_ERROR
        if c.finished:
            # Firmware bug "illegal-transition": a plugged, idle connector is "Preparing", even right after a session.
            if DefectName.ILLEGAL_TRANSITION in d and c.plugged:
                return spec16.PREPARING, spec16.NO_ERROR
            return spec16.FINISHING, spec16.NO_ERROR
        if c.plugged or c.authorized_tag is not None:
            return spec16.PREPARING, spec16.NO_ERROR
        if c.held:
            return spec16.RESERVED, spec16.NO_ERROR
        return spec16.AVAILABLE, spec16.NO_ERROR

    def update(self, now: float) -> list[StatusChange]:
        """Apply scheduled availability changes and return the status changes to report, connector 0 first."""
        self.advance(now)
        # What the acts did first, then availability changes that were waiting for them (so that
        # e.g. Preparing -> Available -> Unavailable is reported, never Preparing -> Unavailable).
        changes = self._collect()
        self._apply_scheduled()
        return changes + self._collect()

    def _collect(self) -> list[StatusChange]:
        changes: list[StatusChange] = []
        status0, code0 = self.derived_status(0)
        if self.status0.set(status0):
            changes.append(StatusChange(0, status0, code0))
        for cid, c in self.connectors.items():
            status, code = self.derived_status(cid)
            if c.status.set(status):
                changes.append(StatusChange(cid, status, code))
        return changes

    def current_statuses(self) -> list[StatusChange]:
        """The status of connector 0 and every connector, as last set (for boot and triggers)."""
        out = [StatusChange(0, self.status0.status, self.derived_status(0)[1])]
        for cid, c in self.connectors.items():
            code = self.derived_status(cid)[1] if c.status.status == spec16.FAULTED else spec16.NO_ERROR
            out.append(StatusChange(cid, c.status.status, code))
        return out

    def seconds_until_next_event(self) -> float | None:
        """When an EV's battery fills up next (a status change without an act)."""
        times = [t for c in self.connectors.values() if (t := c.seconds_until_full(self.cp_blocked)) is not None]
        return min(times) if times else None
