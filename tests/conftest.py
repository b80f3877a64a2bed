"""Shared helpers for the harness's own tests: a real endpoint on loopback and raw WSS clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from harness import tls
from harness.endpoint import Endpoint, EndpointConfig
from harness.session import SessionSettings

pytest_plugins = ["pytester"]

from tests.helpers import CHARGER_ID, KEY


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

