"""What one order takes: caps on holds, promises and e-mail, far-off due dates refused, and a
start input that fails the door ends the order at once, marked rejected, telling no one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError

from domain.base import MAX_ACTIVE_HOLDS, MAX_OPEN_PROMISES
from domain.errors import InvalidInput, LimitReached
from domain.holds import PlaceHold, ReleaseHold
from domain.ids import order_workflow_id
from domain.promises import MakePromise
from tests.conftest import Stack, acting


def hold(n: int) -> PlaceHold:
    return PlaceHold(
        department="billing",
        actor="ana",
        reason_code="arrears",
        customer_message=f"Invoice {n} is unpaid.",
        reference=f"INV-{n}",
    )


def promise(n: int, due_in: timedelta = timedelta(days=2)) -> MakePromise:
    return MakePromise(
        department="care",
        actor="ben",
        kind="callback",
        text=f"We will call you back ({n}).",
        due_at=datetime.now(UTC) + due_in,
        reference=f"CALL-{n}",
    )


async def test_an_order_takes_a_bounded_number_of_active_holds(stack: Stack) -> None:
    oid, _ = await stack.place_held(hold(0))
    for n in range(1, MAX_ACTIVE_HOLDS):
        await stack.app.place_hold(oid, hold(n))
    before = await stack.app.view(oid)
    assert len(before.holds) == MAX_ACTIVE_HOLDS
    with pytest.raises(LimitReached, match="10 active holds"):
        await stack.app.place_hold(oid, hold(99))
    assert await stack.app.view(oid) == before
    # A retried call still answers with the hold it placed.
    again = await stack.app.place_hold(oid, hold(3))
    assert again.hold_id == "H4"
    # Releasing one makes room for the next.
    await stack.app.release_hold(
        oid, ReleaseHold(hold_id="H1", department="billing", actor="ana", resolution="paid")
    )
    placed = await stack.app.place_hold(oid, hold(99))
    assert placed.hold_id == f"H{MAX_ACTIVE_HOLDS + 1}"


async def test_an_order_takes_a_bounded_number_of_open_promises(stack: Stack) -> None:
    oid, _ = await stack.place_held()
    for n in range(MAX_OPEN_PROMISES):
        await stack.app.make_promise(oid, promise(n))
    before = await stack.app.view(oid)
    with pytest.raises(LimitReached, match="20 open promises"):
        await stack.app.make_promise(oid, promise(99))
    assert await stack.app.view(oid) == before


async def test_a_promise_due_beyond_a_hundred_years_is_refused(stack: Stack) -> None:
    oid, _ = await stack.place_held()
    before = await stack.app.view(oid)
    with pytest.raises(InvalidInput, match=r"due_at .* more than 100 years away"):
        await stack.app.make_promise(oid, promise(1, due_in=timedelta(days=365 * 101)))
    assert await stack.app.view(oid) == before


async def start_with_hold(stack: Stack, inp: dict[str, Any], hold: dict[str, Any]) -> Any:
    """Start the order with a hold on it (update-with-start), as a plain SDK client does."""
    start = WithStartWorkflowOperation(
        "OrderWorkflow",
        inp,
        id=order_workflow_id(inp["order_id"]),
        task_queue=stack.app.settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )
    return await stack.client.execute_update_with_start_workflow(
        "place_hold", hold, start_workflow_operation=start
    )


async def _history(stack: Stack, workflow_id: str) -> list[Any]:
    handle = stack.client.get_workflow_handle(workflow_id)
    return [event async for event in handle.fetch_history_events()]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lines": [{"sku": "PHONE-A5", "qty": 10**9}]}, "qty"),
        ({"refrence": "x"}, "refrence"),
        ({"actor": "x" * 100_000}, "the message is"),
        ({"actor": "ana\u202e"}, "actor"),
        ({"pickup": "false"}, "pickup"),
        # What the engine owns cannot be sent.
        ({"lines": [{"sku": "PHONE-A5", "qty": 1, "unit_price": "0"}]}, "unit_price"),
        ({"policy": {"dispute_sla": "PT1S"}}, "policy"),
        ({"lines": [{"sku": f"SKU-{n}", "qty": 1} for n in range(51)]}, "lines"),
        # What the registry does not know ends the order too, naming the field.
        ({"customer_id": "C-0000"}, "customer_id"),
        ({"lines": [{"sku": "NO-SUCH-SKU", "qty": 1}]}, "lines[0].sku"),
        ({"location": "nowhere"}, "location"),
        ({"carrier": "pigeon"}, "carrier"),
        ({"pickup": True}, "carrier"),
    ],
    ids=[
        "quantity-1e9",
        "unknown-field",
        "100KB-actor",
        "bidi-override",
        "flag-as-string",
        "caller-price",
        "caller-policy",
        "51-lines",
        "unknown-customer",
        "unknown-sku",
        "unknown-location",
        "unknown-carrier",
        "pickup-with-carrier",
    ],
)
async def test_an_order_started_with_a_bad_input_ends_at_once_marked_rejected(
    stack: Stack, change: dict[str, Any], field: str
) -> None:
    with acting("desk:web"):
        # A department system starts the order through Temporal directly, with a hand-written input.
        inp = stack.order().model_dump(mode="json")
        inp.update(change)
        workflow_id = order_workflow_id(inp["order_id"])
        handle = await stack.client.start_workflow(
            "OrderWorkflow", inp, id=workflow_id, task_queue=stack.app.settings.task_queue
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await asyncio.wait_for(handle.result(), 20)
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == "InvalidInput" and cause.non_retryable
        assert field in cause.message
        desc = await handle.describe()
        assert desc.search_attributes.get("OrderStatus") == ["rejected"]
        # Its view says so rather than show an order that never was.
        with pytest.raises(WorkflowQueryFailedError, match="rejected"):
            await handle.query("view")
        events = await _history(stack, workflow_id)
        kinds = {e.event_type for e in events}
        assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in kinds
        # Nothing was done or said: no call but the registry's look-up, no child, no e-mail, no
        # charge.
        called = {
            e.activity_task_scheduled_event_attributes.activity_type.name
            for e in events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        }
        assert called <= {"order_terms", "placement_terms"}
        assert EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED not in kinds
        assert not any(
            e.marker_recorded_event_attributes.marker_name == "core_local_activity"
            for e in events
            if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        )
        assert stack.mail(inp["order_id"]) == []
        assert stack.ledger.entries(inp["order_id"]) == []


async def test_a_start_input_carrying_its_own_terms_is_refused(stack: Stack) -> None:
    """The whole input an older version took from its caller (and still replays): a price of
    0, a recipient and a department with a ten-year SLA of the caller's choosing."""
    whole = stack.app._placed(stack.order()).model_dump(mode="json")
    whole["lines"][0]["unit_price"] = "0"
    whole["customer"]["email"] = "someone@elsewhere.example"
    whole["departments"].append(
        {
            "department": "intern",
            "name": "Intern",
            "notify_email": "x@elsewhere.example",
            "supervisor": "nobody",
            "supervisor_email": "x@elsewhere.example",
            "hold_sla": "P3650D",
            "reason_codes": {"because": "Because."},
        }
    )
    handle = await stack.client.start_workflow(
        "OrderWorkflow",
        whole,
        id=order_workflow_id(whole["order_id"]),
        task_queue=stack.app.settings.task_queue,
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), 20)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidInput"
    assert "customer: unknown field" in cause.message and "customer_id" in cause.message
    assert stack.mail(whole["order_id"]) == []
    assert stack.ledger.entries(whole["order_id"]) == []


