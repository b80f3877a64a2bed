"""Pictures for the HTML report, drawn from the evidence frames of the report JSON (docs/rules-report.md).

Sans-I/O: every function here takes parts of the report dictionary and returns data or an SVG string;
nothing reads files, clocks or the network. The SVG is self-contained (presentation attributes, no
CSS classes, scripts or fonts from outside), so the page prints and the picture survives copy-paste.

- :func:`transactions` reads a test's frames into transactions: power (Power.Active.Import, else
  Current.Import × Voltage), the energy register, the connector's statuses and the charging limits the
  platform set (SetChargingProfile / ClearChargingProfile the charger Accepted).
- :func:`timeline_svg` draws one transaction; readings the test says it used are ringed, the reading
  that decided is marked with the test's verdict.
- :func:`cadence_svg` draws the periodic samples of a transaction against the sampling-interval grid.
- :func:`pictures_for_test` picks the pictures a test gets.

Times are the harness's clock (when the frame arrived: ``mono``, else ``time``), so limits, statuses and
readings share one axis; a MeterValues carrying several meterValue entries places each one by its own
timestamp relative to the newest. The cadence picture uses the charger's timestamps when every sample
has one (that is when it sampled), else arrival times, and says which.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape as _xml_escape

from .model import Verdict

NOMINAL_VOLTAGE = 230.0  # V phase-to-neutral when the charger reports no Voltage
DEFAULT_PHASES = 3  # OCPP 1.6 §7.13 ChargingSchedulePeriod.numberPhases: "3 if absent"
DEFAULT_MEASURAND = "Energy.Active.Import.Register"  # OCPP 1.6 §7.45 SampledValue defaults
DEFAULT_CONTEXT = "Sample.Periodic"
DEFAULT_UNIT = "Wh"
PERIODIC = "Sample.Periodic"

STATUS_COLOURS: dict[str, str] = {
    "Available": "#d0d7de",
    "Preparing": "#9cd2ff",
    "Charging": "#4ac26b",
    "SuspendedEV": "#f5d76e",
    "SuspendedEVSE": "#f0a04b",
    "Finishing": "#b9a6f0",
    "Reserved": "#c7e6ff",
    "Unavailable": "#8c959f",
    "Faulted": "#ff6f7d",
}
POWER_COLOUR = "#0b6e4f"
LIMIT_COLOUR = "#d1242f"
ENERGY_COLOUR = "#8250df"
VERDICT_COLOURS: dict[str, str] = {Verdict.PASS: "#1a7f37", Verdict.FAIL: "#c0182b", Verdict.INCOMPLETE: "#9a6700"}
NEUTRAL = "#57606a"


def _esc(text: Any) -> str:
    return _xml_escape(str(text), {'"': "&quot;"})


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


# --------------------------------------------------------------------------------------------
# Limits over time
# --------------------------------------------------------------------------------------------


def _active(tx: Transaction, t: float) -> list[Profile]:
    """The profiles in force at *t* (set and not cleared or replaced before *t*)."""
    held: dict[tuple[int, str, int], Profile] = {}
    for x in tx.limits:
        if x.t > t:
            break
        if isinstance(x, Profile):
            # OCPP 1.6 §5.16.2/§3.13.2: a profile with the same id, or the same stackLevel and purpose, replaces it
            for k, old in list(held.items()):
                if old.profile_id == x.profile_id or (k[1] == x.purpose and k[2] == x.stack_level and k[0] == x.connector):
                    del held[k]
            held[(x.connector, x.purpose, x.stack_level)] = x
        else:
            for k, old in list(held.items()):
                if x.profile_id is not None:
                    if old.profile_id == x.profile_id:
                        del held[k]
                elif ((x.connector is None or x.connector == old.connector)
                      and (x.purpose is None or x.purpose == old.purpose)
                      and (x.stack_level is None or x.stack_level == old.stack_level)):
                    del held[k]
    return list(held.values())


def _period(p: Profile, t: float, tx: Transaction) -> tuple[float, int | None] | None:
    """(limit, numberPhases) of profile *p* at harness time *t*, or None when no period applies."""
    if p.start is not None and tx.start_stamp is not None:
        start = tx.start_t + (p.start - tx.start_stamp)  # the charger's clock mapped onto ours
    elif p.start is not None:
        start = min(p.t, tx.start_t)  # an absolute schedule of unknown relation: in force from acceptance
    else:
        start = max(tx.start_t, min(p.t, tx.start_t)) if p.purpose == "TxProfile" else p.t
    offset = t - start
    if p.duration is not None and offset > p.duration:
        return None
    chosen = None
    for begin, limit, phases in p.periods:
        if begin <= offset:
            chosen = (limit, phases)
    return chosen


@dataclass
class Step:
    t0: float
    t1: float
    watts: float
    label: str  # e.g. "0 A", "6 A ≈ 4.1 kW (3 × 230 V)"


def limit_steps(tx: Transaction, volts: float, phases_seen: int | None) -> list[Step]:
    """The effective limit (the lowest of those in force) as steps over the transaction's window, in W."""
    if not tx.limits:
        return []
    points = sorted({tx.start_t, tx.end_t, *(x.t for x in tx.limits if tx.start_t <= x.t <= tx.end_t)})
    for x in tx.limits:
        if isinstance(x, Profile):
            for begin, _, _ in x.periods:
                base = x.t if x.start is None else None
                if base is not None and tx.start_t < base + begin < tx.end_t:
                    points.append(base + begin)
    points = sorted(set(points))
    steps: list[Step] = []
    for t0, t1 in zip(points, points[1:]):
        best: tuple[float, str] | None = None
        for p in _active(tx, t0 + 1e-9):
            got = _period(p, t0 + 1e-9, tx)
            if got is None:
                continue
            limit, n = got
            if p.unit == "W":
                watts, label = limit, f"{_fmt_w(limit)}"
            else:
                n = phases_seen or n or DEFAULT_PHASES
                watts = limit * n * volts
                label = f"{limit:g} A" if limit == 0 else f"{limit:g} A ≈ {_fmt_w(watts)} ({n} × {volts:.0f} V)"
            if best is None or watts < best[0]:
                best = (watts, label)
        if best is None:
            continue
        if steps and steps[-1].label == best[1] and abs(steps[-1].t1 - t0) < 1e-9:
            steps[-1].t1 = t1
        else:
            steps.append(Step(t0, t1, best[0], best[1]))
    return steps


