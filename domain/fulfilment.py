"""The decisions of the order's steps: what a payment, a shipment, a delivery's report, a
passed deadline and a cancellation change in the order's state (the reservation's are in
``domain.reservation``).

The workflow runs the steps (waits, calls, e-mails); every change to the order's records is
made here, so it can be tested without Temporal.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from domain import messages, notices, promises
from domain.base import ENGINE
from domain.billing import PaymentCall, PaymentRequest, PaymentState
from domain.carrier import Booking, BookShipment, booking_key
from domain.delivery import (
    Attempt,
    DeliveryInput,
    DeliveryOutcome,
    DeliveryReport,
    DeliveryStatus,
    DeliverySummary,
    ReportKind,
)
from domain.holds import escalate_hold, release_all_on_cancel
from domain.ids import delivery_workflow_id
from domain.notices import Notice
from domain.order import (
    CancelOrder,
    Deadline,
    DeadlineKind,
    OrderState,
    OrderStatus,
    PlaceOrderInput,
)
from domain.promises import (
    MakePromise,
    Promise,
    PromiseKind,
    keep_promise,
    make_promise,
    open_promises,
    withdraw,
)
from domain.registry import LostAction, UnpickedAction
from domain.timeline import Told
from domain.view import OrderView, order_view


class Reason(StrEnum):
    """The engine's own reasons, for cancels it makes and promises it settles."""

    LOST = "lost by the carrier"
    RETURNED = "returned by the carrier"
    NOT_COLLECTED = "not collected in time"
    REPLACED = "replaced by a new delivery"
    DELIVERED_IN_WINDOW = "delivered inside the window"
    ORDER_CANCELLED = "order cancelled"
    NOTHING_LEFT = "nothing left to deliver"


# Carrier used when the order names none and the registry lists none.
DEFAULT_CARRIER = "post"


def placed_view(inp: PlaceOrderInput) -> OrderView:
    """The view of an order just placed: what its workflow records first."""
    state = OrderState(input=inp)
    assert inp.placed_at is not None
    state.told_customer(
        inp.placed_at, Told.PLACED, messages.summary(messages.order_placed(state)[1])
    )
    return order_view(state)


# --------------------------------------------------------------------------- payment


def payment_request(state: OrderState, call: PaymentCall, workflow_id: str) -> PaymentRequest:
    """The order's payment call, for the lines not cancelled (a void: for what the
    authorization still holds)."""
    amount = state.open_total
    if call == PaymentCall.VOID and state.authorized:
        amount = still_authorized(state)
    return PaymentRequest(
        order_id=state.order_id, amount=amount, key=f"{workflow_id}.{call.key_suffix}"
    )


def line_void_request(state: OrderState, n: int, workflow_id: str) -> PaymentRequest:
    """Voiding one cancelled line's part of the authorization, keyed by the line."""
    return PaymentRequest(
        order_id=state.order_id,
        amount=state.line_amount(n),
        key=f"{workflow_id}.{PaymentCall.VOID.key_suffix}-line-{n + 1}",
    )


def lines_amount(state: OrderState, lines: list[int]) -> Decimal:
    return sum((state.line_amount(n) for n in lines), Decimal("0"))


def delivery_payment(
    state: OrderState, call: PaymentCall, lines: list[int], delivery_id: int, workflow_id: str
) -> PaymentRequest:
    """Capturing what one delivery handed over, or voiding what it lost, keyed by the
    delivery."""
    return PaymentRequest(
        order_id=state.order_id,
        amount=lines_amount(state, lines),
        key=f"{workflow_id}.{call.key_suffix}-delivery-{delivery_id}",
    )


def still_authorized(state: OrderState) -> Decimal:
    """What the authorization still holds: neither captured nor voided."""
    return state.authorized - state.charged - state.voided


def lines_delivered(state: OrderState, lines: list[int]) -> None:
    """A delivery handed these lines over and their price was captured."""
    state.delivered_lines.extend(lines)
    state.charged += lines_amount(state, lines)
    state.status = OrderStatus.PARTLY_DELIVERED if state.pending_lines else OrderStatus.DELIVERED


def lines_undelivered(state: OrderState, lines: list[int], outcome: DeliveryOutcome) -> None:
    """The carrier lost or returned these lines and the order does not send them again: their
    part of the payment was voided."""
    how = "lost" if outcome.status == DeliveryStatus.LOST else "returned"
    for n in lines:
        state.undelivered_lines[n] = how
    state.voided += lines_amount(state, lines)


