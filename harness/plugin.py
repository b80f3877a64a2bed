"""The pytest plugin: options, the session-wide fake endpoint, the charger fixture, evidence.

One event loop serves the whole session: the endpoint lives across tests, and each async test
runs on that loop. Fixtures:
- `csms`: the fake ev.energy endpoint (session);
- `charger_backend`: the rig (the built-in reference charger by default) (session);
- `charger`: a connected, booted, idle charger at the start of each test, put back after it.
Each test is bounded; protocol violations seen during a test fail that test; the test's slice
of the trace is kept as its evidence for the report, and every frame outside the tests' slices (set-up,
teardown, before the first test, after the last) goes to a run-level section of the report.
A test whose requirement markers are all advisory never fails: a finding in it is an advisory finding
(docs/rules-verdicts.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import inspect
import time
import warnings
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from harness import __version__, bounds, interrupt, settings as settings_mod
from harness.ci import CIOutput
from harness.drivers.base import ChargerBackend, EndpointInfo
from harness.endpoint import CONNECTED, NOT_HTTP, PLAIN_WS, SILENT, TLS_FAILED, UNAUTHORIZED, ConnectionAttempt, Endpoint, EndpointConfig
from harness.errors import (
    AdvisoryFinding,
    ChargerFailure,
    ChargerSilent,
    ExpectationTimeout,
    HarnessError,
    ProtocolViolation,
)
from harness.platform import PlatformSettings
from harness.printable import printable
from harness.requirements import ADVISORY, by_id, is_known, requirement_ids
from harness.rig import Rig
from harness import session as session_mod
from harness.progress import StatusLine
from harness.session import ChargerSession, SessionSettings
from harness.settings import Settings
from harness.stash import SETTINGS

try:  # the report collector (its own module; the plugin works without it)
    from harness.report.collector import (
        CERTIFICATION_RUN,
        EVIDENCE,
        FINDINGS,
        RUN_FRAMES,
        RUN_FRAMES_AFTER,
        RUN_INFO,
        ReportCollector,
        error_kind,
    )
    from harness.report.model import clean_reason
except ImportError:  # pragma: no cover - while the report package is absent
    CERTIFICATION_RUN = pytest.StashKey[bool]()
    EVIDENCE = pytest.StashKey[dict]()
    FINDINGS = pytest.StashKey[list]()
    RUN_FRAMES = pytest.StashKey[list]()
    RUN_FRAMES_AFTER = "run_frames_after"
    RUN_INFO = pytest.StashKey[dict]()
    ReportCollector = None  # type: ignore[assignment,misc]

    def error_kind(call: Any) -> str | None:  # type: ignore[misc]
        return None

    def clean_reason(text: str) -> str:  # type: ignore[misc]
        return text

STATE = pytest.StashKey["RunState"]()
TEST_START = pytest.StashKey[int]()
NEXT_ITEM = pytest.StashKey["pytest.Item | None"]()
SILENT_AT_SETUP = pytest.StashKey[str]()  # the silence cause when the `charger` fixture met a silent charger
PREPARE_BAD_CERTIFICATES = pytest.StashKey[bool]()
CURRENT_ITEM = pytest.StashKey["pytest.Item | None"]()
STATUS_LINE = pytest.StashKey["StatusLine | None"]()
SIGNALS = pytest.StashKey[bool]()  # this run took SIGINT/SIGTERM (harness/interrupt.py)
# Requirements whose tests present certificates a charger must refuse (TLS-3; NF-2 when it goes offline that way).
_BAD_CERTIFICATE_REQUIREMENTS = frozenset({"TLS-3", "NF-2"})

# Each test's bound and the silence bound: harness/timing.py (Timing.test_bound, Timing.silence_after).
#: `@pytest.mark.test_bound(seconds)`: a test that waits on the charger's own timers (which quick mode cannot
#: shorten, e.g. NF-2's late-delivery bound) gets at least this bound in every mode (before the timeout factor).
TEST_BOUND_MARKER = "test_bound"


@dataclass
class RunState:
    never_connected: str | None = None
    baseline_config: dict[str, str | None] | None = None
    readonly_keys: frozenset[str] = frozenset()
    # (len(status_history), reason) when setup last found the charger stuck busy: not waited for again
    # until a status changes.
    stuck: tuple[int, str] | None = None
    # The charger's session (its trace is the run's), once a test has met it, and the first trace seq not yet
    # in any test's evidence or run-level section (trace seqs start at 1).
    session: ChargerSession | None = None
    accounted: int = 1
    faults_taken: int = 0  # harness faults of the session already filed with a test (or the run)


def _known_defects() -> dict[str, Any]:
    try:
        from harness.sim.defects import DEFECTS
    except ImportError:
        return {}
    return dict(DEFECTS)


# --- configuration -----------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    settings_mod.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requirement(*ids): the ev.energy requirement IDs this test certifies (e.g. 'MV-1')"
    )
    config.addinivalue_line(
        "markers", f"{TEST_BOUND_MARKER}(seconds): the least time bound of this test in any mode (the charger's own timers)"
    )
    settings = settings_mod.load(config, _known_defects)
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker is None and not _only_looking(config):
        # Set-up problems (a port in use, an unusable certificates folder, a control URL nobody serves) are
        # found now, before any test and before pytest-xdist starts workers: one line, exit 4, no report.
        from harness import preflight

        preflight.check(settings, workers=_xdist_workers(config))
    if worker is not None:
        # pytest-xdist: one reference charger per worker, each with its own id on its own endpoint.
        if settings.charger != "sim":
            raise pytest.UsageError(
                f"pytest-xdist (-n) runs one charger per worker: only --charger=sim can do that, not {settings.charger!r}"
            )
        settings.charger_id = f"{settings.charger_id}-{worker}"
    config.stash[SETTINGS] = settings
    config.stash[STATE] = RunState()
    config.stash[RUN_INFO] = {
        "charger": {"id": settings.charger_id},
        "mode": settings.mode,
        "security_profile": settings.security_profile,
        "backend": settings.charger,
        "defects": list(settings.sim_defects),
        "harness_version": __version__,
        "secrets": [settings.authorization_key] if settings.authorization_key else [],
        "connection_attempts": [],
        "declarations": settings.declarations,
    }
    if ReportCollector is not None and not config.pluginmanager.has_plugin("ev-energy-report"):
        config.pluginmanager.register(ReportCollector(config), "ev-energy-report")
    if not config.pluginmanager.has_plugin("ev-energy-junit-errors"):
        config.pluginmanager.register(_JUnitErrors(config), "ev-energy-junit-errors")
    if worker is None and not config.pluginmanager.has_plugin("ev-energy-ci"):
        # summary.md, $GITHUB_STEP_SUMMARY, and with --ci / CI=true plain output and a last verdict line
        config.pluginmanager.register(CIOutput(config, settings.ci), "ev-energy-ci")


def _only_looking(config: pytest.Config) -> bool:
    """--help, --version, --collect-only, --fixtures, --markers: nothing is run, nothing to check."""
    option = config.option
    return any(getattr(option, name, False) for name in ("help", "version", "collectonly", "showfixtures", "markers"))


def _xdist_workers(config: pytest.Config) -> int:
    """pytest-xdist's worker count for this run (0: no workers)."""
    n = getattr(config.option, "numprocesses", None)
    if not n or getattr(config.option, "dist", "no") == "no":
        return 0
    return int(n) if str(n).isdigit() else 2  # "auto"/"logical": at least two


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash.get(SETTINGS, None)
    if settings is None:
        return []
    port = settings.csms_port or "<free port>"
    lines = [
        f"ev.energy endpoint: wss://{settings.csms_host}:{port}/ocpp/{settings.charger_id}"
        f" (TLS 1.2, ELBSecurityPolicy-TLS-1-2-Ext-2018-06, security profile {settings.security_profile})",
        f"charger: {settings.charger}"
        + (f" at {settings.charger_control_url}" if settings.charger_control_url else "")
        + (f", defects: {', '.join(settings.sim_defects)}" if settings.sim_defects else "")
        + f"; mode: {settings.mode}; timeout factor: {settings.timing.factor:g}",
        f"certificates: {settings.certs_dir}; report: {settings.report_dir}",
    ]
    if settings.id_tags != settings_mod.DEFAULT_ID_TAGS:
        lines.append(f"RFID card(s) the platform accepts: {', '.join(settings.id_tags)} (the rig presents the first)")
    return lines


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    uses_harness = False
    for item in items:
        if not isinstance(item, pytest.Function) or "charger" not in getattr(item, "fixturenames", ()):
            continue
        uses_harness = True
        if _BAD_CERTIFICATE_REQUIREMENTS.intersection(requirement_ids(item)):
            config.stash[PREPARE_BAD_CERTIFICATES] = True
        if inspect.iscoroutinefunction(item.obj):
            # The endpoint lives on the session loop: every harness test must run there too.
            item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)
            item.obj = _guard(item, item.obj)
    if uses_harness:
        config.stash[CERTIFICATION_RUN] = True
        _take_signals(config)
    elif ReportCollector is not None and not config.stash.get(CERTIFICATION_RUN, False):
        # Unit tests of the harness itself: no certification report.
        plugin = config.pluginmanager.get_plugin("ev-energy-report")
        if plugin is not None:
            config.pluginmanager.unregister(plugin)


