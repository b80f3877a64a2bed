"""Property-based tests (Hypothesis) of the sans-I/O OCPP-J core: whatever a charger sends, parsing and
validation end in a documented finding, never in another exception inside the harness.

Bounded for the ordinary test run; `HYPOTHESIS_PROFILE=nightly` runs many more examples.
"""

from __future__ import annotations

import importlib.resources
import json
import os
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import ocppj

settings.register_profile(
    "default", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "nightly", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

SCHEMA_NAMES = sorted(
    p.name[:-5] for p in (importlib.resources.files("ocpp.v16") / "schemas").iterdir() if p.name.endswith(".json")
)

# Numbers a charger can send: huge, tiny, negative, exponents, many digits.
numbers = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.sampled_from([Decimal("1e27"), Decimal("1E+999999"), Decimal("1e-999999"), Decimal("-0.0"), 2**64]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=40))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)),
    max_leaves=25,
)


def _wire(value: Any) -> str:
    return ocppj.encode_json(value)


@given(st.one_of(st.text(max_size=200), st.binary(max_size=100)))
def test_any_text_parses_or_is_a_frame_error(text: str | bytes) -> None:
    try:
        ocppj.parse_frame(text)
    except ocppj.FrameError:  # UnknownMessageType is one
        pass


@given(st.lists(json_values, max_size=6), st.sampled_from([2, 3, 4, 5, 0, -1]))
def test_any_json_array_parses_or_is_a_frame_error(items: list[Any], kind: int) -> None:
    try:
        ocppj.parse_frame(_wire([kind, *items]))
    except ocppj.FrameError:
        pass


@given(st.sampled_from(SCHEMA_NAMES), st.dictionaries(st.text(max_size=20), json_values, max_size=8))
def test_any_payload_against_any_schema_gives_findings_not_exceptions(name: str, payload: dict[str, Any]) -> None:
    # Through the wire form, as the session sees it (numbers as Decimal).
    problems = ocppj.schemas()._problems(name, ocppj.decode_json(_wire(payload)))
    assert all(isinstance(p, ocppj.SchemaProblem) for p in problems)


def _field_paths(schema: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for key, sub in schema.get("properties", {}).items():
        paths.append((*prefix, key))
        if sub.get("type") == "object":
            paths += _field_paths(sub, (*prefix, key))
    return paths


def _set(payload: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        payload = payload.setdefault(key, {}) if isinstance(payload.get(key, {}), dict) else {}
    payload[path[-1]] = value


VALID = {
    "SetChargingProfile": {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6.3}]},
        },
    },
    "GetCompositeScheduleResponse": {
        "status": "Accepted", "connectorId": 1,
        "chargingSchedule": {"chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7400.1}]},
    },
    "MeterValues": {
        "connectorId": 1, "transactionId": 3,
        "meterValue": [{"timestamp": "2026-12-04T10:00:00Z", "sampledValue": [{"value": "12.5", "measurand": "Power.Active.Import"}]}],
    },
    "StartTransaction": {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": "2026-12-04T10:00:00Z"},
    "BootNotification": {"chargePointVendor": "V", "chargePointModel": "M"},
}


@given(st.sampled_from(sorted(VALID)), st.data())
def test_mutated_fields_of_valid_payloads_give_findings_not_exceptions(name: str, data: st.DataObject) -> None:
    schema = json.loads((importlib.resources.files("ocpp.v16") / "schemas" / f"{name}.json").read_text())
    payload = json.loads(json.dumps(VALID[name]))
    for path in data.draw(st.lists(st.sampled_from(_field_paths(schema)), min_size=1, max_size=3)):
        _set(payload, path, data.draw(json_values))
    problems = ocppj.schemas()._problems(name, ocppj.decode_json(_wire(payload)))
    assert all(isinstance(p, ocppj.SchemaProblem) for p in problems)


@given(numbers)
def test_any_limit_is_checked_against_multiple_of(limit: Any) -> None:
    payload = json.loads(json.dumps(VALID["SetChargingProfile"]))
    payload["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = limit
    problems = ocppj.schemas().request_problems("SetChargingProfile", ocppj.decode_json(_wire(payload)))
    assert all(p.keyword in ("multipleOf", "type") for p in problems), problems


def test_the_valid_payloads_are_valid() -> None:
    for name, payload in VALID.items():
        assert ocppj.schemas()._problems(name, ocppj.decode_json(_wire(payload))) == [], name


def test_huge_limit_is_a_finding_not_a_crash() -> None:
    """Regression: 1e27 against multipleOf 0.1 raised decimal.InvalidOperation inside the harness."""
    payload = json.loads(json.dumps(VALID["GetCompositeScheduleResponse"]))
    payload["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = Decimal("1e27")
    assert ocppj.schemas().response_problems("GetCompositeSchedule", payload) == []
    payload["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = Decimal("1E+999999")
    (problem,) = ocppj.schemas().response_problems("GetCompositeSchedule", payload)
    assert problem.keyword == "multipleOf" and "too large" in problem.message