def line_cancelled(state: OrderState, n: int, *, voided: bool, released: bool) -> list[str]:
    """Record a line's cancel; returns its compensations, in words."""
    state.cancelled_lines.append(n)
    done = []
    if released:
        done.append(f"line {n + 1}: stock reservation released")
    if voided:
        state.voided += state.line_amount(n)
        done.append(f"line {n + 1}: {state.line_amount(n):.2f} voided")
    return done


# --------------------------------------------------------------------------- store pickup


def open_pickup_window(state: OrderState, now: datetime) -> None:
    assert state.reservation is not None
    state.reservation.expires_at = now + state.input.policy.pickup_window


def pickup_expired(state: OrderState) -> None:
    """Nobody collected the order in time: by policy it is cancelled or goes back in line."""
    assert state.reservation is not None
    state.reservation.expires_at = None
    if state.input.policy.unpicked_action == UnpickedAction.CANCEL:
        state.cancel = CancelOrder(
            by="stock",
            actor=ENGINE,
            reason=Reason.NOT_COLLECTED,
            customer_message="You did not collect the order within the pickup window.",
        )


# --------------------------------------------------------------------------- delivery


def start_delivery(
    state: OrderState, now: datetime, lines: list[int] | None = None
) -> DeliveryInput:
    """A new delivery for the order: recorded, its window promised (replacing the last one's),
    and the input its workflow starts with. ``lines``: the lines it carries (by index), on an
    order that ships its lines apart."""
    n = len(state.deliveries) + 1
    carrier = state.input.carrier or (
        state.input.carriers[0].carrier_id if state.input.carriers else DEFAULT_CARRIER
    )
    window_end = now + state.input.policy.delivery_window
    # From here the delivery keeps the window's timer; the order keeps none for it.
    state.deliveries.append(
        DeliverySummary(
            delivery_id=n,
            workflow_id=delivery_workflow_id(state.order_id, n),
            carrier=carrier,
            window_start=now,
            window_end=window_end,
            lines=[n + 1 for n in lines or []],
        )
    )
    for old in open_promises(state, PromiseKind.DELIVERY_WINDOW):
        withdraw(old, now, note=Reason.REPLACED)
    make_promise(
        state,
        MakePromise(
            kind=PromiseKind.DELIVERY_WINDOW,
            due_at=window_end,
            text=f"deliver {messages.parcel_contents(state, lines)} with "
            f"{state.carrier_name(carrier)}",
            department="fulfilment",
            actor=ENGINE,
        ),
        now,
    )
    state.status = OrderStatus.SHIPPING
    return DeliveryInput(
        order_id=state.order_id,
        customer_id=state.input.customer.customer_id,
        delivery_id=n,
        carrier=carrier,
        destination=state.input.customer.address,
        destination_gps=state.input.customer.gps,
        window_start=now,
        window_end=window_end,
        policy=state.input.policy,
    )


def book_request(state: OrderState, delivery: DeliveryInput, workflow_id: str) -> BookShipment:
    return BookShipment(
        key=booking_key(workflow_id),
        order_id=state.order_id,
        delivery_id=delivery.delivery_id,
        carrier=delivery.carrier,
        destination=state.input.customer.address,
    )


def booked(delivery: DeliveryInput, booking: Booking, now: datetime) -> DeliveryReport:
    """The order's own report of the booking, as if the delivery had sent it."""
    return DeliveryReport(
        delivery_id=delivery.delivery_id,
        kind=ReportKind.BOOKED,
        at=now,
        status=DeliveryStatus.BOOKED,
        tracking=booking.tracking,
        window_start=delivery.window_start,
        window_end=delivery.window_end,
    )


