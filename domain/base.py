"""What every model of the domain shares: the base class, ids, money, and the text rules of
every command.

Fields are only ever added, with defaults, so histories recorded by older versions still load.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer

from domain.errors import InvalidInput

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
    if amount != amount.quantize(Decimal("0.01")):
        raise InvalidInput(f"amount has more than two decimal places (got {amount})")
    if amount > MAX_AMOUNT:
        raise InvalidInput(f"amount is larger than {MAX_AMOUNT} (got {amount})")
