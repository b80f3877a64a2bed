"""The transaction timeline picture (SC-2, ST-4, MV-*): statuses, power against the platform's limit, the
energy register; the readings a verdict rests on are ringed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .svg import (
    BAND_H,
    BAND_TOP,
    ENERGY_COLOUR,
    H,
    LEFT,
    LIMIT_COLOUR,
    NEUTRAL,
    PLOT_BOTTOM,
    PLOT_TOP,
    POWER_COLOUR,
    RIGHT,
    STATUS_COLOURS,
    VERDICT_COLOURS,
    W,
    _esc,
    _fmt_s,
    _fmt_w,
    _nice_ticks,
    _svg_open,
)
from .transactions import DEFAULT_PHASES, NOMINAL_VOLTAGE, Profile, Transaction

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
