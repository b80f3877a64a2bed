"""One timing and one check per setting: the timeout factor lives in `Timing` (shared by the settings, the sessions
and the endpoint), and a value from the command line or the ini file meets the same check as one from the charger
profile."""

from __future__ import annotations

import pytest

from harness import timing, values
from harness.endpoint import EndpointConfig
from harness.session import SessionSettings
from harness.settings import Settings
from harness.timing import Timing


def test_timing_owns_the_factor_and_every_derived_timeout() -> None:
    t = Timing(factor=2.0, quick=True, connect_timeout=45, command_timeout=12, prompt_timeout=99)
    assert t.scaled(10) == 20 and t.unscaled(20) == 10
    assert t.test_bound == 2 * timing.QUICK_TEST_BOUND
    assert t.test_bound_at_least(300) == 600 and t.test_bound_at_least(1) == t.test_bound
    assert (t.connect, t.command, t.prompt, t.close) == (90, 24, 198, 2 * timing.CLOSE_TIMEOUT)
    assert t.silence_after == timing.QUICK_SILENCE_BOUND, "the session scales it with its other waits"
    cert = Timing(quick=False)
    assert cert.test_bound == timing.CERTIFICATION_TEST_BOUND
    assert cert.silence_after == timing.CERTIFICATION_SILENCE_BOUND


def test_settings_sessions_and_endpoint_share_one_timing() -> None:
    t = Timing(factor=3.0)
    config = EndpointConfig(timing=t, session=SessionSettings(call_timeout=1.0))
    assert config.session.timing is t and config.session.call_timeout == 1.0
    assert config.session.scaled(2) == 6 and config.session.timeout_factor == 3.0
    settings = Settings(timing=t)
    assert settings.scaled(2) == 6 and settings.timeout_factor == 3.0


@pytest.mark.parametrize(
    ("name", "text", "typed"),
    [
        ("timeout_factor", "0", 0),
        ("timeout_factor", "101", 101),
        ("connect_timeout", "-1", -1),
        ("csms_port", "70000", 70000),
        ("charger_id", "a/b", "a/b"),
        ("charger_id", "x" * 49, "x" * 49),
        ("id_tags", "X" * 21, ["X" * 21]),
        ("security_profile", "1", 1),
        ("charger", "ftp", "ftp"),
        ("charger_control_url", "192.168.1.3:8701", "192.168.1.3:8701"),
    ],
)
def test_one_check_refuses_a_value_from_every_source(name: str, text: str, typed: object) -> None:
    check = values.VALUES[name]
    with pytest.raises(ValueError):
        check.text(text)
    with pytest.raises(ValueError):
        check.typed(typed)


@pytest.mark.parametrize(
    ("name", "text", "typed", "value"),
    [
        ("timeout_factor", "2.5", 2.5, 2.5),
        ("csms_port", "8443", 8443, 8443),
        ("security_profile", "3", 3, 3),
        ("id_tags", "CARD-1, CARD-2", ["CARD-1", "CARD-2"], ("CARD-1", "CARD-2")),
        ("charger_control_url", "http://rig:8701/", "http://rig:8701/", "http://rig:8701"),
    ],
)
def test_one_check_gives_the_same_value_from_every_source(name: str, text: str, typed: object, value: object) -> None:
    check = values.VALUES[name]
    assert check.text(text) == value and check.typed(typed) == value
