"""Where the plugin leaves what the report collects (pytest stash keys), and how a test phase's payload
travels from a pytest-xdist worker to the controller."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest


class StashedEvidence(TypedDict):
    """A test's evidence as the plugin keeps it: its frames (Trace entries' as_dict()) and its details."""

    frames: list[dict[str, object]]
    details: dict[str, Any]  # what the test recorded (ChargerSession.details: free-form facts for the report)


class StashedFinding(TypedDict):
    """One advisory finding of a test (ChargerSession.advise, filed by the plugin)."""

    requirement: str
    message: str
    seq: int | None  # the frame it is about, if any


class RunSection(TypedDict):
    """Frames outside every test's evidence (a set-up, a teardown), filed with the test they ran for."""

    title: str
    phase: str
    nodeid: str
    frames: list[dict[str, object]]


#: The run's facts, a dict the plugin keeps up to date (charger, endpoint, mode, TLS, connection attempts,
#: declarations, secrets); see SCHEMA.md. JSON-like and open-ended (workers' snapshots merge into it):
#: report.types.RunInfo is its typed reading.
RUN_INFO = pytest.StashKey[dict[str, Any]]()
#: Set by the plugin (a collected test uses the harness) or by suites/conftest.py (certification
#: suites were asked for, even if they then fail to collect): only then is a report written.
CERTIFICATION_RUN = pytest.StashKey[bool]()
#: Per test: ``{"frames": [...], "details": {...}}``.
EVIDENCE = pytest.StashKey[StashedEvidence]()
#: Per test: its advisory findings, ``[{"requirement", "message", "seq"}]`` (the plugin fills it).
FINDINGS = pytest.StashKey[list[StashedFinding]]()
#: Per test: run-level sections of the trace not yet reported (its set-up before its evidence, its
#: teardown): ``[{"title", "phase", "nodeid", "frames"}]`` (the plugin fills it; each phase takes them).
RUN_FRAMES = pytest.StashKey[list[RunSection]]()
#: RUN_INFO key of the frames after the last test (the plugin's sessionfinish puts them there).
RUN_FRAMES_AFTER = "run_frames_after"

#: Name of the report attribute that carries a test phase's payload (worker → controller).
PAYLOAD_ATTR = "ev_energy_report"
