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

# §7.43 SampledValue.measurand: "Default = Energy.Active.Import.Register".
DEFAULT_MEASURAND: Final = ENERGY_IMPORT_REGISTER

ENERGY_UNITS: Final[dict[str, Decimal]] = {"Wh": Decimal(1), "kWh": Decimal(1000)}  # factor to Wh
POWER_UNITS: Final[dict[str, Decimal]] = {"W": Decimal(1), "kW": Decimal(1000)}  # factor to W

CONTEXT_PERIODIC: Final = "Sample.Periodic"
CONTEXT_CLOCK: Final = "Sample.Clock"
CONTEXT_TRIGGER: Final = "Trigger"
CONTEXT_TX_BEGIN: Final = "Transaction.Begin"
CONTEXT_TX_END: Final = "Transaction.End"
PHASES: Final[tuple[str, ...]] = ("L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3", "L3-L1")

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

# --- configuration -------------------------------------------------------------------------------

# The security whitepaper's key of the AUTH-1 key change (write-only: a charger never reveals it).
KEY_AUTHORIZATION_KEY: Final = "AuthorizationKey"

# GetConfiguration limits (§6.23): a value is a CiString500.
CONFIG_VALUE_MAX_LENGTH: Final = 500

# §7.12 ChargingRateUnitType and the config key's words for them (§9.4).
RATE_UNIT_WORDS: Final[dict[str, str]] = {"Current": "A", "Power": "W"}