def _take_signals(config: pytest.Config) -> None:
    """One Ctrl-C (or SIGTERM) ends the run at once with an "incomplete (interrupted)" report; a second exits at
    once after writing what was gathered (harness/interrupt.py, docs/rules-first-hour.md). In the process that
    writes the report: not on a pytest-xdist worker (a terminal's Ctrl-C reaches the workers too, and the
    controller collects what they finished)."""
    if hasattr(config, "workerinput") or config.option.collectonly or config.stash.get(SIGNALS, False):
        return
    interrupt.install()
    config.stash[SIGNALS] = True
    collector = config.pluginmanager.get_plugin("ev-energy-report")
    if collector is not None and hasattr(collector, "write_now"):
        interrupt.on_second(collector.write_now)


def pytest_sessionstart(session: pytest.Session) -> None:
    if _xdist_workers(session.config):
        _take_signals(session.config)  # the controller collects nothing: it takes the signals from the start


# --- the bound, the evidence and the violations of each test -----------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    item.stash[NEXT_ITEM] = nextitem
    item.config.stash[CURRENT_ITEM] = item  # the live status line names its requirement


def _guard(item: pytest.Function, test: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(test)
    async def guarded(*args: Any, **kwargs: Any) -> None:
        settings = item.config.stash[SETTINGS]
        bound = settings.timing.test_bound
        own = item.get_closest_marker(TEST_BOUND_MARKER)
        if own is not None and own.args:
            bound = settings.timing.test_bound_at_least(float(own.args[0]))
        session: ChargerSession | None = item.funcargs.get("charger")  # type: ignore[assignment]
        endpoint = item.funcargs.get("csms")
        if session is None and isinstance(endpoint, Endpoint):
            session = endpoint.sessions.get(settings.charger_id)
            if session is not None:
                session.details = {}  # the charger fixture resets it for the others
        start = item.stash.get(TEST_START, session.trace.next_seq if session is not None else 0)
        if session is not None:
            _account(item, session, start)  # what came before this test's evidence: a run-level section
            session.cancelled_wait = None
        try:
            try:
                async with asyncio.timeout(bound) as scope:
                    bound_token = bounds.CURRENT.set(scope)  # rig acts of a person do not count (bounds.py)
                    try:
                        silent = item.stash.get(SILENT_AT_SETUP, None)
                        if silent is not None:
                            # docs/rules-silence.md: the test needs a live charger (the `charger` fixture) and the
                            # charger is silent: failed at once, on its own requirement, with the one cause.
                            raise ChargerSilent(f"{silent}; this test needs a live charger: failed without "
                                                "running its checks")
                        await test(*args, **kwargs)
                    finally:
                        bounds.CURRENT.reset(bound_token)
                        if (session is not None and session.watching() and not _charger_test_follows(item)
                                and not interrupt.requested()):
                            # The watches this run set get their whole window before the run leaves them.
                            await session.settle_watches()
            except TimeoutError:
                if not scope.expired():
                    raise
                waited = session.cancelled_wait if session is not None else None
                raise ChargerFailure(
                    f"the test did not finish within its bound of {bound:g} s (timeout factor {settings.timing.factor:g})"
                    + (f"; it was waiting for {waited}" if waited else "; it was not waiting on the charger's session "
                       "(a rig act, a connection attempt or the test's own wait)")
                ) from None
        except BaseException as exc:
            if session is not None and isinstance(exc, Exception):
                await session.settle_answers()
                faults = _take_faults(item, session)
                if faults:
                    # docs/rules-silence.md §2: whatever the test concluded, the harness broke during it.
                    raise HarnessError(_faults_text(faults)) from exc
                found = _file_advisories(item, session.take_findings(start))
                if found:
                    exc.add_note(_violations_text(found))
            raise
        finally:
            _keep_evidence(item, session, start)
        if session is not None:
            await session.settle_answers()
            faults = _take_faults(item, session)
            if faults:
                raise HarnessError(_faults_text(faults))
            found = _file_advisories(item, session.take_findings(start))
            if found:
                # A finding about another requirement (a §4.9 transition is ST-1's; a watch's is the requirement of
                # the test that set it) is filed there, whichever test saw it (the test still fails).
                about = {v.requirement for v in found}
                refile = tuple(sorted(about)) if None not in about else ()  # type: ignore[type-var]
                raise ProtocolViolation(_violations_text(found), requirements=refile)

    return guarded


def _take_faults(item: pytest.Item | None, session: ChargerSession, config: pytest.Config | None = None) -> list[Any]:
    """The harness faults (exceptions in the harness's own frame handling) not yet filed: they are filed in the
    run info (`run.harness_errors`, with the test they make an error, or none outside every test)."""
    cfg = item.config if item is not None else config
    assert cfg is not None
    state = cfg.stash[STATE]
    faults = session.harness_faults[state.faults_taken:]
    state.faults_taken = len(session.harness_faults)
    info = cfg.stash[RUN_INFO].setdefault("harness_errors", [])
    for fault in faults:
        info.append({**fault.as_dict(), "nodeid": item.nodeid if item is not None else None})
    return faults


def _faults_text(faults: list[Any]) -> str:
    lines = [f"{len(faults)} exception(s) in the harness's own frame handling during this test (the harness's fault; "
             "the charger was not judged by this test; see the report's run.harness_errors):"]
    lines += [f"  - while {f.where} (trace seq {f.seq}): {f.error}" for f in faults[:10]]
    if faults:
        lines.append(faults[-1].traceback)
    return "\n".join(lines)


def _file_advisories(item: pytest.Item, found: list[Any]) -> list[Any]:
    """Keep the advisory findings (about an advisory requirement) apart: they never fail a test. What is
    left fails it."""
    failing = []
    for finding in found:
        if _is_advisory(finding.requirement):
            _record_advisory(item, finding.requirement, finding.message, finding.seq)
        else:
            failing.append(finding)
    return failing


def _uses_harness(item: pytest.Item) -> bool:
    """A certification test: it talks to the charger or the endpoint, or names a requirement."""
    names = getattr(item, "fixturenames", ())
    return "charger" in names or "csms" in names or bool(requirement_ids(item))


def _is_advisory(requirement: str | None) -> bool:
    return requirement is not None and is_known(requirement) and by_id(requirement).kind == ADVISORY


def _advisory_only(item: pytest.Item) -> list[str]:
    """The test's requirement IDs when every one is advisory (ADV-*), else []."""
    ids = requirement_ids(item)
    return ids if ids and all(_is_advisory(i) for i in ids) else []


def _record_advisory(item: pytest.Item, requirement: str, message: str, seq: int | None) -> None:
    """One advisory finding, where a user sees it: a user property (JUnit: a property of a passing testcase),
    the report (FINDINGS), pytest's warnings summary and the harness's own terminal section."""
    text = f"{requirement}: {message}"
    item.user_properties.append(("advisory", text))
    item.stash.setdefault(FINDINGS, []).append({"requirement": requirement, "message": message, "seq": seq})
    with warnings.catch_warnings():
        warnings.simplefilter("always", AdvisoryFinding)  # each finding shows, even with the same text
        item.warn(AdvisoryFinding(f"advisory finding (does not affect the verdict): {text}"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if not _uses_harness(item):  # the harness's own unit tests and other projects' tests: pytest's usual rules
        return report
    _judge_report(item, call, report)
    _printable_longrepr(report)
    return report


def _printable_longrepr(report: pytest.TestReport) -> None:
    """A failure message quotes what the charger sent (ids, vendor fields, errorDetails, whole frames): pytest
    prints it on a person's terminal, so never with the charger's control sequences (harness/printable.py)."""
    longrepr = report.longrepr
    if longrepr is None:
        return
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        path, line, reason = longrepr
        report.longrepr = (path, line, printable(str(reason)))
        return
    text = str(longrepr)
    shown = printable(text)
    if shown != text:  # only then: pytest keeps its structured longrepr (crash line, sections) otherwise
        report.longrepr = shown


def _judge_report(item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport) -> pytest.TestReport:
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        # A suite quoting the rig's skip reason in its own says "not tested: not tested: …": once is enough.
        path, line, reason = report.longrepr
        head = "Skipped: " if str(reason).startswith("Skipped: ") else ""
        report.longrepr = (path, line, head + clean_reason(str(reason)[len(head):]))
    if report.when != "call" or not report.failed or call.excinfo is None:
        return report
    kind = error_kind(call)
    if kind is not None:
        # The rig or the harness broke: not a finding about the charger. The terminal shows it as an
        # error (pytest_report_teststatus below), the report as verdict "incomplete".
        report.ev_energy_error = kind  # type: ignore[attr-defined]
        return report
    advisory = _advisory_only(item)
    refiled = [r for r in getattr(call.excinfo.value, "requirements", ()) or () if not _is_advisory(str(r))]
    if advisory and not refiled:
        # A test of advisory requirements only never fails (docs/rules-verdicts.md): its failed check is an
        # advisory finding and the test passes. Why "passed" and not xfail or skip: the test ran to its end
        # and the charger met everything ev.energy requires of it there; xfail means "a known bug of the
        # code under test, expected" and JUnit shows it as skipped; a skip would say it did not run. So
        # the testcase passes (in JUnit too) and carries the finding as a property, as a pytest warning
        # and in the harness's "advisory findings" section. A finding a test refiles under a mandatory
        # requirement (a §4.9 transition is ST-1's) still fails it: it is about that requirement.
        message = str(call.excinfo.value).strip() or call.excinfo.exconly()
        _record_advisory(item, advisory[0], message, None)
        report.outcome = "passed"
        report.longrepr = None
        report.ev_energy_advisory = message  # type: ignore[attr-defined]
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, Any] | None:
    if report.when != "call":
        return None
    if report.passed and getattr(report, "ev_energy_advisory", None):
        return "passed", "A", ("PASSED (advisory finding)", {"yellow": True})
    if report.failed and getattr(report, "ev_energy_error", None):
        return "error", "E", ("ERROR", {"red": True})
    return None


class _JUnitErrors:
    """--junitxml: a rig or harness error in a test's body is an <error>, not a <failure> (pytest files every
    failure of the call phase as a <failure>; a CI's test view would count a broken rig against the charger)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, None, None]:
        result = yield
        if report.when == "call" and report.failed and getattr(report, "ev_energy_error", None):
            with contextlib.suppress(Exception):  # pytest's junitxml internals: best effort, never break a run
                from _pytest.junitxml import xml_key

                xml = self.config.stash.get(xml_key, None)
                if xml is not None:
                    for node in reversed(xml.node_reporter(report).nodes):
                        if node.tag == "failure":
                            node.tag = "error"
                            node.set("message", f"{report.ev_energy_error}: {node.get('message', '')}")
                            xml.stats["failure"] -= 1
                            xml.stats["error"] += 1
                            break
        return result


def _charger_test_follows(item: pytest.Item) -> bool:
    """Whether the next test of this process talks to the charger (and so goes on watching)."""
    following = item.stash.get(NEXT_ITEM, None)
    return following is not None and "charger" in getattr(following, "fixturenames", ())


def _violations_text(found: list[Any]) -> str:
    if all(v.watched for v in found):
        lines = [f"the charger sent what a test had forbidden ({len(found)} finding(s); each names that test):"]
    else:
        lines = [f"the charger broke OCPP-J 1.6 during this test ({len(found)} violation(s)):"]
    lines += [f"  - {v}" for v in found[:20]]
    if len(found) > 20:
        lines.append(f"  … and {len(found) - 20} more")
    return "\n".join(lines)


def _keep_evidence(item: pytest.Item, session: ChargerSession | None, start: int) -> None:
    if session is None:
        return
    state = item.config.stash[STATE]
    end = session.trace.next_seq
    item.stash[EVIDENCE] = {
        "frames": [e.as_dict() for e in session.trace.since(start) if e.seq < end],
        "details": dict(session.details),
    }
    state.accounted = max(state.accounted, end)
    _update_run_info(item.config, session)


# --- frames outside every test's evidence: run-level sections ----------------------------------


def _account(item: pytest.Item, session: ChargerSession, upto: int, phase: str = "setup") -> None:
    """File the trace's frames from the last accounted one up to `upto` (exclusive) as a run-level section
    of this test (its set-up, its teardown), so that no frame of the run is left out of the report."""
    state = item.config.stash[STATE]
    state.session = session
    start = state.accounted
    if upto <= start:
        return
    frames = [e.as_dict() for e in session.trace.since(start) if e.seq < upto]
    state.accounted = upto
    if not frames:
        return
    if phase == "setup" and start == 1:
        phase, title = "before", f"before the first test (connection, boot, set-up of {item.name})"
    elif phase == "setup":
        title = f"set-up of {item.name} (before its evidence starts)"
    elif TEST_START not in item.stash and EVIDENCE not in item.stash:
        phase, title = "setup", f"set-up and teardown of {item.name} (the test did not start)"
    else:
        title = f"teardown of {item.name} (putting the charger back)"
    item.stash.setdefault(RUN_FRAMES, []).append(
        {"title": title, "phase": phase, "nodeid": item.nodeid, "frames": frames}
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        state = item.config.stash.get(STATE, None)
        if state is not None and state.session is not None:
            _account(item, state.session, state.session.trace.next_seq, "teardown")


def _update_run_info(config: pytest.Config, session: ChargerSession) -> None:
    info = config.stash[RUN_INFO]
    if session.boot is not None:
        boot = session.boot.payload
        info["charger"].update(
            {
                "vendor": boot.get("chargePointVendor"),
                "model": boot.get("chargePointModel"),
                "serial": boot.get("chargePointSerialNumber") or boot.get("chargeBoxSerialNumber"),
                "firmware": boot.get("firmwareVersion"),
            }
        )
    if session.connection_info:
        ci = session.connection_info
        info["tls"] = {
            "version": ci.get("tls_version"),
            "cipher": ci.get("cipher"),
            "offered_policy_suites": ci.get("offered_policy_suites", []),
            "client_certificate": ci.get("client_certificate"),
        }
    info["secrets"] = sorted(set(info.get("secrets", [])) | set(session.redact.secrets))


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def harness_settings(pytestconfig: pytest.Config) -> Settings:
    return pytestconfig.stash[SETTINGS]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def csms(harness_settings: Settings, pytestconfig: pytest.Config) -> AsyncIterator[Endpoint]:
    """The fake ev.energy endpoint, for the whole session."""
    settings = harness_settings
    info = pytestconfig.stash[RUN_INFO]

    def on_attempt(attempt: ConnectionAttempt) -> None:
        attempts = info.setdefault("connection_attempts", [])
        if len(attempts) < 500:
            # Plain values only (BasicAuth is a StrEnum): pytest-xdist's execnet cannot send a str subclass to the
            # controller, and a worker that tries crashes the run.
            attempts.append({k: (v.value if isinstance(v, enum.Enum) else v) for k, v in attempt.as_dict().items()})
        if attempt.outcome != CONNECTED:
            item = pytestconfig.stash.get(CURRENT_ITEM, None)
            text, expected = refusal_text(
                attempt,
                requirement_ids(item) if item is not None else [],
                bad_certificate=getattr(endpoint, "_override_context", None) is not None,  # Endpoint.present()
                key_switched=_key_switched(endpoint, settings, attempt),
            )
            _tell(pytestconfig, text, **({} if expected else {"red": True, "bold": True}))

    endpoint = Endpoint(
        EndpointConfig(
            host=settings.csms_host,
            port=settings.csms_port,
            certs_dir=settings.certs_dir,
            security_profile=settings.security_profile,
            timing=settings.timing,  # the sessions' too (EndpointConfig)
            platform=PlatformSettings(heartbeat_interval=settings.heartbeat_interval, id_tags=settings.id_tags),
            session=SessionSettings(silence_after=settings.timing.silence_after),
        ),
        on_attempt=on_attempt,
    )
    await endpoint.start()
    endpoint.register(settings.charger_id, settings.authorization_key)
    info["endpoint"] = endpoint.charger_url(settings.charger_id)
    if pytestconfig.stash.get(PREPARE_BAD_CERTIFICATES, False):
        endpoint.certs.prepare_bad_contexts()  # made in the background while the run waits on the charger
    status = _status_line(pytestconfig)
    try:
        with interrupt.waking(asyncio.get_running_loop()):  # Ctrl-C reaches a run asleep in select() at once
            yield endpoint
    finally:
        if status is not None:
            session_mod.WAIT_OBSERVERS.remove(status)
            status.close()
            pytestconfig.stash[STATUS_LINE] = None
        await _bounded_if_interrupted(endpoint.stop(), 0.5)


def _status_line(config: pytest.Config) -> StatusLine | None:
    """The live status line of long waits (harness/progress.py), for this run; None on an xdist worker (its
    output does not reach the user)."""
    if hasattr(config, "workerinput"):
        return None

    def current() -> tuple[tuple[str, ...], str]:
        item = config.stash.get(CURRENT_ITEM, None)
        return (tuple(requirement_ids(item)), item.name) if item is not None else ((), "")

    status = StatusLine(config, current)
    session_mod.WAIT_OBSERVERS.append(status)
    config.stash[STATUS_LINE] = status
    return status


#: Charge point ids the suites' own probes use (a plain ws:// probe cannot carry the probe's User-Agent reliably).
_PROBE_IDS = frozenset({"harness-plain-ws-probe"})


def _key_switched(endpoint: Endpoint, settings: Settings, attempt: ConnectionAttempt) -> bool:
    """Whether the platform holds, on purpose, another key for this charger than the run's (AUTH-1's refusal test,
    ADV-2's rotation): the suites switch it with Endpoint.register and put the run's back."""
    session = endpoint.sessions.get(attempt.charger_id or "")
    return session is not None and settings.authorization_key is not None and (
        session.authorization_key != settings.authorization_key
    )


def refusal_text(
    attempt: ConnectionAttempt, requirements: list[str], *, bad_certificate: bool, key_switched: bool = False
) -> tuple[str, bool]:
    """The operator's line for a refused connection attempt, and whether the refusal was one the harness provoked on
    purpose (its own probes; the charger refusing a bad certificate the harness presented; a 401 while the platform
    holds another key on purpose): those are expected outcomes, shown as such; any other refusal (the charger's own
    attempt refused) stays prominent."""
    about = "/".join(requirements)
    if attempt.is_probe or attempt.charger_id in _PROBE_IDS:
        what = {
            PLAIN_WS: "plain ws:// refused",
            UNAUTHORIZED: "a wrong password refused with HTTP 401",
        }.get(attempt.outcome, f"refused ({attempt.outcome})")
        return f"expected refusal ({about + ' ' if about else ''}probe by the harness): {what} ✓", True
    if bad_certificate and attempt.outcome in (TLS_FAILED, SILENT, NOT_HTTP):
        # It did not go past TLS: it refused the certificate (an upgrade over it would be accepting it: TLS-3 judges).
        # The details (what the charger offered, how it hung up) are in the report's connection attempts.
        return (
            f"expected refusal ({about + ': ' if about else ''}a bad server certificate presented on purpose): "
            f"the charger's attempt ended {attempt.outcome} ✓",
            True,
        )
    if key_switched and attempt.outcome == UNAUTHORIZED:
        return (
            f"expected refusal ({about + ': ' if about else ''}the platform holds another key on purpose): "
            "the charger's attempt refused with HTTP 401 ✓",
            True,
        )
    return f"connection attempt refused: {attempt.summary()}", False


def make_backend(settings: Settings, config: pytest.Config | None = None) -> ChargerBackend:
    if settings.charger == "sim":
        from harness.drivers.sim import SimBackend

        hardware = {"phases": settings.phases, "voltage": settings.nominal_voltage, "max_current": settings.max_current}
        return SimBackend(
            defects=settings.sim_defects,
            connectors=settings.sim_connectors,
            **{k: v for k, v in hardware.items() if v is not None},  # type: ignore[arg-type]  # hardware numbers
        )
    if settings.charger == "http":
        from harness.drivers.http import HttpBackend

        assert settings.charger_control_url is not None
        return HttpBackend(settings.charger_control_url)
    if settings.charger == "command":
        from harness.drivers.command import CommandBackend

        return CommandBackend(
            settings.rig_commands,
            timeout=settings.timing.command,
            cwd=settings.command_cwd,
            charger_id=settings.charger_id,
        )
    if settings.charger == "manual":
        from harness.drivers.manual import ManualBackend, PytestConsole, StreamConsole

        return ManualBackend(
            PytestConsole(config) if config is not None else StreamConsole(),
            timeout=settings.timing.prompt,
            charger_id=settings.charger_id,
        )
    raise pytest.UsageError(f"--charger={settings.charger!r}: use one of {', '.join(settings_mod.BACKENDS)}")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def charger_backend(
    csms: Endpoint, harness_settings: Settings, pytestconfig: pytest.Config
) -> AsyncIterator[ChargerBackend]:
    """The rig: for `sim`, the built-in reference charger started on this loop."""
    settings = harness_settings
    client_cert = None
    if settings.security_profile == 3 and settings.charger == "sim":
        cert, key = csms.certs.issue_client_cert(settings.charger_id)
        client_cert = (str(cert), str(key))
    backend = make_backend(settings, pytestconfig)
    session = csms.session(settings.charger_id)
    backend.attach(session)
    await backend.start(
        EndpointInfo(
            url=csms.url,
            charger_id=settings.charger_id,
            authorization_key=settings.authorization_key,
            ca_file=str(csms.certs.ca_pem),
            security_profile=settings.security_profile,
            client_cert=client_cert,
        )
    )
    if settings.charger != "sim" and not session.connected:
        _tell(
            pytestconfig,
            settings.waiting_text(csms.charger_url(settings.charger_id), csms.certs.ca_pem, csms.certs.server_names()),
        )

    async def boot_if_reconnected() -> None:
        # A charger that was already running (brought up with `serve`, say) reconnects without a
        # BootNotification, as OCPP 1.6 allows; the suites start from its boot: power-cycle it.
        from harness.drivers.base import ActNotSupported, RigError

        try:
            await session.wait_until(lambda: session.connected, settings.timing.connect_timeout, "the charger to connect")
        except ExpectationTimeout:
            return  # the `charger` fixture reports it
        with contextlib.suppress(ExpectationTimeout):
            await session.wait_until(lambda: session.boot is not None, 10, "a BootNotification")
            return
        _tell(
            pytestconfig,
            f"charger {settings.charger_id!r} connected without a BootNotification (it was already running): "
            "power-cycling it through the rig, so that the run starts from its boot",
        )
        session.trace.event("rig: power-cycle the charger (it reconnected without a BootNotification)")
        try:
            await backend.reboot()
        except (ActNotSupported, RigError) as exc:
            _tell(pytestconfig, f"the rig could not power-cycle it ({exc}); asking for a BootNotification with TriggerMessage")
            with contextlib.suppress(Exception):
                await session.call_raw("TriggerMessage", {"requestedMessage": "BootNotification"})

    kick = asyncio.get_running_loop().create_task(boot_if_reconnected()) if settings.charger != "sim" else None
    try:
        yield backend
    finally:
        if kick is not None:
            kick.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception, KeyboardInterrupt):  # see _bounded_if_interrupted
                await kick
        await _bounded_if_interrupted(backend.stop(), 1.0)


@pytest_asyncio.fixture(loop_scope="session")
async def charger(
    csms: Endpoint, charger_backend: ChargerBackend, harness_settings: Settings, request: pytest.FixtureRequest
) -> AsyncIterator[ChargerSession]:
    """A connected, booted, idle charger; what the test changed is put back afterwards."""
    settings = harness_settings
    state = request.config.stash[STATE]
    session = csms.session(settings.charger_id)
    state.session = session  # its trace is the run's: frames outside every test go to run-level sections
    if state.never_connected:
        raise ChargerNeverConnected(state.never_connected)
    rig = Rig(charger_backend, session)
    session.rig = rig  # type: ignore[attr-defined]
    try:
        # A silent charger (docs/rules-silence.md) is not waited for: the test fails at once with the one cause.
        session.fail_if_silent("the test's set-up did not wait for it")
        try:
            await session.wait_until(
                lambda: session.connected and session.boot is not None,
                settings.timing.connect_timeout,  # the session scales it
                f"charger {settings.charger_id!r} to connect and boot",
            )
        except ExpectationTimeout:
            state.never_connected = _never_connected(csms, session, settings)
            raise ChargerNeverConnected(state.never_connected) from None
        await _ensure_idle(session, rig, state)
        if state.baseline_config is None:
            baseline = await _configuration_baseline(session)
            session.fail_if_silent("the test's set-up did not wait for it")  # no baseline from a silent charger
            state.baseline_config, state.readonly_keys = baseline
    except ChargerSilent as exc:
        request.node.stash[SILENT_AT_SETUP] = session.silence() or str(exc)
    session.reset_answers()
    session.sent_calls.clear()
    session.details = {}
    request.node.stash[TEST_START] = session.mark()
    _account(request.node, session, request.node.stash[TEST_START])  # set-up frames: a run-level section
    if not session.first_mark:
        session.first_mark = request.node.stash[TEST_START]
    try:
        yield session
    finally:
        session.reset_answers()
        # Interrupted (Ctrl-C, SIGTERM): putting the charger back would wait on the charger, the rig or the
        # operator; the run ends now.
        if not interrupt.requested():
            await _put_back(session, rig, state)


async def _put_back(session: ChargerSession, rig: Rig, state: RunState) -> None:
    """What a test changed, undone: the rig's acts, charging profiles, configuration keys."""
    with contextlib.suppress(Exception):
        await rig.undo()
    if any(a == "SetChargingProfile" or (a == "RemoteStartTransaction" and "chargingProfile" in p)
           for a, p in session.sent_calls) and session.connected:
        with contextlib.suppress(Exception):
            await session.call_raw("ClearChargingProfile", {})
    await _restore_configuration(session, state)


async def _bounded_if_interrupted(step: Any, bound: float) -> None:
    """Await a tear-down step; after Ctrl-C/SIGTERM give it at most `bound` seconds (the run ends in 2 s)."""
    if not interrupt.requested():
        await step
        return
    # A task of its own, waited for with asyncio.wait: a timeout that cancels the step would not bound a step that
    # suppresses CancelledError while it awaits its own tasks (the reference charger's and the endpoint's stops do).
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=bound)
    if not done:
        task.cancel()  # not awaited: the run ends now
        return
    # Anything, KeyboardInterrupt included, is dropped: a task the signal hit mid-step keeps that KeyboardInterrupt
    # and gives it again to whoever awaits it. Raised here, it would escape pytest's handling of the first one and
    # the report would not be written.
    if not task.cancelled():
        task.exception()


class ChargerNeverConnected(RuntimeError):
    """Setup failure: the run cannot certify anything (the report says `incomplete`)."""


def _never_connected(csms: Endpoint, session: ChargerSession, settings: Settings) -> str:
    attempts = csms.attempts_for(settings.charger_id) or list(csms.attempts)
    lines = [
        f"charger never connected: no connected and booted charger {settings.charger_id!r} within "
        f"{settings.timing.connect:g} s.",
        f"  expected URL: {csms.charger_url(settings.charger_id)}",
        f"  security profile {settings.security_profile}; CA to trust: {csms.certs.ca_pem}",
    ]
    if session.connected and session.boot is None:
        boots = session.received("BootNotification", since=0)
        lines.append(
            "  it connected but its BootNotification was not schema-valid" if boots
            else "  it connected but sent no BootNotification"
        )
    lines.append(f"  connection attempts seen: {len(attempts)}")
    lines += [f"    {a.summary()}" for a in attempts[-10:]]
    return "\n".join(lines)


async def _ensure_idle(session: ChargerSession, rig: Rig, state: RunState) -> None:
    """Stop what a previous test left running; wait until every connector is available again."""
    for tx in session.active_transactions():
        with contextlib.suppress(Exception):
            answer = await session.call_raw("RemoteStopTransaction", {"transactionId": tx.transaction_id})
            if answer.get("status") != "Accepted":
                # The charger does not know it (e.g. it lost the StopTransaction): nothing to wait for.
                tx.stopped = tx.started
                continue
            await session.expect(
                "StopTransaction", where={"transactionId": tx.transaction_id}, within=10, since=tx.started.seq
            )
    with contextlib.suppress(Exception):
        await rig.undo()
    busy = {"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Faulted"}

    def idle() -> bool:
        return session.connected and not any(s in busy for c, s in session.connector_status.items() if c > 0)

    stuck = state.stuck
    if stuck is not None and not idle() and len(session.status_history) == stuck[0]:
        # Nothing changed since the last test found it stuck: do not wait again, say so at once.
        raise ChargerNotIdle(stuck[1])
    try:
        await session.wait_until(idle, 15, "the charger to be idle")
    except ExpectationTimeout:
        statuses = ", ".join(f"connector {c}: {s}" for c, s in sorted(session.connector_status.items()))
        unplugged_but_busy = [
            c for c, s in session.connector_status.items()
            if c > 0 and s in busy - {"Faulted"} and c not in rig.plugged and not session.active_transactions()
        ]
        if unplugged_but_busy and state.stuck is None:
            # ST-1: "Available: the vehicle is unplugged". The rig unplugged the EV and no transaction runs.
            state.stuck = (len(session.status_history), f"charger not idle: {statuses} after the EV was unplugged")
            raise ChargerFailure(
                f"expected connector(s) {unplugged_but_busy} to report Available once the EV was unplugged and no "
                f"transaction ran (OCPP 1.6 §4.9; ST-1); after 15 s they still report: {statuses}",
                requirements=("ST-1",),
            )
        reason = (
            "charger not idle: this test needs an idle charger (no connector preparing, charging, suspended, "
            f"finishing or faulted) and the charger stayed {statuses or 'without status'} for "
            f"{session.settings.scaled(15):g} s after the previous test's session was stopped and its EV unplugged; "
            "the requirement behind that is judged by its own test"
        )
        state.stuck = (len(session.status_history), reason)
        raise ChargerNotIdle(reason) from None
    state.stuck = None


class ChargerNotIdle(RuntimeError):
    """Setup could not bring the charger back to idle: the test cannot run (incomplete, not failed)."""


async def _configuration_baseline(session: ChargerSession) -> tuple[dict[str, str | None], frozenset[str]]:
    try:
        answer = await session.call_raw("GetConfiguration", {})
    except ChargerFailure:
        return {}, frozenset()
    values: dict[str, str | None] = {}
    readonly: set[str] = set()
    for entry in answer.get("configurationKey", []) or []:
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            values[entry["key"]] = entry.get("value")
            if entry.get("readonly"):
                readonly.add(entry["key"])
    return values, frozenset(readonly)


async def _restore_configuration(session: ChargerSession, state: RunState) -> None:
    """Put back configuration keys a test changed (not AuthorizationKey: its suite restores it)."""
    if not state.baseline_config or not session.connected:
        return
    changed = {
        p.get("key")
        for action, p in session.sent_calls
        if action == "ChangeConfiguration" and p.get("key") != "AuthorizationKey"
    }
    for key in sorted(k for k in changed if isinstance(k, str)):
        if key in state.readonly_keys or key not in state.baseline_config:
            continue
        original = state.baseline_config[key]
        if original is None:
            continue
        with contextlib.suppress(Exception):
            await session.call_raw("ChangeConfiguration", {"key": key, "value": original})


def _tell(config: pytest.Config, text: str, **markup: bool) -> None:
    """Show a line to the operator now, even under output capture."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    ctx = capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext()
    status = config.stash.get(STATUS_LINE, None)
    with ctx:
        if status is not None:
            status.erase()  # a line rewritten in place is not written over (its next tick draws it again)
        reporter.write_line(f"[harness {time.strftime('%H:%M:%S')}] {text}", **markup)


@pytest.hookimpl(tryfirst=True)
def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    if interrupt.requested() is not None and excinfo.traceback:
        # pytest renders the interrupted traceback with every frame's arguments (a second or more for a run
        # deep in asyncio): the place of the interruption is enough; the run must end within 2 s.
        excinfo.traceback = excinfo.traceback[-1:]
        excinfo.value.__suppress_context__ = True


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(SIGNALS, False):
        interrupt.uninstall()
        config.stash[SIGNALS] = False


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Keep the run info current for the report even when no test finished.
    state = session.config.stash.get(STATE, None)
    if state is not None and state.never_connected:
        session.config.stash[RUN_INFO]["never_connected"] = state.never_connected
    if state is not None and state.session is not None:
        _take_faults(None, state.session, session.config)  # after the last test: the run's, no test's
        trace = state.session.trace
        info = session.config.stash[RUN_INFO]
        after = [e.as_dict() for e in trace.since(state.accounted)]
        if after:
            info[RUN_FRAMES_AFTER] = [{"title": "after the last test", "phase": "after", "nodeid": None, "frames": after}]
        state.accounted = trace.next_seq
        if not hasattr(session.config, "workerinput"):  # one trace per process: its length checks the report
            info["trace_frames"] = trace.next_seq - 1
