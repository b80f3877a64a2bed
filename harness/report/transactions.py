"""Transactions read from a test's frames, for the report's pictures (docs/rules-report.md): power
(Power.Active.Import, else Current.Import × Voltage), the energy register, the connector's statuses and the
charging limits the platform set (SetChargingProfile / ClearChargingProfile the charger Accepted).

Sans-I/O: functions of the report JSON's frames. Times are the harness's clock (when the frame arrived:
``mono``, else ``time``), so limits, statuses and readings share one axis; a MeterValues carrying several
meterValue entries places each one by its own timestamp relative to the newest.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

NOMINAL_VOLTAGE = 230.0  # V phase-to-neutral when the charger reports no Voltage
DEFAULT_PHASES = 3  # OCPP 1.6 §7.13 ChargingSchedulePeriod.numberPhases: "3 if absent"
DEFAULT_MEASURAND = "Energy.Active.Import.Register"  # OCPP 1.6 §7.45 SampledValue defaults
DEFAULT_CONTEXT = "Sample.Periodic"
DEFAULT_UNIT = "Wh"
PERIODIC = "Sample.Periodic"


def _num(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def parse_time(value: Any) -> float | None:
    """An RFC 3339 time as POSIX seconds (None when it does not parse; no zone means UTC)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        when = _dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    return when.timestamp()


# --------------------------------------------------------------------------------------------
# Reading frames
# --------------------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float  # harness clock, s
    seq: int
    watts: float | None
    how: str  # how the power was obtained, for the tooltip
    energy_wh: float | None
    contexts: tuple[str, ...]
    stamp: float | None  # the charger's timestamp, POSIX s
    phases: int | None = None  # phases carrying ≥ 1 A, when current per phase is reported
    volts: float | None = None  # mean Voltage reported


@dataclass
class Profile:
    t: float  # when the charger Accepted it
    seq: int
    connector: int
    purpose: str
    profile_id: Any
    stack_level: int
    unit: str  # "A" or "W"
    periods: list[tuple[float, float, int | None]]  # (startPeriod s, limit, numberPhases)
    start: float | None  # startSchedule, POSIX s (charger clock)
    duration: float | None
    transaction_id: Any = None


@dataclass
class Clear:
    t: float
    seq: int
    profile_id: Any
    connector: int | None
    purpose: str | None
    stack_level: int | None


@dataclass
class Transaction:
    connector: int
    start_t: float
    start_seq: int
    transaction_id: Any = None
    start_stamp: float | None = None
    meter_start: float | None = None
    stop_t: float | None = None
    stop_seq: int | None = None
    stop_stamp: float | None = None
    meter_stop: float | None = None
    samples: list[Sample] = field(default_factory=list)
    statuses: list[tuple[float, str, int]] = field(default_factory=list)  # (t, status, seq), incl. the one before
    limits: list[Profile | Clear] = field(default_factory=list)
    end_t: float = 0.0  # the last time the picture should show


def _power(values: Sequence[Mapping[str, Any]]) -> tuple[float | None, str, float | None, dict[str, float], float | None]:
    """(watts, how, energy Wh, current per phase, mean voltage) of one meterValue's sampledValues."""
    power_total: list[float] = []
    power_phase: dict[str, float] = {}
    currents: dict[str, float] = {}
    current_total: list[float] = []
    volts: dict[str, float] = {}
    energy: float | None = None
    for sv in values:
        if not isinstance(sv, Mapping):
            continue
        x = _num(sv.get("value"))
        if x is None:
            continue
        measurand = str(sv.get("measurand") or DEFAULT_MEASURAND)
        unit = str(sv.get("unit") or ("Wh" if measurand.startswith("Energy") else ""))
        phase = str(sv.get("phase") or "")
        if unit.lower().startswith("k"):
            x *= 1000.0
        if measurand == "Power.Active.Import":
            (power_phase.__setitem__(phase, x) if phase else power_total.append(x))
        elif measurand == "Current.Import":
            if phase[:2] in ("L1", "L2", "L3"):
                currents[phase[:2]] = x
            elif not phase:
                current_total.append(x)
        elif measurand == "Voltage":
            volts[phase[:2] if phase else ""] = x
        elif measurand == "Energy.Active.Import.Register" and not phase and energy is None:
            energy = x
    watts: float | None = None
    how = ""
    if power_total:
        watts, how = power_total[0], "Power.Active.Import"
    elif power_phase:
        watts, how = sum(power_phase.values()), "Power.Active.Import per phase, summed"
    elif currents or current_total:
        mean = sum(volts.values()) / len(volts) if volts else None
        assumed = " (230 V assumed: no Voltage)" if mean is None else ""
        v = mean or NOMINAL_VOLTAGE
        if currents:
            watts = sum(a * volts.get(p, v) for p, a in currents.items())
            how = "Current.Import × Voltage per phase" + assumed
        else:
            watts = current_total[0] * v
            how = "Current.Import × Voltage (no phase given: one phase assumed)" + assumed
    return watts, how, energy, currents, (sum(volts.values()) / len(volts) if volts else None)


