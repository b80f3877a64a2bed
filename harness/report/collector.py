"""The pytest side of the report: collect each test's verdict and evidence, write the report.

The harness plugin registers one :class:`ReportCollector` per process for certification runs::

    config.pluginmanager.register(ReportCollector(config), "ev-energy-report")

It reads (stash keys in :mod:`.stash`):

* ``config.stash[RUN_INFO]``: a dict the plugin keeps up to date (charger, endpoint, mode, TLS,
  connection attempts, declarations, secrets); see SCHEMA.md.
* ``item.stash[EVIDENCE]``: per test, ``{"frames": [...], "details": {...}}``.
* the ``requirement`` marker(s) of each test: ``@pytest.mark.requirement("SC-2", "ST-4")``.

Each phase of a test gives a payload (:mod:`.payload`); the collector keeps one
:class:`~harness.report.types.TestRecord` per test from them and, at the end, builds the report
(:mod:`.model`) and writes it (:mod:`.render`). With pytest-xdist, workers and the controller both run a
collector. On a worker, each phase's payload (and a snapshot of the worker's RUN_INFO when it changed)
rides on the test report as the attribute ``ev_energy_report`` (pytest serialises extra report
attributes between processes); the controller collects them in ``pytest_runtest_logreport`` and is the
only one that writes files. Only a few short strings go into ``report.user_properties`` (requirement IDs,
verdict, alternative), so ``--junitxml`` carries them without the evidence.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness import interrupt
from harness.printable import printable
from harness.requirements import requirement_ids
from harness.settings import REPORT_DIR_ENV, SETTINGS, Settings
from . import model
from .history import DEFAULT_HISTORY, HISTORY_DIR, keep_in_history
from .junit import JUnitRequirements, junit_name
from .payload import crash_message, error_kind, error_party, evidence_payload, junit_properties, phase_payload, skip_reason
from .render import write_report
from .stash import (
    CERTIFICATION_RUN,
    EVIDENCE,
    FINDINGS,
    PAYLOAD_ATTR,
    RUN_FRAMES,
    RUN_FRAMES_AFTER,
    RUN_INFO,
)
from .types import Outcome, Report, TestRecord, Verdict
from .workers import merge_run_info, worker_charger

__all__ = [
    "CERTIFICATION_RUN", "DEFAULT_HISTORY", "EVIDENCE", "FINDINGS", "HISTORY_DIR", "PAYLOAD_ATTR", "RUN_FRAMES",
    "RUN_FRAMES_AFTER", "RUN_INFO", "JUnitRequirements", "ReportCollector", "error_kind", "error_party", "junit_name",
]


def _harness_broke(tests: list[TestRecord], info: Mapping[str, Any]) -> bool:
    """Whether the harness's own exceptions are among the reasons the run is incomplete: a test whose verdict a
    harness error decided (incomplete), or an exception in the harness's frame handling (run.harness_errors)."""
    return bool(info.get("harness_errors")) or any(t.harness_error and t.verdict == Verdict.INCOMPLETE for t in tests)


def _now() -> str:
    return model.now_iso()


def _plain_payload(report: pytest.TestReport) -> dict[str, Any]:
    """A phase that carries no payload (the collector of its process did not attach one): pytest's words."""
    payload: dict[str, Any] = {"phase": report.when, "requirements": [], "name": report.nodeid.rsplit("::", 1)[-1]}
    if report.failed:
        payload["verdict"] = Verdict.FAIL
        payload["message"] = crash_message(report)
    elif report.skipped:
        payload["verdict"] = model.test_verdict(Outcome.SKIPPED, skip_reason(report))
        payload["message"] = skip_reason(report)
    elif report.when == "call":
        payload["verdict"] = Verdict.PASS
    return payload


def _teardown(test: TestRecord, report: pytest.TestReport, payload: Mapping[str, Any]) -> None:
    """The last phase: a failed teardown decides a passed test's verdict, else it adds its message."""
    if report.failed:
        if test.verdict in (None, Verdict.PASS):
            verdict = payload.get("verdict")
            test.verdict = Verdict(verdict) if verdict else Verdict.FAIL
            test.outcome = Outcome.ERROR
            test.message = payload.get("message")
            test.traceback = payload.get("traceback")
            test.harness_error = bool(payload.get("harness_error"))
        else:
            test.message = "\n\n".join(m for m in (test.message, payload.get("message")) if m)
    if test.verdict is None:  # e.g. setup passed, call never reported
        test.verdict = Verdict.INCOMPLETE
        test.outcome = Outcome.NOT_RUN


