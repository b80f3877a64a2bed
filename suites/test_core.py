"""CORE-1 extras: registration Pending then Accepted, Heartbeat, and well-formed answers to requests the
charger does not know or does not support (OCPP 1.6 §4.2, §4.6, §5; OCPP-J 1.6 §4.2.3).

suites/test_boot.py covers the cold boot (schema-valid BootNotification, heartbeats at the given
interval, a StatusNotification per connector after boot); this file covers the rest of CORE-1.
"""

from __future__ import annotations

import asyncio

import pytest
from ocpp.v16 import call
from ocpp.v16.enums import (
    ConfigurationStatus,
    DataTransferStatus,
    MessageTrigger,
    RegistrationStatus,
    TriggerMessageStatus,
)

from harness import ocppj
from harness.endpoint import CONNECTED, Endpoint
from harness.errors import CallErrorReceived, ChargerFailure, ExpectationTimeout, NoAnswer
from harness.fixtures import ChargerNeverConnected
from harness.platform import utc_now
from harness.session import ChargerSession, ReceivedCall
from harness.settings import Settings
from harness.trace import format_frames

pytestmark = pytest.mark.asyncio(loop_scope="session")

#: OCPP-J 1.6 §4.2.3: "NotImplemented: requested Action is not known by receiver"; "NotSupported:
#: requested Action is recognized but not supported by the receiver". Either is a correct refusal.
REFUSAL_CODES = ("NotImplemented", "NotSupported")


@pytest.mark.requirement("CORE-1")
async def test_charger_registers(csms: Endpoint, charger_backend: object, harness_settings: Settings) -> None:
    """CORE-1: the charger connects and registers with a schema-valid BootNotification (OCPP 1.6 §4.2; OCTT
    TC_001_CS). Judged without the booted-charger fixture: a charger whose BootNotification is invalid
    (which the platform cannot register) fails CORE-1 here instead of leaving the run only incomplete."""
    settings = harness_settings
    attempt = await csms.wait_attempt(
        lambda a: a.charger_id == settings.charger_id and a.outcome == CONNECTED, within=settings.connect_timeout
    )
    if attempt is None:
        seen = csms.attempts_for(settings.charger_id) or list(csms.attempts)
        # Not a CORE-1 finding: why it could not connect is TLS-1/TLS-2/AUTH-1's (the report says incomplete).
        raise ChargerNeverConnected(
            "charger never connected, so its BootNotification could not be judged:\n  "
            + "\n  ".join(a.summary() for a in seen[-10:] or ["no connection attempt at all"])
        )
    session = csms.session(settings.charger_id)
    first = await session.expect("BootNotification", since=0, within=settings.connect_timeout,
                                 describe="a BootNotification after connecting")
    invalid = [b for b in session.received("BootNotification", since=0) if b.problems]
    assert not invalid, (
        "expected a schema-valid BootNotification (OCPP 1.6 §4.2, BootNotification.req schema); the platform cannot "
        f"register the charger: {len(invalid)} invalid one(s), the first: "
        + "; ".join(str(p) for p in invalid[0].problems)
    )
    assert first.get("chargePointVendor") and first.get("chargePointModel"), "BootNotification without vendor/model"


def _pending_interval(settings: Settings) -> int:
    """The retry interval given with Pending: short in quick mode, a realistic one in certification."""
    return 1 if settings.quick else 20


