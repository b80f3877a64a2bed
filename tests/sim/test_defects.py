"""The defect names as an enum (harness/sim/defects.py DefectName) stay in step with the catalogue."""

from __future__ import annotations

from harness.sim.defects import DEFECTS, DefectName


def test_enum_matches_catalogue() -> None:
    # Each check site uses DefectName; a catalogue entry without a member (or a member without an
    # entry) would be a defect no one can inject, or a flag no check reads.
    assert {m.value for m in DefectName} == set(DEFECTS)


def test_members_equal_their_cli_names() -> None:
    # `--sim-defect` and the control rows pass plain strings: a member must match them in a frozenset.
    assert DefectName.TLS13_ONLY == "tls13-only"
    assert DefectName.TLS13_ONLY in frozenset({"tls13-only"})