#: pytest options that only look (collect, list fixtures or markers) and run nothing: no report is written.
_LOOKING_ONLY = (("collectonly", "--collect-only"), ("showfixtures", "--fixtures"),
                 ("show_fixtures_per_test", "--fixtures-per-test"), ("markers", "--markers"))

class ReportCollector:
    """pytest plugin object: per-test verdicts and evidence in, certification report out."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        if not hasattr(config, "workerinput") and not config.pluginmanager.has_plugin("ev-energy-junit-requirements"):
            config.pluginmanager.register(JUnitRequirements(config), "ev-energy-junit-requirements")
        self.is_worker = hasattr(config, "workerinput")
        self.worker_id = config.workerinput.get("workerid") if self.is_worker else None  # type: ignore[attr-defined]  # xdist's
        self.started = _now()
        self._t0 = time.monotonic()
        self._tests: dict[str, TestRecord] = {}
        self._finished: set[str] = set()
        self._worker_run_info: dict[str, dict[str, Any]] = {}
        self._last_snapshot: str | None = None
        self._collected: dict[str, list[str]] = {}
        self._current: pytest.Item | None = None
        self.interrupted = False
        self.interrupt_reason: str | None = None
        self.paths: tuple[Path, Path] | None = None
        #: The report: typed (self.typed) and as written (self.report, the JSON form that ci.py reads).
        self.typed: Report | None = None
        self.report: dict[str, Any] | None = None
        self.error: str | None = None
        self.skipped_reason: str | None = None
        self._reports_seen = 0
        self._collect_errors: list[str] = []
        self._payloads_seen = 0
        self._selected: set[str] = set()
        self._run_frames: list[dict[str, Any]] = []
        self.exit_status: int | None = None
        self._session: pytest.Session | None = None

    # -- worker / in-process side -------------------------------------------------------------

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            self._collected[item.nodeid] = requirement_ids(item)
            self._selected.update(self._collected[item.nodeid])

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and not self.is_worker:
            message = crash_message(report) or str(getattr(report, "longreprtext", "") or "").strip()
            first = message.strip().splitlines()[-1] if message.strip() else "collection failed"
            self._collect_errors.append(f"{report.nodeid or '<session>'}: {first}"[:500])

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        self._current = item

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        try:
            self._attach(item, report, call)
        except Exception as exc:  # never break the run because of the report
            setattr(report, PAYLOAD_ATTR, {"phase": report.when, "error": f"report payload failed: {exc!r}"})
        return report

    def _attach(self, item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None]) -> None:
        payload = phase_payload(item, report, call, self.worker_id)
        if self.is_worker:
            snapshot = self.config.stash.get(RUN_INFO, None)
            if isinstance(snapshot, Mapping):
                snap = model.jsonable(snapshot)
                key = repr(snap)
                if key != self._last_snapshot:
                    self._last_snapshot = key
                    payload["run_info"] = snap
        setattr(report, PAYLOAD_ATTR, payload)
        # small, evidence-free facts for --junitxml
        # (junitxml writes the teardown report's properties, which pytest copies from the item)
        if report.when == "call" or (report.when == "setup" and not report.passed):
            props = junit_properties(payload)
            item.user_properties.extend(props)
            report.user_properties.extend(props)

    # -- controller / in-process side ---------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker:
            return
        self._reports_seen += 1
        payload = getattr(report, PAYLOAD_ATTR, None)
        if isinstance(payload, Mapping):
            self._payloads_seen += 1
        else:
            payload = _plain_payload(report)
        if isinstance(payload.get("run_info"), Mapping):
            worker = str(payload.get("worker") or getattr(getattr(report, "node", None), "gateway", None) or "?")
            self._worker_run_info[worker] = dict(payload["run_info"])
        for rid in payload.get("marked") or payload.get("requirements") or []:
            self._selected.add(str(rid))
        for section in payload.get("run_frames") or []:
            if isinstance(section, Mapping):
                entry = dict(section)
                if payload.get("worker"):
                    entry["worker"] = payload["worker"]
                self._run_frames.append(entry)
        test = self._record(report, payload)
        if report.when == "teardown":
            self._finished.add(report.nodeid)
            _teardown(test, report, payload)
            if self._current is not None and self._current.nodeid == report.nodeid:
                self._current = None
            return
        verdict = payload.get("verdict")
        if verdict:
            test.verdict = Verdict(verdict)
            test.outcome = payload.get("outcome") or (Outcome.PASSED if verdict == Verdict.PASS else report.outcome)
            test.harness_error = bool(payload.get("harness_error"))
            for key in ("message", "traceback"):
                if payload.get(key):
                    setattr(test, key, payload[key])

    def _record(self, report: pytest.TestReport, payload: Mapping[str, Any]) -> TestRecord:
        """The test's record, with what this phase adds to it (all but the verdict)."""
        test = self._tests.get(report.nodeid)
        if test is None:
            test = self._tests[report.nodeid] = TestRecord(
                report.nodeid, name=payload.get("name"), requirements=list(payload.get("requirements") or []))
        test.duration = float(test.duration or 0.0) + float(report.duration or 0.0)
        for key in ("doc", "worker"):
            if payload.get(key):
                setattr(test, key, payload[key])
        if payload.get("requirements") and not test.refiled:
            test.requirements = list(payload["requirements"])
        if payload.get("findings"):
            test.findings = list(payload["findings"])
        if payload.get("refiled"):
            test.refiled = True  # a later phase (teardown) must not put the finding back under the marker
        if payload.get("evidence") is not None:
            test.frames = payload["evidence"].get("frames") or []
            test.details = payload["evidence"].get("details") or {}
        if payload.get("error"):
            if test.details is None:
                test.details = {}
            test.details.setdefault("notes", []).append(payload["error"])
        return test

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._session = session

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.interrupted = True
        by = interrupt.requested()
        if by is not None:  # the harness's own handler: Ctrl-C or SIGTERM (harness/interrupt.py)
            self.interrupt_reason = (
                f"incomplete (interrupted): the run was stopped by {by}; "
                "the tests that had finished keep their verdicts, the others are incomplete"
            )
            return
        text = str(excinfo.value).strip()
        name = excinfo.typename
        self.interrupt_reason = f"the run was interrupted ({name}{': ' + text if text else ''})"

    def write_now(self) -> None:
        """A second Ctrl-C: write the report from what was gathered, now (the process exits right after)."""
        if self.paths is not None or self.is_worker or self._session is None:
            return
        self.interrupted = True
        if not self.interrupt_reason:
            by = interrupt.requested() or "a signal"
            self.interrupt_reason = f"incomplete (interrupted): the run was stopped by {by}, twice"
        self.pytest_sessionfinish(self._session, int(pytest.ExitCode.INTERRUPTED))

    def _finalise_tests(self) -> list[TestRecord]:
        """Every test's record as the run ends: a test that never finished is incomplete (interrupted: the frames
        so far are its evidence), a collected test that never started is "not run"."""
        tests: list[TestRecord] = []
        in_flight = self._current.nodeid if self._current is not None else None
        by = interrupt.requested()
        for nodeid, recorded in self._tests.items():
            test = replace(recorded)
            if nodeid not in self._finished or test.verdict is None:
                if test.verdict in (None, Verdict.PASS) or nodeid == in_flight:
                    test.verdict = Verdict.INCOMPLETE
                    test.outcome = Outcome.INTERRUPTED
                    test.message = test.message or (
                        f"interrupted by {by} while this test was running (the frames so far are its evidence)"
                        if by else "the run stopped while this test was running"
                    )
                if nodeid == in_flight and test.frames is None and self._current is not None:
                    evidence = evidence_payload(self._current)
                    if evidence:
                        test.frames = evidence["frames"]
                        test.details = evidence["details"]
            tests.append(test)
        # Tests collected here (not under xdist) that never started: the run stopped first.
        for nodeid, ids in self._collected.items():
            if nodeid not in self._tests:
                tests.append(TestRecord(
                    nodeid, requirements=ids, verdict=Verdict.INCOMPLETE, outcome=Outcome.NOT_RUN,
                    message=f"not run: the run was interrupted by {by} before this test"
                    if by else "not run: the run stopped before this test",
                ))
        return tests

    def _run_info(self, exitstatus: int) -> dict[str, Any]:
        base = self.config.stash.get(RUN_INFO, None)
        info: dict[str, Any] = model.jsonable(dict(base)) if isinstance(base, Mapping) else {}
        configured_id = (info.get("charger") or {}).get("id") if isinstance(info.get("charger"), Mapping) else None
        for worker in sorted(self._worker_run_info):
            merge_run_info(info, self._worker_run_info[worker])
        if self._worker_run_info:
            # pytest-xdist: one charger per worker, each with its own id, endpoint and (after FW-1) firmware.
            # The merge above keeps one value per key; the per-worker facts are kept here, so that no
            # worker's charger disappears from the report.
            charger = dict(info.get("charger") or {})
            charger["workers"] = [
                worker_charger(worker, self._worker_run_info[worker]) for worker in sorted(self._worker_run_info)
            ]
            if configured_id:
                charger["id"] = configured_id  # the configured id; each worker's charger adds its worker id
            info["charger"] = charger
        finished = _now()
        info.setdefault("started", self.started)
        info["finished"] = finished
        info["duration"] = round(time.monotonic() - self._t0, 3)
        info["exit_status"] = int(exitstatus)
        info["pytest_version"] = pytest.__version__
        workers = getattr(self.config.option, "numprocesses", None)
        if workers:
            info["workers"] = workers
        args = list(getattr(self.config.invocation_params, "args", ()) or ())
        info["command"] = "pytest " + " ".join(str(a) for a in args)
        return info

    def _settings(self) -> Settings | None:
        return self.config.stash.get(SETTINGS, None)

    def _report_dir(self) -> Path:
        """The harness's settings' report folder (``--report-dir``, ini, charger profile, $HARNESS_REPORT_DIR,
        ``reports``); without the harness plugin: ``--report-dir``, the ini value, $HARNESS_REPORT_DIR, ``reports``."""
        settings = self._settings()
        if settings is not None:
            return Path(settings.report_dir)
        value = self.config.getoption("report_dir", default=None)
        if not value:
            try:
                value = self.config.getini("report_dir")
            except (ValueError, KeyError):
                value = None
        value = value or os.environ.get(REPORT_DIR_ENV) or "reports"
        path = Path(value)
        if not path.is_absolute():
            path = Path(self.config.invocation_params.dir) / path
        return path

    def _keep_in_history(self, directory: Path) -> None:
        """Every run's report is also kept under <report dir>/history/ (harness/report/history.py), the last
        `report_history` runs (20 by default)."""
        keep = int(getattr(self._settings(), "report_history", DEFAULT_HISTORY))
        if self.paths and self.report:
            keep_in_history(directory, self.paths, self.report, self.started, keep)

    def _incomplete_reason(self, tests: list[TestRecord], interrupted: bool) -> str | None:
        """Why the run could not complete, if it could not: the charger never connected, collection errors,
        an interruption."""
        reason = None
        base = self.config.stash.get(RUN_INFO, None)
        never = base.get("never_connected") if isinstance(base, Mapping) else None
        if isinstance(never, str) and never.strip():
            reason = never.strip().splitlines()[0]
        for t in tests if reason is None else ():
            if t.verdict == Verdict.INCOMPLETE and model.NEVER_CONNECTED in str(t.message or "").lower():
                message = str(t.message)
                at = message.lower().find(model.NEVER_CONNECTED)
                reason = message[at:].strip().splitlines()[0]
                break
        errors = self._collect_errors
        if reason is None and errors:
            n = len(errors)
            reason = f"{n} collection error{'s' if n > 1 else ''} (tests could not be loaded): " + "; ".join(errors[:3])
        if interrupted:
            reason = self.interrupt_reason or (reason and f"the run was interrupted; {reason}") or "the run was interrupted"
            if errors and "collection" not in reason:
                reason += f"; collection errors: {'; '.join(errors[:3])}"
        return reason

    def _skip_report(self) -> bool:
        """No report: not a certification run, collection only, or xdist workers that collected nothing."""
        if self.is_worker or not (self.config.stash.get(CERTIFICATION_RUN, False) or self._payloads_seen):
            # (pytest-xdist: the controller collects nothing; the workers' certification data says what it is.)
            return True
        looking = [flag for option, flag in _LOOKING_ONLY if getattr(self.config.option, option, False)]
        if looking:
            # Collection alone judges nothing: no report (an earlier run's stays) and pytest's exit status.
            self.skipped_reason = f"{looking[0]}: nothing was run"
            return True
        if self._reports_seen and not self._payloads_seen:
            # xdist: the workers' collectors were unregistered (not a certification run).
            self.skipped_reason = "no test carried certification data (the workers did not collect any)"
            return True
        return False

    @pytest.hookimpl(trylast=True)  # after the harness plugin's own sessionfinish updated RUN_INFO
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._skip_report():
            return
        status = int(getattr(session, "exitstatus", exitstatus) or exitstatus)
        interrupted = self.interrupted or status == int(pytest.ExitCode.INTERRUPTED)
        if self._collect_errors and "during collection" in (self.interrupt_reason or ""):
            interrupted = False  # pytest stopped because of collection errors, not a Ctrl-C
        tests = self._finalise_tests()
        reason = self._incomplete_reason(tests, interrupted)
        try:
            info = self._run_info(status)
            run_frames = list(self._run_frames)
            after = info.pop(RUN_FRAMES_AFTER, None)
            if isinstance(after, list):
                run_frames.extend(dict(a) for a in after if isinstance(a, Mapping))
            selected = self._selected | {r for ids in self._collected.values() for r in ids}
            self.typed = model.build(info, tests, interrupted=interrupted, reason=reason, selected=selected,
                                     run_frames=run_frames)
            # Exit status = verdict (docs/rules-verdicts.md). pytest's own codes for a run that did not get
            # as far as a verdict stay: 2 interrupted, 3 internal error, 4 usage error, 5 no tests collected.
            if status in (int(pytest.ExitCode.OK), int(pytest.ExitCode.TESTS_FAILED)):
                status = model.EXIT_STATUS[self.typed.overall]
                if status == model.EXIT_INCOMPLETE and _harness_broke(tests, info):
                    status = model.EXIT_HARNESS_ERROR
                session.exitstatus = status
                self.typed.run.exit_status = status
            self.exit_status = status
            self.report = model.seal(self.typed)
            directory = self._report_dir()
            self.paths = write_report(self.report, directory)
            self._keep_in_history(directory)
        except Exception as exc:  # report it loudly, fail the run
            import traceback

            self.error = "".join(traceback.format_exception(exc)).strip()
            if session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.is_worker:
            return
        tr = terminalreporter
        if self.error:
            tr.write_sep("=", "ev.energy certification report: NOT WRITTEN", red=True, bold=True)
            tr.write_line(self.error)
            return
        report = self.typed  # the typed report: what was written, read here (never changed)
        if not self.paths or report is None:
            return
        overall = report.overall
        findings = [f for r in report.advisory_requirements for f in r.findings]
        if findings:
            tr.write_sep("-", "advisory findings (do not affect the verdict)", yellow=True)
            for f in findings:
                first = (f.message or "").strip().splitlines()
                text = first[0] if first else ""
                tr.write_line(printable(f"{f.requirement or '?'} · {f.name}: {text[:300]}", one_line=True), yellow=True)
        colour = {
            model.CERTIFIED: {"green": True},
            model.REHEARSAL_PASSED: {"cyan": True},
            model.NOT_CERTIFIED: {"red": True},
        }.get(overall, {"yellow": True})
        tr.write_sep("-", "ev.energy certification report")
        tr.write_line(f"overall: {overall.upper()}: {report.overall_reason}", bold=True, **colour)
        if self.exit_status is not None:
            tr.write_line(f"exit status: {self.exit_status} ({_exit_meaning(self.exit_status, overall)}; see the README)")
        tr.write_line(f"JSON: {self.paths[0]}")
        tr.write_line(f"HTML: {self.paths[1]}")


def _exit_meaning(status: int, overall: str) -> str:
    return {
        0: "certified" if overall == model.CERTIFIED else "rehearsal passed: every mandatory requirement it judged passed",
        1: "not certified: a mandatory requirement failed",
        2: "interrupted",
        3: "harness error: the harness's own exception left the run incomplete (a bug to report; the report is written)"
           if overall == model.INCOMPLETE else "internal error",
        4: "usage error",
        5: "no tests collected",
        model.EXIT_INCOMPLETE: "incomplete: not every mandatory requirement could be judged",
    }.get(status, "see the README")