@pytest.mark.requirement("CORE-1")
async def test_boot_pending_then_accepted(charger: ChargerSession, harness_settings: Settings) -> None:
    """CORE-1: after a reboot the platform answers BootNotification Pending; the charger sends no other
    request while Pending, answers the platform's requests, sends BootNotification again after the
    interval, and once Accepted carries on (OCPP 1.6 §4.2, registration status Pending; OCTT TC_002_CS
    Cold Boot Charge Point - Pending)."""
    settings = harness_settings
    interval = _pending_interval(settings)
    boots: list[ReceivedCall] = []

    def register(call: ReceivedCall) -> dict[str, object]:
        boots.append(call)
        if len(boots) == 1:
            return {"status": RegistrationStatus.pending, "currentTime": utc_now(), "interval": interval}
        return {"status": RegistrationStatus.accepted, "currentTime": utc_now(), "interval": settings.heartbeat_interval}

    since = charger.trace.next_seq
    with charger.answering("BootNotification", register):
        await charger.rig.reboot()
        first = await charger.expect("BootNotification", since=since, within=60, describe="a BootNotification after the reboot")
        # §4.2: while Pending the Central System may send requests (to read or set configuration); the
        # Charge Point SHOULD answer them. The platform's Pending answer is on the wire before this CALL goes
        # out (send_call waits for it). A charger that takes requests only once Accepted deviates from a
        # SHOULD, not a SHALL: an advisory finding, not a CORE-1 failure (docs/rules-frames.md).
        try:
            answer = await charger.call(call.GetConfiguration(key=["HeartbeatInterval"]))
            charger.note(f"answered GetConfiguration while Pending: {ocppj.payload_of(answer)}")
        except CallErrorReceived as exc:
            charger.note(f"answered GetConfiguration while Pending: CALLERROR {exc.code}")  # well-formed and prompt
        except NoAnswer:
            charger.advise(
                "ADV-1", "did not answer GetConfiguration while its registration was Pending (OCPP 1.6 §4.2: "
                "the Charge Point SHOULD respond to the Central System's requests while Pending)",
            )
        slack = max(5.0, float(interval))
        # The next request from the charger must be the BootNotification retry (whichever comes first is judged).
        second = await _next_request(charger, after=first, within=interval + slack)
        if second.action == "BootNotification":
            # Its answer is Accepted (the handler above): normal operation resumes from here.
            while_pending = [c for c in charger.received(since=first.seq) if c.seq < second.seq and c.action != "BootNotification"]
        else:
            while_pending = [second]
    assert not while_pending, (
        "expected no request from the charger while its registration was Pending, other than BootNotification "
        "(OCPP 1.6 §4.2: it SHALL NOT send requests unless told to with TriggerMessage); it sent: "
        + ", ".join(f"{c.action} {c.payload}" for c in while_pending[:8])
    )
    assert second.action == "BootNotification", "expected a second BootNotification"  # (while_pending covers the rest)
    gap = second.mono - first.mono
    charger.note(f"BootNotification again {gap:.2f} s after Pending (interval {interval} s)")
    if gap < interval * 0.9:
        # §4.2: the interval is the minimum wait; sending earlier is a SHOULD NOT: recorded, not failed.
        charger.note(f"the second BootNotification came earlier than the Pending interval ({gap:.2f} s < {interval} s)")
    await charger.expect(
        "StatusNotification", since=second.seq, within=10,
        describe="a StatusNotification after the registration was Accepted (the charger resumed normal operation)",
    )


#: Every request a 1.6 charge point can send (OCPP 1.6 §4), plus the security whitepaper's.
CHARGER_ACTIONS = (
    "Authorize", "BootNotification", "DataTransfer", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
    "Heartbeat", "MeterValues", "StartTransaction", "StatusNotification", "StopTransaction",
    "SecurityEventNotification", "LogStatusNotification", "SignedFirmwareStatusNotification",
)


async def _next_request(charger: ChargerSession, after: ReceivedCall, within: float) -> ReceivedCall:
    """The first request the charger sends after `after`, whatever its action (bounded)."""
    waits = {
        asyncio.ensure_future(charger.expect(action, where=lambda c: c.seq > after.seq, since=after.seq, within=within))
        for action in CHARGER_ACTIONS
    }
    try:
        while waits:
            done, waits = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            found = [t.result() for t in done if t.exception() is None]
            if found:
                return min(found, key=lambda c: c.seq)
        raise ExpectationTimeout(
            f"expected the charger to send BootNotification again after the Pending interval, within "
            f"{charger.settings.scaled(within):g} s; it sent nothing.\nFrames since:\n"
            + format_frames(charger.trace.since(after.seq))
        )
    finally:
        for task in waits:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


@pytest.mark.requirement("CORE-1")
async def test_heartbeat_is_sent_and_answered(charger: ChargerSession, harness_settings: Settings) -> None:
    """CORE-1: the charger sends Heartbeat (on TriggerMessage, or at its interval) with an empty payload
    and the platform's answer carries the current time (OCPP 1.6 §4.6, §6.31; OCTT TC_054 for the
    trigger)."""
    since = charger.trace.next_seq
    try:
        answer = await charger.call(call.TriggerMessage(requested_message=MessageTrigger.heartbeat))
        triggered = answer.status == TriggerMessageStatus.accepted
        if not triggered:
            charger.note(f"TriggerMessage Heartbeat answered {answer.status}: waiting for the periodic one")
    except CallErrorReceived as exc:
        triggered = False
        charger.note(f"TriggerMessage Heartbeat answered CALLERROR {exc.code}: waiting for the periodic one")
    interval = harness_settings.heartbeat_interval
    within = 10 if triggered else 2 * interval + max(1.0, 0.25 * interval)
    heartbeat = await charger.expect("Heartbeat", since=since, within=within)
    assert heartbeat.payload == {}, f"expected an empty Heartbeat payload (OCPP 1.6 §4.6); got {heartbeat.payload}"
    charger.note("Heartbeat " + ("on TriggerMessage" if triggered else "at its interval") + "; answered with currentTime")


