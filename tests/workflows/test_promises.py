"""Every promise is a timer: kept by hand or by the engine, or reported broken to the customer
first and then to the promiser's supervisor. One pending timer per order, however many."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
from temporalio.api.enums.v1 import EventType

from domain.base import MAX_OPEN_PROMISES
from domain.carrier import CarrierEvent
from domain.errors import OrderflowError
from domain.ids import order_workflow_id
from domain.order import WAIT_UNTIL
from domain.promises import KeepPromise, MakePromise
from tests.conftest import Stack, acting
from workflows.support.gate import MARK_FOR

CUSTOMER = "maria.lopez@example.com"


def callback(due_in: timedelta, **kw: object) -> MakePromise:
    fields: dict[str, object] = {
        "kind": "callback",
        "due_at": datetime.now(UTC) + due_in,
        "text": "call you when the phone is dispatched",
        "department": "care",
        "actor": "jo",
    }
    fields.update(kw)
    return MakePromise.model_validate(fields)


async def held_order(stack: Stack) -> str:
    """An order parked behind a hold from its start, so only promises move."""
    oid, _ = await stack.place_held()
    return oid


async def test_promise_kept_by_hand(stack: Stack) -> None:
    oid = await held_order(stack)
    made = await stack.app.make_promise(oid, callback(timedelta(hours=2)))
    kept = await stack.app.keep_promise(
        oid, KeepPromise(promise_id=made.promise_id, note="Called at 14:02", actor="jo")
    )
    assert kept.promise_id == made.promise_id
    view = await stack.app.view(oid)
    assert [(p.promise_id, p.status) for p in view.promises] == [(made.promise_id, "kept")]
    with pytest.raises(OrderflowError, match="already kept"):
        await stack.app.keep_promise(oid, KeepPromise(promise_id=made.promise_id))


async def test_broken_promise_tells_customer_first_then_supervisor(stack: Stack) -> None:
    oid = await held_order(stack)
    made = await stack.app.make_promise(oid, callback(timedelta(seconds=1.5)))
    await stack.mail_until(
        oid,
        lambda m: any("BROKEN PROMISE" in x.subject for x in m),
        to="ruth.mensah@orderflow.local",
    )
    everything = stack.mail(oid)
    subjects = [m.subject for m in everything]
    customer_at = next(i for i, s in enumerate(subjects) if "did not keep our promise" in s)
    supervisor_at = next(i for i, s in enumerate(subjects) if "BROKEN PROMISE" in s)
    assert customer_at < supervisor_at
    body = everything[customer_at].body
    assert "call you when the phone is dispatched" in body and "Where your order stands" in body
    view = await stack.app.view(oid)
    assert [p.status for p in view.promises if p.promise_id == made.promise_id] == ["broken"]
    broken = await stack.app.list_promises(broken=True, department="care")
    assert any(r["order_id"] == oid and r["promise_id"] == made.promise_id for r in broken)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"due_at": datetime(2020, 1, 1, tzinfo=UTC)}, "in the past"),
        ({"department": "nobody"}, "unknown department"),
        ({"text": "  "}, "must not be empty"),
        ({"kind": "someday"}, "unknown promise kind"),
    ],
)
async def test_bad_promises_are_refused(stack: Stack, change: dict, message: str) -> None:
    oid = await held_order(stack)
    before = await stack.app.view(oid)
    with pytest.raises(OrderflowError, match=message):
        await stack.app.make_promise(oid, callback(timedelta(hours=1), **change))
    assert (await stack.app.view(oid)).promises == before.promises
    with pytest.raises(OrderflowError, match="no promise 'P9'"):
        await stack.app.keep_promise(oid, KeepPromise(promise_id="P9"))


async def test_engine_keeps_stock_and_delivery_promises(stack: Stack) -> None:
    # Out of stock: the engine promises to e-mail on arrival, and keeps it when stock arrives.
    view, _ = await stack.app.place_order(stack.order(sku="PHONE-X12"))
    oid = view.order_id
    view = await stack.until(oid, lambda v: v.status == "waitlisted")
    assert [(p.kind, p.status) for p in view.promises] == [("stock_date", "open")]
    await stack.app.receive_stock(stack.location, "PHONE-X12", 1, "DN-1")
    view = await stack.until(
        oid, lambda v: bool(v.deliveries) and v.deliveries[-1].status == "booked"
    )
    assert [(p.kind, p.status) for p in view.promises] == [
        ("stock_date", "kept"),
        ("delivery_window", "open"),
    ]
    await stack.app.carrier_event(oid, CarrierEvent(event="picked-up"))
    await stack.app.carrier_event(oid, CarrierEvent(event="delivered"))
    view = await stack.until(oid, lambda v: v.status == "completed")
    assert [p.status for p in view.promises] == ["kept", "kept"]


async def test_a_promise_on_a_finished_order_is_refused(stack: Stack) -> None:
    view, _ = await stack.app.place_order(stack.order())
    oid = view.order_id
    await stack.until(oid, lambda v: bool(v.deliveries) and v.deliveries[-1].status == "booked")
    for event in ("picked-up", "delivered"):
        await stack.app.carrier_event(oid, CarrierEvent(event=event))
    await stack.until(oid, lambda v: v.status == "completed")
    with pytest.raises(OrderflowError, match="completed"):
        await stack.app.make_promise(oid, callback(timedelta(hours=1)))


async def test_many_open_promises_keep_one_pending_timer(stack: Stack) -> None:
    with acting("care"):
        oid = await held_order(stack)
        handle = stack.client.get_workflow_handle(order_workflow_id(oid))
        base = datetime.now(UTC) + timedelta(hours=1)
        sem = asyncio.Semaphore(8)  # the server allows 10 updates in flight per workflow

        async def make(i: int) -> None:
            async with sem:
                await handle.execute_update(
                    "make_promise",
                    MakePromise(
                        kind="custom",
                        due_at=base + timedelta(seconds=i),
                        text=f"promise {i}",
                        department="care",
                    ),
                )

        # As many open promises as an order may have (domain.base.MAX_OPEN_PROMISES).
        await asyncio.gather(*(make(i) for i in range(MAX_OPEN_PROMISES)))
        view = await stack.app.view(oid)
        assert sum(p.status == "open" for p in view.promises) == MAX_OPEN_PROMISES
        length = await stack.quiet(order_workflow_id(oid), timeout=90)
        # The promises' timers, not the marks of tasks that call out (workflows/support/gate.py).
        pending: set[str] = set()
        async for e in handle.fetch_history_events():
            if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                started = e.timer_started_event_attributes
                if started.start_to_fire_timeout.ToTimedelta() != MARK_FOR:
                    pending.add(started.timer_id)
            elif e.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
                pending.discard(e.timer_fired_event_attributes.timer_id)
            elif e.event_type == EventType.EVENT_TYPE_TIMER_CANCELED:
                pending.discard(e.timer_canceled_event_attributes.timer_id)
        assert len(pending) == 1
        # Bounded: a fixed number of events per promise.
        assert length < MAX_OPEN_PROMISES * 12 + 100


async def test_same_reference_is_one_promise_and_engine_promises_are_the_engines(
    stack: Stack,
) -> None:
    oid = await held_order(stack)
    first = await stack.app.make_promise(oid, callback(timedelta(hours=2), reference="CASE-1"))
    again = await stack.app.make_promise(oid, callback(timedelta(hours=2), reference="CASE-1"))
    assert again.promise_id == first.promise_id and again.already_made
    assert len((await stack.app.view(oid)).promises) == 1

    view, _ = await stack.app.place_order(stack.order(sku="PHONE-X12"))
    waiting = await stack.until(view.order_id, lambda v: v.status == "waitlisted")
    engine_promise = waiting.promises[0].promise_id
    with pytest.raises(OrderflowError, match="kept by the engine itself"):
        await stack.app.keep_promise(
            view.order_id, KeepPromise(promise_id=engine_promise, actor="jo")
        )


async def test_a_missed_delivery_window_is_a_broken_promise_the_customer_hears_of_first(
    stack: Stack,
) -> None:
    # The delivery keeps the window's timer while it runs; the order arms none of its own.
    from tests.conftest import FAST

    policy = FAST.model_copy(update={"delivery_window": timedelta(seconds=2)})
    view, _ = await stack.app.place_order(stack.order(policy=policy))
    oid = view.order_id
    await stack.until(oid, lambda v: bool(v.deliveries) and v.deliveries[-1].status == "booked")
    view = await stack.until(
        oid, lambda v: [p.status for p in v.promises] == ["broken"], timeout=15
    )
    assert view.promises[0].kind == "delivery_window"
    customer = await stack.mail_until(
        oid, lambda m: any("did not keep our promise" in x.subject for x in m), to="maria.lopez"
    )
    supervisor = await stack.mail_until(
        oid, lambda m: any(x.subject.startswith("BROKEN PROMISE") for x in m), to="orderflow.local"
    )
    told_customer = next(m for m in customer if "did not keep our promise" in m.subject)
    told_supervisor = next(m for m in supervisor if m.subject.startswith("BROKEN PROMISE"))
    assert told_customer.message_id != told_supervisor.message_id
    order = [m.message_id for m in stack.mail(oid)]
    assert order.index(told_customer.message_id) < order.index(told_supervisor.message_id)
    # The parcel still arrives: the order completes, the promise stays broken.
    await stack.app.carrier_event(oid, CarrierEvent(event="picked-up"))
    await stack.app.carrier_event(oid, CarrierEvent(event="delivered"))
    view = await stack.until(oid, lambda v: v.status == "completed")
    assert [p.status for p in view.promises] == ["broken"]
    # Its only timers are the marks of tasks that call out (workflows/support/gate.py).
    timers = [
        e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        async for e in stack.client.get_workflow_handle(
            order_workflow_id(oid)
        ).fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]
    assert timers and set(timers) == {MARK_FOR}


async def test_a_promise_breaks_at_its_due_time_not_when_the_servers_timer_queue_reads(
    stack: Stack,
) -> None:
    """The order's timer wakes it about a second early; the rest is waited out in the worker, so
    the promise breaks at its due time, never before, and the customer hears of it then. (A
    wake-up that itself comes after the due time, on a busy machine, has nothing to wait out.)"""
    oid = await held_order(stack)
    made = await stack.app.make_promise(oid, callback(timedelta(seconds=4)))
    due = made.due_at
    mails = await stack.mail_until(
        oid, lambda m: any("did not keep our promise" in x.subject for x in m), to=CUSTOMER
    )
    told = next(m for m in mails if "did not keep our promise" in m.subject)
    assert parsedate_to_datetime(told.date) >= due.replace(microsecond=0)
    view = await stack.app.view(oid)
    (promise,) = [p for p in view.promises if p.promise_id == made.promise_id]
    assert promise.status == "broken" and promise.settled_at is not None
    handle = stack.client.get_workflow_handle(order_workflow_id(oid))
    events = [e async for e in handle.fetch_history_events()]
    woke = max(
        e.event_time.ToDatetime(tzinfo=UTC)
        for e in events
        if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED
    )
    waits = [
        e
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == WAIT_UNTIL
    ]
    if woke < due:
        assert len(waits) == 1
        assert due <= promise.settled_at < due + timedelta(seconds=1)
    else:
        assert not waits and promise.settled_at >= due
