"""--junitxml: each certification testcase is named by its requirement IDs (docs/rules-ci.md)."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Mapping

import pytest

from .stash import PAYLOAD_ATTR


def junit_name(requirements: list[str] | tuple[str, ...], name: str) -> str:
    """A JUnit testcase's name: the requirement IDs first, so that a CI's test view (GitLab's test report,
    GitHub's JUnit report actions), which lists and sorts testcases by name, groups them by requirement:
    ``ST-1: test_status_transitions``, ``SC-2, ST-4: test_tx_profile_limits``."""
    return f"{', '.join(requirements)}: {name}" if requirements else name


class JUnitRequirements:
    """--junitxml: each certification testcase carries its requirement IDs in its name (see junit_name) and,
    from the collector, a ``requirement`` property per ID (docs/rules-ci.md). The name uses the IDs the test
    is marked with, so that a CI's history follows the same testcase from run to run; the properties say
    where a finding was filed (a §4.9 transition seen in an SC-2 test is ST-1's)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, None, None]:
        result = yield
        payload = getattr(report, PAYLOAD_ATTR, None)
        marked = list(payload.get("marked") or []) if isinstance(payload, Mapping) else []
        # The phases after which junitxml has opened the testcase (a passed setup opens none); it writes the
        # testcase out at teardown, keeping the attributes set here.
        if marked and (report.when == "call" or (report.when == "setup" and not report.passed)):
            with contextlib.suppress(Exception):  # pytest's junitxml internals: best effort, never break a run
                from _pytest.junitxml import bin_xml_escape, mangle_test_address, xml_key

                xml = self.config.stash.get(xml_key, None)
                if xml is not None:
                    reporter = xml.node_reporter(report)
                    reporter.attrs["name"] = bin_xml_escape(junit_name(marked, mangle_test_address(report.nodeid)[-1]))
        return result
