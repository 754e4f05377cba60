"""What people read: the plain words of every e-mail and timeline entry.

Each function returns ``(subject, body)``. Customer texts say what happened, who did it, what
happens next and by when; they never blame the customer for what a department or partner did.
"""

from __future__ import annotations

from decimal import Decimal

from domain.base import CUSTOMER
from domain.delivery import DeliveryReport, ReportKind
from domain.durations import human_time
from domain.holds import Hold
from domain.order import OrderState
from domain.promises import Promise
from domain.registry import Department, LostAction
from domain.stock import ReservationStatus
from domain.view import next_step

Mail = tuple[str, str]


def _money(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _lines(state: OrderState) -> str:
    return "\n".join(
        f"  {line.qty} x {line.name or line.sku} at {_money(line.unit_price)}"
        for line in state.input.lines
    )


def parcel_contents(state: OrderState, lines: list[int] | None) -> str:
    """What a parcel carries, in words: its lines (by index), or the whole order."""
    if not lines:
        return "your order"
    items = [f"{state.input.lines[n].qty} x {_name(state, n)}" for n in lines]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _name(state: OrderState, n: int) -> str:
    line = state.input.lines[n]
    return line.name or line.sku


def _carried(state: OrderState, delivery_id: int) -> list[int] | None:
    """The lines (by index) a delivery carries, on an order that ships its lines apart."""
    for d in state.deliveries:
        if d.delivery_id == delivery_id and d.lines:
            return [line - 1 for line in d.lines]
    return None


def _sign(body: str, state: OrderState) -> str:
    return f"Hello {state.input.customer.name},\n\n{body}\n\nOrder {state.order_id}\n"


def order_placed(state: OrderState) -> Mail:
    return (
        f"Order {state.order_id} received",
        _sign(
            f"We have your order:\n{_lines(state)}\nTotal: {_money(state.total)} "
            "(this price is locked; nothing that happens later changes it).",
            state,
        ),
    )


def stock_reserved(state: OrderState) -> Mail:
    res = state.reservation
    where = res.location if res else state.input.location
    return (
        f"Order {state.order_id}: your item is reserved",
        _sign(f"Your item is reserved for you at {where}. Nobody else can take it.", state),
    )


def waitlisted(state: OrderState, position: int, promise: Promise) -> Mail:
    return (
        f"Order {state.order_id}: waiting for stock (you are number {position})",
        _sign(
            f"The item is out of stock at {state.input.location}. You are number {position} "
            "in line for the next delivery of stock, and the first units that arrive are "
            "allocated in that order.\n"
            f"We will e-mail you the moment stock arrives; we expect it by "
            f"{human_time(promise.due_at)}. If it has not arrived by then we will tell you.",
            state,
        ),
    )


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _where_each_line_is(state: OrderState) -> str:
    """One line per order line: reserved, or its place in its stock record's line."""
    out = []
    for n, line in enumerate(state.input.lines):
        res = state.line_reservation(n)
        what = f"  {line.qty} x {line.name or line.sku}: "
        if n in state.cancelled_lines:
            out.append(what + "cancelled")
        elif n in state.delivered_lines:
            out.append(what + "delivered")
        elif res is not None and res.status == ReservationStatus.WAITLISTED:
            place = f"{_ordinal(res.position)} in line" if res.position else "in line"
            out.append(what + f"out of stock, you are {place} for the next delivery")
        else:
            out.append(what + "reserved for you")
    return "\n".join(out)


def lines_reserved(state: OrderState) -> Mail:
    return (
        f"Order {state.order_id}: your items are reserved",
        _sign(
            f"Every item of your order is reserved for you at {state.input.location}. Nobody "
            f"else can take them.\n{_where_each_line_is(state)}",
            state,
        ),
    )


def lines_waiting(state: OrderState, promise: Promise | None) -> Mail:
    waiting = sum(
        1
        for n in range(len(state.input.lines))
        if (res := state.line_reservation(n)) is not None
        and res.status == ReservationStatus.WAITLISTED
    )
    expect = (
        f"We will e-mail you the moment stock arrives; we expect it by "
        f"{human_time(promise.due_at)}. If it has not arrived by then we will tell you."
        if promise is not None
        else "We will e-mail you the moment stock arrives."
    )
    then = (
        "What is reserved ships now; each item that waits follows in a delivery of its own "
        "once it arrives. "
        if state.ships_apart
        else "Your order ships once every item is reserved. "
    )
    return (
        f"Order {state.order_id}: {waiting} of {len(state.input.lines)} items wait for stock",
        _sign(
            f"Part of your order is out of stock at {state.input.location}:\n"
            f"{_where_each_line_is(state)}\n{then}{expect}",
            state,
        ),
    )


def stock_allocated(state: OrderState) -> Mail:
    return (
        f"Order {state.order_id}: stock arrived and is reserved for you",
        _sign(
            "Stock arrived and your item is now reserved for you. We continue your order.", state
        ),
    )


def lines_stock_arrived(state: OrderState, lines: list[int]) -> Mail:
    """Stock arrived for some waiting lines of an order that ships its lines apart."""
    what = parcel_contents(state, lines)
    return (
        f"Order {state.order_id}: stock arrived for {what}",
        _sign(f"Stock arrived: {what} is now reserved for you and ships next.", state),
    )


def stock_withdrawn(state: OrderState, position: int) -> Mail:
    return (
        f"Order {state.order_id}: the stock count fell short, you are number {position} in line",
        _sign(
            "A stock count at the store found fewer units than the records showed, so your "
            f"reservation is no longer backed by stock. You are number {position} in line and "
            "we will e-mail you as soon as stock arrives.",
            state,
        ),
    )


def ready_for_pickup(state: OrderState) -> Mail:
    res = state.reservation
    until = human_time(res.expires_at) if res and res.expires_at else "soon"
    return (
        f"Order {state.order_id}: ready to collect",
        _sign(
            f"Your order is ready to collect at {res.location if res else ''}. "
            f"We hold it for you until {until}.",
            state,
        ),
    )


def pickup_expired(state: OrderState, *, cancelled: bool) -> Mail:
    then = (
        "Your order is cancelled and your payment released; nothing is charged."
        if cancelled
        else "We have put you back in line for the next stock."
    )
    return (
        f"Order {state.order_id}: not collected in time",
        _sign(f"The hold period for collecting your order has ended. {then}", state),
    )


def collected(state: OrderState) -> Mail:
    return (
        f"Order {state.order_id}: collected",
        _sign("You collected your order. Thank you.", state),
    )


def payment_authorized(state: OrderState) -> Mail:
    return (
        f"Order {state.order_id}: payment authorized",
        _sign(
            f"We authorized {_money(state.open_total)} on your payment method. "
            "Nothing is charged until your order is delivered.",
            state,
        ),
    )


def delivery_event(state: OrderState, report: DeliveryReport, carrier_name: str) -> Mail | None:
    """The customer's e-mail for a delivery event, or ``None`` when there is nothing to say."""
    oid = state.order_id
    window = ""
    if report.window_start and report.window_end:
        window = f" between {human_time(report.window_start)} and {human_time(report.window_end)}"
    match report.kind:
        case ReportKind.BOOKED if carried := _carried(state, report.delivery_id):
            what = parcel_contents(state, carried)
            later = [n for n in state.pending_lines if n not in carried]
            rest = (
                f" Then {parcel_contents(state, later)} follows in a later delivery."
                if later
                else ""
            )
            return (
                f"Order {oid}: {what} shipped with {carrier_name}",
                _sign(
                    f"A parcel with {what} is booked with {carrier_name} (tracking "
                    f"{report.tracking}). It will be delivered{window}.{rest}",
                    state,
                ),
            )
        case ReportKind.BOOKED:
            return (
                f"Order {oid}: shipped with {carrier_name}",
                _sign(
                    f"Your order is booked with {carrier_name} (tracking {report.tracking}). "
                    f"It will be delivered{window}.",
                    state,
                ),
            )
        case ReportKind.PICKED_UP:
            return (
                f"Order {oid}: on its way",
                _sign(f"{carrier_name} has picked up your order. Expected{window}.", state),
            )
        case ReportKind.ATTEMPTED if report.verified:
            return (
                f"Order {oid}: we missed you",
                _sign(
                    f"{carrier_name} tried to deliver your order ({report.reason or 'no answer'}) "
                    "and recorded evidence of the attempt. Customer care can book you a new "
                    "window or send it to a pickup point; quote your order number.",
                    state,
                ),
            )
        case ReportKind.ATTEMPTED:
            missing = ", ".join(report.missing) or "evidence"
            return (
                f"Order {oid}: a delivery attempt we could not verify",
                _sign(
                    f"{carrier_name} reported a delivery attempt but gave no {missing}. "
                    "We do not count it against you, and we have recorded it against the "
                    "carrier. Choose a new window or a pickup point and we hold them to it.",
                    state,
                ),
            )
        case ReportKind.RESCHEDULED:
            return (f"Order {oid}: new delivery window", _sign(f"Delivery is now{window}.", state))
        case ReportKind.REDIRECTED:
            return (
                f"Order {oid}: sent to a pickup point",
                _sign(f"Your order goes to the pickup point {report.pickup_point}.", state),
            )
        case ReportKind.TRACE_OPENED:
            return (
                f"Order {oid}: we are tracing your parcel",
                _sign(
                    f"{carrier_name} has not scanned your parcel for longer than it should. We "
                    "opened a trace with them and will tell you what they find; if it is lost "
                    "we send a replacement or refund you, without you having to ask.",
                    state,
                ),
            )
        case ReportKind.LOST:
            return None  # the order says what it does about it, in one e-mail
        case ReportKind.RETURNED:
            return (
                f"Order {oid}: returned to us after failed deliveries",
                _sign(
                    f"{carrier_name} could not deliver after several verified attempts and is "
                    "returning the parcel. Reply with a new address or pickup point, or ask for a "
                    "refund; either costs you nothing.",
                    state,
                ),
            )
        case ReportKind.DELIVERED if carried := _carried(state, report.delivery_id):
            what = parcel_contents(state, carried)
            return (f"Order {oid}: {what} delivered", _sign(f"Delivered: {what}.", state))
        case ReportKind.DELIVERED:
            return (f"Order {oid}: delivered", _sign("Your order was delivered.", state))
        case ReportKind.EXCEPTION:
            return (
                f"Order {oid}: a delay with {carrier_name}",
                _sign(f"{carrier_name} reported a problem: {report.reason}. We are on it.", state),
            )
    return None


def lost_parcel(state: OrderState, *, action: LostAction) -> Mail:
    then = (
        "A replacement is on its way at no cost to you."
        if action == LostAction.RESHIP
        else f"Your payment of {_money(state.open_total)} is returned in full; nothing is charged."
    )
    return (
        f"Order {state.order_id}: your parcel was lost, and what we do about it",
        _sign(f"The carrier lost your parcel. {then}", state),
    )


def lines_lost(state: OrderState, lines: list[int], *, action: LostAction | None) -> Mail:
    """A parcel of an order that ships its lines apart was lost (``action``: what the order
    does), or returned after failed attempts (``None``: its lines are not sent again)."""
    what = parcel_contents(state, lines)
    amount = sum((state.line_amount(n) for n in lines), Decimal("0"))
    released = (
        f"The {_money(amount)} authorized for it is released; nothing is charged for it. The "
        "rest of your order goes on."
    )
    if action is None:
        return (
            f"Order {state.order_id}: the parcel with {what} came back to us",
            _sign(
                f"The carrier could not deliver the parcel with {what} after verified attempts "
                f"and returned it to us. {released}",
                state,
            ),
        )
    then = (
        "A replacement is on its way at no cost to you."
        if action == LostAction.RESHIP
        else released
    )
    return (
        f"Order {state.order_id}: the parcel with {what} was lost, and what we do about it",
        _sign(f"The carrier lost the parcel with {what}. {then}", state),
    )


def completed(state: OrderState) -> Mail:
    return (
        f"Order {state.order_id}: complete",
        _sign(f"We charged {_money(state.charged)}, the price when you ordered.", state),
    )


def hold_placed_customer(state: OrderState, hold: Hold, dept: Department) -> Mail:
    amount = f" Amount: {_money(hold.amount)}." if hold.amount is not None else ""
    ref = f" Reference: {hold.reference}." if hold.reference else ""
    what = "your order"
    if hold.lines:
        held = ", ".join(
            f"{state.input.lines[n - 1].qty} x {state.input.lines[n - 1].name or state.input.lines[n - 1].sku}"
            for n in hold.lines
        )
        what = f"part of your order ({held}; it ships with the rest once released)"
    return (
        f"Order {state.order_id} is on hold by {dept.name}",
        _sign(
            f"{dept.name} has put {what} on hold: {hold.reason_text}.{ref}{amount}\n"
            f"{dept.name} says: {hold.customer_message}\n"
            f"They must resolve it by {human_time(hold.sla_due_at)}; if they do not, their "
            f"supervisor ({dept.supervisor}) is told and so are you. If this hold is wrong, "
            f"tell customer care, quoting order {state.order_id}, hold {hold.hold_id}: your "
            f"dispute is recorded on the order and {dept.name} must answer it.",
            state,
        ),
    )


def hold_placed_department(state: OrderState, hold: Hold, placed_by: Department) -> Mail:
    return (
        f"[{hold.hold_id}] order {state.order_id} blocked before '{hold.blocked_step}' "
        f"by {placed_by.name}",
        f"{placed_by.name} ({hold.actor}) placed hold {hold.hold_id} on order {state.order_id}: "
        f"{hold.reason} - {hold.reason_text}. Reference: {hold.reference or 'none'}. "
        f"Blocked step: {hold.blocked_step}. SLA due {human_time(hold.sla_due_at)}.\n"
        f"The customer has been told: {hold.customer_message}\n",
    )


def hold_released_customer(state: OrderState, hold: Hold, dept: Department) -> Mail:
    rest = (
        "Your order continues now."
        if not state.blocked
        else f"Your order is still held by {', '.join(state.blocked_by)}."
    )
    return (
        f"Order {state.order_id}: hold released by {dept.name}",
        _sign(f"{dept.name} released its hold: {hold.resolution}\n{rest}", state),
    )


def hold_disputed_department(state: OrderState, hold: Hold, dept: Department) -> Mail:
    return (
        f"[{hold.hold_id}] DISPUTED by the customer: order {state.order_id}",
        f"The customer disputes hold {hold.hold_id} ({hold.reason}, reference "
        f"{hold.reference or 'none'}, amount {_money(hold.amount) or 'none'}):\n"
        f"  {hold.dispute_message}\n"
        f"Resolve it by {human_time(hold.sla_due_at)} (release or uphold with the reason), "
        f"or it escalates to {dept.supervisor}.\n",
    )


def hold_disputed_customer(state: OrderState, hold: Hold, dept: Department) -> Mail:
    return (
        f"Order {state.order_id}: your dispute of the {dept.name} hold",
        _sign(
            f"We passed your dispute to {dept.name} and their supervisor {dept.supervisor}. "
            f"They must answer by {human_time(hold.sla_due_at)}.",
            state,
        ),
    )


def hold_upheld_customer(state: OrderState, hold: Hold, dept: Department) -> Mail:
    return (
        f"Order {state.order_id}: {dept.name} keeps its hold, and what clears it",
        _sign(
            f"{dept.name} reviewed the hold and keeps it: {hold.customer_message}\n"
            f"They will look at it again by {human_time(hold.sla_due_at)}.",
            state,
        ),
    )


def hold_escalated_supervisor(state: OrderState, hold: Hold, dept: Department) -> Mail:
    return (
        f"ESCALATION {hold.escalations}: hold {hold.hold_id} on order {state.order_id} "
        f"is past its SLA",
        f"{dept.supervisor}: {dept.name}'s hold {hold.hold_id} ({hold.reason}, placed by "
        f"{hold.actor} at {human_time(hold.placed_at)}) is past its SLA and still blocks the "
        f"order. Status: {hold.status.value}. The customer has been told the new date: "
        f"{human_time(hold.sla_due_at)}.\n",
    )


def hold_escalated_customer(state: OrderState, hold: Hold, dept: Department) -> Mail:
    return (
        f"Order {state.order_id}: {dept.name} missed its date",
        _sign(
            f"{dept.name} said it would resolve its hold on your order by now and has not. "
            f"We escalated it to their supervisor, {dept.supervisor}. The new date is "
            f"{human_time(hold.sla_due_at)}.",
            state,
        ),
    )


def line_cancelled(state: OrderState, n: int, by: str, message: str) -> Mail:
    line = state.input.lines[n]
    who = "You" if by == CUSTOMER else by
    said = f"\n{message}" if message else ""
    return (
        f"Order {state.order_id}: line {n + 1} cancelled",
        _sign(
            f"{who} cancelled {line.qty} x {line.name or line.sku} from your order.{said}\n"
            f"Nothing is charged for it. The rest of your order goes on; it now comes to "
            f"{_money(state.open_total)}.",
            state,
        ),
    )


def cancelled(state: OrderState, by: str, message: str) -> Mail:
    who = "You" if by == CUSTOMER else by
    said = f"\n{message}" if message else ""
    refund = f" We returned {_money(state.refunded)}." if state.refunded else ""
    return (
        f"Order {state.order_id} cancelled",
        _sign(
            f"{who} cancelled the order ({state.cancel.reason if state.cancel else ''}).{said}\n"
            f"Stock and payment are released.{refund}",
            state,
        ),
    )


def promise_made(state: OrderState, promise: Promise, dept: Department) -> Mail:
    return (
        f"Order {state.order_id}: {dept.name} promised you something",
        _sign(
            f"{dept.name} promised: {promise.text}, by {human_time(promise.due_at)}. "
            "We keep the clock; if it is missed you hear it from us first.",
            state,
        ),
    )


def promise_broken_customer(state: OrderState, promise: Promise, dept: Department) -> Mail:
    step, _ = _where(state)
    return (
        f"Order {state.order_id}: we did not keep our promise",
        _sign(
            f'We said "{promise.text}" by {human_time(promise.due_at)} and we did not. '
            f"We are sorry. {dept.name}'s supervisor has been told.\n"
            f"Where your order stands: {step}.",
            state,
        ),
    )


def promise_broken_supervisor(state: OrderState, promise: Promise, dept: Department) -> Mail:
    return (
        f"BROKEN PROMISE {promise.promise_id} on order {state.order_id}",
        f'{dept.supervisor}: {promise.actor} of {dept.name} promised "{promise.text}" '
        f"by {human_time(promise.due_at)}; it was not kept. The customer has been told.\n",
    )


def summary(body: str) -> str:
    """The body without greeting and footer, on one line: what the timeline shows."""
    lines = [ln.strip() for ln in body.splitlines() if ln.strip()]
    if lines and lines[0].startswith("Hello "):
        lines = lines[1:]
    if lines and lines[-1].startswith("Order "):
        lines = lines[:-1]
    return " ".join(lines)


def _where(state: OrderState) -> tuple[str, str]:
    step, due = next_step(state)
    return step, human_time(due) if due else ""
