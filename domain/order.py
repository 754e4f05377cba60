"""The order's rules as pure functions over its state: what may happen, what it changes, and
which deadline comes next. The workflow only holds this state and calls these functions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import Field

from domain.delivery import TERMINAL
from domain.errors import InvalidInput, NotAllowed, UnknownReference, WrongState
from domain.models import (
    CancelOrder,
    DeliverySummary,
    Department,
    DisputeHold,
    Hold,
    HoldStatus,
    HoldView,
    KeepPromise,
    MakePromise,
    Model,
    OrderStatus,
    OrderView,
    PlaceHold,
    PlaceOrderInput,
    Promise,
    PromiseStatus,
    PromiseView,
    ReleaseHold,
    Reservation,
    TimelineEntry,
    UpholdHold,
)

# Who acts when the engine itself keeps a promise or places a step.
ENGINE = "orderflow"
PROMISE_KINDS = ("callback", "stock_date", "delivery_window", "repair", "refund", "custom")
CUSTOMER = "customer"

# The department whose work each step is: it is told when a hold blocks that step.
STEP_OWNER = {
    "reserve stock": "stock",
    "wait for stock": "stock",
    "authorize payment": "billing",
    "book the carrier": "fulfilment",
    "hand over in store": "stock",
    "deliver": "fulfilment",
    "capture payment": "billing",
}

PaymentState = Literal["none", "authorized", "captured", "voided", "refunded"]


class OrderState(Model):
    """Everything the order workflow knows. Carried whole into the view."""

    input: PlaceOrderInput
    status: OrderStatus = OrderStatus.PLACED
    step: str = "reserve stock"
    holds: list[Hold] = Field(default_factory=list)
    promises: list[Promise] = Field(default_factory=list)
    reservation: Reservation | None = None
    deliveries: list[DeliverySummary] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    payment: PaymentState = "none"
    charged: Decimal = Decimal("0")
    refunded: Decimal = Decimal("0")
    cancel: CancelOrder | None = None
    compensations: list[str] = Field(default_factory=list)
    emails_sent: int = 0

    # -- lookups -------------------------------------------------------------------------

    @property
    def delivery_running(self) -> bool:
        """A delivery workflow runs for the order (and watches its window)."""
        return bool(self.deliveries) and self.deliveries[-1].status not in TERMINAL

    @property
    def order_id(self) -> str:
        return self.input.order_id

    @property
    def total(self) -> Decimal:
        return self.input.total

    def department(self, name: str) -> Department:
        for dept in self.input.departments:
            if dept.department == name:
                return dept
        known = ", ".join(sorted(d.department for d in self.input.departments)) or "none"
        raise UnknownReference(f"unknown department '{name}'; known departments: {known}")

    def hold(self, hold_id: str) -> Hold:
        for hold in self.holds:
            if hold.hold_id == hold_id:
                return hold
        raise UnknownReference(f"order {self.order_id} has no hold '{hold_id}'")

    def promise(self, promise_id: str) -> Promise:
        for promise in self.promises:
            if promise.promise_id == promise_id:
                return promise
        raise UnknownReference(f"order {self.order_id} has no promise '{promise_id}'")

    @property
    def active_holds(self) -> list[Hold]:
        return [h for h in self.holds if h.active]

    @property
    def blocked_by(self) -> list[str]:
        return sorted({h.department for h in self.active_holds})

    @property
    def blocked(self) -> bool:
        return any(h.active for h in self.holds)

    @property
    def finished(self) -> bool:
        return self.status.finished

    @property
    def current_delivery(self) -> DeliverySummary | None:
        return self.deliveries[-1] if self.deliveries else None

    def log(self, at: datetime, kind: str, text: str) -> None:
        self.timeline.append(TimelineEntry(at=at, kind=kind, text=text))

    def told_customer(self, at: datetime, kind: str, text: str) -> None:
        """An e-mail to the customer: on the timeline, and counted."""
        self.log(at, kind, text)
        self.emails_sent += 1

    def _require_open(self, what: str) -> None:
        if self.finished:
            raise WrongState(f"order {self.order_id} is {self.status.value}; cannot {what}")


# --------------------------------------------------------------------------- holds


def _text(value: str, field: str, *, limit: int = 2000) -> str:
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


def check_place_hold(state: OrderState, cmd: PlaceHold) -> Department:
    state._require_open("place a hold")
    dept = state.department(cmd.department)
    if cmd.reason_code not in dept.reason_codes:
        codes = ", ".join(sorted(dept.reason_codes))
        raise InvalidInput(
            f"reason '{cmd.reason_code}' is not one of {dept.department}'s reason codes: {codes}"
        )
    _text(cmd.customer_message, "the customer message (--message)")
    if cmd.amount is not None:
        check_amount(cmd.amount)
    if len(cmd.reference) > 200:
        raise InvalidInput("reference is longer than 200 characters")
    return dept


def existing_hold(state: OrderState, cmd: PlaceHold) -> Hold | None:
    """The hold this command repeats: same department and the same non-empty reference, even
    when it was released since (a retried call must not block the order again; a new matter
    takes a new reference)."""
    if not cmd.reference:
        return None
    for hold in state.holds:
        if hold.department == cmd.department and hold.reference == cmd.reference:
            return hold
    return None


def place_hold(state: OrderState, cmd: PlaceHold, now: datetime) -> Hold:
    dept = check_place_hold(state, cmd)
    hold = Hold(
        hold_id=f"H{len(state.holds) + 1}",
        department=dept.department,
        actor=cmd.actor,
        reason=cmd.reason_code,
        reason_text=dept.reason_codes[cmd.reason_code],
        customer_message=cmd.customer_message.strip(),
        reference=cmd.reference,
        amount=cmd.amount,
        placed_at=now,
        sla_due_at=now + dept.hold_sla,
        blocked_step=state.step,
    )
    state.holds.append(hold)
    return hold


def check_release_hold(state: OrderState, cmd: ReleaseHold) -> Hold:
    hold = state.hold(cmd.hold_id)
    if not hold.active:
        raise WrongState(f"hold {hold.hold_id} was already released by {hold.released_by}")
    dept = state.department(hold.department)
    if cmd.department != hold.department and cmd.actor != dept.supervisor:
        raise NotAllowed(
            f"hold {hold.hold_id} was placed by {hold.department}; only {hold.department} "
            f"or its supervisor {dept.supervisor} may release it"
        )
    _text(cmd.resolution, "the resolution (--resolution)")
    return hold


def release_hold(state: OrderState, cmd: ReleaseHold, now: datetime) -> Hold:
    hold = check_release_hold(state, cmd)
    hold.status = HoldStatus.RELEASED
    hold.released_at = now
    hold.released_by = f"{cmd.actor} ({cmd.department})"
    hold.resolution = cmd.resolution.strip()
    return hold


def check_dispute_hold(state: OrderState, cmd: DisputeHold) -> Hold:
    hold = state.hold(cmd.hold_id)
    if not hold.active:
        raise WrongState(f"hold {hold.hold_id} is already released; nothing to dispute")
    if hold.status == HoldStatus.DISPUTED:
        raise WrongState(f"hold {hold.hold_id} is already disputed")
    _text(cmd.customer_message, "the customer's message (--message)")
    return hold


def dispute_hold(state: OrderState, cmd: DisputeHold, now: datetime) -> Hold:
    hold = check_dispute_hold(state, cmd)
    hold.status = HoldStatus.DISPUTED
    hold.dispute_message = cmd.customer_message.strip()
    hold.sla_due_at = min(hold.sla_due_at, now + state.input.policy.dispute_sla)
    return hold


def check_uphold_hold(state: OrderState, cmd: UpholdHold) -> Hold:
    hold = state.hold(cmd.hold_id)
    if not hold.active:
        raise WrongState(f"hold {hold.hold_id} is already released")
    dept = state.department(hold.department)
    if cmd.department != hold.department and cmd.actor != dept.supervisor:
        raise NotAllowed(
            f"hold {hold.hold_id} was placed by {hold.department}; only {hold.department} "
            f"or its supervisor {dept.supervisor} may uphold it"
        )
    _text(cmd.customer_message, "the message telling the customer what clears it (--message)")
    return hold


def uphold_hold(state: OrderState, cmd: UpholdHold, now: datetime) -> Hold:
    hold = check_uphold_hold(state, cmd)
    hold.status = HoldStatus.UPHELD
    hold.customer_message = cmd.customer_message.strip()
    # Upholding is an answer, so the department gets a fresh SLA to see it through.
    hold.sla_due_at = now + state.department(hold.department).hold_sla
    return hold


def hold_period(state: OrderState, hold: Hold) -> timedelta:
    if hold.status == HoldStatus.DISPUTED:
        return state.input.policy.dispute_sla
    return state.department(hold.department).hold_sla


def escalate_hold(state: OrderState, hold: Hold, now: datetime) -> None:
    """The hold's SLA passed: count the escalation and set the next date we tell the customer."""
    hold.escalations += 1
    hold.sla_due_at = now + hold_period(state, hold)


