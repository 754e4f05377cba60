"""An order's dependencies go down for longer than every call timeout, with orders mid-flight,
and come back: every order finishes as it should, charged once, booked once, with the stock
counted right and no e-mail sent twice; what does not need the dependency goes on meanwhile.

The outages are real. The payment ledger and the carrier gateway are SQLite files: another
connection holds the write lock (``BEGIN EXCLUSIVE``), so the adapter's writes wait out the busy
timeout (4 s, activities/sqlite.py) and fail, attempt after attempt (each at most 5 s,
workflows/support/gate.py). The stock record is a workflow: a bad deployment of it (a worker
interceptor) fails each of its workflow tasks, so the stock activities' updates are refused or
time out (4 s, activities/stock.py).

Each external system's calls run on threads of their own (activities/lanes.py), so a ledger
stuck for minutes holds up no e-mail about orders that do not need it. And an order whose own step
is retrying through an outage still e-mails its customer about what else happens to it (a hold
placed meanwhile) without waiting for the step (workflows/support/outbox.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from domain.carrier import CarrierEvent, booking_key
from domain.holds import PlaceHold, ReleaseHold
from domain.ids import stock_workflow_id
from domain.order import CancelOrder, OrderCancelled
from domain.stock import STOCK_WORKFLOW, StockView
from domain.view import OrderView
from orderflow.smtp_sink import SmtpSink
from tests.conftest import FAST, Stack, make_stack

CUSTOMER = "maria.lopez@example.com"
# Longer than every call timeout: two attempts (5 s) and more than two SQLite busy timeouts
# (4 s) or stock calls (4 s) fail before the dependency is back.
SQLITE_DOWN = 10.0
STOCK_DOWN = 8.0
# What a department or customer calls an answer at once; a call stuck on the dependency takes
# its whole timeout (4 to 5 s).
PROMPT = 2.0
# Store pickups that stay on the shelf for the whole test.
SHELF = FAST.model_copy(update={"pickup_window": timedelta(minutes=5)})


class Outage:
    """A dependency taken down on entry and brought back by itself after ``seconds``."""

    def __init__(
        self, take_down: Callable[[], None], bring_back: Callable[[], None], seconds: float
    ) -> None:
        self._take_down = take_down
        self._bring_back = bring_back
        self.seconds = seconds
        self.back_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def down(self) -> bool:
        return self.back_at is None

    def left(self) -> float:
        """Seconds until the dependency is back."""
        assert self._task is not None
        return max(0.0, self._ends - time.monotonic())

    async def __aenter__(self) -> Outage:
        self._take_down()
        self._ends = time.monotonic() + self.seconds
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        await asyncio.sleep(self.seconds)
        self._end()

    def _end(self) -> None:
        if self.back_at is None:
            self._bring_back()
            self.back_at = time.monotonic()

    async def over(self) -> None:
        """Wait until the dependency is back."""
        assert self._task is not None
        await self._task

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self._end()


def sqlite_outage(path: Path, seconds: float) -> Outage:
    """Another connection holds the file's write lock for ``seconds``: every write waits out
    its busy timeout and fails with "database is locked"."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def lock() -> None:
        holder.execute("BEGIN EXCLUSIVE")

    def unlock() -> None:
        holder.execute("ROLLBACK")
        holder.close()

    return Outage(lock, unlock, seconds)


class BadStockDeployment(Interceptor):
    """A broken build of the stock record: while ``broken``, every workflow task of a stock
    record fails as it handles an update (what a bad deployment of its code does), so the
    record answers no reservation or release. Orders, deliveries and everything else run."""

    def __init__(self) -> None:
        self.broken = False
        self.failed_tasks = 0

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        deployment = self

        class Inbound(WorkflowInboundInterceptor):
            async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
                if deployment.broken and workflow.info().workflow_type == STOCK_WORKFLOW:
                    deployment.failed_tasks += 1
                    raise RuntimeError("bad deployment: the stock record cannot start")
                return await super().handle_update_handler(input)

        return Inbound

    def outage(self, seconds: float) -> Outage:
        def down() -> None:
            self.broken = True

        def up() -> None:
            self.broken = False

        return Outage(down, up, seconds)


# ---------------------------------------------------------------------------------- helpers


async def booked(stack: Stack, order_id: str, timeout: float = 30) -> OrderView:
    return await stack.until(
        order_id,
        lambda v: bool(v.deliveries) and v.deliveries[-1].status == "booked",
        timeout=timeout,
    )


