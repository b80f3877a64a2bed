"""Suites speak `ocpp` dataclasses: the frames they send are the ones a hand-built dict gave, and an answer that
breaks the schema is judged, not a harness error. The report's closed sets are enums with their old values."""

from __future__ import annotations

import json
import pickle
from decimal import Decimal

from ocpp.v16 import call
from ocpp.v16.enums import ChargingProfilePurposeType, ChargingRateUnitType, MessageTrigger

from harness import ocppj
from harness.limits import charging_profile
from harness.report import model


def test_set_charging_profile_goes_on_the_wire_as_the_hand_built_dict() -> None:
    profile = charging_profile(9101, ChargingProfilePurposeType.tx_profile, Decimal("7.5"), 3,
                               unit=ChargingRateUnitType.watts, number_phases=1)
    by_hand = {"connectorId": 1, "csChargingProfiles": profile}
    sent = ocppj.payload_of(call.SetChargingProfile(connector_id=1, cs_charging_profiles=profile))
    assert ocppj.encode_json(sent) == ocppj.encode_json(by_hand)


def test_a_float_stays_a_float_on_the_wire() -> None:
    # before: payload_of parsed floats as Decimal, and 16.0 went out as 16
    sent = ocppj.payload_of(call.SetChargingProfile(
        connector_id=1, cs_charging_profiles={"chargingSchedule": {"chargingSchedulePeriod": [{"limit": 16.0}]}}))
    assert ocppj.encode_json(sent) == '{"connectorId":1,"csChargingProfiles":{"chargingSchedule":' \
                                      '{"chargingSchedulePeriod":[{"limit":16.0}]}}}'


def test_trigger_message_enum_is_its_value_on_the_wire() -> None:
    sent = ocppj.payload_of(call.TriggerMessage(requested_message=MessageTrigger.meter_values, connector_id=1))
    assert ocppj.encode_json(sent) == '{"requestedMessage":"MeterValues","connectorId":1}'


def test_an_answer_missing_a_required_field_is_judged_not_a_harness_error() -> None:
    # before: TypeError (a harness error); the schema check reports the missing field, the suite sees no status
    answer = ocppj.response_dataclass("SetChargingProfile", {})
    assert answer.status is None
    assert ocppj.response_dataclass("TriggerMessage", ["not", "an", "object"]).status is None  # type: ignore[arg-type]


def test_report_enums_keep_their_values_and_cross_to_the_controller_as_plain_str() -> None:
    assert [str(v) for v in model.Verdict] == ["pass", "fail", "not applicable", "not tested", "incomplete"]
    assert set(model.OVERALL_VERDICTS) == {"certified", "rehearsal passed", "not certified", "incomplete"}
    assert json.dumps({model.Verdict.PASS: model.Overall.CERTIFIED}) == '{"pass": "certified"}'
    plain = model.jsonable({"verdict": model.Verdict.NOT_TESTED, "purpose": [ChargingProfilePurposeType.tx_profile]})
    assert type(plain["verdict"]) is str and type(plain["purpose"][0]) is str
    assert plain == {"verdict": "not tested", "purpose": ["TxProfile"]}
    pickle.dumps(plain)  # what crosses from an xdist worker holds no enum member