# --------------------------------------------------------------------------- cancel


def check_cancel(state: OrderState, cmd: CancelOrder) -> None:
    state._require_open("cancel it")
    if state.status == OrderStatus.DELIVERED:
        raise WrongState(f"order {state.order_id} is delivered; open a return instead")
    if cmd.by != CUSTOMER:
        state.department(cmd.by)
        _text(cmd.customer_message, "a department's cancel needs a customer message (--message)")
    _text(cmd.reason, "the reason (--reason)", limit=200)


# --------------------------------------------------------------------------- promises


def check_make_promise(state: OrderState, cmd: MakePromise, now: datetime) -> None:
    state._require_open("make a promise")
    if cmd.kind not in PROMISE_KINDS:
        raise InvalidInput(
            f"unknown promise kind '{cmd.kind}'; use one of {', '.join(PROMISE_KINDS)}"
        )
    state.department(cmd.department)
    _text(cmd.text, "the promise text (--text)")
    if cmd.due_at <= now:
        raise InvalidInput(f"the due time {cmd.due_at.isoformat()} is in the past")


def make_promise(state: OrderState, cmd: MakePromise, now: datetime) -> Promise:
    check_make_promise(state, cmd, now)
    promise = Promise(
        promise_id=f"P{len(state.promises) + 1}",
        kind=cmd.kind,  # type: ignore[arg-type]  # checked against PROMISE_KINDS above
        text=cmd.text.strip(),
        department=cmd.department,
        actor=cmd.actor,
        made_at=now,
        due_at=cmd.due_at,
        reference=cmd.reference,
    )
    state.promises.append(promise)
    return promise


