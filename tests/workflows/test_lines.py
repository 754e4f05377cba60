"""Orders of several lines: each line reserved on its own stock record, the customer told per
line; what is reserved ships now and the rest as it arrives (``ship=available``), or everything
in one delivery once every line is reserved (``complete``); each delivery captured for the lines
it handed over, at their placement prices."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from domain.carrier import CarrierEvent
from domain.errors import InvalidInput, NotFound, WrongState
from domain.holds import PlaceHold, ReleaseHold
from domain.ids import order_workflow_id
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
    assert {line.status for line in done.lines} == {"delivered"}


async def test_ship_available_ships_what_is_reserved_now_and_the_rest_when_it_arrives(
    stack: Stack,
) -> None:
    store = stack.add_location({PHONE: 5, CASE: 5, ROUTER: 5})
    await stack.app.adjust_stock(store, ROUTER, 0, "count found none")
    placed = await stack.place(lines=[(PHONE, 1), (CASE, 2), (ROUTER, 1)], location=store)
    oid = placed.order_id
    prices = [line.unit_price * line.qty for line in placed.lines]
    # The two reserved lines leave at once, in one parcel; the router waits in its line.
    first = await stack.until(oid, lambda v: bool(v.deliveries))
    assert first.deliveries[0].lines == [1, 2]
    assert [line.delivery_id for line in first.lines] == [1, 1, None]
    assert first.lines[2].status == "waitlisted" and first.payment == "authorized"
    mails = await stack.mail_until(oid, lambda m: any("shipped with" in x.subject for x in m))
    waits = next(m for m in mails if "wait for stock" in m.subject)
    assert "1 of 3 items wait for stock" in waits.subject
    assert "What is reserved ships now" in waits.body
    shipped = next(m for m in mails if "shipped with" in m.subject)
    assert "2 x X12 protective case" in shipped.subject
    assert "Then 1 x F1 home-fibre router follows in a later delivery" in shipped.body
    await deliver(stack, oid)
    part = await stack.until(oid, lambda v: v.status == "partly_delivered")
    assert [line.status for line in part.lines] == ["delivered", "delivered", "waitlisted"]
    assert part.charged == prices[0] + prices[1]
    # A delivered line is a return's; the order as a whole is no longer cancelled at once.
    for line, words in ((1, "line 1 was delivered; use a return"), (None, "partly delivered")):
        with pytest.raises(WrongState, match=words):
            await stack.app.cancel(
                oid, CancelOrder(by="customer", actor="C-1001", reason="x", line=line)
            )
    assert await stack.app.view(oid) == part

    await stack.app.receive_stock(store, ROUTER, 1, f"DN-{oid}")
    second = await stack.until(oid, lambda v: len(v.deliveries) == 2)
    assert second.deliveries[1].lines == [3]
    assert [p.status for p in second.promises if p.kind == "stock_date"] == ["kept"]
    mails = await stack.mail_until(oid, lambda m: any("stock arrived" in x.subject for x in m))
    assert any("F1 home-fibre router" in m.subject for m in mails if "stock arrived" in m.subject)
    await deliver(stack, oid)
    done = await stack.until(oid, lambda v: v.status == "completed")
    assert done.charged == placed.total
    assert done.totals is not None and done.totals.captured == placed.total
    entries = stack.ledger.entries(oid)
    assert [(e.kind, e.amount) for e in entries] == [
        ("authorize", placed.total),
        ("capture", prices[0] + prices[1]),
        ("capture", prices[2]),
    ]
    assert [e.key.rsplit(".", 1)[1] for e in entries[1:]] == ["c-delivery-1", "c-delivery-2"]


async def test_ship_complete_holds_every_line_until_the_last_one_is_reserved(
    stack: Stack,
) -> None:
    placed = await stack.place(lines=[(PHONE, 1), (OUT_OF_STOCK, 1), (CASE, 1)], ship="complete")
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
    # The total is authorized at placement; nothing leaves the store.
    assert not waiting.deliveries and waiting.payment == "authorized"
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
    assert shipped.deliveries[0].lines == [1, 2, 3]
    # The stock-date promise the order made while the line waited is kept.
    assert [p.status for p in shipped.promises if p.kind == "stock_date"] == ["kept"]
    await deliver(stack, oid)
    done = await stack.until(oid, lambda v: v.status == "completed")
    assert done.charged == done.total == sum(line.unit_price * line.qty for line in placed.lines)


async def test_cancelling_an_order_of_several_lines_gives_back_every_line(stack: Stack) -> None:
    placed = await stack.place(lines=[(PHONE, 1), (OUT_OF_STOCK, 1)], ship="complete")
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
    assert [e.kind for e in stack.ledger.entries(oid)] == ["authorize", "void"]


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


@pytest.mark.parametrize("ship", ["available", "complete"])
async def test_a_line_cancelled_while_it_waits_is_voided_alone(stack: Stack, ship: str) -> None:
    placed = await stack.place(lines=[(PHONE, 1), (OUT_OF_STOCK, 1), (CASE, 1)], ship=ship)
    oid = placed.order_id
    await stack.until(oid, lambda v: v.lines[1].status == "waitlisted" and v.payment != "none")
    done = await stack.app.cancel(
        oid, CancelOrder(by="customer", actor="C-1001", reason="found it elsewhere", line=2)
    )
    waited = placed.lines[1].unit_price
    assert done.compensations == [
        "line 2: stock reservation released",
        f"line 2: {waited:.2f} voided",
    ]
    # The two lines left go on (under ``complete``, at once: nothing waits any more).
    shipped = await stack.until(
        oid,
        lambda v: (
            bool(v.deliveries)
            and all(
                line.reservation and line.reservation.status == "collected" for line in v.lines[::2]
            )
        ),
    )
    assert shipped.deliveries[0].lines == [1, 3]
    assert [line.status for line in shipped.lines][1] == "cancelled"
    assert await on_hand(stack, OUT_OF_STOCK) == (0, [])
    assert [p.status for p in shipped.promises if p.kind == "stock_date"] == ["withdrawn"]
    mails = await stack.mail_until(oid, lambda m: any("line 2 cancelled" in x.subject for x in m))
    told = next(m for m in mails if "line 2 cancelled" in m.subject)
    assert "Nothing is charged for it" in told.body
    assert not any("stock arrived" in m.subject for m in mails)
    await deliver(stack, oid)
    complete = await stack.until(oid, lambda v: v.status == "completed")
    kept = placed.lines[0].unit_price + placed.lines[2].unit_price
    assert complete.total == placed.total and complete.charged == kept
    assert complete.totals is not None and complete.totals.captured == kept
    assert complete.totals.voided == waited
    entries = stack.ledger.entries(oid)
    assert [(e.kind, e.amount) for e in entries] == [
        ("authorize", placed.total),
        ("void", waited),
        ("capture", kept),
    ]
    assert entries[1].key.endswith("void-line-2")


async def test_a_line_cancelled_after_payment_is_voided_alone(stack: Stack) -> None:
    """A store-pickup order waits for its customer with its payment authorized: cancelling one
    line voids that line's amount, under its own key, and the collection captures the rest."""
    placed = await stack.place(lines=[(PHONE, 1), (CASE, 2)], pickup=True)
    oid = placed.order_id
    await stack.until(oid, lambda v: v.status == "ready_for_pickup")
    case_amount = placed.lines[1].unit_price * 2
    done = await stack.app.cancel(
        oid, CancelOrder(by="customer", actor="C-1001", reason="not needed", line=2)
    )
    assert done.compensations == [
        "line 2: stock reservation released",
        f"line 2: {case_amount:.2f} voided",
    ]
    assert await on_hand(stack, CASE) == (200, [])
    await stack.app.pickup(oid, stack.location)
    complete = await stack.until(oid, lambda v: v.status == "completed")
    phone = placed.lines[0].unit_price
    assert complete.charged == phone
    assert complete.totals is not None and complete.totals.voided == case_amount
    entries = stack.ledger.entries(oid)
    assert [(e.kind, e.amount) for e in entries] == [
        ("authorize", placed.total),
        ("void", case_amount),
        ("capture", phone),
    ]
    assert entries[1].key.endswith("void-line-2")


