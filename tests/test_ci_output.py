"""CI output (harness/ci.py, docs/rules-ci.md): when it is on, the Markdown summary, the last verdict line.
The whole of it in real runs: tests/test_ci_examples.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import ci
from harness.settings import ci_from_environment


def _report(**overall: Any) -> dict[str, Any]:
    return {
        "overall": "not certified",
        "overall_reason": "mandatory requirements failed: ST-3",
        "run": {"mode": "quick", "backend": "command"},
        "charger": {"id": "CP-<b>1</b>"},
        "requirements": [
            {"id": "ST-1", "title": "Status", "blocking": True, "verdict": "pass", "reason": "1 test passed"},
            {"id": "ST-3", "title": "Faulted", "blocking": True, "verdict": "fail",
             "reason": "expected Faulted, got <script>alert(1)</script> [x](http://evil)"},
            {"id": "MV-3", "title": "Power", "blocking": True, "verdict": "not tested", "reason": "the rig cannot: ev"},
            {"id": "SC-1", "title": "Profiles", "blocking": True, "verdict": "not tested",
             "reason": "not selected in this run"},
            {"id": "NF-1", "title": "Support", "blocking": False, "verdict": "not tested", "reason": "statement"},
        ],
        "advisory_requirements": [{"id": "ADV-1", "findings": [{"message": "m"}]}],
        **overall,
    }


@pytest.mark.parametrize(("value", "on"), [("true", True), ("1", True), ("TRUE", True), ("false", False), ("", False)])
def test_ci_is_detected_from_the_environment(value: str, on: bool) -> None:
    assert ci_from_environment({"CI": value}) is on
    assert ci_from_environment({}) is False


def test_summary_lists_what_kept_the_run_from_passing_and_escapes_the_charger() -> None:
    text = ci.markdown_summary(_report(), 1, [Path("reports/certification.json"), Path("reports/certification.html")])
    assert text.startswith("### ❌ ev.energy OCPP 1.6J: NOT CERTIFIED")
    rows = [line for line in text.splitlines() if line.startswith("| **")]
    assert [r.split("**")[1] for r in rows] == ["ST-3", "MV-3"]  # failed first; not NF-1, not the unselected SC-1
    assert "<script>" not in text and "\\<script\\>" in text and "\\[x\\]" in text and "\\<b\\>" in text
    assert "1 advisory finding(s)" in text and "`reports/certification.html`" in text and "exit status 1" in text


def test_verdict_line() -> None:
    line = ci.verdict_line(_report(), 1, [Path("reports/certification.json"), Path("reports/certification.html")])
    assert line == (
        "ev.energy verdict: NOT CERTIFIED (exit status 1: failed); fail: ST-3; not tested: MV-3; "
        "report: reports/certification.html"
    )


def test_summaries_go_to_the_report_folder_and_github(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    step = tmp_path / "step.md"
    step.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    path = ci.write_summaries(_report(overall="rehearsal passed"), 0, [], tmp_path / "reports")
    assert path == tmp_path / "reports" / "summary.md"
    assert step.read_text().startswith("earlier step\n### ✅")  # appended, never overwritten
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    ci.write_summaries(None, None, [], tmp_path / "r2", error="OSError: disk full")
    assert "NOT written" in (tmp_path / "r2" / "summary.md").read_text()


class _Config:
    def __init__(self, color: str) -> None:
        self.option = type("Option", (), {"color": color})()


@pytest.mark.parametrize(
    ("color", "environ", "wanted"),
    [
        ("auto", {"CI": "true"}, False),  # a CI whose log may not render colour: plain
        ("auto", {"CI": "true", "GITHUB_ACTIONS": "true"}, True),
        ("auto", {"CI": "true", "GITLAB_CI": "true"}, True),
        ("auto", {"GITLAB_CI": "true", "NO_COLOR": "1"}, False),
        ("no", {"GITHUB_ACTIONS": "true"}, False),
        ("yes", {"CI": "true"}, True),
        ("auto", {"CI": "true", "PY_COLORS": "1"}, True),
    ],
)
def test_colour_only_where_the_ci_renders_it_or_it_is_asked_for(color: str, environ: dict[str, str], wanted: bool) -> None:
    assert ci.colour_wanted(_Config(color), environ) is wanted


def test_the_stand_in_emulator_reads_its_key_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m harness.sim --password-env NAME` (examples/ci/emulator.sh): the key never on a command line.
    The working path is exercised by tests/test_ci_examples.py; here, the refusals."""
    from harness.sim.__main__ import main

    monkeypatch.delenv("NO_SUCH_KEY_VARIABLE", raising=False)
    base = ["--url", "wss://127.0.0.1:9/ocpp", "--id", "CP-1"]
    with pytest.raises(SystemExit) as exited:
        main([*base, "--password-env", "NO_SUCH_KEY_VARIABLE"])
    assert exited.value.code == 2 and "NO_SUCH_KEY_VARIABLE" in capsys.readouterr().err
    monkeypatch.setenv("A_KEY", "00" * 20)
    with pytest.raises(SystemExit) as exited:
        main([*base, "--password", "x", "--password-env", "A_KEY"])
    assert exited.value.code == 2 and "not both" in capsys.readouterr().err
