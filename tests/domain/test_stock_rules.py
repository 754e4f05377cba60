"""Stock rules without Temporal: FIFO, idempotency, stock takes."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta

import pytest

from domain import stock as rules
from domain.errors import InvalidInput
from domain.stock import (
    AdjustStock,
    ReceiveStock,
    ReleaseStock,
    ReservationStatus,
    ReserveStock,
    StockState,
)

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


def test_what_a_record_knows_of_its_reservations_follows_every_change() -> None:
    """Units reserved, the line's length, each order's reservation and the line's positions
    agree with the reservations themselves after any mix of changes, and in a copy, and after
    the state crosses continue-as-new as JSON."""
    rng = random.Random(7)
    s = StockState(location="L", sku="S", on_hand=5)
    for step in range(400):
        order = f"o{rng.randrange(60)}"
        match rng.randrange(6):
            case 0 | 1:
                rules.reserve(s, ReserveStock(order_id=order, qty=rng.randint(1, 3)), T0)
            case 2:
                rules.release(s, ReleaseStock(order_id=order, collected=rng.random() < 0.3))
            case 3:
                rules.receive(s, ReceiveStock(qty=rng.randint(1, 4), reference=f"DN-{step % 9}"))
            case 4:
                rules.adjust(s, AdjustStock(count=rng.randint(0, 12), reason="count"))
            case 5:
                cmds = [ReserveStock(order_id=f"o{rng.randrange(60)}", qty=1) for _ in range(5)]
                rules.reserve_batch(s, cmds, T0)
        for state in (s, copy.copy(s), StockState.model_validate_json(s.model_dump_json())):
            reserved = [r for r in state.reservations if r.status == ReservationStatus.RESERVED]
            line = [r for r in state.reservations if r.status == ReservationStatus.WAITLISTED]
            assert state.reserved == sum(r.qty for r in reserved)
            assert state.available == state.on_hand - state.reserved
            assert state.waiting == len(line)
            assert all(state.find(r.order_id) is r for r in state.reservations)
            assert state.find("nobody") is None
        assert StockState.model_validate_json(s.model_dump_json()) == s


def test_a_batch_reserves_in_arrival_order_as_as_many_single_reservations() -> None:
    one, batch = (StockState(location="L", sku="S", on_hand=3) for _ in range(2))
    cmds = [ReserveStock(order_id=o, qty=q) for o, q in [("a", 2), ("b", 2), ("c", 1), ("a", 2)]]
    singles = [rules.reserve(one, c, T0) for c in cmds]
    assert rules.reserve_batch(batch, cmds, T0).reservations == singles
    assert [(r.status, r.position) for r in singles] == [
        ("reserved", None),
        ("waitlisted", 1),
        ("waitlisted", 2),  # one unit is free, but nobody jumps the line
        ("reserved", None),  # "a" again: its own reservation, nothing more
    ]
    assert batch == one


def test_a_batch_that_would_pass_the_records_limit_is_refused_whole() -> None:
    s = StockState(location="L", sku="S", on_hand=0)
    for i in range(rules.MAX_LIVE_RESERVATIONS - 1):
        rules.reserve(s, ReserveStock(order_id=f"o{i}", qty=1), T0)
    known = ReserveStock(order_id="o0", qty=1)
    rules.check_reserve_batch(s, [known, ReserveStock(order_id="new", qty=1)])
    with pytest.raises(InvalidInput, match="no room for 2 more"):
        rules.check_reserve_batch(s, [ReserveStock(order_id=f"n{i}", qty=1) for i in range(2)])
