"""Controls for "a rig that fails is not a charger that fails" (docs/rules-verdicts.md).

The conformant variant `rig-without-ev`: the reference charger is conformant, but its rig has no EV that
can pause (the control API answers 501 for `ev`; the sim backend refuses the act the same way). The
tests that need the act are "not tested", naming it; nothing fails; the overall verdict is incomplete
and the exit status is the incomplete code (6), never "not certified" (1).
"""

from __future__ import annotations

from pathlib import Path

from harness.report.model import EXIT_INCOMPLETE
from tests.controls.runner import run_suites

STATUS = "suites/test_status.py"
METER = "suites/test_meter_values.py"


def test_rig_without_ev_is_incomplete_not_failed(tmp_path: Path, certs_dir: Path) -> None:
    run = run_suites([STATUS, METER], tmp_path, defects=("rig-without-ev",), certs_dir=certs_dir)
    assert run.failing() == set(), run.explain()
    assert run.exit_code == EXIT_INCOMPLETE, run.explain()
    assert run.report["overall"] == "incomplete", run.explain()
    tests = {t["name"]: t for r in run.report["requirements"] for t in r["tests"]}
    # ST-4's SuspendedEV test and MV-3 need the EV to pause: not tested, naming the act, said once.
    for name in ("test_suspended_ev_when_the_ev_pauses",):
        test = tests[name]
        assert test["verdict"] == "not tested", run.explain()
        assert test["message"].startswith("not tested: the rig cannot perform the act 'ev'"), test["message"]
    for test in tests.values():
        assert "not tested: not tested" not in (test.get("message") or ""), test["message"]
        if test["verdict"] == "not tested":
            assert "'ev'" in test["message"], test["message"]
    verdicts = run.verdicts()
    assert verdicts["ST-4"] == "not tested", run.explain()
    assert "ST-4" in run.report["overall_reason"] and "'ev'" in run.report["overall_reason"], run.report["overall_reason"]
    # The requirements that do not need the act are judged as usual.
    for rid in ("ST-1", "ST-2", "ST-3", "MV-1", "MV-2", "CFG-2"):
        assert verdicts[rid] == "pass", run.explain()
