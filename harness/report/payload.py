"""A test phase's payload: what the collector learns from one phase of one test (its verdict, why, its
evidence). It is built where the test ran (a pytest-xdist worker, or the only process) and travels on the
test report to the controller as plain JSON-able data (execnet cannot serialise a str subclass)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from harness.drivers.base import RigError
from harness.requirements import requirement_ids

from . import normalise
from .model import NEVER_CONNECTED
from .stash import EVIDENCE, FINDINGS, RUN_FRAMES
from .types import Outcome, Party, Verdict, jsonable


def skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(getattr(report, "longreprtext", "") or longrepr or "")
    for prefix in ("Skipped: ", "Skipped:"):
        if reason.startswith(prefix):
            reason = reason[len(prefix) :]
    return reason.strip()


def crash_message(report: pytest.TestReport | pytest.CollectReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    if message:
        return str(message)
    text = str(getattr(report, "longreprtext", "") or "")
    lines = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ")]
    return "\n".join(lines) if lines else text.strip().splitlines()[-1] if text.strip() else ""


def error_party(call: pytest.CallInfo[None]) -> Party | None:
    """Who broke when a phase ended in an exception that is no finding about the charger: the rig (RigError),
    or the harness (anything that is not an assertion, such as ChargerFailure, ProtocolViolation or a plain
    assert, nor pytest's own outcome: fail, skip, exit). None for a finding."""
    excinfo = call.excinfo
    if excinfo is None:
        return None
    if excinfo.errisinstance(RigError):
        return Party.RIG
    if excinfo.errisinstance((AssertionError, pytest.fail.Exception, pytest.skip.Exception, pytest.exit.Exception)):
        return None
    if excinfo.errisinstance((KeyboardInterrupt, SystemExit)):
        return None
    return Party.HARNESS


def error_kind(call: pytest.CallInfo[None]) -> str | None:
    """"rig error" (with its act) / "harness error", the words a message starts with (see error_party)."""
    party = error_party(call)
    if party is Party.RIG:
        act = getattr(call.excinfo.value if call.excinfo else None, "act", None)
        return f"rig error in the act '{act}'" if act else "rig error"
    return "harness error" if party is Party.HARNESS else None


def evidence_payload(item: pytest.Item) -> dict[str, Any] | None:
    """The test's evidence (frames and details) as plain data."""
    evidence = item.stash.get(EVIDENCE, None)
    if not isinstance(evidence, Mapping):
        return None
    frames = []
    for i, f in enumerate(list(evidence.get("frames") or [])):
        if not isinstance(f, Mapping):
            f = {"text": f}
        frames.append({"seq": f.get("seq", i), "direction": f.get("direction"), "time": f.get("time"),
                       "mono": f.get("mono"), "text": f.get("text"), "note": f.get("note")})
    return {"frames": jsonable(frames), "details": jsonable(dict(evidence.get("details") or {}))}


def _failed(report: pytest.TestReport, call: pytest.CallInfo[None], payload: dict[str, Any]) -> Verdict:
    """A failed phase: a finding about the charger (fail), or the rig or the harness broke (incomplete: the
    charger was not judged, docs/rules-verdicts.md). Fills the payload's outcome, message and traceback, and
    ``harness_error`` when the harness's own exception decided the verdict."""
    message = crash_message(report)
    payload["outcome"] = (Outcome.FAILED if report.when == "call" else Outcome.ERROR).value
    verdict = Verdict.FAIL
    party = error_party(call)
    kind = error_kind(call)
    if report.when == "call" and kind is not None:
        verdict = Verdict.INCOMPLETE
        payload["outcome"] = Outcome.ERROR.value
        message = f"{kind} (the charger was not judged): {message}"
    elif report.when == "teardown":
        if kind is not None:  # the rig or the harness broke while putting things back
            verdict = Verdict.INCOMPLETE
            message = f"{kind} in teardown (the charger was not judged on it): {message}"
        else:
            message = f"error in teardown: {message}"
    elif report.when == "setup":
        charger_finding = call.excinfo is not None and call.excinfo.errisinstance(AssertionError)
        if NEVER_CONNECTED in message.lower() or "charger not idle" in message.lower():
            verdict = Verdict.INCOMPLETE  # the charger could not be put in the state this test needs
            message = f"not run: {message}"
            party = None
        elif charger_finding:  # a finding about the charger (the harness raises AssertionErrors)
            message = f"error in setup: {message}"
        else:  # the harness or the rig broke before the charger was tested
            verdict = Verdict.INCOMPLETE
            party = party or Party.HARNESS  # pytest.exit and the like in a set-up: the harness's
            message = f"{kind or 'harness error'} in setup (the charger was not tested): {message}"
    if verdict == Verdict.INCOMPLETE and party is Party.HARNESS:
        payload["harness_error"] = True
    payload["message"] = normalise.trim(message, normalise.MAX_MESSAGE_CHARS)
    payload["traceback"] = normalise.trim(str(report.longreprtext or ""), normalise.MAX_TRACEBACK_CHARS)
    return verdict


def _verdict(report: pytest.TestReport, call: pytest.CallInfo[None], payload: dict[str, Any]) -> Verdict | None:
    """The verdict this phase gives the test (None: it gives none, e.g. a passed set-up)."""
    if report.passed:
        return Verdict.PASS if report.when == "call" else None
    if report.skipped:
        if hasattr(report, "wasxfail"):
            payload["outcome"] = Outcome.XFAILED.value
            payload["message"] = f"expected failure (xfail): {report.wasxfail}"
            return Verdict.FAIL
        reason = skip_reason(report)
        payload["outcome"] = Outcome.SKIPPED.value
        payload["message"] = reason
        return normalise.test_verdict(Outcome.SKIPPED, reason)
    return _failed(report, call, payload)


def phase_payload(item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None],
                  worker_id: str | None) -> dict[str, Any]:
    """What this phase tells the collector about the test."""
    ids = requirement_ids(item)
    marked = list(ids)
    finding = call.excinfo.value if call.excinfo is not None else None
    elsewhere = [str(r) for r in getattr(finding, "requirements", ()) or ()]
    if elsewhere and not report.passed:
        # The failure is a finding about another requirement (e.g. a §4.9 transition seen in an SC-2 test).
        ids = elsewhere
    payload: dict[str, Any] = {
        "phase": report.when,
        "requirements": ids,
        "refiled": bool(elsewhere and not report.passed),
        "name": item.name,
        "marked": marked,
    }
    sections = item.stash.get(RUN_FRAMES, None)
    if sections:
        payload["run_frames"] = jsonable(sections)
        item.stash[RUN_FRAMES] = []
    if report.when == "setup":
        doc = getattr(getattr(item, "obj", None), "__doc__", None)
        if doc:  # the first paragraph, on one line
            payload["doc"] = " ".join(doc.strip().split("\n\n", 1)[0].split())[:600]
    if worker_id:
        payload["worker"] = worker_id
    verdict = _verdict(report, call, payload)
    if verdict:
        payload["verdict"] = verdict.value  # a plain str: execnet cannot serialise the enum member
    if report.when == "call" or (report.when == "setup" and not report.passed) or report.failed:
        evidence = evidence_payload(item)
        if evidence is not None:
            payload["evidence"] = evidence
        found = item.stash.get(FINDINGS, None)
        if found:
            payload["findings"] = jsonable(found)
    return payload


def junit_properties(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Small, evidence-free facts for --junitxml: the requirement IDs, the verdict, the alternative held."""
    props = [("requirement", str(rid)) for rid in payload.get("requirements") or []]
    if payload.get("verdict"):
        props.append(("verdict", str(payload["verdict"])))  # plain str: user_properties cross from workers too
    alt = (payload.get("evidence") or {}).get("details", {}).get("alternative")
    if alt:
        props.append(("alternative", str(alt)))
    return props
