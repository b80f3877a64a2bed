"""Pictures for the HTML report, drawn from the evidence frames of the report JSON (docs/rules-report.md).

Sans-I/O: every function here takes parts of the report dictionary and returns data or an SVG string;
nothing reads files, clocks or the network. The SVG is self-contained (presentation attributes, no
CSS classes, scripts or fonts from outside), so the page prints and the picture survives copy-paste.

- :func:`transactions` (``transactions.py``) reads a test's frames into transactions: power
  (Power.Active.Import, else Current.Import × Voltage), the energy register, the connector's statuses and
  the charging limits the platform set (SetChargingProfile / ClearChargingProfile the charger Accepted).
- :func:`timeline_svg` (``timeline.py``) draws one transaction; readings the test says it used are ringed,
  the reading that decided is marked with the test's verdict.
- :func:`cadence_svg` (``cadence.py``) draws the periodic samples of a transaction against the
  sampling-interval grid; ``svg.py`` holds the colours and scales they share.
- :func:`used_readings` and :func:`pictures_for_test` (here) pick the pictures a test gets.

Times are the harness's clock (when the frame arrived: ``mono``, else ``time``), so limits, statuses and
readings share one axis; a MeterValues carrying several meterValue entries places each one by its own
timestamp relative to the newest. The cadence picture uses the charger's timestamps when every sample
has one (that is when it sampled), else arrival times, and says which.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.meter import cadence_tolerance

from .cadence import Cadence, cadence, cadence_svg
from .svg import LIMIT_COLOUR, NEUTRAL, POWER_COLOUR, STATUS_COLOURS, VERDICT_COLOURS
from .timeline import Step, limit_steps, timeline_svg
from .transactions import Clear, Profile, Sample, Transaction, _decode, _int, _num, _power, parse_time, transactions

__all__ = [
    "LIMIT_COLOUR", "NEUTRAL", "POWER_COLOUR", "STATUS_COLOURS", "VERDICT_COLOURS", "Cadence", "Clear", "Picture",
    "Profile", "Sample", "Step", "Transaction", "_power", "cadence", "cadence_svg", "cadence_tolerance",
    "limit_steps", "parse_time", "pictures_for_test", "timeline_svg", "transactions", "used_readings",
]

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
