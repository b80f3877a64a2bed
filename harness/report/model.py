"""The certification report as data: verdicts, aggregation, redaction and the digest.

``build_report(run_info, tests)`` turns what a run observed into the report dictionary that
``SCHEMA.md`` documents (and ``templates/certification.schema.json`` formalises). Everything else in
``harness.report`` renders, writes or checks that dictionary; nothing here touches pytest.

Input ``tests``: one dict per test (the collector builds them; unit tests write them by hand)::

    {"nodeid": str,                       # required
     "requirements": [str, ...],          # IDs from the test's requirement marker(s)
     "verdict": "pass" | "fail" | "not applicable" | "not tested" | "incomplete",
     "outcome": str,                      # pytest's word: passed, failed, error, skipped, ...
     "name": str, "doc": str, "message": str, "traceback": str, "duration": float,
     "frames": [{"seq", "direction", "time", "mono", "text", "note"}, ...],
     "details": {"alternative": str, "notes": [str], "advisory": bool, ...}}

Only ``nodeid`` is required; ``verdict`` defaults from ``outcome`` (see :func:`test_verdict`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import json
import platform
import re
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from harness import __version__ as HARNESS_VERSION
from harness import requirements as catalogue

SCHEMA_NAME = "ev-energy-certification-report"
SCHEMA_VERSION = "1.1"

# The closed sets of words the report uses are StrEnums: each member *is* its string (equal to it, hashes like
# it, json.dumps writes it), so the report JSON, the schema and reports read back from disk are unchanged.
# pytest-xdist (execnet) cannot serialise a str subclass: whatever a worker sends the controller is a plain
# str (``.value``; harness/report/collector.py converts at that boundary).


class Verdict(StrEnum):
    """A test's or a requirement's verdict (docs/rules-verdicts.md)."""

    PASS = "pass"
    FAIL = "fail"
    NOT_APPLICABLE = "not applicable"
    NOT_TESTED = "not tested"
    INCOMPLETE = "incomplete"


class Overall(StrEnum):
    """The run's overall verdict (docs/rules-verdicts.md)."""

    CERTIFIED = "certified"
    #: Every mandatory requirement the run judged passed, but the run cannot certify: quick mode (a rehearsal
    #: with short intervals), or a quick-mode run of part of the suites (judged over the selected requirements).
    REHEARSAL_PASSED = "rehearsal passed"
    NOT_CERTIFIED = "not certified"
    INCOMPLETE = "incomplete"


