"""The certification report as data: from what a run observed to the sealed report dictionary.

``build(run_info, tests)`` makes the typed :class:`~harness.report.types.Report`; ``build_report`` (the same
arguments) returns its JSON form, redacted and digested: the dictionary ``SCHEMA.md`` documents (and
``templates/certification.schema.json`` formalises). Everything else in ``harness.report`` renders, writes
or checks that dictionary; nothing here touches pytest. The parts: :mod:`.types` (the dataclasses and
enums), :mod:`.normalise` (frames, messages), :mod:`.redact` (secrets), :mod:`.verdicts` (aggregation,
OR-groups, the overall verdict).

Input ``tests``: a :class:`~harness.report.types.TestRecord` per test (the collector's), or a dict with
the same keys (unit tests write them by hand)::

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

import hashlib
import json
import platform
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness import __version__ as HARNESS_VERSION
from harness import requirements as catalogue

from .normalise import (
    MAX_FRAMES_PER_TEST,
    MAX_MESSAGE_CHARS,
    MAX_TRACEBACK_CHARS,
    clean_reason,
    normalise_run_frames,
    normalise_test,
    now_iso,
    test_verdict,
    trim,
)
from .redact import REDACTED, Redactor, redact_report
from .types import (
    VERDICTS,
    AdvisoryRequirement,
    AdvisoryTest,
    Finding,
    Outcome,
    Overall,
    Party,
    Report,
    RequirementVerdict,
    RunInfo,
    TestRecord,
    TestResult,
    Verdict,
    jsonable,
)
from .verdicts import aggregate, or_groups, overall, requirement_verdict, units

__all__ = [
    "CERTIFIED", "CHARGER_TO_CSMS", "CSMS_TO_CHARGER", "EXIT_HARNESS_ERROR", "EXIT_INCOMPLETE", "EXIT_STATUS", "FAIL",
    "INCOMPLETE", "MAX_FRAMES_PER_TEST", "MAX_MESSAGE_CHARS", "MAX_TRACEBACK_CHARS", "NEVER_CONNECTED",
    "NOT_APPLICABLE", "NOT_CERTIFIED", "NOT_TESTED", "OVERALL_VERDICTS", "Outcome", "Overall", "PASS", "Party",
    "REDACTED", "REHEARSAL_PASSED", "Redactor", "SCHEMA_NAME", "SCHEMA_VERSION", "TestRecord", "VERDICTS", "Verdict",
    "aggregate", "build", "build_report", "canonical_json", "clean_reason", "compute_digest", "digest_ok",
    "jsonable", "normalise_run_frames", "normalise_test", "now_iso", "seal", "test_verdict", "trim",
]

SCHEMA_NAME = "ev-energy-certification-report"
SCHEMA_VERSION = "1.1"

# Test and requirement verdicts (the names the rest of the harness uses).
PASS = Verdict.PASS
FAIL = Verdict.FAIL
NOT_APPLICABLE = Verdict.NOT_APPLICABLE
NOT_TESTED = Verdict.NOT_TESTED
INCOMPLETE = Verdict.INCOMPLETE

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

NEVER_CONNECTED = "charger never connected"

_CHARGER_KEYS = ("id", "vendor", "model", "serial", "firmware")


# --------------------------------------------------------------------------------------------
# Tests into requirements
# --------------------------------------------------------------------------------------------


def _advisory_reason(t: TestResult, unknown: list[str], warnings: list[str]) -> str:
    if t.evidence.advisory:
        return "an advisory check: never affects the verdict"
    if unknown:
        return "unknown requirement ID: " + ", ".join(unknown)
    if t.requirements:
        return "outside ev.energy's list: " + ", ".join(t.requirements)
    warnings.append(f"{t.nodeid}: no requirement marker")
    return "no requirement marker"


def _sort_tests(tests: list[TestResult], warnings: list[str]) -> tuple[dict[str, list[TestResult]], list[AdvisoryTest]]:
    """Each test under the requirements of ev.energy's list it is about, or among the advisory ones."""
    per_req: dict[str, list[TestResult]] = {rid: [] for rid in catalogue.EV_ENERGY_IDS}
    advisory: list[AdvisoryTest] = []
    for t in tests:
        unknown = [i for i in t.requirements if not catalogue.is_known(i)]
        warnings.extend(f"{t.nodeid}: unknown requirement ID {i!r}" for i in unknown)
        official = [i for i in t.requirements if i in per_req]
        if t.evidence.advisory or not official:
            advisory.append(AdvisoryTest(t, _advisory_reason(t, unknown, warnings)))
            continue
        alt = t.evidence.details["alternative"]
        for i in official:
            per_req[i].append(t)
        for i in official:
            alts = catalogue.by_id(i).alternatives
            if alt and alts and alt not in alts:
                warnings.append(f"{t.nodeid}: alternative {alt!r} is not one of {i}'s ({', '.join(alts)})")
    return per_req, advisory


# --------------------------------------------------------------------------------------------
# Advisory findings: never affect the verdict (docs/rules-verdicts.md)
# --------------------------------------------------------------------------------------------


def _findings(tests: list[TestResult], advisory: list[AdvisoryTest]) -> list[Finding]:
    found = [Finding(f.requirement, f.message, f.seq, t.nodeid, t.name) for t in tests for f in t.findings]
    for a in advisory:
        t = a.test
        if t.verdict == FAIL and not t.findings:
            # an advisory test that failed without the harness plugin (which turns that into a finding)
            marked = [i for i in t.requirements if i in catalogue.ADVISORY_IDS]
            found.append(Finding(marked[0] if marked else "", (t.message or "").strip(), None, t.nodeid, t.name))
    return found


