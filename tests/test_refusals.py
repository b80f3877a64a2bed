"""Refusals the harness provokes on purpose are shown as expected outcomes; the charger's own refused attempts stay
prominent (docs/rules-first-hour.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness.endpoint import PLAIN_WS, PROBE_USER_AGENT, TLS_FAILED, UNAUTHORIZED, ConnectionAttempt
from harness.fixtures import refusal_text

ROOT = Path(__file__).resolve().parent.parent


def _attempt(outcome: str, charger_id: str = "CP-1", probe: bool = False, detail: str = "") -> ConnectionAttempt:
    headers = {"User-Agent": PROBE_USER_AGENT} if probe else {"User-Agent": "charger-firmware/1.0"}
    return ConnectionAttempt(time="t", peer="127.0.0.1:5", outcome=outcome, charger_id=charger_id, headers=headers,
                             detail=detail)


def test_the_harness_probes_are_expected() -> None:
    text, expected = refusal_text(_attempt(PLAIN_WS, "harness-plain-ws-probe"), ["TLS-2"], bad_certificate=False)
    assert expected and text == "expected refusal (TLS-2 probe by the harness): plain ws:// refused ✓"
    text, expected = refusal_text(_attempt(UNAUTHORIZED, probe=True), ["AUTH-1"], bad_certificate=False)
    assert expected and text == "expected refusal (AUTH-1 probe by the harness): a wrong password refused with HTTP 401 ✓"


def test_a_charger_refusing_a_bad_certificate_presented_on_purpose_is_expected() -> None:
    text, expected = refusal_text(_attempt(TLS_FAILED, detail="alert bad_certificate"), ["TLS-3"], bad_certificate=True)
    assert expected and text.startswith("expected refusal (TLS-3: a bad server certificate presented on purpose)")
    # past TLS over a bad certificate is no refusal of it: prominent
    text, expected = refusal_text(_attempt(UNAUTHORIZED, detail="wrong password"), ["TLS-3"], bad_certificate=True)
    assert not expected and text.startswith("connection attempt refused: ")


def test_the_chargers_own_refused_attempts_stay_prominent() -> None:
    text, expected = refusal_text(_attempt(UNAUTHORIZED, detail="security profile 2: wrong password"), ["CORE-1"],
                                  bad_certificate=False)
    assert not expected
    assert text == "connection attempt refused: 127.0.0.1:5 'CP-1': unauthorized: security profile 2: wrong password"


def test_a_run_shows_the_probes_as_expected(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--report-dir", str(tmp_path / "r"),
         "--certs-dir", str(tmp_path / "certs"), "suites/test_transport_security.py", "suites/test_server_certificate.py",
         "suites/test_authorization.py"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
    )
    output = result.stdout
    assert result.returncode == 0, output
    assert "expected refusal (TLS-2 probe by the harness): plain ws:// refused ✓" in output
    assert "a wrong password refused with HTTP 401 ✓" in output
    assert "expected refusal (AUTH-1: the platform holds another key on purpose)" in output
    assert "expected refusal (TLS-3: a bad server certificate presented on purpose)" in output
    assert "connection attempt refused" not in output, output


def test_a_401_while_the_platform_holds_another_key_on_purpose_is_expected() -> None:
    attempt = _attempt(UNAUTHORIZED, detail="security profile 2: wrong password")
    text, expected = refusal_text(attempt, ["AUTH-1"], bad_certificate=False, key_switched=True)
    assert expected and text == (
        "expected refusal (AUTH-1: the platform holds another key on purpose): the charger's attempt refused with HTTP 401 ✓"
    )
