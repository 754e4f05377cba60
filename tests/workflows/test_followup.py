"""Orders ended outside the engine are noticed: the customer is told the truth, the payment is
voided, the stock released, and staff find a follow-up record; each ended order once."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from temporalio.client import WorkflowExecutionStatus

from domain.followup import FollowUpResult
from domain.ids import followup_workflow_id
from orderflow.worker import ensure_sweep_schedule, sweep_schedule_id
from tests.conftest import FAST, Stack
from workflows.search_attributes import CUSTOMER_ID, ORDER_STATUS

SLOW_PICKUP = FAST.model_copy(update={"pickup_window": timedelta(minutes=10)})


async def test_a_terminated_order_is_compensated_and_explained_once(stack: Stack) -> None:
    placed, _ = await stack.app.place_order(stack.order(pickup=True, policy=SLOW_PICKUP))
    oid = placed.order_id
    running, _ = await stack.app.place_order(stack.order(pickup=True, policy=SLOW_PICKUP))
    for order_id in (oid, running.order_id):
        await stack.until(order_id, lambda v: v.status == "ready_for_pickup")
    # What `temporal workflow terminate -w order-<id>` does.
    await stack.client.get_workflow_handle(f"order-{oid}").terminate(reason="operator error")

    stack.app.settings.sweep_every = timedelta(seconds=1)
    await ensure_sweep_schedule(stack.client, stack.app.settings)
    await ensure_sweep_schedule(stack.client, stack.app.settings)  # idempotent
    schedule = stack.client.get_schedule_handle(sweep_schedule_id(stack.app.settings.task_queue))
    try:
        followup = stack.client.get_workflow_handle(
            followup_workflow_id(oid), result_type=FollowUpResult
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                result = await followup.result()
                break
            except Exception:
                assert time.monotonic() < deadline, "no follow-up within 30 s"
                await asyncio.sleep(0.5)
        assert result.ended_as == "terminated" and not result.rejected
        assert [e.kind for e in stack.ledger.entries(oid)] == ["authorize", "void"]
        stock = (await stack.app.stock(stack.location, "PHONE-A5"))[0]
        assert oid not in [r.order_id for r in stock.reserved]
        assert running.order_id in [r.order_id for r in stock.reserved]
        told = await stack.mail_until(
            oid,
            lambda m: any("has been stopped" in x.subject for x in m),
            to="maria.lopez@example.com",
        )
        stopped = next(m for m in told if "has been stopped" in m.subject)
        assert "voided the payment authorization" in stopped.body
        assert "released the item" in stopped.body
        alerts = await stack.mail_until(oid, lambda m: any("ALERT" in x.subject for x in m))
        assert {m.to for m in alerts if "ALERT" in m.subject} >= {
            "fulfilment@orderflow.local",
            "omar.haddad@orderflow.local",
        }
        desc = await followup.describe()
        assert desc.typed_search_attributes.get(ORDER_STATUS) == "terminated"
        assert desc.typed_search_attributes.get(CUSTOMER_ID) == "C-1001"

        # Later sweeps find it followed up already; the running order is left alone.
        await asyncio.sleep(2.5)
        runs = [
            wf
            async for wf in stack.client.list_workflows(
                f"WorkflowId = '{followup_workflow_id(oid)}'"
            )
        ]
        assert len(runs) == 1
        assert [e.kind for e in stack.ledger.entries(oid)] == ["authorize", "void"]
        still = await stack.client.get_workflow_handle(f"order-{running.order_id}").describe()
        assert still.status == WorkflowExecutionStatus.RUNNING
        assert len([m for m in stack.mail(oid) if "has been stopped" in m.subject]) == 1
    finally:
        await schedule.delete()
