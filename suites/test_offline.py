"""NF-2: a robust connection: the charger reconnects by itself and loses no transaction data.

OCPP 1.6 §3.7 (transaction-related messages: StartTransaction, StopTransaction and the periodic
MeterValues of a transaction are queued while offline and delivered, in order, once the connection
is back); §4.7, §4.10; OCTT TC_036_CS (connection loss during a transaction).

The test (on the run's metered session, harness/metered_session/) charges, holds the platform's answer to a MeterValues of the transaction and cuts the
charger's network while that message is in flight (the rig's network act; when the rig cannot, the
platform drops the socket and refuses reconnection by presenting a certificate the charger must not
trust), lets the meter sample offline, ends the session at the charger (the driver's card, then the
unplug: RemoteStop is impossible offline), restores the network, and then checks what arrives: the
message that was in flight, the offline MeterValues and the StopTransaction, in order, none lost,
none duplicated. Late is not lost: the charger has LATE_DELIVERY seconds after reconnecting.

It judges delivery, order and loss only: how often the charger samples is CFG-2's (loss is judged
against the charger's own sampling period, as observed online). The rules: docs/rules-offline.md.

test_heartbeats_continue_after_reconnect (CORE-1) drops the connection and checks that Heartbeats
go on after the charger reconnects without a BootNotification; every other reconnect of the run is
watched for the same by the session (harness/reconnect.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest

from harness import ocppj
from harness.endpoint import Endpoint
from harness.errors import ChargerFailure, ExpectationTimeout
from harness.flows import LATE_DELIVERY
from harness.heartbeats import Reconnect, decided_reconnects
from harness.metered_session import periodic_times, reconnect_bound, recorded_session
from harness.reconnect import BOOT_GRACE, BOOTED, DISCONNECTED, HEARTBEAT, PENDING, SILENT, ReconnectHeartbeat
from harness.session import ChargerSession, ReceivedCall
from harness.settings import Settings
from harness.trace import EVENT, TX

pytestmark = pytest.mark.asyncio(loop_scope="session")

#: The NF-2 test's own bound (plugin marker test_bound): the metered session's online samples, the offline window,
#: reconnecting and LATE_DELIVERY, in quick mode too.
NF2_TEST_BOUND = 300.0


def _stamps(call: ReceivedCall) -> set[str]:
    """The readings of a MeterValues, each as its timestamp and context (a clock-aligned and a periodic reading may
    share a timestamp; they are different readings)."""
    out = set()
    for entry in call.payload.get("meterValue") or []:
        if isinstance(entry, dict):
            contexts = sorted({str(v.get("context") or "Sample.Periodic") for v in entry.get("sampledValue") or []
                               if isinstance(v, dict)})
            out.add(f"{entry.get('timestamp')} ({', '.join(contexts)})")
    return out


def _answered(charger: ChargerSession, calls: list[ReceivedCall], until: int) -> list[ReceivedCall]:
    """The calls whose answer the platform put on the wire before trace seq `until` (the connection loss)."""
    ids: set[str] = set()
    for entry in charger.trace.since(min((c.seq for c in calls), default=until)):
        if entry.seq >= until:
            break
        if entry.direction == TX:
            with contextlib.suppress(ocppj.FrameError):
                frame = ocppj.parse_frame(entry.text)
                if not isinstance(frame, ocppj.Call):
                    ids.add(frame.unique_id)
    return [c for c in calls if c.unique_id in ids]


def _disconnect_seq(charger: ChargerSession, since: int) -> int | None:
    for entry in charger.trace.since(since):
        if entry.direction == EVENT and entry.text.startswith("disconnected"):
            return entry.seq
    return None


@pytest.mark.requirement("NF-2")
@pytest.mark.test_bound(NF2_TEST_BOUND)
async def test_offline_transaction_messages_are_delivered(
    charger: ChargerSession, csms: Endpoint, harness_settings: Settings, request: pytest.FixtureRequest
) -> None:
    """NF-2: connection loss during a transaction, with a MeterValues in flight: the charger reconnects by
    itself, and the message in flight, the MeterValues it produced offline and the StopTransaction arrive
    afterwards, in order, none lost, none duplicated; late (a flush timer) is not lost (OCPP 1.6 §3.7, §4.7,
    §4.10; OCTT TC_036_CS; docs/rules-offline.md). The transaction is the run's metered session
    (harness/metered_session/), which MV-1/2/3 and CFG-2 judge too."""
    settings = harness_settings
    rec = await recorded_session(charger, settings, request, csms)
    offline = rec.offline
    if offline is None:
        pytest.skip(f"not tested: the metered session was recorded by {rec.test} without the connection loss "
                    "(the suites ran in another order than harness/ordering.py gives)")
    for note in offline.notes:
        charger.note(note)
    if offline.error is not None:
        raise offline.error
    assert offline.reconnected is not None and offline.reconnected_seq is not None, "harness: no reconnect recorded"
    session = rec.session
    tx = session.transaction_id
    interval = offline.interval
    in_flight = offline.in_flight
    reconnected = offline.reconnected

    def of_tx(call: ReceivedCall) -> bool:
        return call.get("transactionId") == tx

    earlier, before, period = offline.online, offline.online_times, offline.own_period  # taken at the cut

    reconnected_seq = offline.reconnected_seq
    bound = settings.scaled(LATE_DELIVERY)
    problems: list[str] = []
    # The recording waited for it, LATE_DELIVERY after the reconnect (harness/metered_session/).
    stop: ReceivedCall | None = rec.stop
    if stop is not None:
        charger.note(f"StopTransaction delivered {stop.mono - reconnected:.1f} s after reconnect "
                     f"(late-delivery bound {bound:g} s, docs/rules-offline.md)")
    else:
        problems.append(
            f"the StopTransaction of transaction {tx}, produced while offline, was never delivered: not within "
            f"{bound:g} s of reconnecting (the late-delivery bound, docs/rules-offline.md): lost (the platform never "
            "learns the session ended)"
        )
    stop_time: dt.datetime | None = None
    if stop is not None:
        # Anything of this transaction after its StopTransaction is out of order (or a duplicate). Watched from
        # here on, not waited for; until a disconnect, after which a resend of an unanswered message is allowed.
        for late in ("MeterValues", "StopTransaction"):
            charger.forbid(late, where=of_tx, since=stop.seq + 1, window=max(0.5, 0.5 * (period or interval)),
                           lasts=LATE_DELIVERY, until_disconnect=True, requirement="NF-2", origin=request.node.name,
                           what=f"expected nothing more of transaction {tx} after its StopTransaction "
                                f"(out of order or duplicated)")
        stops = [s for s in charger.received("StopTransaction", since=offline.cut_seq) if of_tx(s)]
        if len(stops) > 1:
            problems.append(f"StopTransaction of transaction {tx} delivered {len(stops)} times (duplicated)")
        with contextlib.suppress(ValueError):
            stop_time = ocppj.parse_datetime(str(stop.get("timestamp")))

    delivered = [c for c in charger.received("MeterValues", since=offline.cut_seq) if of_tx(c)]
    # The message in flight at the cut was never answered, so it is still undelivered: the charger must send it
    # again (OCPP retries are at-least-once). Matched by its readings' timestamps, however it is packed.
    in_flight_stamps = _stamps(in_flight) if in_flight is not None else set()
    if in_flight is not None:
        again = [c for c in delivered if in_flight_stamps <= _stamps(c)]
        if again:
            charger.note(f"the MeterValues in flight at the connection loss ({', '.join(sorted(in_flight_stamps))}) "
                         f"was sent again {again[0].mono - reconnected:.1f} s after reconnect")
        else:
            sent = sorted({t for c in delivered for t in _stamps(c)})
            problems.append(
                f"the MeterValues in flight when the link dropped (sent, not answered; readings "
                f"{', '.join(sorted(in_flight_stamps))}) was never delivered after reconnecting: lost (a message "
                "sent but not answered is still undelivered: the charger must send it again, docs/rules-offline.md)"
                + (f"; readings delivered after reconnecting: {', '.join(sent)}" if sent else
                   "; no MeterValues of the transaction was delivered after reconnecting")
            )
    # Duplicates: a reading the platform had acknowledged before the loss (an unanswered one must come again), or
    # one delivered twice after the loss. The last message before the loss is excused even if answered: its
    # answer may have been lost with the link, and OCPP retries are at-least-once.
    lost_at = _disconnect_seq(charger, offline.cut_seq - 1) or offline.cut_seq
    acknowledged = {t for c in _answered(charger, earlier[:-1], lost_at) for t in _stamps(c)}
    counts: dict[str, int] = {}
    for call in delivered:
        for stamp in _stamps(call):
            counts[stamp] = counts.get(stamp, 0) + 1
    duplicated = sorted(t for t, n in counts.items() if n > 1 or t in acknowledged)
    if duplicated:
        problems.append("MeterValues readings delivered twice (duplicated): " + ", ".join(duplicated))
    # Order: what arrived after the loss is in the order it was produced, and before the StopTransaction.
    after_stop = [c for c in delivered if stop is not None and c.seq > stop.seq]
    if after_stop:
        problems.append(f"{len(after_stop)} MeterValues of transaction {tx} arrived after its StopTransaction")
    stamps = [t for c in delivered for t in periodic_times(c)]
    if stamps != sorted(stamps):
        problems.append("the offline MeterValues arrived out of order: " + ", ".join(t.isoformat() for t in stamps))
    # Lost offline readings: judged against the charger's OWN sampling period (seen online), never against the
    # configured interval (a cadence problem is CFG-2's). From the last reading taken online through the stop,
    # consecutive periodic readings are at most 1.5 periods apart: a missing one leaves a gap of two or more.
    offline_samples = sorted({t for c in delivered for t in periodic_times(c)} - set(before))
    if period is not None and period > 0:
        chain = before[-1:] + offline_samples + ([stop_time] if stop_time is not None else [])
        limit = 1.5 * period + 0.5
        gaps = [(a, b) for a, b in zip(chain, chain[1:]) if (b - a).total_seconds() > limit]
        if gaps:
            problems.append(
                f"MeterValues lost while offline: the charger samples every {period:g} s (as seen online), but "
                + "; ".join(f"{a.isoformat()} → {b.isoformat()} ({(b - a).total_seconds():.1f} s)" for a, b in gaps)
                + (" (no reading taken offline arrived)" if not offline_samples else "")
            )
    elif interval > 0:
        charger.note("the charger's own sampling period could not be seen online (fewer than two periodic readings): "
                     "offline MeterValues are not judged for loss")
    if stop is not None and stop_time is not None and before and stop_time < before[-1]:
        problems.append(f"StopTransaction timestamp {stop.get('timestamp')} is before the last reading taken online")
    charger.details["offline"] = {
        "how": offline.how, "offline_meter_values": len(offline_samples),
        "own_sampling_period_s": period, "late_delivery_bound_s": bound,
        "in_flight": sorted(in_flight_stamps) or None,
        "stop_delivered_after_reconnect_s": round(stop.mono - reconnected, 3) if stop is not None else None,
        "delivered_after_reconnect": [c.action for c in charger.received(since=reconnected_seq)][:30],
    }
    charger.note(f"delivered after reconnecting: {len(offline_samples)} offline reading(s)"
                 + (" and the StopTransaction" if stop is not None else ", no StopTransaction"))
    assert not problems, (
        "expected the transaction messages produced offline, and the one in flight at the connection loss, to arrive "
        "after reconnecting, in order, none lost, none duplicated (OCPP 1.6 §3.7; docs/rules-offline.md):\n  "
        + "\n  ".join(problems)
    )


# CORE-1, not NF-2: NF-2 is about reconnecting and not losing transaction data; Heartbeat is part of the Core
# profile (OCPP 1.6 §4.6), and the platform marks a charger offline when its Heartbeats stop, so a charger that
# reconnects but falls silent fails the Core profile's Heartbeat, whatever made it reconnect.
@pytest.mark.requirement("CORE-1")
async def test_heartbeats_continue_after_reconnect(
    charger: ChargerSession, harness_settings: Settings
) -> None:
    """CORE-1: after a reconnect without a new BootNotification, the charger goes on sending Heartbeat at its
    HeartbeatInterval (OCPP 1.6 §4.6: it MAY skip one when it sent another message within the interval;
    docs/rules-offline.md). Judged from the reconnects the run already had (the session checks every one,
    harness/reconnect.py); only when none of them was decided does the platform drop the connection itself."""
    decided = decided_reconnects(charger.reconnect_checks, charger.trace)
    current = charger.reconnect_heartbeat
    if (not decided and current is not None and current.outcome == PENDING and charger.connected
            and current.connected_seq == charger.connected_seq):
        # The run's last reconnect (e.g. NF-2's, just before) is still being watched: see its check out rather
        # than make a reconnect of its own.
        await _check_ends(charger, current)
        decided = decided_reconnects(charger.reconnect_checks, charger.trace)
        if not decided:
            _undecided(charger, current, "the run's last reconnect")
            return
    if decided:
        _judge_decided(charger, decided)
        if current is not None and current.outcome == PENDING and charger.connected:
            # docs/rules-offline.md: the run does not wait for it (harness/heartbeats.py must_see_out); if it decides
            # while the run goes on, its finding is filed as any other.
            charger.note(f"the check of the current connection (reconnect at frame #{current.connected_seq}) is still "
                         "open: judged on the reconnects above, the run does not wait for it")
        return
    await _drop_and_watch(charger, harness_settings)


def _judge_decided(charger: ChargerSession, decided: list[Reconnect]) -> None:
    silent = [r for r in decided if r.check.outcome == SILENT]
    charger.details["reconnects_judged"] = [r.name() for r in decided]
    last = decided[-1]
    end = last.heartbeat
    # The protocol time the evidence covers, taken from the record instead of waited for (benchmarks/bench.py).
    charger.details["evidence_window"] = {
        "seconds": round(end.mono - last.connected.mono if end is not None else last.check.silent_for or 0.0, 3),
        "frames": [last.connected.seq, end.seq if end is not None else last.connected.seq], "source": "record"}
    if silent:
        raise ChargerFailure("; ".join(f"{r.name()}: {r.check.finding()}" for r in silent))
    charger.note(f"judged from {len(decided)} reconnect(s) of the run without a new BootNotification: "
                 + "; ".join(r.describe() for r in decided))


async def _check_ends(charger: ChargerSession, check: ReconnectHeartbeat) -> float:
    """Wait for a reconnect's Heartbeat check to end; the bound waited (before the timeout factor)."""
    # Bounded: a charger that keeps talking may skip Heartbeats (§4.6) and so keeps the check open.
    within = BOOT_GRACE + 3 * (check.interval + max(1.0, 0.25 * check.interval))
    with contextlib.suppress(ExpectationTimeout):
        await charger.wait_until(lambda: check.outcome != PENDING, within, "the reconnect's Heartbeat check to end")
    return within


