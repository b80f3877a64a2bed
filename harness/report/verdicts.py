"""From tests to verdicts (docs/rules-verdicts.md): a requirement's from its tests (:func:`aggregate`),
with its declaration (:func:`requirement_verdict`), the OR-groups' (:func:`or_groups`) and the run's
(:func:`overall`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness import requirements as catalogue

from .normalise import NOT_TESTED_PREFIX
from .types import VERDICTS, Aggregate, OrGroupVerdict, Overall, RequirementVerdict, TestResult, Verdict

PASS, FAIL, INCOMPLETE = Verdict.PASS, Verdict.FAIL, Verdict.INCOMPLETE
NOT_APPLICABLE, NOT_TESTED = Verdict.NOT_APPLICABLE, Verdict.NOT_TESTED


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# --------------------------------------------------------------------------------------------
# A requirement from its tests
# --------------------------------------------------------------------------------------------


def _superseded(requirement: catalogue.Requirement, tests: list[TestResult], held: list[str]) -> set[str]:
    """Tests of another alternative that a held alternative makes unnecessary (their failures do not count)."""
    superseded: set[str] = set()
    if not (held and requirement.alternatives):
        return superseded
    for t in tests:
        alt = t.evidence.details.get("alternative")
        if t.verdict == PASS:
            continue
        if t.verdict == FAIL and (alt is None or alt in held):
            continue  # a failure that no held alternative excuses
        if alt is None or alt not in held:
            superseded.add(t.nodeid)
    return superseded


def _first_message(tests: list[TestResult]) -> str:
    for t in tests:
        if t.message:
            return t.message.strip().splitlines()[0][:300]
    return ""


def aggregate(requirement: catalogue.Requirement, tests: list[TestResult]) -> Aggregate:
    """Verdict of one requirement from its tests (see SCHEMA.md, "Aggregation")."""
    if not tests:
        return Aggregate(NOT_TESTED, "no test of this requirement ran", None)
    held: list[str] = []
    for t in tests:
        alt = t.evidence.details.get("alternative")
        if t.verdict == PASS and alt and alt not in held:
            held.append(alt)
    superseded = _superseded(requirement, tests, held)
    counted = [t for t in tests if t.nodeid not in superseded]
    by = {v: [t for t in counted if t.verdict == v] for v in VERDICTS}
    alternative = " and ".join(held) if held else None
    n = len(counted)

    if by[FAIL]:
        msg = _first_message(by[FAIL])
        reason = f"{plural(len(by[FAIL]), 'test')} of {n} failed" + (f": {msg}" if msg else "")
        return Aggregate(FAIL, reason, alternative, superseded)
    if by[INCOMPLETE]:
        msg = _first_message(by[INCOMPLETE])
        reason = f"{plural(len(by[INCOMPLETE]), 'test')} of {n} did not complete" + (f": {msg}" if msg else "")
        return Aggregate(INCOMPLETE, reason, alternative, superseded)
    if len(by[NOT_APPLICABLE]) == n:
        msg = _first_message(by[NOT_APPLICABLE])
        return Aggregate(NOT_APPLICABLE, msg or "not applicable to this charger", None, superseded)
    if by[NOT_TESTED]:
        msg = _first_message(by[NOT_TESTED])
        if by[PASS]:
            reason = f"partly tested: {len(by[PASS])} of {n} passed, {len(by[NOT_TESTED])} not tested"
        else:
            reason = msg or "not tested"
        if msg and by[PASS]:
            reason += f" ({msg[len(NOT_TESTED_PREFIX):] if msg.lower().startswith(NOT_TESTED_PREFIX) else msg})"
        return Aggregate(NOT_TESTED, reason, alternative, superseded)
    reason = f"{plural(len(by[PASS]), 'test')} passed"
    if alternative:
        reason += f"; alternative held: {alternative}"
    if superseded:
        reason += f" ({plural(len(superseded), 'test')} of other alternatives not needed)"
    return Aggregate(PASS, reason, alternative, superseded)


# --------------------------------------------------------------------------------------------
# A requirement with its declaration
# --------------------------------------------------------------------------------------------


def _conditional(entry: RequirementVerdict, req: catalogue.Requirement, declarations: Mapping[str, Any],
                 warnings: list[str]) -> None:
    """FW-1: it applies only when the manufacturer declares that ev.energy manages the firmware."""
    declared = declarations.get(req.declaration or "")
    declared = declared if isinstance(declared, bool) else None
    entry.declaration = {"name": req.declaration, "value": declared}
    if declared is True:
        entry.blocking = True
        entry.reason = f"applies (declared: {req.declaration} = true); {entry.reason}"
        return
    entry.verdict = NOT_APPLICABLE
    entry.alternative = None
    if declared is False:
        entry.reason = "not applicable: the manufacturer declares it manages the firmware itself"
    else:
        entry.reason = ("not applicable: no declaration (firmware_managed_by_ev_energy not given); "
                        "treated as managed by the manufacturer")
        warnings.append(f"{req.id}: no declaration {req.declaration!r}: treated as not applicable")
    if entry.tests:
        entry.reason += f"; {plural(len(entry.tests), 'test')} shown for information"


def _declared(entry: RequirementVerdict, req: catalogue.Requirement, declarations: Mapping[str, Any],
              redact: Any) -> None:
    """NF-1: a manufacturer's statement, recorded (not testable over OCPP)."""
    statement = declarations.get(req.declaration or "")
    statement = redact(str(statement)) if statement not in (None, "") else None
    entry.declaration = {"name": req.declaration, "value": statement}
    if not entry.tests:
        entry.reason = ("manufacturer's statement recorded (not testable over OCPP)" if statement
                        else "no manufacturer's statement given (not testable over OCPP)")


