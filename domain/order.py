"""The order: its input, its state, the commands on the order as a whole (cancel, pickup), and
the deadlines it keeps.

Holds and promises have their own modules (``domain.holds``, ``domain.promises``); the decisions
of the order's steps are in ``domain.fulfilment``; the one view every channel reads is derived in
``domain.view``. The workflow only holds this state and calls
these functions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import Field, PrivateAttr, model_validator

from domain.authority import Caller
from domain.base import (
    CUSTOMER,
    MAX_CUSTOMER_EMAILS,
    Command,
    Count,
    Flag,
    Identifier,
    Model,
    Money,
    Name,
    Receipt,
    Words,
    required_text,
)
from domain.billing import PaymentState
from domain.delivery import DeliverySummary
from domain.errors import LimitReached, NotFound, WrongState
from domain.holds import Hold
from domain.promises import Promise, PromiseKind, PromiseStatus
from domain.registry import Carrier, Customer, Department, Policy
from domain.steps import Step
from domain.stock import Reservation, ReservationStatus
from domain.timeline import TimelineEntry


class OrderStatus(StrEnum):
    PLACED = "placed"
    WAITLISTED = "waitlisted"
    RESERVED = "reserved"
    PAYMENT_AUTHORIZED = "payment_authorized"
    SHIPPING = "shipping"
    IN_TRANSIT = "in_transit"
    READY_FOR_PICKUP = "ready_for_pickup"
    # Some lines delivered, others still to come (an order of several lines shipped apart).
    PARTLY_DELIVERED = "partly_delivered"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (OrderStatus.COMPLETED, OrderStatus.CANCELLED)


class ShipPolicy(StrEnum):
    """How an order of several lines ships: what is reserved now and the rest as it arrives
    (each delivery its own), or everything in one delivery once every line is reserved."""

    AVAILABLE = "available"
    COMPLETE = "complete"


class OrderLine(Model):
    sku: Identifier
    name: str = ""
    qty: int = Field(ge=1, le=1000)
    unit_price: Money


# Lines per order.
MAX_ORDER_LINES = 50
# Units on one line (the stock record's own limit, ``domain.stock.MAX_LINE_QTY``).
MAX_LINE_UNITS = 1000


class LineRequest(Command):
    sku: Identifier
    qty: Count = Field(ge=1, le=MAX_LINE_UNITS)


class PlaceOrder(Command):
    """What a caller sends to place an order: who orders what, from where, shipped how.

    Everything else the order runs on is the engine's (``OrderTerms``): the customer's record,
    the prices, the departments that may hold it, the carriers and the policy come from the
    worker's registry when the order starts, and are recorded in its history."""

    order_id: Identifier
    customer_id: Identifier
    lines: list[LineRequest] = Field(min_length=1, max_length=MAX_ORDER_LINES)
    location: Identifier
    carrier: Identifier | None = None
    pickup: Flag = False
    ship: ShipPolicy = ShipPolicy.AVAILABLE
    actor: Name = "web"

    @model_validator(mode="after")
    def _one_line_per_sku(self) -> PlaceOrder:
        """The same SKU twice is one line with the quantities added, where it first appeared."""
        merged: dict[str, int] = {}
        for line in self.lines:
            merged[line.sku] = merged.get(line.sku, 0) + line.qty
        if len(merged) < len(self.lines):
            for sku, qty in merged.items():
                if qty > MAX_LINE_UNITS:
                    raise ValueError(
                        f"lines: {sku} adds up to {qty} units; a line takes at most "
                        f"{MAX_LINE_UNITS}"
                    )
            self.lines = [LineRequest(sku=sku, qty=qty) for sku, qty in merged.items()]
        return self


class OrderTerms(Model):
    """What the engine adds to a ``PlaceOrder`` from its own registry."""

    customer: Customer
    lines: list[OrderLine]
    carrier: str | None
    policy: Policy
    departments: list[Department]
    carriers: list[Carrier]
    initial_stock: dict[str, int]


class TermsDecision(Model):
    """The registry's answer to a ``PlaceOrder``: its terms, or why it cannot be placed."""

    terms: OrderTerms | None = None
    refusal: str = ""
    refusal_type: str = ""
    # Who placed the order, as its start's token proved (``PlacementRequest``).
    placed_by: Caller | None = None


