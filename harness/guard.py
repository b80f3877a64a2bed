"""Each harness test, guarded: its bound, its evidence and what is filed with it.

`guard` wraps every async test that uses the `charger` fixture (harness/plugin.py's
pytest_collection_modifyitems): the test runs within its bound (harness/timing.py); the protocol violations
seen during it fail it, filed under the requirement they are about; the advisory findings are filed as such
and never fail it (docs/rules-verdicts.md); harness faults during it make it a harness error
(docs/rules-silence.md §2). Its slice of the trace is kept as its evidence for the report, and every frame
outside the tests' slices (set-up, teardown) goes to a run-level section (`account`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeGuard, cast

import pytest

from harness import bounds, interrupt
from harness.endpoint import Endpoint
from harness.errors import AdvisoryFinding, ChargerFailure, ChargerSilent, HarnessError, ProtocolViolation
from harness.findings import HarnessFault, Violation
from harness.report.collector import EVIDENCE, FINDINGS, RUN_FRAMES, RUN_INFO
from harness.report.stash import StashedEvidence
from harness.requirements import ADVISORY, by_id, is_known, requirement_ids
from harness.run_state import NEXT_ITEM, SILENT_AT_SETUP, STATE, TEST_START
from harness.session import ChargerSession
from harness.settings import SETTINGS

# Each test's bound and the silence bound: harness/timing.py (Timing.test_bound, Timing.silence_after).
#: `@pytest.mark.test_bound(seconds)`: a test that waits on the charger's own timers (which quick mode cannot
#: shorten, e.g. NF-2's late-delivery bound) gets at least this bound in every mode (before the timeout factor).
TEST_BOUND_MARKER = "test_bound"


def guard(item: pytest.Function, test: Callable[..., Awaitable[object]]) -> Callable[..., Awaitable[None]]:
    @functools.wraps(test)
    async def guarded(*args: Any, **kwargs: Any) -> None:
        settings = item.config.stash[SETTINGS]
        bound = settings.timing.test_bound
        own = item.get_closest_marker(TEST_BOUND_MARKER)
        if own is not None and own.args:
            bound = settings.timing.test_bound_at_least(float(own.args[0]))
        session = cast(ChargerSession | None, item.funcargs.get("charger"))  # the charger fixture's (fixtures.py)
        endpoint = item.funcargs.get("csms")
        if session is None and isinstance(endpoint, Endpoint):
            session = endpoint.sessions.get(settings.charger_id)
            if session is not None:
                session.details = {}  # the charger fixture resets it for the others
        start = item.stash.get(TEST_START, session.trace.next_seq if session is not None else 0)
        if session is not None:
            account(item, session, start)  # what came before this test's evidence: a run-level section
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
                faults = take_faults(item, session)
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
            faults = take_faults(item, session)
            if faults:
                raise HarnessError(_faults_text(faults))
            found = _file_advisories(item, session.take_findings(start))
            if found:
                # A finding about another requirement (a §4.9 transition is ST-1's; a watch's is the requirement of
                # the test that set it) is filed there, whichever test saw it (the test still fails).
                about = {v.requirement for v in found}
                refile = tuple(sorted(r for r in about if r is not None)) if None not in about else ()
                raise ProtocolViolation(_violations_text(found), requirements=refile)

    return guarded


def take_faults(item: pytest.Item | None, session: ChargerSession,
                config: pytest.Config | None = None) -> list[HarnessFault]:
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


def _faults_text(faults: list[HarnessFault]) -> str:
    lines = [f"{len(faults)} exception(s) in the harness's own frame handling during this test (the harness's fault; "
             "the charger was not judged by this test; see the report's run.harness_errors):"]
    lines += [f"  - while {f.where} (trace seq {f.seq}): {f.error}" for f in faults[:10]]
    if faults:
        lines.append(faults[-1].traceback)
    return "\n".join(lines)


def _file_advisories(item: pytest.Item, found: list[Violation]) -> list[Violation]:
    """Keep the advisory findings (about an advisory requirement) apart: they never fail a test. What is
    left fails it."""
    failing = []
    for finding in found:
        if is_advisory(finding.requirement):
            record_advisory(item, finding.requirement, finding.message, finding.seq)
        else:
            failing.append(finding)
    return failing


def is_advisory(requirement: str | None) -> TypeGuard[str]:
    return requirement is not None and is_known(requirement) and by_id(requirement).kind == ADVISORY


def advisory_only(item: pytest.Item) -> list[str]:
    """The test's requirement IDs when every one is advisory (ADV-*), else []."""
    ids = requirement_ids(item)
    return ids if ids and all(is_advisory(i) for i in ids) else []


def record_advisory(item: pytest.Item, requirement: str, message: str, seq: int | None) -> None:
    """One advisory finding, where a user sees it: a user property (JUnit: a property of a passing testcase),
    the report (FINDINGS), pytest's warnings summary and the harness's own terminal section."""
    text = f"{requirement}: {message}"
    item.user_properties.append(("advisory", text))
    item.stash.setdefault(FINDINGS, []).append({"requirement": requirement, "message": message, "seq": seq})
    with warnings.catch_warnings():
        warnings.simplefilter("always", AdvisoryFinding)  # each finding shows, even with the same text
        item.warn(AdvisoryFinding(f"advisory finding (does not affect the verdict): {text}"))



def _charger_test_follows(item: pytest.Item) -> bool:
    """Whether a later test of this process talks to the charger (and so goes on watching). Tests that do not
    (e.g. AUTH-2's, which opens its own connection) are looked past: a watch of the test before them is still
    seen out by a charger test after them, not waited for here (in certification mode a reconnect's Heartbeat
    check is a whole HeartbeatInterval). Under pytest-xdist only the next test is known to run in this process."""
    following = item.stash.get(NEXT_ITEM, None)
    if following is None:
        return False
    if "charger" in getattr(following, "fixturenames", ()):
        return True
    if hasattr(item.config, "workerinput"):
        return False
    items = item.session.items
    with contextlib.suppress(ValueError):
        return any("charger" in getattr(later, "fixturenames", ()) for later in items[items.index(following) + 1:])
    return False


def _violations_text(found: list[Violation]) -> str:
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
    evidence: StashedEvidence = {
        "frames": [e.as_dict() for e in session.trace.since(start) if e.seq < end],
        "details": dict(session.details),
    }
    item.stash[EVIDENCE] = evidence
    state.accounted = max(state.accounted, end)
    _update_run_info(item.config, session)


# --- frames outside every test's evidence: run-level sections ----------------------------------


def account(item: pytest.Item, session: ChargerSession, upto: int, phase: str = "setup") -> None:
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
