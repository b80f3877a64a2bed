"""Positive and negative controls for CFG-1, CFG-2, MV-1, MV-2 and MV-3.

Each control runs the real suites (test_configuration.py, test_meter_values.py and NF-2's
test_offline.py together, so a defect of one group is seen not to fail the other) against the
reference charger. MV-1/2/3 and CFG-2 are judged on the run's metered session, which NF-2's test
records with its connection loss (harness/metered_session/): each defect about time or content
must still fail its requirement when part of its evidence is the offline window's samples:
- without a defect, and with each conformant variant of these requirements: everything passes;
- with each defect: exactly the requirement it breaks fails, the others pass.

MV-3 judges the power values; when a charger reports no power at all (the MV-1 defects) there is
nothing for it to judge, so it is "not tested" (not "pass", and not a second failure).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.sim.defects import DEFECTS
from tests.controls.runner import SuiteRun, run_suites

SUITES = ["suites/test_configuration.py", "suites/test_meter_values.py", "suites/test_offline.py"]
MINE = ("CFG-1", "CFG-2", "MV-1", "MV-2", "MV-3", "NF-2")
#: NF-2's defects on the shared session: NF-2 fails; MV/CFG-2 judge what arrived, never fail for what NF-2 lost.
NF2_DEFECTS = ("loses-offline-stop", "no-offline-queue", "loses-in-flight-message", "late-queue-flush")

# defects injected -> the one requirement that must fail
NEGATIVE: dict[tuple[str, ...], str] = {
    ("no-power-measurand",): "MV-1",
    # The defect is a Current+Voltage meter's; on the reference's power meter Power.Active.Import
    # is still reported and MV-1 holds through it, so it is injected into the Current+Voltage variant.
    ("current-voltage", "current-without-voltage"): "MV-1",
    ("rejects-sampled-data",): "CFG-1",
    ("ignores-sample-interval",): "CFG-2",
    ("rejects-sample-interval",): "CFG-2",
    ("energy-decreasing",): "MV-2",
    ("wrong-energy-units",): "MV-2",
    ("meter-stop-below-start",): "MV-2",
    ("power-not-zero-when-suspended",): "MV-3",
    ("power-mismatch-energy",): "MV-3",
}
NO_POWER = {("no-power-measurand",), ("current-voltage", "current-without-voltage")}
VARIANTS = ("current-voltage", "kw-units", "single-phase")


def _verdicts(run: SuiteRun) -> dict[str, str]:
    verdicts = run.verdicts()
    missing = [r for r in MINE if r not in verdicts]
    assert not missing, f"no verdict for {missing}\n{run.explain()}"
    return {r: verdicts[r] for r in MINE}


def _alternative(run: SuiteRun, requirement: str) -> str | None:
    for entry in run.report.get("requirements", []):
        if entry.get("id") == requirement:
            return entry.get("alternative")
    return None


def test_the_table_covers_the_catalogue() -> None:
    """Every defect and conformant variant the catalogue ties to these requirements has a control."""
    defects = {n for n, d in DEFECTS.items() if not d.conformant and d.requirement_id in MINE and d.requirement_id != "NF-2"}
    assert defects == {names[-1] for names in NEGATIVE}
    assert all(DEFECTS[names[-1]].requirement_id == req for names, req in NEGATIVE.items())
    variants = {n for n, d in DEFECTS.items() if d.conformant and d.requirement_id in MINE and d.requirement_id != "NF-2"}
    assert variants == set(VARIANTS)


def test_reference_charger_passes(tmp_path: Path, certs_dir: Path) -> None:
    run = run_suites(SUITES, tmp_path, certs_dir=certs_dir)
    assert run.failing() == set(), run.explain()
    assert _verdicts(run) == {r: "pass" for r in MINE}, run.explain()
    assert _alternative(run, "MV-1") == "Power.Active.Import", run.explain()


@pytest.mark.parametrize("variant", VARIANTS)
def test_conformant_variant_passes(variant: str, tmp_path: Path, certs_dir: Path) -> None:
    run = run_suites(SUITES, tmp_path, defects=(variant,), certs_dir=certs_dir)
    assert run.failing() == set(), run.explain()
    assert _verdicts(run) == {r: "pass" for r in MINE}, run.explain()
    if variant == "current-voltage":
        assert _alternative(run, "MV-1") == "Current.Import+Voltage", run.explain()
        assert _alternative(run, "CFG-1") == "Current.Import+Voltage", run.explain()


@pytest.mark.parametrize("defects", list(NEGATIVE), ids=lambda names: "+".join(names))
def test_defect_fails_exactly_its_requirement(defects: tuple[str, ...], tmp_path: Path, certs_dir: Path) -> None:
    expected = NEGATIVE[defects]
    run = run_suites(SUITES, tmp_path, defects=defects, certs_dir=certs_dir)
    assert run.failing() == {expected}, run.explain()
    wanted = {r: "pass" for r in MINE}
    wanted[expected] = "fail"
    if defects in NO_POWER:
        wanted["MV-3"] = "not tested"  # no power to judge: MV-1's failure, not a second one
    assert _verdicts(run) == wanted, run.explain()


@pytest.mark.parametrize("defect", NF2_DEFECTS)
def test_offline_defects_fail_only_nf2_on_the_shared_session(defect: str, tmp_path: Path, certs_dir: Path) -> None:
    """What NF-2's window loses is NF-2's failure: MV-1/2/3 and CFG-2 judge the readings that did arrive (a reading
    they cannot have is "not tested", never a failure); a late flush (conformant) fails nothing."""
    run = run_suites(SUITES, tmp_path, defects=(defect,), certs_dir=certs_dir)
    expected = set() if DEFECTS[defect].conformant else {"NF-2"}
    assert run.failing() == expected, run.explain()
    assert {r for r, v in _verdicts(run).items() if v not in ("pass", "not tested")} == expected, run.explain()


# --- harness/meter.py: the readings the controls rely on (fast, no charger) ------------------------

import datetime as _dt  # noqa: E402
from decimal import Decimal  # noqa: E402

from harness import meter  # noqa: E402


def _entry(*values: dict, timestamp: str = "2024-05-01T10:00:00.000Z") -> dict:
    return {"timestamp": timestamp, "sampledValue": list(values)}


def test_meter_current_times_voltage_per_phase_line_to_line_and_neutral() -> None:
    per_phase = meter.samples([_entry(
        *({"value": "16", "measurand": "Current.Import", "unit": "A", "phase": p} for p in ("L1", "L2", "L3")),
        {"value": "3", "measurand": "Current.Import", "unit": "A", "phase": "N"},  # the neutral is not a phase
        *({"value": "230", "measurand": "Voltage", "unit": "V", "phase": p} for p in ("L1-N", "L2-N", "L3-N")),
    )])
    assert meter.power_w(per_phase) == (Decimal(3 * 16 * 230), meter.VIA_CURRENT_VOLTAGE)
    line_to_line = meter.samples([_entry(
        {"value": "10", "measurand": "Current.Import", "unit": "A", "phase": "L1"},
        {"value": "400", "measurand": "Voltage", "unit": "V", "phase": "L1-L2"},
    )])
    watts, _ = meter.power_w(line_to_line)
    assert watts is not None and abs(watts - Decimal(4000) / Decimal(3).sqrt()) < Decimal("0.01")
    no_voltage = meter.samples([_entry({"value": "16", "measurand": "Current.Import", "unit": "A"})])
    assert meter.power_w(no_voltage) == (None, meter.ABSENT)


def test_meter_units_resolution_and_unreadable_values() -> None:
    errors: list[meter.MeterFormatError] = []
    found = meter.samples([_entry(
        {"value": "1000.12", "unit": "kWh"},  # no measurand: the energy register
        {"value": "7.4", "measurand": "Power.Active.Import", "unit": "kW"},
        {"value": "n/a", "measurand": "Voltage", "unit": "V"},
        {"value": "AB12==", "format": "SignedData"},  # opaque: skipped, not an error
    )], errors=errors)
    assert [str(e) for e in errors] == ["Voltage value 'n/a' is not a number"]
    assert meter.energy_wh(found) == Decimal("1000120")
    assert meter.energy_registers(found)[0].resolution == Decimal(10)
    assert meter.power_w(found) == (Decimal("7400.0"), meter.VIA_POWER)
    wrong = meter.samples([_entry({"value": "5", "measurand": "Power.Active.Import", "unit": "Wh"})])
    with pytest.raises(meter.MeterFormatError):
        meter.power_w(wrong)


def test_meter_measurand_lists_and_timestamps() -> None:
    assert meter.measurand_set(" energy.active.import.register , Power.Active.Import,") == {
        "Energy.Active.Import.Register", "Power.Active.Import"}
    assert meter.measurand_set("Current.Import,Voltage.L1,Voltage.L2") == {"Current.Import", "Voltage"}
    assert meter.timestamp_resolution(["2024-05-01T10:00:00Z"]) == 1.0
    assert meter.timestamp_resolution(["2024-05-01T10:00:00.123+02:00", "2024-05-01T10:00:01.1Z"]) == 0.1


def test_meter_power_integral_and_its_sampling_bound() -> None:
    t0 = _dt.datetime(2024, 5, 1, tzinfo=_dt.timezone.utc)
    series = [(t0 + _dt.timedelta(seconds=s), Decimal(w)) for s, w in ((0, 3600), (1, 3600), (2, 0))]
    result = meter.integrate_power(series)
    assert result.wh == Decimal("1.5")  # 1 Wh steady + the half-window of the step
    assert result.granularity_wh == Decimal("0.5")  # the step may lie anywhere in its window
    assert result.seconds == 2.0
