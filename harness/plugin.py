"""The pytest plugin (the pytest11 entry point `harness.plugin`): options, the hooks, and what pytest reports.

The hooks are here; the work is in the plugin's rooms:
- harness/fixtures.py: the fixtures `csms` (the fake ev.energy endpoint), `charger_backend` (the rig) and
  `charger` (a connected, booted, idle charger), registered as a plugin of their own in pytest_configure;
- harness/guard.py: each test bounded; protocol violations seen during a test fail that test; the test's slice
  of the trace is kept as its evidence for the report, and every frame outside the tests' slices (set-up,
  teardown, before the first test, after the last) goes to a run-level section of the report;
- harness/isolation.py: the charger put back between tests (idle, profiles cleared, configuration restored);
- harness/run_state.py: the run's state and stash keys, shared by these rooms.
A test whose requirement markers are all advisory never fails: a finding in it is an advisory finding
(docs/rules-verdicts.md).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Generator
from typing import Any

import pytest

from harness import __version__, fixtures, interrupt, ordering, settings as settings_mod
from harness.ci import CIOutput
from harness.guard import TEST_BOUND_MARKER, account, advisory_only, guard, is_advisory, record_advisory, take_faults
from harness.printable import printable
from harness.report.collector import (
    CERTIFICATION_RUN,
    RUN_FRAMES_AFTER,
    RUN_INFO,
    ReportCollector,
    error_kind,
)
from harness.report.model import clean_reason
from harness.requirements import requirement_ids
from harness.run_state import CURRENT_ITEM, NEXT_ITEM, PREPARE_BAD_CERTIFICATES, SIGNALS, STATE, RunState
from harness.settings import SETTINGS

# Requirements whose tests present certificates a charger must refuse (TLS-3; NF-2 when it goes offline that way).
_BAD_CERTIFICATE_REQUIREMENTS = frozenset({"TLS-3", "NF-2"})


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
    if not config.pluginmanager.is_registered(fixtures):
        config.pluginmanager.register(fixtures, "ev-energy-fixtures")  # harness/fixtures.py: csms, charger, ...
    if not config.pluginmanager.has_plugin("ev-energy-report"):
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
    ordering.by_critical_path(items)  # the certification suites by the run's critical path (harness/ordering.py)
    uses_harness = False
    for item in items:
        if not isinstance(item, pytest.Function) or "charger" not in getattr(item, "fixturenames", ()):
            continue
        if "charger" in getattr(getattr(item, "callspec", None), "params", {}):
            continue  # a test's own parameter named "charger", not the harness's fixture
        uses_harness = True
        if _BAD_CERTIFICATE_REQUIREMENTS.intersection(requirement_ids(item)):
            config.stash[PREPARE_BAD_CERTIFICATES] = True
        if inspect.iscoroutinefunction(item.obj):
            # The endpoint lives on the session loop: every harness test must run there too.
            item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)
            item.obj = guard(item, item.obj)
    if uses_harness:
        config.stash[CERTIFICATION_RUN] = True
        _take_signals(config)
    elif not config.stash.get(CERTIFICATION_RUN, False):
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


# --- each test: its bound and evidence (harness/guard.py), its verdict as pytest reports it --------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    item.stash[NEXT_ITEM] = nextitem
    item.config.stash[CURRENT_ITEM] = item  # the live status line names its requirement


def _uses_harness(item: pytest.Item) -> bool:
    """A certification test: it talks to the charger or the endpoint, or names a requirement."""
    names = getattr(item, "fixturenames", ())
    return "charger" in names or "csms" in names or bool(requirement_ids(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
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
        report.ev_energy_error = kind  # type: ignore[attr-defined]  # our attribute (xdist ships a report's __dict__)
        return report
    advisory = advisory_only(item)
    refiled = [r for r in getattr(call.excinfo.value, "requirements", ()) or () if not is_advisory(str(r))]
    if advisory and not refiled:
        # A test of advisory requirements only never fails (docs/rules-verdicts.md): its failed check is an
        # advisory finding and the test passes. Why "passed" and not xfail or skip: the test ran to its end
        # and the charger met everything ev.energy requires of it there; xfail means "a known bug of the
        # code under test, expected" and JUnit shows it as skipped; a skip would say it did not run. So
        # the testcase passes (in JUnit too) and carries the finding as a property, as a pytest warning
        # and in the harness's "advisory findings" section. A finding a test refiles under a mandatory
        # requirement (a §4.9 transition is ST-1's) still fails it: it is about that requirement.
        message = str(call.excinfo.value).strip() or call.excinfo.exconly()
        record_advisory(item, advisory[0], message, None)
        report.outcome = "passed"
        report.longrepr = None
        report.ev_energy_advisory = message  # type: ignore[attr-defined]  # our attribute, as ev_energy_error
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config
                             ) -> tuple[str, str, str | tuple[str, dict[str, bool]]] | None:
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        state = item.config.stash.get(STATE, None)
        if state is not None and state.session is not None:
            account(item, state.session, state.session.trace.next_seq, "teardown")


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
        take_faults(None, state.session, session.config)  # after the last test: the run's, no test's
        trace = state.session.trace
        info = session.config.stash[RUN_INFO]
        after = [e.as_dict() for e in trace.since(state.accounted)]
        if after:
            info[RUN_FRAMES_AFTER] = [{"title": "after the last test", "phase": "after", "nodeid": None, "frames": after}]
        state.accounted = trace.next_seq
        if not hasattr(session.config, "workerinput"):  # one trace per process: its length checks the report
            info["trace_frames"] = trace.next_seq - 1
