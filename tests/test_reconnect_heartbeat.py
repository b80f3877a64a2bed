"""The CORE-1 check that Heartbeats go on after a reconnect without BootNotification (harness/reconnect.py)."""

from __future__ import annotations

import math

from harness.heartbeats import must_see_out
from harness.reconnect import BOOT_GRACE, BOOTED, DISCONNECTED, HEARTBEAT, PENDING, SILENT, ReconnectHeartbeat
from harness.trace import RX, TX, Redactor, Trace


def check(interval: float = 1.0, factor: float = 1.0) -> ReconnectHeartbeat:
    return ReconnectHeartbeat(connected_seq=10, connected_mono=100.0, interval=interval, factor=factor)


def test_a_heartbeat_meets_it() -> None:
    c = check()
    c.charger_call("Heartbeat", 100.4)
    assert c.outcome == HEARTBEAT and abs((c.heartbeat_after or 0) - 0.4) < 1e-9
    assert c.deadline == math.inf and not c.due(1000.0)


def test_a_boot_or_a_disconnect_voids_it() -> None:
    booted, gone = check(), check()
    booted.charger_call("BootNotification", 101.0)
    gone.disconnected()
    assert (booted.outcome, gone.outcome) == (BOOTED, DISCONNECTED)
    assert not booted.due(1000.0) and not gone.due(1000.0)


def test_silence_right_after_the_reconnect_allows_a_boot_first() -> None:
    c = check(interval=1.0)
    assert c.deadline == 100.0 + BOOT_GRACE  # 1 s + 1 s tolerance is shorter than the boot grace
    assert not c.due(100.0 + BOOT_GRACE - 0.1)
    assert c.due(100.0 + BOOT_GRACE) and c.outcome == SILENT
    assert "no Heartbeat since the reconnect" in c.finding() and "docs/rules-offline.md" in c.finding()


def test_other_messages_may_replace_heartbeats_but_silence_may_not() -> None:
    c = check(interval=60.0)  # tolerance 15 s
    c.charger_call("MeterValues", 101.0)
    assert c.deadline == math.inf  # it waits for the platform's answer: it cannot send
    c.exchange(101.1)
    assert c.deadline == 101.1 + 75.0
    assert not c.due(170.0) and c.outcome == PENDING  # §4.6: it may skip a Heartbeat after another message
    assert c.due(176.2) and c.outcome == SILENT and abs((c.silent_for or 0) - 75.1) < 1e-6


def test_the_timeout_factor_scales_the_allowance() -> None:
    c = check(interval=60.0, factor=2.0)
    c.exchange(100.0)
    assert c.deadline == 100.0 + 150.0


def test_its_own_answers_count_but_do_not_end_a_wait_for_the_platform() -> None:
    c = check(interval=1.0)
    c.exchange(100.5, platform_answered=False)  # it answered a CALL of the platform
    assert c.deadline == 102.5
    c.charger_call("StatusNotification", 101.0)
    c.exchange(101.2, platform_answered=False)
    assert c.deadline == math.inf  # the platform still owes it an answer


# --- must_see_out: the run waits for its last reconnect's check only when it would be the run's evidence ----------


def _reconnect(trace: Trace, outcome: str, *, heartbeat: bool = True, triggered: bool = False) -> ReconnectHeartbeat:
    """A reconnect in `trace` (its `connected` event, then the frames that decided it) and its check."""
    connected = trace.event("connected: TLSv1.2 from 127.0.0.1:1")
    c = ReconnectHeartbeat(connected_seq=connected.seq, connected_mono=connected.mono, interval=60.0)
    if triggered:
        trace.record(TX, '[2,"t1","TriggerMessage",{"requestedMessage":"Heartbeat"}]')
    if heartbeat:
        trace.record(RX, '[2,"h1","Heartbeat",{}]')
        c.charger_call("Heartbeat", connected.mono + 1)
    c.outcome = outcome
    return c


def test_the_last_reconnect_is_seen_out_when_it_is_the_only_evidence() -> None:
    trace = Trace(Redactor())
    current = _reconnect(trace, PENDING, heartbeat=False)
    assert must_see_out(current, [current], trace)
    # Earlier reconnects that decided nothing (cut short, a reboot, a Heartbeat the harness asked for) change nothing.
    trace = Trace(Redactor())
    gone = _reconnect(trace, DISCONNECTED, heartbeat=False)
    booted = _reconnect(trace, BOOTED, heartbeat=False)
    asked = _reconnect(trace, HEARTBEAT, triggered=True)
    current = _reconnect(trace, PENDING, heartbeat=False)
    assert must_see_out(current, [gone, booted, asked, current], trace)


def test_negative_control_an_earlier_decided_reconnect_means_no_wait() -> None:
    for outcome in (HEARTBEAT, SILENT):
        trace = Trace(Redactor())
        earlier = _reconnect(trace, outcome, heartbeat=outcome == HEARTBEAT)
        current = _reconnect(trace, PENDING, heartbeat=False)
        assert not must_see_out(current, [earlier, current], trace), outcome


def test_a_decided_or_absent_current_check_is_not_waited_for() -> None:
    trace = Trace(Redactor())
    done = _reconnect(trace, HEARTBEAT)
    assert not must_see_out(done, [done], trace)
    assert not must_see_out(None, [], trace)
