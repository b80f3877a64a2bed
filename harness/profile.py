"""The charger profile: what the harness cannot learn over OCPP, in one TOML file.

    pytest suites/ --charger-profile charger.toml

It names the charger (identity, where its AuthorizationKey comes from, security profile),
describes its hardware (connectors, phases, nominal voltage, max current, measurand family),
carries the manufacturer's declarations (firmware managed by ev.energy?, diagnostics upload,
the NF-1 statement) and says how the harness reaches the charger's physical side (the control
backend and its settings, the timeout factor). docs/charger.example.toml is a documented example.

Every field is checked: an unknown table or key, a wrong type or a value out of range raises a
pytest.UsageError naming the file, the field and the valid values. Command-line options and ini
values override the profile (harness.settings applies the precedence).
"""

from __future__ import annotations

import math
import re
import string
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

BACKENDS = ("sim", "http", "command", "manual")
MEASURAND_FAMILIES = ("power", "current-voltage")
DIAGNOSTICS_UPLOADS = ("ftp", "http")
SECURITY_PROFILES = (2, 3)
PHASES = (1, 2, 3)

#: The acts a command rig can perform, and the placeholders each command may use.
#: (`charger_id` is allowed everywhere.) Booleans are substituted as `true` / `false`.
ACT_PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "plugin": ("connector",),
    "plugout": ("connector",),
    "authorize": ("id_tag", "connector"),
    "ev_suspend": ("suspended", "connector"),
    "fault": ("faulted", "connector"),
    "reboot": (),
    "network": ("online",),
}
#: Optional life-cycle hooks of a command rig: run once before the first test and after the last.
HOOK_PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "start": ("url", "ca_file", "security_profile"),
    "stop": (),
}


class ProfileError(pytest.UsageError):  # type: ignore[misc]  # a UsageError that names the profile
    """An invalid charger profile: names the file, the field and the valid values."""


@dataclass(frozen=True)
class _Field:
    setting: str  # the Settings attribute it feeds
    convert: Callable[[Any], Any]  # returns the checked value or raises ValueError(valid values)


def _choice(*choices: Any) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        # bool is an int in Python: `security_profile = true` must not pass as 1.
        if isinstance(value, bool) or value not in choices:
            raise ValueError("use one of " + ", ".join(_toml(c) for c in choices))
        return value

    return convert


def _number(low: float, high: float, *, integer: bool = False, low_open: bool = False) -> Callable[[Any], Any]:
    kind = "a whole number" if integer else "a number"
    valid = f"{kind} {'greater than' if low_open else 'from'} {low:g}" + (
        f" {'up to' if low_open else 'to'} {high:g}" if math.isfinite(high) else ""
    )

    def convert(value: Any) -> Any:
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type:
            raise ValueError(valid)
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            raise ValueError(valid)
        return value

    return convert


def _text(check: Callable[[str], bool] = lambda s: bool(s.strip()), valid: str = "a non-empty string") -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if not isinstance(value, str) or not check(value):
            raise ValueError(valid)
        return value

    return convert


def _bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("use true or false (TOML booleans, without quotes)")
    return value


def _url(value: Any) -> Any:
    if not isinstance(value, str) or not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("an http:// or https:// URL, e.g. \"http://192.168.1.30:8701\"")
    return value.rstrip("/")


def _charger_id(value: Any) -> Any:
    if not isinstance(value, str) or not value or len(value) > 48 or "/" in value:
        raise ValueError("a string of 1 to 48 characters, without '/'")
    return value


def _id_tags(value: Any) -> Any:
    # OCPP 1.6 IdToken: CiString20Type.
    if (not isinstance(value, list) or not value
            or not all(isinstance(t, str) and 1 <= len(t) <= 20 and t.isprintable() for t in value)):
        raise ValueError('a list of 1 or more idTags of 1 to 20 characters (OCPP IdToken), e.g. ["04A1B2C3D4E5F6"]')
    return tuple(value)


def _env_name(value: Any) -> Any:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError("the name of an environment variable, e.g. \"CHARGER_AUTHORIZATION_KEY\"")
    return value


