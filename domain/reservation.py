"""The order's reservation: asking a stock record for one, taking its answer and its signals
(allocated, withdrawn, moved in line), the engine's stock-date promise, and giving the stock
back. Pure rules over the order's state."""

from __future__ import annotations

from datetime import datetime

from domain.base import ENGINE
from domain.order import OrderState
from domain.promises import (
    MakePromise,
    Promise,
    PromiseKind,
    keep_promise,
    make_promise,
    open_promises,
    withdraw,
)
from domain.stock import (
    ReleaseRequest,
    Reservation,
    ReservationStatus,
    ReserveRequest,
    StockAllocated,
    StockReserved,
    StockWithdrawn,
    WaitlistMoved,
)

# The note on a stock-date promise the engine kept.
STOCK_ALLOCATED = "stock allocated"


def needs_reservation(state: OrderState, n: int = 0) -> bool:
    """No reservation yet for line ``n``, or the last one was given back (a reship, back in
    line)."""
    res = state.line_reservation(n)
    return res is None or res.status in (ReservationStatus.RELEASED, ReservationStatus.COLLECTED)


def reserve_request(state: OrderState, n: int = 0) -> ReserveRequest:
    line = state.input.lines[n]
    return ReserveRequest(
        location=state.input.location,
        sku=line.sku,
        order_id=state.order_id,
        qty=line.qty,
        initial_on_hand=state.input.initial_stock.get(line.sku, 0),
    )


def take_reservation(state: OrderState, result: StockReserved, n: int = 0) -> Reservation:
    """The stock record's answer. A stock signal that arrived while the call ran wins."""
    res = state.line_reservation(n)
    if res is None or res.status in (
        ReservationStatus.RELEASED,
        ReservationStatus.COLLECTED,
        ReservationStatus.PENDING,
    ):
        res = state.set_reservation(
            n,
            Reservation(
                location=result.location,
                sku=result.sku,
                qty=result.qty,
                status=result.status,
                position=result.position,
            ),
        )
    return res


def lines_in(state: OrderState, status: ReservationStatus) -> list[int]:
    """The lines whose reservation is in ``status``."""
    return [
        n
        for n in range(len(state.input.lines))
        if (res := state.line_reservation(n)) is not None and res.status == status
    ]


def all_reserved(state: OrderState) -> bool:
    """Every line not cancelled is reserved."""
    reserved = lines_in(state, ReservationStatus.RESERVED)
    return all(n in reserved for n in state.open_lines)


def promise_stock_date(state: OrderState, now: datetime) -> Promise | None:
    """Waitlisted: the engine promises a date for stock, once per wait."""
    if open_promises(state, PromiseKind.STOCK_DATE):
        return None
    return make_promise(
        state,
        MakePromise(
            kind=PromiseKind.STOCK_DATE,
            due_at=now + state.input.policy.restock_promise,
            text="e-mail you the moment stock arrives" + _for_waiting_lines(state),
            department="stock",
            actor=ENGINE,
        ),
        now,
    )


def _for_waiting_lines(state: OrderState) -> str:
    """Which lines wait, on an order of several lines (the promise is theirs)."""
    if len(state.input.lines) < 2:
        return ""
    waiting = [
        state.input.lines[n].name or state.input.lines[n].sku
        for n in lines_in(state, ReservationStatus.WAITLISTED)
    ]
    return f" for {', '.join(waiting)}" if waiting else ""


def no_wait_left(state: OrderState, now: datetime) -> None:
    """A line cancel took away the last line that waited for stock: its stock-date promise is
    withdrawn, not broken."""
    if lines_in(state, ReservationStatus.WAITLISTED):
        return
    for promise in open_promises(state, PromiseKind.STOCK_DATE):
        withdraw(promise, now, note="the line that waited for stock was cancelled")


def stock_arrived(state: OrderState, now: datetime) -> None:
    for promise in open_promises(state, PromiseKind.STOCK_DATE):
        keep_promise(state, promise, now, by=ENGINE, note=STOCK_ALLOCATED)


def release_request(state: OrderState, *, collected: bool, n: int = 0) -> ReleaseRequest | None:
    """What to give back to line ``n``'s stock record, if the order holds anything there."""
    res = state.line_reservation(n)
    if res is None or res.status in (
        ReservationStatus.RELEASED,
        ReservationStatus.COLLECTED,
        ReservationStatus.PENDING,
    ):
        return None
    return ReleaseRequest(
        location=res.location, sku=res.sku, order_id=state.order_id, collected=collected
    )


def stock_released(state: OrderState, *, collected: bool, n: int = 0) -> None:
    res = state.line_reservation(n)
    assert res is not None
    res.status = ReservationStatus.COLLECTED if collected else ReservationStatus.RELEASED
    res.position = None


def _line(state: OrderState, sku: str) -> int:
    """The line a stock record's signal is about: by its SKU (orders before lines had one)."""
    n = state.line_of(sku)
    return 0 if n is None else n


def stock_allocated(state: OrderState, fact: StockAllocated) -> None:
    n = _line(state, fact.sku)
    res = state.line_reservation(n)
    if res is not None and res.sku == fact.sku and res.location == fact.location:
        res.status = ReservationStatus.RESERVED
        res.position = None
    elif res is None:
        state.set_reservation(
            n,
            Reservation(
                location=fact.location,
                sku=fact.sku,
                qty=fact.qty,
                status=ReservationStatus.RESERVED,
            ),
        )


def stock_withdrawn(state: OrderState, fact: StockWithdrawn) -> bool:
    """A stock take took the order's stock: back in line. False when it held none."""
    res = state.line_reservation(_line(state, fact.sku))
    if res is None or res.status != ReservationStatus.RESERVED:
        return False
    res.status = ReservationStatus.WAITLISTED
    res.position = fact.position
    return True


def waitlist_moved(state: OrderState, fact: WaitlistMoved) -> bool:
    res = state.line_reservation(_line(state, fact.sku))
    if res is not None and res.status == ReservationStatus.WAITLISTED and res.sku == fact.sku:
        res.position = fact.position
        return True
    return False
