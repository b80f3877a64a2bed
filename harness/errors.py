"""Failures the harness raises into the test that caused them.

They subclass AssertionError: each is a finding about the charger (it did not answer, it sent
something invalid), so pytest reports the test as failed, with the evidence in the message.
Anything else a test raises is not about the charger: a rig that failed (harness.drivers.base.RigError)
or the harness itself (HarnessError, any other exception) makes the test an "error" (verdict
incomplete), never a failure (docs/rules-verdicts.md).
"""

from __future__ import annotations

from typing import Any


class ChargerFailure(AssertionError):
    """The charger did not do what the requirement asks; the message says expected vs actual.

    `requirements` names the requirement a finding is about when it is not the test's own: a §4.9
    transition seen during an SC-2 test is an ST-1 finding, so the report files it under ST-1.
    """

    def __init__(self, *args: object, requirements: tuple[str, ...] = ()) -> None:
        super().__init__(*args)
        self.requirements = requirements


class NoAnswer(ChargerFailure):
    """A CALL from the harness got no CALLRESULT/CALLERROR within its timeout."""


class ExpectationTimeout(ChargerFailure):
    """The charger did not send the expected message within the bound."""


class ChargerDisconnected(ChargerFailure):
    """The connection closed while the harness was waiting for the charger."""


class NotConnected(ChargerFailure):
    """The harness needed to talk to the charger, but it is not connected."""


class ChargerSilent(ChargerFailure):
    """The charger fell silent (docs/rules-silence.md): it left a CALL of the harness unanswered and has sent
    nothing for the silence bound. The harness no longer waits for it: each wait that needs it fails at once,
    naming that one cause, until the charger sends something again (any frame, or a new connection)."""


class ProtocolViolation(ChargerFailure):
    """Frames from the charger broke OCPP-J 1.6 (schema, frame shape, ids, pairing)."""


class CallErrorReceived(ChargerFailure):
    """The charger answered a CALL with a CALLERROR."""

    def __init__(self, action: str, code: str, description: str, details: dict[str, Any] | None = None) -> None:
        self.action = action
        self.code = code
        self.description = description
        self.details = details or {}
        super().__init__(
            f"the charger answered {action} with CALLERROR {code}"
            + (f": {description}" if description else "")
            + (f" {self.details}" if self.details else "")
        )


class AdvisoryFinding(UserWarning):
    """An advisory finding (about an ADV-* requirement): shown as a pytest warning, never a failure.

    The plugin issues it for each finding (``charger.advise(...)``, or a failed check in a test whose
    requirement markers are all advisory); the report and JUnit list the same findings.
    """


class HarnessError(Exception):
    """The harness itself went wrong (a bug, a missing file): not a finding about the charger. The test is an
    "error" (verdict incomplete), like any exception that is no AssertionError."""


# --- the rig (harness/drivers/: every backend raises these) ---------------------------------------------------


class RigError(Exception):
    """The rig failed to perform an act (bad status, no answer, command failed).

    Not a finding about the charger (it is no AssertionError): the test that needed the act is an
    "error" (verdict incomplete), naming the act and the rig's answer. `act` names the act when known.
    """

    def __init__(self, message: str, *, act: str | None = None) -> None:
        super().__init__(message)
        self.act = act


class ActNotSupported(Exception):
    """This rig cannot perform that act: the test that needs it is "not tested", not failed."""

    def __init__(self, act: str, detail: str = "") -> None:
        self.act = act
        super().__init__(f"the charger rig cannot perform '{act}'" + (f": {detail}" if detail else ""))
