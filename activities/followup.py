"""Finding orders that ended outside the engine, and reading what they had done.

The sweep lists the task queue's orders that were terminated, timed out or failed, and starts
one follow-up for each. The follow-up's id (``order-followup-<order_id>``) is never reused, so
each ended order is followed up exactly once, however often the sweep runs or restarts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHistoryEventFilterType,
)
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from domain.carrier import booking_key
from domain.followup import EndedAs, EndedOrder, FollowUpInput, SweepRequest
from domain.ids import followup_workflow_id, order_workflow_id
from domain.order import PlaceOrderInput
from domain.view import OrderView

log = structlog.get_logger("orderflow.followup")

# How far back the sweep looks for ended orders.
LOOK_BACK = timedelta(days=7)
ENDED = {
    WorkflowExecutionStatus.TERMINATED: EndedAs.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT: EndedAs.TIMED_OUT,
    WorkflowExecutionStatus.FAILED: EndedAs.FAILED,
}


class FollowUpActivities:
    def __init__(
        self, client: Client, status: SearchAttributeKey[str], customer: SearchAttributeKey[str]
    ) -> None:
        # The follow-up's search attributes, handed in by the worker that defines them.
        self.client = client
        self.status = status
        self.customer = customer

    @activity.defn
    async def start_followups(self, req: SweepRequest) -> list[str]:
        """Start a follow-up for every ended order that has none yet; returns their order ids."""
        since = (datetime.now(UTC) - LOOK_BACK).strftime("%Y-%m-%dT%H:%M:%SZ")
        query = (
            f"WorkflowType = 'OrderWorkflow' AND TaskQueue = '{req.task_queue}' AND "
            "ExecutionStatus IN ('Terminated', 'TimedOut', 'Failed') AND "
            f"CloseTime > '{since}'"
        )
        started = []
        async for wf in self.client.list_workflows(query):
            order_id = wf.id.removeprefix("order-")
            ended_as = ENDED.get(wf.status) if wf.status else None
            if ended_as is None:
                continue
            inp = FollowUpInput(
                order_id=order_id,
                ended_as=ended_as,
                ended_at=wf.close_time,
                failure_type=await self._failure_type(wf.id, wf.run_id)
                if ended_as == EndedAs.FAILED
                else "",
            )
            customer = wf.typed_search_attributes.get(self.customer) or ""
            try:
                await self.client.start_workflow(
                    "FollowUpWorkflow",
                    inp,
                    id=followup_workflow_id(order_id),
                    task_queue=req.task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    search_attributes=TypedSearchAttributes(
                        [
                            SearchAttributePair(self.status, ended_as.value),
                            SearchAttributePair(self.customer, customer),
                        ]
                    ),
                    static_summary=f"Follow-up of order {order_id}, {ended_as.value} "
                    "outside the engine",
                )
            except WorkflowAlreadyStartedError:
                continue
            started.append(order_id)
            # What an operator alerts on: an order ended by something other than the engine.
            log.warning("order_ended_outside", order_id=order_id, ended_as=ended_as.value)
            activity.metric_meter().create_counter(
                "orderflow_orders_ended_outside", "Orders ended outside the engine"
            ).add(1, {"ended_as": ended_as.value})
        return started

    async def _failure_type(self, workflow_id: str, run_id: str | None) -> str:
        handle = self.client.get_workflow_handle(workflow_id, run_id=run_id)
        async for event in handle.fetch_history_events(
            event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT
        ):
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
                failure = event.workflow_execution_failed_event_attributes.failure
                return failure.application_failure_info.type
        return ""

    @activity.defn
    async def read_ended_order(self, order_id: str) -> EndedOrder:
        """What the order ran on and its last view (queries, which the worker answers by
        replaying the closed order)."""
        handle = self.client.get_workflow_handle(order_workflow_id(order_id))
        inp: PlaceOrderInput = await handle.query("order_input", result_type=PlaceOrderInput)
        view: OrderView = await handle.query("view", result_type=OrderView)
        departments = {d.department: d for d in inp.departments}
        alert = [
            email
            for name in ("fulfilment", "care")
            if name in departments
            for email in (departments[name].notify_email, departments[name].supervisor_email)
            if email
        ]
        res = view.reservation
        last = view.deliveries[-1] if view.deliveries else None
        return EndedOrder(
            order_id=order_id,
            customer_id=inp.customer.customer_id,
            customer_email=inp.customer.email,
            status=view.status,
            payment=view.payment,
            total=view.total,
            charged=view.charged,
            reservation_location=res.location if res else "",
            reservation_sku=res.sku if res else "",
            reservation_status=res.status if res else "",
            open_booking=booking_key(last.workflow_id)
            if last and last.tracking and not last.status.terminal
            else "",
            alert_emails=alert,
        )
