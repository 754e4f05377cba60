"""The one order view every channel reads (the workflow's ``view`` query), what the order waits
for in words, and what the Temporal UI shows of it. Derived from the order's state, never kept
beside it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import Field

from domain.base import Model, Money
from domain.billing import PaymentState
from domain.delivery import TERMINAL, DeliveryState, DeliveryStatus, DeliverySummary
from domain.holds import HoldView
from domain.order import OrderLine, OrderState, OrderStatus
from domain.promises import PromiseKind, PromiseView, open_promises
from domain.stock import Reservation, ReservationStatus


class LineView(OrderLine):
    """One line of the order, as every channel shows it."""

    line: int
    status: str
    reservation: Reservation | None = None
    # The delivery carrying the line, once one does.
    delivery_id: int | None = None
    # Departments whose active holds block the line (an order-wide hold blocks every line).
    blocked_by: list[str] = Field(default_factory=list)


class Totals(Model):
    """What the order comes to, and where its money stands."""

    ordered: Money
    authorized: Money
    captured: Money
    voided: Money
    refunded: Money


class OrderView(Model):
    order_id: str
    status: str
    customer_id: str
    # The customer's contact and address as the order recorded them (encrypted in history).
    customer_name: str = ""
    customer_email: str = ""
    ship_to: str = ""
    # How its lines ship (an order of several lines): ``available`` or ``complete``.
    ship: str = "available"
    lines: list[LineView]
    totals: Totals | None = None
    # The ordered total (``totals.ordered``), for scripts that read it before there were totals.
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
    # The verified principal whose cancel was accepted.
    cancelled_by: str = ""
    # The verified principal who placed the order.
    placed_by: str = ""
    customer_emails: int = 0
    undeliverable_emails: list[str] = Field(default_factory=list)


STAGE_WORDS: dict[OrderStatus, str] = {
    OrderStatus.PLACED: "reserving stock",
    OrderStatus.WAITLISTED: "waiting for stock to arrive",
    OrderStatus.RESERVED: "authorizing payment",
    OrderStatus.PAYMENT_AUTHORIZED: "booking the carrier",
    OrderStatus.SHIPPING: "waiting for the carrier to pick up",
    OrderStatus.IN_TRANSIT: "on its way with the carrier",
    OrderStatus.READY_FOR_PICKUP: "waiting for the customer to collect it in store",
    OrderStatus.PARTLY_DELIVERED: "the rest of the order: stock for the lines still to come",
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
            f"held by {depts}: {first.reason_text} (hold {first.hold_id}); then {state.next_stop}",
            first.sla_due_at,
        )
    words = STAGE_WORDS[state.status]
    due_at: datetime | None = None
    if state.status in (OrderStatus.WAITLISTED, OrderStatus.PARTLY_DELIVERED):
        stock = open_promises(state, PromiseKind.STOCK_DATE)
        due_at = stock[0].due_at if stock else None
    elif state.status == OrderStatus.READY_FOR_PICKUP and state.reservation:
        due_at = state.reservation.expires_at
    elif state.status in (OrderStatus.SHIPPING, OrderStatus.IN_TRANSIT):
        windows = open_promises(state, PromiseKind.DELIVERY_WINDOW)
        due_at = windows[0].due_at if windows else None
    return words, due_at


def _line_status(state: OrderState, n: int, res: Reservation | None) -> str:
    if n in state.cancelled_lines:
        return "cancelled"
    if n in state.delivered_lines:
        return "delivered"
    if n in state.undelivered_lines:
        return state.undelivered_lines[n]
    if state.ships_apart:
        carrying = state.line_delivery(n)
        if carrying is not None and not carrying.status.terminal:
            return "in_transit" if state.status == OrderStatus.IN_TRANSIT else "shipping"
        if res is None:
            return "reserving"
        return res.status.value
    if state.status in (OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.DELIVERED):
        return state.status.value
    if res is not None and res.status == ReservationStatus.COLLECTED and state.deliveries:
        return state.status.value  # with the carrier, or handed over
    if res is None:
        return "reserving"
    return res.status.value


def line_views(state: OrderState) -> list[LineView]:
    delivery = state.current_delivery
    out = []
    for n, line in enumerate(state.input.lines):
        res = state.line_reservation(n)
        carried = (
            delivery is not None and res is not None and res.status == ReservationStatus.COLLECTED
        )
        if state.ships_apart:
            delivery = state.line_delivery(n)
            carried = delivery is not None
        out.append(
            LineView(
                **line.model_dump(),
                line=n + 1,
                status=_line_status(state, n, res),
                reservation=res,
                delivery_id=delivery.delivery_id if carried and delivery else None,
                blocked_by=sorted({h.department for h in state.holds if h.holds_line(n)}),
            )
        )
    return out


def totals(state: OrderState) -> Totals:
    ordered = state.total
    zero = Decimal("0")
    paid = state.payment
    authorized = state.authorized or (ordered if paid != PaymentState.NONE else zero)
    return Totals(
        ordered=ordered,
        authorized=authorized,
        captured=state.charged,
        voided=state.voided,
        refunded=state.refunded,
    )


def order_view(state: OrderState) -> OrderView:
    step, step_due = next_step(state)
    return OrderView(
        order_id=state.order_id,
        status=state.status.value,
        customer_id=state.input.customer.customer_id,
        customer_name=state.input.customer.name,
        customer_email=state.input.customer.email,
        ship_to="" if state.input.pickup else state.input.customer.address,
        ship=state.input.ship.value,
        lines=line_views(state),
        totals=totals(state),
        total=state.total,
        placed_at=state.input.placed_at or state.timeline[0].at,
        blocked_by=state.blocked_by,
        holds=[HoldView.of(h) for h in state.holds],
        promises=[PromiseView.of(p) for p in state.promises],
        reservation=state.reservation,
        deliveries=state.deliveries,
        next_step=step,
        next_step_due_at=step_due,
        payment=state.payment,
        charged=state.charged - state.refunded,
        cancelled_reason=state.cancel.reason if state.cancel else "",
        cancelled_by=state.cancelled_by,
        placed_by=state.placed_by,
        customer_emails=state.emails_sent,
        undeliverable_emails=list(state.undeliverable),
    )


# --------------------------------------------------------------------------- what the UI shows

# The UI's details stay short: the order view has everything.
DETAIL_ITEMS = 10


def index_values(state: OrderState) -> tuple[str, tuple[str, ...], str]:
    """What the order's search attributes say: status, blocking departments, carrier."""
    carrier = state.deliveries[-1].carrier if state.deliveries else (state.input.carrier or "")
    return state.status.value, tuple(state.blocked_by), carrier