class PlacementRequest(Model):
    """An order to place, with the token its start carried and the time it started: the
    token is checked as of that time, so a slow first task does not expire it."""

    order: PlaceOrder
    token: str | None = None
    started_at: datetime


class PlaceOrderInput(Command):
    """Everything an order runs on, fixed at placement: prices never change afterwards.

    Built by the order from a ``PlaceOrder`` and its ``OrderTerms``. Orders started before the
    engine owned its terms took this whole from the caller; their histories still carry it."""

    order_id: Identifier
    customer: Customer
    lines: list[OrderLine] = Field(min_length=1)
    location: Identifier
    carrier: Identifier | None = None
    pickup: Flag = False
    ship: ShipPolicy = ShipPolicy.AVAILABLE
    placed_at: datetime | None = None
    actor: Name = "web"
    policy: Policy = Field(default_factory=Policy)
    departments: list[Department] = Field(default_factory=list)
    carriers: list[Carrier] = Field(default_factory=list)
    # On-hand stock at the location when its stock record is first created.
    initial_stock: dict[str, int] = Field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        return sum((line.unit_price * line.qty for line in self.lines), Decimal("0"))


def unpriced(req: PlaceOrder, placed_at: datetime) -> PlaceOrderInput:
    """An order the registry cannot place, as its caller described it: only its validators
    and queries see it, until the order is rejected."""
    return PlaceOrderInput.model_construct(
        order_id=req.order_id,
        customer=Customer.model_construct(customer_id=req.customer_id, name="", email=""),
        lines=[
            OrderLine.model_construct(
                sku=line.sku, name=line.sku, qty=line.qty, unit_price=Decimal(0)
            )
            for line in req.lines
        ],
        location=req.location,
        carrier=req.carrier,
        pickup=req.pickup,
        ship=req.ship,
        placed_at=placed_at,
        actor=req.actor,
        policy=Policy(),
        departments=[],
        carriers=[],
        initial_stock={},
    )


def placed_on_terms(req: PlaceOrder, terms: OrderTerms, placed_at: datetime) -> PlaceOrderInput:
    """The order's input: the caller's request on the engine's terms."""
    return PlaceOrderInput(
        order_id=req.order_id,
        customer=terms.customer,
        lines=terms.lines,
        location=req.location,
        carrier=terms.carrier,
        pickup=req.pickup,
        ship=req.ship,
        placed_at=placed_at,
        actor=req.actor,
        policy=terms.policy,
        departments=terms.departments,
        carriers=terms.carriers,
        initial_stock=terms.initial_stock,
    )


# --------------------------------------------------------------------------- commands


class CancelOrder(Command):
    by: Name
    actor: Name = "unknown"
    reason: Words
    customer_message: Words = ""
    # One line of the order (1 is the first); none: the whole order.
    line: Count | None = None


class OrderCancelled(Receipt):
    order_id: str
    cancelled_at: datetime
    compensations: list[str]


class CollectOrder(Command):
    location: Name
    actor: Name = "store"


# --------------------------------------------------------------------------- state


