"""The report's types: what the collector records per test, and what the report is made of.

The collector fills :class:`TestRecord` (one per test, whatever phases it reported); ``build`` in
:mod:`harness.report.model` turns them into a :class:`Report` (per-requirement :class:`RequirementVerdict`
with their tests' :class:`Evidence`, :class:`OrGroupVerdict`, :class:`RunInfo`, advisory findings); the one
way out is :meth:`Report.to_json`, the dictionary ``SCHEMA.md`` documents (and
``templates/certification.schema.json`` formalises), which is what is written, embedded in the HTML and
digested. Members of the JSON appear in the order each ``to_json`` writes them: the files stay
byte-for-byte what earlier versions wrote (apart from times).

The closed sets of words are StrEnums: each member *is* its string (equal to it, hashes like it, json.dumps
writes it), so the report JSON, the schema and reports read back from disk are unchanged. pytest-xdist
(execnet) cannot serialise a str subclass: whatever a worker sends the controller is a plain str
(``.value``; harness/report/collector.py converts at that boundary).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .redact import Redactor


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


class Party(StrEnum):
    """Who broke when a test phase ended in an exception that is no finding about the charger."""

    RIG = "rig"
    HARNESS = "harness"


VERDICTS = tuple(Verdict)


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


def counts(verdicts: list[Verdict] | list[str]) -> dict[str, int]:
    """How many of each verdict, every verdict listed (in the enum's order)."""
    out: dict[str, int] = {v: 0 for v in VERDICTS}
    for v in verdicts:
        out[v] += 1
    return out


# --------------------------------------------------------------------------------------------
# What the collector records
# --------------------------------------------------------------------------------------------


@dataclass
class TestRecord:
    """One test as the collector saw it over its phases (raw: :func:`harness.report.normalise.normalise_test`
    cleans it). ``frames`` is None while no phase carried the test's evidence."""

    __test__ = False  # not a pytest test class

    nodeid: str
    name: str | None = None
    requirements: list[str] = field(default_factory=list)
    verdict: Verdict | None = None
    outcome: str | None = None
    duration: float = 0.0
    message: str | None = None
    traceback: str | None = None
    doc: str | None = None
    worker: str | None = None
    findings: list[Mapping[str, Any]] = field(default_factory=list)
    frames: list[Any] | None = None
    details: dict[str, Any] | None = None
    #: The requirement IDs of the test's markers (the unit tests' hand-written records may give them).
    marked: list[str] = field(default_factory=list)
    #: The failure is a finding about another requirement than the markers': a later phase keeps it there.
    refiled: bool = False
    #: The harness's own exception decided this test's verdict (incomplete): the run's exit status is then
    #: the harness-error one (docs/rules-verdicts.md). Not in the JSON: the message says it to the reader.
    harness_error: bool = False

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> TestRecord:
        """A hand-written test dict (unit tests, SCHEMA.md's example): only ``nodeid`` is required."""
        reqs = raw.get("requirements") or []
        frames = raw.get("frames")
        return cls(
            nodeid=str(raw["nodeid"]),
            name=raw.get("name"),
            requirements=[reqs] if isinstance(reqs, str) else list(reqs),
            verdict=raw.get("verdict"),
            outcome=raw.get("outcome"),
            duration=raw.get("duration") or 0.0,
            message=raw.get("message"),
            traceback=raw.get("traceback"),
            doc=raw.get("doc"),
            worker=raw.get("worker"),
            findings=list(raw.get("findings") or []),
            frames=None if frames is None else list(frames),
            details=raw.get("details"),
            marked=list(raw.get("marked") or []),
        )


# --------------------------------------------------------------------------------------------
# What the report is made of
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One OCPP-J frame (or trace event) of the evidence, redacted."""

    seq: int
    direction: str
    time: Any
    mono: float | None
    text: str
    note: str | None

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "direction": self.direction, "time": self.time, "mono": self.mono,
                "text": self.text, "note": self.note}


@dataclass
class Frames:
    """A window of the trace: at most the cap of frames (the first and the last half, seq kept)."""

    frames: list[Frame]
    total: int
    #: ``{"count": n, "index": i}`` when frames were left out at index i, else None.
    omitted: dict[str, int] | None


@dataclass
class Evidence:
    """What a test's verdict rests on: its slice of the trace and what the suite noted (``details``: the
    alternative it held, its notes, whether it was advisory, and whatever else the suite recorded)."""

    frames: Frames
    details: dict[str, Any]

    @property
    def alternative(self) -> str | None:
        alt = self.details.get("alternative")
        return str(alt) if alt else None

    @property
    def advisory(self) -> bool:
        return bool(self.details.get("advisory"))


@dataclass
class Finding:
    """An advisory finding (docs/rules-verdicts.md): never affects the verdict. ``nodeid``/``name``: the
    test it was found in, when listed under its requirement."""

    requirement: str
    message: str
    seq: int | None
    nodeid: str | None = None
    name: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"requirement": self.requirement, "message": self.message, "seq": self.seq}
        if self.nodeid is not None:
            out["nodeid"] = self.nodeid
            out["name"] = self.name
        return out


@dataclass
class TestResult:
    """One test in the report: its verdict and its evidence (normalised, trimmed and redacted)."""

    __test__ = False  # not a pytest test class

    nodeid: str
    name: str
    requirements: list[str]
    outcome: str
    verdict: Verdict
    duration: float
    evidence: Evidence
    message: str | None = None
    traceback: str | None = None
    findings: list[Finding] = field(default_factory=list)
    doc: str | None = None
    worker: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "nodeid": self.nodeid,
            "name": self.name,
            "requirements": list(self.requirements),
            "outcome": self.outcome,
            "verdict": self.verdict,
            "duration": self.duration,
            "details": self.evidence.details,
            "frames_total": self.evidence.frames.total,
            "frames_omitted": self.evidence.frames.omitted,
        }
        if self.message is not None:
            out["message"] = self.message
        if self.traceback is not None:
            out["traceback"] = self.traceback
        if self.findings:
            out["findings"] = [f.to_json() for f in self.findings]
        if self.doc is not None:
            out["doc"] = self.doc
        if self.worker is not None:
            out["worker"] = self.worker
        out["frames"] = [f.to_json() for f in self.evidence.frames.frames]
        return out


@dataclass
class AdvisoryTest:
    """A test outside ev.energy's list (advisory, unknown or no requirement marker), and why it is there."""

    test: TestResult
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {**self.test.to_json(), "advisory_reason": self.reason}


