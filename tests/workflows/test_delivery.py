"""Partner deliveries held to evidence: unverified attempts do not count, the customer can
reschedule or redirect, silence opens a trace, a lost parcel is re-shipped exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.carrier import CarrierEvent
from domain.delivery import Redirect, Reschedule
from domain.errors import OrderflowError
from domain.registry import Policy
from tests.conftest import FAST, Stack

CUSTOMER = "maria.lopez@example.com"
AT_THE_DOOR = "40.7129,-74.0061"  # a few metres from C-1001's address


async def booked(stack: Stack, **kw: object) -> str:
    placed, _ = await stack.app.place_order(stack.order(**kw))
    oid = placed.order_id
    await stack.until(oid, lambda v: bool(v.deliveries) and v.deliveries[-1].status == "booked")
    return oid


def attempt(**evidence: str) -> CarrierEvent:
    return CarrierEvent(event="attempted", evidence=evidence, reason="no answer")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


async def test_attempt_without_evidence_is_unverified_and_not_counted(stack: Stack) -> None:
    oid = await booked(stack, policy=FAST.model_copy(update={"attempt_limit": 1}))
    await stack.app.carrier_event(oid, CarrierEvent(event="picked-up"))
    result = await stack.app.carrier_event(oid, attempt())
    assert result.verified is False and "photo" in result.note
    far = await stack.app.carrier_event(
        oid, attempt(photo="IMG_9.jpg", gps="41.0,-75.0", time=now_iso())
    )
    assert far.verified is False and "gps near the address" in far.note
    # Two unverified attempts with a limit of one: still out for delivery, not returned.
    view = await stack.until(oid, lambda v: len(v.deliveries[-1].attempts) == 2)
    assert view.status == "in_transit" and view.deliveries[-1].status == "attempted"
    assert [a.verified for a in view.deliveries[-1].attempts] == [False, False]
    mails = await stack.mail_until(
        oid, lambda m: sum("could not verify" in x.subject for x in m) == 2, to=CUSTOMER
    )
    assert "do not count it against you" in mails[-1].body
    card = next(c for c in await stack.app.scorecard() if c["carrier_id"] == "ups")
    assert card["unverified_attempts"] >= 2


async def test_verified_attempts_reaching_the_limit_return_to_sender(stack: Stack) -> None:
    oid = await booked(stack, policy=FAST.model_copy(update={"attempt_limit": 2}))
    await stack.app.carrier_event(oid, CarrierEvent(event="picked-up"))
    for n in range(2):
        r = await stack.app.carrier_event(
            oid,
            CarrierEvent(
                event="attempted",
                evidence={"photo": f"IMG_{n}.jpg", "gps": AT_THE_DOOR, "time": now_iso()},
                event_id=f"att-{n}",
            ),
        )
        assert r.verified is True
    view = await stack.until(oid, lambda v: v.status == "cancelled")
    assert view.deliveries[-1].status == "returned" and view.payment == "voided"
    mails = await stack.mail_until(
        oid, lambda m: any("returned to us" in x.subject for x in m), to=CUSTOMER
    )
    assert any("returned to us" in m.subject for m in mails)


async def test_customer_reschedules_and_redirects(stack: Stack) -> None:
    oid = await booked(stack)
    start = datetime.now(UTC) + timedelta(hours=20)
    updated = await stack.app.reschedule(
        oid, Reschedule(window_start=start, window_end=start + timedelta(hours=4))
    )
    assert updated.window_end == start + timedelta(hours=4)
    # The delivery has the new window at once; the order's promise follows when the order
    # applies the delivery's report (the view shows the delivery's own state sooner).
    view = await stack.until(
        oid,
        lambda v: (
            [p.due_at for p in v.promises if p.kind == "delivery_window" and p.status == "open"]
            == [start + timedelta(hours=4)]
        ),
    )
    assert view.deliveries[-1].window_end == start + timedelta(hours=4)
    redirected = await stack.app.redirect(oid, Redirect(pickup_point="Kiosk 12, Central Station"))
    assert redirected.pickup_point == "Kiosk 12, Central Station"
    mails = await stack.mail_until(
        oid, lambda m: any("pickup point" in x.subject for x in m), to=CUSTOMER
    )
    assert any("new delivery window" in m.subject for m in mails)
    with pytest.raises(OrderflowError, match="must end after it starts"):
        await stack.app.reschedule(
            oid, Reschedule(window_start=start, window_end=start - timedelta(hours=1))
        )


async def test_out_of_order_refused_and_duplicates_answered_with_first_result(stack: Stack) -> None:
    oid = await booked(stack)
    with pytest.raises(OrderflowError, match=r"out of order.*picked up first"):
        await stack.app.carrier_event(oid, CarrierEvent(event="delivered"))
    first = await stack.app.carrier_event(oid, CarrierEvent(event="picked-up"))
    again = await stack.app.carrier_event(oid, CarrierEvent(event="picked-up"))
    assert again.duplicate and again.status == first.status == "picked_up"
    scan = await stack.app.carrier_event(
        oid, CarrierEvent(event="scan", location="Hub A", event_id="s-1")
    )
    scan_again = await stack.app.carrier_event(
        oid, CarrierEvent(event="scan", location="Hub A", event_id="s-1")
    )
    assert scan_again.duplicate and scan_again.status == scan.status
    await stack.app.carrier_event(oid, CarrierEvent(event="delivered"))
    await stack.until(oid, lambda v: v.status == "completed")
    with pytest.raises(OrderflowError, match="already delivered"):
        await stack.app.carrier_event(oid, CarrierEvent(event="scan", location="Hub B"))
    # The customer heard of the shipment once, at booking; the repeated pickup is on the
    # order's timeline once.
    shipped = [m for m in stack.mail(oid, CUSTOMER) if "shipped with" in m.subject]
    assert len(shipped) == 1
    kinds = [e.kind for e in await stack.app.timeline(oid)]
    assert kinds.count("picked_up") == 1 and kinds.count("scanned") == 1


async def test_silence_opens_a_trace_then_lost_reships_exactly_once(stack: Stack) -> None:
    policy = FAST.model_copy(
        update={"scan_sla": timedelta(seconds=1), "lost_after": timedelta(seconds=2)}
    )
    oid = await booked(stack, policy=policy)
    await stack.app.carrier_event(oid, CarrierEvent(event="picked-up"))
    view = await stack.until(
        oid, lambda v: len(v.deliveries) == 2 and v.deliveries[-1].status == "booked", timeout=20
    )
    assert view.deliveries[0].status == "lost"
    mails = await stack.mail_until(
        oid, lambda m: any("shipped with" in x.subject for x in m[-1:]), to=CUSTOMER
    )
    assert sum("tracing your parcel" in m.subject for m in mails) == 1
    assert sum("was lost" in m.subject for m in mails) == 1
    # The replacement goes out; the first delivery's window promise is withdrawn, not broken.
    assert [p.status for p in view.promises if p.kind == "delivery_window"] == ["withdrawn", "open"]
    for event in ("picked-up", "delivered"):
        await stack.app.carrier_event(oid, CarrierEvent(event=event))
    view = await stack.until(oid, lambda v: v.status == "completed")
    assert [e.kind for e in stack.ledger.entries(oid)] == ["authorize", "capture"]
    assert view.charged == view.total


async def test_lost_with_refund_policy_refunds_once(stack: Stack) -> None:
    policy = FAST.model_copy(update={"lost_action": "refund"})
    oid = await booked(stack, policy=policy)
    await stack.app.carrier_event(oid, CarrierEvent(event="picked-up"))
    await stack.app.carrier_event(oid, CarrierEvent(event="lost"))
    view = await stack.until(oid, lambda v: v.status == "cancelled")
    assert view.payment == "voided" and len(view.deliveries) == 1
    mails = await stack.mail_until(
        oid, lambda m: any("was lost" in x.subject for x in m), to=CUSTOMER
    )
    assert sum("was lost" in m.subject for m in mails) == 1


def test_fast_policy_is_a_policy() -> None:
    assert isinstance(FAST, Policy)