ENGINE_KEEPS = {
    "stock_date": "when stock is allocated to the order",
    "delivery_window": "when the carrier delivers inside the window",
    "refund": "when the refund is issued",
}


def check_keep_promise(state: OrderState, cmd: KeepPromise) -> Promise:
    promise = state.promise(cmd.promise_id)
    if promise.status != PromiseStatus.OPEN:
        raise WrongState(f"promise {promise.promise_id} is already {promise.status.value}")
    if promise.actor == ENGINE:
        when = ENGINE_KEEPS.get(promise.kind, "when it sees it kept")
        raise NotAllowed(f"promise {promise.promise_id} is kept by the engine itself, {when}")
    return promise


def existing_promise(state: OrderState, cmd: MakePromise) -> Promise | None:
    """The promise this command repeats: same department and the same non-empty reference."""
    if not cmd.reference:
        return None
    for promise in state.promises:
        if promise.department == cmd.department and promise.reference == cmd.reference:
            return promise
    return None


def keep_promise(
    state: OrderState, promise: Promise, now: datetime, *, by: str, note: str = ""
) -> None:
    promise.status = PromiseStatus.KEPT
    promise.settled_at = now
    promise.settled_by = by
    promise.note = note


def open_promises(state: OrderState, kind: str | None = None) -> list[Promise]:
    return [
        p
        for p in state.promises
        if p.status == PromiseStatus.OPEN and (kind is None or p.kind == kind)
    ]


# --------------------------------------------------------------------------- deadlines

DeadlineKind = Literal["hold_sla", "promise_due", "pickup_expiry"]


class Deadline(Model):
    at: datetime
    kind: DeadlineKind
    ref: str


