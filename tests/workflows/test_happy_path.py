"""An order runs end to end on the real server: reserve, authorize, ship, deliver, capture."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from activities.billing import Ledger
from domain.carrier import CarrierEvent
from domain.holds import PlaceHold, ReleaseHold
from domain.ids import order_workflow_id
from orderflow.smtp_sink import SmtpSink
from orderflow.worker import build_worker
from tests.conftest import Stack, app_beside_worker, stack_settings
from workflows.order import ORDER_CHANGES_0_10
from workflows.search_attributes import ORDER_STATUS


async def deliver(stack: Stack, order_id: str) -> None:
    await stack.until(
        order_id, lambda v: bool(v.deliveries) and v.deliveries[-1].status == "booked"
    )
    for event in ("picked-up", "delivered"):
        await stack.app.carrier_event(order_id, CarrierEvent(event=event))


async def test_order_is_delivered_charged_once_and_customer_told_each_step(stack: Stack) -> None:
    placed = await stack.place(sku="PHONE-A5", qty=2)
    oid = placed.order_id
    await deliver(stack, oid)
    view = await stack.until(oid, lambda v: v.status == "completed")

    assert view.total == 2 * 349 and view.charged == view.total
    assert view.payment == "captured"
    assert view.reservation is not None and view.reservation.status == "collected"
    assert view.deliveries[0].status == "delivered" and view.deliveries[0].tracking.startswith(
        "UPS"
    )
    assert [p.status for p in view.promises if p.kind == "delivery_window"] == ["kept"]

    kinds = [e.kind for e in await stack.app.timeline(oid)]
    assert kinds == [
        "placed",
        "reserved",
        "payment",
        "booked",
        "picked_up",
        "delivered",
        "completed",
    ]
    # The pickup is on the timeline; the customer already has the tracking number from the
    # booking e-mail, so it brings no e-mail of its own.
    mails = await stack.mail_until(oid, lambda m: len(m) == 6, to="maria.lopez@example.com")
    assert [m.subject.split(": ")[-1] for m in mails[3:]] == [
        "shipped with UPS",
        "delivered",
        "complete",
    ]
    assert len({m.message_id for m in mails}) == 6

    entries = stack.ledger.entries(oid)
    assert [(e.kind, float(e.amount)) for e in entries] == [
        ("authorize", 698.0),
        ("capture", 698.0),
    ]


async def test_repeated_place_with_same_id_returns_the_existing_order(stack: Stack) -> None:
    inp = stack.order()
    first, created = await stack.app.place_order(inp)
    again, created_again = await stack.app.place_order(inp)
    assert created and not created_again
    assert again.order_id == first.order_id and again.placed_at == first.placed_at
    # Leave the order at rest (booked, waiting for the carrier) before the worker stops.
    await stack.until(
        inp.order_id, lambda v: bool(v.deliveries) and v.deliveries[-1].status == "booked"
    )


async def test_visibility_finds_orders_by_status_and_customer(stack: Stack) -> None:
    placed = await stack.place(customer="C-1004")
    await stack.until(placed.order_id, lambda v: v.status == "shipping")
    found = await stack.until_listed(customer="C-1004", status="shipping", order_id=placed.order_id)
    assert found.customer_id == "C-1004"


async def test_placing_answers_at_once_while_no_worker_runs_and_a_hold_that_follows_counts(
    env: WorkflowEnvironment, sink: SmtpSink, tmp_path: Path
) -> None:
    settings = stack_settings(sink, tmp_path)
    stack = Stack(
        app_beside_worker(env.client, settings),
        sink.handler.dir,
        Ledger(settings.ledger_path),
    )
    inp = stack.order()
    # No worker serves this task queue yet: placing must not wait for one.
    placed, created = await asyncio.wait_for(stack.app.place_order(inp), timeout=5)
    assert created and placed.status == "placed" and placed.customer_emails == 1
    async with build_worker(env.client, settings, desk=stack.desk):
        # Billing holds the order the moment it is placed; the hold blocks the first step.
        hold = await stack.app.place_hold(
            inp.order_id,
            PlaceHold(
                department="billing",
                actor="ana",
                reason_code="arrears",
                customer_message="Your account shows 120.00 unpaid since October.",
                reference="INV-78",
            ),
        )
        held = await stack.until(inp.order_id, lambda v: v.blocked_by == ["billing"])
        assert held.placed_at == placed.placed_at
        await stack.app.release_hold(
            inp.order_id,
            ReleaseHold(
                hold_id=hold.hold_id, department="billing", actor="ana", resolution="Paid."
            ),
        )
        await stack.until(inp.order_id, lambda v: v.status == "shipping" and not v.blocked_by)


async def test_an_order_started_today_records_one_patch_marker_for_every_change(
    stack: Stack,
) -> None:
    """Each patch asked costs a history two events; an order started on this version records
    one marker for the thirteen changes it makes (workflows/support/changes.py), and indexes a
    status once it holds when the order's steps stop: the status its start set is not upserted
    again, nor one passed within a run of steps (delivered, then completed by the capture).
    A task that must carry a command before its call marks itself on a timer instead, with one
    timer armed at most (each upsert costs the server a visibility write)."""
    placed = await stack.place(sku="PHONE-A5", qty=1)
    oid = placed.order_id
    await deliver(stack, oid)
    await stack.until(oid, lambda v: v.status == "completed")

    async def patches(workflow_id: str) -> list[str]:
        handle = stack.client.get_workflow_handle(workflow_id)
        found = []
        async for e in handle.fetch_history_events():
            if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
                data = e.marker_recorded_event_attributes.details.get("patch-data")
                if data is not None:
                    found.append(json.loads(data.payloads[0].data)["id"])
        return found

    assert await patches(order_workflow_id(oid)) == [ORDER_CHANGES_0_10]

    statuses = []
    timers: list[str] = []
    handle = stack.client.get_workflow_handle(order_workflow_id(oid))
    async for e in handle.fetch_history_events():
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = e.upsert_workflow_search_attributes_event_attributes.search_attributes
            if "OrderStatus" in fields.indexed_fields:
                statuses.append(json.loads(fields.indexed_fields["OrderStatus"].data))
        elif e.event_type in (
            EventType.EVENT_TYPE_TIMER_STARTED,
            EventType.EVENT_TYPE_TIMER_CANCELED,
            EventType.EVENT_TYPE_TIMER_FIRED,
        ):
            timers.append(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_TIMER_"))
    assert statuses == ["shipping", "completed"]
    # Marked in its second task (reserve), third (book) and fourth (capture), in turn.
    assert timers == ["STARTED", "CANCELED", "STARTED"]
    described = await handle.describe()
    assert described.typed_search_attributes.get(ORDER_STATUS) == "completed"
