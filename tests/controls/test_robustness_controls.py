"""Positive and negative controls for the advisory robustness suite (ADV-1, suites/test_robustness.py).

The reference charger refuses every malformed CALL with the fitting OCPP-J 1.6 code and keeps the
connection: every ADV-1 finding passes. So do its conformant ADV-1 variants (docs/rules-frames.md):
answering an unreadable frame with CALLERROR id "-1", and a string errorDetails in every CALLERROR
(every requirement passes; exactly one advisory finding names that deviation). Each ADV-1 defect of the reference charger must fail exactly
the malformed-request findings, and nothing on ev.energy's list: the whole of suites/ runs with the
defect, and every ev.energy requirement gets the same verdict as without it (advisory findings never
affect certification).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness import requirements as catalogue
from harness.sim.defects import DEFECTS
from tests.controls.runner import SuiteRun, run_suites

SUITES = ["suites/"]
ROBUSTNESS = "suites/test_robustness.py"
MALFORMED_REQUEST = {
    "test_call_with_three_elements",
    "test_call_payload_not_an_object",
    "test_missing_required_field",
    "test_field_of_the_wrong_type",
}
ALL_FINDINGS = MALFORMED_REQUEST | {
    "test_unknown_action",  # NotImplemented/NotSupported: CORE-1 relies on that answer, no ADV-1 defect touches it
    "test_unreadable_frame_leaves_the_connection_open[not-json]",
    "test_unreadable_frame_leaves_the_connection_open[not-an-array]",
}

# defect -> the robustness findings it must fail (and no ev.energy requirement)
NEGATIVE: dict[str, set[str]] = {
    "crashes-on-malformed": MALFORMED_REQUEST,  # the connection closes instead of a CALLERROR
    "wrong-error-codes": MALFORMED_REQUEST,  # CALLERROR GenericError instead of the fitting code
}
#: Conformant ADV-1 variants: every finding and every ev.energy requirement passes.
VARIANTS = ("minus-one-error-id", "string-error-details")
UNREADABLE = {name for name in ALL_FINDINGS if name.startswith("test_unreadable_frame")}


def findings(run: SuiteRun) -> dict[str, dict]:
    """The robustness suite's advisory entries of a run, by test name."""
    return {
        t["nodeid"].split("::", 1)[1]: t for t in run.report.get("advisory", []) if t["nodeid"].startswith(ROBUSTNESS)
    }


def check_advisory_only(run: SuiteRun) -> None:
    """ADV-1 is never one of the report's requirements, and every finding says why it is advisory."""
    assert "ADV-1" not in {r["id"] for r in run.report["requirements"]}, run.explain()
    assert set(findings(run)) == ALL_FINDINGS, run.explain()
    for entry in findings(run).values():
        assert entry["advisory_reason"] == "an advisory check: never affects the verdict", entry
        assert entry["requirements"] == ["ADV-1"], entry


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, certs_dir: Path) -> SuiteRun:
    """All suites against the reference charger without defects."""
    return run_suites(SUITES, tmp_path_factory.mktemp("reference"), certs_dir=certs_dir)


def test_the_catalogue_has_a_control_for_every_adv1_defect() -> None:
    ours = {name for name, d in DEFECTS.items() if d.requirement_id == "ADV-1"}
    assert {name for name in ours if not DEFECTS[name].conformant} == set(NEGATIVE)
    assert {name for name in ours if DEFECTS[name].conformant} == set(VARIANTS)
    assert catalogue.by_id("ADV-1").kind == catalogue.ADVISORY


def advisory_properties(junit: Path) -> list[str]:
    """The advisory findings filed for the run's tests (JUnit user properties named "advisory")."""
    return [p.get("value", "") for p in ET.parse(junit).iter("property") if p.get("name") == "advisory"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_conformant_variant_passes_every_finding_and_requirement(
    variant: str, tmp_path: Path, certs_dir: Path, reference: SuiteRun
) -> None:
    junit = tmp_path / "junit.xml"
    run = run_suites(SUITES, tmp_path, defects=(variant,), extra=("--junitxml", str(junit)), certs_dir=certs_dir)
    assert run.failing() == set(), run.explain()
    assert run.verdicts() == reference.verdicts(), run.explain()
    check_advisory_only(run)
    verdicts = {name: t["verdict"] for name, t in findings(run).items()}
    assert verdicts == dict.fromkeys(ALL_FINDINGS, "pass"), run.explain()
    about_details = [a for a in advisory_properties(junit) if "errorDetails" in a]
    if variant == "minus-one-error-id":
        # The "-1" answers are acceptable: no "CALLERROR for unknown id", and the notes say what came.
        assert "unknown id" not in run.output, run.explain()
        for name in UNREADABLE:
            notes = findings(run)[name]["details"].get("notes", [])
            assert any('answered [4,"-1"' in n and "(acceptable)" in n for n in notes), notes
        assert about_details == [], about_details
    else:
        # Exactly one advisory finding, naming the deviation; the CALLERRORs still count as answers (the
        # malformed-request findings pass on their codes).
        assert len(about_details) == 1, advisory_properties(junit)
        assert "ADV-1: CALLERROR errorDetails is a string" in about_details[0], about_details
        assert "not a JSON object" in about_details[0], about_details


def test_reference_charger_passes_every_robustness_finding(reference: SuiteRun) -> None:
    assert reference.failing() == set(), reference.explain()
    check_advisory_only(reference)
    verdicts = {name: t["verdict"] for name, t in findings(reference).items()}
    assert verdicts == dict.fromkeys(ALL_FINDINGS, "pass"), reference.explain()
    notes = [n for t in findings(reference).values() for n in t["details"].get("notes", [])]
    assert sum("(the preferred code)" in n for n in notes) == 5, notes


@pytest.mark.parametrize("defect", sorted(NEGATIVE))
def test_defect_fails_its_findings_and_no_ev_energy_requirement(
    defect: str, tmp_path: Path, certs_dir: Path, reference: SuiteRun
) -> None:
    run = run_suites(SUITES, tmp_path, defects=(defect,), certs_dir=certs_dir)
    assert run.failing() == set(), run.explain()
    assert run.verdicts() == reference.verdicts(), "an advisory defect changed an ev.energy verdict\n" + run.explain()
    check_advisory_only(run)
    # An advisory test never fails (docs/rules-verdicts.md): its failed check passes the test with an
    # advisory finding, listed under ADV-1 in the report, and the run's exit status stays what it was.
    failed = {name for name, t in findings(run).items() if t.get("findings")}
    assert failed == NEGATIVE[defect], run.explain()
    assert {t["verdict"] for t in findings(run).values()} == {"pass"}, run.explain()
    assert run.exit_code == reference.exit_code == 0, run.explain()
    adv1 = next(a for a in run.report["advisory_requirements"] if a["id"] == "ADV-1")
    assert {f["nodeid"].split("::", 1)[1] for f in adv1["findings"]} == NEGATIVE[defect], run.explain()
    words = "closed the connection" if defect == "crashes-on-malformed" else "answered CALLERROR GenericError"
    for name in failed:
        message = " ".join(f["message"] for f in findings(run)[name]["findings"])
        assert words in message, message
