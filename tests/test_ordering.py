"""The certification suites run in critical-path order (harness/ordering.py, docs/rules-timing.md),
for the whole set and for any subset a user selects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.ordering import STAGES, Stage

ROOT = Path(__file__).resolve().parent.parent
NF2 = "suites/test_offline.py::test_offline_transaction_messages_are_delivered"
RECONNECT_HEARTBEAT = "suites/test_offline.py::test_heartbeats_continue_after_reconnect"
HEARTBEAT = "suites/test_boot.py::test_heartbeat_at_the_given_interval"


def _collected(tmp_path: Path, *args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "--report-dir", str(tmp_path / "report"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if "::" in line]


def _index(ids: list[str], prefix: str) -> list[int]:
    return [i for i, nodeid in enumerate(ids) if nodeid.startswith(prefix)]


def test_full_run_order(tmp_path: Path) -> None:
    ids = _collected(tmp_path, "suites/")
    configuration = _index(ids, "suites/test_configuration.py")
    metered = _index(ids, "suites/test_meter_values.py")
    nf2 = ids.index(NF2)
    assert set(ids[:3]) == {"suites/test_core.py::test_charger_registers",
                            "suites/test_boot.py::test_boot_notification_is_schema_valid",
                            "suites/test_boot.py::test_status_for_every_connector_after_boot"}
    assert max(configuration) < nf2 < min(metered), "configuration, then NF-2 (records the session), then MV"
    assert max(metered) + 1 == min(i for i, n in enumerate(ids) if n not in ids[: max(metered) + 1]), "MV together"
    assert set(ids[-2:]) == {HEARTBEAT, RECONNECT_HEARTBEAT}, "the record-judged checks last"
    # Stable: the rest keeps file order.
    rest = [n for n in ids if n.startswith("suites/test_status.py") or n.startswith("suites/test_smart_charging.py")]
    assert rest == sorted(rest, key=lambda n: (not n.startswith("suites/test_smart_charging.py"), ids.index(n)))


@pytest.mark.parametrize("selection", [
    ("suites/test_meter_values.py", "suites/test_offline.py"),
    ("suites/", "-k", "offline or interval or energy"),
    ("suites/test_offline.py", "suites/test_boot.py"),
])
def test_a_subset_keeps_the_order(tmp_path: Path, selection: tuple[str, ...]) -> None:
    ids = _collected(tmp_path, *selection)
    assert ids, "nothing collected"
    if NF2 in ids:
        assert all(ids.index(NF2) < i for i in _index(ids, "suites/test_meter_values.py"))
    late = [i for i, n in enumerate(ids) if n in (HEARTBEAT, RECONNECT_HEARTBEAT)]
    assert late == list(range(len(ids) - len(late), len(ids))), ids


def test_every_stage_entry_names_a_real_test() -> None:
    """The table cannot drift from the suites: each (file, function) it names exists."""
    for (file, function), stage in STAGES.items():
        path = ROOT / "suites" / file
        assert path.exists(), file
        assert isinstance(stage, Stage)
        if function != "*":
            assert f"def {function}(" in path.read_text(), (file, function)


def test_user_tests_keep_pytests_order(pytester: pytest.Pytester) -> None:
    """Only the certification suites are reordered: a user's own tests (not under suites/) keep pytest's order."""
    pytester.makepyfile(test_b="def test_offline_transaction_messages_are_delivered():\n    pass\n",
                        test_a="def test_heartbeat_at_the_given_interval():\n    pass\n")
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider",
                                "--report-dir", str(pytester.path / "report"))
    lines = [line for line in result.outlines if "::" in line]
    assert lines == ["test_a.py::test_heartbeat_at_the_given_interval",
                     "test_b.py::test_offline_transaction_messages_are_delivered"]