def _fmt_w(w: float) -> str:
    return f"{w / 1000:.1f} kW" if abs(w) >= 1000 else f"{w:.0f} W"


# --------------------------------------------------------------------------------------------
# Which readings a test used (SC-2's evidence), read defensively
# --------------------------------------------------------------------------------------------

_SEQ_RE = re.compile(r"(?:frame\s*#|seq\s+|#)(\d+)")


def _seqs(text: Any) -> list[int]:
    return [int(m) for m in _SEQ_RE.findall(str(text))]


def used_readings(details: Mapping[str, Any] | None) -> tuple[set[int], set[int]]:
    """(used, decisive) frame numbers from a test's evidence details.

    Understands ``details["readings"]`` as a list of observations ``{"readings_used": [...], "verdict": ...}``
    whose entries are strings naming ``frame #N`` (or ``seq N``) and ending ``-> yes/no/unknown``, or
    dicts with ``seq``/``frame`` and optional ``used``/``decided``/``state``; and, when there is none,
    the frames the notes name ("seq N: …") as the deciding ones.
    """
    used: set[int] = set()
    decisive: set[int] = set()
    details = details if isinstance(details, Mapping) else {}
    readings = details.get("readings")
    observations = readings if isinstance(readings, list) else ([readings] if isinstance(readings, Mapping) else [])
    for obs in observations:
        if isinstance(obs, Mapping) and ("seq" in obs or "frame" in obs):
            seq = _int(obs.get("seq", obs.get("frame")))
            if seq is None:
                continue
            if obs.get("used", True):
                used.add(seq)
            if obs.get("decided") or obs.get("decisive") or str(obs.get("state", "")).lower() == "yes":
                decisive.add(seq)
            continue
        if not isinstance(obs, Mapping):
            continue
        entries = obs.get("readings_used") or obs.get("used") or []
        last_yes: int | None = None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, Mapping):
                seq = _int(entry.get("seq", entry.get("frame")))
                state = str(entry.get("state", "")).lower()
            else:
                found = _seqs(str(entry).split("->")[0])
                seq = found[0] if found else None
                state = str(entry).rsplit("->", 1)[-1].strip().split(":")[0].lower() if "->" in str(entry) else ""
            if seq is None:
                continue
            used.add(seq)
            if state == "yes":
                last_yes = seq
            elif state == "no" and str(obs.get("verdict", "")).lower() == "no":
                decisive.add(seq)
        if last_yes is not None:
            decisive.add(last_yes)
    if not used and not decisive:
        for note in details.get("notes") or []:
            for seq in _seqs(re.sub(r"frames\s*#\d+\s*\.\.\s*#\d+", "", str(note))):
                decisive.add(seq)
        used |= decisive
    return used, decisive


