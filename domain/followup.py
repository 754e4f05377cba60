"""Orders ended outside the engine: what the follow-up knows of them and what it tells people.

An order's workflow can be ended by hand (``temporal workflow terminate``), by a timeout, or by a
failure the engine did not decide. The order can then no longer keep its own promises, so a
follow-up does what its compensation would have done and tells the customer the truth.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, Field


class EndedAs(StrEnum):
    TERMINATED = "terminated"
    TIMED_OUT = "timed_out"
    FAILED = "failed"


class FollowUpCall(StrEnum):
    """The follow-up's own calls (activities)."""

    START_FOLLOWUPS = "start_followups"
    READ_ENDED_ORDER = "read_ended_order"


class SweepRequest(BaseModel):
    task_queue: str


class FollowUpInput(BaseModel):
    order_id: str
    ended_as: EndedAs
    ended_at: datetime | None = None
    # The failure's type when the order failed: an order the engine itself rejected
    # ("InvalidInput") promised, charged and reserved nothing, and is only marked.
    failure_type: str = ""


class EndedOrder(BaseModel):
    """The order as it stood when it ended, read from its last view and its input."""

    order_id: str
    customer_id: str
    customer_email: str
    status: str
    payment: str
    total: Decimal
    charged: Decimal
    reservation_location: str = ""
    reservation_sku: str = ""
    reservation_status: str = ""
    # The booking key of a delivery still under way, to cancel with the carrier.
    open_booking: str = ""
    alert_emails: list[str] = Field(default_factory=list)


class FollowUpResult(BaseModel):
    order_id: str
    ended_as: EndedAs
    rejected: bool = False
    actions: list[str] = Field(default_factory=list)


# Failure types the engine itself ends an order with; such an order is only marked.
REJECTED = ("InvalidInput",)

WHY = {
    EndedAs.TERMINATED: "was stopped by hand outside our order process",
    EndedAs.TIMED_OUT: "ran past its time limit and was stopped",
    EndedAs.FAILED: "stopped after an internal error",
}


def needs_nothing(inp: FollowUpInput) -> bool:
    return inp.ended_as == EndedAs.FAILED and inp.failure_type in REJECTED


def customer_mail(order: EndedOrder, inp: FollowUpInput, actions: list[str]) -> tuple[str, str]:
    undone = "\n".join(f"- {a}" for a in actions) or "- nothing had been charged or reserved"
    return (
        f"Order {order.order_id} has been stopped",
        f"We are sorry: your order {order.order_id} {WHY[inp.ended_as]}, and it will not "
        "go ahead.\n\nWhat we have done about it:\n"
        f"{undone}\n\nNothing more will be charged for this order. If you still want the "
        "item, please place a new order; our care team has been told and will contact you.",
    )


def alert_mail(order: EndedOrder, inp: FollowUpInput, actions: list[str]) -> tuple[str, str]:
    undone = "\n".join(f"- {a}" for a in actions) or "- nothing to undo"
    return (
        f"ALERT: order {order.order_id} ended outside the engine ({inp.ended_as.value})",
        f"Order {order.order_id} (customer {order.customer_id}) {WHY[inp.ended_as]} while "
        f"{order.status}. The follow-up undid:\n{undone}\n\nThe customer has been told. "
        "Find out who ended it and why; the order's history is in the Temporal UI.",
    )