def _clock(frames: Sequence[Mapping[str, Any]]) -> str:
    return "mono" if frames and all(_num(f.get("mono")) is not None for f in frames) else "time"


def _t(frame: Mapping[str, Any], clock: str) -> float | None:
    return _num(frame.get("mono")) if clock == "mono" else parse_time(frame.get("time"))


def _decode(frame: Mapping[str, Any]) -> list[Any] | None:
    text = frame.get("text")
    if not isinstance(text, str) or not text.startswith("["):
        return None
    try:
        msg = json.loads(text)
    except ValueError:
        return None
    return msg if isinstance(msg, list) and len(msg) >= 3 else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _profile(t: float, seq: int, connector: int, payload: Mapping[str, Any]) -> Profile | None:
    p = payload.get("csChargingProfiles")
    if not isinstance(p, Mapping):
        return None
    sched: Mapping[str, Any] = p["chargingSchedule"] if isinstance(p.get("chargingSchedule"), Mapping) else {}
    periods = []
    for period in sched.get("chargingSchedulePeriod") or []:
        if not isinstance(period, Mapping):
            continue
        start, limit = _num(period.get("startPeriod")), _num(period.get("limit"))
        if start is None or limit is None:
            continue
        periods.append((start, limit, _int(period.get("numberPhases"))))
    periods.sort(key=lambda x: x[0])
    kind = str(p.get("chargingProfileKind") or "")
    return Profile(
        t=t, seq=seq, connector=connector,
        purpose=str(p.get("chargingProfilePurpose") or ""),
        profile_id=p.get("chargingProfileId"),
        stack_level=_int(p.get("stackLevel")) or 0,
        unit=str(sched.get("chargingRateUnit") or "A").upper(),
        periods=periods,
        start=None if kind == "Relative" else parse_time(sched.get("startSchedule")),
        duration=_num(sched.get("duration")),
        transaction_id=p.get("transactionId"),
    )


