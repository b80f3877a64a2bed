"""The harness's settings: one table of options, read from the command line, pytest.ini, a charger
profile, or defaults, in that order of precedence.

Each option has a CLI flag and an ini twin of the same name (pytest-asyncio's convention). The
charger profile (`--charger-profile charger.toml`, see harness.profile) gives the same settings
for one charger plus what only a profile can say (hardware, declarations, rig commands).
Invalid values raise pytest.UsageError naming the value (and where it came from) and the valid ones; the
checks themselves are harness/values.py's, the same for every source. The timeout factor and every timeout
derived from it: `Settings.timing` (harness/timing.py).
"""

from __future__ import annotations

import os
import secrets
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness import profile as profile_mod
from harness import values
from harness.timing import DEFAULT_COMMAND_TIMEOUT, DEFAULT_PROMPT_TIMEOUT, Timing

BACKENDS = values.BACKENDS  # sim, http, command, manual
MODES = values.MODES
PROFILES = tuple(str(p) for p in values.SECURITY_PROFILES)
DEFAULT_ID_TAGS: tuple[str, ...] = ("EVENERGY-TAG-1",)  # the reference charger's card; a bench charger's come from its profile


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
    Option(
        "charger",
        "charger backend: sim (built-in reference charger), http (a rig's control API), "
        "command (shell commands from the charger profile) or manual (the operator is prompted)",
        None,
        BACKENDS,
    ),
    Option(
        "charger_profile",
        "the charger profile (TOML): identity, AuthorizationKey source, hardware, declarations, rig; "
        "see docs/charger.example.toml. Options given on the command line or in the ini file override it",
    ),
    Option("charger_id", "charge point identity (the last path segment of the URL, the Basic auth user)"),
    Option("charger_control_url", "base URL of the rig's control API, for --charger=http"),
    Option("csms_host", "interface the fake endpoint listens on (0.0.0.0 for a charger on the LAN)", "127.0.0.1"),
    Option("csms_port", "port of the fake endpoint (0 = any free port)", "0"),
    Option("security_profile", "OCPP security profile: 2 (TLS + Basic auth) or 3 (TLS + client certificate)", "2", PROFILES),
    Option("authorization_key", "the charger's AuthorizationKey (Basic auth password); generated for the sim"),
    Option("certs_dir", "folder of the harness CA and server certificates (created on first use)", "certs"),
    Option("report_dir", "folder the certification report is written to (else $HARNESS_REPORT_DIR, else reports); "
                         "earlier runs' reports are kept under <report dir>/history", "reports"),
    Option("report_history", "how many earlier runs' reports to keep under <report dir>/history "
                             "(the oldest are removed beyond it; 0 keeps none)", str(20)),
    Option("timeout_factor", "multiply every timeout by this (slow hardware)", "1.0"),
    Option("mode", "quick (short intervals, simulators/CI) or certification (the platform's real values)", None, MODES),
    Option("connect_timeout", "seconds to wait for the charger to connect and boot", "30"),
    Option("id_tags", "idTag(s) of the RFID card(s) the rig presents, comma separated (the first is used); the "
                      "platform accepts these and no other", ",".join(DEFAULT_ID_TAGS)),
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
    report_history: int = 20
    mode: str = "quick"
    # The timeout factor and every timeout derived from it (the connect, rig command and prompt timeouts too).
    timing: Timing = field(default_factory=Timing)
    sim_defects: tuple[str, ...] = ()
    sim_connectors: int = 1
    id_tags: tuple[str, ...] = DEFAULT_ID_TAGS
    # CI output (--ci, ini `ci`, or the environment variable CI=true that GitHub Actions, GitLab CI and most
    # CI services set): plain lines only, no in-place status line, colour only where the CI renders it, a
    # one-line verdict at the very end (harness/ci.py). `ci_source` says which of those turned it on (or off).
    ci: bool = False
    ci_source: str = ""
    generated_key: bool = field(default=False, repr=False)
    # Where the AuthorizationKey came from, for messages that must never show the key itself.
    authorization_key_source: str = field(default="", repr=False)
    # --- from the charger profile (None: not declared) --------------------------------------------
    charger_profile: Path | None = None
    connectors: int = 1
    phases: int | None = None
    nominal_voltage: float | None = None  # volts
    max_current: float | None = None  # amps per phase
    measurand_family: str | None = None  # "power" or "current-voltage"
    firmware_managed: bool | None = None  # FW-1 applies when True
    diagnostics_upload: str | None = None  # "ftp" or "http"
    nf1_statement: str | None = None
    rig_commands: dict[str, str] = field(default_factory=dict)  # act or hook -> command template
    command_cwd: Path | None = None  # commands run in the profile's folder

    @property
    def quick(self) -> bool:
        return self.mode == "quick"

    # The timing's, for the suites and the report (before the timeout factor; `scaled` applies it).
    def scaled(self, seconds: float) -> float:
        return self.timing.scaled(seconds)

    @property
    def timeout_factor(self) -> float:
        return self.timing.factor

    @property
    def connect_timeout(self) -> float:
        return self.timing.connect_timeout

    @property
    def command_timeout(self) -> float:
        return self.timing.command_timeout

    @property
    def prompt_timeout(self) -> float:
        return self.timing.prompt_timeout

    # Protocol values the platform sets. Certification uses the platform's real ones.
    @property
    def meter_sample_interval(self) -> int:
        return 1 if self.quick else 60

    @property
    def heartbeat_interval(self) -> int:
        return 1 if self.quick else 60

    @property
    def firmware_managed_by_ev_energy(self) -> bool | None:
        return self.firmware_managed

    @property
    def declarations(self) -> dict[str, Any]:
        """The manufacturer's declarations, as the report reads them (RUN_INFO["declarations"])."""
        return {
            "firmware_managed_by_ev_energy": self.firmware_managed,
            "nf1_statement": self.nf1_statement,
            "measurand_family": self.measurand_family,
            "diagnostics_upload": self.diagnostics_upload,
        }


    def waiting_text(self, url: str, ca_file: object, names: list[str] | tuple[str, ...] = ()) -> str:
        """What the charger must be configured with, shown while the harness waits for it.

        `names`: the host names and addresses the server certificate covers. Never the
        AuthorizationKey itself: where it comes from.
        """
        cid = self.charger_id
        lines = [f"waiting up to {self.timing.connect:g} s for charger {cid!r} to connect and boot"]
        if self.csms_host in ("0.0.0.0", "::", "") and names:
            # Listening on every interface: the charger dials one of the certificate's names.
            parts = urllib.parse.urlsplit(url)
            lines.append(
                f"  URL:  wss://HOST:{parts.port}{parts.path}  (TLS 1.2 only, ELBSecurityPolicy-TLS-1-2-Ext-2018-06)"
            )
            lines.append(
                f"        HOST: a name in the server certificate that the charger can reach: {', '.join(names)}"
                " (python -m harness certs --host NAME --ip ADDR adds one)"
            )
        else:
            lines.append(f"  URL:  {url}  (TLS 1.2 only, ELBSecurityPolicy-TLS-1-2-Ext-2018-06)")
        lines.append(f"  CA:   {ca_file}  (the charger must trust it)")
        if self.security_profile == 2:
            lines.append(
                f"  auth: security profile 2, HTTP Basic: user {cid!r}, password = the AuthorizationKey from "
                f"{self.authorization_key_source or 'the settings'}"
            )
        else:
            lines.append(f"  auth: security profile 3, a client certificate from this CA with CN {cid!r}")
        if self.csms_port == 0:
            lines.append(
                "  (the port was picked freely: fix it with --csms-port or [endpoint] port in the charger "
                "profile, so the charger can be configured once)"
            )
        lines.append("  every refused connection attempt is shown as it happens")
        return "\n".join(lines)


