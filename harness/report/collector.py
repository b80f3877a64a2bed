"""The pytest side of the report: collect each test's verdict and evidence, write the report.

The harness plugin registers one :class:`ReportCollector` per process for certification runs::

    config.pluginmanager.register(ReportCollector(config), "ev-energy-report")

It reads:

* ``config.stash[RUN_INFO]``: a dict the plugin keeps up to date (charger, endpoint, mode, TLS,
  connection attempts, declarations, secrets); see SCHEMA.md.
* ``item.stash[EVIDENCE]``: per test, ``{"frames": [...], "details": {...}}``.
* the ``requirement`` marker(s) of each test: ``@pytest.mark.requirement("SC-2", "ST-4")``.

With pytest-xdist, workers and the controller both run a collector. On a worker, each test's
verdict and evidence (and a snapshot of the worker's RUN_INFO when it changed) ride on the test
report as the attribute ``ev_energy_report`` (pytest serialises extra report attributes between
processes); the controller collects them in ``pytest_runtest_logreport`` and is the only one that
writes files. Only a few short strings go into ``report.user_properties`` (requirement IDs,
verdict, alternative), so ``--junitxml`` carries them without the evidence.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from harness import interrupt
from harness.drivers.base import RigError
from harness.printable import printable
from harness.requirements import requirement_ids
from harness.settings import REPORT_DIR_ENV, SETTINGS
from . import model
from .render import write_report

RUN_INFO = pytest.StashKey[dict]()
# Set by the plugin (a collected test uses the harness) or by suites/conftest.py (certification
# suites were asked for, even if they then fail to collect): only then is a report written.
CERTIFICATION_RUN = pytest.StashKey[bool]()
EVIDENCE = pytest.StashKey[dict]()
#: Per test: its advisory findings, ``[{"requirement", "message", "seq"}]`` (the plugin fills it).
FINDINGS = pytest.StashKey[list]()
#: Per test: run-level sections of the trace not yet reported (its set-up before its evidence, its
#: teardown): ``[{"title", "phase", "nodeid", "frames"}]`` (the plugin fills it; each phase takes them).
RUN_FRAMES = pytest.StashKey[list]()
#: RUN_INFO key of the frames after the last test (the plugin's sessionfinish puts them there).
RUN_FRAMES_AFTER = "run_frames_after"

#: Earlier runs' reports: <report dir>/history/<UTC start, 20261204T185512Z>-<charger id>/, the last
#: DEFAULT_HISTORY runs unless --report-history says otherwise.
HISTORY_DIR = "history"
DEFAULT_HISTORY = 20
_HISTORY_ENTRY = re.compile(r"^\d{8}T\d{6}Z-")

#: Name of the report attribute that carries a test phase's payload (worker → controller).
PAYLOAD_ATTR = "ev_energy_report"

def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(getattr(report, "longreprtext", "") or longrepr or "")
    for prefix in ("Skipped: ", "Skipped:"):
        if reason.startswith(prefix):
            reason = reason[len(prefix) :]
    return reason.strip()


def _crash_message(report: pytest.TestReport | pytest.CollectReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    if message:
        return str(message)
    text = str(getattr(report, "longreprtext", "") or "")
    lines = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ")]
    return "\n".join(lines) if lines else text.strip().splitlines()[-1] if text.strip() else ""


def _harness_broke(tests: list[dict[str, Any]], info: Mapping[str, Any]) -> bool:
    """Whether the harness's own exceptions are among the reasons the run is incomplete: a test that errored as a
    harness error, or an exception in the harness's frame handling (run.harness_errors)."""
    return bool(info.get("harness_errors")) or any(
        str(t.get("message") or "").startswith("harness error") and t.get("verdict") == model.INCOMPLETE for t in tests
    )


def error_kind(call: pytest.CallInfo[None]) -> str | None:
    """"rig error" / "harness error" when a phase broke for a reason that is no finding about the charger:
    the rig failed (RigError), or the harness raised something that is not an assertion (a finding is an
    AssertionError: ChargerFailure, ProtocolViolation, a plain assert) nor pytest's own outcome (fail,
    skip, exit). None for a finding."""
    excinfo = call.excinfo
    if excinfo is None:
        return None
    if excinfo.errisinstance(RigError):
        act = getattr(excinfo.value, "act", None)
        return f"rig error in the act '{act}'" if act else "rig error"
    if excinfo.errisinstance((AssertionError, pytest.fail.Exception, pytest.skip.Exception, pytest.exit.Exception)):
        return None
    if excinfo.errisinstance((KeyboardInterrupt, SystemExit)):
        return None
    return "harness error"