# --------------------------------------------------------------------------------------------
# SVG helpers
# --------------------------------------------------------------------------------------------

W, H = 720.0, 270.0
LEFT, RIGHT = 56.0, 62.0  # room for the axes' labels
BAND_TOP, BAND_H = 8.0, 18.0
PLOT_TOP, PLOT_BOTTOM = 40.0, 222.0
FONT = 'font-family="system-ui,-apple-system,Segoe UI,Roboto,Arial,sans-serif"'


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    x = first
    while x <= hi + 1e-9 * step:
        ticks.append(round(x, 10))
        x += step
    return ticks


def _fmt_s(s: float, span: float) -> str:
    if span < 2:
        return f"{s * 1000:.0f} ms"
    if span < 180:
        return f"{s:g} s"
    m, sec = divmod(int(round(s)), 60)
    return f"{m}:{sec:02d}"


def _svg_open(title: str, desc: str, height: float = H) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W:g} {height:g}" width="100%" '
        f'preserveAspectRatio="xMidYMid meet" role="img" class="pic" {FONT} font-size="11">',
        f"<title>{_esc(title)}</title><desc>{_esc(desc)}</desc>",
        f'<rect x="0" y="0" width="{W:g}" height="{height:g}" fill="#ffffff"/>',
    ]


# --------------------------------------------------------------------------------------------
# The transaction timeline
# --------------------------------------------------------------------------------------------


