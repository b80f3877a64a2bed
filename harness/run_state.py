"""What the plugin's rooms share about one pytest run: the keys of `config.stash` / `item.stash`, the run's state
(`RunState`), and `tell`, the operator's line. The plugin's rooms: harness/plugin.py (the hooks),
harness/fixtures.py (`csms`, `charger_backend`, `charger`), harness/guard.py (each test's bound, evidence and
findings), harness/isolation.py (putting the charger back between tests). The run's Settings are stashed under
harness.settings.SETTINGS; the report's keys (RUN_INFO, EVIDENCE, ...) are harness/report/collector.py's.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import pytest

from harness.progress import StatusLine
from harness.session import ChargerSession

STATE = pytest.StashKey["RunState"]()
TEST_START = pytest.StashKey[int]()
NEXT_ITEM = pytest.StashKey["pytest.Item | None"]()
SILENT_AT_SETUP = pytest.StashKey[str]()  # the silence cause when the `charger` fixture met a silent charger
PREPARE_BAD_CERTIFICATES = pytest.StashKey[bool]()
CURRENT_ITEM = pytest.StashKey["pytest.Item | None"]()
STATUS_LINE = pytest.StashKey["StatusLine | None"]()
SIGNALS = pytest.StashKey[bool]()  # this run took SIGINT/SIGTERM (harness/interrupt.py)


@dataclass
class RunState:
    never_connected: str | None = None
    baseline_config: dict[str, str | None] | None = None
    readonly_keys: frozenset[str] = frozenset()
    # (len(status_history), reason) when setup last found the charger stuck busy: not waited for again
    # until a status changes.
    stuck: tuple[int, str] | None = None
    # The charger's session (its trace is the run's), once a test has met it, and the first trace seq not yet
    # in any test's evidence or run-level section (trace seqs start at 1).
    session: ChargerSession | None = None
    accounted: int = 1
    faults_taken: int = 0  # harness faults of the session already filed with a test (or the run)


def tell(config: pytest.Config, text: str, **markup: bool) -> None:
    """Show a line to the operator now, even under output capture."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    ctx = capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext()
    status = config.stash.get(STATUS_LINE, None)
    with ctx:
        if status is not None:
            status.erase()  # a line rewritten in place is not written over (its next tick draws it again)
        reporter.write_line(f"[harness {time.strftime('%H:%M:%S')}] {text}", **markup)
