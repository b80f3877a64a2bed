"""Positive and negative controls for the ways a session ends (suites/test_session_end.py: ST-1, CORE-1, MV-2).

Each row runs the real suite against the reference charger (a subprocess, quick mode) and asserts the
set of requirements whose verdict is "fail":
- without a defect, and with the conformant variants that change how a session looks on the wire
  (more connectors, slow hardware, one phase, kWh/kW, a Current+Voltage meter, slow answers): nothing
  fails and the three requirements pass;
- with each defect: exactly the requirement it breaks fails. Besides the two defects of this suite, the
  rows include defects of other suites that touch a session's end, to show they fail their own
  requirement here too, never another one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.controls.runner import run_suites

SESSION_END = "suites/test_session_end.py"
MINE = {"ST-1", "CORE-1", "MV-2"}

# defect -> the exact set of requirements that must fail (running suites/test_session_end.py)
NEGATIVE: dict[str, set[str]] = {
    # Finishing → Reserved on an unplug during a transaction (illegal in §4.9), never Available: ST-1 only
    # (the StopTransaction and its meterStop are right).
    "reserved-after-unplug": {"ST-1"},
    # StopTransaction reason Local for an unplug: CORE-1 only (the statuses and the meter are right).
    "unplug-reason-local": {"CORE-1"},
    # Charging → Preparing when a session stops with the EV plugged in (the remote and local ways).
    "illegal-transition": {"ST-1"},
    "meter-stop-below-start": {"MV-2"},
    # An offline StopTransaction lost: its delivery is NF-2's (test_offline.py); here the offline way's
    # CORE-1 and MV-2 tests are "not tested", its statuses still judged (they are right).
    "loses-offline-stop": set(),
}

VARIANTS = ("two-connectors", "slow-hardware", "single-phase", "kw-units", "current-voltage", "slow-responses",
            # this suite's own: Finishing between Charging and Available on an unplug; no reason on a local stop
            "finishing-on-unplug", "local-reason-omitted")


@pytest.mark.parametrize("variant", [None, *VARIANTS], ids=["reference", *VARIANTS])
def test_conformant_charger_passes(variant: str | None, tmp_path: Path, certs_dir: Path) -> None:
    run = run_suites([SESSION_END], tmp_path, defects=(variant,) if variant else (), certs_dir=certs_dir)
    assert run.failing() == set(), run.explain()
    verdicts = run.verdicts()
    assert {rid: verdicts.get(rid) for rid in MINE} == {rid: "pass" for rid in MINE}, run.explain()


@pytest.mark.parametrize("defect", sorted(NEGATIVE))
def test_defect_fails_exactly_its_requirement(defect: str, tmp_path: Path, certs_dir: Path) -> None:
    run = run_suites([SESSION_END], tmp_path, defects=(defect,), certs_dir=certs_dir)
    assert run.failing() == NEGATIVE[defect], run.explain()
    if defect == "loses-offline-stop":
        tests = {t["name"]: t["verdict"] for r in run.report["requirements"] for t in r["tests"]}
        assert tests["test_stop_transaction_when_the_session_ends[offline]"] == "not tested", run.explain()
        assert tests["test_statuses_when_the_session_ends[offline]"] == "pass", run.explain()
