"""How a workflow's validators refuse: a rule from ``domain`` raises an ``OrderflowError``, and
the update is rejected with it, non-retryable, before it reaches history.

Updates take their input raw (``Annotated[RawValue, Model]``: the SDK hands the payload over
undecoded, the schema reads the model) so that decoding is the validator's first rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import BaseModel
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from domain.base import admit, recorded
from domain.errors import UNDECODABLE_ENCODING, InvalidInput, OrderflowError, UndecodablePayload


def refusal(err: OrderflowError) -> ApplicationError:
    """The error a caller sees: the rule's words, and its class name as the type."""
    return ApplicationError(str(err), type=err.type, non_retryable=True)


def validate(check: Callable[[], object]) -> None:
    """Run a rule; its refusal rejects the update."""
    try:
        check()
    except OrderflowError as err:
        raise refusal(err) from None


M = TypeVar("M", bound=BaseModel)

# What a handler is given when the caller sent no argument at all: the door refuses it ("takes
# one argument") instead of the SDK failing to call the handler.
NO_INPUT = RawValue(Payload(metadata={"encoding": b"binary/null"}))


def _json(raw: RawValue, what: str) -> bytes | None:
    payload = raw.payload
    if payload is None or payload.metadata.get("encoding") == b"binary/null":
        return None
    if payload.metadata.get("encoding") == UNDECODABLE_ENCODING:
        # The codec could not open it (orderflow.codec): its reason names the key.
        raise UndecodablePayload(f"{what}: {payload.data.decode(errors='replace')}")
    encoding = payload.metadata.get("encoding", b"").decode(errors="replace")
    if encoding != "json/plain":
        raise InvalidInput(f"{what} takes JSON (encoding json/plain), not {encoding or 'none'}")
    return payload.data


def admitted(raw: RawValue, model: type[M], what: str) -> M:
    """An update's input at the door (its validator): decoded here rather than by the SDK, so
    a wrong type, a missing argument or an oversized message is a refusal naming the field,
    like any other (``domain.base.admit``)."""
    return admit(_json(raw, what), model, what=what)


def accepted(raw: RawValue, model: type[M]) -> M:
    """An update's input in its handler: it passed the door when it was validated, or it is
    replayed from history, where an older version may have accepted it."""
    assert raw.payload is not None
    if raw.payload.metadata.get("encoding") == UNDECODABLE_ENCODING:
        # Replayed without the key it was sealed with: the task fails, naming the key.
        raise UndecodablePayload(raw.payload.data.decode(errors="replace"))
    return recorded(raw.payload.data, model)


def door(raw: RawValue, model: type[M], what: str, rule: Callable[[M], object]) -> None:
    """An update's validator: its input is admitted, then its rule runs on the order; either
    refusal rejects the update."""
    validate(lambda: rule(admitted(raw, model, what)))
