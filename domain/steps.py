"""The order's steps, in the words the order view and the departments read."""

from __future__ import annotations

from enum import StrEnum


class Step(StrEnum):
    """Where the order's run stands. A hold blocks the step the order is at when it is placed."""

    RESERVE_STOCK = "reserve stock"
    WAIT_FOR_STOCK = "wait for stock"
    AUTHORIZE_PAYMENT = "authorize payment"
    BOOK_CARRIER = "book the carrier"
    HAND_OVER_IN_STORE = "hand over in store"
    DELIVER = "deliver"
    CAPTURE_PAYMENT = "capture payment"

    @property
    def owner(self) -> str:
        """The department whose work the step is: it is told when a hold blocks it."""
        return _OWNER[self]


_OWNER = {
    Step.RESERVE_STOCK: "stock",
    Step.WAIT_FOR_STOCK: "stock",
    Step.AUTHORIZE_PAYMENT: "billing",
    Step.BOOK_CARRIER: "fulfilment",
    Step.HAND_OVER_IN_STORE: "stock",
    Step.DELIVER: "fulfilment",
    Step.CAPTURE_PAYMENT: "billing",
}
