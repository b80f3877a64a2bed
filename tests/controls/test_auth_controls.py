"""Positive and negative controls for AUTH-1 (Basic auth) and ADV-2 (AuthorizationKey rotation over OCPP).

AUTH-1 is Basic auth itself (docs/rules-auth.md): every charger below that sends the right credentials
passes it, whatever it answers to a key change; that answer is an ADV-2 finding, shown in the rotation
test's notes and as an advisory finding, never an AUTH-1 failure. Each Basic-auth defect fails AUTH-1 and
nothing else. The run's key is back on the charger at the end of every conformant run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import requirements as catalogue
from harness.sim.defects import DEFECTS
from tests.controls.runner import SuiteRun, run_suites

TRANSPORT = "suites/test_transport_security.py"
AUTH = "suites/test_authorization.py"
FILES = [TRANSPORT, AUTH]
ROTATION_TEST = "test_authorization_key_rotation"

# charger (None: the reference) -> words the ADV-2 rotation test's notes must hold (what it saw and found)
CONFORMANT: dict[str | None, tuple[str, ...]] = {
    None: ("Accepted", "reconnected by itself with the new key", "old key is refused (HTTP 401)"),
    "basic-auth-decoded-key": ("Accepted", "reconnected by itself with the new key"),
    "key-change-not-supported": ("ADV-2 finding: key rotation over OCPP not supported", "NotSupported"),
    "key-change-reboot-required": ("RebootRequired", "after Reset Hard it connected with the new key",
                                   "old key is refused (HTTP 401)"),
    # Accepted, but reconnects with the new key only when the platform closes the connection: an ADV-2 finding only.
    "keeps-connection-after-key-change": ("Accepted", "ADV-2 finding: answered Accepted but did not disconnect by itself",
                                          "it used the new key when the platform closed the connection",
                                          "old key is refused (HTTP 401)"),
    # Accepted and kept the old key: an ADV-2 finding only, AUTH-1 passes.
    "ignores-new-authorization-key": ("ADV-2 finding: answered Accepted to the new AuthorizationKey but kept the old key",
                                      "would lock itself out once the platform switched keys"),
}

# Basic-auth defects: each fails AUTH-1, and only AUTH-1.
NEGATIVE = ("no-basic-auth", "basic-auth-wrong-user", "basic-auth-wrong-key", "gives-up-after-401")
# the AUTH-1 test each fails, and words of its message
FAILS: dict[str, tuple[str, str]] = {
    "no-basic-auth": ("test_basic_auth_with_the_authorization_key", "no Authorization header"),
    "basic-auth-wrong-user": ("test_basic_auth_with_the_authorization_key", "is not the charge point id"),
    "basic-auth-wrong-key": ("test_basic_auth_with_the_authorization_key", "wrong password"),
    # Connects fine at first: the 401 check is what catches it.
    "gives-up-after-401": ("test_reconnects_after_401_once_the_key_is_accepted", "try again and connect once"),
}


def rotation(run: SuiteRun) -> dict:
    """The ADV-2 rotation test's entry in the report (an advisory test)."""
    found = [t for t in run.report.get("advisory", []) if t["nodeid"].endswith(ROTATION_TEST)]
    assert len(found) == 1, run.explain()
    return found[0]


def test_the_catalogue_files_these_under_auth1_and_adv2() -> None:
    assert catalogue.by_id("ADV-2").kind == catalogue.ADVISORY
    assert {n for n, d in DEFECTS.items() if not d.conformant and d.requirement_id == "AUTH-1"} == set(NEGATIVE)
    assert DEFECTS["ignores-new-authorization-key"].requirement_id == "ADV-2"  # not an AUTH-1 defect any more
    assert all(DEFECTS[n].conformant for n in CONFORMANT if n and n != "ignores-new-authorization-key")


