"""The valid values of every setting, checked in one place for every source.

A setting comes from the command line or the ini file (text, e.g. "2.5") or from the charger profile (TOML,
already typed, e.g. 2.5 or [..]). Each has one `Value` here: its type, its check and the words that say what is
valid. `Value.typed` checks a profile's value, `Value.text` converts and checks a command-line or ini value; both
end in the same check. A failed check raises ValueError whose text is the valid values; the caller names the field
and its source (harness/profile.py for the profile's fields, harness/settings.py for the rest).

Where the command line's words differ from the profile's (a comma-separated list against a TOML list; a range
written as on a command line's help), `text_valid` says them; the check is the same.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

BACKENDS = ("sim", "http", "command", "manual")
MODES = ("quick", "certification")
SECURITY_PROFILES = (2, 3)
MEASURAND_FAMILIES = ("power", "current-voltage")
DIAGNOSTICS_UPLOADS = ("ftp", "http")
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


def toml(value: object) -> str:
    """A value as TOML writes it (how a profile's message quotes it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "{…}"
    return repr(value)


@dataclass(frozen=True)
class Value:
    """One setting's valid values. `convert` checks a typed value and returns it (raising ValueError(valid));
    `parse` turns command-line / ini text into the typed value it then checks (ValueError: not parseable).
    The checked value is Any here: one table (VALUES) holds every setting's, of different types, and each lands
    in its typed Settings field; the checkers themselves say what they give back."""

    convert: Callable[[Any], Any]
    parse: Callable[[str], object] = str
    text_valid: str = ""  # what the command line's message says is valid ("": the profile's words)

    def typed(self, value: object) -> Any:
        """A profile's (TOML) value, checked."""
        return self.convert(value)

    def text(self, value: str) -> Any:
        """A command-line or ini value, converted and checked."""
        try:
            return self.convert(self.parse(value))
        except ValueError as exc:
            raise ValueError(self.text_valid or str(exc)) from None


def choice(*choices: object, text_valid: str = "") -> Value:
    def convert(value: object) -> object:
        # bool is an int in Python: `security_profile = true` must not pass as 1.
        if isinstance(value, bool) or value not in choices:
            raise ValueError("use one of " + ", ".join(toml(c) for c in choices))
        return value

    def parse(text: str) -> object:
        for c in choices:
            if str(c) == text:
                return c
        raise ValueError(text)

    return Value(convert, parse, text_valid or "use one of " + ", ".join(str(c) for c in choices))


def number(low: float, high: float, *, integer: bool = False, low_open: bool = False, text_valid: str = "") -> Value:
    kind = "a whole number" if integer else "a number"
    valid = f"{kind} {'greater than' if low_open else 'from'} {low:g}" + (
        f" {'up to' if low_open else 'to'} {high:g}" if math.isfinite(high) else ""
    )

    kinds: tuple[type[int] | type[float], ...] = (int,) if integer else (int, float)

    def convert(value: object) -> float:  # an int when `integer`
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ValueError(valid)
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            raise ValueError(valid)
        return value

    return Value(convert, int if integer else float, text_valid)


def text(check: Callable[[str], bool] = lambda s: bool(s.strip()), valid: str = "a non-empty string") -> Value:
    def convert(value: object) -> str:
        if not isinstance(value, str) or not check(value):
            raise ValueError(valid)
        return value

    return Value(convert)


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("use true or false (TOML booleans, without quotes)")
    return value


def _url(value: object) -> str:
    if not isinstance(value, str) or not re.match(r"^https?://[^/\s]+", value):
        raise ValueError("an http:// or https:// URL, e.g. \"http://192.168.1.30:8701\"")
    return value.rstrip("/")


def _charger_id(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 48 or "/" in value:
        raise ValueError("a string of 1 to 48 characters, without '/'")
    return value


def _id_tags(value: object) -> tuple[str, ...]:
    # OCPP 1.6 IdToken: CiString20Type.
    if (not isinstance(value, (list, tuple)) or not value
            or not all(isinstance(t, str) and 1 <= len(t) <= 20 and t.isprintable() for t in value)):
        raise ValueError('a list of 1 or more idTags of 1 to 20 characters (OCPP IdToken), e.g. ["04A1B2C3D4E5F6"]')
    return tuple(value)


def _comma_separated(value: str) -> tuple[str, ...]:
    return tuple(t for t in (t.strip() for t in value.split(",")) if t)


def _env_name(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError("the name of an environment variable, e.g. \"CHARGER_AUTHORIZATION_KEY\"")
    return value


def command(placeholders: tuple[str, ...]) -> Value:
    allowed = (*placeholders, "charger_id")
    valid = "a shell command (string); placeholders: " + ", ".join("{" + p + "}" for p in allowed)

    def convert(value: object) -> str:
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

    return Value(convert)


#: Every setting's valid values, by its Settings name (the profile's fields and the command line's options both).
VALUES: Mapping[str, Value] = {
    "charger": choice(*BACKENDS),
    "charger_id": Value(_charger_id, text_valid="at most 48 characters, no '/'"),
    "charger_control_url": Value(_url),
    "csms_host": text(valid="an interface address, e.g. \"0.0.0.0\" for the LAN"),
    "csms_port": number(0, 65535, integer=True, text_valid="a port number 0-65535"),
    "security_profile": choice(*SECURITY_PROFILES),
    "authorization_key": text(),
    "authorization_key_env": Value(_env_name),
    "report_history": number(0, math.inf, integer=True,
                             text_valid="a whole number of earlier reports to keep (0 or more)"),
    "timeout_factor": number(0, 100, low_open=True, text_valid="a number in (0, 100]"),
    "mode": choice(*MODES),
    "connect_timeout": number(0, math.inf, low_open=True, text_valid="a positive number of seconds"),
    "id_tags": Value(_id_tags, _comma_separated,
                     "one or more idTags of 1 to 20 characters (OCPP IdToken), comma separated"),
    # The reference charger's connectors (a charger profile's `connectors` too, when it describes the sim).
    "sim_connectors": number(1, 8, integer=True, text_valid="a whole number 1-8"),
    # --- the charger profile's alone ----------------------------------------------------------------
    "connectors": number(1, 32, integer=True),
    "phases": choice(*PHASES),
    "nominal_voltage": number(100, 1000),
    "max_current": number(0, 1000, low_open=True),
    "measurand_family": choice(*MEASURAND_FAMILIES),
    "firmware_managed": Value(_bool),
    "diagnostics_upload": choice(*DIAGNOSTICS_UPLOADS),
    "nf1_statement": text(),
    "command_timeout": number(0, 3600, low_open=True),
    "prompt_timeout": number(0, 86400, low_open=True),
    **{f"command:{act}": command(ph) for act, ph in {**ACT_PLACEHOLDERS, **HOOK_PLACEHOLDERS}.items()},
}
