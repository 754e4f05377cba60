"""Pydantic models: the registry (catalog, departments, carriers), the commands departments send,
the events the engine records, and the one order view every channel reads.

Fields are only ever added, with defaults, so histories recorded by older versions still load.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
)

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


# --------------------------------------------------------------------------- registry


class Sku(Model):
    sku: Identifier
    name: str
    price: Money


class Location(Model):
    location: Identifier
    name: str
    region: str = ""
    # Distance from the customer's usual region, for --any-location; smaller is nearer.
    distance_km: int = 0
    stock: dict[str, int] = Field(default_factory=dict)


class Customer(Model):
    customer_id: Identifier
    name: str
    email: str
    address: str = ""
    # "lat,lon" of the address: carriers' GPS evidence is checked against it.
    gps: str = ""


class Carrier(Model):
    carrier_id: Identifier
    name: str
    notify_email: str = ""


class Department(Model):
    """A department that may place holds, with the clock its holds run on."""

    department: Identifier
    name: str
    notify_email: str
    supervisor: str
    supervisor_email: str
    hold_sla: timedelta
    # reason code -> the plain words the customer reads
    reason_codes: dict[str, str]


# --------------------------------------------------------------------------- policy


class Policy(Model):
    """Every duration the engine uses. Passed in each workflow's input so replays are exact and
    tests can shrink time to seconds."""

    pickup_window: timedelta = timedelta(days=3)
    restock_promise: timedelta = timedelta(days=7)
    dispute_sla: timedelta = timedelta(hours=4)
    delivery_window: timedelta = timedelta(days=2)
    scan_sla: timedelta = timedelta(days=2)
    lost_after: timedelta = timedelta(days=5)
    attempt_limit: int = 3
    lost_action: Literal["reship", "refund"] = "reship"
    # What happens to a store-pickup order nobody collected in time.
    unpicked_action: Literal["cancel", "waitlist"] = "cancel"
    # Distance, in metres, within which a carrier's GPS fix counts as "at the address".
    gps_tolerance_m: int = 150

    def scaled(self, factor: float) -> Policy:
        """The same policy with every duration divided by ``factor`` (story time, tests)."""
        if factor <= 0:
            raise ValueError("scale factor must be positive")
        data = self.model_dump()
        for key, value in data.items():
            if isinstance(value, timedelta):
                data[key] = value / factor
        return Policy.model_validate(data)


# --------------------------------------------------------------------------- order input


class OrderLine(Model):
    sku: Identifier
    name: str = ""
    qty: int = Field(ge=1, le=1000)
    unit_price: Money


class PlaceOrderInput(Model):
    """Everything an order needs, captured at placement: prices never change afterwards."""

    order_id: Identifier
    customer: Customer
    lines: list[OrderLine] = Field(min_length=1)
    location: Identifier
    carrier: Identifier | None = None
    pickup: bool = False
    placed_at: datetime | None = None
    actor: str = "web"
    policy: Policy = Field(default_factory=Policy)
    departments: list[Department] = Field(default_factory=list)
    carriers: list[Carrier] = Field(default_factory=list)
    # On-hand stock at the location when its stock record is first created.
    initial_stock: dict[str, int] = Field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        return sum((line.unit_price * line.qty for line in self.lines), Decimal("0"))


# --------------------------------------------------------------------------- state enums


class OrderStatus(StrEnum):
    PLACED = "placed"
    WAITLISTED = "waitlisted"
    RESERVED = "reserved"
    PAYMENT_AUTHORIZED = "payment_authorized"
    SHIPPING = "shipping"
    IN_TRANSIT = "in_transit"
    READY_FOR_PICKUP = "ready_for_pickup"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (OrderStatus.COMPLETED, OrderStatus.CANCELLED)


class HoldStatus(StrEnum):
    ACTIVE = "active"
    DISPUTED = "disputed"
    UPHELD = "upheld"
    RELEASED = "released"


class PromiseStatus(StrEnum):
    OPEN = "open"
    KEPT = "kept"
    BROKEN = "broken"
    WITHDRAWN = "withdrawn"


PromiseKind = Literal["callback", "stock_date", "delivery_window", "repair", "refund", "custom"]


# --------------------------------------------------------------------------- records


class Hold(Model):
    hold_id: str
    department: str
    actor: str
    reason: str
    reason_text: str
    customer_message: str
    reference: str = ""
    amount: Money | None = None
    status: HoldStatus = HoldStatus.ACTIVE
    placed_at: datetime
    sla_due_at: datetime
    escalations: int = 0
    blocked_step: str = ""
    dispute_message: str = ""
    released_at: datetime | None = None
    released_by: str = ""
    resolution: str = ""

    @property
    def active(self) -> bool:
        return self.status != HoldStatus.RELEASED


class Promise(Model):
    promise_id: str
    kind: PromiseKind
    text: str
    department: str
    actor: str
    made_at: datetime
    due_at: datetime
    status: PromiseStatus = PromiseStatus.OPEN
    settled_at: datetime | None = None
    settled_by: str = ""
    note: str = ""
    reference: str = ""


class Attempt(Model):
    at: datetime
    verified: bool
    reason: str = ""
    missing: list[str] = Field(default_factory=list)


class DeliverySummary(Model):
    delivery_id: int
    workflow_id: str
    carrier: str
    status: str = "booking"
    tracking: str = ""
    window_start: datetime | None = None
    window_end: datetime | None = None
    pickup_point: str = ""
    attempts: list[Attempt] = Field(default_factory=list)
    last_scan_at: datetime | None = None


class Reservation(Model):
    location: str
    sku: str
    qty: int
    status: Literal["pending", "reserved", "waitlisted", "released", "collected"] = "pending"
    position: int | None = None
    expires_at: datetime | None = None


class TimelineEntry(Model):
    at: datetime
    kind: str
    text: str


class Notification(Model):
    """One e-mail. ``key`` makes it idempotent: the same key is never sent twice."""

    key: str
    to: str
    subject: str
    body: str
    order_id: str = ""


class EmailBatch(Model):
    """The e-mails an order queued in one step, sent together in order."""

    notes: list[Notification]


# --------------------------------------------------------------------------- commands


class PlaceHold(Model):
    department: str
    actor: str = "unknown"
    reason_code: str
    customer_message: str
    reference: str = ""
    amount: Decimal | None = None


class HoldPlaced(Model):
    hold_id: str
    department: str
    sla_due_at: datetime
    already_placed: bool = False


class ReleaseHold(Model):
    hold_id: str
    department: str
    actor: str = "unknown"
    resolution: str


class HoldReleased(Model):
    hold_id: str
    released_at: datetime
    blocked_by: list[str]


class DisputeHold(Model):
    hold_id: str
    customer_message: str


class HoldDisputed(Model):
    hold_id: str
    sla_due_at: datetime


class UpholdHold(Model):
    hold_id: str
    department: str
    actor: str = "unknown"
    customer_message: str


class HoldUpheld(Model):
    hold_id: str
    sla_due_at: datetime


class CancelOrder(Model):
    by: str
    actor: str = "unknown"
    reason: str
    customer_message: str = ""


class OrderCancelled(Model):
    order_id: str
    cancelled_at: datetime
    compensations: list[str]


class MakePromise(Model):
    kind: str
    due_at: datetime
    text: str
    department: str
    actor: str = "unknown"
    # The department's own reference: repeating it returns the same promise.
    reference: str = ""


class PromiseMade(Model):
    promise_id: str
    due_at: datetime
    already_made: bool = False


class KeepPromise(Model):
    promise_id: str
    note: str = ""
    actor: str = "unknown"


class PromiseKept(Model):
    promise_id: str
    kept_at: datetime


class CollectOrder(Model):
    location: str
    actor: str = "store"


class StockAllocated(Model):
    """Signal from the stock record to an order: its waitlisted reservation now holds stock."""

    location: str
    sku: str
    qty: int
    reference: str = ""


class StockWithdrawn(Model):
    """Signal from the stock record: a stock take left this order's reservation unbacked."""

    location: str
    sku: str
    position: int
    reason: str = ""