def _pending(state: OrderState) -> Iterator[tuple[datetime, DeadlineKind, str]]:
    if not state.finished:
        for h in state.holds:
            if h.active:
                yield h.sla_due_at, "hold_sla", h.hold_id
    for p in state.promises:
        # While a delivery runs, it keeps the timer for its window and reports when it passed.
        if p.status == PromiseStatus.OPEN and not (
            p.kind == "delivery_window" and state.delivery_running
        ):
            yield p.due_at, "promise_due", p.promise_id
    res = state.reservation
    if (
        res is not None
        and res.expires_at is not None
        and state.status == OrderStatus.READY_FOR_PICKUP
    ):
        yield res.expires_at, "pickup_expiry", res.location


def next_deadline(state: OrderState) -> datetime | None:
    """The soonest pending deadline: the one timer of the order waits for it."""
    return min((at for at, _, _ in _pending(state)), default=None)


def due(state: OrderState, now: datetime) -> list[Deadline]:
    """Deadlines that have passed, soonest first."""
    return [
        Deadline(at=at, kind=kind, ref=ref)
        for at, kind, ref in sorted(d for d in _pending(state) if d[0] <= now)
    ]


# --------------------------------------------------------------------------- the view

STAGE_WORDS: dict[OrderStatus, str] = {
    OrderStatus.PLACED: "reserving stock",
    OrderStatus.WAITLISTED: "waiting for stock to arrive",
    OrderStatus.RESERVED: "authorizing payment",
    OrderStatus.PAYMENT_AUTHORIZED: "booking the carrier",
    OrderStatus.SHIPPING: "waiting for the carrier to pick up",
    OrderStatus.IN_TRANSIT: "on its way with the carrier",
    OrderStatus.READY_FOR_PICKUP: "waiting for the customer to collect it in store",
    OrderStatus.DELIVERED: "capturing payment",
    OrderStatus.COMPLETED: "nothing: the order is complete",
    OrderStatus.CANCELLED: "nothing: the order is cancelled",
}


def next_step(state: OrderState) -> tuple[str, datetime | None]:
    """What the order waits for, in words, and when that is due."""
    if state.finished:
        return STAGE_WORDS[state.status], None
    active = state.active_holds
    if active:
        first = min(active, key=lambda h: h.sla_due_at)
        depts = " and ".join(state.blocked_by)
        return (
            f"held by {depts}: {first.reason_text} (hold {first.hold_id}); then {state.step}",
            first.sla_due_at,
        )
    words = STAGE_WORDS[state.status]
    due_at: datetime | None = None
    if state.status == OrderStatus.WAITLISTED:
        stock = open_promises(state, "stock_date")
        due_at = stock[0].due_at if stock else None
    elif state.status == OrderStatus.READY_FOR_PICKUP and state.reservation:
        due_at = state.reservation.expires_at
    elif state.status in (OrderStatus.SHIPPING, OrderStatus.IN_TRANSIT):
        windows = open_promises(state, "delivery_window")
        due_at = windows[0].due_at if windows else None
    return words, due_at


def view(state: OrderState) -> OrderView:
    step, step_due = next_step(state)
    return OrderView(
        order_id=state.order_id,
        status=state.status.value,
        customer_id=state.input.customer.customer_id,
        lines=state.input.lines,
        total=state.total,
        placed_at=state.input.placed_at or state.timeline[0].at,
        blocked_by=state.blocked_by,
        holds=[
            HoldView(
                hold_id=h.hold_id,
                department=h.department,
                reason=h.reason,
                reason_text=h.reason_text,
                status=h.status.value,
                placed_at=h.placed_at,
                placed_by=h.actor,
                sla_due_at=h.sla_due_at,
                reference=h.reference,
                amount=h.amount,
                escalations=h.escalations,
                released_at=h.released_at,
                released_by=h.released_by,
                resolution=h.resolution,
            )
            for h in state.holds
        ],
        promises=[
            PromiseView(
                promise_id=p.promise_id,
                kind=p.kind,
                text=p.text,
                department=p.department,
                due_at=p.due_at,
                status=p.status.value,
                settled_at=p.settled_at,
            )
            for p in state.promises
        ],
        reservation=state.reservation,
        deliveries=state.deliveries,
        next_step=step,
        next_step_due_at=step_due,
        payment=state.payment,
        charged=state.charged - state.refunded,
        cancelled_reason=state.cancel.reason if state.cancel else "",
        customer_emails=state.emails_sent,
    )
