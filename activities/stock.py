"""The order's calls to stock records. A workflow cannot send updates to another workflow, so
these activities do it: reserve creates the record on first use (update-with-start). They act as
the engine: only the engine reserves and releases stock for orders, and its token says so."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError

from domain.ids import stock_workflow_id
from domain.stock import (
    READ_STOCK_RECORD,
    RELEASE_UPDATE,
    RESERVE_UPDATE,
    STOCK_WORKFLOW,
    ReadStock,
    ReleaseRequest,
    ReleaseStock,
    ReserveRequest,
    ReserveStock,
    StockCall,
    StockInput,
    StockReleased,
    StockReserved,
    StockView,
)
from orderflow.auth import acting_as, signing
from orderflow.identity import ENGINE, KeyRing

# A stock record that cannot answer in this time is retried later, on a durable timer, rather
# than holding the order's workflow task (and a worker's shutdown) indefinitely.
CALL_TIMEOUT = timedelta(seconds=4)


# The server admits 10 updates in flight per workflow; past that, calls are refused and
# retried, and throughput collapses. One worker keeps its own calls to a record below that.
PER_RECORD = 8


class StockActivities:
    def __init__(self, client: Client, task_queue: str, keys: KeyRing) -> None:
        # Signs what it sends with the engine's key from ``keys``.
        self.client = signing(client, keys)
        self.task_queue = task_queue
        self._gates: dict[str, asyncio.Semaphore] = {}

    def _gate(self, workflow_id: str) -> asyncio.Semaphore:
        return self._gates.setdefault(workflow_id, asyncio.Semaphore(PER_RECORD))

    @activity.defn(name=StockCall.RESERVE.value)
    async def reserve_stock(self, req: ReserveRequest) -> StockReserved:
        wf_id = stock_workflow_id(req.location, req.sku)
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            STOCK_WORKFLOW,
            StockInput(location=req.location, sku=req.sku, on_hand=req.initial_on_hand),
            id=wf_id,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            task_queue=self.task_queue,
            static_summary=f"Stock of {req.sku} at {req.location}",
        )
        try:
            async with self._gate(wf_id):
                with acting_as(ENGINE, "engine", req.order_id):
                    reserved: StockReserved = await self.client.execute_update_with_start_workflow(
                        RESERVE_UPDATE,
                        ReserveStock(order_id=req.order_id, qty=req.qty),
                        start_workflow_operation=start,
                        result_type=StockReserved,
                        rpc_timeout=CALL_TIMEOUT,
                    )
            return reserved
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError):
                raise ApplicationError(cause.message, type=cause.type, non_retryable=True) from err
            raise

    @activity.defn(name=StockCall.RELEASE.value)
    async def release_stock(self, req: ReleaseRequest) -> StockReleased:
        wf_id = stock_workflow_id(req.location, req.sku)
        handle = self.client.get_workflow_handle(wf_id)
        async with self._gate(wf_id):
            with acting_as(ENGINE, "engine", req.order_id):
                released: StockReleased = await handle.execute_update(
                    RELEASE_UPDATE,
                    ReleaseStock(order_id=req.order_id, collected=req.collected),
                    result_type=StockReleased,
                    rpc_timeout=CALL_TIMEOUT,
                )
        return released


class StockReadActivities:
    """The order's read of a stock record, to confirm what the record's signal said."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name=READ_STOCK_RECORD)
    async def read_stock_record(self, req: ReadStock) -> StockView:
        handle = self.client.get_workflow_handle(stock_workflow_id(req.location, req.sku))
        return await handle.query("reservations", result_type=StockView)
