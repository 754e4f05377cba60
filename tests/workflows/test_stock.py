"""Real reservations: never oversold, first come first served, visible to every channel,
surviving continue-as-new."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from activities.stock import StockActivities
from domain.errors import OrderflowError
from domain.ids import order_workflow_id, stock_workflow_id
from domain.stock import (
    RESERVE_BATCH_UPDATE,
    ReleaseStock,
    ReserveBatch,
    ReserveRequest,
    ReserveStock,
    StockInput,
    StockReserved,
    StockView,
    batch_scope,
)
from orderflow.identity import KeyRing
from orderflow.service import call
from tests.conftest import FAST, Stack, acting
from workflows.stock import StockWorkflow


def start_op(
    stack: Stack, location: str, sku: str, on_hand: int, **kw: object
) -> WithStartWorkflowOperation:
    return WithStartWorkflowOperation(
        StockWorkflow.run,
        StockInput(location=location, sku=sku, on_hand=on_hand, **kw),
        id=stock_workflow_id(location, sku),
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        task_queue=stack.app.settings.task_queue,
    )


async def view(stack: Stack, location: str, sku: str) -> StockView:
    return await stack.client.get_workflow_handle(stock_workflow_id(location, sku)).query(
        StockWorkflow.reservations
    )


async def test_no_oversell_under_100_concurrent_reservations(stack: Stack) -> None:
    with acting("engine"):
        loc = stack.add_location({"PHONE-A5": 37})

        async def reserve(i: int) -> str:
            # The server admits 10 updates in flight per workflow; clients back off and retry.
            for attempt in range(200):
                try:
                    with acting("engine", order_id=f"O{i:03d}"):
                        result = await stack.client.execute_update_with_start_workflow(
                            StockWorkflow.reserve,
                            ReserveStock(order_id=f"O{i:03d}", qty=1),
                            start_workflow_operation=start_op(stack, loc, "PHONE-A5", 37),
                        )
                    return result.status
                except RPCError as err:
                    if err.status != RPCStatusCode.RESOURCE_EXHAUSTED:
                        raise
                    await asyncio.sleep(0.05 * (1 + attempt % 5))
            raise AssertionError("never admitted")

        statuses = await asyncio.gather(*(reserve(i) for i in range(100)))
        assert statuses.count("reserved") == 37 and statuses.count("waitlisted") == 63
        v = await view(stack, loc, "PHONE-A5")
        assert v.available == 0 and len(v.reserved) == 37 and len(v.waitlist) == 63
        assert sorted(r.order_id for r in v.reserved + v.waitlist) == [
            f"O{i:03d}" for i in range(100)
        ]


async def test_arrivals_are_allocated_first_come_first_served(stack: Stack) -> None:
    # Three orders for the same out-of-stock phone, placed one after another.
    ids = []
    for _ in range(3):
        placed, _ = await stack.app.place_order(stack.order(sku="PHONE-X12"))
        await stack.until(placed.order_id, lambda v: v.status == "waitlisted")
        ids.append(placed.order_id)
    positions = [(await stack.app.view(i)).reservation.position for i in ids]  # type: ignore[union-attr]
    assert positions == [1, 2, 3]
    mail = await stack.mail_until(ids[1], lambda m: any("number 2" in x.subject for x in m))
    assert (
        "e-mail you the moment stock arrives" in mail[-1].body
        or "We will e-mail you" in mail[-1].body
    )

    received = await stack.app.receive_stock(stack.location, "PHONE-X12", 2, "DN-100")
    assert received.allocated_to == ids[:2]
    for oid in ids[:2]:
        await stack.until(oid, lambda v: v.status in ("shipping", "in_transit"))
        await stack.mail_until(oid, lambda m: any("stock arrived" in x.subject for x in m))
    third = await stack.app.view(ids[2])
    assert third.status == "waitlisted" and third.reservation.position == 1  # type: ignore[union-attr]
    # The same delivery note again is not counted twice.
    again = await stack.app.receive_stock(stack.location, "PHONE-X12", 2, "DN-100")
    assert again.duplicate and again.allocated_to == []


async def test_reserve_and_release_are_idempotent(stack: Stack) -> None:
    with acting("engine", order_id="A"):
        loc = stack.add_location({"CASE-X12": 5})
        op = start_op(stack, loc, "CASE-X12", 5)
        first = await stack.client.execute_update_with_start_workflow(
            StockWorkflow.reserve, ReserveStock(order_id="A", qty=2), start_workflow_operation=op
        )
        again = await stack.client.execute_update_with_start_workflow(
            StockWorkflow.reserve,
            ReserveStock(order_id="A", qty=2),
            start_workflow_operation=start_op(stack, loc, "CASE-X12", 5),
        )
        assert (
            first.status == again.status == "reserved"
            and (await view(stack, loc, "CASE-X12")).available == 3
        )
        handle = stack.client.get_workflow_handle(stock_workflow_id(loc, "CASE-X12"))
        one = await handle.execute_update(StockWorkflow.release, ReleaseStock(order_id="A"))
        two = await handle.execute_update(StockWorkflow.release, ReleaseStock(order_id="A"))
        assert one.released and not two.released
        assert (await view(stack, loc, "CASE-X12")).available == 5


async def test_continue_as_new_keeps_every_reservation_and_position(stack: Stack) -> None:
    with acting("engine"):
        loc = stack.add_location({"PHONE-A5": 3})
        for i in range(8):
            with acting("engine", order_id=f"O{i}"):
                await stack.client.execute_update_with_start_workflow(
                    StockWorkflow.reserve,
                    ReserveStock(order_id=f"O{i}", qty=1),
                    start_workflow_operation=start_op(
                        stack, loc, "PHONE-A5", 3, continue_as_new_after=3
                    ),
                )
        handle = stack.client.get_workflow_handle(stock_workflow_id(loc, "PHONE-A5"))
        for _ in range(100):
            desc = await handle.describe()
            if desc.raw_description.workflow_execution_info.first_run_id != desc.run_id:
                break
            await asyncio.sleep(0.05)
        assert desc.raw_description.workflow_execution_info.first_run_id != desc.run_id, (
            "never continued as new"
        )
        v = await view(stack, loc, "PHONE-A5")
        assert [r.order_id for r in v.reserved] == ["O0", "O1", "O2"]
        assert [r.order_id for r in v.waitlist] == ["O3", "O4", "O5", "O6", "O7"]


async def test_stock_take_shortfall_puts_youngest_reservation_back_in_line(stack: Stack) -> None:
    # Two store-pickup orders hold their units on the shelf while the count happens.
    slow_pickup = FAST.model_copy(update={"pickup_window": timedelta(minutes=5)})
    placed = []
    for _ in range(2):
        view_, _ = await stack.app.place_order(
            stack.order(sku="CASE-X12", qty=100, pickup=True, policy=slow_pickup)
        )
        await stack.until(view_.order_id, lambda v: v.status == "ready_for_pickup")
        placed.append(view_.order_id)
    adjusted = await stack.app.adjust_stock(stack.location, "CASE-X12", 150, "shelf count")
    assert adjusted.on_hand == 150 and adjusted.waitlisted == [placed[1]]
    older = await stack.app.view(placed[0])
    younger = await stack.until(placed[1], lambda v: v.status == "waitlisted")
    assert older.reservation.status == "reserved"  # type: ignore[union-attr]
    assert younger.reservation.position == 1  # type: ignore[union-attr]
    await stack.mail_until(placed[1], lambda m: any("count fell short" in x.subject for x in m))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda app, loc: app.receive_stock(loc, "PHONE-A5", -3, ""), "at least 1"),
        (lambda app, loc: app.receive_stock(loc, "NOPE", 3, ""), "unknown SKU"),
        (lambda app, loc: app.receive_stock("nowhere", "PHONE-A5", 3, ""), "unknown location"),
        (lambda app, loc: app.adjust_stock(loc, "PHONE-A5", -1, "count"), "cannot be negative"),
        (lambda app, loc: app.adjust_stock(loc, "PHONE-A5", 4, " "), "must not be empty"),
    ],
)
async def test_bad_stock_input_is_refused_and_nothing_changes(
    stack: Stack, call, message: str
) -> None:
    before = await stack.app.stock(stack.location, "PHONE-A5")
    with pytest.raises(OrderflowError, match=message):
        await call(stack.app, stack.location)
    assert await stack.app.stock(stack.location, "PHONE-A5") == before


async def test_bad_quantity_in_a_reservation_is_refused_by_the_validator(stack: Stack) -> None:
    with acting("engine", order_id="ok"):
        loc = stack.add_location({"PHONE-A5": 3})
        await stack.client.execute_update_with_start_workflow(
            StockWorkflow.reserve,
            ReserveStock(order_id="ok", qty=1),
            start_workflow_operation=start_op(stack, loc, "PHONE-A5", 3),
        )
        handle = stack.client.get_workflow_handle(stock_workflow_id(loc, "PHONE-A5"))
        with pytest.raises(OrderflowError, match="at least 1"), acting("engine", order_id="bad"):
            await call(
                handle.execute_update(StockWorkflow.reserve, ReserveStock(order_id="bad", qty=0)),
                what="stock",
            )
        assert (await view(stack, loc, "PHONE-A5")).available == 2


async def test_store_pickup_expires_and_cancels_when_not_collected(stack: Stack) -> None:
    placed, _ = await stack.app.place_order(stack.order(pickup=True))
    oid = placed.order_id
    await stack.until(oid, lambda v: v.status == "ready_for_pickup")
    stock = (await stack.app.stock(stack.location, "PHONE-A5"))[0]
    assert [r.order_id for r in stock.reserved] == [oid]
    view_ = await stack.until(oid, lambda v: v.status == "cancelled", timeout=15)
    assert view_.cancelled_reason == "not collected in time" and view_.payment == "voided"
    stock = (await stack.app.stock(stack.location, "PHONE-A5"))[0]
    assert stock.available == 10 and not stock.reserved
    mails = await stack.mail_until(oid, lambda m: any("cancelled" in x.subject for x in m))
    assert any("ready to collect" in m.subject for m in mails)


async def test_store_pickup_collected_in_time_completes(stack: Stack) -> None:
    placed, _ = await stack.app.place_order(stack.order(pickup=True))
    oid = placed.order_id
    await stack.until(oid, lambda v: v.status == "ready_for_pickup")
    with pytest.raises(OrderflowError, match="waits for collection at"):
        await stack.app.pickup(oid, "store-mall")
    await stack.app.pickup(oid, stack.location)
    view_ = await stack.until(oid, lambda v: v.status == "completed")
    assert view_.charged == view_.total
    stock = (await stack.app.stock(stack.location, "PHONE-A5"))[0]
    assert stock.on_hand == 9 and stock.available == 9


async def test_a_stock_record_started_with_a_bad_input_ends_at_once_and_frees_its_id(
    stack: Stack,
) -> None:
    """A record started from outside with a made-up input fails no workflow task (which would
    leave every order of that SKU waiting on it): it ends at once, and the engine's next
    reservation starts the record afresh."""
    loc = stack.add_location({"PHONE-A5": 4})
    wid = stock_workflow_id(loc, "PHONE-A5")
    handle = await stack.client.start_workflow(
        "StockWorkflow",
        {"location": loc, "sku": "PHONE-A5", "on_hand": "lots", "extra": 1},
        id=wid,
        task_queue=stack.app.settings.task_queue,
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), 20)
    assert "stock record rejected" in str(failed.value.cause)
    assert "on_hand" in str(failed.value.cause)
    events = [e.event_type async for e in handle.fetch_history_events()]
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in events
    placed = await stack.place(location=loc)
    # Reserved on the fresh record (and soon collected by the carrier), never waitlisted.
    view = await stack.until(
        placed.order_id,
        lambda v: v.reservation is not None and v.reservation.status in ("reserved", "collected"),
    )
    assert view.reservation is not None and view.reservation.location == loc


async def test_a_forged_stock_signal_changes_nothing_and_the_real_one_still_applies(
    stack: Stack,
) -> None:
    """A stock record's signal is a claim the order checks against the record: "allocated"
    sent by anyone else to a waitlisted order leaves it waitlisted; stock that arrives for
    real reserves it."""
    placed = await stack.place(sku="PHONE-X12")  # none in stock: the order waits in line
    oid = placed.order_id
    await stack.until(oid, lambda v: v.status == "waitlisted")
    config = stack.client.config()
    config["interceptors"] = []
    outsider = Client(**config)
    await outsider.get_workflow_handle(order_workflow_id(oid)).signal(
        "stock_allocated",
        {"location": stack.location, "sku": "PHONE-X12", "qty": 1, "reference": "forged"},
    )
    await stack.quiet(order_workflow_id(oid))
    view = await stack.app.view(oid)
    assert view.status == "waitlisted"
    assert view.reservation is not None and view.reservation.status == "waitlisted"
    await stack.app.receive_stock(stack.location, "PHONE-X12", 1, "DN-REAL")
    await stack.until(
        oid,
        lambda v: v.reservation is not None and v.reservation.status in ("reserved", "collected"),
    )


def stock_calls(stack: Stack) -> StockActivities:
    """The order's stock calls, as the worker holds them: one per worker process."""
    return StockActivities(
        stack.client, stack.app.settings.task_queue, KeyRing(stack.app.settings.keys_path)
    )