def _evidence_payload(item: pytest.Item) -> dict[str, Any] | None:
    evidence = item.stash.get(EVIDENCE, None)
    if not isinstance(evidence, Mapping):
        return None
    frames = []
    for i, f in enumerate(list(evidence.get("frames") or [])):
        if not isinstance(f, Mapping):
            f = {"text": f}
        frames.append(
            {
                "seq": f.get("seq", i),
                "direction": f.get("direction"),
                "time": f.get("time"),
                "mono": f.get("mono"),
                "text": f.get("text"),
                "note": f.get("note"),
            }
        )
    return model.jsonable({"frames": frames, "details": dict(evidence.get("details") or {})})


def _now() -> str:
    return model.now_iso()


def _merge_run_info(base: dict[str, Any], other: Mapping[str, Any]) -> None:
    """Merge a worker's RUN_INFO snapshot into *base* (in place)."""
    for key, value in other.items():
        if value in (None, "", [], {}):
            continue
        if key == "connection_attempts":
            seen = {repr(sorted(a.items())) if isinstance(a, Mapping) else repr(a) for a in base.get(key) or []}
            merged = list(base.get(key) or [])
            for a in value:
                k = repr(sorted(a.items())) if isinstance(a, Mapping) else repr(a)
                if k not in seen:
                    seen.add(k)
                    merged.append(a)
            merged.sort(key=lambda a: str(a.get("time", "")) if isinstance(a, Mapping) else "")
            base[key] = merged
        elif key == "secrets":
            merged = list(base.get(key) or [])
            merged.extend(s for s in value if s not in merged)
            base[key] = merged
        elif key == "harness_errors":  # each worker's own (docs/rules-silence.md §2): all of them
            merged = list(base.get(key) or [])
            merged.extend(f for f in value if f not in merged)
            base[key] = merged
        elif isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            sub = dict(base[key])
            for k, v in value.items():
                if v not in (None, "", [], {}):
                    sub[k] = v
            base[key] = sub
        else:
            base[key] = value