async def test_line_cancels_that_cannot_be_are_refused_and_change_nothing(stack: Stack) -> None:
    placed = await stack.place(lines=[(PHONE, 1), (OUT_OF_STOCK, 1), (CASE, 1)])
    oid = placed.order_id
    await stack.until(oid, lambda v: v.lines[1].status == "waitlisted")
    await stack.quiet(order_workflow_id(oid))
    before = await stack.app.view(oid)

    def cancel(line: int) -> CancelOrder:
        return CancelOrder(by="customer", actor="C-1001", reason="x", line=line)

    with pytest.raises(NotFound, match="has 3 lines; there is no line 9"):
        await stack.app.cancel(oid, cancel(9))
    with pytest.raises(NotFound, match="there is no line 0"):
        await stack.app.cancel(oid, cancel(0))
    assert await stack.app.view(oid) == before
    await stack.app.cancel(oid, cancel(2))
    with pytest.raises(WrongState, match=r"order \S+'s line 2 is already cancelled"):
        await stack.app.cancel(oid, cancel(2))
    # Once the goods have left the store, a line is the carrier's.
    await deliver_until_booked(stack, oid)
    with pytest.raises(WrongState, match="line 1 has left the store with delivery 1"):
        await stack.app.cancel(oid, cancel(1))


