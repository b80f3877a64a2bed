"""How the ev.energy platform answers what a charger sends it (OCPP 1.6 §4 and §6).

The fake endpoint answers every charger-initiated CALL as the platform would, so a charger
can run normally while suites drive it. A test can override an answer for its own duration
(ChargerSession.answer).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class Asked(Protocol):
    """What the platform's answer depends on: the CALL (its action and payload)."""

    @property
    def action(self) -> str: ...

    @property
    def payload(self) -> Mapping[str, Any]: ...


class Answering(Protocol):
    """Who answers: anything with the platform's settings (a ChargerSession). A protocol, so this module does
    not import the session that imports it."""

    @property
    def platform(self) -> PlatformSettings: ...


def utc_now() -> str:
    """RFC 3339 UTC time as the platform sends it."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Transaction ids are unique across the whole run, even across chargers and reconnects.
_transaction_ids = itertools.count(1001)


@dataclass
class PlatformSettings:
    heartbeat_interval: int = 300  # the interval in BootNotification.conf (s)
    # The RFID cards the platform knows: the rig presents the first (a bench charger's real card, from the
    # charger profile's `id_tags`); any other idTag is Invalid.
    id_tags: tuple[str, ...] = ("EVENERGY-TAG-1", "EVENERGY-TAG-2")

    @property
    def id_tag(self) -> str:
        """The card the rig presents (and RemoteStartTransaction names)."""
        return self.id_tags[0]

    @property
    def accepted_id_tags(self) -> frozenset[str]:
        return frozenset(self.id_tags)


def _id_tag_info(settings: PlatformSettings, id_tag: Any) -> dict[str, Any]:
    status = "Accepted" if isinstance(id_tag, str) and id_tag in settings.accepted_id_tags else "Invalid"
    return {"status": status}


def default_answer(session: Answering, call: Asked) -> dict[str, Any]:
    """The platform's answer to a charger CALL (robust to invalid payloads: the violation is recorded elsewhere)."""
    settings = session.platform
    payload = call.payload
    action = call.action
    if action == "BootNotification":
        return {"status": "Accepted", "currentTime": utc_now(), "interval": settings.heartbeat_interval}
    if action == "Heartbeat":
        return {"currentTime": utc_now()}
    if action == "Authorize":
        return {"idTagInfo": _id_tag_info(settings, payload.get("idTag"))}
    if action == "StartTransaction":
        # §3.7 / OCPP-J: the server must always answer StartTransaction, even when its own checks fail.
        return {"transactionId": next(_transaction_ids), "idTagInfo": _id_tag_info(settings, payload.get("idTag"))}
    if action == "StopTransaction":
        if "idTag" in payload:
            return {"idTagInfo": _id_tag_info(settings, payload.get("idTag"))}
        return {}
    if action == "DataTransfer":
        return {"status": "UnknownVendorId"}
    # StatusNotification, MeterValues, FirmwareStatusNotification, DiagnosticsStatusNotification,
    # SecurityEventNotification, LogStatusNotification, SignedFirmwareStatusNotification: empty confirmations.
    return {}
