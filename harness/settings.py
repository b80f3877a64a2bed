"""The harness's settings: one table of options, read from the command line, pytest.ini, or defaults.

Each option has a CLI flag and an ini twin of the same name (pytest-asyncio's convention).
Invalid values raise pytest.UsageError naming the value and the valid ones.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

BACKENDS = ("sim", "http")
MODES = ("quick", "certification")
PROFILES = ("2", "3")


@dataclass(frozen=True)
class Option:
    name: str  # dest and ini name, e.g. "charger_id"
    help: str
    default: str | None = None
    choices: tuple[str, ...] | None = None
    multiple: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option("charger", "charger backend: sim (built-in reference charger) or http (a rig's control API)", "sim", BACKENDS),
    Option("charger_id", "charge point identity (the last path segment of the URL, the Basic auth user)"),
    Option("charger_control_url", "base URL of the rig's control API, for --charger=http"),
    Option("csms_host", "interface the fake endpoint listens on (0.0.0.0 for a charger on the LAN)", "127.0.0.1"),
    Option("csms_port", "port of the fake endpoint (0 = any free port)", "0"),
    Option("security_profile", "OCPP security profile: 2 (TLS + Basic auth) or 3 (TLS + client certificate)", "2", PROFILES),
    Option("authorization_key", "the charger's AuthorizationKey (Basic auth password); generated for the sim"),
    Option("certs_dir", "folder of the harness CA and server certificates (created on first use)", "certs"),
    Option("report_dir", "folder the certification report is written to", "reports"),
    Option("timeout_factor", "multiply every timeout by this (slow hardware)", "1.0"),
    Option("mode", "quick (short intervals, simulators/CI) or certification (the platform's real values)", None, MODES),
    Option("connect_timeout", "seconds to wait for the charger to connect and boot", "30"),
    Option("sim_defect", "inject a named defect into the reference charger (comma separated; negative controls)", ""),
    Option("sim_connectors", "number of connectors of the reference charger", "1"),
)


@dataclass
class Settings:
    charger: str = "sim"
    charger_id: str = "EVENERGY-SIM-1"
    charger_control_url: str | None = None
    csms_host: str = "127.0.0.1"
    csms_port: int = 0
    security_profile: int = 2
    authorization_key: str | None = None
    certs_dir: Path = Path("certs")
    report_dir: Path = Path("reports")
    timeout_factor: float = 1.0
    mode: str = "quick"
    connect_timeout: float = 30.0
    sim_defects: tuple[str, ...] = ()
    sim_connectors: int = 1
    generated_key: bool = field(default=False, repr=False)

    @property
    def quick(self) -> bool:
        return self.mode == "quick"

    def scaled(self, seconds: float) -> float:
        return seconds * self.timeout_factor

    # Protocol values the platform sets. Certification uses the platform's real ones.
    @property
    def meter_sample_interval(self) -> int:
        return 1 if self.quick else 60

    @property
    def heartbeat_interval(self) -> int:
        return 2 if self.quick else 60


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("ev-energy", "ev.energy OCPP 1.6J certification")
    for option in OPTIONS:
        help_text = option.help + (f" (one of: {', '.join(option.choices)})" if option.choices else "")
        group.addoption(option.flag, dest=option.name, default=None, help=help_text)
        parser.addini(option.name, help_text, default=option.default)


def _raw(config: pytest.Config, option: Option) -> str | None:
    value = config.getoption(option.name, default=None)
    if value is None:
        value = config.getini(option.name)
    if value in ("", None):
        return None
    return str(value)


def _usage(option: Option, value: object, valid: str) -> pytest.UsageError:
    return pytest.UsageError(f"{option.flag}={value!r} is not valid: {valid}")


def _number(option: Option, value: str, convert: Callable[[str], Any], check: Callable[[Any], bool], valid: str) -> Any:
    try:
        number = convert(value)
    except ValueError:
        raise _usage(option, value, valid) from None
    if not check(number):
        raise _usage(option, value, valid)
    return number


def load(config: pytest.Config, known_defects: Callable[[], dict[str, Any]] | None = None) -> Settings:
    opts = {o.name: o for o in OPTIONS}
    raw = {name: _raw(config, option) for name, option in opts.items()}
    settings = Settings()
    for name in ("charger", "security_profile", "mode"):
        option = opts[name]
        if raw[name] is not None and option.choices and raw[name] not in option.choices:
            raise _usage(option, raw[name], f"use one of {', '.join(option.choices)}")
    settings.charger = raw["charger"] or "sim"
    settings.charger_id = raw["charger_id"] or "EVENERGY-SIM-1"
    if len(settings.charger_id) > 48 or "/" in settings.charger_id:
        raise _usage(opts["charger_id"], settings.charger_id, "at most 48 characters, no '/'")
    settings.charger_control_url = raw["charger_control_url"]
    if settings.charger == "http" and not settings.charger_control_url:
        raise pytest.UsageError("--charger=http needs --charger-control-url (e.g. http://127.0.0.1:8701)")
    settings.csms_host = raw["csms_host"] or "127.0.0.1"
    settings.csms_port = _number(
        opts["csms_port"], raw["csms_port"] or "0", int, lambda p: 0 <= p <= 65535, "a port number 0-65535"
    )
    settings.security_profile = int(raw["security_profile"] or "2")
    settings.authorization_key = raw["authorization_key"]
    if settings.authorization_key is None and settings.security_profile == 2:
        if settings.charger != "sim":
            raise pytest.UsageError(
                "security profile 2 needs the charger's AuthorizationKey: give --authorization-key (or ini authorization_key)"
            )
        # A fresh 20-byte key per run, as the whitepaper sizes it (40 hex digits).
        settings.authorization_key = secrets.token_hex(20)
        settings.generated_key = True
    settings.certs_dir = Path(raw["certs_dir"] or "certs")
    settings.report_dir = Path(raw["report_dir"] or "reports")
    settings.timeout_factor = _number(
        opts["timeout_factor"], raw["timeout_factor"] or "1.0", float, lambda f: 0 < f <= 100, "a number in (0, 100]"
    )
    settings.mode = raw["mode"] or ("quick" if settings.charger == "sim" else "certification")
    settings.connect_timeout = _number(
        opts["connect_timeout"], raw["connect_timeout"] or "30", float, lambda f: f > 0, "a positive number of seconds"
    )
    settings.sim_connectors = _number(
        opts["sim_connectors"], raw["sim_connectors"] or "1", int, lambda n: 1 <= n <= 8, "a whole number 1-8"
    )
    defects = tuple(d.strip() for d in (raw["sim_defect"] or "").split(",") if d.strip())
    if defects:
        if settings.charger != "sim":
            raise pytest.UsageError("--sim-defect applies only to --charger=sim")
        catalogue = known_defects() if known_defects else {}
        for defect in defects:
            if catalogue and defect not in catalogue:
                raise _usage(opts["sim_defect"], defect, f"use one of {', '.join(sorted(catalogue))}")
    settings.sim_defects = defects
    return settings