def apply_report(state: OrderState, report: DeliveryReport, now: datetime) -> list[Notice] | None:
    """Record what a delivery reported; returns who hears of it (routine movements and events
    with nothing to say are only on the timeline). ``None`` when the order has no such
    delivery."""
    summary = next((d for d in state.deliveries if d.delivery_id == report.delivery_id), None)
    if summary is None:
        return None
    summary.status = report.status
    summary.tracking = report.tracking or summary.tracking
    summary.window_start, summary.window_end = report.window_start, report.window_end
    summary.pickup_point = report.pickup_point
    if report.kind in (ReportKind.SCANNED, ReportKind.PICKED_UP):
        summary.last_scan_at = report.at
    if report.kind == ReportKind.PICKED_UP and state.status == OrderStatus.SHIPPING:
        state.status = OrderStatus.IN_TRANSIT
    if report.kind == ReportKind.ATTEMPTED:
        summary.attempts.append(
            Attempt(
                at=report.at,
                verified=bool(report.verified),
                reason=report.reason,
                missing=report.missing,
            )
        )
    windows = open_promises(state, PromiseKind.DELIVERY_WINDOW)
    if report.kind == ReportKind.RESCHEDULED and report.window_end is not None:
        for p in windows:
            p.due_at = report.window_end
    if report.kind == ReportKind.DELIVERED:
        for p in windows:
            keep_promise(state, p, now, by=ENGINE, note=Reason.DELIVERED_IN_WINDOW)
    if report.kind == ReportKind.WINDOW_MISSED:
        # The delivery watched its window for the order: the promise is broken.
        return [n for p in windows for n in break_promise(state, p, now)]
    mail = None
    if not report.kind.routine:
        # Routine movements arrive with a later report: the customer already has the
        # tracking number from the booking e-mail, so they are only recorded.
        mail = messages.delivery_event(state, report, state.carrier_name(summary.carrier))
    if mail is None:
        state.log(now, report.kind, f"delivery {report.delivery_id}: {report.kind}")
        return []
    return [Notice(mail, kind=report.kind)]


def break_promise(state: OrderState, promise: Promise, now: datetime) -> list[Notice]:
    """A promise's due time passed unkept: the customer hears first, then the supervisor."""
    promises.break_promise(promise, now)
    return notices.promise_broken(state, promise)


def deadline_passed(state: OrderState, deadline: Deadline, now: datetime) -> list[Notice]:
    """What a passed deadline changes, and who hears of it."""
    if deadline.kind == DeadlineKind.HOLD_SLA:
        hold = state.hold(deadline.ref)
        escalate_hold(state, hold, now)
        return notices.hold_escalated(state, hold)
    if deadline.kind == DeadlineKind.PROMISE_DUE:
        return break_promise(state, state.promise(deadline.ref), now)
    pickup_expired(state)
    return []


def reship(state: OrderState, outcome: DeliveryOutcome) -> bool:
    """Lost, and policy says send another."""
    return (
        outcome.status == DeliveryStatus.LOST
        and state.input.policy.lost_action == LostAction.RESHIP
    )


def nothing_to_deliver() -> CancelOrder:
    """Every line of an order was cancelled, lost or returned: the order ends cancelled."""
    return CancelOrder(by="fulfilment", actor=ENGINE, reason=Reason.NOTHING_LEFT)


def refund_after(outcome: DeliveryOutcome) -> CancelOrder:
    """Lost with a refund policy, or returned after verified attempts: refund in full."""
    lost = outcome.status == DeliveryStatus.LOST
    return CancelOrder(
        by="fulfilment", actor=ENGINE, reason=Reason.LOST if lost else Reason.RETURNED
    )


# --------------------------------------------------------------------------- cancel


def delivery_cancelled(state: OrderState) -> None:
    if state.deliveries:
        state.deliveries[-1].status = DeliveryStatus.CANCELLED


def payment_undo(state: OrderState) -> PaymentCall | None:
    """The payment call that undoes what was taken: void an authorization, refund a capture."""
    if state.payment == PaymentState.AUTHORIZED:
        return PaymentCall.VOID
    if state.payment == PaymentState.CAPTURED:
        return PaymentCall.REFUND
    return None


def payment_undone(state: OrderState, call: PaymentCall) -> str:
    """Record the undo; returns the compensation's words."""
    if call == PaymentCall.VOID:
        state.voided += still_authorized(state)
        state.payment = PaymentState.VOIDED
        return "payment authorization voided"
    state.payment = PaymentState.REFUNDED
    state.refunded = state.charged
    return f"refunded {state.charged:.2f}"


def close_cancelled(state: OrderState, compensations: list[str], now: datetime) -> None:
    """The order is cancelled: nothing blocks it, the engine's promises are withdrawn (a
    department's promise stays open until it is kept or broken)."""
    release_all_on_cancel(state, now)
    for p in open_promises(state):
        if p.actor == ENGINE:
            withdraw(p, now, note=Reason.ORDER_CANCELLED)
    state.compensations = compensations
    state.status = OrderStatus.CANCELLED
