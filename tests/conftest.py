"""Shared helpers for the harness's own tests: a real endpoint on loopback and raw WSS clients."""

from __future__ import annotations

import os
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

