"""The reference charger's configuration keys (OCPP 1.6 §9), with Get/ChangeConfiguration semantics.

Sans-I/O: the charger asks `change()` and reacts to what changed through listeners.

- §5.3 ChangeConfiguration: Accepted, Rejected (bad value, read-only key), NotSupported (unknown key).
  A value is checked completely before anything is stored: a rejected change changes nothing.
- §5.8 GetConfiguration: no keys = every key; unknown keys go to `unknownKey`.
- Key names are CiString50: compared case-insensitively, reported in their canonical spelling.
- Security whitepaper: AuthorizationKey is write-only, never reported (not even when asked for).
"""

from __future__ import annotations

import builtins

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from harness import spec16

ACCEPTED = "Accepted"
REJECTED = "Rejected"
NOT_SUPPORTED = "NotSupported"

INT_MAX = 2**31 - 1
_INT = re.compile(r"^\+?\d{1,10}$")
_PHASE_ROTATIONS = frozenset({"NotApplicable", "Unknown", "RST", "RTS", "SRT", "STR", "TRS", "TSR"})


class ConfigError(ValueError):
    """A value that does not fit its key (the change is Rejected)."""


@dataclass(frozen=True)
class KeySpec:
    """One configuration key: its kind decides how a value is checked and normalised."""

    name: str
    kind: str  # "int", "bool", "csl" (comma separated list), "str", "phase-rotation", "key"
    readonly: bool = False
    write_only: bool = False
    minimum: int = 0
    maximum: int = INT_MAX
    choices: frozenset[str] | None = None  # csl: allowed items; str: allowed values
    max_items: int | None = None  # csl: at most this many items
    min_length: int = 0  # str/key
    max_length: int = spec16.CONFIG_VALUE_MAX_LENGTH

    def normalise(self, raw: str) -> str:
        """The value to store for `raw`, or ConfigError saying why it does not fit."""
        if not isinstance(raw, str):
            raise ConfigError(f"value must be a string, got {type(raw).__name__}")
        if len(raw) > spec16.CONFIG_VALUE_MAX_LENGTH:
            raise ConfigError(f"value longer than {spec16.CONFIG_VALUE_MAX_LENGTH} characters")
        if self.kind == "int":
            text = raw.strip()
            if not _INT.match(text):
                raise ConfigError(f"{raw!r} is not a whole number")
            number = int(text)
            if not self.minimum <= number <= self.maximum:
                raise ConfigError(f"{number} is not in {self.minimum}..{self.maximum}")
            return str(number)
        if self.kind == "bool":
            text = raw.strip().lower()
            if text not in ("true", "false"):
                raise ConfigError(f"{raw!r} is not true or false")
            return text
        if self.kind == "csl":
            items = [item.strip() for item in raw.split(",")] if raw.strip() else []
            if any(not item for item in items):
                raise ConfigError(f"{raw!r} has an empty item")
            if self.choices is not None:
                bad = [item for item in items if item not in self.choices]
                if bad:
                    raise ConfigError(f"not supported: {', '.join(bad)}")
            if self.max_items is not None and len(items) > self.max_items:
                raise ConfigError(f"{len(items)} items, at most {self.max_items}")
            return ",".join(items)
        if self.kind == "phase-rotation":
            items = [item.strip() for item in raw.split(",")] if raw.strip() else []
            for item in items:
                connector, _, rotation = item.partition(".")
                if not connector.isdigit() or rotation not in _PHASE_ROTATIONS:
                    raise ConfigError(f"{item!r} is not <connector>.<rotation>")
                if not 0 <= int(connector) <= self.maximum:
                    raise ConfigError(f"connector {connector} does not exist")
            return ",".join(items)
        if self.kind == "key":  # AuthorizationKey: printable ASCII, 16-20 bytes or their 32-40 hex digits
            if not self.min_length <= len(raw) <= self.max_length:
                raise ConfigError(f"length {len(raw)} is not {self.min_length}..{self.max_length}")
            if not all(0x21 <= ord(c) <= 0x7E for c in raw):
                raise ConfigError("only printable ASCII without spaces")
            return raw
        # str
        if not self.min_length <= len(raw) <= self.max_length:
            raise ConfigError(f"length {len(raw)} is not {self.min_length}..{self.max_length}")
        if self.choices is not None and raw not in self.choices:
            raise ConfigError(f"{raw!r} is not one of {', '.join(sorted(self.choices))}")
        return raw