async def reserve_updates(stack: Stack, location: str, sku: str) -> list[str]:
    """The updates the stock record's current run accepted, by name."""
    handle = stack.client.get_workflow_handle(stock_workflow_id(location, sku))
    return [
        e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
        for e in (await handle.fetch_history()).events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]


async def test_reservations_arriving_together_go_in_batches_each_answered_with_its_place_in_line(
    stack: Stack,
) -> None:
    loc = stack.add_location({"PHONE-A5": 25})
    calls = stock_calls(stack)

    async def reserve(i: int, stagger: float = 0.0) -> StockReserved:
        await asyncio.sleep(stagger)
        return await calls.reserve(
            ReserveRequest(
                location=loc, sku="PHONE-A5", order_id=f"O{i:03d}", qty=1, initial_on_hand=25
            )
        )

    # 80 from one worker within a few tens of milliseconds, far past the server's 10 updates in
    # flight per record: the first go alone, those that follow in batches.
    answers = await asyncio.gather(*(reserve(i, i / 2000) for i in range(80)))
    reserved = [a for a in answers if a.status == "reserved"]
    waiting = sorted((a for a in answers if a.status == "waitlisted"), key=lambda a: a.position)
    assert len(reserved) == 25 and len(waiting) == 55
    assert [a.position for a in waiting] == list(range(1, 56))
    v = await view(stack, loc, "PHONE-A5")
    assert v.available == 0 and len(v.reserved) == 25
    # The record's line is the order the answers gave, and every order is in it once.
    assert [r.order_id for r in v.waitlist] == [a.order_id for a in waiting]
    assert sorted(r.order_id for r in v.reserved + v.waitlist) == [f"O{i:03d}" for i in range(80)]
    updates = await reserve_updates(stack, loc, "PHONE-A5")
    assert "reserve_batch" in updates and len(updates) < 80
    # Asked again (an activity's retry), each order gets its own reservation back, nothing more.
    again = await asyncio.gather(*(reserve(i) for i in range(80)))
    assert [(a.order_id, a.status, a.position) for a in again] == [
        (a.order_id, a.status, a.position) for a in answers
    ]
    assert len((await view(stack, loc, "PHONE-A5")).waitlist) == 55


