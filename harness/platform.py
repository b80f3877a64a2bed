"""How the ev.energy platform answers what a charger sends it (OCPP 1.6 §4 and §6).

The fake endpoint answers every charger-initiated CALL as the platform would, so a charger
can run normally while suites drive it. A test can override an answer for its own duration
(ChargerSession.answer).

`PlatformModel` is the platform's view of one charger (boot, connector statuses with the §4.9 transition check,
transactions, the heartbeat interval it gave) and the answers it gives. It is fed what the charger sent and what the
platform answered; it never sends anything (the session does: harness/session.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from harness import ocppj, spec16
from harness.conversation import ReceivedCall
from harness.findings import Finding


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


Answer = Any  # a payload (dict or `ocpp.v16.call_result` dataclass), an ocppj.CallError, or None (no answer)
AnswerHandler = Callable[[ReceivedCall], Any]  # may return an awaitable of an Answer
DEFAULT: Any = object()  # `PlatformModel.override`: no override, the platform's default answer


@dataclass
class Transaction:
    transaction_id: int
    connector_id: int
    id_tag: Any
    meter_start: Any
    started: ReceivedCall
    stopped: ReceivedCall | None = None


class PlatformModel:
    """The platform's view of one charger, for the whole run (it survives reconnects)."""

    def __init__(self, settings: PlatformSettings) -> None:
        self.platform = settings  # the name default_answer (Answering) reads
        # The last BootNotification the platform answered Accepted or Pending, counted once that answer was
        # on the wire (OCPP 1.6 §4.2: the boot completes with the answer; see boot_answered).
        self.boot: ReceivedCall | None = None
        self.boot_count = 0
        self.registration: str | None = None  # the status of the platform's last answer to a BootNotification
        self.heartbeat_interval: float | None = None  # the HeartbeatInterval the platform gave (boot, configuration)
        self.connector_status: dict[int, str] = {}
        self.status_history: deque[tuple[int, int, str]] = deque(maxlen=5000)  # (seq, connector, status)
        self.transactions: dict[int, Transaction] = {}
        self._answers: dict[str, AnswerHandler | None] = {}

    def active_transactions(self) -> list[Transaction]:
        return [t for t in self.transactions.values() if t.stopped is None]

    # --- what the charger sent ----------------------------------------------------------------------

    def track(self, call: ReceivedCall) -> tuple[bool, list[Finding]]:
        """Keep the view up to date with a CALL of the charger: whether it changed, and any §4.9 finding (ST-1's)."""
        payload = call.payload
        if call.action != "StatusNotification" or not isinstance(payload.get("connectorId"), int) or call.problems:
            return False, []
        findings: list[Finding] = []
        connector, new = payload["connectorId"], str(payload.get("status"))
        old = self.connector_status.get(connector)
        if old is not None and not spec16.is_legal_transition(old, new, connector_id=connector):
            # §4.9: every observed transition must be one the table allows; the test it happens in fails.
            allowed = sorted((spec16.CONNECTOR0_TRANSITIONS if connector == 0 else spec16.LEGAL_TRANSITIONS)
                             .get(old, frozenset()))
            findings.append(Finding(
                "illegal status transition",
                f"connector {connector}: {old} → {new} is not allowed by OCPP 1.6 §4.9 "
                f"(from {old}: {', '.join(allowed)})",
                ocppj.encode_json(payload),
                requirement="ST-1",
            ))
        elif old is None and connector == 0 and new not in spec16.CONNECTOR0_STATUSES:
            findings.append(Finding(
                "illegal status transition",
                f"connector 0 reported {new}: §4.9 allows only Available, Unavailable, Faulted on connector 0",
                ocppj.encode_json(payload),
                requirement="ST-1",
            ))
        self.connector_status[connector] = new
        self.status_history.append((call.seq, connector, new))
        return True, findings

    # --- what the platform answers --------------------------------------------------------------------

    def override(self, action: str) -> AnswerHandler | None:
        """A test's answer handler for `action`: None to stay silent, DEFAULT when no test overrides it."""
        return self._answers.get(action, DEFAULT)

    def default_answer(self, call: ReceivedCall) -> dict[str, Any]:
        return default_answer(self, call)

    def answered(self, call: ReceivedCall, payload: Mapping[str, Any]) -> bool:
        """The platform answers `call` with `payload`: learn from it; whether the view changed (a transaction)."""
        if call.action == "BootNotification" and payload.get("status") == "Accepted":
            with contextlib.suppress(TypeError, ValueError):
                self.heartbeat_interval = float(payload["interval"]) or None  # §4.2: the interval to use
        if call.action == "StartTransaction" and "transactionId" in payload:
            self.transactions[int(payload["transactionId"])] = Transaction(
                int(payload["transactionId"]), call.get("connectorId"), call.get("idTag"), call.get("meterStart"), call
            )
            return True
        if call.action == "StopTransaction":
            tx = self.transactions.get(call.get("transactionId"))
            if tx is not None:
                tx.stopped = call
                return True
        return False

    def boot_answered(self, call: ReceivedCall, answer: ocppj.CallResult) -> None:
        """The platform's answer to a BootNotification is on the wire (the send completed)."""
        self.registration = str(answer.payload.get("status"))
        # OCPP 1.6 §4.2: the boot completes with Accepted or Pending; the platform counts the charger
        # as booted once that answer is on the wire, not when the request came.
        if answer.payload.get("status") in ("Accepted", "Pending") and not call.problems:
            self.boot = call
            self.boot_count += 1

    def configured(self, action: str, payload: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
        """A CALL of the platform and the charger's CALLRESULT: the configuration it now has."""
        if (action == "ChangeConfiguration" and payload.get("key") == "HeartbeatInterval"
                and answer.get("status") == "Accepted"):
            with contextlib.suppress(KeyError, TypeError, ValueError):
                self.heartbeat_interval = float(payload["value"])

    # --- a test's overrides ------------------------------------------------------------------------------

    def answer(self, action: str, handler: AnswerHandler | Mapping[str, Any] | None) -> None:
        """Override the platform's answer to `action` until reset_answers() (the fixture resets per test).

        handler: a payload dict, or a function of the ReceivedCall returning a payload dict, an
        ocppj.CallError, or None to leave the CALL unanswered (a silent platform).
        """
        if handler is None or callable(handler):
            self._answers[action] = handler
        else:
            fixed = dict(handler)
            self._answers[action] = lambda _call: fixed

    @contextlib.contextmanager
    def answering(self, action: str, handler: AnswerHandler | Mapping[str, Any] | None) -> Iterator[None]:
        previous = self._answers.get(action, DEFAULT)
        self.answer(action, handler)
        try:
            yield
        finally:
            if previous is DEFAULT:
                self._answers.pop(action, None)
            else:
                self._answers[action] = previous

    def reset_answers(self) -> None:
        self._answers.clear()
