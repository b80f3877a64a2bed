"""How a charging session ends: every common way, each judged on its status transitions (ST-1), its
StopTransaction (CORE-1) and its meterStop (MV-2). Rules: docs/rules-session-end.md.

The other suites end their sessions through RemoteStopTransaction or the driver's card; a driver
unplugging the cable is the most common end of a real session. Five ways are exercised, each once:

- ``unplug-charging``: the EV is unplugged while it draws power;
- ``unplug-suspended``: the EV pauses (the rig's ``ev`` act), then is unplugged;
- ``remote``: RemoteStopTransaction, then the unplug;
- ``local``: the driver presents the same card again (the rig's ``authorize``), then the unplug;
- ``offline``: the network is cut (the rig's ``network`` act), the EV is unplugged, the network comes
  back; the queued StopTransaction arrives after the reconnect (its delivery is NF-2's, judged in
  test_offline.py; here only its fields and the transitions are judged).

One session per way serves three tests, each judging one requirement so that a defect fails only
its own (the first of them to run records the session; the others judge the same recording, whose
frames are in the evidence of the test that recorded it):

- ST-1 (``test_statuses_when_the_session_ends``): every status change of the connector is one the
  OCPP 1.6 §4.9 table allows (the session itself also records every illegal one as an ST-1 finding),
  the connector is not Available while the EV is still plugged, and it is Available once the EV is
  unplugged ("Available: the vehicle is unplugged").
- CORE-1 (``test_stop_transaction_when_the_session_ends``): a StopTransaction for the transaction,
  with the reason the way of ending calls for (§7.36), and a timestamp inside the session.
- MV-2 (``test_meter_stop_when_the_session_ends``): meterStart ≤ every register reading of the
  transaction ≤ meterStop.

Every wait is for an event (a status, a StopTransaction, a reconnect), bounded; none is a fixed window.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from ocpp.v16 import call
from ocpp.v16.enums import ConfigurationStatus, RemoteStartStopStatus

from harness import meter, ocppj, spec16
from harness.drivers.base import RigError
from harness.errors import CallErrorReceived, ChargerFailure, ExpectationTimeout, NoAnswer
from harness.flows import LATE_DELIVERY, Charging, configured_value, start_charging
from harness.session import ChargerSession, ReceivedCall
from harness.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

UNPLUG_CHARGING = "unplug-charging"
UNPLUG_SUSPENDED = "unplug-suspended"
REMOTE = "remote"
LOCAL = "local"
OFFLINE = "offline"
PATHS = (UNPLUG_CHARGING, UNPLUG_SUSPENDED, REMOTE, LOCAL, OFFLINE)
UNPLUG_PATHS = frozenset({UNPLUG_CHARGING, UNPLUG_SUSPENDED, OFFLINE})  # the unplug itself ends the transaction

STATUS_WITHIN = 10.0  # s from an act to the status it causes (plus the charger's MinimumStatusDuration)
STOP_WITHIN = 15.0  # s from the act that ends the transaction to its StopTransaction (online)
TIMESTAMP_SLACK = 2.0  # s: OCPP timestamps are often whole seconds, on both StartTransaction and StopTransaction
IN_TRANSACTION = frozenset({spec16.CHARGING, spec16.SUSPENDED_EV, spec16.SUSPENDED_EVSE})
SUSPENDED = frozenset({spec16.SUSPENDED_EV, spec16.SUSPENDED_EVSE})

# §7.36 Reason, per way of ending. §6.49 StopTransaction.req reason: "Optional. This contains the reason why
# the transaction was stopped. MAY only be omitted when the Reason is "Local"." (None = omitted.)
# EVDisconnected: "Disconnecting of cable, vehicle moved away from inductive charge unit."
# Remote: "Stopped remotely on request of the user."
# Local: "Stopped locally on request of the user at the Charge Point. ... Examples: presenting an RFID tag".
EXPECTED_REASONS: dict[str, frozenset[str | None]] = {
    UNPLUG_CHARGING: frozenset({"EVDisconnected"}),
    UNPLUG_SUSPENDED: frozenset({"EVDisconnected"}),
    REMOTE: frozenset({"Remote"}),
    LOCAL: frozenset({"Local", None}),
    OFFLINE: frozenset({"EVDisconnected"}),
}
# "Other: Any other reason." Vague where a specific reason applies, but it states nothing false: an
# advisory finding (ADV-1), not a CORE-1 failure. Any other reason names a cause that did not happen.
VAGUE_REASON = "Other"

WHAT = {
    UNPLUG_CHARGING: "the EV was unplugged while charging",
    UNPLUG_SUSPENDED: "the EV was unplugged while suspended (it had paused by itself)",
    REMOTE: "the platform sent RemoteStopTransaction",
    LOCAL: "the driver presented the same card again",
    OFFLINE: "the EV was unplugged while the charger was offline",
}


def _offline_bounds(settings: Settings) -> tuple[float, float]:
    """(reconnect, delivery) for the offline way: how long the charger may take to come back, and then to
    deliver the queued StopTransaction: NF-2's LATE_DELIVERY in every mode (late is not lost; some chargers flush
    their queue on a 60 s timer, which quick mode cannot shorten), waited only by a charger that is that slow.
    Waiting it out matters beyond this test too: §3.7 delivers in order, so the next session's StartTransaction
    would queue behind an undelivered StopTransaction. The tests carry a test_bound that fits it."""
    return (15.0, LATE_DELIVERY) if settings.quick else (180.0, max(180.0, LATE_DELIVERY))


#: The bound of the tests that may record the offline way (plugin marker test_bound): reconnecting, the late
#: delivery and the statuses around it, in quick mode too.
OFFLINE_WAY_TEST_BOUND = 15.0 + LATE_DELIVERY + 45.0


# --- the recording -------------------------------------------------------------------------------


@dataclass
class Ending:
    """One session ended one way: what the charger sent, and when the harness acted."""

    path: str
    test: str  # nodeid of the test that recorded it
    connector: int = 1
    session: Charging | None = None
    start_failure: BaseException | None = None  # the session could not be started (CORE-1 judges it)
    before: str | None = None  # the connector's status before the session
    begin_mono: float = 0.0  # just before the plug-in
    act_mono: float = 0.0  # just before the act that ends the transaction
    act_seq: int = 0
    remote_answer: str | None = None  # RemoteStopTransaction's status (remote way)
    stop: ReceivedCall | None = None
    stop_bound: float = STOP_WITHIN
    while_plugged: str | None = None  # the status reported after the stop, the EV still plugged (remote, local)
    unplug_seq: int | None = None
    available: bool = False  # Available reported after the unplug
    statuses: list[tuple[int, str]] = field(default_factory=list)  # (seq, status) of the connector
    notes: list[str] = field(default_factory=list)
    first_seq: int = 0
    last_seq: int = 0

    def sequence(self, statuses: list[tuple[int, str]] | None = None) -> str:
        shown = [s for _seq, s in (self.statuses if statuses is None else statuses)]
        return " → ".join([f"({self.before})" if self.before else "(no status)"] + shown)


_RECORDINGS: weakref.WeakKeyDictionary[ChargerSession, dict[str, Ending | BaseException]] = weakref.WeakKeyDictionary()
_MINIMUM_STATUS_DURATION: weakref.WeakKeyDictionary[ChargerSession, int] = weakref.WeakKeyDictionary()


async def _status_bound(charger: ChargerSession) -> float:
    """STATUS_WITHIN plus the charger's MinimumStatusDuration (§9.1, optional: shorter states may go unreported)."""
    if charger not in _MINIMUM_STATUS_DURATION:
        value = await configured_value(charger, "MinimumStatusDuration")
        _MINIMUM_STATUS_DURATION[charger] = int(value) if value and value.strip().isdigit() else 0
    return STATUS_WITHIN + _MINIMUM_STATUS_DURATION[charger]


