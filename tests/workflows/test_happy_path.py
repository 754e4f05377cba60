"""An order runs end to end on the real server: reserve, authorize, ship, deliver, capture."""

from __future__ import annotations

from domain.models import CarrierEvent
from tests.conftest import Stack


async def deliver(stack: Stack, order_id: str) -> None:
    await stack.until(
        order_id, lambda v: bool(v.deliveries) and v.deliveries[-1].status == "booked"
    )
    for event in ("picked-up", "delivered"):
        await stack.app.carrier_event(order_id, CarrierEvent(event=event))


async def test_order_is_delivered_charged_once_and_customer_told_each_step(stack: Stack) -> None:
    placed = await stack.place(sku="PHONE-A5", qty=2)
    oid = placed.order_id
    await deliver(stack, oid)
    view = await stack.until(oid, lambda v: v.status == "completed")

    assert view.total == 2 * 349 and view.charged == view.total
    assert view.payment == "captured"
    assert view.reservation is not None and view.reservation.status == "collected"
    assert view.deliveries[0].status == "delivered" and view.deliveries[0].tracking.startswith(
        "UPS"
    )
    assert [p.status for p in view.promises if p.kind == "delivery_window"] == ["kept"]

    kinds = [e.kind for e in await stack.app.timeline(oid)]
    assert kinds == [
        "placed",
        "reserved",
        "payment",
        "booked",
        "picked_up",
        "delivered",
        "completed",
    ]
    # The pickup is on the timeline; the customer already has the tracking number from the
    # booking e-mail, so it brings no e-mail of its own.
    mails = await stack.mail_until(oid, lambda m: len(m) == 6, to="maria.lopez@example.com")
    assert [m.subject.split(": ")[-1] for m in mails[3:]] == [
        "shipped with UPS",
        "delivered",
        "complete",
    ]
    assert len({m.message_id for m in mails}) == 6

    entries = stack.ledger.entries(oid)
    assert [(e.kind, float(e.amount)) for e in entries] == [
        ("authorize", 698.0),
        ("capture", 698.0),
    ]


async def test_repeated_place_with_same_id_returns_the_existing_order(stack: Stack) -> None:
    inp = stack.order()
    first, created = await stack.app.place_order(inp)
    again, created_again = await stack.app.place_order(inp)
    assert created and not created_again
    assert again.order_id == first.order_id and again.placed_at == first.placed_at
    # Leave the order at rest (booked, waiting for the carrier) before the worker stops.
    await stack.until(
        inp.order_id, lambda v: bool(v.deliveries) and v.deliveries[-1].status == "booked"
    )


async def test_visibility_finds_orders_by_status_and_customer(stack: Stack) -> None:
    placed = await stack.place(customer="C-1004")
    await stack.until(placed.order_id, lambda v: v.status == "shipping")
    found = await stack.until_listed(customer="C-1004", status="shipping", order_id=placed.order_id)
    assert found.customer_id == "C-1004"
