"""Keys of pytest's config stash that more than one harness module reads.

The plugin (harness/plugin.py) puts the run's settings here; the report collector
(harness/report/collector.py) reads them for the report folder. The key lives in this module of
its own so that the report never imports the plugin: the plugin depends on the report, not the
other way round.
"""

from __future__ import annotations

import pytest

from harness.settings import Settings

#: The run's one settings object, built at pytest_configure (CLI > ini > charger profile).
SETTINGS = pytest.StashKey[Settings]()