async def _unplug_ends_transactions(charger: ChargerSession) -> str | None:
    """Make the unplug end the transaction; None if it does, else why these ways cannot be tested.

    §9.1 StopTransactionOnEVSideDisconnect: "When set to true, the Charge Point SHALL administratively stop
    the transaction when the cable is unplugged from the EV." With false the transaction goes on (§4.10), so
    an unplug is no end of the session: the key is set to true for the test (the fixture restores it)."""
    value = await configured_value(charger, "StopTransactionOnEVSideDisconnect")
    if value is None or value.strip().lower() != "false":
        return None
    try:
        answer = await charger.call(call.ChangeConfiguration(key="StopTransactionOnEVSideDisconnect", value="true"))
        status = str(answer.status)
    except CallErrorReceived as exc:
        status = f"CALLERROR {exc.code}"
    if status == ConfigurationStatus.accepted:
        charger.note("StopTransactionOnEVSideDisconnect was false: set to true for this test (restored afterwards)")
        return None
    return (f"the charger keeps the transaction when the EV is unplugged (StopTransactionOnEVSideDisconnect=false, "
            f"OCPP 1.6 §9.1) and answered {status} to setting it to true")


async def _wait_status(charger: ChargerSession, connector: int, wanted: frozenset[str], within: float) -> bool:
    """Wait until the connector's last reported status is in `wanted`; False when the bound passed."""
    try:
        await charger.wait_until(lambda: charger.connector_status.get(connector) in wanted, within,
                                 f"connector {connector} to report {' or '.join(sorted(wanted))}")
    except ExpectationTimeout:
        return False
    return True