class OrderState(Model):
    """Everything the order workflow knows. Carried whole into the view."""

    input: PlaceOrderInput
    status: OrderStatus = OrderStatus.PLACED
    step: Step = Step.RESERVE_STOCK
    holds: list[Hold] = Field(default_factory=list)
    promises: list[Promise] = Field(default_factory=list)
    # Each line's reservation, by line index (one stock record per line's SKU at the order's
    # location); ``None`` until asked for.
    reservations: list[Reservation | None] = Field(default_factory=list)
    deliveries: list[DeliverySummary] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    # The verified principal whose cancel of the whole order was accepted.
    cancelled_by: str = ""
    # The verified principal who placed the order (empty before credentials).
    placed_by: str = ""
    # The caller whose update is being carried out (``acting``); never stored.
    _by: Caller | None = PrivateAttr(default=None)
    payment: PaymentState = PaymentState.NONE
    charged: Decimal = Decimal("0")
    refunded: Decimal = Decimal("0")
    cancel: CancelOrder | None = None
    compensations: list[str] = Field(default_factory=list)
    # Line cancels accepted, not yet carried out by the run; the lines (by index) cancelled.
    line_cancels: list[CancelOrder] = Field(default_factory=list)
    cancelled_lines: list[int] = Field(default_factory=list)
    # What was authorized, and what line cancels, lost parcels and cancels voided of it.
    authorized: Decimal = Decimal("0")
    voided: Decimal = Decimal("0")
    # Lines shipped apart (``ShipPolicy.AVAILABLE``): a hold on a line stops that line only.
    ships_apart: bool = False
    # Lines (by index) a delivery handed over, and lines the carrier lost or returned whose
    # part of the payment was voided.
    delivered_lines: list[int] = Field(default_factory=list)
    undelivered_lines: dict[int, str] = Field(default_factory=dict)
    emails_sent: int = 0
    # Subjects of e-mails the mail server would not take within the policy's time.
    undeliverable: list[str] = Field(default_factory=list)

    @property
    def delivery_running(self) -> bool:
        """A delivery workflow runs for the order (and watches its window)."""
        return bool(self.deliveries) and not self.deliveries[-1].status.terminal

    @property
    def order_id(self) -> str:
        return self.input.order_id

    @property
    def reservation(self) -> Reservation | None:
        """The first line's reservation: the order's, when it has one line."""
        return self.line_reservation(0)

    def line_reservation(self, n: int) -> Reservation | None:
        return self.reservations[n] if n < len(self.reservations) else None

    def set_reservation(self, n: int, res: Reservation) -> Reservation:
        while len(self.reservations) <= n:
            self.reservations.append(None)
        self.reservations[n] = res
        return res

    def line_of(self, sku: str) -> int | None:
        """The index of the order's line for ``sku`` (an order has one line per SKU)."""
        for n, line in enumerate(self.input.lines):
            if line.sku == sku:
                return n
        return None

    @property
    def total(self) -> Decimal:
        return self.input.total

    def line_amount(self, n: int) -> Decimal:
        line = self.input.lines[n]
        return line.unit_price * line.qty

    @property
    def open_total(self) -> Decimal:
        """What the lines not cancelled come to: what the order authorizes and captures."""
        return self.total - sum((self.line_amount(n) for n in self.cancelled_lines), Decimal("0"))

    def line_cancelled(self, n: int) -> bool:
        return n in self.cancelled_lines or any(c.line == n + 1 for c in self.line_cancels)

    @property
    def open_lines(self) -> list[int]:
        return [n for n in range(len(self.input.lines)) if not self.line_cancelled(n)]

    @property
    def pending_lines(self) -> list[int]:
        """Lines still to hand over: not cancelled, delivered, lost or returned."""
        return [
            n
            for n in self.open_lines
            if n not in self.delivered_lines and n not in self.undelivered_lines
        ]

    def line_delivery(self, n: int) -> DeliverySummary | None:
        """The last delivery that carried line ``n``, on an order that ships its lines apart."""
        for d in reversed(self.deliveries):
            if n + 1 in d.lines:
                return d
        return None

    def department(self, name: str) -> Department:
        for dept in self.input.departments:
            if dept.department == name:
                return dept
        known = ", ".join(sorted(d.department for d in self.input.departments)) or "none"
        raise NotFound(f"unknown department '{name}'; known departments: {known}")

    def carrier_name(self, carrier_id: str) -> str:
        for c in self.input.carriers:
            if c.carrier_id == carrier_id:
                return c.name
        return carrier_id

    def hold(self, hold_id: str) -> Hold:
        for hold in self.holds:
            if hold.hold_id == hold_id:
                return hold
        raise NotFound(f"order {self.order_id} has no hold '{hold_id}'")

    def promise(self, promise_id: str) -> Promise:
        for promise in self.promises:
            if promise.promise_id == promise_id:
                return promise
        raise NotFound(f"order {self.order_id} has no promise '{promise_id}'")

    @property
    def active_holds(self) -> list[Hold]:
        return [h for h in self.holds if h.active]

    @property
    def blocked_by(self) -> list[str]:
        return sorted({h.department for h in self.active_holds})

    @property
    def blocked(self) -> bool:
        """Some hold is active (on the order or on some of its lines)."""
        return any(h.active for h in self.holds)

    def line_held(self, n: int) -> bool:
        return any(h.holds_line(n) for h in self.holds)

    def line_held_alone(self, n: int) -> bool:
        """A hold on some lines, among them line ``n``, is active (a hold on the whole order
        stops the order's steps instead)."""
        return any(h.active and h.lines and n + 1 in h.lines for h in self.holds)

    def blocks(self, step: Step) -> bool:
        """Whether the active holds stop ``step``. A hold on the order stops every step. A hold
        on some lines stops their reservations (``domain.reservation``) and, as the lines go
        together, the steps that hand goods over or take the money for them."""
        if any(h.active and not h.lines for h in self.holds):
            return True
        if not any(h.active for h in self.holds):
            return False
        if all(self.line_held(n) for n in self.pending_lines):
            return True
        if self.ships_apart:
            return False  # the held lines wait; the others go on
        return step in (Step.BOOK_CARRIER, Step.HAND_OVER_IN_STORE, Step.CAPTURE_PAYMENT)

    @property
    def finished(self) -> bool:
        return self.status.finished

    @property
    def cancelling(self) -> bool:
        """A cancel was accepted: the run stops at its next step and compensates."""
        return self.cancel is not None

    @property
    def current_delivery(self) -> DeliverySummary | None:
        return self.deliveries[-1] if self.deliveries else None

    def log(self, at: datetime, kind: str, text: str) -> None:
        by = self._by
        self.timeline.append(
            TimelineEntry(at=at, kind=kind, text=text)
            if by is None
            else TimelineEntry(
                at=at, kind=kind, text=text, principal=by.principal, actor=by.actor, kid=by.kid
            )
        )

    @contextmanager
    def acting(self, caller: Caller | None) -> Iterator[None]:
        """What is recorded inside is stamped with the verified caller who asked for it."""
        self._by = caller
        try:
            yield
        finally:
            self._by = None

    def told_customer(self, at: datetime, kind: str, text: str) -> None:
        """An e-mail to the customer: on the timeline, and counted."""
        self.log(at, kind, text)
        self.emails_sent += 1

    @property
    def next_stop(self) -> Step:
        """The step a hold placed now stops the order at. Once the carrier has the parcel, the
        delivery goes on and the next stop is taking the payment."""
        carried = (OrderStatus.SHIPPING, OrderStatus.IN_TRANSIT, OrderStatus.DELIVERED)
        if self.step in (Step.BOOK_CARRIER, Step.DELIVER) and self.status in carried:
            return Step.CAPTURE_PAYMENT
        return self.step

    def require_fewer(self, count: int, most: int, things: str, then: str = "") -> None:
        """Refuses one more of ``things`` when the order already has ``most`` of them."""
        if count >= most:
            raise LimitReached(
                f"order {self.order_id} has {count} {things}, the most it may have{then}"
            )

    def require_mail_room(self, what: str) -> None:
        """Refuses what would e-mail a customer who has already had ``MAX_CUSTOMER_EMAILS``
        from this order: past that, more mail is abuse, not information."""
        if self.emails_sent >= MAX_CUSTOMER_EMAILS:
            raise LimitReached(
                f"order {self.order_id} has e-mailed its customer {self.emails_sent} times, the "
                f"most an order may; cannot {what}"
            )

    def require_open(self, what: str) -> None:
        if self.finished:
            raise WrongState(f"order {self.order_id} is {self.status.value}; cannot {what}")