class WaitlistMoved(Model):
    """Signal from the stock record: the line moved and this order's place in it changed."""

    location: str
    sku: str
    position: int


# --------------------------------------------------------------------------- carrier side

CarrierEventName = Literal["picked-up", "scan", "attempted", "delivered", "exception", "lost"]


class CarrierEvent(Model):
    event: CarrierEventName
    location: str = ""
    evidence: dict[str, str] = Field(default_factory=dict)
    reason: str = ""
    code: str = ""
    actor: str = "carrier"
    event_id: str = ""


class CarrierEventRecorded(Model):
    delivery_id: int
    event: str
    status: str
    verified: bool | None = None
    duplicate: bool = False
    note: str = ""


class Reschedule(Model):
    window_start: datetime
    window_end: datetime
    actor: str = "customer"


class Redirect(Model):
    pickup_point: NonEmpty
    actor: str = "customer"


class DeliveryUpdated(Model):
    delivery_id: int
    status: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    pickup_point: str = ""


class DeliveryReport(Model):
    """What a delivery tells its order. Only the order talks to the customer."""

    delivery_id: int
    kind: Literal[
        "booked",
        "picked_up",
        "scanned",
        "attempted",
        "exception",
        "rescheduled",
        "redirected",
        "trace_opened",
        "window_missed",
        "delivered",
        "lost",
        "returned",
    ]
    at: datetime
    status: str
    verified: bool | None = None
    reason: str = ""
    missing: list[str] = Field(default_factory=list)
    tracking: str = ""
    window_start: datetime | None = None
    window_end: datetime | None = None
    pickup_point: str = ""
    location: str = ""


class DeliveryReports(Model):
    """Reports a delivery sends its order in one signal, oldest first."""

    reports: list[DeliveryReport]


# --------------------------------------------------------------------------- the one view


class HoldView(Model):
    hold_id: str
    department: str
    reason: str
    reason_text: str
    status: str
    placed_at: datetime
    placed_by: str
    sla_due_at: datetime
    reference: str = ""
    amount: Money | None = None
    escalations: int = 0
    released_at: datetime | None = None
    released_by: str = ""
    resolution: str = ""


class PromiseView(Model):
    promise_id: str
    kind: str
    text: str
    department: str
    due_at: datetime
    status: str
    settled_at: datetime | None = None


class OrderView(Model):
    order_id: str
    status: str
    customer_id: str
    lines: list[OrderLine]
    total: Money
    placed_at: datetime
    blocked_by: list[str]
    holds: list[HoldView]
    promises: list[PromiseView]
    reservation: Reservation | None
    deliveries: list[DeliverySummary]
    next_step: str
    next_step_due_at: datetime | None
    payment: str
    charged: Money
    cancelled_reason: str = ""
    customer_emails: int = 0