async def _expect_stop(charger: ChargerSession, rec: Ending, within: float) -> None:
    assert rec.session is not None
    tx = rec.session.transaction_id
    try:
        rec.stop = await charger.expect("StopTransaction", where=lambda c: c.get("transactionId") == tx, since=rec.act_seq,
                                        within=within, describe=f"a StopTransaction for transaction {tx}")
    except ExpectationTimeout:
        rec.stop = None
    rec.stop_bound = within


async def _unplug(charger: ChargerSession, rec: Ending, bound: float) -> None:
    rec.unplug_seq = charger.trace.next_seq
    await charger.rig.plugout(rec.connector)
    rec.available = await _wait_status(charger, rec.connector, frozenset({spec16.AVAILABLE}), bound)


async def _record(charger: ChargerSession, settings: Settings, path: str, nodeid: str) -> Ending:
    rec = Ending(path, nodeid)
    rec.first_seq = charger.trace.next_seq
    bound = await _status_bound(charger)
    connector = rec.connector
    if path in UNPLUG_PATHS:
        why = await _unplug_ends_transactions(charger)
        if why is not None:
            pytest.skip(f"not tested: {why}")
    rec.before = charger.connector_status.get(connector)
    since = charger.trace.next_seq
    rec.begin_mono = time.monotonic()
    try:
        rec.session = await start_charging(charger, connector)
    except ChargerFailure as exc:
        rec.start_failure = exc
        return _finish(charger, rec, since)

    # The transaction runs (whichever in-transaction status: Charging is ST-2's, Suspended* ST-4's).
    if not await _wait_status(charger, connector, IN_TRANSACTION, bound):
        rec.notes.append(f"the connector did not report Charging, SuspendedEV or SuspendedEVSE once the transaction "
                         f"started (it reported {charger.connector_status.get(connector)}; ST-2/ST-4 judge that)")
    if path == UNPLUG_SUSPENDED:
        await charger.rig.ev_suspend(True, connector)
        if not await _wait_status(charger, connector, SUSPENDED, bound):
            rec.notes.append(f"the connector did not report SuspendedEV after the EV paused (it reported "
                             f"{charger.connector_status.get(connector)}; ST-4 judges that); unplugged anyway")

    rec.act_seq, rec.act_mono = charger.trace.next_seq, time.monotonic()
    if path in (UNPLUG_CHARGING, UNPLUG_SUSPENDED):
        await _unplug(charger, rec, bound)
        await _expect_stop(charger, rec, STOP_WITHIN)
    elif path in (REMOTE, LOCAL):
        if path == REMOTE:
            try:
                answer = await charger.call(call.RemoteStopTransaction(transaction_id=rec.session.transaction_id))
                rec.remote_answer = str(answer.status)
            except (CallErrorReceived, NoAnswer) as exc:  # CORE-1's finding; the unplug below still ends the session
                rec.remote_answer = f"CALLERROR {exc.code}" if isinstance(exc, CallErrorReceived) else "nothing (no answer)"
        else:
            await charger.rig.authorize(charger.platform.id_tag, connector)
        if rec.remote_answer in (None, RemoteStartStopStatus.accepted):
            await _expect_stop(charger, rec, STOP_WITHIN)
            # The EV is still plugged: the connector leaves the in-transaction states (Finishing, §4.9 C6)...
            if await _wait_status(charger, connector, frozenset(spec16.STATUSES) - IN_TRANSACTION, bound):
                rec.while_plugged = charger.connector_status.get(connector)
            else:
                rec.notes.append(f"after the stop, with the EV still plugged in, the connector stayed "
                                 f"{charger.connector_status.get(connector)}")
        await _unplug(charger, rec, bound)  # ... and is Available once the EV is unplugged.
    else:
        await _record_offline(charger, settings, rec, bound)
    return _finish(charger, rec, since)