async def test_cancelling_the_last_open_line_cancels_the_order(stack: Stack) -> None:
    placed = await stack.place(lines=[(OUT_OF_STOCK, 1), (PHONE, 1)], ship="complete")
    oid = placed.order_id
    await stack.until(oid, lambda v: v.status == "waitlisted")
    first = await stack.app.cancel(
        oid, CancelOrder(by="customer", actor="C-1001", reason="x", line=2)
    )
    assert first.compensations[0] == "line 2: stock reservation released"
    last = await stack.app.cancel(
        oid, CancelOrder(by="customer", actor="C-1001", reason="x", line=1)
    )
    assert "stock reservation released" in last.compensations
    view = await stack.app.view(oid)
    assert view.status == "cancelled" and view.charged == 0
    assert await on_hand(stack, OUT_OF_STOCK) == (0, [])
    assert await on_hand(stack, PHONE) == (10, [])


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
    # The other lines are reserved and leave; line 2 is neither reserved nor shipped.
    first = await stack.until(oid, lambda v: bool(v.deliveries))
    assert first.deliveries[0].lines == [1, 3]
    assert first.lines[1].reservation is None and first.lines[1].blocked_by == ["billing"]
    await stack.app.release_hold(
        oid, ReleaseHold(hold_id=hold.hold_id, department="billing", resolution="Paid.")
    )
    await deliver(stack, oid)
    second = await stack.until(oid, lambda v: len(v.deliveries) == 2)
    assert second.deliveries[1].lines == [2]
    await deliver(stack, oid)
    done = await stack.until(oid, lambda v: v.status == "completed")
    assert done.charged == done.total


async def test_a_hold_on_the_whole_order_stops_every_line_then_they_ship_together(
    stack: Stack,
) -> None:
    oid, hold = await stack.place_held(billing_hold(), lines=[(PHONE, 1), (CASE, 1)])
    held = await stack.until(oid, lambda v: v.blocked_by == ["billing"])
    assert [line.reservation for line in held.lines] == [None, None]
    assert [line.blocked_by for line in held.lines] == [["billing"], ["billing"]]
    await stack.app.release_hold(
        oid, ReleaseHold(hold_id=hold.hold_id, department="billing", resolution="Paid.")
    )
    shipped = await stack.until(oid, lambda v: bool(v.deliveries))
    assert shipped.deliveries[0].lines == [1, 2]
    mails = await stack.mail_until(oid, lambda m: any("shipped with" in x.subject for x in m))
    assert any("your items are reserved" in m.subject for m in mails)


async def test_under_ship_complete_a_hold_on_one_line_stops_the_shipment(stack: Stack) -> None:
    store = stack.add_location({PHONE: 5, CASE: 5, ROUTER: 5})
    oid, hold = await stack.place_held(
        billing_hold(lines=[2]),
        lines=[(PHONE, 1), (CASE, 1), (ROUTER, 1)],
        location=store,
        ship="complete",
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
    assert not held.deliveries

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
    await stack.until(placed.order_id, lambda v: v.lines[1].status == "waitlisted")
    # The order settles first (its first line's payment, its e-mails), so what it looks like
    # after the refusal is what the refusal left.
    await stack.quiet(order_workflow_id(placed.order_id))
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


async def test_a_lost_parcel_voids_exactly_the_lines_it_carried(stack: Stack) -> None:
    """Lost with a refund policy while a third line waits: the two lines the parcel carried are
    voided, the waiting line still ships when its stock arrives and is the only one charged."""
    placed = await stack.place(
        lines=[(PHONE, 1), (CASE, 2), (OUT_OF_STOCK, 1)],
        policy=FAST.model_copy(update={"lost_action": "refund"}),
    )
    oid = placed.order_id
    await deliver_until_booked(stack, oid)
    await stack.app.carrier_event(oid, CarrierEvent(event="picked-up"))
    await stack.app.carrier_event(oid, CarrierEvent(event="lost"))
    lost = await stack.until(oid, lambda v: v.lines[0].status == "lost")
    assert [line.status for line in lost.lines] == ["lost", "lost", "waitlisted"]
    carried = placed.lines[0].unit_price + 2 * placed.lines[1].unit_price
    assert lost.totals is not None and lost.totals.voided == carried
    mails = await stack.mail_until(oid, lambda m: any("was lost" in x.subject for x in m))
    told = next(m for m in mails if "was lost" in m.subject)
    assert f"The {carried:.2f} authorized for it is released" in told.body
    with pytest.raises(WrongState, match="line 1 was lost by the carrier"):
        await stack.app.cancel(oid, CancelOrder(by="customer", actor="C-1001", reason="x", line=1))

    await stack.app.receive_stock(stack.location, OUT_OF_STOCK, 1, f"DN-{oid}")
    await stack.until(oid, lambda v: len(v.deliveries) == 2)
    await deliver(stack, oid)
    done = await stack.until(oid, lambda v: v.status == "completed")
    assert done.charged == placed.lines[2].unit_price
    assert [(e.kind, e.amount) for e in stack.ledger.entries(oid)] == [
        ("authorize", placed.total),
        ("void", carried),
        ("capture", placed.lines[2].unit_price),
    ]
