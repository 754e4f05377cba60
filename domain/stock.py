"""Stock at one location for one SKU: on-hand count, reservations and a FIFO waitlist.

Pure rules; the stock workflow holds one ``StockState`` and calls these.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, PrivateAttr

from domain.base import Command, Count, Flag, Model, Name, Receipt, Words
from domain.errors import InvalidInput, NotFound

# The stock record's workflow and its updates, by name: the stock activities call them without
# importing the workflow (activities and workflows depend on the domain, not on each other).
STOCK_WORKFLOW = "StockWorkflow"
RESERVE_UPDATE = "reserve"
RESERVE_BATCH_UPDATE = "reserve_batch"
RELEASE_UPDATE = "release"


class StockCall(StrEnum):
    """The order's calls to stock records (activities)."""

    RESERVE = "reserve_stock"
    RELEASE = "release_stock"


class ReservationStatus(StrEnum):
    """A reservation's state, on the stock record (reserved, waitlisted) and on the order."""

    PENDING = "pending"
    RESERVED = "reserved"
    WAITLISTED = "waitlisted"
    RELEASED = "released"
    COLLECTED = "collected"

    @property
    def holds_stock_or_place(self) -> bool:
        """Reserved or waiting in line: something to release when the order ends."""
        return self in (ReservationStatus.RESERVED, ReservationStatus.WAITLISTED)


class StockReservation(Model):
    order_id: str
    qty: int
    since: datetime
    status: ReservationStatus
    expires_at: datetime | None = None


class Reservation(Model):
    """The order's own record of its reservation."""

    location: str
    sku: str
    qty: int
    status: ReservationStatus = ReservationStatus.PENDING
    position: int | None = None
    expires_at: datetime | None = None


class StockState(Model):
    location: str
    sku: str
    on_hand: int = 0
    reservations: list[StockReservation] = Field(default_factory=list)
    # References of receipts already booked, so a repeated delivery note is not counted twice.
    receipts: list[str] = Field(default_factory=list)

    # What a reservation asks of the record, kept as it changes so that reserving costs the
    # same with 10 or 5,000 live reservations: the reservations by order, the units reserved
    # and how many wait. Derived from ``reservations`` (never carried across continue-as-new),
    # built on first use, kept by ``reserve`` and rebuilt after any other change (``changed``).
    _by_order: dict[str, StockReservation] | None = PrivateAttr(default=None)
    _reserved: int = PrivateAttr(default=0)
    _waiting: int = PrivateAttr(default=0)

    def _index(self) -> dict[str, StockReservation]:
        if self._by_order is None:
            self._by_order = {r.order_id: r for r in self.reservations}
            self._reserved = sum(
                r.qty for r in self.reservations if r.status == ReservationStatus.RESERVED
            )
            self._waiting = sum(
                1 for r in self.reservations if r.status == ReservationStatus.WAITLISTED
            )
        return self._by_order

    def changed(self) -> None:
        """Reservations were removed, reordered or changed status: derive again on next use."""
        self._by_order = None

    def __copy__(self) -> StockState:
        # A copy shares the reservations list but must not share what is derived from it.
        copied = super().__copy__()
        copied.changed()
        return copied

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> StockState:
        copied = super().__deepcopy__(memo)
        copied.changed()
        return copied

    def __eq__(self, other: object) -> bool:
        # Two states are equal by their fields, whether or not either has derived its index.
        return isinstance(other, StockState) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    def added(self, r: StockReservation) -> None:
        """A reservation joined the end of the list (``reserve``)."""
        index = self._index()  # derived before the append, so it is not counted twice
        self.reservations.append(r)
        index[r.order_id] = r
        if r.status == ReservationStatus.RESERVED:
            self._reserved += r.qty
        elif r.status == ReservationStatus.WAITLISTED:
            self._waiting += 1

    @property
    def reserved(self) -> int:
        self._index()
        return self._reserved

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved

    @property
    def waiting(self) -> int:
        """How many orders wait in line."""
        self._index()
        return self._waiting

    @property
    def waitlist(self) -> list[StockReservation]:
        return [r for r in self.reservations if r.status == ReservationStatus.WAITLISTED]

    def position(self, order_id: str) -> int | None:
        for i, r in enumerate(self.waitlist, start=1):
            if r.order_id == order_id:
                return i
        return None

    def find(self, order_id: str) -> StockReservation | None:
        return self._index().get(order_id)


class ReserveStock(Command):
    order_id: Name
    qty: Count


class StockReserved(Receipt):
    order_id: str
    location: str
    sku: str
    qty: int
    status: ReservationStatus
    position: int | None = None
    available: int = 0


# Reservations one batch carries at most (``reserve_batch``): a batch's update and its answer
# stay small payloads.
MAX_BATCH = 200


class ReserveBatch(Command):
    """Reservations that reached one worker together, for one stock record, in the order they
    arrived: one update instead of one each (``activities/stock.py``). Sent by the engine only,
    with a token scoped to this batch (``batch_scope``: a digest of its reservations) rather
    than to one order."""

    reservations: list[ReserveStock] = Field(min_length=1, max_length=MAX_BATCH)


