"""The order's timeline: what the customer was told (or what was recorded for them), and when.

Each entry's kind is a ``Told`` or, for a delivery's report, its ``ReportKind``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from domain.base import Model


class Told(StrEnum):
    """What the customer was told (or, for ``PROMISE_KEPT``, what was recorded): the kinds of
    the order's timeline entries, beside the delivery's report kinds (``ReportKind``), which the
    timeline takes as they are."""

    PLACED = "placed"
    PAYMENT = "payment"
    COMPLETED = "completed"
    RESERVED = "reserved"
    WAITLISTED = "waitlisted"
    STOCK_ALLOCATED = "stock_allocated"
    READY_FOR_PICKUP = "ready_for_pickup"
    PICKUP_EXPIRED = "pickup_expired"
    COLLECTED = "collected"
    PICKUP_CONFIRMED = "pickup_confirmed"
    LOST = "lost"
    CANCELLED = "cancelled"
    CANCEL_REQUESTED = "cancel_requested"
    LINE_CANCELLED = "line_cancelled"
    PROMISE_KEPT = "promise_kept"
    STOCK_WITHDRAWN = "stock_withdrawn"
    HOLD_PLACED = "hold_placed"
    HOLD_RELEASED = "hold_released"
    HOLD_DISPUTED = "hold_disputed"
    HOLD_UPHELD = "hold_upheld"
    HOLD_ESCALATED = "hold_escalated"
    PROMISE_MADE = "promise_made"
    PROMISE_BROKEN = "promise_broken"
    EMAIL_UNDELIVERABLE = "email_undeliverable"


class TimelineEntry(Model):
    at: datetime
    kind: str
    text: str
    # Who did it, as the verified token said: the principal, the actor it vouched for, and
    # the id of the key that signed (empty for what the engine did by itself).
    principal: str = ""
    actor: str = ""
    kid: str = ""
