"""CFG-1, CFG-2: the meter configuration the platform sends (OCPP 1.6 §5.3 ChangeConfiguration, §5.8
GetConfiguration, §9.1 MeterValuesSampledData and MeterValueSampleInterval; OCTT TC_021_CS).

Whether the configured measurands then appear in MeterValues is MV-1's business, not CFG-1's:
CFG-1 is the charger accepting the platform's list (or, for a Current+Voltage meter, its own
equivalent) and reporting it back. CFG-2 is the interval accepted, reported, and honoured.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness import meter, ocppj, spec16
from harness.errors import CallErrorReceived, ExpectationTimeout
from harness.flows import Charging, start_charging, stop_charging
from harness.session import ChargerSession, ReceivedCall
from harness.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

SAMPLED_DATA = "MeterValuesSampledData"
SAMPLE_INTERVAL = "MeterValueSampleInterval"
POWER_LIST = f"{meter.ENERGY},{meter.POWER}"
CURRENT_VOLTAGE_LIST = f"{meter.ENERGY},{meter.CURRENT},{meter.VOLTAGE}"
PLATFORM_INTERVAL = 60  # s: what ev.energy sends
CADENCE_SAMPLES = 3  # periodic samples observed: the first one and two gaps


def cadence_tolerance(interval: float) -> float:
    """How far one sampling gap may be from the interval: ±max(0.5 s, 20 %)."""
    return max(0.5, 0.2 * interval)


async def change_configuration(charger: ChargerSession, key: str, value: str) -> str:
    """ChangeConfiguration's status, or "CALLERROR <code>"."""
    try:
        answer = await charger.call_raw("ChangeConfiguration", {"key": key, "value": value})
    except CallErrorReceived as exc:
        return f"CALLERROR {exc.code} ({exc.description})"
    return str(answer.get("status"))


async def reported_value(charger: ChargerSession, key: str) -> tuple[bool, str | None, dict]:
    """(known, value, the whole answer) of GetConfiguration for one key."""
    answer = await charger.call_raw("GetConfiguration", {"key": [key]})
    for entry in answer.get("configurationKey") or []:
        if isinstance(entry, dict) and str(entry.get("key", "")).lower() == key.lower():
            value = entry.get("value")
            return True, None if value is None else str(value), answer
    return False, None, answer


def _not_accepted(key: str, value: str, status: str) -> str:
    if status == "RebootRequired":
        return (
            f"expected ChangeConfiguration {key}={value!r} to be Accepted; it was answered RebootRequired: the change "
            "would only take effect after a reboot, and the platform does not reboot chargers to apply it"
        )
    if status == "NotSupported":
        return f"expected ChangeConfiguration {key}={value!r} to be Accepted; the charger does not know the key " \
               f"(NotSupported), although §9.1 makes it a core key"
    return f"expected ChangeConfiguration {key}={value!r} to be Accepted (OCPP 1.6 §5.3); it was answered {status}"


# --- CFG-1 -----------------------------------------------------------------------------------------