# --------------------------------------------------------------------------- cancel, pickup


def check_cancel(state: OrderState, cmd: CancelOrder) -> None:
    if state.cancel is not None:
        raise WrongState(f"order {state.order_id} is already being cancelled")
    state.require_open("cancel it")
    if cmd.line is not None:
        check_line_cancel(state, cmd.line)
    if state.status == OrderStatus.DELIVERED:
        raise WrongState(f"order {state.order_id} is delivered; open a return instead")
    if cmd.line is None and state.delivered_lines:
        delivered = ", ".join(str(n + 1) for n in sorted(state.delivered_lines))
        raise WrongState(
            f"order {state.order_id} is partly delivered (line {delivered}); cancel the lines "
            "still to come with --line, and return the delivered ones"
        )
    if cmd.by != CUSTOMER:
        state.department(cmd.by)
        required_text(cmd.customer_message, "customer_message (a department's cancel needs one)")
    required_text(cmd.reason, "reason", limit=200)


def check_line_cancel(state: OrderState, line: int) -> None:
    """A line may be cancelled until the goods leave the store."""
    count = len(state.input.lines)
    if not 1 <= line <= count:
        raise NotFound(
            f"line: order {state.order_id} has {count} line{'s' if count > 1 else ''}; "
            f"there is no line {line}"
        )
    n = line - 1
    if state.line_cancelled(n):
        raise WrongState(f"line: order {state.order_id}'s line {line} is already cancelled")
    if n in state.delivered_lines or state.status in (
        OrderStatus.DELIVERED,
        OrderStatus.COMPLETED,
    ):
        raise WrongState(f"line: the order's line {line} was delivered; use a return")
    if n in state.undelivered_lines:
        raise WrongState(
            f"line: the order's line {line} was {state.undelivered_lines[n]} by the carrier and "
            "its payment voided"
        )
    res = state.line_reservation(n)
    if state.ships_apart:
        carrying = state.line_delivery(n)
        if carrying is not None and not carrying.status.terminal:
            raise WrongState(
                f"line: the order's line {line} has left the store with delivery "
                f"{carrying.delivery_id}; cancel the order to stop that delivery"
            )
        return
    if state.deliveries or (res is not None and res.status == ReservationStatus.COLLECTED):
        raise WrongState(
            f"line: the order's line {line} has left the store; cancel the order to stop its "
            "delivery"
        )