def timeline_svg(
    tx: Transaction,
    *,
    used: Iterable[int] = (),
    decisive: Iterable[int] = (),
    verdict: str | None = None,
    requirement: str = "SC-2",
) -> str:
    """One transaction: status bands on top; measured power (left axis), the platform's limit (dashed) and
    the energy register (right axis) below; readings in *used* ringed, those in *decisive* marked in the
    colour of *verdict* with their frame number."""
    used, decisive = set(used), set(decisive)
    t0 = tx.start_t
    x_lo = min([t0, *(s.t for s in tx.samples)]) if tx.samples else t0
    x_hi = max(tx.end_t, x_lo)
    span = x_hi - x_lo
    pad = span * 0.03 if span > 0 else 0.5
    x_lo_p, x_hi_p = x_lo - pad, x_hi + pad
    span_p = x_hi_p - x_lo_p

    def X(t: float) -> float:
        return LEFT + (t - x_lo_p) / span_p * (W - LEFT - RIGHT)

    # the limit in A drawn in W with the phases and voltage the readings show (the most phases seen drawing)
    vs = [s.volts for s in tx.samples if s.volts]
    volts_seen = sum(vs) / len(vs) if vs else NOMINAL_VOLTAGE
    phases_seen = max((s.phases for s in tx.samples if s.phases), default=None)
    steps = limit_steps(tx, volts_seen, phases_seen)
    powers = [s.watts for s in tx.samples if s.watts is not None]
    top = max([*powers, *(st.watts for st in steps), 1.0])
    p_ticks = _nice_ticks(0, top * 1.08, 4)
    p_hi = max(p_ticks[-1], top * 1.08)

    def Y(w: float) -> float:
        return PLOT_BOTTOM - max(0.0, min(w, p_hi)) / p_hi * (PLOT_BOTTOM - PLOT_TOP)

    # the register drawn as its rise since the transaction's first value (the absolute count is in the tooltips)
    energies = [s.energy_wh for s in tx.samples if s.energy_wh is not None]
    e_base = tx.meter_start if tx.meter_start is not None else (energies[0] if energies else 0.0)
    rises = [e - e_base for e in energies]
    e_lo, e_hi = (min([0.0, *rises]), max([0.0, *rises])) if rises else (0.0, 1.0)
    if e_hi - e_lo < 1e-9:
        e_hi = e_lo + 1
    e_ticks = _nice_ticks(e_lo, e_hi, 3)

    def YE(wh: float) -> float:
        return PLOT_BOTTOM - (wh - e_base - e_lo) / (e_hi - e_lo) * (PLOT_BOTTOM - PLOT_TOP - 10) - 5

    title = f"Transaction {tx.transaction_id if tx.transaction_id is not None else '?'} on connector {tx.connector}"
    desc = (f"{len(tx.samples)} meter readings, {len(steps)} limit step(s), {len(tx.statuses)} status change(s)"
            + (f"; {requirement} verdict {verdict}, decided by frame(s) {', '.join('#' + str(s) for s in sorted(decisive))}"
               if decisive and verdict else ""))
    out = _svg_open(title, desc)
    # status bands
    bands = tx.statuses
    if bands:
        out.append(f'<text x="{LEFT - 6:g}" y="{BAND_TOP + 13:g}" text-anchor="end" fill="{NEUTRAL}">status</text>')
    for i, (ts, status, seq) in enumerate(bands):
        a = max(ts, x_lo_p)
        b = bands[i + 1][0] if i + 1 < len(bands) else x_hi_p
        if b <= a:
            continue
        xa, xb = X(a), X(b)
        colour = STATUS_COLOURS.get(status, "#eaeef2")
        out.append(f'<rect x="{xa:.1f}" y="{BAND_TOP:g}" width="{max(xb - xa, 0.8):.1f}" height="{BAND_H:g}" '
                   f'fill="{colour}" data-status="{_esc(status)}"><title>{_esc(status)} (frame #{seq})</title></rect>')
        if xb - xa > 7 * len(status) + 6:
            out.append(f'<text x="{(xa + xb) / 2:.1f}" y="{BAND_TOP + 13:g}" text-anchor="middle" fill="#1f2328">{_esc(status)}</text>')
    # axes and grid
    for w in p_ticks:
        y = Y(w)
        out.append(f'<line x1="{LEFT:g}" x2="{W - RIGHT:g}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>')
        out.append(f'<text x="{LEFT - 6:g}" y="{y + 4:.1f}" text-anchor="end" fill="{POWER_COLOUR}">{_esc(_fmt_w(w))}</text>')
    if energies:
        for wh in e_ticks:
            if e_lo <= wh <= e_hi:
                label = f"+{wh / 1000:g} kWh" if abs(wh) >= 10_000 else f"+{wh:g} Wh"
                out.append(f'<text x="{W - RIGHT + 6:g}" y="{YE(e_base + wh) + 4:.1f}" fill="{ENERGY_COLOUR}">{_esc(label)}</text>')
    out.append(f'<line x1="{LEFT:g}" x2="{W - RIGHT:g}" y1="{PLOT_BOTTOM:g}" y2="{PLOT_BOTTOM:g}" stroke="#8c959f"/>')
    for tick in _nice_ticks(x_lo - t0, x_hi - t0, 6):
        x = X(t0 + tick)
        if LEFT - 1 <= x <= W - RIGHT + 1:
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{PLOT_BOTTOM:g}" y2="{PLOT_BOTTOM + 4:g}" stroke="#8c959f"/>')
            out.append(f'<text x="{x:.1f}" y="{PLOT_BOTTOM + 16:g}" text-anchor="middle" fill="{NEUTRAL}">{_esc(_fmt_s(tick, span))}</text>')
    out.append(f'<text x="{(LEFT + W - RIGHT) / 2:g}" y="{H - 6:g}" text-anchor="middle" fill="{NEUTRAL}">'
               f"time since StartTransaction (harness clock)</text>")
    # start / stop markers
    for t, label in ((t0, "start"), (tx.stop_t, "stop")):
        if t is None:
            continue
        x = X(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{PLOT_TOP - 6:g}" y2="{PLOT_BOTTOM:g}" stroke="#1f2328" stroke-dasharray="2 3"/>')
        out.append(f'<text x="{x + 3:.1f}" y="{PLOT_TOP + 4:g}" fill="#1f2328">{label}</text>')
    # energy register
    e_pts = [(X(s.t), YE(s.energy_wh)) for s in tx.samples if s.energy_wh is not None]
    if e_pts:
        out.append(f'<polyline points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in e_pts)}" fill="none" '
                   f'stroke="{ENERGY_COLOUR}" stroke-width="1.2" stroke-dasharray="1 2" data-series="energy"/>')
    # power
    p_samples = [s for s in tx.samples if s.watts is not None]
    if p_samples:
        pts = " ".join(f"{X(s.t):.1f},{Y(s.watts or 0):.1f}" for s in p_samples)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{POWER_COLOUR}" stroke-width="2" data-series="power"/>')
    for s in tx.samples:
        if s.watts is None:
            continue
        x, y = X(s.t), Y(s.watts)
        tip = f"frame #{s.seq}: {_fmt_w(s.watts)} ({s.how})" + (f", register {s.energy_wh:g} Wh" if s.energy_wh is not None else "")
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{POWER_COLOUR}" data-seq="{s.seq}"><title>{_esc(tip)}</title></circle>')
    # the limit, over the power line (a 0 A limit and 0 W lie on the same line: both must show)
    for st in steps:
        xa, xb, y = X(st.t0), X(st.t1), Y(st.watts)
        out.append(f'<line x1="{xa:.1f}" x2="{xb:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{LIMIT_COLOUR}" stroke-width="2" '
                   f'stroke-dasharray="6 3" data-limit="{_esc(st.label)}"><title>limit {_esc(st.label)}</title></line>')
        ty = y - 5 if y - 5 > PLOT_TOP + 14 else y + 14  # above the line, or below it near the top
        out.append(f'<text x="{xa + 3:.1f}" y="{ty:.1f}" fill="{LIMIT_COLOUR}">limit {_esc(st.label)}</text>')
    # the readings the verdict rests on
    colour = VERDICT_COLOURS.get(str(verdict), NEUTRAL)
    shown: set[int] = set()
    for s in tx.samples:
        if s.seq in shown or (s.seq not in used and s.seq not in decisive):
            continue
        shown.add(s.seq)
        y = Y(s.watts) if s.watts is not None else (YE(s.energy_wh) if s.energy_wh is not None else PLOT_BOTTOM)
        x = X(s.t)
        if s.seq in decisive:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="7" fill="none" stroke="{colour}" stroke-width="2.5" '
                       f'data-decided="{s.seq}"><title>{_esc(requirement)} {_esc(verdict or "")}: decided by frame #{s.seq}</title></circle>')
            out.append(f'<text x="{x:.1f}" y="{max(y - 11, PLOT_TOP + 28):.1f}" text-anchor="middle" font-weight="700" '
                       f'fill="{colour}">#{s.seq}</text>')
        else:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="none" stroke="{colour}" stroke-width="1.2" '
                       f'data-used="{s.seq}"><title>used by {_esc(requirement)}: frame #{s.seq}</title></circle>')
    if not p_samples:
        out.append(f'<text x="{(LEFT + W - RIGHT) / 2:g}" y="{(PLOT_TOP + PLOT_BOTTOM) / 2:g}" text-anchor="middle" '
                   f'fill="{NEUTRAL}">no power, current or voltage in these readings</text>')
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# The cadence picture (CFG-2)
# --------------------------------------------------------------------------------------------


