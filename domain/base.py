"""What every model of the domain shares: the base class, ids, money, and the rules every
message from outside meets at the door.

Fields are only ever added, with defaults, so histories recorded by older versions still load.

**The door.** A command (an update's input) or an order's start input comes from another
system, perhaps hand-written JSON through the ``temporal`` CLI. Where it is first validated (the
update's validator, the start of a new order) it is read with :func:`admit`: at most
``MAX_MESSAGE_BYTES``, no unknown field, every string within its length and free of control and
direction-override characters. A refusal names the JSON field. What history already recorded
is read leniently (:func:`recorded`), so an order accepted by an older, laxer version still
replays.
"""

from __future__ import annotations

import json
import re
import unicodedata
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from domain.errors import InvalidInput, TooLarge

# Who acts when the engine itself keeps a promise, releases a hold or cancels an order.
ENGINE = "orderflow"
# Who acts for the customer (a cancel from the customer needs no department).
CUSTOMER = "customer"

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(
            f"'{value}' is not a valid id: use 1-64 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    return value


Identifier = Annotated[str, AfterValidator(_check_id)]
Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=12, decimal_places=2),
    PlainSerializer(lambda v: float(v), return_type=float, when_used="json"),
]
NonEmpty = Annotated[str, Field(min_length=1, max_length=2000)]


class Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=False)


# ---------------------------------------------------------------------------- the door

# The largest message (an update's input, an order's start input) the engine takes.
MAX_MESSAGE_BYTES = 64 * 1024

# What one order takes, so that no caller can flood a customer or an order's history.
MAX_ACTIVE_HOLDS = 10
MAX_HOLDS = 50
MAX_OPEN_PROMISES = 20
MAX_PROMISES = 50
MAX_CUSTOMER_EMAILS = 500

# Validation context under which the door's rules apply.
_DOOR = "orderflow.door"
# Direction overrides, embeddings, isolates and marks: they make text read differently from
# what it is (an e-mail subject, a name in the UI).
_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _at_door(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get(_DOOR))


def _text(limit: int, *, lines: bool = False) -> AfterValidator:
    """A string of at most ``limit`` characters with no control or direction-override
    character (``lines``: newlines allowed, for a message of several lines)."""

    def check(value: str, info: ValidationInfo) -> str:
        if not _at_door(info):
            return value
        if len(value) > limit:
            raise ValueError(f"is longer than {limit} characters")
        for char in value:
            if char == "\n" and lines:
                continue
            if char in _BIDI or unicodedata.category(char) == "Cc":
                raise ValueError(
                    f"contains the control or direction character U+{ord(char):04X}; send plain text"
                    + (" (newlines are allowed)" if lines else " on one line")
                )
        return value

    return AfterValidator(check)


# A person's or system's name (an actor, a department's reference). The schema states the limits
# the door keeps (``json_schema_extra`` publishes them without applying them to history).
Name = Annotated[str, _text(200), Field(json_schema_extra={"maxLength": 200})]
# Words a person wrote for another person: a message, a resolution, a promise.
Words = Annotated[str, _text(2000, lines=True), Field(json_schema_extra={"maxLength": 2000})]


def _exactly(kind: type, words: str) -> BeforeValidator:
    """At the door, a JSON value of exactly this kind: ``"5"`` is not a count, ``"false"`` not a
    flag. History keeps what older versions accepted, so a replay reads it as before."""

    def check(value: Any, info: ValidationInfo) -> Any:
        if _at_door(info) and type(value) is not kind:
            raise ValueError(f"should be {words}, not {json.dumps(value)[:40]}")
        return value

    return BeforeValidator(check)


# A number of units, and a yes or no, as a message states them.
Count = Annotated[int, _exactly(int, "a whole number")]
Flag = Annotated[bool, _exactly(bool, "true or false")]


class Command(Model):
    """A message from outside the engine: at the door, an unknown field is refused (a typo in
    an optional field must not silently turn it off)."""

    model_config = ConfigDict(json_schema_extra={"additionalProperties": False})

    @model_validator(mode="before")
    @classmethod
    def _known_fields_only(cls, data: Any, info: ValidationInfo) -> Any:
        if _at_door(info) and isinstance(data, dict):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                known = ", ".join(cls.model_fields)
                raise ValueError(
                    f"unknown field {', '.join(repr(u) for u in unknown)}; "
                    f"{cls.__name__} has: {known}"
                )
        return data


class Receipt(Model):
    """An update's answer to its caller: ids, times and states, naming people only by id.
    Receipts are the one kind of payload the engine's codec leaves in the clear, so that a
    department system sending plain JSON through the ``temporal`` CLI reads its hold id
    (``orderflow.codec``); every other payload is encrypted."""


M = TypeVar("M", bound=BaseModel)


def refusal_text(err: ValidationError) -> str:
    """Pydantic's errors as one line a caller of any language can act on: each names the JSON
    field (``lines.0.qty``)."""
    parts = []
    for error in err.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()))
        msg = str(error.get("msg", "")).removeprefix("Value error, ")
        if error.get("type") == "missing":
            msg = "is required"
        parts.append(f"{where}: {msg}" if where else msg)
    more = len(err.errors()) - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _largest_field(data: bytes) -> str:
    """Which top-level field makes an oversized message large, for the caller to fix."""
    try:
        message = json.loads(data)
    except (ValueError, RecursionError):
        return ""
    if not isinstance(message, dict) or not message:
        return ""
    sizes = {key: len(json.dumps(value)) for key, value in message.items()}
    field = max(sizes, key=lambda key: sizes[key])
    return f" ({field} is {sizes[field]} of them)"


def admit(data: bytes | None, model: type[M], *, what: str) -> M:
    """Read a message at the door: ``data`` is its JSON. Raises ``TooLarge`` or
    ``InvalidInput`` naming the field."""
    if data is None:
        raise InvalidInput(f"{what} takes one argument, a JSON object (orderflow schema)")
    if len(data) > MAX_MESSAGE_BYTES:
        raise TooLarge(
            f"{what}: the message is {len(data)} bytes{_largest_field(data)}; the engine takes "
            f"at most {MAX_MESSAGE_BYTES}"
        )
    try:
        return model.model_validate_json(data, context={_DOOR: True})
    except ValidationError as err:
        raise InvalidInput(f"{what}: {refusal_text(err)}") from None
    except (ValueError, json.JSONDecodeError) as err:  # pragma: no cover - pydantic wraps these
        raise InvalidInput(f"{what}: {err}") from None


def recorded(data: bytes, model: type[M]) -> M:
    """Read a message history has already accepted: without the door's rules, which an older
    version may not have had."""
    return model.model_validate_json(data)


def required_text(value: str, field: str, *, limit: int = 2000) -> str:
    """A person's words in a command: not empty, not too long; returned stripped."""
    value = (value or "").strip()
    if not value:
        raise InvalidInput(f"{field} must not be empty")
    if len(value) > limit:
        raise InvalidInput(f"{field} is longer than {limit} characters")
    return value


MAX_AMOUNT = Decimal("9999999999.99")


def check_amount(amount: Decimal) -> None:
    """A money amount: finite, not negative, whole cents, below ten billion."""
    if not amount.is_finite():
        raise InvalidInput(f"amount must be a number (got {amount})")
    if amount < 0:
        raise InvalidInput(f"amount must not be negative (got {amount})")
    if amount > MAX_AMOUNT:
        raise InvalidInput(f"amount is larger than {MAX_AMOUNT} (got {amount})")
    if amount != amount.quantize(Decimal("0.01")):
        raise InvalidInput(f"amount has more than two decimal places (got {amount})")
