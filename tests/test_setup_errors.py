"""Set-up errors in one line (docs/rules-first-hour.md): found before the first test, one line naming the thing and
the fix, exit status 4 (usage error), and the previous report left alone. Real subprocesses, real sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SUITE = '''
import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.requirement("CORE-1")
async def test_boots(charger):
    assert charger.boot is not None
'''


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.fixture
def unserved_url() -> str:
    with socket.socket() as s:  # a port nobody listens on once this closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path, bytes]:
    (tmp_path / "test_suite.py").write_text(SUITE)
    reports = tmp_path / "reports"
    reports.mkdir(exist_ok=True)
    previous = b'{"an earlier run": true}\n'
    (reports / "certification.json").write_bytes(previous)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--report-dir", str(reports),
         "--authorization-key", "00" * 20, *args, "test_suite.py"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
    )
    return result, reports, previous


def _one_line(result: subprocess.CompletedProcess[str], reports: Path, previous: bytes) -> str:
    output = result.stdout
    assert result.returncode == 4, output  # pytest's usage error
    errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1, output
    assert "Traceback" not in output and "collected" not in output, output  # before the first test
    assert (reports / "certification.json").read_bytes() == previous  # the previous report left alone
    assert not (reports / "history").exists()
    return errors[0]


def test_a_port_in_use(tmp_path: Path, certs_dir: Path, busy_port: int) -> None:
    line = _one_line(*_run(tmp_path, "--certs-dir", str(certs_dir), "--csms-port", str(busy_port)))
    assert f"port {busy_port} is in use by another process: choose --csms-port or stop it" in line


def test_a_certificates_folder_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "certs").write_text("not a folder")
    line = _one_line(*_run(tmp_path, "--certs-dir", str(tmp_path / "certs")))
    assert f"certificates folder {tmp_path / 'certs'} is not a folder: choose another --certs-dir" in line


def test_an_unreadable_ca_certificate(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    line = _one_line(*_run(tmp_path, "--certs-dir", str(certs)))
    assert f"{certs / 'ca.pem'} is not a PEM certificate" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every folder whatever its permissions")
def test_an_unreadable_certificates_folder(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    certs.chmod(0)
    try:
        line = _one_line(*_run(tmp_path, "--certs-dir", str(certs)))
    finally:
        certs.chmod(0o700)
    assert f"certificates folder {certs} cannot be read" in line


def test_a_control_url_nobody_serves(tmp_path: Path, certs_dir: Path, unserved_url: str) -> None:
    line = _one_line(*_run(tmp_path, "--certs-dir", str(certs_dir), "--charger", "http",
                           "--charger-control-url", unserved_url))
    assert f"nothing answers at the charger control URL {unserved_url} (connection refused)" in line
    assert "--control-port" in line and "--charger-control-url" in line


def test_with_xdist_the_error_reaches_the_user_the_same_way(
    tmp_path: Path, certs_dir: Path, unserved_url: str
) -> None:
    pytest.importorskip("xdist")
    line = _one_line(*_run(tmp_path, "--certs-dir", str(certs_dir), "-n", "2", "--charger", "http",
                           "--charger-control-url", unserved_url))
    assert "-n 2" in line and "only --charger sim" in line


def test_with_xdist_a_bad_certificates_folder_reaches_the_user_the_same_way(tmp_path: Path, certs_dir: Path) -> None:
    pytest.importorskip("xdist")
    (tmp_path / "certs").write_text("not a folder")
    line = _one_line(*_run(tmp_path, "--certs-dir", str(tmp_path / "certs"), "-n", "2"))
    assert "is not a folder" in line
