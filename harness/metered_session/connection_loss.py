"""NF-2's part of the metered session: a MeterValues in flight, the cut, the EV's pause, the offline window, the end at the
charger, the network back (docs/rules-offline.md, docs/rules-timing.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from typing import TYPE_CHECKING

import pytest
from ocpp.v16 import call
from ocpp.v16.enums import ConfigurationStatus

from harness import meter, ocppj, spec16
from harness.drivers.base import RigError
from harness.errors import ChargerFailure, ExpectationTimeout
from harness.flows import LATE_DELIVERY
from harness.metered_session.model import SHORT_INTERVAL, SUSPENDED_SAMPLES, SUSPENDED, offline_window, Offline, Recording
from harness.metered_session.sampler import Sampler
from harness.platform import default_answer
from harness.session import ChargerSession, ReceivedCall
from harness.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from harness.endpoint import Endpoint


def reconnect_bound(settings: Settings) -> float:
    """How long the charger may take to come back once the network is back."""
    return 15.0 if settings.quick else 180.0


async def _go_offline(charger: ChargerSession, csms: Endpoint) -> Offline:
    """Cut the network at the rig; if the rig cannot, refuse the charger at the platform instead."""
    cut_seq, cut_mono = charger.trace.next_seq, time.monotonic()
    try:
        await charger.rig.network(False)
        await charger.wait_disconnected(within=10)
        return Offline("rig", cut_seq, cut_mono, 0)
    except pytest.skip.Exception:
        pass
    # The platform side: a certificate the charger must refuse (TLS-3), then drop the socket.
    csms.present(csms.certs.bad_server_context("untrusted-ca"))
    charger.note("the rig cannot cut the network: the platform dropped the socket and refused reconnection")
    if charger.connection is not None:
        await charger.connection.close(1001, "harness: connection loss (NF-2)")
    await charger.wait_disconnected(within=10)
    return Offline("refused", cut_seq, cut_mono, 0)


async def _go_online(charger: ChargerSession, csms: Endpoint, offline: Offline) -> None:
    if offline.how == "rig":
        await charger.rig.network(True)
    else:
        csms.present(None)


def periodic_times(call: ReceivedCall) -> list[dt.datetime]:
    """The timestamps of the periodic readings (context Sample.Periodic, or none given) in a MeterValues."""
    times = []
    for entry in call.payload.get("meterValue") or []:
        values = entry.get("sampledValue") or []
        if values and any(v.get("context") in (None, spec16.CONTEXT_PERIODIC) for v in values):
            try:
                times.append(ocppj.parse_datetime(str(entry.get("timestamp"))))
            except ValueError:
                continue
    return times


def _is_periodic(call: ReceivedCall) -> bool:
    """Whether a MeterValues carries a periodic reading (context Sample.Periodic, or none given: §7.43's default)."""
    return any(isinstance(e, dict) and any(isinstance(v, dict) and v.get("context") in (None, spec16.CONTEXT_PERIODIC)
                                           for v in e.get("sampledValue") or [])
               for e in call.payload.get("meterValue") or [])


def own_period(times: list[dt.datetime]) -> float | None:
    """The charger's own sampling period, from its periodic readings taken online (None: too few to tell)."""
    ordered = sorted(set(times))
    gaps = sorted((b - a).total_seconds() for a, b in zip(ordered, ordered[1:]))
    return gaps[len(gaps) // 2] if gaps else None


def _connected_mono(charger: ChargerSession) -> float:
    """When the current connection began (the trace's connect event)."""
    entries = charger.trace.since(charger.connected_seq)
    return entries[0].mono if entries else time.monotonic()


async def with_connection_loss(
    charger: ChargerSession, csms: Endpoint, settings: Settings, rec: Recording, sampler: Sampler
) -> None:
    """NF-2's part of the session: a MeterValues in flight, the cut, the offline window, the end of the session at the
    charger, the network back. Problems are kept in `rec.offline.error` for NF-2 (what was recorded stays MV's)."""
    session = rec.session
    tx = session.transaction_id
    interval = await _sampling_interval(charger, rec)
    # Before the cut: enough periodic samples answered online for the charger's own period to show (two readings,
    # one gap), then the next one is left unanswered: in flight when the link is cut. When the charger's timestamps
    # are too coarse for CFG-2 to read its cadence from them (whole seconds at a 1 s interval), CFG-2 reads arrival
    # times, which only online samples have: one more then.
    resolution = meter.timestamp_resolution([session.start.get("timestamp")])
    answered_first = 1 if meter.fine_for_cadence(resolution, interval) else 2
    # MV-3 compares the energy register with ∫power over the charging samples: at a short interval (quick mode, 1 s)
    # one interval holds a few Wh, as coarse as the register's 1 Wh step, so two intervals are taken while charging.
    if interval < SHORT_INTERVAL:
        answered_first = 2
    answered: list[ReceivedCall] = []
    held: list[ReceivedCall] = []

    def hold(c: ReceivedCall) -> object:
        # Called as each CALL arrives, in order: the first periodic MeterValues of the transaction after
        # `answered_first` answered ones gets no answer and stays in flight.
        if c.get("transactionId") == tx and _is_periodic(c):
            if len(answered) >= answered_first and not held:
                held.append(c)
                return None
            answered.append(c)
        return default_answer(charger, c)

    # The hold lasts until the link is cut (answers are tasks: one written after the hold ended would release it).
    with charger.answering("MeterValues", hold):
        if interval > 0:
            # Periodic samples; a charger that does not sample at the interval (CFG-2's finding) is asked for
            # readings (TriggerMessage), so MV is still judged on real readings, and is cut without a MeterValues
            # in flight.
            def periodic_of_tx() -> int:
                return sum(1 for c in charger.received("MeterValues", since=session.since)
                           if c.get("transactionId") == tx and _is_periodic(c))

            for _ in range(answered_first + 4):
                if periodic_of_tx() > answered_first or not await sampler.next_sample():
                    break
            # The platform's answers are tasks: once they ran, the hold has decided.
            await charger.settle_answers()
            if not held:
                rec.notes.append(
                    f"the charger sent fewer than {answered_first + 1} periodic MeterValues of transaction {tx} at "
                    f"MeterValueSampleInterval {interval} s (its sampling cadence is CFG-2's): the link is cut without "
                    "a MeterValues in flight")
        else:
            rec.notes.append("the charger does not sample periodically: the link is cut without a MeterValues in flight")
        if not held:
            # No periodic sample to hold, so none will be taken offline either: the reading while suspended is taken
            # online (asked for, as the charging ones were), before the cut.
            if await sampler.pause():
                await sampler.collect(SUSPENDED, SUSPENDED_SAMPLES)
        offline = await _go_offline(charger, csms)
    sampler.take_arrived()
    offline.interval = interval
    offline.in_flight = held[0] if held else None
    rec.offline = offline
    offline.online = [c for c in charger.received("MeterValues", since=session.since)
                      if c.get("transactionId") == tx and c.seq < offline.cut_seq]
    offline.online_times = sorted({t for c in offline.online for t in periodic_times(c)})
    offline.own_period = own_period(offline.online_times)
    offline.window = offline_window(max(interval, offline.own_period or 0)) if interval > 0 else 0.0
    restored = False
    try:
        try:
            # Offline for a while: the requirement is about what the charger produces in that time (a deliberate
            # window, not a synchronisation). A charger that does not sample periodically produces nothing offline
            # but the StopTransaction: no window then.
            # The EV pauses while the charger is offline: its next sample may straddle the pause, the one after it
            # shows the EV suspended (MV-3), delivered with the rest of the queue.
            if held:
                await sampler.pause(offline=True)
            if offline.window:
                await asyncio.sleep(offline.window)
            if charger.connected:
                if offline.how == "refused":
                    pytest.skip("not tested: the charger reconnected through a certificate it must refuse, so the "
                                "platform cannot keep it offline (see TLS-3); the rig cannot cut its network either")
                raise RigError("the rig reported the network cut, but the charger reconnected during the offline window")
            # End the session at the charger: the driver's card, then the unplug (either ends it, §4.10).
            await charger.rig.authorize(charger.platform.id_tag, session.connector)
            await charger.rig.plugout(session.connector)
            offline.back_at = time.monotonic()
            await _go_online(charger, csms, offline)
            restored = True
            bound = reconnect_bound(settings)
            try:
                await charger.wait_connected(within=bound)
            except ChargerFailure:
                raise ChargerFailure(
                    f"expected the charger to reconnect by itself within {settings.scaled(bound):g} s after the "
                    f"network came back ({'rig network restored' if offline.how == 'rig' else 'good certificate presented again'}); "
                    "it did not. Attempts since: "
                    + ("; ".join(a.summary() for a in csms.attempts if a.mono >= offline.back_at) or "none")
                ) from None
            offline.reconnected = _connected_mono(charger)
            offline.reconnected_seq = charger.connected_seq
            offline.notes.append(f"offline {offline.back_at - offline.cut_mono:.1f} s ({offline.how}); reconnected "
                                 f"{offline.reconnected - offline.back_at:.2f} s after the network came back")
        finally:
            if not restored:
                await _go_online(charger, csms, offline)
    except (AssertionError, ChargerFailure, ExpectationTimeout, pytest.skip.Exception) as exc:
        offline.error = exc  # NF-2's verdict; what was recorded until now stays MV's evidence
        return
    except Exception as exc:  # noqa: BLE001 - a rig failure: NF-2 reports it; MV judges what was recorded
        offline.error = exc
        return
    # The StopTransaction, produced offline, may come late (a flush timer: late is not lost, docs/rules-offline.md).
    with contextlib.suppress(ExpectationTimeout):
        rec.stop = await charger.expect(
            "StopTransaction", where=lambda c: c.get("transactionId") == tx, since=offline.cut_seq,
            within=LATE_DELIVERY, describe=f"the StopTransaction of transaction {tx}, produced while offline",
        )
    sampler.take_arrived()


async def _sampling_interval(charger: ChargerSession, rec: Recording) -> int:
    """The interval the charger samples at: the one set if Accepted, else the one it reports (0: none)."""
    if rec.interval_status == ConfigurationStatus.accepted:
        return rec.interval
    charger.note(f"MeterValueSampleInterval={rec.interval} answered {rec.interval_status}: using the charger's own")
    return rec.interval_in_force or 0
