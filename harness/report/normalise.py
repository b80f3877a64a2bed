"""What the collector recorded, made fit for the report: frames capped and redacted, messages trimmed,
verdicts checked (:func:`normalise_test`, :func:`normalise_run_frames`)."""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .redact import Redactor
from .types import (
    VERDICTS,
    Evidence,
    Finding,
    Frame,
    Frames,
    Outcome,
    TestRecord,
    TestResult,
    TraceSection,
    Verdict,
    jsonable,
)

MAX_FRAMES_PER_TEST = 2000
MAX_MESSAGE_CHARS = 4000
MAX_TRACEBACK_CHARS = 8000

NOT_TESTED_PREFIX = "not tested: "


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clean_reason(text: str) -> str:
    """One "not tested: " at the head of a reason, never "not tested: not tested: …" (a suite that quotes the
    rig's skip reason inside its own adds a second one)."""
    if not text.lower().startswith(NOT_TESTED_PREFIX):
        return text
    body = text[len(NOT_TESTED_PREFIX):]
    body = re.sub(r"(?i)(^|[(;,:]\s*)not tested:\s*", r"\1", body)
    return NOT_TESTED_PREFIX + body


def trim(text: str | None, limit: int, *, head: int | None = None) -> str | None:
    """Cut *text* to about *limit* characters, keeping its head and (mostly) its tail."""
    if text is None:
        return None
    text = str(text)
    if len(text) <= limit:
        return text
    head = limit // 4 if head is None else head
    tail = limit - head
    omitted = len(text) - head - tail
    return f"{text[:head]}\n… {omitted} characters omitted …\n{text[-tail:]}"


def test_verdict(outcome: str | None, reason: str | None = None) -> Verdict:
    """The verdict of one test from pytest's outcome word and, for skips, the skip reason.

    passed → pass; failed/error → fail; skipped with a reason starting "not applicable" →
    not applicable; any other skip → not tested; interrupted/not run → incomplete.
    """
    outcome = (outcome or "").lower()
    if outcome == Outcome.PASSED:
        return Verdict.PASS
    if outcome in (Outcome.FAILED, Outcome.ERROR, Outcome.XFAILED):
        return Verdict.FAIL
    if outcome == Outcome.SKIPPED:
        if (reason or "").strip().lower().startswith("not applicable"):
            return Verdict.NOT_APPLICABLE
        return Verdict.NOT_TESTED
    return Verdict.INCOMPLETE


# --------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------


def _frame(raw: Any, index: int, redactor: Redactor) -> Frame:
    raw = raw if isinstance(raw, Mapping) else {"text": raw}
    seq = raw.get("seq", index)
    try:
        seq = int(seq)
    except (TypeError, ValueError):
        seq = index
    mono = raw.get("mono")
    try:
        mono = None if mono is None else round(float(mono), 6)
    except (TypeError, ValueError):
        mono = None
    text = raw.get("text")
    if not isinstance(text, str):
        text = json.dumps(jsonable(text), ensure_ascii=False) if text is not None else ""
    note = raw.get("note")
    return Frame(
        seq=seq,
        direction=str(raw.get("direction") or ""),
        time=jsonable(raw.get("time")) if raw.get("time") is not None else None,
        mono=mono,
        text=redactor.frame_text(text),
        note=redactor.text(str(note)) if note is not None else None,
    )


def frames(raw_frames: Any, redactor: Redactor, cap: int) -> Frames:
    """Normalised frames, at most *cap* of them: the first and the last half (seq kept)."""
    raw = list(raw_frames or [])
    total = len(raw)
    indices: Iterable[int] = range(total)
    omitted = None
    if cap and total > cap:
        head = cap // 2
        omitted = {"count": total - cap, "index": head}
        indices = [*range(head), *range(total - (cap - head), total)]
    return Frames([_frame(raw[i], i, redactor) for i in indices], total, omitted)


def normalise_run_frames(raw: Any, redactor: Redactor, *, frame_cap: int = MAX_FRAMES_PER_TEST) -> list[TraceSection]:
    """Run-level sections of the trace: frames that belong to no test's evidence (before the first test,
    a test's set-up before its evidence starts, its teardown, after the last test)."""
    sections: list[TraceSection] = []
    for section in raw or []:
        if not isinstance(section, Mapping):
            continue
        found = frames(section.get("frames"), redactor, frame_cap)
        if not found.total:
            continue
        sections.append(TraceSection(
            title=redactor.text(str(section.get("title") or "between tests")),
            phase=str(section.get("phase") or "between"),
            nodeid=str(section["nodeid"]) if section.get("nodeid") else None,
            frames=found,
            worker=str(section["worker"]) if section.get("worker") else None,
        ))
    return sections


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def _details(raw: Any) -> dict[str, Any]:
    raw = dict(raw) if isinstance(raw, Mapping) else {}
    details = {k: jsonable(v) for k, v in raw.items()}
    alt = details.get("alternative")
    details["alternative"] = str(alt) if alt not in (None, "") else None
    notes = details.get("notes") or []
    if isinstance(notes, str):
        notes = [notes]
    details["notes"] = [str(n) for n in notes]
    details["advisory"] = bool(details.get("advisory", False))
    return details


def _findings(raw: Any, redactor: Redactor) -> list[Finding]:
    """A test's advisory findings (seq: the frame it is about, or None)."""
    out: list[Finding] = []
    for f in raw or []:
        if not isinstance(f, Mapping):
            continue
        seq = f.get("seq")
        out.append(Finding(
            requirement=redactor.text(str(f.get("requirement") or "")),
            message=redactor.text(trim(str(f.get("message") or ""), MAX_MESSAGE_CHARS) or ""),
            seq=seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
        ))
    return out


def _duration(raw: Any) -> float:
    try:
        return round(float(raw or 0.0), 6)
    except (TypeError, ValueError):
        return 0.0


def _text(value: Any, limit: int, redactor: Redactor) -> str | None:
    return redactor.text(trim(str(value), limit) or "") if value else None


def normalise_test(
    raw: TestRecord | Mapping[str, Any], redactor: Redactor, *, frame_cap: int = MAX_FRAMES_PER_TEST
) -> TestResult:
    """One test, fit for the report: verdict checked (or derived from pytest's outcome), frames capped, the
    message and traceback trimmed, every string redacted (secrets are gone before any reason quotes them)."""
    record = raw if isinstance(raw, TestRecord) else TestRecord.from_mapping(raw)
    nodeid = str(record.nodeid)
    outcome = str(record.outcome or "")
    message = record.message
    if isinstance(message, str):
        message = clean_reason(message)
    verdict = record.verdict or test_verdict(outcome, message)
    if verdict not in VERDICTS:
        raise ValueError(f"{nodeid}: unknown verdict {verdict!r}")
    return TestResult(
        nodeid=redactor.text(nodeid),
        name=redactor.text(str(record.name or nodeid.rsplit("::", 1)[-1])),
        requirements=[redactor.text(str(r)) for r in record.requirements],
        outcome=redactor.text(outcome or verdict),
        verdict=Verdict(verdict),
        duration=_duration(record.duration),
        evidence=Evidence(frames(record.frames, redactor, frame_cap), redactor.tree(_details(record.details))),
        message=_text(message, MAX_MESSAGE_CHARS, redactor),
        traceback=_text(record.traceback, MAX_TRACEBACK_CHARS, redactor),
        findings=_findings(record.findings, redactor),
        doc=redactor.text(str(record.doc).strip()) if record.doc else None,
        worker=redactor.text(str(record.worker)) if record.worker else None,
    )