async def _record_offline(charger: ChargerSession, settings: Settings, rec: Ending, bound: float) -> None:
    reconnect_bound, delivery_bound = _offline_bounds(settings)
    await charger.rig.network(False)  # an unsupported act makes every test of this way "not tested"
    restored = False
    try:
        try:
            await charger.wait_disconnected(within=10)
        except ExpectationTimeout:
            raise RigError("the rig reported the network cut, but the charger stayed connected") from None
        rec.act_seq, rec.act_mono = charger.trace.next_seq, time.monotonic()
        rec.unplug_seq = rec.act_seq
        await charger.rig.plugout(rec.connector)
        await charger.rig.network(True)
        restored = True
    finally:
        if not restored:
            await charger.rig.network(True)
    back = time.monotonic()
    try:
        await charger.wait_connected(within=reconnect_bound)
    except ExpectationTimeout:
        rec.notes.append(f"the charger did not reconnect within {settings.scaled(reconnect_bound):g} s after the network "
                         "came back (NF-2 judges that)")
        return
    rec.notes.append(f"reconnected {time.monotonic() - back:.1f} s after the network came back")
    # The queued StopTransaction may come late (a charger flushing its queue on a timer): the delivery bound.
    # The Available status then has the usual status bound (a charger that holds back its statuses with the
    # queue sends them with it, or before it).
    await _expect_stop(charger, rec, delivery_bound)
    if rec.stop is not None:
        rec.notes.append(f"the StopTransaction arrived {rec.stop.mono - back:.1f} s after the network came back")
    rec.available = await _wait_status(charger, rec.connector, frozenset({spec16.AVAILABLE}), bound)


def _finish(charger: ChargerSession, rec: Ending, since: int) -> Ending:
    rec.statuses = [(seq, status) for seq, cid, status in charger.status_history if cid == rec.connector and seq >= since]
    rec.last_seq = charger.trace.next_seq - 1
    return rec


async def recorded(charger: ChargerSession, settings: Settings, request: pytest.FixtureRequest, path: str) -> Ending:
    """The session that ended `path`'s way (recorded now if no test of this way recorded it yet)."""
    per_charger = _RECORDINGS.setdefault(charger, {})
    found = per_charger.get(path)
    if found is None:
        try:
            found = await _record(charger, settings, path, request.node.nodeid)
        except BaseException as exc:  # noqa: BLE001 - every test of this way reports the same cause
            if not isinstance(exc, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)):
                per_charger[path] = exc  # a skipped (rig) or errored recording: the other tests say the same
            raise
        per_charger[path] = found
        charger.note(f"this test recorded the session ended this way: {WHAT[path]} "
                     f"(frames #{found.first_seq}..#{found.last_seq})")
    elif isinstance(found, BaseException):
        raise found
    else:
        charger.note(f"judged on the session recorded during {found.test} (frames #{found.first_seq}..#{found.last_seq})")
    for note in found.notes:
        charger.note(note)
    return found


def _started(rec: Ending, judged: str) -> Charging:
    """The session, or "not tested" when it could not be started (a CORE-1 matter, judged there)."""
    if rec.session is None:
        first = str(rec.start_failure).splitlines()[0] if rec.start_failure else "no session"
        pytest.skip(f"not tested: no session could be started, so {judged} cannot be judged ({first}; CORE-1 judges that)")
    return rec.session


# --- ST-1 ----------------------------------------------------------------------------------------