def cadence_tolerance(interval: float) -> float:
    """How far one sampling gap may be from the interval (suites/test_meter_values.py uses the same)."""
    return max(0.5, 0.2 * interval)


@dataclass
class Cadence:
    interval: float
    source: str  # "the charger's timestamps" / "arrival times"
    origin: float
    end: float | None
    periodic: list[tuple[float, int]]  # (s since the start, frame seq)
    other: list[tuple[float, int, str]]  # (s since the start, seq, context)


def cadence(tx: Transaction, interval: float) -> Cadence:
    """Sample times relative to the transaction's start, by the charger's timestamps when it gave them all."""
    stamped = tx.start_stamp is not None and tx.samples and all(s.stamp is not None for s in tx.samples)
    if stamped:
        origin = tx.start_stamp or 0.0

        def rel(s: Sample) -> float:
            return (s.stamp or 0.0) - origin

        end = None if tx.stop_stamp is None else tx.stop_stamp - origin
        source = "the charger's timestamps"
    else:
        origin = tx.start_t

        def rel(s: Sample) -> float:
            return s.t - origin

        end = None if tx.stop_t is None else tx.stop_t - origin
        source = "arrival times"
    periodic, other = [], []
    for s in tx.samples:
        if PERIODIC in s.contexts:
            periodic.append((rel(s), s.seq))
        else:
            other.append((rel(s), s.seq, ", ".join(s.contexts)))
    periodic.sort()
    return Cadence(interval, source, origin, end, periodic, other)


