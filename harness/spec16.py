"""OCPP 1.6 facts shared by the harness's checks and the reference charger.

Only facts from the specification live here (OCPP 1.6 edition 2, OCPP-J 1.6, the security
whitepaper); no policy of the harness and no behaviour of the simulator. Both sides import the
same tables so that a charger and a check can never disagree about, say, which status
transitions are legal.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

# --- §7.7 ChargePointStatus and §4.9 StatusNotification ------------------------------------------

AVAILABLE: Final = "Available"
PREPARING: Final = "Preparing"
CHARGING: Final = "Charging"
SUSPENDED_EVSE: Final = "SuspendedEVSE"
SUSPENDED_EV: Final = "SuspendedEV"
FINISHING: Final = "Finishing"
RESERVED: Final = "Reserved"
UNAVAILABLE: Final = "Unavailable"
FAULTED: Final = "Faulted"

STATUSES: Final[tuple[str, ...]] = (
    AVAILABLE, PREPARING, CHARGING, SUSPENDED_EVSE, SUSPENDED_EV, FINISHING, RESERVED, UNAVAILABLE, FAULTED,
)

# §4.9: "ConnectorId 0 ... only a subset of all states is allowed: Available, Unavailable and Faulted".
CONNECTOR0_STATUSES: Final[frozenset[str]] = frozenset({AVAILABLE, UNAVAILABLE, FAULTED})

# §7.7: Operative states; Unavailable and Faulted are Inoperative.
OPERATIVE_STATUSES: Final[frozenset[str]] = frozenset(
    {AVAILABLE, PREPARING, CHARGING, SUSPENDED_EVSE, SUSPENDED_EV, FINISHING, RESERVED}
)

# §4.9, table "possible transitions" (row = from, column = to). Faulted may go to any other state.
LEGAL_TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    AVAILABLE: frozenset({PREPARING, CHARGING, SUSPENDED_EV, SUSPENDED_EVSE, RESERVED, UNAVAILABLE, FAULTED}),
    PREPARING: frozenset({AVAILABLE, CHARGING, SUSPENDED_EV, SUSPENDED_EVSE, FINISHING, FAULTED}),
    CHARGING: frozenset({AVAILABLE, SUSPENDED_EV, SUSPENDED_EVSE, FINISHING, UNAVAILABLE, FAULTED}),
    SUSPENDED_EV: frozenset({AVAILABLE, CHARGING, SUSPENDED_EVSE, FINISHING, UNAVAILABLE, FAULTED}),
    SUSPENDED_EVSE: frozenset({AVAILABLE, CHARGING, SUSPENDED_EV, FINISHING, UNAVAILABLE, FAULTED}),
    FINISHING: frozenset({AVAILABLE, PREPARING, UNAVAILABLE, FAULTED}),
    RESERVED: frozenset({AVAILABLE, PREPARING, UNAVAILABLE, FAULTED}),
    UNAVAILABLE: frozenset({AVAILABLE, PREPARING, CHARGING, SUSPENDED_EV, SUSPENDED_EVSE, FAULTED}),
    FAULTED: frozenset(set(STATUSES) - {FAULTED}),
}

# The same table for connector 0 (the charge point as a whole): among its three states every change is legal.
CONNECTOR0_TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    s: frozenset(CONNECTOR0_STATUSES - {s}) for s in CONNECTOR0_STATUSES
}


def is_legal_transition(old: str, new: str, *, connector_id: int = 1) -> bool:
    """True if §4.9 allows `old` -> `new`. A repeat of the same status is not a transition: True.

    Connector 0 only knows Available, Unavailable and Faulted.
    """
    if connector_id == 0:
        if old not in CONNECTOR0_STATUSES or new not in CONNECTOR0_STATUSES:
            return False
        return old == new or new in CONNECTOR0_TRANSITIONS[old]
    if old not in LEGAL_TRANSITIONS or new not in LEGAL_TRANSITIONS:
        return False
    return old == new or new in LEGAL_TRANSITIONS[old]


# §7.6 ChargePointErrorCode.
NO_ERROR: Final = "NoError"
ERROR_CODES: Final[tuple[str, ...]] = (
    "ConnectorLockFailure", "EVCommunicationError", "GroundFailure", "HighTemperature", "InternalError",
    "LocalListConflict", NO_ERROR, "OtherError", "OverCurrentFailure", "OverVoltage", "PowerMeterFailure",
    "PowerSwitchFailure", "ReaderFailure", "ResetFailure", "UnderVoltage", "WeakSignal",
)
FAULT_ERROR_CODES: Final[tuple[str, ...]] = tuple(c for c in ERROR_CODES if c != NO_ERROR)

# --- §7.31 Measurand, §7.45 UnitOfMeasure, §7.35 ReadingContext, §7.34 Phase, §7.30 Location ----------

ENERGY_IMPORT_REGISTER: Final = "Energy.Active.Import.Register"
POWER_IMPORT: Final = "Power.Active.Import"
CURRENT_IMPORT: Final = "Current.Import"
CURRENT_OFFERED: Final = "Current.Offered"
POWER_OFFERED: Final = "Power.Offered"
VOLTAGE: Final = "Voltage"
SOC: Final = "SoC"
FREQUENCY: Final = "Frequency"
TEMPERATURE: Final = "Temperature"

MEASURANDS: Final[tuple[str, ...]] = (
    "Current.Export", CURRENT_IMPORT, CURRENT_OFFERED,
    "Energy.Active.Export.Register", ENERGY_IMPORT_REGISTER,
    "Energy.Reactive.Export.Register", "Energy.Reactive.Import.Register",
    "Energy.Active.Export.Interval", "Energy.Active.Import.Interval",
    "Energy.Reactive.Export.Interval", "Energy.Reactive.Import.Interval",
    FREQUENCY, "Power.Active.Export", POWER_IMPORT, "Power.Factor", POWER_OFFERED,
    "Power.Reactive.Export", "Power.Reactive.Import", "RPM", SOC, TEMPERATURE, VOLTAGE,
)

# §7.43 SampledValue.measurand: "Default = Energy.Active.Import.Register"; unit: "Default = Wh".
DEFAULT_MEASURAND: Final = ENERGY_IMPORT_REGISTER
DEFAULT_UNIT: Final = "Wh"

UNITS: Final[tuple[str, ...]] = (
    "Wh", "kWh", "varh", "kvarh", "W", "kW", "VA", "kVA", "var", "kvar", "A", "V",
    "Celsius", "Celcius", "Fahrenheit", "K", "Percent",
)  # "Celcius" is the 1.6 JSON schema's own spelling, "Celsius" the errata's; both validate

ENERGY_UNITS: Final[dict[str, Decimal]] = {"Wh": Decimal(1), "kWh": Decimal(1000)}  # factor to Wh
POWER_UNITS: Final[dict[str, Decimal]] = {"W": Decimal(1), "kW": Decimal(1000)}  # factor to W
# The units a measurand may carry (the ones the harness and the sim use).
UNITS_FOR_MEASURAND: Final[dict[str, frozenset[str]]] = {
    ENERGY_IMPORT_REGISTER: frozenset(ENERGY_UNITS),
    "Energy.Active.Import.Interval": frozenset(ENERGY_UNITS),
    "Energy.Active.Export.Register": frozenset(ENERGY_UNITS),
    "Energy.Active.Export.Interval": frozenset(ENERGY_UNITS),
    POWER_IMPORT: frozenset(POWER_UNITS),
    "Power.Active.Export": frozenset(POWER_UNITS),
    POWER_OFFERED: frozenset(POWER_UNITS),
    CURRENT_IMPORT: frozenset({"A"}),
    "Current.Export": frozenset({"A"}),
    CURRENT_OFFERED: frozenset({"A"}),
    VOLTAGE: frozenset({"V"}),
    SOC: frozenset({"Percent"}),
    TEMPERATURE: frozenset({"Celsius", "Celcius", "Fahrenheit", "K"}),
}


def to_wh(value: Decimal | float | str, unit: str | None) -> Decimal:
    """An energy value in Wh (unit None = the §7.43 default Wh). ValueError for a non-energy unit."""
    factor = ENERGY_UNITS.get(unit or DEFAULT_UNIT)
    if factor is None:
        raise ValueError(f"{unit!r} is not an energy unit (Wh or kWh)")
    return Decimal(str(value)) * factor


def to_w(value: Decimal | float | str, unit: str | None) -> Decimal:
    """A power value in W. ValueError for a non-power unit (a missing unit is not W: the default is Wh)."""
    factor = POWER_UNITS.get(unit or "")
    if factor is None:
        raise ValueError(f"{unit!r} is not a power unit (W or kW)")
    return Decimal(str(value)) * factor


CONTEXT_PERIODIC: Final = "Sample.Periodic"
CONTEXT_CLOCK: Final = "Sample.Clock"
CONTEXT_TRIGGER: Final = "Trigger"
CONTEXT_TX_BEGIN: Final = "Transaction.Begin"
CONTEXT_TX_END: Final = "Transaction.End"
READING_CONTEXTS: Final[tuple[str, ...]] = (
    "Interruption.Begin", "Interruption.End", "Other", CONTEXT_CLOCK, CONTEXT_PERIODIC,
    CONTEXT_TX_BEGIN, CONTEXT_TX_END, CONTEXT_TRIGGER,
)
PHASES: Final[tuple[str, ...]] = ("L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3", "L3-L1")
LOCATIONS: Final[tuple[str, ...]] = ("Body", "Cable", "EV", "Inlet", "Outlet")

# --- §7.36 Reason (StopTransaction) ------------------------------------------------------------------

STOP_REASONS: Final[tuple[str, ...]] = (
    "EmergencyStop", "EVDisconnected", "HardReset", "Local", "Other", "PowerLoss", "Reboot", "Remote",
    "SoftReset", "UnlockCommand", "DeAuthorized",
)

# --- messages ------------------------------------------------------------------------------------

# §3.7 / §4.7: transaction-related messages, queued while offline and delivered in order.
TRANSACTION_MESSAGES: Final[frozenset[str]] = frozenset({"StartTransaction", "StopTransaction", "MeterValues"})

# §7.32 MessageTrigger (TriggerMessage.req requestedMessage).
TRIGGERABLE_MESSAGES: Final[tuple[str, ...]] = (
    "BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification", "Heartbeat",
    "MeterValues", "StatusNotification",
)

# Messages a Charge Point sends / a Central System sends (§4 and §5; Core + the optional profiles).
CHARGE_POINT_ACTIONS: Final[frozenset[str]] = frozenset({
    "Authorize", "BootNotification", "DataTransfer", "DiagnosticsStatusNotification",
    "FirmwareStatusNotification", "Heartbeat", "MeterValues", "StartTransaction", "StatusNotification",
    "StopTransaction",
})
CENTRAL_SYSTEM_ACTIONS: Final[frozenset[str]] = frozenset({
    "CancelReservation", "ChangeAvailability", "ChangeConfiguration", "ClearCache", "ClearChargingProfile",
    "DataTransfer", "GetCompositeSchedule", "GetConfiguration", "GetDiagnostics", "GetLocalListVersion",
    "RemoteStartTransaction", "RemoteStopTransaction", "ReserveNow", "Reset", "SendLocalList",
    "SetChargingProfile", "TriggerMessage", "UnlockConnector", "UpdateFirmware",
})

# Only the central system sends these (§5, and the security whitepaper's requests to a charge point): a charger
# that sends one is refused with CALLERROR NotSupported (DataTransfer goes both ways).
CENTRAL_SYSTEM_ONLY_ACTIONS: Final[frozenset[str]] = (
    CENTRAL_SYSTEM_ACTIONS
    | {"CertificateSigned", "DeleteCertificate", "ExtendedTriggerMessage", "GetInstalledCertificateIds", "GetLog",
       "InstallCertificate", "SignedUpdateFirmware"}
) - CHARGE_POINT_ACTIONS

# §3.3 Feature profiles and the messages each brings (for SupportedFeatureProfiles).
FEATURE_PROFILES: Final[dict[str, frozenset[str]]] = {
    "Core": frozenset({
        "Authorize", "BootNotification", "ChangeAvailability", "ChangeConfiguration", "ClearCache", "DataTransfer",
        "GetConfiguration", "Heartbeat", "MeterValues", "RemoteStartTransaction", "RemoteStopTransaction", "Reset",
        "StartTransaction", "StatusNotification", "StopTransaction", "UnlockConnector",
    }),
    "FirmwareManagement": frozenset({
        "GetDiagnostics", "DiagnosticsStatusNotification", "FirmwareStatusNotification", "UpdateFirmware",
    }),
    "LocalAuthListManagement": frozenset({"GetLocalListVersion", "SendLocalList"}),
    "Reservation": frozenset({"CancelReservation", "ReserveNow"}),
    "SmartCharging": frozenset({"ClearChargingProfile", "GetCompositeSchedule", "SetChargingProfile"}),
    "RemoteTrigger": frozenset({"TriggerMessage"}),
}

# §7.x status enumerations of the firmware and diagnostics notifications.
FIRMWARE_STATUSES: Final[tuple[str, ...]] = (
    "Downloaded", "DownloadFailed", "Downloading", "Idle", "InstallationFailed", "Installing", "Installed",
)
DIAGNOSTICS_STATUSES: Final[tuple[str, ...]] = ("Idle", "Uploaded", "UploadFailed", "Uploading")

# --- §9 standard configuration keys -----------------------------------------------------------------

# §9.1 Core profile.
CORE_KEYS: Final[tuple[str, ...]] = (
    "AllowOfflineTxForUnknownId", "AuthorizationCacheEnabled", "AuthorizeRemoteTxRequests", "BlinkRepeat",
    "ClockAlignedDataInterval", "ConnectionTimeOut", "ConnectorPhaseRotation", "ConnectorPhaseRotationMaxLength",
    "GetConfigurationMaxKeys", "HeartbeatInterval", "LightIntensity", "LocalAuthorizeOffline", "LocalPreAuthorize",
    "MaxEnergyOnInvalidId", "MeterValuesAlignedData", "MeterValuesAlignedDataMaxLength", "MeterValuesSampledData",
    "MeterValuesSampledDataMaxLength", "MeterValueSampleInterval", "MinimumStatusDuration", "NumberOfConnectors",
    "ResetRetries", "StopTransactionOnEVSideDisconnect", "StopTransactionOnInvalidId", "StopTxnAlignedData",
    "StopTxnAlignedDataMaxLength", "StopTxnSampledData", "StopTxnSampledDataMaxLength", "SupportedFeatureProfiles",
    "SupportedFeatureProfilesMaxLength", "TransactionMessageAttempts", "TransactionMessageRetryInterval",
    "UnlockConnectorOnEVSideDisconnect", "WebSocketPingInterval",
)
# §9.4 Smart Charging profile.
SMART_CHARGING_KEYS: Final[tuple[str, ...]] = (
    "ChargeProfileMaxStackLevel", "ChargingScheduleAllowedChargingRateUnit", "ChargingScheduleMaxPeriods",
    "ConnectorSwitch3to1PhaseSupported", "MaxChargingProfilesInstalled",
)
# Security whitepaper (edition 2+) keys.
SECURITY_KEYS: Final[tuple[str, ...]] = ("AdditionalRootCertificateCheck", "AuthorizationKey", "CpoName", "SecurityProfile")

# Keys §9 defines as read-only (R) in every charger.
READ_ONLY_KEYS: Final[frozenset[str]] = frozenset({
    "ConnectorPhaseRotationMaxLength", "GetConfigurationMaxKeys", "MeterValuesAlignedDataMaxLength",
    "MeterValuesSampledDataMaxLength", "NumberOfConnectors", "StopTxnAlignedDataMaxLength",
    "StopTxnSampledDataMaxLength", "SupportedFeatureProfiles", "SupportedFeatureProfilesMaxLength",
    "ChargeProfileMaxStackLevel", "ChargingScheduleAllowedChargingRateUnit", "ChargingScheduleMaxPeriods",
    "ConnectorSwitch3to1PhaseSupported", "MaxChargingProfilesInstalled",
})
# Whitepaper: AuthorizationKey is write-only; a charger never reveals it.
WRITE_ONLY_KEYS: Final[frozenset[str]] = frozenset({"AuthorizationKey"})

# The keys of the ev.energy requirements (CFG-1, CFG-2) and of the AUTH-1 key change.
KEY_SAMPLED_DATA: Final = "MeterValuesSampledData"
KEY_SAMPLE_INTERVAL: Final = "MeterValueSampleInterval"
KEY_HEARTBEAT_INTERVAL: Final = "HeartbeatInterval"
KEY_AUTHORIZATION_KEY: Final = "AuthorizationKey"

# ChangeConfiguration.conf status (§7.22), GetConfiguration limits (§6.23).
CONFIG_STATUSES: Final[tuple[str, ...]] = ("Accepted", "Rejected", "RebootRequired", "NotSupported")
CONFIG_KEY_MAX_LENGTH: Final = 50
CONFIG_VALUE_MAX_LENGTH: Final = 500

# §7.12 ChargingRateUnitType and the config key's words for them (§9.4).
RATE_UNIT_WORDS: Final[dict[str, str]] = {"Current": "A", "Power": "W"}