async def test_a_batch_with_a_reservation_the_record_refuses_costs_the_others_nothing(
    stack: Stack,
) -> None:
    loc = stack.add_location({"PHONE-A5": 50})
    calls = stock_calls(stack)
    asks = [
        ReserveRequest(
            location=loc,
            sku="PHONE-A5",
            order_id=f"O{i:02d}",
            qty=0 if i == 7 else 1,
            initial_on_hand=50,
        )
        for i in range(20)
    ]
    answers = await asyncio.gather(*(calls.reserve(a) for a in asks), return_exceptions=True)
    refused = [a for a in answers if isinstance(a, BaseException)]
    assert len(refused) == 1 and "at least 1" in str(refused[0])
    v = await view(stack, loc, "PHONE-A5")
    assert sorted(r.order_id for r in v.reserved) == [f"O{i:02d}" for i in range(20) if i != 7]
    assert v.available == 31


OTHER_BATCH = batch_scope([ReserveStock(order_id="O01", qty=1)])


@pytest.mark.parametrize(
    ("principal", "order_id", "message"),
    [
        ("billing", None, "only the engine"),
        ("engine", None, "not for this batch"),
        ("engine", "O01", "not for this batch"),
        # A token read from the record's history for another batch carries nothing else.
        ("engine", OTHER_BATCH, "not for this batch"),
    ],
)
async def test_only_the_engine_sends_a_batch_with_a_token_for_that_batch(
    stack: Stack, principal: str, order_id: str | None, message: str
) -> None:
    loc = stack.add_location({"PHONE-A5": 5})
    await stock_calls(stack).reserve(
        ReserveRequest(location=loc, sku="PHONE-A5", order_id="first", qty=1, initial_on_hand=5)
    )
    handle = stack.client.get_workflow_handle(stock_workflow_id(loc, "PHONE-A5"))
    batch = ReserveBatch(
        reservations=[ReserveStock(order_id="O01", qty=1), ReserveStock(order_id="O02", qty=1)]
    )
    with pytest.raises(OrderflowError, match=message), acting(principal, order_id=order_id):
        await call(handle.execute_update(RESERVE_BATCH_UPDATE, batch), what="stock")
    v = await view(stack, loc, "PHONE-A5")
    assert [r.order_id for r in v.reserved] == ["first"] and v.available == 4