@dataclass
class TraceSection:
    """A run-level section of the trace: frames in no test's evidence (before the first test, a test's set-up
    before its evidence starts, its teardown, after the last test)."""

    title: str
    phase: str
    nodeid: str | None
    frames: Frames
    worker: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "title": self.title,
            "phase": self.phase,
            "nodeid": self.nodeid,
            "frames_total": self.frames.total,
            "frames_omitted": self.frames.omitted,
            "frames": [f.to_json() for f in self.frames.frames],
        }
        if self.worker:
            out["worker"] = self.worker
        return out


@dataclass
class Aggregate:
    """A requirement's verdict from its tests alone (before declarations and OR-groups)."""

    verdict: Verdict
    reason: str
    alternative: str | None
    superseded: set[str] = field(default_factory=set)


@dataclass
class RequirementVerdict:
    """One requirement of ev.energy's list: the catalogue's words, the verdict, why, and its tests."""

    id: str
    title: str
    text: str
    group: str
    kind: str
    blocking: bool
    verdict: Verdict
    reason: str | None
    tests: list[TestResult]
    #: Tests of another alternative that a held alternative made unnecessary (nodeids).
    superseded: set[str] = field(default_factory=set)
    or_group: str | None = None
    alternatives: tuple[str, ...] = ()
    #: ``{"name", "value"}`` for a conditional or declared requirement.
    declaration: dict[str, Any] | None = None
    alternative: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "title": self.title, "text": self.text, "group": self.group, "kind": self.kind,
            "blocking": self.blocking,
        }
        if self.or_group:
            out["or_group"] = self.or_group
        if self.alternatives:
            out["alternatives"] = list(self.alternatives)
        if self.declaration is not None:
            out["declaration"] = dict(self.declaration)
        out["verdict"] = self.verdict
        if self.alternative:
            out["alternative"] = self.alternative
        out["reason"] = self.reason
        out["counts"] = counts([t.verdict for t in self.tests])
        out["tests"] = [{**t.to_json(), "superseded": t.nodeid in self.superseded} for t in self.tests]
        return out


@dataclass
class OrGroupVerdict:
    """An OR-group (AUTH: Basic Auth OR certificates): it holds when one member passed."""

    id: str
    title: str
    members: list[str]
    verdict: Verdict
    held: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "members": list(self.members), "verdict": self.verdict,
                "held": list(self.held)}