@pytest.mark.requirement("CFG-1")
async def test_meter_values_sampled_data_accepted_and_reported(charger: ChargerSession) -> None:
    """CFG-1: ChangeConfiguration MeterValuesSampledData = Energy.Active.Import.Register,Power.Active.Import
    is Accepted (a Current+Voltage meter may instead accept Energy.Active.Import.Register,Current.Import,
    Voltage), and GetConfiguration reports it (OCPP 1.6 §5.3, §5.8, §9.1; OCTT TC_021_CS)."""
    status = await change_configuration(charger, SAMPLED_DATA, POWER_LIST)
    expected, alternative = POWER_LIST, "Power.Active.Import"
    if status != "Accepted":
        assert status != "RebootRequired", _not_accepted(SAMPLED_DATA, POWER_LIST, status)
        # A Current+Voltage meter rejects a list naming Power.Active.Import (an unsupported
        # measurand rejects the whole list): its own equivalent must then be accepted.
        second = await change_configuration(charger, SAMPLED_DATA, CURRENT_VOLTAGE_LIST)
        assert second == "Accepted", (
            f"expected ChangeConfiguration {SAMPLED_DATA} to be Accepted with the platform's list {POWER_LIST!r} "
            f"(answered {status}), or, for a Current+Voltage meter, with {CURRENT_VOLTAGE_LIST!r} (answered {second})"
        )
        expected, alternative = CURRENT_VOLTAGE_LIST, "Current.Import+Voltage"
        charger.note(
            f"the charger is of the Current+Voltage kind: {POWER_LIST!r} was answered {status}, "
            f"{CURRENT_VOLTAGE_LIST!r} Accepted"
        )
    charger.details["alternative"] = alternative
    known, value, answer = await reported_value(charger, SAMPLED_DATA)
    assert known, (
        f"expected GetConfiguration to report {SAMPLED_DATA} after it was Accepted (OCPP 1.6 §5.8); "
        f"it answered {ocppj.encode_json(answer)}"
    )
    got, wanted = meter.measurand_set(value), meter.measurand_set(expected)
    assert got == wanted, (
        f"expected GetConfiguration to report {SAMPLED_DATA} = {expected!r} after it was Accepted; it reports "
        f"{value!r} (missing: {sorted(wanted - got) or '-'}, extra: {sorted(got - wanted) or '-'})"
    )
    charger.note(f"{SAMPLED_DATA} = {value!r} Accepted and reported")


# --- CFG-2 -----------------------------------------------------------------------------------------


@pytest.mark.requirement("CFG-2")
async def test_sample_interval_60_accepted_and_reported(charger: ChargerSession) -> None:
    """CFG-2: ChangeConfiguration MeterValueSampleInterval = 60 is Accepted and GetConfiguration
    reports 60 (OCPP 1.6 §5.3, §5.8, §9.1; OCTT TC_021_CS)."""
    status = await change_configuration(charger, SAMPLE_INTERVAL, str(PLATFORM_INTERVAL))
    assert status == "Accepted", _not_accepted(SAMPLE_INTERVAL, str(PLATFORM_INTERVAL), status)
    known, value, answer = await reported_value(charger, SAMPLE_INTERVAL)
    assert known, (
        f"expected GetConfiguration to report {SAMPLE_INTERVAL} after it was Accepted (OCPP 1.6 §5.8); "
        f"it answered {ocppj.encode_json(answer)}"
    )
    text = (value or "").strip()
    assert text.isdigit() and int(text) == PLATFORM_INTERVAL, (
        f"expected GetConfiguration to report {SAMPLE_INTERVAL} = {PLATFORM_INTERVAL} after it was Accepted; "
        f"it reports {value!r}"
    )


@dataclass(frozen=True)
class _Sample:
    raw_timestamp: str | None
    call: ReceivedCall

    def when(self) -> float | None:
        try:
            return ocppj.parse_datetime(self.raw_timestamp).timestamp() if self.raw_timestamp else None
        except ValueError:
            return None


def _periodic_entries(call: ReceivedCall) -> list[str | None]:
    """Timestamps of the meterValue entries with a Sample.Periodic value (§7.43: no context = periodic)."""
    stamps = []
    for entry in call.get("meterValue") or []:
        if not isinstance(entry, dict):
            continue
        contexts = {sv.get("context") or spec16.CONTEXT_PERIODIC for sv in entry.get("sampledValue") or []}
        if spec16.CONTEXT_PERIODIC in contexts:
            stamp = entry.get("timestamp")
            stamps.append(stamp if isinstance(stamp, str) else None)
    return stamps


