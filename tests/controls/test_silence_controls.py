"""Controls for "a silent charger" (docs/rules-silence.md).

The defect `falls-silent`: once its boot is Accepted and its status report answered, the reference charger's
OCPP task deadlocks: it sends and answers nothing more, keeps the WebSocket connection open, and never
reconnects. The whole quick certification (`pytest suites/`) runs against it and must:
- end within 90 s of wall time (measured here, around the subprocess): the silence is noticed once (a CALL
  left unanswered for its 10 s timeout, nothing heard for the 12 s silence bound), after which every test
  that needs the charger fails at once instead of waiting out its timeouts (about 420 s before);
- write a complete report: every mandatory requirement has a verdict, and the run is "not certified";
- fail each test that needs the charger on its own requirement with the one cause ("charger silent since …,
  … last frame …"), and nothing that does not need it: the tests that only look at the connection the charger
  opened before it fell silent (TLS-1, TLS-2, AUTH-1's Basic-auth header, CORE-1's registration) pass. (AUTH-1's
  401 test needs the charger to reconnect: whether it ran before the charger fell silent depends on when the
  reference charger's status report is answered, so AUTH-1 may pass or fail with the one cause.)

The 90 s bound is the goal of the issue; an unloaded run takes about 20 to 35 s (one or two 10 s CALL timeouts and
the tests that do not need the charger). The margin (70 s) absorbs CPU load: the controls run beside other jobs
on a 2-CPU machine.

The conformant slow chargers (`slow-responses`, `slow-hardware`, `waits-for-boot-accepted`) never trip the
silence: their rows in tests/controls/test_transport_core_fw_nf_controls.py pass the same suites.
"""

from __future__ import annotations

import time
from pathlib import Path

from harness import requirements as catalogue
from tests.controls.runner import run_suites

SILENT_RUN_BOUND = 90.0  # seconds of wall time for the whole quick run against a silent charger
#: Requirements judged only from what the charger did before it fell silent (the connection it opened): they hold.
NEED_NO_CHARGER = {"TLS-1", "TLS-2"}
#: Tests that do not use the `charger` fixture (they look at the connection and the boot): they pass.
PASSING_TESTS = {"test_tls12_with_a_policy_suite", "test_plain_ws_is_refused", "test_basic_auth_with_the_authorization_key",
                 "test_charger_registers"}


def test_a_silent_charger_fails_quickly_with_one_cause(tmp_path: Path, certs_dir: Path) -> None:
    began = time.monotonic()
    run = run_suites(["suites/"], tmp_path, defects=("falls-silent",), certs_dir=certs_dir, timeout=600)
    wall = time.monotonic() - began
    assert wall <= SILENT_RUN_BOUND, f"the run took {wall:.0f} s (bound {SILENT_RUN_BOUND:g} s)\n{run.explain()}"
    assert run.exit_code == 1, run.explain()
    report = run.report
    assert report["overall"] == "not certified", run.explain()
    verdicts = {r["id"]: r["verdict"] for r in report["requirements"]}
    mandatory = {r.id for r in catalogue.REQUIREMENTS if r.kind == catalogue.MANDATORY}
    # A complete report: every mandatory requirement has a verdict (NF-1 is a statement, never tested over OCPP).
    assert all(verdicts.get(rid) for rid in mandatory), verdicts
    assert {rid for rid in NEED_NO_CHARGER if verdicts[rid] != "pass"} == set(), run.explain()
    failed = run.failing()
    assert failed and not failed & NEED_NO_CHARGER, run.explain()
    outcomes = {t["name"]: t["verdict"] for r in report["requirements"] for t in r["tests"]}
    assert {name: outcomes.get(name) for name in PASSING_TESTS} == {name: "pass" for name in PASSING_TESTS}, outcomes
    assert "CORE-1" in failed, run.explain()
    # Every failed test names the silence, and it is the same one cause (since when, the unanswered CALL). Before the
    # silence bound has passed, a test may fail on a finding of its own, a symptom of the same silence: CORE-1's
    # Heartbeats (at the interval, after a reconnect, on request) or a Core request left unanswered. Nothing else
    # fails without naming the silence.
    causes = set()
    own_findings = []
    for requirement in report["requirements"]:
        for test in requirement["tests"]:
            if test["verdict"] != "fail":
                continue
            message = test["message"] or ""
            if "charger silent since" not in message:
                own_findings.append((requirement["id"], test["nodeid"], message[:300]))
                continue
            assert "last frame" in message, (test["nodeid"], message)
            causes.add(message[message.index("charger silent since"):].split("; ")[0])
    assert len(causes) == 1, causes
    assert {rid for rid, _, _ in own_findings} <= {"CORE-1"}, own_findings
    # The symptoms before the bound: no Heartbeat, or a request of the Core profile left unanswered (NoAnswer). The
    # Core profile's tests run right after registration and the Pending test's reboot (harness/ordering.py), so
    # the silence after that boot is first met by them.
    assert all("Heartbeat" in message or message.startswith("harness.errors.NoAnswer")
               for _, _, message in own_findings), own_findings
    # No test is left incomplete by the silence: it is a finding about the charger, not a broken bench.
    incomplete = [t["nodeid"] for r in report["requirements"] for t in r["tests"] if t["verdict"] == "incomplete"]
    assert not incomplete, incomplete