@pytest.mark.parametrize("variant", list(CONFORMANT), ids=[v or "reference" for v in CONFORMANT])
def test_auth1_passes_whatever_the_key_change_answer(variant: str | None, tmp_path: Path, certs_dir: Path) -> None:
    run = run_suites(FILES, tmp_path, defects=(variant,) if variant else (), certs_dir=certs_dir)
    assert run.failing() == set(), run.explain()
    assert run.verdicts().get("AUTH-1") == "pass", run.explain()
    groups = {g["id"]: g for g in run.report.get("groups", [])}
    assert groups["AUTH"]["verdict"] == "pass" and groups["AUTH"]["held"] == ["AUTH-1"], run.explain()
    assert "ADV-2" not in {r["id"] for r in run.report["requirements"]}, run.explain()
    entry = rotation(run)
    assert entry["requirements"] == ["ADV-2"] and entry["verdict"] != "error", entry
    notes = " | ".join(entry["details"].get("notes", []))
    for words in CONFORMANT[variant]:
        assert words in notes, f"{words!r} not in the rotation test's notes: {notes}\n{run.explain()}"
    # The bench is left as it was found: the charger is back on the run's key.
    assert "BENCH NOT RESTORED" not in notes and "bench not restored" not in run.output, run.explain()
    assert entry["details"]["key_rotation"]["charger_key"] == "the run's key", entry["details"]
    # Advisory findings never fail the run (exit 0 holds here without the verdicts work: advise() never fails).
    assert run.exit_code == 0, run.explain()


def test_bench_not_restored_is_said_once_and_the_run_goes_on(tmp_path: Path, certs_dir: Path) -> None:
    """A charger that refuses to take back a key it held before (legitimate) keeps the rotated key: the endpoint
    goes on with that key, the terminal says so in one line, and the report tells the operator what to do."""
    run = run_suites(FILES, tmp_path, defects=("rejects-key-reuse",), certs_dir=certs_dir)
    assert run.failing() == set() and run.verdicts().get("AUTH-1") == "pass", run.explain()
    assert run.exit_code == 0, run.explain()
    assert run.output.count("bench not restored") == 1, run.explain()
    entry = rotation(run)
    notes = " | ".join(entry["details"].get("notes", []))
    assert "reconnected by itself with the new key" in notes and "BENCH NOT RESTORED" in notes, notes
    assert "set the charger's AuthorizationKey back" in notes, notes
    assert entry["details"]["key_rotation"]["charger_key"] == "the key generated for the rotation", entry["details"]


@pytest.mark.parametrize("defect", NEGATIVE)
def test_basic_auth_defect_fails_auth1_only(defect: str, tmp_path: Path, certs_dir: Path) -> None:
    run = run_suites(FILES, tmp_path, defects=(defect,), certs_dir=certs_dir)
    assert run.failing() == {"AUTH-1"}, run.explain()
    name, words = FAILS[defect]
    failed = next(t for r in run.report["requirements"] if r["id"] == "AUTH-1" for t in r["tests"] if t["name"] == name)
    assert failed["verdict"] == "fail", run.explain()
    assert words in (failed.get("message") or ""), failed.get("message")


@pytest.mark.skipif(not os.environ.get("HARNESS_CERTIFICATION_CONTROLS"),
                    reason="not run by default: a certification-mode run takes about 12 minutes "
                           "(set HARNESS_CERTIFICATION_CONTROLS=1)")
def test_only_gap_key_rotation_is_certified(tmp_path: Path, certs_dir: Path) -> None:
    """The charger whose only gap is key rotation is certified in certification mode, the finding listed."""
    run = run_suites(["suites/"], tmp_path, defects=("ignores-new-authorization-key",), certs_dir=certs_dir,
                     extra=("--mode", "certification"), timeout=1800)
    assert run.report.get("overall") == "certified", run.explain()
    notes = " | ".join(rotation(run)["details"].get("notes", []))
    assert "would lock itself out once the platform switched keys" in notes, notes
