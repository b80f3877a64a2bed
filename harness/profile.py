"""The charger profile: what the harness cannot learn over OCPP, in one TOML file.

    pytest suites/ --charger-profile charger.toml

It names the charger (identity, where its AuthorizationKey comes from, security profile),
describes its hardware (connectors, phases, nominal voltage, max current, measurand family),
carries the manufacturer's declarations (firmware managed by ev.energy?, diagnostics upload,
the NF-1 statement) and says how the harness reaches the charger's physical side (the control
backend and its settings, the timeout factor). docs/charger.example.toml is a documented example.

Every field is checked: an unknown table or key, a wrong type or a value out of range raises a
pytest.UsageError naming the file, the field and the valid values. This module knows the file's tables
and keys and names them; the valid values of each setting live in harness/values.py (the command line's
and the ini file's values are checked there too). Command-line options and ini
values override the profile (harness.settings applies the precedence). `authorization_key` is the one
resolver of the charger's AuthorizationKey, for `pytest suites/` (harness/settings.py) and
`python -m harness serve` (harness/__main__.py) alike.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.values import ACT_PLACEHOLDERS, BACKENDS, HOOK_PLACEHOLDERS, VALUES, toml

__all__ = [
    "ACT_PLACEHOLDERS", "BACKENDS", "HOOK_PLACEHOLDERS", "KEY_ENV", "ChargerProfile", "ProfileError", "authorization_key",
    "load",
]

#: Where `python -m harness serve` (and the README's set-up) looks for the key when neither the command line nor
#: the profile gives it.
KEY_ENV = "CHARGER_AUTHORIZATION_KEY"


# pytest marks UsageError @final; subclassed all the same so that pytest reports a bad profile as a usage error
# (exit 4) while the harness can still tell it apart.
class ProfileError(pytest.UsageError):  # type: ignore[misc]  # UsageError is @final (see above)
    """An invalid charger profile: names the file, the field and the valid values."""


@dataclass(frozen=True)
class _Field:
    setting: str  # the Settings attribute it feeds; its valid values: harness.values.VALUES[setting]


_SCHEMA: dict[str, dict[str, _Field | str]] = {
    # table -> key -> field (or the name of a sub-table)
    "": {"charger": "charger", "declarations": "declarations", "endpoint": "endpoint", "rig": "rig"},
    "charger": {
        "id": _Field("charger_id"),
        "security_profile": _Field("security_profile"),
        "authorization_key": _Field("authorization_key"),
        "authorization_key_env": _Field("authorization_key_env"),
        "connectors": _Field("connectors"),
        "phases": _Field("phases"),
        "nominal_voltage": _Field("nominal_voltage"),
        "max_current": _Field("max_current"),
        "measurand_family": _Field("measurand_family"),
        "id_tags": _Field("id_tags"),
    },
    "declarations": {
        "firmware_managed_by_ev_energy": _Field("firmware_managed"),
        "diagnostics_upload": _Field("diagnostics_upload"),
        "nf1_statement": _Field("nf1_statement"),
    },
    "endpoint": {
        "host": _Field("csms_host"),
        "port": _Field("csms_port"),
    },
    "rig": {
        "backend": _Field("charger"),
        "timeout_factor": _Field("timeout_factor"),
        "connect_timeout": _Field("connect_timeout"),
        "http": "rig.http",
        "command": "rig.command",
        "manual": "rig.manual",
    },
    "rig.http": {"control_url": _Field("charger_control_url")},
    "rig.command": {
        "timeout": _Field("command_timeout"),
        **{act: _Field(f"command:{act}") for act in {**ACT_PLACEHOLDERS, **HOOK_PLACEHOLDERS}},
    },
    "rig.manual": {"prompt_timeout": _Field("prompt_timeout")},
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
            checked = VALUES[spec.setting].typed(value)
        except ValueError as exc:
            raise ProfileError(f"charger profile {profile.path}: {name} = {toml(value)} is not valid: {exc}") from None
        where = f"{profile.path.name} {name}"
        if spec.setting.startswith("command:"):
            act = spec.setting.split(":", 1)[1]
            profile.commands[act] = checked
            profile.where[spec.setting] = where
        else:
            profile.values[spec.setting] = checked
            profile.where[spec.setting] = where


def authorization_key(
    given: str | None,
    given_from: str,
    profile: ChargerProfile | None,
    *,
    fallback_env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[str | None, str]:
    """The charger's AuthorizationKey and where it came from, the first of: `given` (the command line or the ini
    file; `given_from` names it), the profile's authorization_key, the environment variable its
    authorization_key_env names, the environment variable `fallback_env` (`serve`: KEY_ENV). (None, "") when
    none gives one. ValueError when the variable the profile names is not set.

    The source is for messages, which never name the key itself; a key on a command line is visible to every
    user of the machine (`ps`), so the profile and the environment are the documented ways."""
    environ = os.environ if environ is None else environ
    if given is not None:
        return given, given_from
    if profile is not None and "authorization_key" in profile.values:
        return str(profile.values["authorization_key"]), profile.field_name("authorization_key")
    if profile is not None and "authorization_key_env" in profile.values:
        name = profile.values["authorization_key_env"]
        value = environ.get(name)
        if not value:
            raise ValueError(
                f"charger profile: {profile.field_name('authorization_key_env')} = {name!r}: "
                f"the environment variable {name} is not set (export it with the charger's AuthorizationKey, "
                "or give --authorization-key)"
            )
        return value, f"the environment variable {name} (named by {profile.field_name('authorization_key_env')})"
    if fallback_env is not None and environ.get(fallback_env):
        return environ[fallback_env], f"the environment variable {fallback_env}"
    return None, ""
