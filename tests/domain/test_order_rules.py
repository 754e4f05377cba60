"""The order's rules, without Temporal: microseconds per case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from domain import holds, promises
from domain import order as rules
from domain.base import MAX_CUSTOMER_EMAILS
from domain.durations import format_duration, parse_duration, parse_time
from domain.errors import InvalidInput, LimitReached, NotAllowed, NotFound, WrongState
from domain.holds import DisputeHold, PlaceHold, ReleaseHold
from domain.order import CancelOrder, OrderLine, OrderStatus, PlaceOrderInput
from domain.promises import KeepPromise, MakePromise
from domain.registry import Customer, Department, Policy
from domain.steps import Step
from domain.view import order_view

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
BILLING = Department(
    department="billing",
    name="Billing",
    notify_email="b@x",
    supervisor="Dana",
    supervisor_email="d@x",
    hold_sla=timedelta(hours=24),
    reason_codes={"arrears": "an unpaid balance"},
)


def state() -> rules.OrderState:
    inp = PlaceOrderInput(
        order_id="O-1",
        customer=Customer(customer_id="C-1", name="Ann", email="ann@example.com"),
        lines=[OrderLine(sku="S-1", qty=2, unit_price=Decimal("10.50"))],
        location="L-1",
        placed_at=NOW,
        departments=[BILLING],
    )
    return rules.OrderState(input=inp)


def hold(**kw: object) -> PlaceHold:
    fields = {
        "department": "billing",
        "reason_code": "arrears",
        "customer_message": "Please pay.",
        "reference": "R1",
    }
    fields.update(kw)
    return PlaceHold.model_validate(fields)


def test_price_is_captured_at_placement() -> None:
    assert state().total == Decimal("21.00")


def test_hold_gets_an_sla_from_its_department_and_blocks() -> None:
    s = state()
    h = holds.place_hold(s, hold(), NOW)
    assert h.hold_id == "H1" and h.sla_due_at == NOW + timedelta(hours=24)
    assert s.blocked and s.blocked_by == ["billing"]
    assert rules.next_deadline(s) == h.sla_due_at


@pytest.mark.parametrize(
    ("cmd", "error"),
    [
        (hold(department="x"), NotFound),
        (hold(reason_code="fraud"), InvalidInput),
        (hold(customer_message=" "), InvalidInput),
        (hold(amount=Decimal("-1")), InvalidInput),
    ],
)
def test_incomplete_holds_are_refused(cmd: PlaceHold, error: type[Exception]) -> None:
    s = state()
    with pytest.raises(error):
        holds.check_place_hold(s, cmd)
    assert s.holds == []


def test_finished_order_takes_no_hold() -> None:
    s = state()
    s.status = OrderStatus.COMPLETED
    with pytest.raises(WrongState):
        holds.check_place_hold(s, hold())


def test_an_order_that_has_mailed_its_customer_enough_takes_no_more_holds_or_promises() -> None:
    s = state()
    s.emails_sent = MAX_CUSTOMER_EMAILS
    with pytest.raises(LimitReached, match="500 times"):
        holds.check_hold_limits(s)
    promise = MakePromise(
        kind="callback", due_at=NOW + timedelta(hours=2), text="t", department="billing"
    )
    with pytest.raises(LimitReached):
        promises.check_promise_limits(s, promise, NOW)
    s.emails_sent = MAX_CUSTOMER_EMAILS - 1
    holds.check_hold_limits(s)


def test_a_hold_on_a_parcel_with_the_carrier_stops_the_capture_not_the_booking() -> None:
    s = state()
    s.step = Step.BOOK_CARRIER
    s.status = OrderStatus.IN_TRANSIT
    h = holds.place_hold(s, hold(), NOW)
    assert h.blocked_step == Step.CAPTURE_PAYMENT
    assert "then capture payment" in order_view(s).next_step


def test_release_only_by_department_or_supervisor() -> None:
    s = state()
    h = holds.place_hold(s, hold(), NOW)
    with pytest.raises(NotAllowed, match="Dana"):
        holds.check_release_hold(
            s, ReleaseHold(hold_id=h.hold_id, department="care", actor="x", resolution="r")
        )
    holds.release_hold(
        s, ReleaseHold(hold_id=h.hold_id, department="care", actor="Dana", resolution="ok"), NOW
    )
    assert not s.blocked


def test_dispute_shortens_sla_and_escalation_moves_it() -> None:
    s = state()
    h = holds.place_hold(s, hold(), NOW)
    holds.dispute_hold(s, DisputeHold(hold_id=h.hold_id, customer_message="wrong"), NOW)
    assert h.sla_due_at == NOW + Policy().dispute_sla
    holds.escalate_hold(s, h, h.sla_due_at)
    assert h.escalations == 1 and h.sla_due_at == NOW + 2 * Policy().dispute_sla


def test_promises_are_deadlines_and_due_ones_are_found() -> None:
    s = state()
    p = promises.make_promise(
        s,
        MakePromise(
            kind="callback", due_at=NOW + timedelta(hours=1), text="call", department="billing"
        ),
        NOW,
    )
    assert rules.due(s, NOW) == []
    assert [d.ref for d in rules.due(s, NOW + timedelta(hours=1))] == [p.promise_id]
    with pytest.raises(InvalidInput, match="past"):
        promises.check_make_promise(
            s, MakePromise(kind="callback", due_at=NOW, text="x", department="billing"), NOW
        )
    promises.keep_promise(s, p, NOW, by="me")
    with pytest.raises(WrongState):
        promises.check_keep_promise(s, KeepPromise(promise_id=p.promise_id))
    assert rules.next_deadline(s) is None


def test_department_cancel_needs_a_customer_message() -> None:
    s = state()
    with pytest.raises(InvalidInput):
        rules.check_cancel(s, CancelOrder(by="billing", reason="fraud"))
    rules.check_cancel(s, CancelOrder(by="customer", reason="changed mind"))


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("4h", 14400), ("2d", 172800)]
)
def test_durations_read_as_people_write_them(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds
    assert format_duration(parse_duration(text)) == text


def test_bad_durations_and_times_are_refused() -> None:
    for bad in ("", "10", "-5m", "0s", "abc"):
        with pytest.raises(InvalidInput):
            parse_duration(bad)
    with pytest.raises(InvalidInput):
        parse_time("yesterday", now=NOW)
    assert parse_time("2h", now=NOW) == NOW + timedelta(hours=2)
    assert parse_time("2026-12-01T17:00:00", now=NOW).tzinfo is not None


def test_policy_scales_every_duration() -> None:
    fast = Policy().scaled(3600)
    assert fast.scan_sla == timedelta(days=2) / 3600 and fast.attempt_limit == 3


def test_a_retried_hold_after_its_release_is_the_same_hold() -> None:
    s = state()
    h = holds.place_hold(s, hold(reference="INV-9"), NOW)
    holds.release_hold(
        s, ReleaseHold(hold_id=h.hold_id, department="billing", actor="a", resolution="paid"), NOW
    )
    assert holds.existing_hold(s, hold(reference="INV-9")) is h
    assert holds.existing_hold(s, hold(reference="INV-10")) is None