def details(state: OrderState) -> str:
    """The Temporal UI's markdown for the order: where it stands, its holds and promises."""
    step, due_at = next_step(state)
    lines = [f"**{state.status.value.replace('_', ' ')}**: next, {step}"]
    if due_at:
        lines[0] += f" (due {due_at.isoformat(timespec='seconds')})"
    for h in state.active_holds:
        lines.append(
            f"- hold {h.hold_id} by **{h.department}** ({h.reason}), placed by {h.actor}, "
            f"SLA {h.sla_due_at.isoformat(timespec='seconds')}, escalations {h.escalations}"
        )
    promises = open_promises(state)
    for p in promises[:DETAIL_ITEMS]:
        lines.append(
            f"- promise {p.promise_id} ({p.kind}) by {p.department}, "
            f"due {p.due_at.isoformat(timespec='seconds')}"
        )
    if len(promises) > DETAIL_ITEMS:
        lines.append(f"- and {len(promises) - DETAIL_ITEMS} more open promises")
    return "\n".join(lines)


def running_delivery(view: OrderView) -> DeliverySummary | None:
    """The delivery whose routine movements the order may not have heard of yet. A delivery
    tells its order at once what the customer must hear, but pickups and scans only with its
    next report, to keep the order's history short; a reader who wants them now asks it."""
    if not view.deliveries or view.status not in (OrderStatus.SHIPPING, OrderStatus.IN_TRANSIT):
        return None
    summary = view.deliveries[-1]
    return None if summary.status in TERMINAL else summary


def with_live_delivery(view: OrderView, live: DeliveryState) -> OrderView:
    """The order's view with its running delivery as the delivery has it now, put where the
    order will put it once it hears."""
    summary = view.deliveries[-1]
    summary.status = live.status
    summary.window_start, summary.window_end = live.window_start, live.window_end
    summary.pickup_point = live.pickup_point or summary.pickup_point
    if live.status != DeliveryStatus.BOOKED:
        summary.last_scan_at = live.last_movement_at
        if view.status == OrderStatus.SHIPPING:
            view.status = OrderStatus.IN_TRANSIT.value
            if view.next_step == STAGE_WORDS[OrderStatus.SHIPPING]:
                view.next_step = STAGE_WORDS[OrderStatus.IN_TRANSIT]
    return view