async def deliver(stack: Stack, order_id: str, timeout: float = 30) -> None:
    """The carrier picks the parcel up and delivers it."""
    await booked(stack, order_id, timeout)
    for event in ("picked-up", "delivered"):
        await stack.app.carrier_event(order_id, CarrierEvent(event=event))


async def timed(awaitable: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = await awaitable
    return result, time.monotonic() - started


async def holds_go_on(stack: Stack, order_id: str, outage: Outage) -> None:
    """On an order held before its first step (it needs nothing from anyone while held), a
    department's hold and its release answer at once, and the customer hears of both while the
    dependency is still down."""
    placed, took = await timed(
        stack.app.place_hold(
            order_id,
            PlaceHold(
                department="billing",
                actor="ana",
                reason_code="arrears",
                customer_message="Your account shows 120.00 unpaid.",
                reference="INV-OUT",
            ),
        )
    )
    assert took < PROMPT, f"placing a hold took {took:.1f}s during the outage"
    await stack.mail_until(
        order_id,
        lambda m: any("INV-OUT" in x.body for x in m),
        to=CUSTOMER,
        timeout=outage.left(),
    )
    released, took = await timed(
        stack.app.release_hold(
            order_id,
            ReleaseHold(
                hold_id=placed.hold_id, department="billing", actor="ana", resolution="Paid."
            ),
        )
    )
    assert took < PROMPT, f"releasing a hold took {took:.1f}s during the outage"
    assert released.blocked_by == ["care"]  # still held by care: it needs nothing yet
    await stack.mail_until(
        order_id,
        lambda m: any("hold released by Billing" in x.subject for x in m),
        to=CUSTOMER,
        timeout=outage.left(),
    )
    assert outage.down, "the hold's e-mails only went out once the dependency was back"


def ledger_kinds(stack: Stack, order_id: str) -> list[str]:
    return [e.kind for e in stack.ledger.entries(order_id)]


def bookings(stack: Stack) -> list[tuple[str, str, str, str]]:
    """The carrier gateway's bookings: (key, order, tracking, status)."""
    db = sqlite3.connect(stack.app.settings.carrier_path)
    try:
        return db.execute("SELECT key, order_id, tracking, status FROM bookings").fetchall()
    finally:
        db.close()


def assert_charged_as_ended(stack: Stack, views: Iterable[OrderView]) -> None:
    """Each order's ledger entries, once each: authorized and captured when it completed,
    authorized and voided when it was cancelled."""
    for v in views:
        expected = ["authorize", "void"] if v.status == "cancelled" else ["authorize", "capture"]
        assert ledger_kinds(stack, v.order_id) == expected, v.order_id


def assert_booked_once(stack: Stack, views: Iterable[OrderView]) -> None:
    """Exactly one booking per delivery, with the tracking number the order tells, and none for
    an order that never shipped."""
    rows = bookings(stack)
    for view in views:
        mine = [r for r in rows if r[1] == view.order_id]
        assert len(mine) == len(view.deliveries), (view.order_id, mine)
        for d in view.deliveries:
            (row,) = [r for r in mine if r[0] == booking_key(d.workflow_id)]
            assert row[2] == d.tracking
            assert row[3] == ("cancelled" if d.status == "cancelled" else "booked")


async def stock_view(stack: Stack) -> StockView:
    return await stack.client.get_workflow_handle(
        stock_workflow_id(stack.location, "PHONE-A5")
    ).query("reservations", result_type=StockView)


async def assert_stock_counted(stack: Stack, views: Iterable[OrderView], initial: int) -> None:
    """The stock record holds nothing for finished orders and has let go exactly the units
    the orders say left the store."""
    left = sum(
        1 for v in views if v.reservation is not None and v.reservation.status == "collected"
    )
    stock = await stock_view(stack)
    assert stock.reserved == [] and stock.waitlist == []
    assert stock.on_hand == initial - left


async def told_once(stack: Stack, order_id: str, last: str) -> list[str]:
    """The customer's e-mails once the one with ``last`` in its subject is in; none twice."""
    mails = await stack.mail_until(
        order_id, lambda m: any(last in x.subject for x in m), to=CUSTOMER, timeout=30
    )
    subjects = [m.subject for m in mails]
    assert len(subjects) == len(set(subjects)), f"told twice: {subjects}"
    return subjects


@contextlib.asynccontextmanager
async def no_duplicate_mail(sink: SmtpSink) -> AsyncIterator[None]:
    before = sink.handler.duplicates
    yield
    await asyncio.sleep(0.5)  # the last batches' retries, if any
    assert sink.handler.duplicates == before, "an e-mail was handed to the mail server twice"


async def cancel(stack: Stack, order_id: str) -> OrderCancelled:
    return await stack.app.cancel(
        order_id, CancelOrder(by="customer", actor="C-1001", reason="changed my mind")
    )


# ------------------------------------------------------------------------------------ tests


async def test_a_ledger_outage_delays_payments_and_charges_each_order_once(
    stack: Stack, sink: SmtpSink
) -> None:
    async with no_duplicate_mail(sink):
        delivering = (await stack.place()).order_id
        cancelled = (await stack.place()).order_id
        held, _ = await stack.place_held()
        for oid in (delivering, cancelled):
            await booked(stack, oid)

        async with sqlite_outage(stack.app.settings.ledger_path, SQLITE_DOWN) as outage:
            # Mid-flight: a capture (delivered), a void (cancelled), two authorizations (new).
            await deliver(stack, delivering)
            cancelling = asyncio.create_task(cancel(stack, cancelled))
            new = [(await stack.place()).order_id for _ in range(2)]
            await holds_go_on(stack, held, outage)
            # The ledger really is down: nothing reached it.
            await asyncio.sleep(outage.left() - 0.5)
            assert outage.down
            assert ledger_kinds(stack, delivering) == ["authorize"]
            assert ledger_kinds(stack, cancelled) == ["authorize"]
            assert all(ledger_kinds(stack, oid) == [] for oid in new)
            assert not cancelling.done()
            await outage.over()

        done = await asyncio.wait_for(cancelling, timeout=30)
        assert done.compensations == ["carrier booking cancelled", "payment authorization voided"]
        for oid in new:
            await deliver(stack, oid)
        views = [
            await stack.until(oid, lambda v: v.status == "completed", timeout=30)
            for oid in (delivering, *new)
        ]
        views.append(await stack.until(cancelled, lambda v: v.status == "cancelled"))
        assert_charged_as_ended(stack, views)
        for v in views:
            assert all(e.amount == v.total for e in stack.ledger.entries(v.order_id))
        assert_booked_once(stack, views)
        await assert_stock_counted(stack, views, initial=10)
        for oid in (delivering, *new):
            subjects = await told_once(stack, oid, "complete")
            assert len(subjects) == 6 and "received" in subjects[0]
        assert "cancelled" in (await told_once(stack, cancelled, "cancelled"))[-1]


async def test_a_carrier_outage_delays_bookings_and_books_each_delivery_once(
    stack: Stack, sink: SmtpSink
) -> None:
    async with no_duplicate_mail(sink):
        delivering = (await stack.place()).order_id
        held, _ = await stack.place_held()
        await booked(stack, delivering)

        async with sqlite_outage(stack.app.settings.carrier_path, SQLITE_DOWN) as outage:
            new = [(await stack.place()).order_id for _ in range(2)]
            # What needs no carrier goes on: new orders are reserved and their payment
            # authorized; a parcel already booked is delivered and the order completes.
            await deliver(stack, delivering)
            completed = await stack.until(
                delivering, lambda v: v.status == "completed", timeout=outage.left()
            )
            assert completed.payment == "captured"
            deadline = time.monotonic() + outage.left()
            while not all(ledger_kinds(stack, oid) == ["authorize"] for oid in new):
                assert time.monotonic() < deadline, "new orders were not authorized"
                await asyncio.sleep(0.05)
            # Their own views say so too (a query waits for the booking attempt under way).
            for view in await asyncio.gather(*(stack.app.view(oid) for oid in new)):
                assert view.payment == "authorized", view.status
            await holds_go_on(stack, held, outage)
            # Cancelled while its booking cannot get through.
            cancelling = asyncio.create_task(cancel(stack, new[1]))
            await asyncio.sleep(outage.left() - 0.5)
            assert outage.down
            assert [r for r in bookings(stack) if r[1] in new] == []
            await outage.over()

        done = await asyncio.wait_for(cancelling, timeout=30)
        assert done.compensations == ["carrier booking cancelled", "payment authorization voided"]
        await deliver(stack, new[0])
        views = [
            await stack.until(oid, lambda v: v.status == "completed", timeout=30)
            for oid in (delivering, new[0])
        ]
        views.append(await stack.until(new[1], lambda v: v.status == "cancelled"))
        assert_charged_as_ended(stack, views)
        assert_booked_once(stack, views)
        # As the orders record it: the cancelled order's unit counts as handed to the carrier
        # (it was booked before the cancel took effect), as for any cancel after booking.
        await assert_stock_counted(stack, views, initial=10)
        for oid in (delivering, new[0]):
            assert len(await told_once(stack, oid, "complete")) == 6
        assert "cancelled" in (await told_once(stack, new[1], "cancelled"))[-1]


async def test_a_stock_record_outage_delays_reservations_and_counts_stock_right(
    env: WorkflowEnvironment, sink: SmtpSink, tmp_path: Path
) -> None:
    deployment = BadStockDeployment()
    async with (
        make_stack(env, sink, tmp_path, "stock-outage", interceptors=[deployment]) as stack,
        no_duplicate_mail(sink),
    ):
        in_transit = (await stack.place()).order_id
        on_shelf = (await stack.place(pickup=True, policy=SHELF)).order_id
        held, _ = await stack.place_held()
        held_cancelled, _ = await stack.place_held()
        # Booked, and its unit handed to the carrier: it needs the stock record no more.
        await stack.until(
            in_transit,
            lambda v: v.reservation is not None and v.reservation.status == "collected",
        )
        await stack.until(on_shelf, lambda v: v.status == "ready_for_pickup")

        async with deployment.outage(STOCK_DOWN) as outage:
            new = [(await stack.place()).order_id for _ in range(2)]
            # What needs no stock record goes on: a parcel is delivered and paid for, holds
            # come and go, an order that reserved nothing is cancelled at once.
            await deliver(stack, in_transit)
            await stack.until(in_transit, lambda v: v.status == "completed", timeout=outage.left())
            await holds_go_on(stack, held, outage)
            done, took = await timed(cancel(stack, held_cancelled))
            assert took < PROMPT and done.compensations == []
            # Cancelling a pickup gives its unit back to the stock record: that waits.
            cancelling = asyncio.create_task(cancel(stack, on_shelf))
            await asyncio.sleep(outage.left() - 0.5)
            assert outage.down and deployment.failed_tasks > 0
            # Nothing got past the stock record: no new order reached its payment.
            assert all(ledger_kinds(stack, oid) == [] for oid in new)
            assert not cancelling.done()
            await outage.over()

        done = await asyncio.wait_for(cancelling, timeout=40)
        assert done.compensations == ["payment authorization voided", "stock reservation released"]
        for oid in new:
            await deliver(stack, oid, timeout=40)
        views = [
            await stack.until(oid, lambda v: v.status == "completed", timeout=30)
            for oid in (in_transit, *new)
        ]
        views.append(await stack.until(on_shelf, lambda v: v.status == "cancelled"))
        assert_charged_as_ended(stack, views)
        assert ledger_kinds(stack, held_cancelled) == []
        assert_booked_once(stack, [*views, await stack.app.view(held_cancelled)])
        # Three units left with the carrier; the pickup's went back on the shelf.
        await assert_stock_counted(stack, views, initial=10)
        assert (await stock_view(stack)).on_hand == 7
        for oid in (in_transit, *new):
            assert len(await told_once(stack, oid, "complete")) == 6
        assert "cancelled" in (await told_once(stack, on_shelf, "cancelled"))[-1]


async def test_a_ledger_outage_holds_up_no_email_about_orders_that_need_no_ledger(
    stack: Stack,
) -> None:
    # Twice as many orders waiting on the ledger as the event loop's shared pool has threads.
    stuck = 2 * min(32, (os.cpu_count() or 1) + 4)
    location = stack.add_location({"PHONE-A5": stuck})
    held, _ = await stack.place_held()
    await stack.mail_until(held, lambda m: any("on hold" in x.subject for x in m), to=CUSTOMER)
    async with sqlite_outage(stack.app.settings.ledger_path, 6.0) as outage:
        for _ in range(stuck):
            await stack.place(location=location)
        await asyncio.sleep(1.0)  # every one of them is calling the ledger
        await holds_go_on(stack, held, outage)


async def test_an_order_waiting_on_the_ledger_tells_its_customer_of_a_hold_at_once(
    stack: Stack,
) -> None:
    # A hold arriving while a call runs waits for its attempt to fail (the busy timeout, 4 s):
    # the outage lasts long enough for that under load too.
    async with sqlite_outage(stack.app.settings.ledger_path, 12.0) as outage:
        oid = (await stack.place()).order_id
        await asyncio.sleep(1.0)  # reserved, calling the ledger
        await stack.app.place_hold(
            oid,
            PlaceHold(
                department="billing",
                actor="ana",
                reason_code="arrears",
                customer_message="Your account shows 120.00 unpaid.",
                reference="INV-OUT",
            ),
        )
        await stack.mail_until(
            oid,
            lambda m: any("INV-OUT" in x.body for x in m),
            to=CUSTOMER,
            timeout=outage.left(),
        )
        await stack.mail_until(
            oid, lambda m: any("received" in x.subject for x in m), timeout=outage.left()
        )
        assert outage.down
