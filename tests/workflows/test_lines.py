"""Orders of several lines: each line reserved on its own stock record, the customer told per
line, the lines shipped together once every one is reserved, and the order charged for all of
them at their placement prices."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from domain.carrier import CarrierEvent
from domain.errors import InvalidInput, NotFound
from domain.holds import PlaceHold, ReleaseHold
from domain.order import CancelOrder
from tests.conftest import FAST, Stack

CUSTOMER = "maria.lopez@example.com"
# The test store has 10 x PHONE-A5 (349.00), 200 x CASE-X12 and no PHONE-X12.
PHONE, CASE, OUT_OF_STOCK, ROUTER = "PHONE-A5", "CASE-X12", "PHONE-X12", "ROUTER-F1"


async def deliver(stack: Stack, order_id: str) -> None:
    await deliver_until_booked(stack, order_id)
    for event in ("picked-up", "delivered"):
        await stack.app.carrier_event(order_id, CarrierEvent(event=event))


async def deliver_until_booked(stack: Stack, order_id: str) -> None:
    await stack.until(
        order_id, lambda v: bool(v.deliveries) and v.deliveries[-1].status == "booked"
    )


async def on_hand(stack: Stack, sku: str) -> tuple[int, list[str]]:
    [record] = await stack.app.stock(stack.location, sku)
    return record.on_hand, [r.order_id for r in record.reserved + record.waitlist]


async def test_lines_in_stock_are_reserved_each_and_ship_together(stack: Stack) -> None:
    placed = await stack.place(lines=[(PHONE, 2), (CASE, 3)])
    oid = placed.order_id
    assert [(line.line, line.sku, line.qty) for line in placed.lines] == [
        (1, PHONE, 2),
        (2, CASE, 3),
    ]
    # Each line held stock on its own record until the goods left with the one delivery.
    booked = await stack.until(
        oid,
        lambda v: (
            [line.reservation.status for line in v.lines if line.reservation]
            == ["collected", "collected"]
        ),
    )
    assert booked.status == "shipping"
    assert len(booked.deliveries) == 1
    assert {line.delivery_id for line in booked.lines} == {booked.deliveries[0].delivery_id}
    assert await on_hand(stack, PHONE) == (8, [])
    assert await on_hand(stack, CASE) == (197, [])
    mails = await stack.mail_until(oid, lambda m: any("reserved" in x.subject for x in m))
    reserved = next(m for m in mails if "reserved" in m.subject)
    assert "your items are reserved" in reserved.subject
    assert "2 x A5" in reserved.body and "reserved for you" in reserved.body

    await deliver(stack, oid)
    done = await stack.until(oid, lambda v: v.status == "completed")
    expected = 2 * placed.lines[0].unit_price + 3 * placed.lines[1].unit_price
    assert done.total == expected and done.charged == expected
    assert done.totals is not None and done.totals.captured == expected
    assert [(e.kind, e.amount) for e in stack.ledger.entries(oid)] == [
        ("authorize", expected),
        ("capture", expected),
    ]
    assert {line.status for line in done.lines} == {"completed"}


async def test_a_line_out_of_stock_holds_the_order_until_its_stock_arrives(stack: Stack) -> None:
    placed = await stack.place(lines=[(PHONE, 1), (OUT_OF_STOCK, 1), (CASE, 1)])
    oid = placed.order_id
    waiting = await stack.until(oid, lambda v: v.status == "waitlisted")
    assert [line.reservation.status for line in waiting.lines if line.reservation] == [
        "reserved",
        "waitlisted",
        "reserved",
    ]
    assert waiting.lines[1].reservation and waiting.lines[1].reservation.position == 1
    told = await stack.mail_until(oid, lambda m: any("wait for stock" in x.subject for x in m))
    mail = next(m for m in told if "wait for stock" in m.subject)
    assert "1 of 3 items wait for stock" in mail.subject
    assert "out of stock, you are 1st in line" in mail.body
    assert not waiting.deliveries and waiting.payment == "none"
    # The engine's stock-date promise is the waiting line's.
    [promise] = [p for p in waiting.promises if p.kind == "stock_date"]
    assert promise.text.endswith("for X12 smartphone, 128 GB")

    await stack.app.receive_stock(stack.location, OUT_OF_STOCK, 1, f"DN-{oid}")
    shipped = await stack.until(
        oid,
        lambda v: all(
            line.reservation is not None and line.reservation.status == "collected"
            for line in v.lines
        ),
    )
    assert shipped.status == "shipping" and len(shipped.deliveries) == 1
    # The stock-date promise the order made while the line waited is kept.
    assert [p.status for p in shipped.promises if p.kind == "stock_date"] == ["kept"]
    await deliver(stack, oid)
    done = await stack.until(oid, lambda v: v.status == "completed")
    assert done.charged == done.total == sum(line.unit_price * line.qty for line in placed.lines)


async def test_cancelling_an_order_of_several_lines_gives_back_every_line(stack: Stack) -> None:
    placed = await stack.place(lines=[(PHONE, 1), (OUT_OF_STOCK, 1)])
    oid = placed.order_id
    await stack.until(oid, lambda v: v.status == "waitlisted")
    done = await stack.app.cancel(
        oid, CancelOrder(by="customer", actor="C-1001", reason="changed my mind")
    )
    assert "stock reservation released" in done.compensations
    assert await on_hand(stack, PHONE) == (10, [])
    assert await on_hand(stack, OUT_OF_STOCK) == (0, [])
    view = await stack.app.view(oid)
    assert view.status == "cancelled" and view.charged == 0
    assert [e.kind for e in stack.ledger.entries(oid)] == []


async def test_the_same_sku_twice_is_one_line(stack: Stack) -> None:
    placed = await stack.place(lines=[(CASE, 2), (PHONE, 1), (CASE, 3)])
    assert [(line.sku, line.qty) for line in placed.lines] == [(CASE, 5), (PHONE, 1)]


@pytest.mark.parametrize(
    ("lines", "error", "words"),
    [
        ([(PHONE, 1), ("NO-SUCH", 1)], NotFound, "line 2: unknown SKU 'NO-SUCH'"),
        ([(PHONE, 1), (CASE, 0)], InvalidInput, "line 2: quantity must be at least 1"),
        ([(CASE, 600), (CASE, 600)], InvalidInput, "adds up to 1200 units"),
        ([(f"SKU-{n}", 1) for n in range(51)], InvalidInput, "at most 50 lines (got 51)"),
    ],
    ids=["unknown-sku-on-line-2", "zero-quantity", "merged-over-1000", "51-lines"],
)
async def test_bad_lines_are_refused_naming_the_line(
    stack: Stack, lines: list[tuple[str, int]], error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=re.escape(words)):
        stack.order(lines=lines)


def billing_hold(**change: Any) -> PlaceHold:
    return PlaceHold(
        department="billing",
        actor="ana",
        reason_code="arrears",
        customer_message="Your account shows 19.00 unpaid.",
        **change,
    )


async def test_a_hold_on_one_line_stops_only_that_line(stack: Stack) -> None:
    store = stack.add_location({PHONE: 5, CASE: 5, ROUTER: 5})
    oid, hold = await stack.place_held(
        billing_hold(lines=[2]), lines=[(PHONE, 1), (CASE, 1), (ROUTER, 1)], location=store
    )
    view = await stack.until(
        oid,
        lambda v: (
            [line.reservation.status if line.reservation else None for line in v.lines]
            == ["reserved", None, "reserved"]
        ),
    )
    assert [line.blocked_by for line in view.lines] == [[], ["billing"], []]
    assert view.blocked_by == ["billing"] and view.holds[0].lines == [2]
    mails = await stack.mail_until(oid, lambda m: any("on hold" in x.subject for x in m))
    told = next(m for m in mails if "on hold" in m.subject)
    assert "has put part of your order (1 x X12 protective case" in told.body
    # The lines go together: nothing ships while one is held.
    await asyncio.sleep(0.5)
    held = await stack.app.view(oid)
    assert not held.deliveries and held.payment == "none"

    await stack.app.release_hold(
        oid, ReleaseHold(hold_id=hold.hold_id, department="billing", resolution="Paid.")
    )
    shipped = await stack.until(oid, lambda v: len(v.deliveries) == 1)
    assert all(line.reservation is not None for line in shipped.lines)
    assert [line.blocked_by for line in shipped.lines] == [[], [], []]


@pytest.mark.parametrize(
    ("lines", "error", "words"),
    [([9], NotFound, "has 2 lines; there is no line 9"), ([1, 1], InvalidInput, "named twice")],
    ids=["line-9-of-2", "line-twice"],
)
async def test_a_hold_on_lines_the_order_has_not_is_refused(
    stack: Stack, lines: list[int], error: type[Exception], words: str
) -> None:
    placed = await stack.place(lines=[(PHONE, 1), (OUT_OF_STOCK, 1)])
    await stack.until(placed.order_id, lambda v: v.status == "waitlisted")
    before = await stack.app.view(placed.order_id)
    with pytest.raises(error, match=words):
        await stack.app.place_hold(placed.order_id, billing_hold(lines=lines))
    assert await stack.app.view(placed.order_id) == before


async def test_a_lost_parcel_of_two_lines_is_reshipped_with_both(stack: Stack) -> None:
    placed = await stack.place(lines=[(PHONE, 1), (CASE, 2)])
    oid = placed.order_id
    await deliver_until_booked(stack, oid)
    await stack.app.carrier_event(oid, CarrierEvent(event="picked-up"))
    await stack.app.carrier_event(oid, CarrierEvent(event="lost"))
    # Both lines are reserved again, each on its own record, and go out in a second parcel.
    again = await stack.until(
        oid,
        lambda v: (
            len(v.deliveries) == 2
            and v.deliveries[-1].status == "booked"
            and all(line.reservation and line.reservation.status == "collected" for line in v.lines)
        ),
    )
    assert again.deliveries[0].status == "lost"
    assert {line.delivery_id for line in again.lines} == {2}
    assert await on_hand(stack, PHONE) == (8, [])
    assert await on_hand(stack, CASE) == (196, [])
    await deliver(stack, oid)
    done = await stack.until(oid, lambda v: v.status == "completed")
    assert done.charged == done.total
    assert [(e.kind, e.amount) for e in stack.ledger.entries(oid)] == [
        ("authorize", placed.total),
        ("capture", placed.total),
    ]


async def test_a_lost_parcel_of_two_lines_is_refunded_for_both(stack: Stack) -> None:
    placed = await stack.place(
        lines=[(PHONE, 1), (CASE, 2)], policy=FAST.model_copy(update={"lost_action": "refund"})
    )
    oid = placed.order_id
    await deliver_until_booked(stack, oid)
    await stack.app.carrier_event(oid, CarrierEvent(event="picked-up"))
    await stack.app.carrier_event(oid, CarrierEvent(event="lost"))
    view = await stack.until(oid, lambda v: v.status == "cancelled")
    assert view.payment == "voided" and view.charged == 0
    assert view.totals is not None and view.totals.voided == placed.total
    assert [(e.kind, e.amount) for e in stack.ledger.entries(oid)] == [
        ("authorize", placed.total),
        ("void", placed.total),
    ]
