"""The sampling-cadence picture (CFG-2): periodic MeterValues against the MeterValueSampleInterval grid."""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.meter import cadence_tolerance

from .svg import LEFT, LIMIT_COLOUR, NEUTRAL, RIGHT, VERDICT_COLOURS, W, _esc, _svg_open
from .transactions import PERIODIC, Sample, Transaction

# --------------------------------------------------------------------------------------------
# The cadence picture (CFG-2)
# --------------------------------------------------------------------------------------------


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