@pytest.mark.requirement("CORE-1")
async def test_unknown_action_gets_a_callerror(charger: ChargerSession) -> None:
    """CORE-1: a CALL with an action the charger does not know gets a well-formed CALLERROR
    NotImplemented (or NotSupported) with the same message id (OCPP-J 1.6 §4.2.3, §4.1.3)."""
    try:
        # a raw frame on purpose: no ocpp dataclass exists for an action OCPP 1.6 does not have
        answer = await charger.call_raw("EvEnergyNoSuchAction", {"probe": True})
    except CallErrorReceived as exc:
        assert exc.code in REFUSAL_CODES, (
            f"expected CALLERROR NotImplemented (or NotSupported) for an unknown action (OCPP-J §4.2.3); got {exc.code}"
        )
        charger.note(f"unknown action: CALLERROR {exc.code} {exc.description!r}")
        return
    raise ChargerFailure(
        f"expected CALLERROR NotImplemented for the unknown action EvEnergyNoSuchAction (OCPP-J §4.2.3); the "
        f"charger answered it with a CALLRESULT {answer}"
    )


@pytest.mark.requirement("CORE-1")
async def test_unsupported_requests_get_correct_answers(charger: ChargerSession) -> None:
    """CORE-1: requests the charger may not support are answered correctly and schema-valid: an unknown
    configuration key gets NotSupported (§5.3, §9; OCTT TC_040 bad configuration keys) and is listed as
    unknown by GetConfiguration (§5.8); DataTransfer to an unknown vendor gets UnknownVendorId (§5.6);
    GetLocalListVersion (Local Auth List Management, optional) gets a list version or CALLERROR
    NotSupported/NotImplemented (§5.10)."""
    key = "EvEnergyNoSuchKey"
    problems: list[str] = []

    change = await charger.call(call.ChangeConfiguration(key=key, value="1"))
    if change.status != ConfigurationStatus.not_supported:
        problems.append(
            f"ChangeConfiguration of the unknown key {key}: expected NotSupported (§5.3: 'the requested key is "
            f"unknown'), got {change.status}"
        )

    config = await charger.call(call.GetConfiguration(key=[key]))
    known = [entry.get("key") for entry in config.configuration_key or []]
    if key not in (config.unknown_key or []) or key in known:
        problems.append(f"GetConfiguration of the unknown key {key}: expected it in unknownKey (§5.8), "
                        f"got {ocppj.payload_of(config)}")

    try:
        data = await charger.call(call.DataTransfer(vendor_id="energy.ev.harness.unknown", message_id="probe"))
        if data.status != DataTransferStatus.unknown_vendor_id:
            problems.append(
                "DataTransfer to an unknown vendorId: expected status UnknownVendorId (§5.6: 'SHALL return "
                f"UnknownVendorId'), got {data.status}"
            )
    except CallErrorReceived as exc:
        if exc.code not in REFUSAL_CODES:
            problems.append(f"DataTransfer: expected UnknownVendorId (or CALLERROR NotSupported), got CALLERROR {exc.code}")
        else:
            charger.note(f"DataTransfer not supported: CALLERROR {exc.code}")

    try:
        version = await charger.call(call.GetLocalListVersion())
        charger.note(f"GetLocalListVersion: listVersion {version.list_version}")
    except CallErrorReceived as exc:
        if exc.code not in REFUSAL_CODES:
            problems.append(
                f"GetLocalListVersion: expected a listVersion or CALLERROR NotSupported/NotImplemented, got CALLERROR {exc.code}"
            )
        else:
            charger.note(f"Local Auth List Management not supported: CALLERROR {exc.code}")

    assert not problems, "expected correct answers to requests the charger does not support:\n  " + "\n  ".join(problems)