def _undecided(charger: ChargerSession, check: ReconnectHeartbeat, which: str) -> None:
    """A reconnect whose check did not end with a Heartbeat the charger's own timer sent, nor silent."""
    within = BOOT_GRACE + 3 * (check.interval + max(1.0, 0.25 * check.interval))
    if check.outcome == HEARTBEAT:
        charger.note(f"{which}: its first Heartbeat came after a TriggerMessage Heartbeat of the harness: not evidence")
    elif check.outcome == BOOTED:
        charger.note(f"{which}: the charger sent a BootNotification after reconnecting (it rebooted): Heartbeats "
                     "after a boot are judged by test_heartbeat_at_the_given_interval")
    elif check.outcome == DISCONNECTED:
        pytest.skip(f"not tested: the charger disconnected again after {which} before its Heartbeat was due")
    elif check.outcome == PENDING:
        charger.note(f"{which}: no Heartbeat within {charger.settings.scaled(within):g} s of reconnecting, but the "
                     f"charger never stayed silent longer than {check.interval:g} s (+ tolerance): OCPP 1.6 §4.6 lets "
                     "it skip them")


async def _drop_and_watch(charger: ChargerSession, settings: Settings) -> None:
    """No reconnect of the run was decided (e.g. the test runs alone): the platform drops the connection, as a load
    balancer or a deployment does (needs no rig act, any charger reconnects), and the check of that reconnect is
    waited for."""
    # Watches of earlier tests that end at a disconnect get their whole window first: the disconnect made here
    # must not cut them short (e.g. NF-2's "nothing after the StopTransaction").
    await charger.settle_watches()
    if charger.connection is not None:
        await charger.connection.close(1001, "harness: the platform drops the connection (CORE-1)")
    await charger.wait_disconnected(within=10)
    try:
        await charger.wait_connected(within=reconnect_bound(settings))
    except ExpectationTimeout:
        pytest.skip("not tested: the charger did not reconnect after the platform dropped the connection "
                    "(reconnecting is NF-2's, judged there)")
    check = charger.reconnect_heartbeat
    assert check is not None and check.connected_seq == charger.connected_seq, "harness: no check for this reconnect"
    await _check_ends(charger, check)
    connected = charger.trace.since(check.connected_seq)[:1]
    where = f" at frame #{connected[0].seq} ({connected[0].wall:%H:%M:%S})" if connected else ""
    if check.outcome == HEARTBEAT:
        charger.details["evidence_window"] = {"seconds": round(check.heartbeat_after or 0.0, 3),
                                              "frames": [check.connected_seq], "source": "waited"}
        charger.note(f"the platform dropped the connection; first Heartbeat {check.heartbeat_after:.2f} s after the "
                     f"reconnect{where} (HeartbeatInterval {check.interval:g} s)")
    elif check.outcome != SILENT:
        _undecided(charger, check, f"the reconnect{where} after the platform dropped the connection")
    # SILENT: the session recorded the finding (filed under CORE-1); the plugin fails this test with it.
    assert check.outcome != SILENT or charger.violations_since(check.connected_seq), check.finding()