@dataclass
class AdvisoryRequirement:
    """An advisory requirement (ADV-n) with the tests of it and every finding about it."""

    id: str
    title: str
    text: str
    tests: list[str]
    findings: list[Finding]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "text": self.text, "tests": list(self.tests),
                "findings": [f.to_json() for f in self.findings]}


#: RunInfo's optional members, in the order the JSON lists them (present only when known).
RUN_EXTRAS = ("exit_status", "workers", "command", "trace_frames", "harness_errors")


@dataclass
class RunInfo:
    """The run: how it was made, when, and whether it completed (the report's ``run``)."""

    mode: str | None = None
    security_profile: Any = None
    backend: str | None = None
    endpoint: str | None = None
    started: str | None = None
    finished: str | None = None
    duration: float | None = None
    interrupted: bool = False
    incomplete_reason: str | None = None
    defects: list[str] = field(default_factory=list)
    exit_status: int | None = None
    workers: Any = None
    command: str | None = None
    trace_frames: int | None = None
    harness_errors: list[Any] | None = None

    @classmethod
    def from_info(cls, info: Mapping[str, Any], *, interrupted: bool, reason: str | None) -> RunInfo:
        """From the plugin's RUN_INFO (as the collector merged it; missing keys are fine)."""
        return cls(
            mode=info.get("mode"), security_profile=info.get("security_profile"), backend=info.get("backend"),
            endpoint=info.get("endpoint"), started=info.get("started"), finished=info.get("finished"),
            duration=info.get("duration"), interrupted=bool(interrupted), incomplete_reason=reason,
            defects=[str(d) for d in info.get("defects") or []],
            **{k: info.get(k) for k in RUN_EXTRAS},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": self.mode, "security_profile": self.security_profile, "backend": self.backend,
            "endpoint": self.endpoint, "started": self.started, "finished": self.finished,
            "duration": self.duration, "interrupted": self.interrupted, "incomplete_reason": self.incomplete_reason,
        }
        if self.defects:
            out["defects"] = list(self.defects)
        for key in RUN_EXTRAS:
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return {key: jsonable(value) for key, value in out.items()}


@dataclass
class Report:
    """The certification report. ``charger``, ``tls``, ``connection_attempts`` and ``harness`` are open
    objects (more keys may follow, SCHEMA.md): what the endpoint and the plugin recorded."""

    schema: str
    schema_version: str
    overall: Overall
    overall_reason: str
    generated_at: str
    harness: dict[str, Any]
    run: RunInfo
    charger: dict[str, Any]
    declarations: dict[str, Any]
    tls: dict[str, Any]
    connection_attempts: list[Any]
    requirements: list[RequirementVerdict]
    groups: list[OrGroupVerdict]
    advisory: list[AdvisoryTest]
    advisory_requirements: list[AdvisoryRequirement]
    run_frames: list[TraceSection]
    warnings: list[str]
    #: Every test the run reported, once each (a test of two requirements is listed under both).
    tests: list[TestResult]
    #: The run's redactor: :func:`harness.report.model.seal` passes the JSON through it once more.
    redactor: Redactor | None = field(default=None, repr=False, compare=False)

    def summary(self) -> dict[str, Any]:
        all_tests = self.tests
        findings = sum(len(a.findings) for a in self.advisory_requirements)
        frames = sum(t.evidence.frames.total for t in all_tests) + sum(s.frames.total for s in self.run_frames)
        return {
            "requirements": counts([r.verdict for r in self.requirements]),
            "tests": counts([t.verdict for t in all_tests]),
            "advisory": len(self.advisory),
            "advisory_findings": findings,
            "frames": frames,
        }

    def to_json(self) -> dict[str, Any]:
        """The report dictionary, without ``digest`` (harness.report.model seals it)."""
        return {
            "schema": self.schema,
            "schema_version": self.schema_version,
            "overall": self.overall,
            "overall_reason": self.overall_reason,
            "generated_at": self.generated_at,
            "harness": dict(self.harness),
            "run": self.run.to_json(),
            "charger": self.charger,
            "declarations": dict(self.declarations),
            "tls": self.tls,
            "connection_attempts": self.connection_attempts,
            "summary": self.summary(),
            "groups": [g.to_json() for g in self.groups],
            "requirements": [r.to_json() for r in self.requirements],
            "advisory": [a.to_json() for a in self.advisory],
            "advisory_requirements": [a.to_json() for a in self.advisory_requirements],
            "run_frames": [s.to_json() for s in self.run_frames],
            "warnings": list(self.warnings),
        }
