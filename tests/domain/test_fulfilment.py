"""The order's step decisions, without Temporal: what reservations, shipments, delivery
reports, passed deadlines and cancels change."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from domain import fulfilment as steps
from domain import holds, promises, reservation
from domain import order as rules
from domain.billing import PaymentCall, PaymentState
from domain.carrier import Booking
from domain.delivery import DeliveryOutcome, DeliveryReport, DeliveryStatus, ReportKind
from domain.errors import WrongState
from domain.holds import HoldStatus, PlaceHold
from domain.order import CancelOrder, CollectOrder, OrderStatus
from domain.promises import MakePromise, PromiseKind, PromiseStatus
from domain.registry import LostAction, Policy, UnpickedAction
from domain.stock import (
    ReservationStatus,
)
from tests.domain.factories import NOW, order, reserved


def test_payment_keys_are_per_order_and_call() -> None:
    s = order()
    assert steps.payment_request(s, PaymentCall.AUTHORIZE, "order-O-1").key == "order-O-1.a"
    assert steps.payment_request(s, PaymentCall.REFUND, "order-O-1").amount == Decimal("21.00")


def test_a_new_delivery_replaces_the_window_promise() -> None:
    s = order()
    first = steps.start_delivery(s, NOW)
    assert s.status == OrderStatus.SHIPPING and first.carrier == "fast"
    assert s.deliveries[-1].workflow_id == "delivery-O-1-1"
    (window,) = promises.open_promises(s, PromiseKind.DELIVERY_WINDOW)
    assert window.text == "deliver your order with Fast Parcels"
    second = steps.start_delivery(s, NOW + timedelta(hours=1))
    assert second.delivery_id == 2
    assert window.status == PromiseStatus.WITHDRAWN
    assert len(promises.open_promises(s, PromiseKind.DELIVERY_WINDOW)) == 1


def report(kind: ReportKind, status: DeliveryStatus, **kw: object) -> DeliveryReport:
    fields: dict[str, object] = {"delivery_id": 1, "kind": kind, "at": NOW, "status": status}
    fields.update(kw)
    return DeliveryReport.model_validate(fields)


def test_reports_update_the_delivery_and_keep_or_break_the_window() -> None:
    s = order()
    delivery = steps.start_delivery(s, NOW)
    told = steps.apply_report(
        s, steps.booked(delivery, Booking(key="k", carrier="fast", tracking="T1"), NOW), NOW
    )
    assert told is not None and [n.kind for n in told] == ["booked"]
    assert s.deliveries[0].tracking == "T1"
    # A pickup is routine: only on the timeline, and the order is in transit.
    assert steps.apply_report(s, report(ReportKind.PICKED_UP, DeliveryStatus.PICKED_UP), NOW) == []
    assert s.status == OrderStatus.IN_TRANSIT and s.timeline[-1].kind == "picked_up"
    assert (
        steps.apply_report(s, report(ReportKind.LOST, DeliveryStatus.LOST, delivery_id=9), NOW)
        is None
    )
    told = steps.apply_report(s, report(ReportKind.WINDOW_MISSED, DeliveryStatus.IN_TRANSIT), NOW)
    assert told is not None
    assert [n.kind or n.to for n in told] == ["promise_broken", "fulfilment-boss@x"]
    assert promises.open_promises(s, PromiseKind.DELIVERY_WINDOW) == []


def test_delivered_keeps_the_window_promise() -> None:
    s = order()
    steps.start_delivery(s, NOW)
    steps.apply_report(s, report(ReportKind.DELIVERED, DeliveryStatus.DELIVERED), NOW)
    (window,) = s.promises
    assert window.status == PromiseStatus.KEPT and window.note == "delivered inside the window"


def test_lost_parcel_is_reshipped_or_refunded_by_policy() -> None:
    lost = DeliveryOutcome(delivery_id=1, status=DeliveryStatus.LOST, at=NOW)
    returned = DeliveryOutcome(delivery_id=1, status=DeliveryStatus.RETURNED, at=NOW)
    assert steps.reship(order(), lost)
    assert not steps.reship(order(policy=Policy(lost_action=LostAction.REFUND)), lost)
    assert not steps.reship(order(), returned)
    assert steps.refund_after(lost).reason == "lost by the carrier"
    assert steps.refund_after(returned).reason == "returned by the carrier"


def test_unpicked_order_is_cancelled_or_back_in_line_by_policy() -> None:
    for action, cancelled in ((UnpickedAction.CANCEL, True), (UnpickedAction.WAITLIST, False)):
        s = order(pickup=True, policy=Policy(unpicked_action=action))
        reservation.take_reservation(s, reserved(ReservationStatus.RESERVED))
        steps.open_pickup_window(s, NOW)
        s.status = OrderStatus.READY_FOR_PICKUP
        (deadline,) = rules.due(s, NOW + s.input.policy.pickup_window)
        assert steps.deadline_passed(s, deadline, NOW) == []
        assert s.reservation is not None and s.reservation.expires_at is None
        assert (s.cancel is not None) is cancelled


def test_passed_deadlines_escalate_holds_and_break_promises() -> None:
    s = order()
    hold = holds.place_hold(
        s, PlaceHold(department="billing", reason_code="arrears", customer_message="Pay."), NOW
    )
    promise = promises.make_promise(
        s,
        MakePromise(
            kind="callback", due_at=NOW + timedelta(hours=1), text="call you", department="care"
        ),
        NOW,
    )
    later = NOW + timedelta(days=2)
    told = [n for d in rules.due(s, later) for n in steps.deadline_passed(s, d, later)]
    assert [n.kind or n.to for n in told] == [
        "promise_broken",
        "care-boss@x",
        "hold_escalated",
        "billing-boss@x",
    ]
    assert promise.status == PromiseStatus.BROKEN and hold.escalations == 1


def test_cancel_undoes_payment_and_withdraws_only_the_engines_promises() -> None:
    s = order()
    s.payment = PaymentState.CAPTURED
    s.charged = s.total
    steps.start_delivery(s, NOW)
    care = promises.make_promise(
        s,
        MakePromise(
            kind="callback", due_at=NOW + timedelta(hours=1), text="call you", department="care"
        ),
        NOW,
    )
    holds.place_hold(
        s, PlaceHold(department="billing", reason_code="arrears", customer_message="Pay."), NOW
    )
    assert rules.accept_cancel(s, CancelOrder(by="customer", reason="changed mind"))
    assert not rules.accept_cancel(s, CancelOrder(by="customer", reason="again"))
    undo = steps.payment_undo(s)
    assert undo == PaymentCall.REFUND
    assert steps.payment_undone(s, undo) == "refunded 21.00"
    steps.close_cancelled(s, ["refunded 21.00"], NOW)
    assert s.status == OrderStatus.CANCELLED and s.refunded == Decimal("21.00")
    assert [h.status for h in s.holds] == [HoldStatus.RELEASED]
    assert care.status == PromiseStatus.OPEN
    assert s.promises[0].status == PromiseStatus.WITHDRAWN


def test_pickup_is_checked_against_the_order() -> None:
    s = order()
    with pytest.raises(WrongState, match="home delivery"):
        rules.check_pickup(s, CollectOrder(location="L-1"))
    s = order(pickup=True)
    with pytest.raises(WrongState, match="not ready for pickup"):
        rules.check_pickup(s, CollectOrder(location="L-1"))
    reservation.take_reservation(s, reserved(ReservationStatus.RESERVED))
    s.status = OrderStatus.READY_FOR_PICKUP
    with pytest.raises(WrongState, match="waits for collection at L-1"):
        rules.check_pickup(s, CollectOrder(location="L-2"))
    rules.check_pickup(s, CollectOrder(location="L-1"))


def test_the_placed_view_is_the_first_thing_the_workflow_records() -> None:
    v = steps.placed_view(order().input)
    assert v.status == "placed" and v.customer_emails == 1 and v.next_step == "reserving stock"
