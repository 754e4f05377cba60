"""The error tree: every refusal the engine can give, with the name callers see.

Each class name is the ``type`` of the ``ApplicationError`` a workflow raises, so the CLI and any
department system can branch on it without parsing text.
"""

from __future__ import annotations


class OrderflowError(Exception):
    """Base of every refusal. The message says what was wrong and how to fix it."""

    @property
    def type(self) -> str:
        return type(self).__name__


class InvalidInput(OrderflowError):
    """A field is missing, malformed or out of range."""


class NotFound(OrderflowError):
    """An SKU, location, customer, department, carrier, hold, promise or order that does not
    exist."""


class TooLarge(OrderflowError):
    """A message larger than the engine takes (see ``domain.base.MAX_MESSAGE_BYTES``)."""


class LimitReached(OrderflowError):
    """The order already has as many holds, promises or e-mails as one order may have."""


class NotAllowed(OrderflowError):
    """The actor may not do this (for example another department releasing a hold)."""


class WrongState(OrderflowError):
    """The order, hold, promise or delivery is not in a state that accepts this message."""


def refusal_of(type_name: str, message: str) -> OrderflowError:
    """A refusal read back from where it was recorded by its type's name."""
    for cls in (InvalidInput, NotFound, TooLarge, LimitReached, NotAllowed, WrongState):
        if cls.__name__ == type_name:
            return cls(message)
    return InvalidInput(message)


# A payload the engine's codec could not open (its key is unknown here, or it was altered): the
# codec hands it on with this encoding and the reason as its data (orderflow.codec).
UNDECODABLE_ENCODING = b"binary/undecodable"


class UndecodablePayload(Exception):
    """An encrypted payload this process cannot read; the message names the key id. Not a
    refusal of the engine's rules: a workflow task that meets one fails and is retried (the
    missing key may yet arrive), while an update carrying one is refused."""
