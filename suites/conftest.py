"""The certification suites. The harness plugin (harness.plugin) is loaded by its pytest11 entry point.

Each module checks one requirement group of ev-energy-requirements.md; each test carries
@pytest.mark.requirement(ID) and cites its spec clause (and OCTT case where one matches).
"""

import pytest

from harness.report.collector import CERTIFICATION_RUN


def pytest_configure(config: pytest.Config) -> None:
    # These are certification suites: a report is written even if they fail to collect or run.
    config.stash[CERTIFICATION_RUN] = True
