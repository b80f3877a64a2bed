"""Shared helpers for the harness's own tests: a real endpoint on loopback and raw WSS clients."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from harness import tls
from harness.endpoint import Endpoint, EndpointConfig
from harness.session import SessionSettings

pytest_plugins = ["pytester"]

# The harness's own tests run certification runs inside them (pytester, subprocesses) that inherit this
# environment. On a CI runner those would switch to CI output (colour on GitHub/GitLab, a last verdict line:
# docs/rules-ci.md) and append their summaries to the job's $GITHUB_STEP_SUMMARY. They must behave as on a
# developer's machine; tests/test_ci_examples.py gives its runs a CI environment of their own.
for _name in ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "GITHUB_STEP_SUMMARY"):
    os.environ.pop(_name, None)

from tests.helpers import CHARGER_ID, KEY

# The harness's own tests never write into the user's reports/ (docs/rules-first-hour.md): every run they start
# (in-process with pytester, or a subprocess, which inherits the environment) that names no --report-dir writes
# into a temporary folder instead, and the session fails if the project's reports/ changed anyway.
USER_REPORTS = Path(__file__).resolve().parent.parent / "reports"
if "PYTEST_XDIST_WORKER" not in os.environ:  # workers inherit the controller's
    os.environ["HARNESS_REPORT_DIR"] = tempfile.mkdtemp(prefix="harness-tests-reports-")


def _reports_snapshot() -> dict[str, tuple[int, int]]:
    if not USER_REPORTS.is_dir():
        return {}
    return {
        str(p.relative_to(USER_REPORTS)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in USER_REPORTS.rglob("*") if p.is_file()
    }


_REPORTS_BEFORE = _reports_snapshot()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):
        return
    temporary = os.environ.get("HARNESS_REPORT_DIR", "")
    if Path(temporary).name.startswith("harness-tests-reports-"):
        shutil.rmtree(temporary, ignore_errors=True)  # the reports the tests' runs wrote there
    if _reports_snapshot() != _REPORTS_BEFORE:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"ERROR: a test wrote into the user's report folder {USER_REPORTS}: give its run a --report-dir "
                "in a temporary folder", red=True,
            )


@pytest.fixture(autouse=True)
def _inner_runs_set_the_loop_scopes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner pytest runs (pytester) do not read this project's pyproject.toml: give them its loop
    scopes, as a project using the harness would have them, so pytest-asyncio does not warn."""
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")  # first: it clears PYTEST_ADDOPTS for isolation
        extra = "-o asyncio_default_fixture_loop_scope=session -o asyncio_default_test_loop_scope=session"
        monkeypatch.setenv("PYTEST_ADDOPTS", f"{os.environ.get('PYTEST_ADDOPTS', '')} {extra}".strip())


@pytest.fixture(scope="session")
def certs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CA for the whole test session (key generation is the slow part)."""
    directory = tmp_path_factory.mktemp("certs")
    tls.CertStore(directory).ensure()
    return directory


@pytest_asyncio.fixture(loop_scope="session")
async def endpoint(certs_dir: Path) -> AsyncIterator[Endpoint]:
    ep = Endpoint(
        EndpointConfig(certs_dir=certs_dir, handshake_timeout=3, session=SessionSettings(call_timeout=1.0))
    )
    await ep.start()
    ep.register(CHARGER_ID, KEY)
    try:
        yield ep
    finally:
        await ep.stop()

