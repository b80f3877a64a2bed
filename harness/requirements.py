"""The catalogue of what ev.energy asks of an OCPP 1.6J charger.

Transcribed from ``docs/reference/ev-energy-requirements.md`` (ev.energy's "OCPP 1.6J charger
requirements", V1.1). Every ID there is here, with its title, its full text, the group it is listed
under and its *kind*, which decides how its verdict counts towards certification:

``mandatory``
    Must pass for ``certified``.
``conditional``
    Mandatory only under a condition the manufacturer declares. FW-1 (Firmware Management) is
    required only when ev.energy manages the charger's firmware: with
    ``declarations.firmware_managed_by_ev_energy`` True it counts as mandatory, with False it is
    ``not applicable``, and without a declaration it is ``not applicable`` with "no declaration".
``declared``
    Not testable over OCPP; the report records the manufacturer's statement (NF-1).
``recommended``
    Listed by ev.energy as "Not functional, recommended" (NF-2): tested and its verdict shown, but it
    does not block ``certified``.
``advisory``
    Findings outside ev.energy's list (robustness, broader OCPP practice). Listed separately in the
    report and never affect the overall verdict.

OR-groups: AUTH-1 and AUTH-2 form the group ``AUTH`` ("Basic Auth OR Certificates"): the group
passes when either member passes, and the other member then is not required. MV-1 and SC-1 have
*alternatives* that their tests resolve themselves (recording which one held); the catalogue lists
them so the report can show and check them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

#: The pytest marker naming the requirement(s) a test judges: ``@pytest.mark.requirement("SC-2")``.
MARKER = "requirement"


def requirement_ids(item: pytest.Item) -> list[str]:
    """The requirement IDs of a test, from all its ``requirement`` markers, in order, no repeats."""
    ids: list[str] = []
    for mark in item.iter_markers(MARKER):
        for arg in mark.args:
            for rid in [arg] if isinstance(arg, str) else list(arg):
                if str(rid) not in ids:
                    ids.append(str(rid))
    return ids


MANDATORY = "mandatory"
CONDITIONAL = "conditional"
DECLARED = "declared"
RECOMMENDED = "recommended"
ADVISORY = "advisory"
KINDS = (MANDATORY, CONDITIONAL, DECLARED, RECOMMENDED, ADVISORY)

TRANSPORT = "Transport and security"
PROFILES = "Profiles"
CONFIG = "Configuration and meter values"
STATUS = "Status notifications"
NON_FUNCTIONAL = "Not functional, recommended"
ADVISORY_GROUP = "Advisory (not on ev.energy's list)"
GROUPS = (TRANSPORT, PROFILES, CONFIG, STATUS, NON_FUNCTIONAL, ADVISORY_GROUP)

#: The TLS policy ev.energy's endpoint speaks (TLS-1).
TLS_POLICY = "ELBSecurityPolicy-TLS-1-2-Ext-2018-06"


@dataclass(frozen=True)
class Requirement:
    id: str
    title: str
    text: str
    group: str
    kind: str
    #: Name of the OR-group this requirement belongs to (e.g. "AUTH"), or None.
    or_group: str | None = None
    #: Alternatives a test may record in ``details["alternative"]`` (any one suffices).
    alternatives: tuple[str, ...] = ()
    #: Name of the manufacturer's declaration a conditional/declared requirement follows.
    declaration: str | None = None


@dataclass(frozen=True)
class OrGroup:
    id: str
    title: str
    members: tuple[str, ...]


OR_GROUPS: tuple[OrGroup, ...] = (
    OrGroup("AUTH", "Basic Auth OR Certificates", ("AUTH-1", "AUTH-2")),
)

R = Requirement

REQUIREMENTS: tuple[Requirement, ...] = (
    # -- Transport and security -------------------------------------------------------------
    R(
        "TLS-1",
        "WSS with TLS 1.2 and an allowed cipher suite",
        "The charger connects over WSS with TLS 1.2 and a cipher suite allowed by the AWS "
        "load-balancer policy `ELBSecurityPolicy-TLS-1-2-Ext-2018-06` (TLS 1.2 only; the 18 suites "
        "in ocpp16-notes.md). The platform's endpoint speaks exactly that policy: no TLS 1.0/1.1, "
        "no TLS 1.3.",
        TRANSPORT,
        MANDATORY,
    ),
    R(
        "TLS-2",
        "No plain WS",
        "Plain WS is not accepted. The endpoint refuses it; a charger that tries it fails.",
        TRANSPORT,
        MANDATORY,
    ),
    R(
        "TLS-3",
        "Server certificate validation",
        "The charger validates the platform's server certificate (chain to a trusted CA, host "
        "name, validity dates). This needs a correct system clock on the charger; keeping it with "
        "NTP is advised. A charger that connects to a server with an untrusted, expired or "
        "wrong-host certificate fails.",
        TRANSPORT,
        MANDATORY,
    ),
    R(
        "AUTH-1",
        "Basic Auth (security profile 2)",
        'Basic Auth (OCPP 1.6 security profile 2): HTTP Basic on the WebSocket upgrade, user = '
        'charge point identity, password = the `AuthorizationKey`. Today the platform supports '
        'profile 2 only. Changing the key over OCPP (ChangeConfiguration `AuthorizationKey`, the '
        "security whitepaper's rotation) is not in ev.energy's minimum: it is recommended, and "
        'judged as an advisory finding. Every answer OCPP allows is legal there: Accepted (then '
        'reconnect with the new key), RebootRequired (the new key from the next boot on), '
        'NotSupported or Rejected (the key is provisioned another way).',
        TRANSPORT,
        MANDATORY,
        or_group="AUTH",
    ),
    R(
        "AUTH-2",
        "Client certificates (security profile 3)",
        'Client certificates (security profile 3): announced as "coming soon". A charger passes '
        'AUTH if it meets AUTH-1 or AUTH-2 ("Basic Auth OR Certificates").',
        TRANSPORT,
        MANDATORY,
        or_group="AUTH",
    ),
    # -- Profiles -------------------------------------------------------------------------------
    R(
        "CORE-1",
        "Core profile",
        "Core profile: BootNotification, Heartbeat, StatusNotification, transactions, and correct "
        "answers to the platform's requests.",
        PROFILES,
        MANDATORY,
    ),
    R(
        "MV-1",
        "Power, or current and voltage, in MeterValues",
        "MeterValues carry `Power.Active.Import`, OR both `Current.Import` AND `Voltage`.",
        PROFILES,
        MANDATORY,
        alternatives=("Power.Active.Import", "Current.Import+Voltage"),
    ),
    R(
        "FW-1",
        "Firmware Management",
        "Firmware Management: required only if ev.energy manages the charger's firmware updates; "
        "not required if the manufacturer does. (UpdateFirmware with FirmwareStatusNotification; "
        "GetDiagnostics with DiagnosticsStatusNotification.)",
        PROFILES,
        CONDITIONAL,
        declaration="firmware_managed_by_ev_energy",
    ),
    R(
        "SC-1",
        "SetChargingProfile: TxProfile or ChargePointMaxProfile",
        "Smart Charging: the charger accepts SetChargingProfile with purpose `TxProfile` OR "
        "`ChargePointMaxProfile` (one of the two suffices).",
        PROFILES,
        MANDATORY,
        alternatives=("TxProfile", "ChargePointMaxProfile"),
    ),
    R(
        "SC-2",
        "Turning the charger on and off with a charging limit",
        'Turning the charger on and off: a limit the platform sets actually changes what the EV '
        'draws (0 stops the power, the status shows the EV is plugged but not charging; lifting '
        'it resumes). Limits go in a unit the charger declares in '
        '`ChargingScheduleAllowedChargingRateUnit`: current (A) where it allows both, power (W) '
        'for a charger that allows only Power.',
        PROFILES,
        MANDATORY,
    ),
    R(
        "RT-1",
        "Remote Trigger: BootNotification",
        "Remote Trigger: the platform triggers BootNotification remotely (TriggerMessage), and the "
        "charger sends it.",
        PROFILES,
        MANDATORY,
    ),
    R(
        "RT-2",
        "Remote Trigger: StatusNotification",
        "Remote Trigger: the platform triggers StatusNotification remotely, and the charger sends it.",
        PROFILES,
        MANDATORY,
    ),
    # -- Configuration and meter values ---------------------------------------------------------
    R(
        "CFG-1",
        "MeterValuesSampledData accepted",
        "The platform sends ChangeConfiguration `MeterValuesSampledData` = "
        "`Energy.Active.Import.Register,Power.Active.Import` (the document spells the key "
        '"MeterValuesSampleData"; the OCPP key is `MeterValuesSampledData`). The charger must '
        "accept it (a charger of the Current+Voltage kind must accept its own equivalent and say so).",
        CONFIG,
        MANDATORY,
    ),
    R(
        "CFG-2",
        "MeterValueSampleInterval = 60 accepted and honoured",
        "The platform sends ChangeConfiguration `MeterValueSampleInterval` = `60`; the charger "
        "accepts it and then samples every 60 s.",
        CONFIG,
        MANDATORY,
    ),
    R(
        "MV-2",
        "Consistent energy readings",
        "The platform records meter readings from StartTransaction (`meterStart`), StopTransaction "
        "(`meterStop`) and the `Energy.Active.Import.Register` measurand in MeterValues. They must "
        "be consistent: Wh or kWh, never decreasing, start ≤ samples ≤ stop.",
        CONFIG,
        MANDATORY,
    ),
    R(
        "MV-3",
        "Power reflects charging and agrees with energy",
        "The platform uses `Power.Active.Import` (or `Current.Import` with `Voltage`) to estimate "
        "how long to plan charging for, to compute each session's energy and cost, and to show "
        "whether the vehicle is charging or only plugged in. So power must be present during "
        "charging, near zero when not charging, and agree with the energy register over time.",
        CONFIG,
        MANDATORY,
    ),
    # -- Status notifications -----------------------------------------------------------------
    R("ST-1", "Available: vehicle unplugged", "`Available`: the vehicle is unplugged.", STATUS, MANDATORY),
    R(
        "ST-2",
        "Charging: vehicle charging",
        "`Charging` (together with imported power): the vehicle is charging.",
        STATUS,
        MANDATORY,
    ),
    R("ST-3", "Faulted: error state", "`Faulted`: the charger is in an error state.", STATUS, MANDATORY),
    R(
        "ST-4",
        "SuspendedEV / SuspendedEVSE: plugged, not charging",
        "`SuspendedEV` / `SuspendedEVSE`: the vehicle is plugged in but not charging.",
        STATUS,
        MANDATORY,
    ),
    # -- Not functional, recommended ----------------------------------------------------------
    R(
        "NF-1",
        "Remote access for support",
        "The charger can be reached remotely for support (web interface or SSH). Not testable over "
        "OCPP: the report records the manufacturer's statement.",
        NON_FUNCTIONAL,
        DECLARED,
        declaration="nf1_statement",
    ),
    R(
        "NF-2",
        "Robust connection strategy",
        "A robust connection strategy (WiFi and GSM recommended): the charger reconnects by itself "
        "after the connection drops, and does not lose transaction data (OCPP 1.6 §3.7: "
        "transaction messages are queued while offline and delivered in order).",
        NON_FUNCTIONAL,
        RECOMMENDED,
    ),
    # -- Advisory: outside ev.energy's list ---------------------------------------------------
    R(
        "ADV-1",
        "Robustness beyond ev.energy's list",
        "Findings outside ev.energy's list: how the charger copes with malformed or unexpected "
        "messages, unknown actions, duplicate or out-of-order frames, slow answers and repeated "
        "reconnects, and broader OCPP practice. Advisory only: never affects certification.",
        ADVISORY_GROUP,
        ADVISORY,
    ),
    R(
        "ADV-2",
        "AuthorizationKey rotation over OCPP",
        "The security whitepaper's key rotation: ChangeConfiguration `AuthorizationKey`. Accepted: the "
        "charger reconnects with the new key and the old key stops working. RebootRequired (OCPP §7.13): "
        "the new key from the next boot on. NotSupported or Rejected: the key is provisioned another "
        "way. Recommended, not in ev.energy's minimum (AUTH-1 is Basic auth itself): advisory only.",
        ADVISORY_GROUP,
        ADVISORY,
    ),
    R(
        "ADV-3",
        "Smart charging beyond SC-1",
        "Smart-charging behaviour the platform can use but ev.energy does not require: "
        "GetCompositeSchedule answered with the schedule in force, and the SC-1 alternative that was "
        "not needed (TxProfile or ChargePointMaxProfile). Advisory only: never affects certification.",
        ADVISORY_GROUP,
        ADVISORY,
    ),
)

del R

_BY_ID = {r.id: r for r in REQUIREMENTS}
assert len(_BY_ID) == len(REQUIREMENTS), "duplicate requirement ID"

#: The IDs on ev.energy's own list, in the document's order (everything but the advisory group).
EV_ENERGY_IDS: tuple[str, ...] = tuple(r.id for r in REQUIREMENTS if r.kind != ADVISORY)
ADVISORY_IDS: tuple[str, ...] = tuple(r.id for r in REQUIREMENTS if r.kind == ADVISORY)


def by_id(requirement_id: str) -> Requirement:
    """The catalogue entry for an ID (KeyError for an unknown one)."""
    try:
        return _BY_ID[requirement_id]
    except KeyError:
        raise KeyError(f"unknown requirement ID {requirement_id!r}") from None


def is_known(requirement_id: str) -> bool:
    return requirement_id in _BY_ID


def or_group(group_id: str) -> OrGroup:
    for group in OR_GROUPS:
        if group.id == group_id:
            return group
    raise KeyError(f"unknown OR-group {group_id!r}")


__all__ = [
    "ADVISORY",
    "ADVISORY_IDS",
    "CONDITIONAL",
    "DECLARED",
    "EV_ENERGY_IDS",
    "GROUPS",
    "KINDS",
    "MANDATORY",
    "OR_GROUPS",
    "RECOMMENDED",
    "REQUIREMENTS",
    "TLS_POLICY",
    "OrGroup",
    "Requirement",
    "by_id",
    "is_known",
    "or_group",
]