Listener = Callable[[str, str, str], None]  # (key, old value, new value)


class Configuration:
    """The key/value store of one charge point. Persistent across reboots (the charger keeps the object)."""

    def __init__(self, specs: Iterable[KeySpec], values: Mapping[str, str]) -> None:
        self._specs: dict[str, KeySpec] = {}
        self._folded: dict[str, str] = {}
        self._values: dict[str, str] = {}
        for spec in specs:
            self._specs[spec.name] = spec
            self._folded[spec.name.lower()] = spec.name
        for name, value in values.items():
            canonical = self.canonical(name)
            if canonical is None:
                raise KeyError(f"no key spec for {name}")
            spec = self._specs[canonical]
            # A write-only secret is installed, not negotiated: the installer's value is kept as given.
            self._values[canonical] = value if spec.write_only else spec.normalise(value)
        missing = set(self._specs) - set(self._values)
        if missing:
            raise KeyError(f"no value for {', '.join(sorted(missing))}")
        self.listeners: list[Listener] = []

    # --- lookup ------------------------------------------------------------------------------

    def canonical(self, key: str) -> str | None:
        """The canonical spelling of `key` (CiString: case-insensitive), or None if unknown."""
        if not isinstance(key, str):
            return None
        return self._folded.get(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.canonical(key) is not None

    def spec(self, key: str) -> KeySpec:
        canonical = self.canonical(key)
        if canonical is None:
            raise KeyError(key)
        return self._specs[canonical]

    def value(self, key: str) -> str:
        return self._values[self.spec(key).name]

    def int(self, key: str) -> int:
        return int(self.value(key))

    def bool(self, key: str) -> bool:
        return self.value(key) == "true"

    def list(self, key: str) -> list[str]:
        value = self.value(key)
        return value.split(",") if value else []

    @property
    def keys(self) -> builtins.list[str]:  # `list` is a method of this class
        return list(self._specs)

    # --- §5.8 GetConfiguration ----------------------------------------------------------------

    def get(self, keys: Iterable[str] | None = None) -> tuple[builtins.list[dict[str, Any]], builtins.list[str]]:
        """(configurationKey, unknownKey) of GetConfiguration.conf. No keys (None or []) = all readable keys."""
        wanted = list(keys) if keys is not None else []
        known: list[dict[str, Any]] = []
        unknown: list[str] = []
        if not wanted:
            names = [n for n in self._specs if not self._specs[n].write_only]
        else:
            names = []
            for key in wanted:
                canonical = self.canonical(key)
                if canonical is None or self._specs[canonical].write_only:
                    unknown.append(key)  # a write-only key is never revealed, not even as "known"
                elif canonical not in names:
                    names.append(canonical)
        for name in names:
            known.append({"key": name, "readonly": self._specs[name].readonly, "value": self._values[name]})
        return known, unknown

    # --- §5.3 ChangeConfiguration -------------------------------------------------------------

    def check(self, key: str, value: str) -> tuple[str, str | None, str]:
        """(status, canonical key, normalised value or reason) without changing anything."""
        canonical = self.canonical(key)
        if canonical is None:
            return NOT_SUPPORTED, None, f"unknown key {key!r}"
        spec = self._specs[canonical]
        if spec.readonly:
            return REJECTED, canonical, f"{canonical} is read-only"
        try:
            return ACCEPTED, canonical, spec.normalise(value)
        except ConfigError as exc:
            return REJECTED, canonical, f"{canonical}: {exc}"

    def change(self, key: str, value: str) -> str:
        """Apply ChangeConfiguration; the status of ChangeConfiguration.conf. Listeners hear accepted changes."""
        status, canonical, result = self.check(key, value)
        if status != ACCEPTED or canonical is None:
            return status
        self.set(canonical, result)
        return ACCEPTED

    def set(self, key: str, value: str) -> None:
        """Set a key from inside the charger (e.g. HeartbeatInterval from BootNotification.conf), read-only or not."""
        spec = self.spec(key)
        normalised = value if spec.write_only else spec.normalise(value)
        old = self._values[spec.name]
        self._values[spec.name] = normalised
        for listener in list(self.listeners):
            listener(spec.name, old, normalised)


# --- the reference charger's key set --------------------------------------------------------------

# Measurands the reference charger's meter can report (a Power meter). The Current+Voltage variant drops power.
SUPPORTED_MEASURANDS: tuple[str, ...] = (
    spec16.ENERGY_IMPORT_REGISTER, spec16.POWER_IMPORT, spec16.CURRENT_IMPORT, spec16.VOLTAGE,
    spec16.CURRENT_OFFERED, spec16.POWER_OFFERED, spec16.SOC, spec16.FREQUENCY, spec16.TEMPERATURE,
)
CURRENT_VOLTAGE_MEASURANDS: tuple[str, ...] = tuple(
    m for m in SUPPORTED_MEASURANDS if m not in (spec16.POWER_IMPORT, spec16.POWER_OFFERED)
)
MEASURAND_LIST_MAX = 8


def standard_configuration(
    *,
    connectors: int = 1,
    measurands: Iterable[str] = SUPPORTED_MEASURANDS,
    sampled_data: str | None = None,
    authorization_key: str | None = None,
    security_profile: int = 2,
    heartbeat_interval: int = 300,
    meter_value_sample_interval: int = 60,
    clock_aligned_data_interval: int = 0,
    transaction_message_attempts: int = 3,
    transaction_message_retry_interval: int = 10,
    connection_timeout: int = 60,
    feature_profiles: Iterable[str] = ("Core", "FirmwareManagement", "RemoteTrigger", "SmartCharging"),
    allowed_rate_units: Iterable[str] = ("Current", "Power"),
    max_stack_level: int = 10,
    max_profiles: int = 20,
    max_periods: int = 24,
    overrides: Mapping[str, str] | None = None,
) -> Configuration:
    """Core, Smart Charging and security keys of a typical 1.6J AC charger, with sane defaults."""
    supported = frozenset(measurands)
    if sampled_data is None:
        power = spec16.POWER_IMPORT in supported
        sampled_data = ",".join(
            [spec16.ENERGY_IMPORT_REGISTER] + ([spec16.POWER_IMPORT] if power else [spec16.CURRENT_IMPORT, spec16.VOLTAGE])
        )
    specs: list[KeySpec] = [
        KeySpec("AllowOfflineTxForUnknownId", "bool"),
        KeySpec("AuthorizationCacheEnabled", "bool"),
        KeySpec("AuthorizeRemoteTxRequests", "bool"),
        KeySpec("ClockAlignedDataInterval", "int", maximum=86400),
        KeySpec("ConnectionTimeOut", "int", minimum=1, maximum=3600),
        KeySpec("ConnectorPhaseRotation", "phase-rotation", maximum=connectors),
        KeySpec("ConnectorPhaseRotationMaxLength", "int", readonly=True),
        KeySpec("GetConfigurationMaxKeys", "int", readonly=True),
        KeySpec("HeartbeatInterval", "int", maximum=86400),
        KeySpec("LocalAuthorizeOffline", "bool"),
        KeySpec("LocalPreAuthorize", "bool"),
        KeySpec("MeterValuesAlignedData", "csl", choices=supported, max_items=MEASURAND_LIST_MAX),
        KeySpec("MeterValuesAlignedDataMaxLength", "int", readonly=True),
        KeySpec("MeterValuesSampledData", "csl", choices=supported, max_items=MEASURAND_LIST_MAX),
        KeySpec("MeterValuesSampledDataMaxLength", "int", readonly=True),
        KeySpec("MeterValueSampleInterval", "int", maximum=86400),
        KeySpec("MinimumStatusDuration", "int", maximum=3600),
        KeySpec("NumberOfConnectors", "int", readonly=True),
        KeySpec("ResetRetries", "int", maximum=10),
        KeySpec("StopTransactionOnEVSideDisconnect", "bool"),
        KeySpec("StopTransactionOnInvalidId", "bool"),
        KeySpec("StopTxnAlignedData", "csl", choices=supported, max_items=MEASURAND_LIST_MAX),
        KeySpec("StopTxnAlignedDataMaxLength", "int", readonly=True),
        KeySpec("StopTxnSampledData", "csl", choices=supported, max_items=MEASURAND_LIST_MAX),
        KeySpec("StopTxnSampledDataMaxLength", "int", readonly=True),
        KeySpec("SupportedFeatureProfiles", "csl", readonly=True),
        KeySpec("TransactionMessageAttempts", "int", minimum=1, maximum=100),
        KeySpec("TransactionMessageRetryInterval", "int", maximum=3600),
        KeySpec("UnlockConnectorOnEVSideDisconnect", "bool"),
        KeySpec("WebSocketPingInterval", "int", maximum=3600),
        # §9.4 Smart Charging
        KeySpec("ChargeProfileMaxStackLevel", "int", readonly=True),
        KeySpec("ChargingScheduleAllowedChargingRateUnit", "csl", readonly=True),
        KeySpec("ChargingScheduleMaxPeriods", "int", readonly=True),
        KeySpec("ConnectorSwitch3to1PhaseSupported", "bool", readonly=True),
        KeySpec("MaxChargingProfilesInstalled", "int", readonly=True),
        # security whitepaper
        KeySpec("AuthorizationKey", "key", write_only=True, min_length=16, max_length=40),
        KeySpec("SecurityProfile", "str", choices=frozenset({str(security_profile)})),
    ]
    values: dict[str, str] = {
        "AllowOfflineTxForUnknownId": "false",
        "AuthorizationCacheEnabled": "true",
        "AuthorizeRemoteTxRequests": "false",
        "ClockAlignedDataInterval": str(clock_aligned_data_interval),
        "ConnectionTimeOut": str(connection_timeout),
        "ConnectorPhaseRotation": ",".join(f"{c}.RST" for c in range(1, connectors + 1)),
        "ConnectorPhaseRotationMaxLength": str(connectors),
        "GetConfigurationMaxKeys": "64",
        "HeartbeatInterval": str(heartbeat_interval),
        "LocalAuthorizeOffline": "true",
        "LocalPreAuthorize": "false",
        "MeterValuesAlignedData": spec16.ENERGY_IMPORT_REGISTER,
        "MeterValuesAlignedDataMaxLength": str(MEASURAND_LIST_MAX),
        "MeterValuesSampledData": sampled_data,
        "MeterValuesSampledDataMaxLength": str(MEASURAND_LIST_MAX),
        "MeterValueSampleInterval": str(meter_value_sample_interval),
        "MinimumStatusDuration": "0",
        "NumberOfConnectors": str(connectors),
        "ResetRetries": "3",
        "StopTransactionOnEVSideDisconnect": "true",
        "StopTransactionOnInvalidId": "true",
        "StopTxnAlignedData": "",
        "StopTxnAlignedDataMaxLength": str(MEASURAND_LIST_MAX),
        "StopTxnSampledData": spec16.ENERGY_IMPORT_REGISTER,
        "StopTxnSampledDataMaxLength": str(MEASURAND_LIST_MAX),
        "SupportedFeatureProfiles": ",".join(feature_profiles),
        "TransactionMessageAttempts": str(transaction_message_attempts),
        "TransactionMessageRetryInterval": str(transaction_message_retry_interval),
        "UnlockConnectorOnEVSideDisconnect": "true",
        "WebSocketPingInterval": "60",
        "ChargeProfileMaxStackLevel": str(max_stack_level),
        "ChargingScheduleAllowedChargingRateUnit": ",".join(allowed_rate_units),
        "ChargingScheduleMaxPeriods": str(max_periods),
        "ConnectorSwitch3to1PhaseSupported": "false",
        "MaxChargingProfilesInstalled": str(max_profiles),
        # Never empty: a charger without a key (profile 3) still has the slot; this placeholder is never sent.
        "AuthorizationKey": authorization_key if authorization_key else "0" * 32,
        "SecurityProfile": str(security_profile),
    }
    for key, value in (overrides or {}).items():
        values[key] = value
    return Configuration(specs, values)