def batch_scope(cmds: list[ReserveStock]) -> str:
    """What a batch's token is scoped to, in place of one order: a digest of the batch's
    reservations, so a token read from a record's history carries no other batch."""
    digest = hashlib.sha256("\n".join(f"{c.order_id}\t{c.qty}" for c in cmds).encode())
    return f"batch-{digest.hexdigest()[:40]}"


class StockBatchReserved(Receipt):
    reservations: list[StockReserved]


class ReleaseStock(Command):
    order_id: Name
    collected: Flag = False  # True when the goods left with the customer or the carrier


class StockReleased(Receipt):
    order_id: str
    released: bool
    allocated_to: list[str] = Field(default_factory=list)


# Bounds on what one message may claim: a typo's extra zeros are refused, not stocked.
MAX_RECEIPT = 100_000
MAX_ON_HAND = 1_000_000
# As many units as one order line may have (domain.order.OrderLine).
MAX_LINE_QTY = 1000


class ReceiveStock(Command):
    qty: Count
    reference: Name = ""


class StockReceived(Receipt):
    on_hand: int
    allocated_to: list[str]
    duplicate: bool = False


class AdjustStock(Command):
    count: Count
    reason: Words


class StockAdjusted(Receipt):
    on_hand: int
    waitlisted: list[str]
    allocated_to: list[str]


class StockInput(Model):
    location: str
    sku: str
    on_hand: int = 0
    # Carried across continue-as-new; absent on the first run.
    state: StockState | None = None
    # Hand over to a fresh run after this many changes: keeps history short and stays far
    # below the server's limit of 2,000 updates per run. Tests set a small number.
    continue_as_new_after: int = Field(default=1000, ge=1)


class ReserveRequest(Model):
    """The order asks a stock record for a reservation (creating the record on first use)."""

    location: str
    sku: str
    order_id: str
    qty: int
    initial_on_hand: int = 0


class ReleaseRequest(Model):
    location: str
    sku: str
    order_id: str
    collected: bool = False


# --------------------------------------------------------------------------- signals to orders


class StockAllocated(Model):
    """Signal from the stock record to an order: its waitlisted reservation now holds stock."""

    location: str
    sku: str
    qty: int
    reference: str = ""


# The order's call that reads a stock record, to confirm what its signal said.
READ_STOCK_RECORD = "read_stock_record"


class ReadStock(Model):
    location: str
    sku: str


def confirms(view: StockView, order_id: str, fact: Model) -> Model | None:
    """The fact as the record itself has it for ``order_id`` (a signal's claim checked against
    the record: its place in line is the record's), or None when the record says otherwise."""
    if isinstance(fact, StockAllocated):
        return fact if any(r.order_id == order_id for r in view.reserved) else None
    line = [r.order_id for r in view.waitlist]
    if order_id not in line:
        return None
    position = line.index(order_id) + 1
    if isinstance(fact, StockWithdrawn | WaitlistMoved):
        return fact.model_copy(update={"position": position})
    return None


class StockWithdrawn(Model):
    """Signal from the stock record: a stock take left this order's reservation unbacked."""

    location: str
    sku: str
    position: int
    reason: str = ""


class WaitlistMoved(Model):
    """Signal from the stock record: the line moved and this order's place in it changed."""

    location: str
    sku: str
    position: int


class StockView(Model):
    location: str
    sku: str
    on_hand: int
    available: int
    reserved: list[StockReservation]
    waitlist: list[StockReservation]


# Live reservations one stock record holds at most: keeps the state carried across
# continue-as-new far below Temporal's 2 MiB payload limit.
MAX_LIVE_RESERVATIONS = 5000


def check_reserve(state: StockState, cmd: ReserveStock) -> None:
    if cmd.qty <= 0:
        raise InvalidInput(f"quantity must be at least 1 (got {cmd.qty})")
    if cmd.qty > MAX_LINE_QTY:
        raise InvalidInput(f"qty: an order line takes at most {MAX_LINE_QTY} (got {cmd.qty})")
    if state.find(cmd.order_id) is None:
        _check_room(state, 1)


def _check_room(state: StockState, new: int) -> None:
    """The record's limit on live reservations (its state must cross continue-as-new)."""
    if len(state.reservations) + new > MAX_LIVE_RESERVATIONS:
        raise InvalidInput(
            f"{state.sku} at {state.location} has no room for {new} more reservations or "
            f"waiting orders (at most {MAX_LIVE_RESERVATIONS}); reserve at another location "
            "(--any-location)"
        )