def cadence_svg(c: Cadence, *, verdict: str | None = None) -> str:
    """Periodic samples (filled) against the grid start + k × interval with its tolerance (shaded); the gap
    between samples written above them, red when it is outside the tolerance; other samples (Trigger,
    Sample.Clock, Transaction.Begin/End) hollow on a second row."""
    height = 150.0
    tol = cadence_tolerance(c.interval)
    times = [p[0] for p in c.periodic] + [o[0] for o in c.other] + [0.0]
    hi = max([*times, c.end or 0.0, c.interval])
    lo = min(times)
    pad = (hi - lo) * 0.03 or 0.5

    def X(s: float) -> float:
        return LEFT + (s - lo + pad) / (hi - lo + 2 * pad) * (W - LEFT - RIGHT)

    row_p, row_o = 70.0, 104.0
    title = f"Sampling cadence: Sample.Periodic MeterValues against a {c.interval:g} s grid"
    out = _svg_open(title, f"{len(c.periodic)} periodic sample(s); times from {c.source}; tolerance ±{tol:g} s", height)
    n = int(math.floor(hi / c.interval)) + 1
    every = max(1, math.ceil(n / 60))
    for k in range(0, n + 1, every):
        g = k * c.interval
        if g > hi + pad:
            break
        xa, xb = X(max(g - tol, lo - pad)), X(min(g + tol, hi + pad))
        if k:
            out.append(f'<rect x="{xa:.1f}" y="{row_p - 22:g}" width="{max(xb - xa, 1):.1f}" height="44" fill="#dafbe1" data-grid="{g:g}"/>')
        out.append(f'<line x1="{X(g):.1f}" x2="{X(g):.1f}" y1="{row_p - 24:g}" y2="{row_o + 10:g}" stroke="#4ac26b" stroke-width="1"/>')
        label = "start" if k == 0 else f"{g:g} s" if hi < 600 else f"{int(g // 60)}:{int(g % 60):02d}"
        if k == 0 or n <= 16 or (k // every) % max(1, n // (every * 8)) == 0:
            out.append(f'<text x="{X(g):.1f}" y="{row_o + 24:g}" text-anchor="middle" fill="{NEUTRAL}">{_esc(label)}</text>')
    if c.end is not None:
        out.append(f'<line x1="{X(c.end):.1f}" x2="{X(c.end):.1f}" y1="{row_p - 26:g}" y2="{row_o + 10:g}" stroke="#1f2328" stroke-dasharray="2 3"/>')
        out.append(f'<text x="{X(c.end) + 3:.1f}" y="{row_p - 28:g}" fill="#1f2328">stop</text>')
    out.append(f'<text x="{LEFT - 6:g}" y="{row_p + 4:g}" text-anchor="end" fill="{NEUTRAL}">periodic</text>')
    out.append(f'<text x="{LEFT - 6:g}" y="{row_o + 4:g}" text-anchor="end" fill="{NEUTRAL}">other</text>')
    prev = 0.0
    for i, (s, seq) in enumerate(c.periodic):
        gap = s - prev
        bad = abs(gap - c.interval) > tol if i else gap > c.interval + tol
        colour = LIMIT_COLOUR if bad else "#1a7f37"
        weight = ' font-weight="700"' if bad else ""
        if len(c.periodic) <= 40 or bad:
            out.append(f'<text x="{(X(prev) + X(s)) / 2:.1f}" y="{row_p - 28:g}" text-anchor="middle" fill="{colour}"'
                       f'{weight} data-gap="{gap:.2f}">{gap:.1f} s</text>')
        out.append(f'<circle cx="{X(s):.1f}" cy="{row_p:g}" r="4.5" fill="{colour}" data-seq="{seq}">'
                   f"<title>frame #{seq}: {s:.2f} s after the start{' (gap outside the tolerance)' if bad else ''}</title></circle>")
        prev = s
    if c.end is not None and c.end - prev > c.interval + tol:
        out.append(f'<text x="{(X(prev) + X(c.end)) / 2:.1f}" y="{row_p - 28:g}" text-anchor="middle" fill="{LIMIT_COLOUR}" '
                   f'font-weight="700">{c.end - prev:.1f} s, none</text>')
    for s, seq, ctx in c.other:
        out.append(f'<circle cx="{X(s):.1f}" cy="{row_o:g}" r="3.5" fill="#ffffff" stroke="{NEUTRAL}" stroke-width="1.5" data-seq="{seq}">'
                   f"<title>frame #{seq}: {_esc(ctx)}, {s:.2f} s after the start</title></circle>")
    if not c.periodic:
        out.append(f'<text x="{(LEFT + W - RIGHT) / 2:g}" y="{row_p + 4:g}" text-anchor="middle" fill="{LIMIT_COLOUR}">'
                   f"no Sample.Periodic MeterValues in this transaction</text>")
    colour = VERDICT_COLOURS.get(str(verdict), NEUTRAL)
    if verdict:
        out.append(f'<text x="{W - 8:g}" y="16" text-anchor="end" font-weight="700" fill="{colour}">CFG-2: {_esc(verdict)}</text>')
    out.append(f'<text x="{LEFT:g}" y="16" fill="{NEUTRAL}">grid: every {c.interval:g} s from StartTransaction, ±{tol:g} s; times: {_esc(c.source)}</text>')
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Which pictures a test gets
# --------------------------------------------------------------------------------------------

_RANGE_RE = re.compile(r"frames\s*#(\d+)\s*\.\.\s*#(\d+)")
_INTERVAL_RE = re.compile(r"\binterval (\d+(?:\.\d+)?) s\b")


@dataclass
class Picture:
    kind: str  # "timeline" | "cadence"
    title: str
    svg: str
    caption: str
    marked: bool = False  # readings a verdict rests on are marked


def _interval(test: Mapping[str, Any], frames: Sequence[Mapping[str, Any]]) -> float | None:
    details: Mapping[str, Any] = test["details"] if isinstance(test.get("details"), Mapping) else {}
    for note in [*(details.get("notes") or []), test.get("message") or ""]:
        m = _INTERVAL_RE.search(str(note)) or re.search(r"MeterValueSampleInterval=(\d+)", str(note))
        if m and float(m.group(1)) > 0:
            return float(m.group(1))
    for f in frames:
        msg = _decode(f)
        if msg and msg[0] == 2 and len(msg) >= 4 and msg[2] == "ChangeConfiguration" and isinstance(msg[3], Mapping):
            if str(msg[3].get("key", "")).lower() == "metervaluesampleinterval":
                x = _num(msg[3].get("value"))
                if x and x > 0:
                    return x
    return None


def pictures_for_test(test: Mapping[str, Any], frames_by_seq: Mapping[int, Mapping[str, Any]] | None = None) -> list[Picture]:
    """The pictures for one test: a timeline per transaction in its evidence; for a CFG-2 test, the cadence
    of the transaction it was judged on (its own, or the frames #a..#b its notes name)."""
    frames = [f for f in test.get("frames") or [] if isinstance(f, Mapping)]
    reqs = [str(r) for r in test.get("requirements") or []]
    verdict = str(test.get("verdict") or "") or None
    details: Mapping[str, Any] = test["details"] if isinstance(test.get("details"), Mapping) else {}
    pictures: list[Picture] = []
    marks_for = next((r for r in reqs if r == "SC-2"), None)
    used, decisive = used_readings(details) if marks_for else (set(), set())
    for tx in transactions(frames):
        if not tx.samples and not tx.limits:
            continue
        mine_used = {s.seq for s in tx.samples} & used
        mine_dec = {s.seq for s in tx.samples} & decisive
        svg = timeline_svg(tx, used=mine_used, decisive=mine_dec, verdict=verdict, requirement=marks_for or "")
        caption = (f"{len(tx.samples)} reading(s)"
                   + (f"; stopped (frame #{tx.stop_seq})" if tx.stop_seq is not None else "; not stopped in this test")
                   + (f"; {marks_for} {verdict}: decided by frame {', '.join('#' + str(s) for s in sorted(mine_dec))}"
                      if mine_dec else ""))
        pictures.append(Picture("timeline", f"Transaction {tx.transaction_id if tx.transaction_id is not None else '?'}"
                                f" · connector {tx.connector}", svg, caption, bool(mine_dec or mine_used)))
    if "CFG-2" in reqs:
        session = frames
        for note in [*(details.get("notes") or [])]:
            m = _RANGE_RE.search(str(note))
            if m and frames_by_seq:
                a, b = int(m.group(1)), int(m.group(2))
                session = [frames_by_seq[s] for s in range(a, b + 1) if s in frames_by_seq]
                break
        interval = _interval(test, session)
        txs = [tx for tx in transactions(session) if tx.samples]
        if interval and txs:
            tx = max(txs, key=lambda x: len(x.samples))
            c = cadence(tx, interval)
            pictures.append(Picture("cadence", f"Sampling cadence · transaction {tx.transaction_id}",
                                    cadence_svg(c, verdict=verdict),
                                    f"{len(c.periodic)} periodic sample(s) against a {interval:g} s grid; times from {c.source}"))
    return pictures
