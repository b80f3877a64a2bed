"""CFG-1, CFG-2: the meter configuration the platform sends (OCPP 1.6 §5.3 ChangeConfiguration, §5.8
GetConfiguration, §9.1 MeterValuesSampledData and MeterValueSampleInterval; OCTT TC_021_CS).

Whether the configured measurands then appear in MeterValues is MV-1's business, not CFG-1's:
CFG-1 is the charger accepting the platform's list (or, for a Current+Voltage meter, its own
equivalent) and reporting it back. CFG-2 is the interval accepted and reported (here) and honoured:
the cadence is judged on the periodic samples of the run's metered session (harness/metered_session/;
test_meter_values.py::test_samples_arrive_at_the_interval), so no second session is needed.
"""

from __future__ import annotations

import pytest
from ocpp.v16 import call
from ocpp.v16.enums import ConfigurationStatus

from harness import meter, ocppj
from harness.flows import CURRENT_VOLTAGE_LIST, POWER_LIST, change_configuration
from harness.session import ChargerSession

pytestmark = pytest.mark.asyncio(loop_scope="session")

SAMPLED_DATA = "MeterValuesSampledData"
SAMPLE_INTERVAL = "MeterValueSampleInterval"
PLATFORM_INTERVAL = 60  # s: what ev.energy sends


async def reported_value(charger: ChargerSession, key: str) -> tuple[bool, str | None, dict]:
    """(known, value, the whole answer) of GetConfiguration for one key."""
    answer = await charger.call(call.GetConfiguration(key=[key]))
    payload = ocppj.payload_of(answer)  # the answer as a dict, to quote
    for entry in answer.configuration_key or []:
        if isinstance(entry, dict) and str(entry.get("key", "")).lower() == key.lower():
            value = entry.get("value")
            return True, None if value is None else str(value), payload
    return False, None, payload


def _not_accepted(key: str, value: str, status: str) -> str:
    if status == ConfigurationStatus.reboot_required:
        return (
            f"expected ChangeConfiguration {key}={value!r} to be Accepted; it was answered RebootRequired: the change "
            "would only take effect after a reboot, and the platform does not reboot chargers to apply it"
        )
    if status == ConfigurationStatus.not_supported:
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
    if status != ConfigurationStatus.accepted:
        assert status != ConfigurationStatus.reboot_required, _not_accepted(SAMPLED_DATA, POWER_LIST, status)
        # A Current+Voltage meter rejects a list naming Power.Active.Import (an unsupported
        # measurand rejects the whole list): its own equivalent must then be accepted.
        second = await change_configuration(charger, SAMPLED_DATA, CURRENT_VOLTAGE_LIST)
        assert second == ConfigurationStatus.accepted, (
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
    assert status == ConfigurationStatus.accepted, _not_accepted(SAMPLE_INTERVAL, str(PLATFORM_INTERVAL), status)
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
