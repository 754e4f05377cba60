"""The order's reservation, without Temporal: the stock record's answer and signals, the
stock-date promise, giving stock back."""

from __future__ import annotations

from domain import reservation
from domain.base import ENGINE
from domain.promises import PromiseStatus
from domain.stock import ReservationStatus, StockAllocated, StockWithdrawn, WaitlistMoved
from tests.domain.factories import NOW, order, reserved


def test_a_reservation_is_asked_for_once_and_a_signal_that_came_first_wins() -> None:
    s = order()
    assert reservation.needs_reservation(s)
    req = reservation.reserve_request(s)
    assert (req.sku, req.qty, req.initial_on_hand) == ("S-1", 2, 5)
    reservation.stock_allocated(s, StockAllocated(location="L-1", sku="S-1", qty=2))
    # The call's answer (still waitlisted) arrives after the allocation: the signal stands.
    res = reservation.take_reservation(s, reserved(ReservationStatus.WAITLISTED, 3))
    assert res.status == ReservationStatus.RESERVED
    assert not reservation.needs_reservation(s)


def test_waitlisted_order_gets_one_stock_date_promise_kept_on_arrival() -> None:
    s = order()
    reservation.take_reservation(s, reserved(ReservationStatus.WAITLISTED, 2))
    promise = reservation.promise_stock_date(s, NOW)
    assert promise is not None and promise.actor == ENGINE
    assert promise.due_at == NOW + s.input.policy.restock_promise
    assert reservation.promise_stock_date(s, NOW) is None  # one per wait
    assert reservation.waitlist_moved(s, WaitlistMoved(location="L-1", sku="S-1", position=1))
    assert s.reservation is not None and s.reservation.position == 1
    reservation.stock_arrived(s, NOW)
    assert promise.status == PromiseStatus.KEPT and promise.note == "stock allocated"


def test_stock_withdrawn_only_from_a_reservation_that_holds_stock() -> None:
    s = order()
    fact = StockWithdrawn(location="L-1", sku="S-1", position=1)
    assert not reservation.stock_withdrawn(s, fact)
    reservation.take_reservation(s, reserved(ReservationStatus.RESERVED))
    assert reservation.stock_withdrawn(s, fact)
    assert s.reservation is not None and s.reservation.status == ReservationStatus.WAITLISTED


def test_release_asks_only_for_what_is_held() -> None:
    s = order()
    assert reservation.release_request(s, collected=True) is None
    reservation.take_reservation(s, reserved(ReservationStatus.RESERVED))
    req = reservation.release_request(s, collected=True)
    assert req is not None and req.collected
    reservation.stock_released(s, collected=True)
    assert s.reservation is not None and s.reservation.status == ReservationStatus.COLLECTED
    assert reservation.release_request(s, collected=False) is None
