"""Which test records the metered session, and what the other tests get: the recording or the same cause.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import TYPE_CHECKING

import pytest
from ocpp.v16.enums import ConfigurationStatus

from harness import spec16
from harness.errors import CallErrorReceived
from harness.flows import (
    CURRENT_VOLTAGE_LIST,
    POWER_LIST,
    Charging,
    change_configuration,
    configured_value,
    start_charging,
    stop_charging,
)
from harness.metered_session.connection_loss import with_connection_loss
from harness.metered_session.model import (
    CHARGING,
    CHARGING_SAMPLES,
    SHORT_INTERVAL,
    NF2_NODE,
    SUSPENDED,
    SUSPENDED_SAMPLES,
    Recording,
    Stretch,
)
from harness.metered_session.sampler import Sampler
from harness.session import ChargerSession
from harness.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from harness.endpoint import Endpoint


_RECORDINGS: weakref.WeakKeyDictionary[ChargerSession, Recording | BaseException] = weakref.WeakKeyDictionary()


def nf2_selected(request: pytest.FixtureRequest) -> bool:
    """Whether NF-2's test runs in this session (then the session includes its connection loss)."""
    return any(item.nodeid.endswith(NF2_NODE) for item in request.session.items)


async def recorded_session(
    charger: ChargerSession, settings: Settings, request: pytest.FixtureRequest, csms: Endpoint | None = None
) -> Recording:
    """The metered session of this run (recorded now if no test recorded it yet)."""
    found = _RECORDINGS.get(charger)
    if found is None:
        with_offline = csms is not None and nf2_selected(request)
        try:
            found = await _record(charger, settings, request.node.nodeid, csms if with_offline else None)
        except BaseException as exc:  # noqa: BLE001 - every test of the session reports the same cause
            if not isinstance(exc, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)):
                _RECORDINGS[charger] = exc  # a failed or skipped recording: the other tests say the same
            raise
        _RECORDINGS[charger] = found
        charger.note(f"this test recorded the metered session that MV-1/2/3, CFG-2 and NF-2 judge: {found.window()}")
    elif isinstance(found, BaseException):
        raise found
    else:
        charger.note(f"judged on the metered session recorded during {found.test}: {found.window()}")
    charger.details["meter_readings"] = found.summary()
    # The evidence window (benchmarks/bench.py adds the record's to the sum-of-waits floor: what it would cost if
    # each requirement waited for a session of its own).
    charger.details["evidence_window"] = {
        "seconds": round(found.seconds(), 3), "frames": [found.first_seq, found.last_seq],
        "source": "waited" if found.test == request.node.nodeid else "record", "text": found.window(),
    }
    for note in found.notes:
        charger.note(note)
    return found


async def _record(charger: ChargerSession, settings: Settings, nodeid: str, csms: Endpoint | None) -> Recording:
    notes: list[str] = []
    # 1. What to sample, and how often.
    configured: str | None = None
    answers = []
    for alternative, value in (("Power.Active.Import", POWER_LIST), ("Current.Import+Voltage", CURRENT_VOLTAGE_LIST)):
        status = await change_configuration(charger, "MeterValuesSampledData", value)
        answers.append(f"{value!r}: {status}")
        if status == ConfigurationStatus.accepted:
            configured = alternative
            break
    sampled_data_at = time.monotonic()
    sampled_data = await configured_value(charger, "MeterValuesSampledData")
    if configured is None:
        notes.append(
            f"MeterValuesSampledData was not accepted ({'; '.join(answers)}; see CFG-1): the session ran "
            f"with the charger's own list {sampled_data!r}"
        )
    elif configured != "Power.Active.Import":
        notes.append(f"MeterValuesSampledData: {'; '.join(answers)}")
    interval = settings.meter_sample_interval
    status = await change_configuration(charger, "MeterValueSampleInterval", str(interval))
    raw_interval = await configured_value(charger, "MeterValueSampleInterval")
    in_force = int(raw_interval.strip()) if raw_interval and raw_interval.strip().isdigit() else None
    if status != ConfigurationStatus.accepted:
        notes.append(
            f"MeterValueSampleInterval={interval} was answered {status} (see CFG-2); the charger reports {raw_interval!r}"
        )

    # 2. Charge.
    session = await start_charging(charger)
    rec = Recording(nodeid, session.connector, configured, sampled_data, interval, status, in_force, session,
                    notes=notes, first_seq=session.since, sampled_data_at=sampled_data_at)
    rec.stretches.append(Stretch(CHARGING, session.since, session.start.mono, (spec16.CHARGING,)))
    sampler = Sampler(charger, rec, settings)
    try:
        if csms is not None:
            # 3-4. Charging online, NF-2's connection loss with the EV pausing offline, the end at the charger.
            await with_connection_loss(charger, csms, settings, rec, sampler)
        else:
            # 3. Charging, then the EV pauses, then the end of the session.
            await sampler.collect(CHARGING, CHARGING_SAMPLES + (1 if rec.interval < SHORT_INTERVAL else 0))
            if await sampler.pause():
                await sampler.collect(SUSPENDED, SUSPENDED_SAMPLES)
            else:
                await sampler.collect(CHARGING, CHARGING_SAMPLES + 1)  # CFG-2 still reads two gaps
            try:
                rec.stop = await stop_charging(charger, session, remote=True)
            except (AssertionError, CallErrorReceived):
                notes.append("RemoteStopTransaction did not stop the session: stopped with the driver's card")
                rec.stop = await stop_charging(charger, session, remote=False)
    finally:
        # MeterValues queued before the stop may still be in flight: take what arrived.
        sampler.take_arrived()
        sampler.classify()
        rec.last_seq = charger.trace.next_seq - 1
    if rec.triggered:
        notes.append(
            f"{rec.triggered} sample(s) were requested with TriggerMessage MeterValues: no periodic "
            f"sample came within {interval * 1.5 + 1:g} s at MeterValueSampleInterval={interval}"
        )
    return rec
