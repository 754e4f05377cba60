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