def _command(placeholders: tuple[str, ...]) -> Callable[[Any], Any]:
    allowed = (*placeholders, "charger_id")
    valid = "a shell command (string); placeholders: " + ", ".join("{" + p + "}" for p in allowed)

    def convert(value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(valid)
        try:
            names = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
        except ValueError as exc:  # unbalanced braces
            raise ValueError(f"{valid} (write {{{{ and }}}} for literal braces; {exc})") from None
        for name in names:
            if name not in allowed:
                raise ValueError(f"{valid}; {{{name}}} is not one of them")
        return value

    return convert


_SCHEMA: dict[str, dict[str, _Field | str]] = {
    # table -> key -> field (or the name of a sub-table)
    "": {"charger": "charger", "declarations": "declarations", "endpoint": "endpoint", "rig": "rig"},
    "charger": {
        "id": _Field("charger_id", _charger_id),
        "security_profile": _Field("security_profile", _choice(*SECURITY_PROFILES)),
        "authorization_key": _Field("authorization_key", _text()),
        "authorization_key_env": _Field("authorization_key_env", _env_name),
        "connectors": _Field("connectors", _number(1, 32, integer=True)),
        "phases": _Field("phases", _choice(*PHASES)),
        "nominal_voltage": _Field("nominal_voltage", _number(100, 1000)),
        "max_current": _Field("max_current", _number(0, 1000, low_open=True)),
        "measurand_family": _Field("measurand_family", _choice(*MEASURAND_FAMILIES)),
        "id_tags": _Field("id_tags", _id_tags),
    },
    "declarations": {
        "firmware_managed_by_ev_energy": _Field("firmware_managed", _bool),
        "diagnostics_upload": _Field("diagnostics_upload", _choice(*DIAGNOSTICS_UPLOADS)),
        "nf1_statement": _Field("nf1_statement", _text()),
    },
    "endpoint": {
        "host": _Field("csms_host", _text(valid="an interface address, e.g. \"0.0.0.0\" for the LAN")),
        "port": _Field("csms_port", _number(0, 65535, integer=True)),
    },
    "rig": {
        "backend": _Field("charger", _choice(*BACKENDS)),
        "timeout_factor": _Field("timeout_factor", _number(0, 100, low_open=True)),
        "connect_timeout": _Field("connect_timeout", _number(0, math.inf, low_open=True)),
        "http": "rig.http",
        "command": "rig.command",
        "manual": "rig.manual",
    },
    "rig.http": {"control_url": _Field("charger_control_url", _url)},
    "rig.command": {
        "timeout": _Field("command_timeout", _number(0, 3600, low_open=True)),
        **{act: _Field(f"command:{act}", _command(ph)) for act, ph in {**ACT_PLACEHOLDERS, **HOOK_PLACEHOLDERS}.items()},
    },
    "rig.manual": {"prompt_timeout": _Field("prompt_timeout", _number(0, 86400, low_open=True))},
}


@dataclass
class ChargerProfile:
    """A loaded, checked profile. `values` maps Settings attributes to what the file gave."""

    path: Path
    values: dict[str, Any] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)  # Settings attribute -> "charger.toml [charger] id"
    commands: dict[str, str] = field(default_factory=dict)  # act or hook -> command template

    def field_name(self, setting: str) -> str:
        return self.where.get(setting, f"{self.path.name} {setting}")


def load(path: str | Path) -> ChargerProfile:
    """Read and check a profile; raises ProfileError (a pytest.UsageError) naming field and valid values."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ProfileError(f"--charger-profile: {path} does not exist (see docs/charger.example.toml)") from None
    except OSError as exc:
        raise ProfileError(f"--charger-profile: cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"charger profile {path} is not valid TOML: {exc}") from None
    profile = ChargerProfile(path=path)
    _walk(profile, "", data)
    values = profile.values
    if "authorization_key" in values and "authorization_key_env" in values:
        raise ProfileError(
            f"charger profile {path}: give [charger] authorization_key OR authorization_key_env, not both"
        )
    return profile


def _walk(profile: ChargerProfile, table: str, data: Mapping[str, Any]) -> None:
    schema = _SCHEMA[table]
    shown_table = f"[{table}]" if table else "the top level"
    for key, value in data.items():
        spec = schema.get(key)
        if spec is None:
            valid = ", ".join(sorted(schema))
            kind = "table" if isinstance(value, dict) else "key"
            raise ProfileError(
                f"charger profile {profile.path}: unknown {kind} {key!r} in {shown_table}; valid: {valid}"
            )
        name = f"[{table}] {key}" if table else f"[{key}]"
        if isinstance(spec, str):
            if not isinstance(value, dict):
                raise ProfileError(f"charger profile {profile.path}: {name} must be a table ([{spec}])")
            _walk(profile, spec, value)
            continue
        try:
            checked = spec.convert(value)
        except ValueError as exc:
            raise ProfileError(f"charger profile {profile.path}: {name} = {_toml(value)} is not valid: {exc}") from None
        where = f"{profile.path.name} {name}"
        if spec.setting.startswith("command:"):
            act = spec.setting.split(":", 1)[1]
            profile.commands[act] = checked
            profile.where[spec.setting] = where
        else:
            profile.values[spec.setting] = checked
            profile.where[spec.setting] = where


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "{…}"
    return repr(value)
