"""Configuration keys of the reference charger (§5.3, §5.8, §9; security whitepaper)."""

from __future__ import annotations

import pytest

from harness.ocppj import schemas
from harness.sim.configuration import CURRENT_VOLTAGE_MEASURANDS, Configuration, standard_configuration

KEY = "0123456789abcdef0123456789abcdef01234567"

# §9.1 keys the spec marks "required" for the Core profile, §9.4 for Smart Charging.
REQUIRED = (
    "AuthorizeRemoteTxRequests", "ClockAlignedDataInterval", "ConnectionTimeOut", "ConnectorPhaseRotation",
    "GetConfigurationMaxKeys", "HeartbeatInterval", "LocalAuthorizeOffline", "LocalPreAuthorize",
    "MeterValuesAlignedData", "MeterValuesSampledData", "MeterValueSampleInterval", "NumberOfConnectors",
    "ResetRetries", "StopTransactionOnEVSideDisconnect", "StopTransactionOnInvalidId", "StopTxnAlignedData",
    "StopTxnSampledData", "SupportedFeatureProfiles", "TransactionMessageAttempts",
    "TransactionMessageRetryInterval", "UnlockConnectorOnEVSideDisconnect",
    "ChargeProfileMaxStackLevel", "ChargingScheduleAllowedChargingRateUnit", "ChargingScheduleMaxPeriods",
    "MaxChargingProfilesInstalled",
)


@pytest.fixture
def config() -> Configuration:
    return standard_configuration(connectors=2, authorization_key=KEY)


def snapshot(config: Configuration) -> dict[str, str]:
    return {k["key"]: k["value"] for k in config.get()[0]}


def test_all_required_keys_and_a_valid_answer(config: Configuration) -> None:
    known, unknown = config.get()
    assert unknown == []
    names = {k["key"] for k in known}
    assert set(REQUIRED) <= names
    assert not schemas().response_problems("GetConfiguration", {"configurationKey": known})
    assert config.value("NumberOfConnectors") == "2"
    assert config.spec("NumberOfConnectors").readonly


def test_unsupported_measurand_rejects_the_whole_change(config: Configuration) -> None:
    before = snapshot(config)
    assert config.change("MeterValuesSampledData", "Energy.Active.Import.Register,Power.Reactive.Import") == "Rejected"
    assert config.change("MeterValuesSampledData", "Energy.Active.Import.Register,,Voltage") == "Rejected"
    assert config.change("MeterValuesSampledData", ",".join(["Voltage"] * 9)) == "Rejected"  # over MaxLength
    assert snapshot(config) == before
    assert config.change("MeterValuesSampledData", " Energy.Active.Import.Register , Power.Active.Import ") == "Accepted"
    assert config.value("MeterValuesSampledData") == "Energy.Active.Import.Register,Power.Active.Import"
    assert config.change("MeterValuesSampledData", "") == "Accepted"  # no measurands at all is a valid list
    assert config.list("MeterValuesSampledData") == []


def test_current_voltage_meter_rejects_power() -> None:
    config = standard_configuration(measurands=CURRENT_VOLTAGE_MEASURANDS)
    assert config.value("MeterValuesSampledData") == "Energy.Active.Import.Register,Current.Import,Voltage"
    assert config.change("MeterValuesSampledData", "Energy.Active.Import.Register,Power.Active.Import") == "Rejected"
    assert config.change("MeterValuesSampledData", "Energy.Active.Import.Register,Current.Import,Voltage") == "Accepted"


@pytest.mark.parametrize("value", ["-1", "1.5", "abc", "", " ", "99999999999", "0x10"])
def test_bad_integers_are_rejected(config: Configuration, value: str) -> None:
    before = snapshot(config)
    assert config.change("MeterValueSampleInterval", value) == "Rejected"
    assert snapshot(config) == before


def test_integers_and_booleans_are_normalised(config: Configuration) -> None:
    assert config.change("MeterValueSampleInterval", " 60 ") == "Accepted"
    assert config.int("MeterValueSampleInterval") == 60
    assert config.change("LocalPreAuthorize", "TRUE") == "Accepted"
    assert config.value("LocalPreAuthorize") == "true" and config.bool("LocalPreAuthorize")
    assert config.change("LocalPreAuthorize", "yes") == "Rejected"


def test_read_only_and_unknown(config: Configuration) -> None:
    before = snapshot(config)
    for key in ("NumberOfConnectors", "SupportedFeatureProfiles", "ChargeProfileMaxStackLevel", "GetConfigurationMaxKeys"):
        assert config.change(key, config.value(key)) == "Rejected"
    assert config.change("NoSuchKey", "1") == "NotSupported"
    assert snapshot(config) == before
    known, unknown = config.get(["NoSuchKey", "HeartbeatInterval"])
    assert unknown == ["NoSuchKey"] and [k["key"] for k in known] == ["HeartbeatInterval"]


def test_keys_are_case_insensitive(config: Configuration) -> None:
    assert config.change("heartbeatinterval", "42") == "Accepted"
    known, _ = config.get(["HEARTBEATINTERVAL"])
    assert known == [{"key": "HeartbeatInterval", "readonly": False, "value": "42"}]


def test_authorization_key_is_write_only(config: Configuration) -> None:
    known, unknown = config.get()
    assert "AuthorizationKey" not in {k["key"] for k in known}
    assert all(KEY not in str(k["value"]) for k in known)
    known, unknown = config.get(["AuthorizationKey"])
    assert known == [] and unknown == ["AuthorizationKey"]
    for bad in ("short", "x" * 41, "with space 0123456789"):
        assert config.change("AuthorizationKey", bad) == "Rejected"
    assert config.value("AuthorizationKey") == KEY
    new = "fedcba9876543210fedcba9876543210"
    assert config.change("AuthorizationKey", new) == "Accepted"
    assert config.value("AuthorizationKey") == new
    assert new not in str(config.get())


def test_listeners_hear_accepted_changes_only(config: Configuration) -> None:
    heard: list[tuple[str, str, str]] = []
    config.listeners.append(lambda key, old, new: heard.append((key, old, new)))
    config.change("HeartbeatInterval", "abc")
    config.change("NumberOfConnectors", "3")
    config.change("HeartbeatInterval", "10")
    assert heard == [("HeartbeatInterval", "300", "10")]


def test_phase_rotation(config: Configuration) -> None:
    assert config.change("ConnectorPhaseRotation", "0.RST,1.RTS,2.Unknown") == "Accepted"
    assert config.change("ConnectorPhaseRotation", "3.RST") == "Rejected"  # only 2 connectors
    assert config.change("ConnectorPhaseRotation", "1.XYZ") == "Rejected"