#: The run's Settings, once loaded (harness/plugin.py's pytest_configure): `config.stash[SETTINGS]`.
SETTINGS = pytest.StashKey[Settings]()


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("ev-energy", "ev.energy OCPP 1.6J certification")
    for option in OPTIONS:
        help_text = option.help + (f" (one of: {', '.join(option.choices)})" if option.choices else "")
        if option.default:
            help_text += f" [default: {option.default}]"
        group.addoption(option.flag, dest=option.name, default=None, help=help_text)
        # No ini default: an unset ini value must not hide the charger profile's value.
        parser.addini(option.name, help_text, default=None)
    group.addoption(
        "--ci",
        action="store_true",
        dest="ci",
        default=None,
        help="output for a CI log: plain lines, no in-place status line, no colour unless the CI renders it "
        "(GitHub Actions, GitLab CI) or --color=yes, a one-line verdict at the very end "
        "[default: on when the environment has CI=true]",
    )
    parser.addini("ci", "CI output (see --ci): true or false; unset: on when the environment has CI=true", default=None)


@dataclass(frozen=True)
class _Raw:
    value: Any  # str from the command line / ini; typed (already checked) from the profile
    source: str  # "cli", "ini", "profile" or "default"
    label: str  # how to name it in a message: "--charger-id", "ini charger_id", "charger.toml [charger] id"

    @property
    def given(self) -> bool:
        return self.source != "default"