@pytest.mark.requirement("ST-1")
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.test_bound(OFFLINE_WAY_TEST_BOUND)
async def test_statuses_when_the_session_ends(
    charger: ChargerSession, harness_settings: Settings, request: pytest.FixtureRequest, path: str
) -> None:
    """ST-1: however the session ends, every status change of the connector is one OCPP 1.6 §4.9 allows,
    the connector is not Available while the EV is still plugged in, and it is Available once the EV is
    unplugged ("Available: the vehicle is unplugged"). Charging → Available directly on an unplug is legal
    (§4.9 C1); Finishing may or may not come in between. After a remote or local stop the EV is still
    plugged: Finishing (§4.9 C6) is expected, never Available."""
    rec = await recorded(charger, harness_settings, request, path)
    _started(rec, "the statuses of its end")
    problems: list[str] = []
    previous = rec.before
    for seq, status in rec.statuses:
        # §4.9 "possible transitions"; a repeated status is no transition. (The session also records each
        # illegal one as an ST-1 finding of the test it happens in: this check makes the verdict the same
        # whichever test recorded the session.)
        if previous is not None and not spec16.is_legal_transition(previous, status, connector_id=rec.connector):
            allowed = ", ".join(sorted(spec16.LEGAL_TRANSITIONS.get(previous, frozenset())))
            problems.append(f"{previous} → {status} (frame #{seq}) is not allowed by OCPP 1.6 §4.9 (from {previous}: {allowed})")
        previous = status
    if rec.while_plugged == spec16.AVAILABLE:
        problems.append("it reported Available after the stop while the EV was still plugged in (ST-1: Available means "
                        "the vehicle is unplugged; §4.9: Finishing until the cable is removed)")
    if not rec.available:
        after = [(seq, s) for seq, s in rec.statuses if rec.unplug_seq is not None and seq >= rec.unplug_seq]
        problems.append(f"it did not report Available once the EV was unplugged (after the unplug it reported "
                        f"{' → '.join(s for _seq, s in after) or 'nothing'}; last status "
                        f"{charger.connector_status.get(rec.connector)})")
    assert not problems, (
        f"expected legal status transitions ending in Available when {WHAT[path]} (OCPP 1.6 §4.9, §7.7; ST-1); "
        f"connector {rec.connector} reported {rec.sequence()}:\n  - " + "\n  - ".join(problems)
    )
    charger.note(f"connector {rec.connector}: {rec.sequence()}")


# --- CORE-1 --------------------------------------------------------------------------------------


@pytest.mark.requirement("CORE-1")
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.test_bound(OFFLINE_WAY_TEST_BOUND)
async def test_stop_transaction_when_the_session_ends(
    charger: ChargerSession, harness_settings: Settings, request: pytest.FixtureRequest, path: str
) -> None:
    """CORE-1 (transactions): however the session ends, the charger sends a StopTransaction for the
    transaction (OCPP 1.6 §4.10), with the reason this way calls for (§7.36: EVDisconnected for an
    unplug, Remote after RemoteStopTransaction, Local or omitted for the driver's card; "Other" is an
    advisory finding) and a timestamp inside the session (§6.49: "the date and time on which the
    transaction is stopped"), compared with the StartTransaction's so that the charger's clock offset
    does not count. An offline StopTransaction that never arrives is NF-2's ("not tested" here)."""
    rec = await recorded(charger, harness_settings, request, path)
    if rec.session is None:
        assert rec.start_failure is not None
        raise rec.start_failure
    tx = rec.session.transaction_id
    if path == REMOTE:
        assert rec.remote_answer == RemoteStartStopStatus.accepted, (
            f"expected RemoteStopTransaction for the running transaction {tx} to be Accepted (OCPP 1.6 §5.12); "
            f"the charger answered {rec.remote_answer}"
        )
    if rec.stop is None:
        if path == OFFLINE:
            pytest.skip(f"not tested: the StopTransaction of transaction {tx}, produced offline, did not arrive within "
                        f"{harness_settings.scaled(rec.stop_bound):g} s of the reconnect (NF-2 judges its delivery)")
        raise ExpectationTimeout(
            f"expected a StopTransaction for transaction {tx} within {harness_settings.scaled(rec.stop_bound):g} s after "
            f"{WHAT[path]} (OCPP 1.6 §4.10); none arrived"
        )
    stop = rec.stop
    problems: list[str] = []
    reason = stop.get("reason")
    expected = EXPECTED_REASONS[path]
    shown = " or ".join(sorted("omitted" if r is None else r for r in expected))
    if reason == VAGUE_REASON:
        charger.advise("ADV-1", f"StopTransaction reason Other when {WHAT[path]}: OCPP 1.6 §7.36 has a specific "
                                f"reason for it ({shown})", ocppj.encode_json(stop.payload), seq=stop.seq)
    elif reason not in expected:
        said = "omitted (that means Local, §6.49)" if reason is None else repr(reason)
        problems.append(f"reason {said}; expected {shown} when {WHAT[path]} (OCPP 1.6 §7.36)")
    problems += _timestamp_problems(rec, stop)
    assert not problems, (
        f"expected a StopTransaction that says how and when transaction {tx} ended (OCPP 1.6 §4.10, §6.49; CORE-1); "
        f"frame #{stop.seq} {ocppj.encode_json(stop.payload)[:300]}:\n  - " + "\n  - ".join(problems)
    )
    charger.note(f"StopTransaction reason {reason if reason is not None else 'omitted (Local)'}, "
                 f"timestamp {stop.get('timestamp')}")


