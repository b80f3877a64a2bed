"""SVG helpers for the report's pictures: colours, scales, ticks. The SVG is self-contained (presentation
attributes, no CSS classes, scripts or fonts from outside), so the page prints and the picture survives
copy-paste."""

from __future__ import annotations

import math
from typing import Any
from xml.sax.saxutils import escape as _xml_escape

from .types import Verdict

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


def _fmt_w(w: float) -> str:
    return f"{w / 1000:.1f} kW" if abs(w) >= 1000 else f"{w:.0f} W"

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