@pytest.mark.requirement("CFG-2")
async def test_samples_arrive_at_the_interval(charger: ChargerSession, harness_settings: Settings) -> None:
    """CFG-2: during a transaction, Sample.Periodic MeterValues come every MeterValueSampleInterval
    seconds: 60 in certification mode, the mode's short interval in quick mode (OCPP 1.6 §4.7,
    §9.1 MeterValueSampleInterval; OCTT TC_070_CS). Clock-aligned and triggered samples are ignored."""
    interval = PLATFORM_INTERVAL if not harness_settings.quick else harness_settings.meter_sample_interval
    status = await change_configuration(charger, SAMPLE_INTERVAL, str(interval))
    if status != "Accepted":
        if harness_settings.quick and interval != PLATFORM_INTERVAL:
            pytest.skip(
                f"not tested: the charger answered {status} to the quick mode's {SAMPLE_INTERVAL}={interval}; "
                "run with --mode certification to check the 60 s cadence"
            )
        pytest.fail(_not_accepted(SAMPLE_INTERVAL, str(interval), status), pytrace=False)
    tolerance = cadence_tolerance(interval)
    session = await start_charging(charger)
    found: list[_Sample] = []
    cursor = session.since
    try:
        while len(found) < CADENCE_SAMPLES:
            bound = interval + tolerance + 1
            try:
                call = await charger.expect(
                    "MeterValues",
                    where=lambda c: c.get("connectorId") == session.connector and bool(_periodic_entries(c)),
                    within=bound,
                    since=cursor,
                    describe="a Sample.Periodic MeterValues",
                )
            except ExpectationTimeout:
                after = "the start of the transaction" if not found else f"sample {len(found)}"
                pytest.fail(
                    f"expected a Sample.Periodic MeterValues every {interval} s after {SAMPLE_INTERVAL}={interval} "
                    f"was Accepted; none came within {harness_settings.scaled(bound):g} s after {after} "
                    f"({len(found)} of {CADENCE_SAMPLES} seen)",
                    pytrace=False,
                )
            cursor = call.seq + 1
            for stamp in _periodic_entries(call):
                if not found or stamp is None or found[-1].raw_timestamp != stamp:
                    found.append(_Sample(stamp, call))
    finally:
        if charger.connected and any(t.transaction_id == session.transaction_id for t in charger.active_transactions()):
            await _stop(charger, session)
    _judge_cadence(charger, session, found[:CADENCE_SAMPLES], interval, tolerance)


async def _stop(charger: ChargerSession, session: Charging) -> None:
    try:
        await stop_charging(charger, session, remote=True)
    except (AssertionError, CallErrorReceived):
        await stop_charging(charger, session, remote=False)


def _judge_cadence(charger: ChargerSession, session: Charging, found: list[_Sample], interval: int,
                   tolerance: float) -> None:
    stamps = [s.raw_timestamp for s in found] + [session.start.get("timestamp")]
    resolution = meter.timestamp_resolution(stamps)
    charger_times = [s.when() for s in found]
    start_time = _Sample(session.start.get("timestamp"), session.start).when()
    # The charger's own timestamps say when it sampled; when they are too coarse for the
    # tolerance (whole seconds in quick mode), the arrival times stand in.
    use_stamps = resolution < tolerance / 2 and None not in charger_times and start_time is not None
    if use_stamps:
        times = [t for t in charger_times if t is not None]
        origin = start_time if start_time is not None else times[0]
        source = "the charger's timestamps"
    else:
        times = [s.call.mono for s in found]
        origin = session.start.mono
        source = "arrival times"
    gaps = [b - a for a, b in zip(times, times[1:])]
    first = times[0] - origin
    charger.note(
        f"interval {interval} s: first sample {first:.2f} s after the start, then gaps "
        f"{', '.join(f'{g:.2f}' for g in gaps)} s ({source}; tolerance ±{tolerance:g} s)"
    )
    problems = []
    if first > interval + tolerance:
        problems.append(f"the first sample came {first:.2f} s after the start of the transaction")
    for i, gap in enumerate(gaps, start=1):
        if abs(gap - interval) > tolerance:
            problems.append(f"samples {i} and {i + 1} are {gap:.2f} s apart")
    assert not problems, (
        f"expected Sample.Periodic MeterValues every {interval} s (±{tolerance:g} s) during the transaction: "
        + "; ".join(problems) + f" (measured with {source})"
    )
