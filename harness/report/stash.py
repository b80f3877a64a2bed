"""Where the plugin leaves what the report collects (pytest stash keys), and how a test phase's payload
travels from a pytest-xdist worker to the controller."""

from __future__ import annotations

import pytest

#: The run's facts, a dict the plugin keeps up to date (charger, endpoint, mode, TLS, connection attempts,
#: declarations, secrets); see SCHEMA.md.
RUN_INFO = pytest.StashKey[dict]()
#: Set by the plugin (a collected test uses the harness) or by suites/conftest.py (certification
#: suites were asked for, even if they then fail to collect): only then is a report written.
CERTIFICATION_RUN = pytest.StashKey[bool]()
#: Per test: ``{"frames": [...], "details": {...}}``.
EVIDENCE = pytest.StashKey[dict]()
#: Per test: its advisory findings, ``[{"requirement", "message", "seq"}]`` (the plugin fills it).
FINDINGS = pytest.StashKey[list]()
#: Per test: run-level sections of the trace not yet reported (its set-up before its evidence, its
#: teardown): ``[{"title", "phase", "nodeid", "frames"}]`` (the plugin fills it; each phase takes them).
RUN_FRAMES = pytest.StashKey[list]()
#: RUN_INFO key of the frames after the last test (the plugin's sessionfinish puts them there).
RUN_FRAMES_AFTER = "run_frames_after"

#: Name of the report attribute that carries a test phase's payload (worker → controller).
PAYLOAD_ATTR = "ev_energy_report"