def requirement_verdict(req: catalogue.Requirement, tests: list[TestResult], *, selected: bool,
                        declarations: Mapping[str, Any], warnings: list[str], redact: Any) -> RequirementVerdict:
    """One requirement of ev.energy's list: its tests' verdict, then what its declaration makes of it.
    *redact*: the report's text redactor (a declaration is the manufacturer's free text)."""
    agg = aggregate(req, tests)
    why: str | None = agg.reason
    if not tests and not selected:
        why = "not selected in this run (no test of this requirement ran)"
    entry = RequirementVerdict(
        id=req.id, title=req.title, text=req.text, group=req.group, kind=req.kind,
        blocking=req.kind == catalogue.MANDATORY, verdict=agg.verdict, reason=why, tests=tests,
        superseded=agg.superseded, or_group=req.or_group or None, alternatives=tuple(req.alternatives),
        alternative=agg.alternative,
    )
    if req.kind == catalogue.CONDITIONAL:
        _conditional(entry, req, declarations, warnings)
    elif req.kind == catalogue.DECLARED:
        _declared(entry, req, declarations, redact)
    entry.reason = redact(entry.reason) if entry.reason else entry.reason
    return entry


# --------------------------------------------------------------------------------------------
# OR-groups and the overall verdict
# --------------------------------------------------------------------------------------------


def or_groups(by_rid: Mapping[str, RequirementVerdict]) -> list[OrGroupVerdict]:
    """Each OR-group's verdict; a held group makes its other members not required (not blocking)."""
    groups = []
    for group in catalogue.OR_GROUPS:
        members = [by_rid[m] for m in group.members]
        verdicts = [m.verdict for m in members]
        held = [m.id for m in members if m.verdict == PASS]
        if held:
            gv = PASS
            for m in members:
                if m.verdict != PASS:
                    m.reason = f"not required: {' and '.join(held)} passed ({group.title}); {m.reason}"
                    m.blocking = False
        elif INCOMPLETE in verdicts:
            gv = INCOMPLETE
        elif FAIL in verdicts:
            gv = FAIL
        elif all(v == NOT_APPLICABLE for v in verdicts):
            gv = NOT_APPLICABLE
        else:
            gv = NOT_TESTED
        groups.append(OrGroupVerdict(group.id, group.title, list(group.members), gv, held))
    return groups


@dataclass
class Unit:
    """What must pass for "certified": a mandatory (or applicable conditional) requirement, or an OR-group."""

    id: str
    verdict: str
    selected: bool