def _usage(raw: _Raw, valid: str) -> pytest.UsageError:
    if raw.source == "cli":
        return pytest.UsageError(f"{raw.label}={raw.value!r} is not valid: {valid}")
    if raw.source == "ini":
        return pytest.UsageError(f"{raw.label} = {raw.value!r} is not valid: {valid}")
    return pytest.UsageError(f"charger profile: {raw.label} = {raw.value!r} is not valid: {valid}")


def _checked(raw: _Raw, name: str) -> Any:
    """The value, checked by the setting's one check (harness/values.py): typed from the profile, text else."""
    value = values.VALUES[name]
    try:
        return value.typed(raw.value) if raw.source == "profile" else value.text(str(raw.value))
    except ValueError as exc:
        raise _usage(raw, str(exc)) from None


class _Sources:
    """Where each option's value comes from: command line, then ini, then the profile, then the default."""

    def __init__(self, config: pytest.Config, profile: profile_mod.ChargerProfile | None) -> None:
        self.config = config
        self.profile = profile
        self.options = {o.name: o for o in OPTIONS}

    def cli(self, name: str) -> str | None:
        value = self.config.getoption(name, default=None)
        return None if value in (None, "") else str(value)

    def ini(self, name: str) -> str | None:
        try:
            value = self.config.getini(name)
        except ValueError:
            return None
        return None if value in (None, "") else str(value)

    def get(self, name: str, default: Any = None) -> _Raw:
        option = self.options.get(name)
        if option is not None:
            value = self.cli(name)
            if value is not None:
                return _Raw(value, "cli", option.flag)
            value = self.ini(name)
            if value is not None:
                return _Raw(value, "ini", f"ini {name}")
        if self.profile is not None and name in self.profile.values:
            return _Raw(self.profile.values[name], "profile", self.profile.field_name(name))
        fallback = option.default if option is not None and default is None else default
        return _Raw(fallback, "default", option.flag if option is not None else name)


#: Where reports go when neither --report-dir, the ini file nor the charger profile says (the harness's own
#: tests set it, so that they never write into a user's reports/).
REPORT_DIR_ENV = "HARNESS_REPORT_DIR"


def report_dir(config: pytest.Config, src: _Sources | None = None) -> Path:
    """--report-dir, else the ini value, else the charger profile's, else $HARNESS_REPORT_DIR, else `reports`;
    relative to the folder pytest was started in."""
    raw = (src or _Sources(config, None)).get("report_dir")
    value = str(raw.value) if raw.given else (os.environ.get(REPORT_DIR_ENV) or str(raw.value))
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(config.invocation_params.dir) / path


