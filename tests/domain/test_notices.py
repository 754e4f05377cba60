"""Who hears of what, and the words they read: the customer first, every time."""

from __future__ import annotations

from datetime import timedelta

from domain import holds, messages, notices, promises
from domain.holds import DisputeHold, PlaceHold
from domain.notices import notification_key
from domain.order import OrderState
from domain.promises import MakePromise
from domain.steps import Step
from tests.domain.factories import NOW, order


def place(step: Step, department: str = "billing") -> tuple[OrderState, holds.Hold]:
    s = order()
    s.step = step
    cmd = PlaceHold(department=department, reason_code="arrears", customer_message="Please pay.")
    return s, holds.place_hold(s, cmd, NOW)


def test_a_hold_tells_the_customer_then_the_department_whose_step_it_blocks() -> None:
    s, hold = place(Step.BOOK_CARRIER)
    told = notices.hold_placed(s, hold)
    assert told[0].kind == "hold_placed" and told[0].to_customer
    assert told[1].to == "fulfilment@x" and not told[1].to_customer
    assert "Please pay." in told[0].mail[1]


def test_a_dispute_reaches_the_department_and_its_supervisor() -> None:
    s, hold = place(Step.RESERVE_STOCK)
    holds.dispute_hold(s, DisputeHold(hold_id=hold.hold_id, customer_message="Paid!"), NOW)
    told = notices.hold_disputed(s, hold)
    assert [n.kind or n.to for n in told] == ["hold_disputed", "billing@x", "billing-boss@x"]
    assert told[1].mail == told[2].mail


def test_a_broken_promise_apologises_and_pages_the_supervisor() -> None:
    s = order()
    promise = promises.make_promise(
        s,
        MakePromise(
            kind="callback", due_at=NOW + timedelta(hours=1), text="call you", department="care"
        ),
        NOW,
    )
    promises.break_promise(promise, NOW + timedelta(hours=1))
    customer, supervisor = notices.promise_broken(s, promise)
    assert customer.kind == "promise_broken" and "we did not" in customer.mail[1]
    assert supervisor.to == "care-boss@x" and supervisor.mail[0].startswith("BROKEN PROMISE P1")


def test_every_step_has_an_owner_told_of_holds_on_it() -> None:
    assert {step.owner for step in Step} <= {"stock", "billing", "fulfilment"}


def test_e_mail_keys_tell_a_retry_from_a_different_message() -> None:
    a = notification_key("order-O-1", 1, "ann@x", "Hi", "body")
    assert a == notification_key("order-O-1", 1, "ann@x", "Hi", "body")
    assert a != notification_key("order-O-1", 1, "ann@x", "Hi", "other body")
    assert a.startswith("order-O-1.1.")


def test_the_timeline_shows_the_body_without_greeting_and_footer() -> None:
    s = order()
    subject, body = messages.order_placed(s)
    assert subject == "Order O-1 received"
    assert messages.summary(body).startswith("We have your order:")
    assert "Order O-1" not in messages.summary(body).splitlines()[-1][-10:]


def test_every_delivery_report_has_words_or_is_only_recorded() -> None:
    from domain import fulfilment
    from domain.delivery import DeliveryReport, DeliveryStatus, ReportKind

    s = order()
    fulfilment.start_delivery(s, NOW)
    said = {}
    for kind in ReportKind:
        report = DeliveryReport(
            delivery_id=1, kind=kind, at=NOW, status=DeliveryStatus.IN_TRANSIT, verified=True
        )
        said[kind] = messages.delivery_event(s, report, "Fast Parcels")
    # The order says what it does about a lost parcel in its own e-mail; a missed window is a
    # broken promise, told as one; a scan is only recorded.
    assert {k for k, mail in said.items() if mail is None} == {
        ReportKind.LOST,
        ReportKind.WINDOW_MISSED,
        ReportKind.SCANNED,
    }
    booked = said[ReportKind.BOOKED]
    assert booked is not None and "Fast Parcels" in booked[0]


def test_a_customer_cancel_says_you_and_a_department_cancel_names_it() -> None:
    from domain.order import CancelOrder

    s = order()
    s.cancel = CancelOrder(by="customer", reason="changed mind")
    assert "You cancelled the order (changed mind)." in messages.cancelled(s, "customer", "")[1]
    assert "billing cancelled" in messages.cancelled(s, "billing", "Sorry.")[1]