def units(requirements: list[RequirementVerdict], groups: list[OrGroupVerdict], chosen: set[str]) -> list[Unit]:
    out: list[Unit] = []
    seen_groups: set[str] = set()
    for r in requirements:
        req = catalogue.by_id(r.id)
        if req.or_group:
            if req.or_group not in seen_groups:
                seen_groups.add(req.or_group)
                g = next(g for g in groups if g.id == req.or_group)
                picked = any(m in chosen for m in g.members)
                out.append(Unit(f"{g.id} ({' OR '.join(g.members)})", str(g.verdict), picked))
            continue
        if req.kind == catalogue.MANDATORY or (req.kind == catalogue.CONDITIONAL and r.blocking):
            out.append(Unit(r.id, r.verdict, r.id in chosen))
    return out


def _with_reasons(ids: list[str], by_rid: Mapping[str, RequirementVerdict]) -> str:
    """"ST-4 (why), MV-3 (why)": each unit with the first line of its requirement's reason, shortened."""
    parts = []
    for unit in ids:
        found = by_rid.get(unit)
        why = str((found.reason if found else "") or "").strip().splitlines()
        text = why[0] if why else ""
        parts.append(f"{unit} ({text[:200]}{'…' if len(text) > 200 else ''})" if text else unit)
    return "; ".join(parts)


def _stopped(interrupted: bool, reason: str | None, failed: list[str]) -> str:
    why = reason or "the run was interrupted"
    if interrupted and reason and "interrupt" not in reason.lower():
        why = f"the run was interrupted: {reason}"
    if failed:
        why += f"; failed before it stopped: {', '.join(failed)}"
    return why


def _passed(mode: Any, judged: int, unselected: list[str], every: int) -> tuple[Overall, str]:
    """Every selected mandatory unit passed: certified, a rehearsal, or a partial certification run."""
    what = "quick mode" if mode == "quick" else ("mode not recorded" if mode is None else f"mode {mode!r}")
    if mode == "certification" and unselected:
        return Overall.INCOMPLETE, (
            f"partial run: all {judged} selected mandatory requirements pass, but a certification needs "
            f"every one; not selected: {', '.join(unselected)}"
        )
    if mode != "certification":
        if unselected:
            found = f"all {judged} selected mandatory requirements passed; not selected in this run: {', '.join(unselected)}"
        else:
            found = f"all {judged} mandatory requirements passed"
        return Overall.REHEARSAL_PASSED, (
            f"{what}: a rehearsal, not a certification run; {found}. Run in certification mode to certify."
        )
    return Overall.CERTIFIED, f"all {every} mandatory requirements pass"


def overall(all_units: list[Unit], by_rid: Mapping[str, RequirementVerdict], *, mode: Any, interrupted: bool,
            reason: str | None) -> tuple[Overall, str]:
    """The run's verdict and why (docs/rules-verdicts.md). A partial run (one suite file, -k, -m) is judged over
    the requirements it selected; the others were not selected, which is not "not tested" (the run never
    meant to test them)."""
    judged = [(u.id, u.verdict) for u in all_units if u.selected]
    unselected = [u.id for u in all_units if not u.selected]
    failed = [u for u, v in judged if v == FAIL]
    incomplete = [u for u, v in judged if v == INCOMPLETE]
    untested = [u for u, v in judged if v == NOT_TESTED]
    if interrupted or reason:
        return Overall.INCOMPLETE, _stopped(interrupted, reason, failed)
    if failed:
        why = "mandatory requirements failed: " + ", ".join(failed)
        if mode != "certification":
            what = "quick mode" if mode == "quick" else ("mode not recorded" if mode is None else f"mode {mode!r}")
            why += f" ({what}: a rehearsal, and it found failures)"
        return Overall.NOT_CERTIFIED, why
    if incomplete:
        return Overall.INCOMPLETE, "mandatory requirements did not complete: " + _with_reasons(incomplete, by_rid)
    if untested:
        return Overall.INCOMPLETE, "mandatory requirements not tested: " + _with_reasons(untested, by_rid)
    if not judged:
        return Overall.INCOMPLETE, "no mandatory requirement was selected in this run"
    return _passed(mode, len(judged), unselected, len(all_units))