def _profile_path(config: pytest.Config) -> Path | None:
    value = config.getoption("charger_profile", default=None)
    if value:
        return Path(config.invocation_params.dir) / str(value)
    try:
        value = config.getini("charger_profile")
    except ValueError:
        value = None
    if value:
        base = config.inipath.parent if config.inipath is not None else Path(config.invocation_params.dir)
        return base / str(value)
    return None


def load(config: pytest.Config, known_defects: Callable[[], Mapping[str, object]] | None = None) -> Settings:
    path = _profile_path(config)
    profile = profile_mod.load(path) if path is not None else None
    src = _Sources(config, profile)
    settings = Settings()
    settings.charger_profile = path

    for name in ("charger", "security_profile", "mode"):
        raw = src.get(name)
        if raw.given:
            _checked(raw, name)
    settings.charger = str(src.get("charger").value or "sim")

    settings.charger_id = _checked(src.get("charger_id", "EVENERGY-SIM-1"), "charger_id")

    raw = src.get("charger_control_url")
    settings.charger_control_url = _checked(raw, "charger_control_url") if raw.value is not None else None
    if settings.charger == "http" and not settings.charger_control_url:
        raise pytest.UsageError(
            "--charger=http needs --charger-control-url (e.g. http://127.0.0.1:8701), "
            "or [rig.http] control_url in the charger profile"
        )
    settings.csms_host = _checked(src.get("csms_host"), "csms_host")
    settings.csms_port = _checked(src.get("csms_port"), "csms_port")
    settings.security_profile = _checked(src.get("security_profile"), "security_profile")
    _authorization_key(settings, src)

    settings.certs_dir = Path(str(src.get("certs_dir").value))
    settings.report_dir = report_dir(config, src)
    settings.report_history = _checked(src.get("report_history"), "report_history")
    timeout_factor = float(_checked(src.get("timeout_factor"), "timeout_factor"))
    settings.mode = str(src.get("mode").value or ("quick" if settings.charger == "sim" else "certification"))
    connect_timeout = float(_checked(src.get("connect_timeout"), "connect_timeout"))

    settings.id_tags = _checked(src.get("id_tags"), "id_tags")

    # Hardware: the profile's declaration; for the reference charger, --sim-connectors (or the profile).
    raw = src.get("sim_connectors")
    if not raw.given and settings.charger == "sim" and profile is not None and "connectors" in profile.values:
        raw = _Raw(profile.values["connectors"], "profile", profile.field_name("connectors"))
    settings.sim_connectors = _checked(raw, "sim_connectors")
    given = profile.values if profile is not None else {}
    settings.connectors = settings.sim_connectors if settings.charger == "sim" else int(given.get("connectors", 1))
    settings.phases = given.get("phases")
    settings.nominal_voltage = float(given["nominal_voltage"]) if "nominal_voltage" in given else None
    settings.max_current = float(given["max_current"]) if "max_current" in given else None
    settings.measurand_family = given.get("measurand_family")
    settings.firmware_managed = given.get("firmware_managed")
    settings.diagnostics_upload = given.get("diagnostics_upload")
    settings.nf1_statement = given.get("nf1_statement")

    # The rig.
    if profile is not None:
        settings.rig_commands = dict(profile.commands)
        settings.command_cwd = profile.path.resolve().parent
    settings.timing = Timing(
        factor=timeout_factor,
        quick=settings.quick,
        connect_timeout=connect_timeout,
        command_timeout=float(given.get("command_timeout", DEFAULT_COMMAND_TIMEOUT)),
        prompt_timeout=float(given.get("prompt_timeout", DEFAULT_PROMPT_TIMEOUT)),
    )
    if settings.charger == "command" and not any(a in settings.rig_commands for a in profile_mod.ACT_PLACEHOLDERS):
        raise pytest.UsageError(
            "--charger=command needs a charger profile (--charger-profile) with a [rig.command] table: "
            f"one shell command per act ({', '.join(profile_mod.ACT_PLACEHOLDERS)}); "
            "see docs/charger.example.toml"
        )

    raw = src.get("sim_defect")
    defects = tuple(d.strip() for d in str(raw.value or "").split(",") if d.strip())
    if defects:
        if settings.charger != "sim":
            raise pytest.UsageError("--sim-defect applies only to --charger=sim")
        catalogue = known_defects() if known_defects else {}
        for defect in defects:
            if catalogue and defect not in catalogue:
                raise _usage(_Raw(defect, raw.source, raw.label), f"use one of {', '.join(sorted(catalogue))}")
    settings.sim_defects = defects
    settings.ci, settings.ci_source = _ci(config)
    if settings.charger == "sim":
        _reference_hardware(settings)
    return settings