def _timestamp_problems(rec: Ending, stop: ReceivedCall) -> list[str]:
    """The StopTransaction's timestamp against the StartTransaction's, in the charger's own clock: the
    transaction cannot have ended before the act that ended it, nor after its StopTransaction arrived."""
    assert rec.session is not None
    start = rec.session.start
    try:
        began = ocppj.parse_datetime(str(start.get("timestamp")))
        ended = ocppj.parse_datetime(str(stop.get("timestamp")))
    except ValueError as exc:
        return [f"a timestamp that is not an RFC 3339 date-time: {exc}"]
    span = (ended - began).total_seconds()
    # The start was stamped after the plug-in began and before its frame arrived; the stop after the act
    # that ended it began and before its frame arrived.
    shortest = rec.act_mono - start.mono
    longest = stop.mono - rec.begin_mono
    if span < shortest - TIMESTAMP_SLACK:
        return [f"timestamp {stop.get('timestamp')} is {span:.1f} s after the StartTransaction's "
                f"({start.get('timestamp')}); the act that ended it came {shortest:.1f} s after the StartTransaction "
                "arrived: it says the transaction ended before it did"]
    if span > longest + TIMESTAMP_SLACK:
        return [f"timestamp {stop.get('timestamp')} is {span:.1f} s after the StartTransaction's "
                f"({start.get('timestamp')}), but the whole session took {longest:.1f} s until the StopTransaction "
                "arrived: it says the transaction ended after it was reported"]
    return []


# --- MV-2 ----------------------------------------------------------------------------------------


@pytest.mark.requirement("MV-2")
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.test_bound(OFFLINE_WAY_TEST_BOUND)
async def test_meter_stop_when_the_session_ends(
    charger: ChargerSession, harness_settings: Settings, request: pytest.FixtureRequest, path: str
) -> None:
    """MV-2: however the session ends, meterStart ≤ every Energy.Active.Import.Register reading of the
    transaction (its MeterValues and the StopTransaction's transactionData, Wh or kWh) ≤ meterStop
    (OCPP 1.6 §4.8, §4.10, §7.43; "never decreasing, start ≤ samples ≤ stop")."""
    rec = await recorded(charger, harness_settings, request, path)
    session = _started(rec, "its meterStop")
    if rec.stop is None:
        pytest.skip("not tested: no StopTransaction arrived, so there is no meterStop (CORE-1 / NF-2 judge that)")
    stop = rec.stop
    tx = session.transaction_id
    try:
        start_wh = Decimal(str(session.start.get("meterStart")))
        stop_wh = Decimal(str(stop.get("meterStop")))
    except ArithmeticError:
        pytest.fail(f"expected integer meterStart and meterStop in Wh (OCPP 1.6 §6.46, §6.49; MV-2): "
                    f"{session.start.get('meterStart')!r}, {stop.get('meterStop')!r}")
    problems: list[str] = []
    if stop_wh < start_wh:
        problems.append(f"meterStop {stop_wh} Wh is below meterStart {start_wh} Wh")
    sources: list[tuple[str, list[dict[str, object]]]] = [
        (f"MeterValues frame #{c.seq}", list(c.get("meterValue") or []))
        for c in charger.received("MeterValues", since=session.since) if c.get("transactionId") == tx
    ]
    sources.append((f"StopTransaction frame #{stop.seq} transactionData", list(stop.get("transactionData") or [])))
    count = 0
    for what, entries in sources:
        readings = meter.energy_registers(meter.samples([e for e in entries if isinstance(e, dict)], errors=[]))
        for r in readings:
            count += 1
            try:
                wh, step = r.in_base_unit, r.resolution
            except meter.MeterFormatError:
                continue  # a malformed reading is MV-1/MV-2's main test's finding
            slack = max(step, Decimal(1))
            if wh > stop_wh + slack:
                problems.append(f"{what}: register {r.value} {r.unit or 'Wh'} is above meterStop {stop_wh} Wh")
            elif wh < start_wh - slack:
                problems.append(f"{what}: register {r.value} {r.unit or 'Wh'} is below meterStart {start_wh} Wh")
    assert not problems, (
        f"expected meterStart ≤ register readings ≤ meterStop for transaction {tx} when {WHAT[path]} (MV-2):\n  - "
        + "\n  - ".join(problems)
    )
    charger.note(f"meterStart {start_wh} Wh, meterStop {stop_wh} Wh ({stop_wh - start_wh} Wh); "
                 f"{count} register readings in between")