def _advisory_requirements(tests: list[TestResult], findings: list[Finding]) -> list[AdvisoryRequirement]:
    out = []
    for rid in catalogue.ADVISORY_IDS:
        req = catalogue.by_id(rid)
        out.append(AdvisoryRequirement(rid, req.title, req.text, [t.nodeid for t in tests if rid in t.requirements],
                                       [f for f in findings if f.requirement == rid]))
    other = [f for f in findings if f.requirement not in catalogue.ADVISORY_IDS]
    if other:
        out.append(AdvisoryRequirement("other", "Findings about no advisory requirement", "", [], other))
    return out


# --------------------------------------------------------------------------------------------
# What the run recorded about itself
# --------------------------------------------------------------------------------------------


def _declarations(run_info: Mapping[str, Any]) -> Mapping[str, Any]:
    found = run_info.get("declarations") or {}
    return found if isinstance(found, Mapping) else {}


def _declarations_section(declarations: Mapping[str, Any]) -> dict[str, Any]:
    managed = declarations.get("firmware_managed_by_ev_energy")
    return {
        "firmware_managed_by_ev_energy": managed if isinstance(managed, bool) else None,
        "nf1_statement": declarations.get("nf1_statement") if declarations.get("nf1_statement") else None,
    }


def _charger(raw: Any) -> dict[str, Any]:
    charger: dict[str, Any] = {k: None for k in _CHARGER_KEYS}
    if isinstance(raw, Mapping):
        charger.update(jsonable(raw))
    return charger


def _tls(run_info: Mapping[str, Any]) -> dict[str, Any]:
    tls: dict[str, Any] = {"policy": catalogue.TLS_POLICY, "version": None, "cipher": None, "offered_policy_suites": []}
    if isinstance(run_info.get("tls"), Mapping):
        tls.update(jsonable(run_info["tls"]))
    return tls


def _attempts(run_info: Mapping[str, Any]) -> list[Any]:
    attempts = jsonable(run_info.get("connection_attempts") or [])
    return attempts if isinstance(attempts, list) else []


def _harness(run_info: Mapping[str, Any]) -> dict[str, Any]:
    harness = {"name": "ev-energy-ocpp-harness", "version": HARNESS_VERSION, "python": platform.python_version()}
    if run_info.get("pytest_version"):
        harness["pytest"] = str(run_info["pytest_version"])
    return harness


def _faults_note(run_info: Mapping[str, Any]) -> str:
    faults = run_info.get("harness_errors")
    if isinstance(faults, list) and faults:
        # docs/rules-silence.md §2: the harness's own exceptions are named as such, never the charger's.
        return (f"; harness error: {len(faults)} exception(s) in the harness's own frame handling "
                "(run.harness_errors; the charger was not judged by them)")
    return ""


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def build(
    run_info: Mapping[str, Any] | None,
    tests: Sequence[TestRecord | Mapping[str, Any]],
    *,
    interrupted: bool = False,
    reason: str | None = None,
    frame_cap: int = MAX_FRAMES_PER_TEST,
    selected: Iterable[str] | None = None,
    run_frames: Iterable[Mapping[str, Any]] | None = None,
) -> Report:
    """The typed report (see :func:`build_report` for the arguments)."""
    info = dict(run_info or {})
    charger_raw = info.get("charger") or {}
    redactor = Redactor(info.get("secrets") or (), charger_raw.get("id") if isinstance(charger_raw, Mapping) else None)
    warnings: list[str] = []
    records = [t if isinstance(t, TestRecord) else TestRecord.from_mapping(t) for t in tests]
    normalised = [normalise_test(t, redactor, frame_cap=frame_cap) for t in records]
    if selected is None:
        chosen = {str(i) for t in records for i in (t.marked or t.requirements)}
    else:
        chosen = {str(i) for i in selected}

    per_req, advisory = _sort_tests(normalised, warnings)
    declarations = _declarations(info)
    requirements: list[RequirementVerdict] = [
        requirement_verdict(catalogue.by_id(rid), per_req[rid], selected=rid in chosen, declarations=declarations,
                            warnings=warnings, redact=redactor.text)
        for rid in catalogue.EV_ENERGY_IDS
    ]
    by_rid = {r.id: r for r in requirements}
    groups = or_groups(by_rid)
    verdict, why = overall(units(requirements, groups, chosen), by_rid, mode=info.get("mode"),
                           interrupted=interrupted, reason=reason)
    findings = _findings(normalised, advisory)
    return Report(
        schema=SCHEMA_NAME,
        schema_version=SCHEMA_VERSION,
        overall=verdict,
        overall_reason=redactor.text(why + _faults_note(info)),
        generated_at=now_iso(),
        harness=_harness(info),
        run=RunInfo.from_info(info, interrupted=interrupted, reason=reason),
        charger=_charger(charger_raw),
        declarations=_declarations_section(declarations),
        tls=_tls(info),
        connection_attempts=_attempts(info),
        requirements=requirements,
        groups=groups,
        advisory=advisory,
        advisory_requirements=_advisory_requirements(normalised, findings),
        run_frames=normalise_run_frames(run_frames, redactor, frame_cap=frame_cap),
        warnings=warnings,
        tests=normalised,
        redactor=redactor,
    )


def build_report(
    run_info: Mapping[str, Any] | None,
    tests: Sequence[TestRecord | Mapping[str, Any]],
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
    report = build(run_info, tests, interrupted=interrupted, reason=reason, frame_cap=frame_cap, selected=selected,
                   run_frames=run_frames)
    return seal(report)


def seal(report: Report) -> dict[str, Any]:
    """The report's JSON form, redacted (the frames were, when they were normalised) and digested."""
    out = redact_report(report.to_json(), report.redactor or Redactor())
    out["digest"] = {"algorithm": "sha256", "value": compute_digest(out)}
    return out


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