#: Values of the environment variable CI that mean "running in CI" (GitHub Actions and GitLab set "true";
#: some services set "1"); anything else, e.g. "false" or unset, does not.
CI_TRUE = ("true", "1", "yes")


def ci_from_environment(environ: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get("CI", "")
    return str(value).strip().lower() in CI_TRUE


def _ci(config: pytest.Config) -> tuple[bool, str]:
    """CI output: --ci wins, then the ini value `ci`, then the environment variable CI."""
    if config.getoption("ci", default=None):
        return True, "--ci"
    try:
        raw = config.getini("ci")
    except ValueError:
        raw = None
    if raw not in (None, ""):
        text = str(raw).strip().lower()
        if text not in ("true", "false", "1", "0", "yes", "no"):
            raise pytest.UsageError(f"ini ci = {raw!r} is not valid: use true or false")
        return text in ("true", "1", "yes"), "ini ci"
    if ci_from_environment():
        return True, "the environment variable CI"
    return False, ""


def _reference_hardware(settings: Settings) -> None:
    """For the reference charger, the hardware it really has (the profile's values, else its defaults)."""
    try:
        from harness.sim.charger import SimConfig
    except ImportError:  # pragma: no cover - while the reference charger is absent
        return
    declared = {
        "phases": settings.phases,
        "voltage": settings.nominal_voltage,
        "max_current": settings.max_current,
    }
    try:
        config = SimConfig(
            url="wss://127.0.0.1/ocpp",
            charge_point_id=settings.charger_id,
            connectors=settings.sim_connectors,
            defects=frozenset(settings.sim_defects),
            **{k: v for k, v in declared.items() if v is not None},  # type: ignore[arg-type]  # hardware floats
        )
    except ValueError as exc:
        raise pytest.UsageError(f"the reference charger cannot have this hardware: {exc}") from None
    settings.connectors = config.connectors
    settings.phases = config.phases
    settings.nominal_voltage = float(config.voltage)
    settings.max_current = float(config.max_current)


def _authorization_key(settings: Settings, src: _Sources) -> None:
    """The key, and where it came from (messages name the source, never the key): profile.authorization_key
    resolves it, as for `python -m harness serve`; the reference charger gets a key made up for the run."""
    raw = src.get("authorization_key")
    given = str(raw.value) if raw.source in ("cli", "ini") else None  # the profile's: the resolver reads it
    given_from = f"{raw.label} on the command line" if raw.source == "cli" else raw.label
    try:
        settings.authorization_key, settings.authorization_key_source = profile_mod.authorization_key(
            given, given_from, src.profile
        )
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if settings.authorization_key is None and settings.security_profile == 2:
        if settings.charger != "sim":
            raise pytest.UsageError(
                "security profile 2 needs the charger's AuthorizationKey: give --authorization-key (or ini "
                "authorization_key), or authorization_key_env / authorization_key under [charger] in the charger profile"
            )
        # A fresh 20-byte key per run, as the whitepaper sizes it (40 hex digits).
        settings.authorization_key = secrets.token_hex(20)
        settings.generated_key = True
        settings.authorization_key_source = "generated for this run and given to the reference charger"
