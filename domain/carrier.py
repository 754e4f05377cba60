"""What passes between the engine and a partner carrier: the events a carrier sends a delivery,
and the engine's calls to the carrier's gateway (book, cancel, trace)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from domain.base import Command, Model, Name, Receipt, Words


class CarrierEventName(StrEnum):
    """The events a carrier sends. ``picked-up`` keeps its hyphen: carriers and saved histories
    spell it so (the delivery's status after it is ``picked_up``)."""

    PICKED_UP = "picked-up"
    SCAN = "scan"
    ATTEMPTED = "attempted"
    DELIVERED = "delivered"
    EXCEPTION = "exception"
    LOST = "lost"


class CarrierEvent(Command):
    event: CarrierEventName
    location: Name = ""
    evidence: dict[Name, Words] = Field(default_factory=dict)
    reason: Words = ""
    code: Name = ""
    actor: Name = "carrier"
    event_id: Name = ""


class CarrierEventRecorded(Receipt):
    delivery_id: int
    event: str
    status: str
    verified: bool | None = None
    duplicate: bool = False
    note: str = ""


class CarrierCall(StrEnum):
    """The engine's calls to a carrier's gateway (activities)."""

    BOOK = "book_shipment"
    CANCEL = "cancel_shipment"
    OPEN_TRACE = "open_trace"


def booking_key(delivery_workflow_id: str) -> str:
    """The idempotency key a delivery's shipment is booked, traced and cancelled under."""
    return f"{delivery_workflow_id}.booking"


class BookShipment(Model):
    key: str
    order_id: str
    delivery_id: int
    carrier: str
    destination: str


class Booking(Model):
    key: str
    carrier: str
    tracking: str
    status: str = "booked"


class TraceRequest(Model):
    key: str
    carrier: str
    # The booking whose parcel is traced; the gateway knows its tracking number.
    booking_key: str
