"""Stock rules without Temporal: FIFO, idempotency, stock takes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain import stock as rules
from domain.errors import InvalidInput
from domain.stock import AdjustStock, ReceiveStock, ReleaseStock, ReserveStock, StockState

T0 = datetime(2026, 11, 25, tzinfo=UTC)


def reserve(s: StockState, order: str, qty: int = 1, minute: int = 0) -> str:
    return rules.reserve(
        s, ReserveStock(order_id=order, qty=qty), T0 + timedelta(minutes=minute)
    ).status


def test_never_jumps_the_line() -> None:
    s = StockState(location="L", sku="S", on_hand=1)
    assert reserve(s, "a", 2) == "waitlisted"
    # One unit is free, but "a" waits first: "b" may not take it.
    assert reserve(s, "b", 1) == "waitlisted"
    assert rules.receive(s, ReceiveStock(qty=1)).allocated_to == ["a"]
    assert s.position("b") == 1


def test_reserve_is_idempotent_per_order() -> None:
    s = StockState(location="L", sku="S", on_hand=3)
    reserve(s, "a", 2)
    reserve(s, "a", 2)
    assert s.available == 1


def test_release_frees_stock_for_the_line_and_collected_leaves_the_shelf() -> None:
    s = StockState(location="L", sku="S", on_hand=1)
    reserve(s, "a")
    reserve(s, "b")
    released, allocated = rules.release(s, ReleaseStock(order_id="a"))
    assert released and [r.order_id for r in allocated] == ["b"]
    rules.release(s, ReleaseStock(order_id="b", collected=True))
    assert s.on_hand == 0 and s.reservations == []


def test_receipt_reference_counts_once() -> None:
    s = StockState(location="L", sku="S")
    rules.receive(s, ReceiveStock(qty=5, reference="DN1"))
    assert rules.receive(s, ReceiveStock(qty=5, reference="DN1")).duplicate
    assert s.on_hand == 5


def test_stock_take_shortfall_bumps_youngest_to_the_front() -> None:
    s = StockState(location="L", sku="S", on_hand=3)
    reserve(s, "old", minute=0)
    reserve(s, "mid", minute=1)
    reserve(s, "young", minute=2)
    reserve(s, "waiting", minute=3)
    bumped, _ = rules.adjust(s, AdjustStock(count=2, reason="count"))
    assert [r.order_id for r in bumped] == ["young"]
    assert [r.order_id for r in s.waitlist] == ["young", "waiting"]


def test_a_full_record_refuses_new_orders_but_answers_known_ones() -> None:
    s = StockState(location="L", sku="S", on_hand=0)
    for i in range(rules.MAX_LIVE_RESERVATIONS):
        reserve(s, f"o{i}")
    try:
        rules.check_reserve(s, ReserveStock(order_id="new", qty=1))
    except InvalidInput as err:
        assert "another location" in str(err)
    else:
        raise AssertionError("a full record accepted one more reservation")
    rules.check_reserve(s, ReserveStock(order_id="o7", qty=1))  # a repeat is still answered
