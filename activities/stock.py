"""The order's calls to stock records. A workflow cannot send updates to another workflow, so
these activities do it: reserve creates the record on first use (update-with-start)."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError

from domain.ids import stock_workflow_id
from domain.stock import ReleaseStock, ReserveStock, StockReleased, StockReserved
from workflows.stock import StockInput, StockWorkflow


class ReserveRequest(BaseModel):
    location: str
    sku: str
    order_id: str
    qty: int
    initial_on_hand: int = 0


class ReleaseRequest(BaseModel):
    location: str
    sku: str
    order_id: str
    collected: bool = False


class StockActivities:
    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    @activity.defn
    async def reserve_stock(self, req: ReserveRequest) -> StockReserved:
        start = WithStartWorkflowOperation(
            StockWorkflow.run,
            StockInput(location=req.location, sku=req.sku, on_hand=req.initial_on_hand),
            id=stock_workflow_id(req.location, req.sku),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            task_queue=self.task_queue,
            static_summary=f"Stock of {req.sku} at {req.location}",
        )
        try:
            return await self.client.execute_update_with_start_workflow(
                StockWorkflow.reserve,
                ReserveStock(order_id=req.order_id, qty=req.qty),
                start_workflow_operation=start,
            )
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError):
                raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from err
            raise

    @activity.defn
    async def release_stock(self, req: ReleaseRequest) -> StockReleased:
        handle = self.client.get_workflow_handle(stock_workflow_id(req.location, req.sku))
        return await handle.execute_update(
            StockWorkflow.release, ReleaseStock(order_id=req.order_id, collected=req.collected)
        )