def is_line_cancel(state: OrderState, cmd: CancelOrder) -> bool:
    """A cancel of one line that leaves others open (cancelling the last open line cancels the
    order)."""
    return cmd.line is not None and (
        state.pending_lines != [cmd.line - 1] or bool(state.delivered_lines)
    )


def accept_cancel(state: OrderState, cmd: CancelOrder) -> bool:
    """Record the first cancel; a repeat changes nothing. True when this one was recorded."""
    if state.cancel is not None:
        return False
    cmd = cmd.model_copy(update={"customer_message": cmd.customer_message.strip()})
    if is_line_cancel(state, cmd):
        if state.line_cancelled(cmd.line - 1):  # type: ignore[operator]
            return False
        state.line_cancels.append(cmd)
        return True
    state.cancel = cmd
    return True


def check_pickup(state: OrderState, cmd: CollectOrder) -> None:
    if not state.input.pickup:
        raise WrongState(f"order {state.order_id} is for home delivery, not store pickup")
    if state.status != OrderStatus.READY_FOR_PICKUP:
        raise WrongState(f"order {state.order_id} is {state.status.value}, not ready for pickup")
    if state.reservation is None or cmd.location != state.reservation.location:
        where = state.reservation.location if state.reservation else state.input.location
        raise WrongState(
            f"order {state.order_id} waits for collection at {where}, not {cmd.location}"
        )


# --------------------------------------------------------------------------- deadlines


class DeadlineKind(StrEnum):
    HOLD_SLA = "hold_sla"
    PROMISE_DUE = "promise_due"
    PICKUP_EXPIRY = "pickup_expiry"


class Deadline(Model):
    at: datetime
    kind: DeadlineKind
    ref: str


def _pending(state: OrderState) -> Iterator[tuple[datetime, DeadlineKind, str]]:
    if not state.finished:
        for h in state.holds:
            if h.active:
                yield h.sla_due_at, DeadlineKind.HOLD_SLA, h.hold_id
    for p in state.promises:
        # While a delivery runs, it keeps the timer for its window and reports when it passed.
        if p.status == PromiseStatus.OPEN and not (
            p.kind == PromiseKind.DELIVERY_WINDOW and state.delivery_running
        ):
            yield p.due_at, DeadlineKind.PROMISE_DUE, p.promise_id
    res = state.reservation
    if (
        res is not None
        and res.expires_at is not None
        and state.status == OrderStatus.READY_FOR_PICKUP
    ):
        yield res.expires_at, DeadlineKind.PICKUP_EXPIRY, res.location


# The call that waits out the last second before a deadline in the worker (activities/clock.py).
WAIT_UNTIL = "wait_until"


def next_deadline(state: OrderState) -> datetime | None:
    """The soonest pending deadline: the one timer of the order waits for it."""
    return min((at for at, _, _ in _pending(state)), default=None)


def due(state: OrderState, now: datetime) -> list[Deadline]:
    """Deadlines that have passed, soonest first."""
    return [
        Deadline(at=at, kind=kind, ref=ref)
        for at, kind, ref in sorted(d for d in _pending(state) if d[0] <= now)
    ]