class Outcome(StrEnum):
    """A test's outcome in pytest's words, plus the harness's own for tests that never finished."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    XFAILED = "xfailed"
    INTERRUPTED = "interrupted"  # the run stopped while (or before) this test ran
    NOT_RUN = "not run"  # the test never reported its call phase


# Test and requirement verdicts (the names the rest of the harness uses).
PASS = Verdict.PASS
FAIL = Verdict.FAIL
NOT_APPLICABLE = Verdict.NOT_APPLICABLE
NOT_TESTED = Verdict.NOT_TESTED
INCOMPLETE = Verdict.INCOMPLETE
VERDICTS = tuple(Verdict)

# Overall verdicts. Overall.INCOMPLETE == Verdict.INCOMPLETE == "incomplete": the same word on both levels.
CERTIFIED = Overall.CERTIFIED
NOT_CERTIFIED = Overall.NOT_CERTIFIED
REHEARSAL_PASSED = Overall.REHEARSAL_PASSED
OVERALL_VERDICTS = (Overall.CERTIFIED, Overall.REHEARSAL_PASSED, Overall.NOT_CERTIFIED, Overall.INCOMPLETE)

#: The process's exit status for each overall verdict (pytest's own codes stay: 2 interrupted, 3 internal
#: error, 4 usage error, 5 no tests collected). 6 is not one of pytest's.
EXIT_INCOMPLETE = 6
#: An incomplete verdict that the harness's own exception caused (a bug of the harness, not of the charger or the rig):
#: pytest's "internal error" code, so CI tells "fix the harness" from "fix the bench".
EXIT_HARNESS_ERROR = 3
EXIT_STATUS: dict[str, int] = {Overall.CERTIFIED: 0, Overall.REHEARSAL_PASSED: 0, Overall.NOT_CERTIFIED: 1,
                               Overall.INCOMPLETE: EXIT_INCOMPLETE}

CHARGER_TO_CSMS = "charger→csms"
CSMS_TO_CHARGER = "csms→charger"

REDACTED = "«redacted»"

MAX_FRAMES_PER_TEST = 2000
MAX_MESSAGE_CHARS = 4000
MAX_TRACEBACK_CHARS = 8000

NEVER_CONNECTED = "charger never connected"


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def jsonable(value: Any) -> Any:
    """A JSON-serialisable copy of *value* (datetimes to ISO 8601, sets to lists, else str())."""
    if isinstance(value, str):
        # A plain str, also for an enum member (a str subclass such as ocpp's ChargingProfilePurposeType or
        # Verdict): this is what crosses from an xdist worker to the controller, and execnet cannot serialise it.
        return str.__str__(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        if isinstance(value, (set, frozenset)):
            items.sort(key=repr)
        return [jsonable(v) for v in items]
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


_NOT_TESTED_PREFIX = "not tested: "


def clean_reason(text: str) -> str:
    """One "not tested: " at the head of a reason, never "not tested: not tested: …" (a suite that quotes the
    rig's skip reason inside its own adds a second one)."""
    if not text.lower().startswith(_NOT_TESTED_PREFIX):
        return text
    body = text[len(_NOT_TESTED_PREFIX):]
    body = re.sub(r"(?i)(^|[(;,:]\s*)not tested:\s*", r"\1", body)
    return _NOT_TESTED_PREFIX + body


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
        return PASS
    if outcome in (Outcome.FAILED, Outcome.ERROR, Outcome.XFAILED):
        return FAIL
    if outcome == Outcome.SKIPPED:
        if (reason or "").strip().lower().startswith("not applicable"):
            return NOT_APPLICABLE
        return NOT_TESTED
    return INCOMPLETE


# --------------------------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------------------------

_SECRET_KEYS = {"authorization", "proxy-authorization", "authorizationkey", "password", "passwd"}
_HEADER_RE = re.compile(
    r"""(?ix)
    (\b(?:proxy-)?authorization\b["']?\s*[:=]\s*["']?)   # Authorization: / "Authorization": "
    ([^"'\r\n]*)                                           # the value, to the end of the line/quote
    """
)
_HEADER_TUPLE_RE = re.compile(r"""(?i)(['"](?:proxy-)?authorization['"]\s*,\s*b?['"])([^'"]*)""")
_KEY_PROSE_RE = re.compile(r"""(?i)(\bauthorizationkey\b["']?\s*[:=]\s*["']?)([^"'\s,;}\]]+)""")


class Redactor:
    """Removes secrets from strings and nested structures.

    Redacts every variant of each secret (as given, hex-encoded, hex-decoded, and the base64 of
    ``<charger id>:<secret>`` that HTTP Basic sends), the value of any ``Authorization`` header,
    and the value of the ``AuthorizationKey`` configuration key (ChangeConfiguration,
    GetConfiguration) in frames.
    """

    def __init__(self, secrets: Iterable[str] = (), charger_id: str | None = None) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if not isinstance(secret, str) or not secret:
                continue
            forms = {secret, secret.encode().hex(), secret.encode().hex().upper()}
            if len(secret) % 2 == 0 and re.fullmatch(r"[0-9a-fA-F]+", secret):
                try:
                    decoded = binascii.unhexlify(secret).decode("utf-8")
                except (ValueError, UnicodeDecodeError):
                    decoded = ""
                if decoded and decoded.isprintable():
                    forms.add(decoded)
            if charger_id:
                for form in list(forms):
                    forms.add(base64.b64encode(f"{charger_id}:{form}".encode()).decode())
            variants.update(f for f in forms if f)
        self.variants = sorted(variants, key=len, reverse=True)
        self._re = re.compile("|".join(re.escape(v) for v in self.variants)) if self.variants else None

    def text(self, s: str) -> str:
        if self._re is not None:
            s = self._re.sub(REDACTED, s)
        if "uthorization" in s or "UTHORIZATION" in s:
            s = _HEADER_RE.sub(lambda m: m.group(1) + (REDACTED if m.group(2).strip() else m.group(2)), s)
            s = _HEADER_TUPLE_RE.sub(lambda m: m.group(1) + REDACTED, s)
            s = _KEY_PROSE_RE.sub(lambda m: m.group(1) + REDACTED, s)
        return s

    def tree(self, value: Any) -> Any:
        """A redacted copy of a JSON-like structure (keys and values)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.tree(v) for v in value]
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            is_auth_key = isinstance(value.get("key"), str) and value["key"].lower() == "authorizationkey"
            for k, v in value.items():
                key = self.text(str(k))
                if isinstance(v, str) and v and (
                    str(k).lower() in _SECRET_KEYS or (is_auth_key and str(k).lower() == "value")
                ):
                    out[key] = REDACTED
                else:
                    out[key] = self.tree(v)
            return out
        return value

    def frame_text(self, text: str) -> str:
        """Redact an OCPP-J frame, also inside JSON string escapes (\\u0041 would hide a secret)."""
        text = self.text(text)
        try:
            obj = json.loads(text)
        except ValueError:
            return text
        red = self.tree(obj)
        if red != obj:
            text = json.dumps(red, ensure_ascii=False, separators=(",", ":"))
        return text


# --------------------------------------------------------------------------------------------
# Normalising tests and frames
# --------------------------------------------------------------------------------------------


def _frame(raw: Any, index: int, redactor: Redactor) -> dict[str, Any]:
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
    direction = str(raw.get("direction") or "")
    text = raw.get("text")
    if not isinstance(text, str):
        text = json.dumps(jsonable(text), ensure_ascii=False) if text is not None else ""
    note = raw.get("note")
    return {
        "seq": seq,
        "direction": direction,
        "time": jsonable(raw.get("time")) if raw.get("time") is not None else None,
        "mono": mono,
        "text": redactor.frame_text(text),
        "note": redactor.text(str(note)) if note is not None else None,
    }


def _frames(raw_frames: Any, redactor: Redactor, cap: int) -> tuple[list[dict], int, dict | None]:
    """Normalised frames, at most *cap* of them: the first and the last half (seq kept)."""
    raw = list(raw_frames or [])
    total = len(raw)
    indices: Iterable[int] = range(total)
    omitted = None
    if cap and total > cap:
        head = cap // 2
        omitted = {"count": total - cap, "index": head}
        indices = [*range(head), *range(total - (cap - head), total)]
    return [_frame(raw[i], i, redactor) for i in indices], total, omitted


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


def _findings(raw: Any) -> list[dict[str, Any]]:
    """A test's advisory findings: ``[{"requirement", "message", "seq"}]`` (seq: the frame it is about, or null)."""
    out: list[dict[str, Any]] = []
    for f in raw or []:
        if not isinstance(f, Mapping):
            continue
        seq = f.get("seq")
        out.append(
            {
                "requirement": str(f.get("requirement") or ""),
                "message": trim(str(f.get("message") or ""), MAX_MESSAGE_CHARS) or "",
                "seq": seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
            }
        )
    return out


def normalise_run_frames(raw: Any, redactor: Redactor, *, frame_cap: int = MAX_FRAMES_PER_TEST) -> list[dict[str, Any]]:
    """Run-level sections of the trace: frames that belong to no test's evidence (before the first test,
    a test's set-up before its evidence starts, its teardown, after the last test)."""
    sections: list[dict[str, Any]] = []
    for section in raw or []:
        if not isinstance(section, Mapping):
            continue
        frames, total, omitted = _frames(section.get("frames"), redactor, frame_cap)
        if not total:
            continue
        entry: dict[str, Any] = {
            "title": redactor.text(str(section.get("title") or "between tests")),
            "phase": str(section.get("phase") or "between"),
            "nodeid": str(section["nodeid"]) if section.get("nodeid") else None,
            "frames_total": total,
            "frames_omitted": omitted,
            "frames": frames,
        }
        if section.get("worker"):
            entry["worker"] = str(section["worker"])
        sections.append(entry)
    return sections


def normalise_test(raw: Mapping[str, Any], redactor: Redactor, *, frame_cap: int = MAX_FRAMES_PER_TEST) -> dict[str, Any]:
    nodeid = str(raw["nodeid"])
    outcome = str(raw.get("outcome") or "")
    message = raw.get("message")
    if isinstance(message, str):
        message = clean_reason(message)
    verdict = raw.get("verdict") or test_verdict(outcome, message)
    if verdict not in VERDICTS:
        raise ValueError(f"{nodeid}: unknown verdict {verdict!r}")
    reqs = raw.get("requirements") or []
    if isinstance(reqs, str):
        reqs = [reqs]
    frames, total, omitted = _frames(raw.get("frames"), redactor, frame_cap)
    try:
        duration = round(float(raw.get("duration") or 0.0), 6)
    except (TypeError, ValueError):
        duration = 0.0
    test: dict[str, Any] = {
        "nodeid": nodeid,
        "name": str(raw.get("name") or nodeid.rsplit("::", 1)[-1]),
        "requirements": [str(r) for r in reqs],
        "outcome": outcome or verdict,
        "verdict": verdict,
        "duration": duration,
        "details": _details(raw.get("details")),
        "frames_total": total,
        "frames_omitted": omitted,
        "frames": frames,
    }
    for key, limit in (("message", MAX_MESSAGE_CHARS), ("traceback", MAX_TRACEBACK_CHARS)):
        value = message if key == "message" else raw.get(key)
        if value:
            test[key] = trim(str(value), limit)
    findings = _findings(raw.get("findings"))
    if findings:
        test["findings"] = findings
    if raw.get("doc"):
        test["doc"] = str(raw["doc"]).strip()
    if raw.get("worker"):
        test["worker"] = str(raw["worker"])
    # Redact everything but the frames (already done, and a second pass is wasted work).
    frames_done = test.pop("frames")
    test = redactor.tree(test)
    test["frames"] = frames_done
    return test


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def aggregate(requirement: catalogue.Requirement, tests: list[dict]) -> dict[str, Any]:
    """Verdict of one requirement from its tests (see SCHEMA.md, "Aggregation").

    Returns ``{"verdict", "reason", "alternative", "superseded": set(nodeids)}``.
    """
    if not tests:
        return {"verdict": NOT_TESTED, "reason": "no test of this requirement ran", "alternative": None, "superseded": set()}

    held: list[str] = []
    for t in tests:
        alt = t["details"].get("alternative")
        if t["verdict"] == PASS and alt and alt not in held:
            held.append(alt)

    superseded: set[str] = set()
    if held and requirement.alternatives:
        for t in tests:
            alt = t["details"].get("alternative")
            if t["verdict"] == PASS:
                continue
            if t["verdict"] == FAIL and (alt is None or alt in held):
                continue  # a failure that no held alternative excuses
            if alt is None or alt not in held:
                superseded.add(t["nodeid"])

    counted = [t for t in tests if t["nodeid"] not in superseded]
    by = {v: [t for t in counted if t["verdict"] == v] for v in VERDICTS}
    alternative = " and ".join(held) if held else None
    n = len(counted)

    def first_message(ts: list[dict]) -> str:
        for t in ts:
            if t.get("message"):
                return t["message"].strip().splitlines()[0][:300]
        return ""

    if by[FAIL]:
        msg = first_message(by[FAIL])
        reason = f"{_plural(len(by[FAIL]), 'test')} of {n} failed" + (f": {msg}" if msg else "")
        return {"verdict": FAIL, "reason": reason, "alternative": alternative, "superseded": superseded}
    if by[INCOMPLETE]:
        msg = first_message(by[INCOMPLETE])
        reason = f"{_plural(len(by[INCOMPLETE]), 'test')} of {n} did not complete" + (f": {msg}" if msg else "")
        return {"verdict": INCOMPLETE, "reason": reason, "alternative": alternative, "superseded": superseded}
    if len(by[NOT_APPLICABLE]) == n:
        msg = first_message(by[NOT_APPLICABLE])
        return {"verdict": NOT_APPLICABLE, "reason": msg or "not applicable to this charger", "alternative": None, "superseded": superseded}
    if by[NOT_TESTED]:
        msg = first_message(by[NOT_TESTED])
        if by[PASS]:
            reason = f"partly tested: {len(by[PASS])} of {n} passed, {len(by[NOT_TESTED])} not tested"
        else:
            reason = msg or "not tested"
        if msg and by[PASS]:
            reason += f" ({msg[len(_NOT_TESTED_PREFIX):] if msg.lower().startswith(_NOT_TESTED_PREFIX) else msg})"
        return {"verdict": NOT_TESTED, "reason": reason, "alternative": alternative, "superseded": superseded}
    reason = f"{_plural(len(by[PASS]), 'test')} passed"
    if alternative:
        reason += f"; alternative held: {alternative}"
    if superseded:
        reason += f" ({_plural(len(superseded), 'test')} of other alternatives not needed)"
    return {"verdict": PASS, "reason": reason, "alternative": alternative, "superseded": superseded}


def _with_reasons(units: list[str], by_rid: Mapping[str, Mapping[str, Any]]) -> str:
    """"ST-4 (why), MV-3 (why)": each unit with the first line of its requirement's reason, shortened."""
    parts = []
    for unit in units:
        why = str((by_rid.get(unit) or {}).get("reason") or "").strip().splitlines()
        text = why[0] if why else ""
        parts.append(f"{unit} ({text[:200]}{'…' if len(text) > 200 else ''})" if text else unit)
    return "; ".join(parts)


def _counts(items: Iterable[dict]) -> dict[str, int]:
    counts: dict[str, int] = {v: 0 for v in VERDICTS}
    for item in items:
        counts[item["verdict"]] += 1
    return counts


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------

_CHARGER_KEYS = ("id", "vendor", "model", "serial", "firmware")


def build_report(
    run_info: Mapping[str, Any] | None,
    tests: Sequence[Mapping[str, Any]],
    *,
    interrupted: bool = False,
    reason: str | None = None,
    frame_cap: int = MAX_FRAMES_PER_TEST,
    selected: Iterable[str] | None = None,
    run_frames: Iterable[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The report dictionary (schema ``ev-energy-certification-report`` 1.1), digest included.

    *run_info* is the plugin's ``RUN_INFO`` (missing keys are fine). *interrupted* marks a run
    stopped by Ctrl-C; *reason*, when given, says why the run could not complete (e.g. "charger
    never connected ..."): either makes the overall verdict ``incomplete``. *selected*: the requirement
    IDs the run's tests were selected for (their markers; default: those of *tests*): a requirement
    outside it was "not selected in this run" (see docs/rules-verdicts.md, "Partial runs").
    *run_frames*: the trace's run-level sections (frames in no test's evidence).
    """
    run_info = dict(run_info or {})
    charger_raw = run_info.get("charger") or {}
    charger_id = charger_raw.get("id") if isinstance(charger_raw, Mapping) else None
    redactor = Redactor(run_info.get("secrets") or (), charger_id)
    warnings: list[str] = []

    normalised = [normalise_test(t, redactor, frame_cap=frame_cap) for t in tests]
    if selected is None:
        chosen: set[str] = {str(i) for t in tests for i in (t.get("marked") or t.get("requirements") or [])}
    else:
        chosen = {str(i) for i in selected}

    # -- sort tests into requirements and advisory findings --------------------------------
    per_req: dict[str, list[dict]] = {rid: [] for rid in catalogue.EV_ENERGY_IDS}
    advisory: list[dict] = []
    for t in normalised:
        ids = t["requirements"]
        unknown = [i for i in ids if not catalogue.is_known(i)]
        for i in unknown:
            warnings.append(f"{t['nodeid']}: unknown requirement ID {i!r}")
        official = [i for i in ids if i in per_req]
        if t["details"]["advisory"] or not official:
            entry: dict[str, Any] = dict(t)
            if t["details"]["advisory"]:
                entry["advisory_reason"] = "an advisory check: never affects the verdict"
            elif unknown:
                entry["advisory_reason"] = "unknown requirement ID: " + ", ".join(unknown)
            elif ids:
                entry["advisory_reason"] = "outside ev.energy's list: " + ", ".join(ids)
            else:
                entry["advisory_reason"] = "no requirement marker"
                warnings.append(f"{t['nodeid']}: no requirement marker")
            advisory.append(entry)
            continue
        for i in official:
            per_req[i].append(t)
        alt = t["details"]["alternative"]
        for i in official:
            alts = catalogue.by_id(i).alternatives
            if alt and alts and alt not in alts:
                warnings.append(f"{t['nodeid']}: alternative {alt!r} is not one of {i}'s ({', '.join(alts)})")

    declarations = run_info.get("declarations") or {}
    if not isinstance(declarations, Mapping):
        declarations = {}

    # -- per requirement -------------------------------------------------------------------
    requirements: list[dict[str, Any]] = []
    for rid in catalogue.EV_ENERGY_IDS:
        req = catalogue.by_id(rid)
        req_tests = per_req[rid]
        agg = aggregate(req, req_tests)
        verdict, why, alternative = agg["verdict"], agg["reason"], agg["alternative"]
        if not req_tests and rid not in chosen:
            why = "not selected in this run (no test of this requirement ran)"
        entry = {
            "id": req.id,
            "title": req.title,
            "text": req.text,
            "group": req.group,
            "kind": req.kind,
            "blocking": req.kind == catalogue.MANDATORY,
        }
        if req.or_group:
            entry["or_group"] = req.or_group
        if req.alternatives:
            entry["alternatives"] = list(req.alternatives)
        if req.kind == catalogue.CONDITIONAL:
            declared = declarations.get(req.declaration)
            declared = declared if isinstance(declared, bool) else None
            entry["declaration"] = {"name": req.declaration, "value": declared}
            if declared is True:
                entry["blocking"] = True
                why = f"applies (declared: {req.declaration} = true); {why}"
            else:
                verdict = NOT_APPLICABLE
                alternative = None
                if declared is False:
                    why = "not applicable: the manufacturer declares it manages the firmware itself"
                else:
                    why = (
                        "not applicable: no declaration (firmware_managed_by_ev_energy not given); "
                        "treated as managed by the manufacturer"
                    )
                    warnings.append(f"{rid}: no declaration {req.declaration!r}: treated as not applicable")
                if req_tests:
                    why += f"; {_plural(len(req_tests), 'test')} shown for information"
        elif req.kind == catalogue.DECLARED:
            statement = declarations.get(req.declaration)
            statement = redactor.text(str(statement)) if statement not in (None, "") else None
            entry["declaration"] = {"name": req.declaration, "value": statement}
            if not req_tests:
                why = (
                    "manufacturer's statement recorded (not testable over OCPP)"
                    if statement
                    else "no manufacturer's statement given (not testable over OCPP)"
                )
        entry["verdict"] = verdict
        if alternative:
            entry["alternative"] = alternative
        entry["reason"] = redactor.text(why) if why else why
        entry["counts"] = _counts(req_tests)
        tests_out = []
        for t in req_tests:
            t2 = dict(t)
            t2["superseded"] = t["nodeid"] in agg["superseded"]
            tests_out.append(t2)
        entry["tests"] = tests_out
        requirements.append(entry)

    by_rid = {r["id"]: r for r in requirements}

    # -- OR-groups ---------------------------------------------------------------------------
    groups = []
    for group in catalogue.OR_GROUPS:
        members = [by_rid[m] for m in group.members]
        verdicts = [m["verdict"] for m in members]
        held = [m["id"] for m in members if m["verdict"] == PASS]
        if held:
            gv = PASS
            for m in members:
                if m["verdict"] != PASS:
                    m["reason"] = f"not required: {' and '.join(held)} passed ({group.title}); {m['reason']}"
                    m["blocking"] = False
        elif INCOMPLETE in verdicts:
            gv = INCOMPLETE
        elif FAIL in verdicts:
            gv = FAIL
        elif all(v == NOT_APPLICABLE for v in verdicts):
            gv = NOT_APPLICABLE
        else:
            gv = NOT_TESTED
        groups.append({"id": group.id, "title": group.title, "members": list(group.members), "verdict": gv, "held": held})

    # -- overall (docs/rules-verdicts.md) --------------------------------------------------------
    units: list[tuple[str, str, bool]] = []  # (unit id, verdict, selected) that must pass for "certified"
    seen_groups: set[str] = set()
    for r in requirements:
        req = catalogue.by_id(r["id"])
        if req.or_group:
            if req.or_group not in seen_groups:
                seen_groups.add(req.or_group)
                g = next(g for g in groups if g["id"] == req.or_group)
                picked = any(m in chosen for m in g["members"])
                units.append((f"{g['id']} ({' OR '.join(g['members'])})", str(g["verdict"]), picked))
            continue
        if req.kind == catalogue.MANDATORY or (req.kind == catalogue.CONDITIONAL and r.get("blocking")):
            units.append((r["id"], r["verdict"], r["id"] in chosen))

    mode = run_info.get("mode")
    # A partial run (one suite file, -k, -m) is judged over the requirements it selected; the others were
    # not selected, which is not "not tested" (the run never meant to test them).
    judged = [(u, v) for u, v, picked in units if picked]
    unselected = [u for u, _, picked in units if not picked]
    failed = [u for u, v in judged if v == FAIL]
    incomplete = [u for u, v in judged if v == INCOMPLETE]
    untested = [u for u, v in judged if v == NOT_TESTED]
    what = "quick mode" if mode == "quick" else ("mode not recorded" if mode is None else f"mode {mode!r}")
    partial = f"; not selected in this run: {', '.join(unselected)}" if unselected and judged else ""

    if interrupted or reason:
        overall = Overall.INCOMPLETE
        overall_reason = reason or "the run was interrupted"
        if interrupted and reason and "interrupt" not in reason.lower():
            overall_reason = f"the run was interrupted: {reason}"
        if failed:
            overall_reason += f"; failed before it stopped: {', '.join(failed)}"
    elif failed:
        overall = Overall.NOT_CERTIFIED
        overall_reason = "mandatory requirements failed: " + ", ".join(failed)
        if mode != "certification":
            overall_reason += f" ({what}: a rehearsal, and it found failures)"
    elif incomplete:
        overall = Overall.INCOMPLETE
        overall_reason = "mandatory requirements did not complete: " + _with_reasons(incomplete, by_rid)
    elif untested:
        overall = Overall.INCOMPLETE
        overall_reason = "mandatory requirements not tested: " + _with_reasons(untested, by_rid)
    elif not judged:
        overall = Overall.INCOMPLETE
        overall_reason = "no mandatory requirement was selected in this run"
    elif mode == "certification" and unselected:
        overall = Overall.INCOMPLETE
        overall_reason = (
            f"partial run: all {len(judged)} selected mandatory requirements pass, but a certification needs "
            f"every one; not selected: {', '.join(unselected)}"
        )
    elif mode != "certification":
        overall = Overall.REHEARSAL_PASSED
        if unselected:
            found = f"all {len(judged)} selected mandatory requirements passed{partial}"
        else:
            found = f"all {len(judged)} mandatory requirements passed"
        overall_reason = f"{what}: a rehearsal, not a certification run; {found}. Run in certification mode to certify."
    else:
        overall = Overall.CERTIFIED
        overall_reason = f"all {len(units)} mandatory requirements pass"
    faults = run_info.get("harness_errors")
    if isinstance(faults, list) and faults:
        # docs/rules-silence.md §2: the harness's own exceptions are named as such, never the charger's.
        overall_reason += (f"; harness error: {len(faults)} exception(s) in the harness's own frame handling "
                           "(run.harness_errors; the charger was not judged by them)")
    overall_reason = redactor.text(overall_reason)

    # -- the rest ------------------------------------------------------------------------------
    charger = {k: None for k in _CHARGER_KEYS}
    if isinstance(charger_raw, Mapping):
        charger.update(jsonable(charger_raw))
    tls: dict[str, Any] = {"policy": catalogue.TLS_POLICY, "version": None, "cipher": None, "offered_policy_suites": []}
    if isinstance(run_info.get("tls"), Mapping):
        tls.update(jsonable(run_info["tls"]))
    attempts = jsonable(run_info.get("connection_attempts") or [])
    if not isinstance(attempts, list):
        attempts = []

    run = {
        "mode": run_info.get("mode"),
        "security_profile": run_info.get("security_profile"),
        "backend": run_info.get("backend"),
        "endpoint": run_info.get("endpoint"),
        "started": run_info.get("started"),
        "finished": run_info.get("finished"),
        "duration": run_info.get("duration"),
        "interrupted": bool(interrupted),
        "incomplete_reason": reason,
    }
    if run_info.get("defects"):
        run["defects"] = [str(d) for d in run_info["defects"]]
    for extra in ("exit_status", "workers", "command", "trace_frames", "harness_errors"):
        if run_info.get(extra) is not None:
            run[extra] = run_info[extra]

    all_tests = normalised

    # -- advisory findings: never affect the verdict (docs/rules-verdicts.md) ------------------------
    findings: list[dict[str, Any]] = []
    for t in all_tests:
        for f in t.get("findings") or []:
            findings.append({**f, "nodeid": t["nodeid"], "name": t["name"]})
    for t in advisory:
        if t["verdict"] == FAIL and not t.get("findings"):
            # an advisory test that failed without the harness plugin (which turns that into a finding)
            marked = [i for i in t["requirements"] if i in catalogue.ADVISORY_IDS]
            findings.append(
                {
                    "requirement": marked[0] if marked else "",
                    "message": (t.get("message") or "").strip(),
                    "seq": None,
                    "nodeid": t["nodeid"],
                    "name": t["name"],
                }
            )
    advisory_requirements = []
    for rid in catalogue.ADVISORY_IDS:
        req = catalogue.by_id(rid)
        mine = [f for f in findings if f["requirement"] == rid]
        advisory_requirements.append(
            {
                "id": rid,
                "title": req.title,
                "text": req.text,
                "tests": [t["nodeid"] for t in all_tests if rid in t["requirements"]],
                "findings": mine,
            }
        )
    other = [f for f in findings if f["requirement"] not in catalogue.ADVISORY_IDS]
    if other:
        advisory_requirements.append(
            {"id": "other", "title": "Findings about no advisory requirement", "text": "", "tests": [], "findings": other}
        )
    sections = normalise_run_frames(run_frames, redactor, frame_cap=frame_cap)
    report: dict[str, Any] = {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "overall": overall,
        "overall_reason": overall_reason,
        "generated_at": now_iso(),
        "harness": {
            "name": "ev-energy-ocpp-harness",
            "version": HARNESS_VERSION,
            "python": platform.python_version(),
        },
        "run": jsonable(run),
        "charger": charger,
        "declarations": {
            "firmware_managed_by_ev_energy": declarations.get("firmware_managed_by_ev_energy")
            if isinstance(declarations.get("firmware_managed_by_ev_energy"), bool)
            else None,
            "nf1_statement": declarations.get("nf1_statement") if declarations.get("nf1_statement") else None,
        },
        "tls": tls,
        "connection_attempts": attempts,
        "summary": {
            "requirements": _counts(requirements),
            "tests": _counts(all_tests),
            "advisory": len(advisory),
            "advisory_findings": len(findings),
            "frames": sum(t["frames_total"] for t in all_tests) + sum(x["frames_total"] for x in sections),
        },
        "groups": groups,
        "requirements": requirements,
        "advisory": advisory,
        "advisory_requirements": advisory_requirements,
        "run_frames": sections,
        "warnings": warnings,
    }
    if run_info.get("pytest_version"):
        report["harness"]["pytest"] = str(run_info["pytest_version"])
    # Redact the whole thing (tests were done already; a second pass over them is cheap but the
    # frames are the bulk: skip them).
    report = _redact_report(report, redactor)
    report["digest"] = {"algorithm": "sha256", "value": compute_digest(report)}
    return report


def _redact_report(report: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    def strip_frames(tests: list[dict]) -> list[list]:
        saved = []
        for t in tests:
            saved.append(t.get("frames", []))
            t["frames"] = []
        return saved

    def restore(tests: list[dict], saved: list[list]) -> None:
        for t, frames in zip(tests, saved, strict=True):
            t["frames"] = frames

    # tests appear in several places (shared frame lists); strip, redact, restore
    req_tests = [t for r in report["requirements"] for t in r["tests"]]
    saved_req = strip_frames(req_tests)
    saved_adv = strip_frames(report["advisory"])
    saved_run = strip_frames(report["run_frames"])
    red = redactor.tree(report)
    restore([t for r in red["requirements"] for t in r["tests"]], saved_req)
    restore(red["advisory"], saved_adv)
    restore(red["run_frames"], saved_run)
    restore(req_tests, saved_req)
    restore(report["advisory"], saved_adv)
    restore(report["run_frames"], saved_run)
    return red


# --------------------------------------------------------------------------------------------
# Digest
# --------------------------------------------------------------------------------------------


def canonical_json(report: Mapping[str, Any]) -> bytes:
    """The bytes the digest covers: the report without ``digest``, canonical JSON, UTF-8."""
    body = {k: v for k, v in report.items() if k != "digest"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def compute_digest(report: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(report)).hexdigest()


def digest_ok(report: Mapping[str, Any]) -> bool:
    digest = report.get("digest")
    if not isinstance(digest, Mapping) or digest.get("algorithm") != "sha256":
        return False
    return digest.get("value") == compute_digest(report)