async def test_an_order_started_directly_runs_on_the_engines_prices_people_and_clock(
    stack: Stack,
) -> None:
    """The caller names the customer, the SKU and the store; the price, the recipient, the
    departments and their SLAs are the registry's, whatever the caller believes them to be."""
    inp = stack.order(hold_sla=timedelta(hours=6)).model_dump(mode="json")
    workflow_id = order_workflow_id(inp["order_id"])
    # A hold that comes with the start, from a department the registry does not have, is
    # refused before anything is recorded; the order starts all the same.
    intern = {"department": "intern", "reason_code": "because", "customer_message": "Wait."}
    with pytest.raises(WorkflowUpdateFailedError) as failed, acting("billing", starter="desk:web"):
        await start_with_hold(stack, inp, intern)
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.type == "NotFound" and "intern" in failed.value.cause.message
    view = await stack.until(inp["order_id"], lambda v: v.status == "shipping")
    assert view.total == 349 and view.holds == []
    assert [(e.kind, float(e.amount)) for e in stack.ledger.entries(inp["order_id"])] == [
        ("authorize", 349.0)
    ]
    mails = await stack.mail_until(inp["order_id"], lambda m: len(m) >= 1)
    assert {m.to for m in mails} == {"maria.lopez@example.com"}
    # A hold from billing runs on billing's SLA as the worker has it.
    placed = await stack.app.place_hold(
        inp["order_id"],
        PlaceHold(department="billing", reason_code="arrears", customer_message="Unpaid."),
    )
    held = await stack.app.view(inp["order_id"])
    [hold] = [h for h in held.holds if h.hold_id == placed.hold_id]
    assert hold.sla_due_at - hold.placed_at == timedelta(hours=6)
    events = await _history(stack, workflow_id)
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in {e.event_type for e in events}
    assert not any("intern" in str(e) for e in events)


async def test_a_hold_sent_with_a_rejected_start_is_refused_too(stack: Stack) -> None:
    inp = stack.order().model_dump(mode="json")
    inp["actor"] = "desk\u202e"
    workflow_id = order_workflow_id(inp["order_id"])
    hold = {"department": "care", "reason_code": "customer_request", "customer_message": "Wait."}
    with pytest.raises(WorkflowUpdateFailedError) as failed, acting("care", starter="desk:web"):
        await start_with_hold(stack, inp, hold)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and "rejected" in cause.message
    handle = stack.client.get_workflow_handle(workflow_id)
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), 20)
    assert stack.mail(inp["order_id"]) == []
