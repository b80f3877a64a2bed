"""The reference charger's catalogue of injectable deviations, for the harness's negative controls.

Each defect is one realistic firmware bug, tied to the ev.energy requirement
(shared/spec/ev-energy-requirements.md) that a correct harness must fail because of it. Each is
a single flag check at the one place in the charger where the bug would live in real firmware;
nothing else changes. Conformant variants are deviations *from the reference's choices* that
the OCPP spec and the requirements allow: a correct harness must pass them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class Defect:
    name: str
    requirement_id: str  # the requirement a correct harness fails (defects) or exercises (variants)
    description: str
    conformant: bool = False  # True: a conformant variant the harness must pass


class DefectName(StrEnum):
    """Every catalogue name, for the check sites in harness/sim (a StrEnum: equal to, and hashed as, its
    `--sim-defect` string, so `DefectName.X in config.defects` works on the frozenset of names). The
    comment says the requirement each breaks (defects) or exercises (variants); the catalogue below keeps
    the text. tests/sim/test_defects.py checks the two stay in step."""

    TLS13_ONLY = "tls13-only"  # breaks TLS-1
    NON_POLICY_CIPHERS = "non-policy-ciphers"  # breaks TLS-1
    PLAIN_WS = "plain-ws"  # breaks TLS-2
    NO_CERT_CHECK = "no-cert-check"  # breaks TLS-3
    STALE_CLOCK = "stale-clock"  # breaks TLS-3
    TRUSTS_INTERMEDIATE_ONLY = "trusts-intermediate-only"  # variant TLS-3
    NO_BASIC_AUTH = "no-basic-auth"  # breaks AUTH-1
    BASIC_AUTH_WRONG_USER = "basic-auth-wrong-user"  # breaks AUTH-1
    BASIC_AUTH_WRONG_KEY = "basic-auth-wrong-key"  # breaks AUTH-1
    GIVES_UP_AFTER_401 = "gives-up-after-401"  # breaks AUTH-1
    BOOT_BAD_SCHEMA = "boot-bad-schema"  # breaks CORE-1
    NO_HEARTBEAT = "no-heartbeat"  # breaks CORE-1
    HEARTBEAT_IGNORES_INTERVAL = "heartbeat-ignores-interval"  # breaks CORE-1
    HEARTBEAT_TOO_OFTEN = "heartbeat-too-often"  # breaks CORE-1
    NO_STATUS_AFTER_BOOT = "no-status-after-boot"  # breaks CORE-1
    SENDS_BEFORE_ACCEPTED = "sends-before-accepted"  # breaks CORE-1
    UNPLUG_REASON_LOCAL = "unplug-reason-local"  # breaks CORE-1
    FALLS_SILENT = "falls-silent"  # breaks CORE-1
    NO_HEARTBEAT_AFTER_RECONNECT = "no-heartbeat-after-reconnect"  # breaks CORE-1
    NO_POWER_MEASURAND = "no-power-measurand"  # breaks MV-1
    CURRENT_WITHOUT_VOLTAGE = "current-without-voltage"  # breaks MV-1
    REJECTS_SAMPLED_DATA = "rejects-sampled-data"  # breaks CFG-1
    IGNORES_SAMPLE_INTERVAL = "ignores-sample-interval"  # breaks CFG-2
    REJECTS_SAMPLE_INTERVAL = "rejects-sample-interval"  # breaks CFG-2
    ENERGY_DECREASING = "energy-decreasing"  # breaks MV-2
    WRONG_ENERGY_UNITS = "wrong-energy-units"  # breaks MV-2
    METER_STOP_BELOW_START = "meter-stop-below-start"  # breaks MV-2
    POWER_NOT_ZERO_WHEN_SUSPENDED = "power-not-zero-when-suspended"  # breaks MV-3
    POWER_MISMATCH_ENERGY = "power-mismatch-energy"  # breaks MV-3
    NEVER_AVAILABLE_AFTER_UNPLUG = "never-available-after-unplug"  # breaks ST-1
    NEVER_CHARGING_STATUS = "never-charging-status"  # breaks ST-2
    NEVER_FAULTED = "never-faulted"  # breaks ST-3
    NEVER_SUSPENDED = "never-suspended"  # breaks ST-4
    ILLEGAL_TRANSITION = "illegal-transition"  # breaks ST-1
    RESERVED_AFTER_UNPLUG = "reserved-after-unplug"  # breaks ST-1
    CHARGING_UNDER_ZERO_LIMIT = "charging-under-zero-limit"  # breaks ST-4
    REJECTS_ALL_PROFILES = "rejects-all-profiles"  # breaks SC-1
    PROFILE_NO_EFFECT = "profile-no-effect"  # breaks SC-2
    REJECTS_REMOTE_START = "rejects-remote-start"  # breaks SC-2
    TRIGGER_BOOT_SILENT = "trigger-boot-silent"  # breaks RT-1
    TRIGGER_STATUS_SILENT = "trigger-status-silent"  # breaks RT-2
    FIRMWARE_UPDATE_SILENT = "firmware-update-silent"  # breaks FW-1
    INSTALLS_AFTER_FAILED_DOWNLOAD = "installs-after-failed-download"  # breaks FW-1
    NO_DIAGNOSTICS_UPLOAD = "no-diagnostics-upload"  # breaks FW-1
    NEVER_RECONNECTS = "never-reconnects"  # breaks NF-2
    LOSES_OFFLINE_STOP = "loses-offline-stop"  # breaks NF-2
    NO_OFFLINE_QUEUE = "no-offline-queue"  # breaks NF-2
    RESENDS_AFTER_STOP = "resends-after-stop"  # breaks NF-2
    LOSES_IN_FLIGHT_MESSAGE = "loses-in-flight-message"  # breaks NF-2
    CRASHES_ON_MALFORMED = "crashes-on-malformed"  # breaks ADV-1
    WRONG_ERROR_CODES = "wrong-error-codes"  # breaks ADV-1
    IGNORES_NEW_AUTHORIZATION_KEY = "ignores-new-authorization-key"  # breaks ADV-2
    CURRENT_VOLTAGE = "current-voltage"  # variant MV-1
    TXPROFILE_ONLY = "txprofile-only"  # variant SC-1
    CPMAX_ONLY = "cpmax-only"  # variant SC-1
    KW_UNITS = "kw-units"  # variant MV-2
    SLOW_RESPONSES = "slow-responses"  # variant CORE-1
    SLOW_HARDWARE = "slow-hardware"  # variant SC-2
    TWO_CONNECTORS = "two-connectors"  # variant CORE-1
    SINGLE_PHASE = "single-phase"  # variant MV-1
    FINISHING_ON_UNPLUG = "finishing-on-unplug"  # variant ST-1
    LOCAL_REASON_OMITTED = "local-reason-omitted"  # variant CORE-1
    WAITS_FOR_BOOT_ACCEPTED = "waits-for-boot-accepted"  # variant CORE-1
    SKIPS_HEARTBEAT_WHILE_BUSY = "skips-heartbeat-while-busy"  # variant CORE-1
    MINUS_ONE_ERROR_ID = "minus-one-error-id"  # variant ADV-1
    STRING_ERROR_DETAILS = "string-error-details"  # variant ADV-1
    BASIC_AUTH_DECODED_KEY = "basic-auth-decoded-key"  # variant AUTH-1
    KEY_CHANGE_NOT_SUPPORTED = "key-change-not-supported"  # variant ADV-2
    KEY_CHANGE_REBOOT_REQUIRED = "key-change-reboot-required"  # variant ADV-2
    REJECTS_KEY_REUSE = "rejects-key-reuse"  # variant ADV-2
    KEEPS_CONNECTION_AFTER_KEY_CHANGE = "keeps-connection-after-key-change"  # variant ADV-2
    RIG_WITHOUT_EV = "rig-without-ev"  # variant ST-4
    LATE_QUEUE_FLUSH = "late-queue-flush"  # variant NF-2
    POWER_RATE_UNIT = "power-rate-unit"  # variant SC-2


def _d(name: str, req: str, text: str) -> Defect:
    return Defect(name, req, text)


def _v(name: str, req: str, text: str) -> Defect:
    return Defect(name, req, text, conformant=True)


_ALL: tuple[Defect, ...] = (
    # --- transport and security ---
    _d("tls13-only", "TLS-1", "The TLS stack is built for TLS 1.3 only (minimum = maximum = 1.3): no handshake with a TLS 1.2 endpoint."),
    _d("non-policy-ciphers", "TLS-1", "TLS 1.2 with only ChaCha20 and DHE suites, none of ELBSecurityPolicy-TLS-1-2-Ext-2018-06."),
    _d("plain-ws", "TLS-2", "Connects with ws:// (no TLS) to the same host and port."),
    _d("no-cert-check", "TLS-3", "Does not verify the server certificate (no chain, host name or date check)."),
    _d("stale-clock", "TLS-3", "The real-time clock runs 10 minutes ahead and is never synchronised: every timestamp is off."),
    _v("trusts-intermediate-only", "TLS-3",
       "Its trust store holds the harness's intermediate CA (certs/intermediate.pem), not the root: it validates the "
       "chain up to that trust anchor (partial chain; RFC 5280 §6.1.1 lets any CA be a trust anchor)."),
    _d("no-basic-auth", "AUTH-1", "Sends no HTTP Basic Authorization header on the WebSocket upgrade."),
    _d("basic-auth-wrong-user", "AUTH-1",
       "The Basic auth user comes from a setting of its own, left at its factory default 'ocpp' (not the identity)."),
    _d("basic-auth-wrong-key", "AUTH-1",
       "An off-by-one in the key buffer: the Basic auth password is the AuthorizationKey without its last character."),
    _d("gives-up-after-401", "AUTH-1",
       "Takes an HTTP 401 for a revoked key: stops connecting until it is power-cycled, even once the key is accepted."),
    # --- core ---
    _d("boot-bad-schema", "CORE-1", "BootNotification chargePointVendor is longer than the schema's 20 characters."),
    _d("no-heartbeat", "CORE-1", "Never sends Heartbeat."),
    _d("heartbeat-ignores-interval", "CORE-1",
       "Ignores the interval of BootNotification.conf: keeps its own HeartbeatInterval (300 s)."),
    _d("heartbeat-too-often", "CORE-1", "Sends a Heartbeat every quarter of the interval it was given."),
    _d("no-status-after-boot", "CORE-1", "Sends no StatusNotification after BootNotification is Accepted."),
    _d("sends-before-accepted", "CORE-1",
       "Treats BootNotification Pending as Accepted: sends StatusNotifications and Heartbeats while Pending."),
    _d("unplug-reason-local", "CORE-1",
       "An EV unplugged during a transaction is reported in StopTransaction with reason Local, not EVDisconnected."),
    _d("falls-silent", "CORE-1",
       "Once its boot is Accepted and its status report after it answered, the OCPP task deadlocks: it sends and "
       "answers nothing more (no Heartbeat either) but keeps the WebSocket connection open, until power-cycled."),
    _d("no-heartbeat-after-reconnect", "CORE-1",
       "Heartbeats after boot, but the heartbeat timer dies with the connection: after a reconnect without a "
       "reboot (no new BootNotification) it sends no Heartbeat any more."),
    # --- meter values ---
    _d("no-power-measurand", "MV-1",
       "Accepts Power.Active.Import (and Current.Import/Voltage) in MeterValuesSampledData, but its meter driver only reports energy."),
    _d("current-without-voltage", "MV-1",
       "A Current+Voltage meter that reports Current.Import but never Voltage, although Voltage is configured."),
    _d("rejects-sampled-data", "CFG-1", "Answers Rejected to every ChangeConfiguration of MeterValuesSampledData."),
    _d("ignores-sample-interval", "CFG-2",
       "Accepts MeterValueSampleInterval but keeps sampling at its built-in interval (the value it booted with)."),
    _d("rejects-sample-interval", "CFG-2", "Answers Rejected to every ChangeConfiguration of MeterValueSampleInterval."),
    _d("energy-decreasing", "MV-2",
       "Sign error in the sampled register: periodic samples report meterStart minus the energy delivered."),
    _d("wrong-energy-units", "MV-2", "Sampled Energy.Active.Import.Register is the kWh number labelled Wh."),
    _d("meter-stop-below-start", "MV-2", "StopTransaction meterStop is the session's energy, not the register."),
    _d("power-not-zero-when-suspended", "MV-3",
       "Power.Active.Import reports the offered power (V x offered A x phases) instead of the measured power."),
    _d("power-mismatch-energy", "MV-3",
       "Power.Active.Import is computed with the 400 V line-to-line voltage instead of 230 V per phase (x1.74)."),
    # --- status ---
    _d("never-available-after-unplug", "ST-1", "After a session and unplug the connector stays Finishing."),
    _d("never-charging-status", "ST-2", "Reports SuspendedEV while the EV is drawing power (never Charging)."),
    _d("never-faulted", "ST-3", "A fault stops the power but the status never shows Faulted."),
    _d("never-suspended", "ST-4", "Reports Charging while suspended by the EV or the EVSE (never Suspended*)."),
    _d("illegal-transition", "ST-1",
       "When a session stops with the EV plugged in, goes straight to Preparing (Charging -> Preparing, illegal in §4.9)."),
    _d("reserved-after-unplug", "ST-1",
       "An EV unplugged during a transaction: Finishing, then Reserved (illegal in §4.9) instead of Available, "
       "until the next plug-in."),
    _d("charging-under-zero-limit", "ST-4",
       "Under a smart-charging limit below 6 A the EVSE stops offering current, but the connector keeps reporting "
       "Charging at 0 W (a pause by the EV still shows SuspendedEV)."),
    # --- smart charging ---
    _d("rejects-all-profiles", "SC-1", "SetChargingProfile is always Rejected."),
    _d("profile-no-effect", "SC-2", "Charging profiles are accepted and stored but never applied to the EV."),
    _d("rejects-remote-start", "SC-2", "RemoteStartTransaction is always Rejected."),
    # --- remote trigger ---
    _d("trigger-boot-silent", "RT-1", "TriggerMessage BootNotification is Accepted but no BootNotification follows."),
    _d("trigger-status-silent", "RT-2", "TriggerMessage StatusNotification is Accepted but no StatusNotification follows."),
    # --- firmware ---
    _d("firmware-update-silent", "FW-1", "UpdateFirmware is answered, then nothing: no download, no notification."),
    _d("installs-after-failed-download", "FW-1",
       "Reports DownloadFailed, then a little later (0.3 s) Installing and Installed anyway (what it had of the file)."),
    _d("no-diagnostics-upload", "FW-1",
       "GetDiagnostics reports Uploading then Uploaded, but never uploads the file."),
    # --- robustness ---
    _d("never-reconnects", "NF-2", "After the connection drops it never reconnects (until power-cycled)."),
    _d("loses-offline-stop", "NF-2", "A StopTransaction produced while offline is dropped, not queued."),
    _d("no-offline-queue", "NF-2", "No transaction message produced while offline is queued: all are lost."),
    _d("resends-after-stop", "NF-2",
       "0.3 s after delivering a StopTransaction produced offline, sends that transaction's last MeterValues again."),
    _d("loses-in-flight-message", "NF-2",
       "A transaction message in flight when the link drops (sent, its answer not yet received) is taken off the "
       "queue as if delivered: it is never sent again."),
    # --- advisory (ADV-1: outside ev.energy's list; they must not affect its requirements) ---
    _d("crashes-on-malformed", "ADV-1",
       "A malformed request (bad frame structure, missing or mistyped field) crashes the OCPP task: the "
       "connection is closed instead of answering CALLERROR (it then reconnects)."),
    _d("wrong-error-codes", "ADV-1",
       "A malformed request (bad frame structure, missing or mistyped field) is refused with CALLERROR GenericError "
       "instead of the fitting OCPP-J 1.6 code."),
    # ADV-2 (AuthorizationKey rotation over OCPP): a finding, never an AUTH-1 failure
    _d("ignores-new-authorization-key", "ADV-2",
       "Answers ChangeConfiguration AuthorizationKey Accepted but never stores the key: keeps using (and "
       "reconnecting with) the old one, so it would lock itself out once the platform switched keys."),
    # --- conformant variants ---
    _v("current-voltage", "MV-1",
       "The meter measures Current.Import and Voltage per phase, not power: MeterValuesSampledData with "
       "Power.Active.Import is Rejected, Energy.Active.Import.Register,Current.Import,Voltage is Accepted."),
    _v("txprofile-only", "SC-1", "Smart charging through TxProfile only: ChargePointMaxProfile is Rejected."),
    _v("cpmax-only", "SC-1",
       "Smart charging through ChargePointMaxProfile only: TxProfile is Rejected (one in RemoteStart is ignored)."),
    _v("kw-units", "MV-2", "Energy in kWh and power in kW."),
    _v("slow-responses", "CORE-1", "Answers every request of the central system after about one second."),
    _v("slow-hardware", "SC-2",
       "Realistic hardware timings: the EV follows a new charging limit 3 s after SetChargingProfile or "
       "ClearChargingProfile is answered (IEC 61851-1 allows up to 5 s), firmware installation takes 5 s, "
       "and booting (power-on, reset, reboot after an update) 2 s."),
    _v("two-connectors", "CORE-1", "Two connectors instead of one."),
    _v("single-phase", "MV-1", "A single-phase installation: current and voltage on L1 only."),
    _v("finishing-on-unplug", "ST-1",
       "An EV unplugged during a transaction: Finishing is reported before Available (the reference goes "
       "Charging -> Available directly; both legal in §4.9)."),
    _v("local-reason-omitted", "CORE-1",
       "StopTransaction of a stop with the driver's card has no reason (OCPP 1.6 §6.49: omitted means Local)."),
    _v("waits-for-boot-accepted", "CORE-1",
       "Ignores (never answers) every request of the central system until its BootNotification is answered "
       "Accepted (before the answer, and while Pending), and while a triggered BootNotification awaits its answer."),
    _v("skips-heartbeat-while-busy", "CORE-1",
       "Skips a Heartbeat when it sent another request within the HeartbeatInterval (OCPP 1.6 §4.6 MAY): while it "
       "sends MeterValues or statuses, no Heartbeat; the next one is due an interval after its last request."),
    _v("minus-one-error-id", "ADV-1",
       "Answers a frame it cannot read a message id from (not JSON, not an array) with CALLERROR id \"-1\"."),
    _v("string-error-details", "ADV-1", "Every CALLERROR it sends has a string errorDetails instead of an object."),
    _v("basic-auth-decoded-key", "AUTH-1",
       "The Basic auth password is the AuthorizationKey's hex digits decoded to bytes, not the hex text."),
    _v("key-change-not-supported", "ADV-2",
       "The AuthorizationKey is provisioned another way: ChangeConfiguration AuthorizationKey is answered NotSupported."),
    _v("key-change-reboot-required", "ADV-2",
       "ChangeConfiguration AuthorizationKey is answered RebootRequired: the key is stored and used from the next "
       "boot on (OCPP 1.6 §7.13)."),
    _v("rejects-key-reuse", "ADV-2",
       "Refuses an AuthorizationKey it has held before (Rejected): a rotated key cannot be set back to the old one."),
    _v("keeps-connection-after-key-change", "ADV-2",
       "Stores a new AuthorizationKey (Accepted) but keeps its open connection: it uses the new key from its next "
       "connection on, not by reconnecting at once (the whitepaper expects the reconnect: an ADV-2 finding only)."),
    _v("rig-without-ev", "ST-4",
       "The bench's rig has no EV that can pause: the control API answers 501 for `ev` (the sim backend refuses it "
       "the same way). The tests that need the act are \"not tested\" naming it; nothing fails; the run is incomplete."),
    _v("late-queue-flush", "NF-2",
       "After reconnecting without a reboot, delivers the transaction messages queued while offline on a 60 s "
       "timer (SimConfig.late_flush_delay), not at once; everything else (statuses, heartbeats) goes at once."),
    _v("power-rate-unit", "SC-2",
       "Smart charging in W only: ChargingScheduleAllowedChargingRateUnit = Power, and a charging profile in A is "
       "Rejected (OCPP 1.6 §9.4.3 lets a charger support Current, Power or both)."),
)

DEFECTS: dict[str, Defect] = {d.name: d for d in _ALL}
NEGATIVE: dict[str, Defect] = {n: d for n, d in DEFECTS.items() if not d.conformant}
VARIANTS: dict[str, Defect] = {n: d for n, d in DEFECTS.items() if d.conformant}


def validate(names: Iterable[str]) -> frozenset[str]:
    """The names as a frozenset; ValueError naming the unknown ones and the valid ones."""
    chosen = frozenset(names)
    unknown = sorted(chosen - DEFECTS.keys())
    if unknown:
        raise ValueError(f"unknown defect(s) {', '.join(unknown)}; known: {', '.join(sorted(DEFECTS))}")
    return chosen
