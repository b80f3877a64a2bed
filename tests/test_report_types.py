"""The typed report (harness/report/types.py): one way from the dataclasses to the JSON, and the harness-error
flag the collector carries with each test record (instead of reading it from a message's first words)."""

from __future__ import annotations

import copy
import json

import pytest

from harness.report import model
from harness.report.collector import _harness_broke
from harness.report.types import OrGroupVerdict, Report, RequirementVerdict, RunInfo, TestRecord, TestResult, Verdict
from tests.test_report import passing_tests, run_collector, run_info

#: The top-level members in the order SCHEMA.md lists them (and the files have always had).
TOP_LEVEL = ["schema", "schema_version", "overall", "overall_reason", "generated_at", "harness", "run", "charger",
             "declarations", "tls", "connection_attempts", "summary", "groups", "requirements", "advisory",
             "advisory_requirements", "run_frames", "warnings", "digest"]


def _without_times(report: dict) -> str:
    body = {k: v for k, v in report.items() if k not in ("generated_at", "digest")}
    return json.dumps(body, ensure_ascii=False)


def test_the_typed_report_is_what_build_report_writes() -> None:
    tests = passing_tests(**{"CFG-2": {"outcome": "failed", "message": "gap 85 s"}})
    typed = model.build(run_info(), copy.deepcopy(tests))
    assert isinstance(typed, Report) and isinstance(typed.run, RunInfo)
    assert all(isinstance(r, RequirementVerdict) for r in typed.requirements)
    assert all(isinstance(g, OrGroupVerdict) for g in typed.groups)
    assert all(isinstance(t, TestResult) and isinstance(t.verdict, Verdict) for t in typed.tests)
    cfg2 = next(r for r in typed.requirements if r.id == "CFG-2")
    assert cfg2.verdict is Verdict.FAIL and cfg2.tests[0].message == "gap 85 s"
    sealed = model.seal(typed)
    assert list(sealed) == TOP_LEVEL
    assert model.digest_ok(sealed)
    assert _without_times(sealed) == _without_times(model.build_report(run_info(), copy.deepcopy(tests)))


def test_records_and_hand_written_dicts_make_the_same_report() -> None:
    tests = passing_tests()
    records = [TestRecord.from_mapping(t) for t in tests]
    assert _without_times(model.build_report(run_info(), records)) == _without_times(model.build_report(run_info(), tests))


def test_the_harness_error_flag_not_the_message_decides() -> None:
    said = TestRecord("t::a", verdict=Verdict.INCOMPLETE, message="harness error (a suite quoting these words)")
    flagged = TestRecord("t::b", verdict=Verdict.INCOMPLETE, message="KeyError: 'x'", harness_error=True)
    assert not _harness_broke([said], {})
    assert _harness_broke([flagged], {})
    assert not _harness_broke([TestRecord("t::c", verdict=Verdict.FAIL, harness_error=True)], {})  # a finding decided
    assert _harness_broke([said], {"harness_errors": [{"error": "KeyError"}]})


HARNESS_BUGS = '''
import pytest
from harness.drivers.base import RigError

@pytest.fixture
def broken_setup(charger):
    {}["missing"]

@pytest.fixture
def broken_teardown(charger):
    yield
    {}["missing"]

@pytest.mark.requirement("CORE-1")
def test_body(charger):
    BODY
'''


@pytest.mark.parametrize(
    ("body", "status", "why"),
    [
        ('{}["missing"]', 3, "harness error (the charger was not judged)"),
        ('raise RigError("relay stuck", act="plug_in")', 6, "rig error in the act 'plug_in'"),
        ("pass\n\n@pytest.mark.requirement('ST-1')\ndef test_setup(broken_setup):\n    pass", 3, "harness error in setup"),
        ("pass\n\n@pytest.mark.requirement('ST-1')\ndef test_teardown(broken_teardown):\n    pass", 3,
         "harness error in teardown"),
    ],
    ids=["harness-in-body", "rig-in-body", "harness-in-setup", "harness-in-teardown"],
)
def test_a_harness_exception_makes_the_harness_error_exit_status(pytester: pytest.Pytester, body: str, status: int,
                                                                 why: str) -> None:
    """docs/rules-verdicts.md: incomplete because of the harness itself exits 3, because of the rig 6."""
    result, report, _ = run_collector(pytester, HARNESS_BUGS.replace("BODY", body))
    assert result.ret == status, result.stdout.str()
    assert report["run"]["exit_status"] == status
    messages = [t.get("message") or "" for r in report["requirements"] for t in r["tests"]]
    assert any(m.startswith(why) for m in messages), messages