def reserve(state: StockState, cmd: ReserveStock, now: datetime) -> StockReserved:
    """Reserve, or join the back of the line. Idempotent per order. A new reservation costs
    the same however many the record holds."""
    existing = state.find(cmd.order_id)
    if existing is None:
        # Strict FIFO: nobody jumps a line that is already waiting.
        fits = not state.waiting and state.available >= cmd.qty
        existing = StockReservation(
            order_id=cmd.order_id,
            qty=cmd.qty,
            since=now,
            status=ReservationStatus.RESERVED if fits else ReservationStatus.WAITLISTED,
        )
        state.added(existing)
        # A newcomer who waits is last in line.
        position = None if fits else state.waiting
    else:
        position = state.position(cmd.order_id)
    return StockReserved(
        order_id=cmd.order_id,
        location=state.location,
        sku=state.sku,
        qty=existing.qty,
        status=existing.status,
        position=position,
        available=state.available,
    )


def check_reserve_batch(state: StockState, cmds: list[ReserveStock]) -> None:
    """A batch is taken whole or not at all: each reservation as one alone, and the new ones
    together within the record's limit."""
    for cmd in cmds:
        check_reserve(state, cmd)
    _check_room(state, len({c.order_id for c in cmds if state.find(c.order_id) is None}))


def reserve_batch(state: StockState, cmds: list[ReserveStock], now: datetime) -> StockBatchReserved:
    """The reservations of a batch, in the order they arrived: as many ``reserve`` calls."""
    return StockBatchReserved(reservations=[reserve(state, cmd, now) for cmd in cmds])


def allocate(state: StockState) -> list[StockReservation]:
    """Give free stock to the waitlist, first come first served; returns who got it."""
    allocated: list[StockReservation] = []
    free = state.available
    for r in state.waitlist:
        if free < r.qty:
            break
        r.status = ReservationStatus.RESERVED
        free -= r.qty
        allocated.append(r)
    if allocated:
        state.changed()
    return allocated


def release(state: StockState, cmd: ReleaseStock) -> tuple[bool, list[StockReservation]]:
    existing = state.find(cmd.order_id)
    if existing is None:
        return False, []
    state.reservations.remove(existing)
    state.changed()
    if cmd.collected and existing.status == ReservationStatus.RESERVED:
        state.on_hand -= existing.qty
    return True, allocate(state)


def check_receive(state: StockState, cmd: ReceiveStock) -> None:
    if cmd.qty <= 0:
        raise InvalidInput(f"qty: a receipt must add at least 1 unit (got {cmd.qty})")
    if cmd.qty > MAX_RECEIPT:
        raise InvalidInput(f"qty: a receipt adds at most {MAX_RECEIPT} units (got {cmd.qty})")
    if state.on_hand + cmd.qty > MAX_ON_HAND:
        raise InvalidInput(f"qty: a stock record holds at most {MAX_ON_HAND} units")


def receive(state: StockState, cmd: ReceiveStock) -> StockReceived:
    if cmd.reference and cmd.reference in state.receipts:
        return StockReceived(on_hand=state.on_hand, allocated_to=[], duplicate=True)
    state.on_hand += cmd.qty
    if cmd.reference:
        state.receipts = [*state.receipts[-199:], cmd.reference]
    return StockReceived(on_hand=state.on_hand, allocated_to=[r.order_id for r in allocate(state)])


def check_adjust(state: StockState, cmd: AdjustStock) -> None:
    if cmd.count < 0:
        raise InvalidInput(f"count: a stock count cannot be negative (got {cmd.count})")
    if cmd.count > MAX_ON_HAND:
        raise InvalidInput(f"count: a stock record holds at most {MAX_ON_HAND} (got {cmd.count})")
    if not cmd.reason.strip():
        raise InvalidInput("reason must not be empty: a stock adjustment needs one")


def adjust(
    state: StockState, cmd: AdjustStock
) -> tuple[list[StockReservation], list[StockReservation]]:
    """Set the counted on-hand. A shortfall sends the youngest reservations to the front of the
    line (they were promised before anyone waiting); a surplus allocates to the line."""
    state.on_hand = cmd.count
    bumped: list[StockReservation] = []
    reserved = sorted(
        (r for r in state.reservations if r.status == ReservationStatus.RESERVED),
        key=lambda r: r.since,
    )
    short = -state.available
    while short > 0 and reserved:
        youngest = reserved.pop()
        youngest.status = ReservationStatus.WAITLISTED
        short -= youngest.qty
        bumped.append(youngest)
    if bumped:
        # Put the bumped reservations ahead of those who were already waiting, oldest first.
        others = [r for r in state.reservations if r not in bumped]
        state.reservations = sorted(bumped, key=lambda r: r.since) + others
        state.changed()
        return bumped, []
    return bumped, allocate(state)


def view(state: StockState) -> StockView:
    return StockView(
        location=state.location,
        sku=state.sku,
        on_hand=state.on_hand,
        available=state.available,
        reserved=[r for r in state.reservations if r.status == ReservationStatus.RESERVED],
        waitlist=state.waitlist,
    )


def require_known(sku: str, location: str, skus: set[str], locations: set[str]) -> None:
    if sku not in skus:
        raise NotFound(f"unknown SKU '{sku}'; see orderflow catalog")
    if location not in locations:
        raise NotFound(f"unknown location '{location}'; see orderflow catalog")
