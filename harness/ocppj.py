"""Sans-I/O OCPP-J 1.6 core: parse, validate and encode frames. No sockets here.

Both sides use it: the fake endpoint (to judge what a charger sends) and the reference charger
(to answer the platform). It is stricter than the `ocpp` package on purpose:
- numbers are parsed as `Decimal`, so `multipleOf: 0.1` accepts 6.3 (float maths would not);
- `date-time` values must be RFC 3339 (the package does not check formats);
- CALLERROR codes are the ten 1.6 names (the package answers with the 2.0 `FormatViolation`);
- frame shape, id length and pairing are checked, not assumed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import importlib.resources
import json
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
import decimal
from decimal import Decimal
from typing import Any, NoReturn, Union

import jsonschema
from ocpp.charge_point import camel_to_snake_case, remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.v16 import call as v16_call
from ocpp.v16 import call_result as v16_call_result

# OCPP-J 1.6 §4.1.3: the unique id is a string of at most 36 characters.
MAX_ID_LENGTH = 36

# OCPP-J 1.6 §4.2.3, table "Valid Error Codes" (note the spec's own spelling "Occurence").
ERROR_CODES_16: frozenset[str] = frozenset(
    {
        "NotImplemented",
        "NotSupported",
        "InternalError",
        "ProtocolError",
        "SecurityError",
        "FormationViolation",
        "PropertyConstraintViolation",
        "OccurenceConstraintViolation",
        "TypeConstraintViolation",
        "GenericError",
    }
)


class MessageType(enum.IntEnum):
    CALL = 2
    CALLRESULT = 3
    CALLERROR = 4


@dataclass(frozen=True)
class Call:
    unique_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class CallResult:
    unique_id: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class CallError:
    unique_id: str
    code: str
    description: str
    details: dict[str, Any] = field(default_factory=dict)
    # Set when the received errorDetails was not a JSON object (then `details` is empty): a schema
    # deviation of the frame, not a reason to disregard the answer (see parse_frame).
    details_problem: str = field(default="", compare=False)


Frame = Union[Call, CallResult, CallError]


class FrameError(Exception):
    """A frame that cannot be understood at all.

    `code` is the 1.6 error code a receiver answers with when it can (it needs the unique id);
    `unique_id` is set when the frame was readable enough to have one; `message_type` when its first
    element was a number (only a CALL, type 2, is ever answered: nobody answers a CALLRESULT or CALLERROR).
    """

    def __init__(self, code: str, reason: str, unique_id: str | None = None, message_type: int | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.unique_id = unique_id
        self.message_type = message_type


class UnknownMessageType(FrameError):
    """OCPP-J §4.1.3: a message type number other than 2, 3, 4. Receivers ignore it."""


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def decode_json(text: str | bytes) -> Any:
    """JSON with numbers as `Decimal` (exact `multipleOf`) and NaN/Infinity refused."""
    return json.loads(text, parse_float=Decimal, parse_constant=_no_constants)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        # Within 30 digits an integral value is written as an integer; beyond that (a charger's 1E+999999) int()
        # would build a million-digit number and json refuses to write it, so a float, or, past a float's range,
        # the decimal's own text: these only appear when the harness re-encodes what a charger sent.
        if value.is_finite() and value.adjusted() < 30 and value == value.to_integral_value():
            return int(value)
        as_float = float(value)
        return as_float if as_float not in (float("inf"), float("-inf")) and (as_float or value.is_zero()) else str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _unique_id(raw: object) -> str:
    if not isinstance(raw, str):
        raise FrameError("FormationViolation", f"unique id must be a string, got {type(raw).__name__} {raw!r}")
    if not raw:
        raise FrameError("FormationViolation", "unique id is empty")
    if len(raw) > MAX_ID_LENGTH:
        raise FrameError(
            "FormationViolation", f"unique id is {len(raw)} characters long (OCPP-J §4.1.3: at most 36)", raw
        )
    return raw


def parse_frame(text: str | bytes) -> Frame:
    """Parse one WebSocket message into a frame, or raise FrameError saying why not."""
    if isinstance(text, (bytes, bytearray)):
        raise FrameError("FormationViolation", "binary WebSocket frame: OCPP-J uses text frames only")
    try:
        data = decode_json(text)
    except (ValueError, RecursionError) as exc:
        raise FrameError("FormationViolation", f"not valid JSON: {exc}") from None
    if not isinstance(data, list) or not data:
        raise FrameError("FormationViolation", f"an OCPP-J frame is a non-empty JSON array, got {type(data).__name__}")
    kind = data[0]
    if isinstance(kind, bool) or not isinstance(kind, int):
        raise FrameError("FormationViolation", f"message type must be the number 2, 3 or 4, got {kind!r}")
    try:
        return _parse_typed(kind, data)
    except FrameError as exc:
        exc.message_type = kind
        raise


def _parse_typed(kind: int, data: list[Any]) -> Frame:
    unique_id = data[1] if len(data) > 1 and isinstance(data[1], str) else None
    if kind == MessageType.CALL:
        if len(data) != 4:
            raise FrameError("FormationViolation", f"CALL has {len(data)} elements, expected 4", unique_id)
        uid = _unique_id(data[1])
        action, payload = data[2], data[3]
        if not isinstance(action, str) or not action:
            raise FrameError("FormationViolation", f"CALL action must be a non-empty string, got {action!r}", uid)
        if not isinstance(payload, dict):
            raise FrameError("FormationViolation", f"CALL payload must be a JSON object, got {payload!r}", uid)
        return Call(uid, action, payload)
    if kind == MessageType.CALLRESULT:
        if len(data) != 3:
            raise FrameError("FormationViolation", f"CALLRESULT has {len(data)} elements, expected 3", unique_id)
        uid = _unique_id(data[1])
        if not isinstance(data[2], dict):
            raise FrameError("FormationViolation", f"CALLRESULT payload must be a JSON object, got {data[2]!r}", uid)
        return CallResult(uid, data[2])
    if kind == MessageType.CALLERROR:
        if len(data) == 4 and isinstance(data[2], str) and isinstance(data[3], str):
            # errorDetails left out: the same deviation as a non-object one (id, code, description readable).
            return CallError(_unique_id(data[1]), data[2], data[3], {}, details_problem=(
                "CALLERROR has no errorDetails (4 elements; OCPP-J 1.6 §4.2.3: [4, id, code, description, {details}])"))
        if len(data) != 5:
            raise FrameError("FormationViolation", f"CALLERROR has {len(data)} elements, expected 5", unique_id)
        uid = _unique_id(data[1])
        code, description, details = data[2], data[3], data[4]
        if not isinstance(code, str) or not isinstance(description, str):
            raise FrameError(
                "FormationViolation", "CALLERROR must be [4, id, code string, description string, details object]", uid
            )
        if not isinstance(details, dict):
            # OCPP-J 1.6 §4.2.3: errorDetails is a JSON object. A string (or anything else) there is a schema
            # deviation of this one field; the id, code and description are readable, so it is still the
            # charger's answer to the CALL with that id (ocpp16-notes: judge the answer, report the deviation).
            return CallError(uid, code, description, {}, details_problem=(
                f"CALLERROR errorDetails is {_json_type(details)} {encode_json(details)[:120]}, not a JSON object "
                "(OCPP-J 1.6 §4.2.3)"))
        return CallError(uid, code, description, details)
    raise UnknownMessageType("ProtocolError", f"unknown message type {kind} (OCPP-J knows 2, 3 and 4)", unique_id)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "a number"


def encode_frame(frame: Frame) -> str:
    if isinstance(frame, Call):
        return encode_json([MessageType.CALL.value, frame.unique_id, frame.action, frame.payload])
    if isinstance(frame, CallResult):
        return encode_json([MessageType.CALLRESULT.value, frame.unique_id, frame.payload])
    return encode_json([MessageType.CALLERROR.value, frame.unique_id, frame.code, frame.description, frame.details])


# --- schemas ---------------------------------------------------------------------------------

# RFC 3339 §5.6 date-time. Time zone required ("Z" or ±hh:mm); fractional seconds optional.
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))$"
)


def is_rfc3339(value: str) -> bool:
    match = _RFC3339.match(value)
    if not match:
        return False
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    if match.group(9) is not None and (int(match.group(9)) > 23 or int(match.group(10)) > 59):
        return False
    try:
        # second 60 is a leap second (RFC 3339 §5.7); check the rest by constructing the date.
        dt.datetime(year, month, day, hour, minute, min(second, 59))
    except ValueError:
        return False
    return second <= 60


def parse_datetime(value: str) -> dt.datetime:
    """Parse an RFC 3339 date-time into an aware datetime (ValueError if it is not one)."""
    if not is_rfc3339(value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    text = value.replace("z", "Z").replace("t", "T")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    text = re.sub(r":60(?=[.+-])", ":59", text)
    return dt.datetime.fromisoformat(text)


FORMAT_CHECKER = jsonschema.FormatChecker(formats=())


def _check_datetime(instance: object) -> bool:
    return not isinstance(instance, str) or is_rfc3339(instance)


# Registered by a call, not as a decorator: without jsonschema's stubs the decorator is untyped to mypy --strict.
FORMAT_CHECKER.checks("date-time")(_check_datetime)


# OCPP-J §4.2.3: which 1.6 code fits which kind of schema violation.
_CODE_FOR_KEYWORD = {
    "required": "OccurenceConstraintViolation",
    "minItems": "OccurenceConstraintViolation",
    "maxItems": "OccurenceConstraintViolation",
    "type": "TypeConstraintViolation",
    "additionalProperties": "FormationViolation",
}


@dataclass(frozen=True)
class SchemaProblem:
    path: str  # JSON path into the payload, e.g. "$.meterValue[0].sampledValue[1].unit"
    message: str
    keyword: str

    @property
    def error_code(self) -> str:
        return _CODE_FOR_KEYWORD.get(self.keyword, "PropertyConstraintViolation")

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _json_path(error: jsonschema.ValidationError) -> str:
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


_MULTIPLE_OF_PRECISION = 400  # digits: enough for any number a sane charger sends, bounded for an insane one


def _multiple_of(
    validator: jsonschema.protocols.Validator, divisor: object, instance: object, schema: object
) -> Iterator[jsonschema.ValidationError]:
    """`multipleOf` in exact decimal arithmetic that never raises on the charger's number.

    jsonschema's own does `instance % divisor` in the default 28-digit context, so a value like 1e27 against
    `multipleOf: 0.1` raises decimal.InvalidOperation (the quotient has 29 digits) inside the harness. Any
    number a charger sends must end, at worst, as a schema finding against its frame.
    """
    if not validator.is_type(instance, "number") or isinstance(instance, bool):
        return
    try:
        with decimal.localcontext() as ctx:
            ctx.prec = _MULTIPLE_OF_PRECISION
            ctx.traps[decimal.Inexact] = False
            value, step = Decimal(str(instance)), Decimal(str(divisor))
            failed = value % step != 0
    except (decimal.InvalidOperation, ArithmeticError, ValueError):
        yield jsonschema.ValidationError(
            f"{str(instance)[:40]} is too large or too precise to check as a multiple of {divisor}")
        return
    if failed:
        yield jsonschema.ValidationError(f"{instance} is not a multiple of {divisor}")


#: Draft 4, with a `multipleOf` that cannot be crashed by a number (see _multiple_of).
_Validator = jsonschema.validators.extend(jsonschema.Draft4Validator, {"multipleOf": _multiple_of})


class SchemaRegistry:
    """The OCPP 1.6 JSON schemas shipped by the `ocpp` package, loaded lazily, numbers as Decimal."""

    def __init__(self) -> None:
        self._validators: dict[str, jsonschema.protocols.Validator | None] = {}
        root = importlib.resources.files("ocpp.v16") / "schemas"
        self._names = {p.name[:-5] for p in root.iterdir() if p.name.endswith(".json")}
        self._root = root

    def knows(self, action: str) -> bool:
        return action in self._names and not action.endswith("Response")

    def _validator(self, name: str) -> jsonschema.protocols.Validator | None:
        if name not in self._validators:
            if name not in self._names:
                self._validators[name] = None
            else:
                schema = decode_json((self._root / f"{name}.json").read_text(encoding="utf-8"))
                schema.pop("$schema", None)  # draft-04 ids in these files trip newer jsonschema
                schema.pop("id", None)
                self._validators[name] = _Validator(schema, format_checker=FORMAT_CHECKER)
        return self._validators[name]

    def _problems(self, name: str, payload: object) -> list[SchemaProblem]:
        validator = self._validator(name)
        if validator is None:
            return [SchemaProblem("$", f"no OCPP 1.6 schema named {name}", "unknown")]
        found = list(validator.iter_errors(payload))
        errors = sorted(found, key=lambda e: list(map(str, e.absolute_path)))
        return [SchemaProblem(_json_path(e), e.message, str(e.validator)) for e in errors]

    def request_problems(self, action: str, payload: object) -> list[SchemaProblem]:
        return self._problems(action, payload)

    def response_problems(self, action: str, payload: object) -> list[SchemaProblem]:
        return self._problems(f"{action}Response", payload)


@functools.lru_cache(maxsize=1)
def schemas() -> SchemaRegistry:
    return SchemaRegistry()


# --- dataclasses of the `ocpp` package <-> payloads -------------------------------------------


def action_of(message: object) -> str:
    """`call.BootNotification(...)` -> "BootNotification" (older names end in "Payload")."""
    name = type(message).__name__
    return name[: -len("Payload")] if name.endswith("Payload") else name


def payload_of(message: object) -> dict[str, Any]:
    """An `ocpp.v16` dataclass as the camelCase JSON object that goes on the wire."""
    if isinstance(message, dict):
        return message
    payload = snake_to_camel_case(remove_nones(serialize_as_dict(message)))
    # Enums and datetimes to JSON values. Floats stay floats (no parse_float=Decimal here): a limit of 16.0 goes on
    # the wire as 16.0, the same frame a hand-built dict gives, and the harness's own record of it stays float.
    wire: dict[str, Any] = json.loads(encode_json(payload))  # a JSON object: serialize_as_dict gave a dict
    return wire


# The `ocpp` package ships no type information (no py.typed): its dataclasses are Any to mypy, and so are these.
def _build(cls: type, payload: dict[str, Any]) -> Any:
    data = camel_to_snake_case(payload) if isinstance(payload, dict) else {}
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields}
    built = {k: v for k, v in data.items() if k in names}
    # A required field the peer left out is None: the schema check has already reported it, and the suite judges
    # the answer as sent (no status is not "Accepted"), rather than the harness failing to build the dataclass.
    for f in fields:
        if f.name not in built and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            built[f.name] = None
    return cls(**built)


def request_dataclass(action: str, payload: dict[str, Any]) -> Any:
    """A received CALL as its `ocpp.v16.call` dataclass (unknown keys dropped: the schema check reports them)."""
    return _build(getattr(v16_call, action), payload)


def response_dataclass(action: str, payload: dict[str, Any]) -> Any:
    """A received CALLRESULT as its `ocpp.v16.call_result` dataclass."""
    return _build(getattr(v16_call_result, action), payload)


class IdTracker:
    """Remembers the most recent unique ids one peer used, to spot reuse (OCPP-J §4.1.3: unique per sender)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def seen_before(self, unique_id: str) -> bool:
        if unique_id in self._seen:
            return True
        self._seen[unique_id] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return False
