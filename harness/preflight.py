"""Set-up problems found before the first test, each as one line naming the thing and the fix.

A port in use, a certificates folder the harness cannot use, or a control URL nobody serves would otherwise
fail every test's set-up with the same traceback and overwrite the previous report with an empty
"incomplete". The harness plugin runs :func:`check` when pytest is configured (in the controller, before
pytest-xdist starts workers); a problem is a ``pytest.UsageError``: pytest prints ``ERROR: <the line>``,
exits with status 4 (usage error) and writes no report, so the previous one stays (docs/rules-first-hour.md).
Checks have no side effect: nothing is created, nothing is kept open.
"""

from __future__ import annotations

import errno
import os
import socket
import urllib.parse
from pathlib import Path

import pytest

from harness.settings import Settings

#: Seconds to wait for the rig's control server to accept a TCP connection.
CONTROL_CONNECT_TIMEOUT = 3.0


def check(settings: Settings, *, workers: int = 0) -> None:
    """Raise pytest.UsageError (one line) for the first set-up problem found; `workers`: pytest-xdist's -n."""
    if workers and settings.charger != "sim":
        raise pytest.UsageError(
            f"pytest-xdist (-n {workers}) runs one charger per worker: only --charger sim can do that, not "
            f"--charger {settings.charger}: drop -n to certify one {settings.charger} charger"
        )
    if workers and settings.csms_port:
        raise pytest.UsageError(
            f"pytest-xdist (-n {workers}) starts one endpoint per worker: they cannot all listen on port "
            f"{settings.csms_port}: leave --csms-port at 0 (any free port) or drop -n"
        )
    _port(settings.csms_host, settings.csms_port)
    _certs(Path(settings.certs_dir))
    if settings.charger == "http" and settings.charger_control_url:
        _control_url(settings.charger_control_url)


def _port(host: str, port: int) -> None:
    if not port:
        return  # any free port: nothing can be in the way
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the endpoint binds it
        try:
            probe.bind((host, port))
        except PermissionError:
            raise pytest.UsageError(
                f"port {port} needs administrator rights on this machine: choose --csms-port above 1023 "
                "(and point the charger at it)"
            ) from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise pytest.UsageError(
                    f"port {port} is in use by another process: choose --csms-port or stop it"
                    f" (e.g. `ss -ltnp 'sport = :{port}'` shows which)"
                ) from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise pytest.UsageError(
                    f"--csms-host {host} is not an address of this machine: choose one of its addresses, "
                    "or 0.0.0.0 for every interface"
                ) from None
            raise pytest.UsageError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): choose --csms-host/--csms-port") from None


def _certs(directory: Path) -> None:
    fix = "choose another --certs-dir"
    if directory.exists() and not directory.is_dir():
        raise pytest.UsageError(f"certificates folder {directory} is not a folder: {fix}")
    if not directory.exists():
        parent = directory.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise pytest.UsageError(
                f"certificates folder {directory} does not exist and cannot be created in {parent} "
                f"(permission denied): {fix}, or create it"
            )
        return
    try:
        os.listdir(directory)
        for name in ("ca.pem", "ca.key"):
            path = directory / name
            if path.exists():
                path.read_bytes()
    except PermissionError as exc:
        raise pytest.UsageError(
            f"certificates folder {directory} cannot be read ({exc.strerror}: {exc.filename}): give this user read "
            f"and write access to it (e.g. chmod -R u+rwX {directory}) or {fix}"
        ) from None
    except OSError as exc:
        raise pytest.UsageError(f"certificates folder {directory} cannot be read ({exc.strerror or exc}): {fix}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise pytest.UsageError(
            f"certificates folder {directory} cannot be written (the harness keeps its server certificates there): "
            f"give this user write access (e.g. chmod u+rwX {directory}) or {fix}"
        )
    ca = directory / "ca.pem"
    if ca.exists():
        from cryptography import x509

        try:
            x509.load_pem_x509_certificate(ca.read_bytes())
        except ValueError:
            raise pytest.UsageError(
                f"{ca} is not a PEM certificate: restore it, or {fix} (a new CA: the charger must then trust the "
                "new ca.pem)"
            ) from None


def _control_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise pytest.UsageError(f"--charger-control-url {url!r} is not an http:// or https:// URL: correct it")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise pytest.UsageError(f"--charger-control-url {url!r} has no valid port: correct it") from None
    try:
        with socket.create_connection((parts.hostname, port), timeout=CONTROL_CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        why = "connection refused" if isinstance(exc, ConnectionRefusedError) else (
            f"no answer within {CONTROL_CONNECT_TIMEOUT:g} s" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        )
        raise pytest.UsageError(
            f"nothing answers at the charger control URL {url} ({why}): start the rig's control server "
            "(the reference charger: python -m harness.sim ... --control-port PORT) or correct --charger-control-url"
        ) from None