def _worker_charger(worker: str, snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """One worker's charger as the report lists it under ``charger.workers``."""
    found = snapshot.get("charger")
    charger: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    entry: dict[str, Any] = {"worker": worker}
    for key in ("id", "serial", "firmware"):
        entry[key] = charger.get(key)
    entry["endpoint"] = snapshot.get("endpoint")
    return entry


def junit_name(requirements: list[str] | tuple[str, ...], name: str) -> str:
    """A JUnit testcase's name: the requirement IDs first, so that a CI's test view (GitLab's test report,
    GitHub's JUnit report actions), which lists and sorts testcases by name, groups them by requirement:
    ``ST-1: test_status_transitions``, ``SC-2, ST-4: test_tx_profile_limits``."""
    return f"{', '.join(requirements)}: {name}" if requirements else name


class JUnitRequirements:
    """--junitxml: each certification testcase carries its requirement IDs in its name (see junit_name) and,
    from the collector, a ``requirement`` property per ID (docs/rules-ci.md). The name uses the IDs the test
    is marked with, so that a CI's history follows the same testcase from run to run; the properties say
    where a finding was filed (a §4.9 transition seen in an SC-2 test is ST-1's)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Any:
        result = yield
        payload = getattr(report, PAYLOAD_ATTR, None)
        marked = list(payload.get("marked") or []) if isinstance(payload, Mapping) else []
        # The phases after which junitxml has opened the testcase (a passed setup opens none); it writes the
        # testcase out at teardown, keeping the attributes set here.
        if marked and (report.when == "call" or (report.when == "setup" and not report.passed)):
            with contextlib.suppress(Exception):  # pytest's junitxml internals: best effort, never break a run
                from _pytest.junitxml import bin_xml_escape, mangle_test_address, xml_key

                xml = self.config.stash.get(xml_key, None)
                if xml is not None:
                    reporter = xml.node_reporter(report)
                    reporter.attrs["name"] = bin_xml_escape(junit_name(marked, mangle_test_address(report.nodeid)[-1]))
        return result


class ReportCollector:
    """pytest plugin object: per-test verdicts and evidence in, certification report out."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        if not hasattr(config, "workerinput") and not config.pluginmanager.has_plugin("ev-energy-junit-requirements"):
            config.pluginmanager.register(JUnitRequirements(config), "ev-energy-junit-requirements")
        self.is_worker = hasattr(config, "workerinput")
        self.worker_id = config.workerinput.get("workerid") if self.is_worker else None  # type: ignore[attr-defined]
        self.started = _now()
        self._t0 = time.monotonic()
        self._tests: dict[str, dict[str, Any]] = {}
        self._finished: set[str] = set()
        self._worker_run_info: dict[str, dict[str, Any]] = {}
        self._last_snapshot: str | None = None
        self._collected: dict[str, list[str]] = {}
        self._current: pytest.Item | None = None
        self.interrupted = False
        self.interrupt_reason: str | None = None
        self.paths: tuple[Path, Path] | None = None
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
            message = _crash_message(report) or str(getattr(report, "longreprtext", "") or "").strip()
            first = message.strip().splitlines()[-1] if message.strip() else "collection failed"
            self._collect_errors.append(f"{report.nodeid or '<session>'}: {first}"[:500])

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        self._current = item

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]):
        report = yield
        try:
            self._attach(item, report, call)
        except Exception as exc:  # never break the run because of the report
            setattr(report, PAYLOAD_ATTR, {"phase": report.when, "error": f"report payload failed: {exc!r}"})
        return report

    def _attach(self, item: pytest.Item, report: pytest.TestReport, call: pytest.CallInfo[None]) -> None:
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
            payload["run_frames"] = model.jsonable(sections)
            item.stash[RUN_FRAMES] = []
        if report.when == "setup":
            doc = getattr(getattr(item, "obj", None), "__doc__", None)
            if doc:  # the first paragraph, on one line
                payload["doc"] = " ".join(doc.strip().split("\n\n", 1)[0].split())[:600]
        if self.worker_id:
            payload["worker"] = self.worker_id

        verdict: model.Verdict | None = None
        if report.passed:
            if report.when == "call":
                verdict = model.PASS
        elif report.skipped:
            if hasattr(report, "wasxfail"):
                verdict = model.FAIL
                payload["outcome"] = model.Outcome.XFAILED.value
                payload["message"] = f"expected failure (xfail): {report.wasxfail}"
            else:
                reason = _skip_reason(report)
                verdict = model.test_verdict(model.Outcome.SKIPPED, reason)
                payload["outcome"] = model.Outcome.SKIPPED.value
                payload["message"] = reason
        else:  # failed
            message = _crash_message(report)
            payload["outcome"] = (model.Outcome.FAILED if report.when == "call" else model.Outcome.ERROR).value
            verdict = model.FAIL
            kind = error_kind(call)
            if report.when == "call" and kind is not None:
                # A rig that failed, or the harness itself: the charger was not judged (docs/rules-verdicts.md).
                verdict = model.INCOMPLETE
                payload["outcome"] = model.Outcome.ERROR.value
                message = f"{kind} (the charger was not judged): {message}"
            elif report.when == "teardown":
                if kind is not None:  # the rig or the harness broke while putting things back
                    verdict = model.INCOMPLETE
                    message = f"{kind} in teardown (the charger was not judged on it): {message}"
                else:
                    message = f"error in teardown: {message}"
            elif report.when == "setup":
                charger_finding = call.excinfo is not None and call.excinfo.errisinstance(AssertionError)
                if model.NEVER_CONNECTED in message.lower() or "charger not idle" in message.lower():
                    verdict = model.INCOMPLETE  # the charger could not be put in the state this test needs
                    message = f"not run: {message}"
                elif charger_finding:  # a finding about the charger (the harness raises AssertionErrors)
                    message = f"error in setup: {message}"
                else:  # the harness or the rig broke before the charger was tested
                    verdict = model.INCOMPLETE
                    message = f"{error_kind(call) or 'harness error'} in setup (the charger was not tested): {message}"
            payload["message"] = model.trim(message, model.MAX_MESSAGE_CHARS)
            payload["traceback"] = model.trim(str(report.longreprtext or ""), model.MAX_TRACEBACK_CHARS)
        if verdict:
            # a plain str: the payload crosses from an xdist worker to the controller, and execnet cannot
            # serialise a str subclass (the enum member)
            payload["verdict"] = verdict.value

        final_phase = report.when == "call" or (report.when == "setup" and not report.passed) or report.failed
        if final_phase:
            evidence = _evidence_payload(item)
            if evidence is not None:
                payload["evidence"] = evidence
            found = item.stash.get(FINDINGS, None)
            if found:
                payload["findings"] = model.jsonable(found)
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
            props = [("requirement", rid) for rid in ids]
            if verdict:
                props.append(("verdict", verdict.value))  # plain str: user_properties cross from xdist workers too
            alt = (payload.get("evidence") or {}).get("details", {}).get("alternative")
            if alt:
                props.append(("alternative", str(alt)))
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
            payload = {"phase": report.when, "requirements": [], "name": report.nodeid.rsplit("::", 1)[-1]}
            if report.failed:
                payload["verdict"] = model.FAIL
                payload["message"] = _crash_message(report)
            elif report.skipped:
                payload["verdict"] = model.test_verdict(model.Outcome.SKIPPED, _skip_reason(report))
                payload["message"] = _skip_reason(report)
            elif report.when == "call":
                payload["verdict"] = model.PASS
        if isinstance(payload.get("run_info"), Mapping):
            worker = str(payload.get("worker") or getattr(getattr(report, "node", None), "gateway", None) or "?")
            self._worker_run_info[worker] = dict(payload["run_info"])

        test = self._tests.setdefault(
            report.nodeid,
            {
                "nodeid": report.nodeid,
                "name": payload.get("name"),
                "requirements": list(payload.get("requirements") or []),
                "verdict": None,
                "outcome": None,
                "duration": 0.0,
            },
        )
        test["duration"] = float(test.get("duration") or 0.0) + float(report.duration or 0.0)
        for key in ("doc", "worker"):
            if payload.get(key):
                test[key] = payload[key]
        if payload.get("requirements") and not test.get("refiled"):
            test["requirements"] = list(payload["requirements"])
        for rid in payload.get("marked") or payload.get("requirements") or []:
            self._selected.add(str(rid))
        for section in payload.get("run_frames") or []:
            if isinstance(section, Mapping):
                entry = dict(section)
                if payload.get("worker"):
                    entry["worker"] = payload["worker"]
                self._run_frames.append(entry)
        if payload.get("findings"):
            test["findings"] = list(payload["findings"])
        if payload.get("refiled"):
            test["refiled"] = True  # a later phase (teardown) must not put the finding back under the marker
        if payload.get("evidence") is not None:
            test["frames"] = payload["evidence"].get("frames") or []
            test["details"] = payload["evidence"].get("details") or {}
        if payload.get("error"):
            test.setdefault("details", {}).setdefault("notes", []).append(payload["error"])

        verdict = payload.get("verdict")
        if report.when == "teardown":
            self._finished.add(report.nodeid)
            if report.failed:
                previous = test.get("message")
                if test["verdict"] in (None, model.PASS):
                    test["verdict"] = verdict or model.FAIL
                    test["outcome"] = model.Outcome.ERROR
                    test["message"] = payload.get("message")
                    test["traceback"] = payload.get("traceback")
                else:
                    test["message"] = "\n\n".join(m for m in (previous, payload.get("message")) if m)
            if test["verdict"] is None:  # e.g. setup passed, call never reported
                test["verdict"] = model.INCOMPLETE
                test["outcome"] = model.Outcome.NOT_RUN
            if self._current is not None and self._current.nodeid == report.nodeid:
                self._current = None
            return
        if verdict:
            test["verdict"] = verdict
            test["outcome"] = payload.get("outcome") or (model.Outcome.PASSED if verdict == model.PASS else report.outcome)
            for key in ("message", "traceback"):
                if payload.get(key):
                    test[key] = payload[key]

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

    def _finalise_tests(self) -> list[dict[str, Any]]:
        tests: list[dict[str, Any]] = []
        in_flight = self._current.nodeid if self._current is not None else None
        for nodeid, test in self._tests.items():
            test = dict(test)
            test.pop("refiled", None)  # bookkeeping only, not part of the schema
            if nodeid not in self._finished or test.get("verdict") is None:
                if test.get("verdict") in (None, model.PASS) or nodeid == in_flight:
                    test["verdict"] = model.INCOMPLETE
                    test["outcome"] = model.Outcome.INTERRUPTED
                    by = interrupt.requested()
                    test["message"] = test.get("message") or (
                        f"interrupted by {by} while this test was running (the frames so far are its evidence)"
                        if by else "the run stopped while this test was running"
                    )
                if nodeid == in_flight and "frames" not in test and self._current is not None:
                    evidence = _evidence_payload(self._current)
                    if evidence:
                        test["frames"] = evidence["frames"]
                        test["details"] = evidence["details"]
            tests.append(test)
        # Tests collected here (not under xdist) that never started: the run stopped first.
        for nodeid, ids in self._collected.items():
            if nodeid not in self._tests:
                tests.append(
                    {
                        "nodeid": nodeid,
                        "requirements": ids,
                        "verdict": model.INCOMPLETE,
                        "outcome": model.Outcome.NOT_RUN,
                        "message": f"not run: the run was interrupted by {interrupt.requested()} before this test"
                        if interrupt.requested() else "not run: the run stopped before this test",
                    }
                )
        return tests

    def _run_info(self, exitstatus: int) -> dict[str, Any]:
        base = self.config.stash.get(RUN_INFO, None)
        info: dict[str, Any] = model.jsonable(dict(base)) if isinstance(base, Mapping) else {}
        configured_id = (info.get("charger") or {}).get("id") if isinstance(info.get("charger"), Mapping) else None
        for worker in sorted(self._worker_run_info):
            _merge_run_info(info, self._worker_run_info[worker])
        if self._worker_run_info:
            # pytest-xdist: one charger per worker, each with its own id, endpoint and (after FW-1) firmware.
            # The merge above keeps one value per key; the per-worker facts are kept here, so that no
            # worker's charger disappears from the report.
            charger = dict(info.get("charger") or {})
            charger["workers"] = [
                _worker_charger(worker, self._worker_run_info[worker]) for worker in sorted(self._worker_run_info)
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

    def _settings(self) -> Any:
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
        """Every run's report is also kept under <report dir>/history/<UTC start>-<charger id>/, the last
        `report_history` runs (20 by default) and no more: a run never silently destroys an earlier run's
        report, and the folder does not grow without bound (docs/rules-first-hour.md)."""
        settings = self._settings()
        keep = int(getattr(settings, "report_history", DEFAULT_HISTORY))
        if keep <= 0 or not self.paths or not self.report:
            return
        run = self.report.get("run") or {}
        charger = self.report.get("charger") or {}
        started = str(run.get("started") or self.started)
        stamp = re.sub(r"[^0-9T]", "", started.split(".")[0].split("+")[0])[:15] + "Z"
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(charger.get("id") or "charger"))[:80]
        history = directory / HISTORY_DIR
        history.mkdir(parents=True, exist_ok=True)
        target = history / f"{stamp}-{name}"
        n = 2
        while target.exists():
            target = history / f"{stamp}-{name}-{n}"
            n += 1
        target.mkdir()
        for path in self.paths:
            shutil.copy2(path, target / path.name)
        runs = sorted(p for p in history.iterdir() if p.is_dir() and _HISTORY_ENTRY.match(p.name))
        for old in runs[: max(0, len(runs) - keep)]:
            shutil.rmtree(old, ignore_errors=True)

    @pytest.hookimpl(trylast=True)  # after the harness plugin's own sessionfinish updated RUN_INFO
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.is_worker or not (self.config.stash.get(CERTIFICATION_RUN, False) or self._payloads_seen):
            # (pytest-xdist: the controller collects nothing; the workers' certification data says what it is.)
            return
        if self.config.option.collectonly:
            # Collection alone judges nothing: no report (an earlier run's stays) and pytest's exit status.
            self.skipped_reason = "--collect-only: nothing was run"
            return
        if self._reports_seen and not self._payloads_seen:
            # xdist: the workers' collectors were unregistered (not a certification run).
            self.skipped_reason = "no test carried certification data (the workers did not collect any)"
            return
        status = int(getattr(session, "exitstatus", exitstatus) or exitstatus)
        interrupted = self.interrupted or status == int(pytest.ExitCode.INTERRUPTED)
        if self._collect_errors and "during collection" in (self.interrupt_reason or ""):
            interrupted = False  # pytest stopped because of collection errors, not a Ctrl-C
        tests = self._finalise_tests()
        reason = None
        base = self.config.stash.get(RUN_INFO, None)
        never = base.get("never_connected") if isinstance(base, Mapping) else None
        if isinstance(never, str) and never.strip():
            reason = never.strip().splitlines()[0]
        for t in tests if reason is None else ():
            if t["verdict"] == model.INCOMPLETE and model.NEVER_CONNECTED in str(t.get("message") or "").lower():
                message = str(t["message"])
                at = message.lower().find(model.NEVER_CONNECTED)
                reason = message[at:].strip().splitlines()[0]
                break
        if reason is None and self._collect_errors:
            n = len(self._collect_errors)
            reason = f"{n} collection error{'s' if n > 1 else ''} (tests could not be loaded): " + "; ".join(self._collect_errors[:3])
        if interrupted:
            reason = self.interrupt_reason or (reason and f"the run was interrupted; {reason}") or "the run was interrupted"
            if self._collect_errors and "collection" not in reason:
                reason += f"; collection errors: {'; '.join(self._collect_errors[:3])}"
        try:
            info = self._run_info(status)
            run_frames = list(self._run_frames)
            after = info.pop(RUN_FRAMES_AFTER, None)
            if isinstance(after, list):
                run_frames.extend(dict(a) for a in after if isinstance(a, Mapping))
            selected = self._selected | {r for ids in self._collected.values() for r in ids}
            self.report = model.build_report(
                info, tests, interrupted=interrupted, reason=reason, selected=selected, run_frames=run_frames
            )
            # Exit status = verdict (docs/rules-verdicts.md). pytest's own codes for a run that did not get
            # as far as a verdict stay: 2 interrupted, 3 internal error, 4 usage error, 5 no tests collected.
            if status in (int(pytest.ExitCode.OK), int(pytest.ExitCode.TESTS_FAILED)):
                status = model.EXIT_STATUS[self.report["overall"]]
                if status == model.EXIT_INCOMPLETE and _harness_broke(tests, info):
                    status = model.EXIT_HARNESS_ERROR
                session.exitstatus = status
                self.report["run"]["exit_status"] = status
            self.exit_status = status
            directory = self._report_dir()
            self.paths = write_report(self.report, directory)
            self._keep_in_history(directory)
        except Exception as exc:  # report it loudly, fail the run
            import traceback

            self.error = "".join(traceback.format_exception(exc)).strip()
            if session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        tr = terminalreporter
        if self.error:
            tr.write_sep("=", "ev.energy certification report: NOT WRITTEN", red=True, bold=True)
            tr.write_line(self.error)
            return
        if not self.paths or not self.report:
            return
        overall = self.report["overall"]
        findings = [f for r in self.report.get("advisory_requirements") or [] for f in r.get("findings") or []]
        if findings:
            tr.write_sep("-", "advisory findings (do not affect the verdict)", yellow=True)
            for f in findings:
                first = (f.get("message") or "").strip().splitlines()
                text = first[0] if first else ""
                tr.write_line(printable(f"{f.get('requirement') or '?'} · {f.get('name')}: {text[:300]}", one_line=True), yellow=True)
        colour = {
            model.CERTIFIED: {"green": True},
            model.REHEARSAL_PASSED: {"cyan": True},
            model.NOT_CERTIFIED: {"red": True},
        }.get(overall, {"yellow": True})
        tr.write_sep("-", "ev.energy certification report")
        tr.write_line(f"overall: {overall.upper()}: {self.report['overall_reason']}", bold=True, **colour)
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