def transactions(frames: Sequence[Mapping[str, Any]]) -> list[Transaction]:
    """The transactions in a run of frames, with their samples, statuses and the limits that applied."""
    clock = _clock(frames)
    calls: dict[tuple[str, str], tuple[str, Mapping[str, Any], float, int, Any]] = {}
    found: list[Transaction] = []
    open_by_connector: dict[int, Transaction] = {}
    statuses: dict[int, list[tuple[float, str, int]]] = {}
    limits: list[Profile | Clear] = []
    last_t = None
    tx: Transaction | None
    for f in frames:
        t = _t(f, clock)
        msg = _decode(f)
        if t is None or msg is None:
            continue
        last_t = t
        seq = _int(f.get("seq")) or 0
        direction = str(f.get("direction") or "")
        kind, uid = msg[0], str(msg[1])
        if kind == 2 and len(msg) >= 4 and isinstance(msg[3], Mapping):
            action, payload = str(msg[2]), msg[3]
            calls[(direction, uid)] = (action, payload, t, seq, f)
            if direction.startswith("charger"):
                connector = _int(payload.get("connectorId"))
                if action == "StartTransaction" and connector is not None:
                    started = Transaction(connector, t, seq, start_stamp=parse_time(payload.get("timestamp")),
                                          meter_start=_num(payload.get("meterStart")))
                    found.append(started)
                    open_by_connector[connector] = started
                elif action == "StopTransaction":
                    tid = payload.get("transactionId")
                    tx = next((x for x in reversed(found) if x.transaction_id == tid and x.stop_t is None), None)
                    if tx is None:
                        tx = next((x for x in reversed(found) if x.stop_t is None), None)
                    if tx is not None:
                        tx.stop_t, tx.stop_seq = t, seq
                        tx.stop_stamp = parse_time(payload.get("timestamp"))
                        tx.meter_stop = _num(payload.get("meterStop"))
                        open_by_connector.pop(tx.connector, None)
                elif action == "StatusNotification" and connector is not None:
                    statuses.setdefault(connector, []).append((t, str(payload.get("status") or "?"), seq))
                elif action == "MeterValues" and connector is not None:
                    tid = payload.get("transactionId")
                    tx = open_by_connector.get(connector)
                    if tid is not None and (tx is None or tx.transaction_id not in (None, tid)):
                        # a transaction that started before these frames (or another one): its own entry
                        tx = next((x for x in found if x.transaction_id == tid), None)
                        if tx is None:
                            tx = earlier = Transaction(connector, t, seq, transaction_id=tid)
                            found.append(earlier)
                            open_by_connector[connector] = earlier
                    if tx is not None:
                        _add_samples(tx, payload, t, seq)
        elif kind in (3, 4):
            # an answer: to the charger's CALL when it goes csms→charger, to the platform's otherwise
            asked = "charger→csms" if direction.startswith("csms") else "csms→charger"
            call = calls.pop((asked, uid), None)
            if call is None:
                continue
            action, payload, _, cseq, _ = call
            answer = msg[2] if kind == 3 and isinstance(msg[2], Mapping) else {}
            if action == "StartTransaction":
                tx = next((x for x in found if x.start_seq == cseq), None)
                if tx is not None:
                    tx.transaction_id = answer.get("transactionId")
            elif action in ("SetChargingProfile", "ClearChargingProfile") and answer.get("status") == "Accepted":
                if action == "SetChargingProfile":
                    prof = _profile(t, seq, _int(payload.get("connectorId")) or 0, payload)
                    if prof is not None:
                        limits.append(prof)
                else:
                    limits.append(Clear(t, seq, payload.get("id"), _int(payload.get("connectorId")),
                                        payload.get("chargingProfilePurpose"), _int(payload.get("stackLevel"))))
    for x_tx in found:
        _finish(x_tx, found, statuses, limits, last_t)
    return found


def _finish(tx: Transaction, found: list[Transaction], statuses: Mapping[int, list[tuple[float, str, int]]],
            limits: list[Profile | Clear], last_t: float | None) -> None:
    """The window a transaction's picture shows, its statuses and the limits that may apply to it."""
    end = tx.stop_t if tx.stop_t is not None else (last_t or tx.start_t)
    if tx.samples:
        end = max(end, max(s.t for s in tx.samples))
    lead = [s for s in statuses.get(tx.connector, []) if s[0] <= tx.start_t]
    tail = [s for s in statuses.get(tx.connector, []) if tx.start_t < s[0]]
    nxt = next((x.start_t for x in found if x.connector == tx.connector and x.start_t > tx.start_t), None)
    # statuses after the stop until the next transaction on the connector (Finishing, Available)
    tx.statuses = lead[-1:] + [s for s in tail if nxt is None or s[0] < nxt]
    if tx.statuses:
        end = max(end, tx.statuses[-1][0])
    tx.end_t = end
    tx.limits = [x for x in limits if isinstance(x, Clear) or x.connector in (0, tx.connector)]


def _add_samples(tx: Transaction, payload: Mapping[str, Any], t: float, seq: int) -> None:
    entries = [e for e in payload.get("meterValue") or [] if isinstance(e, Mapping)]
    stamps = [parse_time(e.get("timestamp")) for e in entries]
    newest = max((s for s in stamps if s is not None), default=None)
    for entry, stamp in zip(entries, stamps, strict=True):
        values = [v for v in entry.get("sampledValue") or [] if isinstance(v, Mapping)]
        watts, how, energy, currents, volts = _power(values)
        phases = sum(1 for a in currents.values() if a >= 1) if currents else None
        contexts = tuple(sorted({str(v.get("context") or DEFAULT_CONTEXT) for v in values})) or (DEFAULT_CONTEXT,)
        at = t + (stamp - newest) if stamp is not None and newest is not None else t
        tx.samples.append(Sample(at, seq, watts, how, energy, contexts, stamp, phases or None, volts))
