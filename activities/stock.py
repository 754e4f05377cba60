"""The order's calls to stock records. A workflow cannot send updates to another workflow, so
these activities do it: reserve creates the record on first use (update-with-start). They act as
the engine: only the engine reserves and releases stock for orders, and its token says so."""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError

from domain.ids import stock_workflow_id
from domain.stock import (
    MAX_BATCH,
    READ_STOCK_RECORD,
    RELEASE_UPDATE,
    RESERVE_BATCH_UPDATE,
    RESERVE_UPDATE,
    STOCK_WORKFLOW,
    ReadStock,
    ReleaseRequest,
    ReleaseStock,
    ReserveBatch,
    ReserveRequest,
    ReserveStock,
    StockBatchReserved,
    StockCall,
    StockInput,
    StockReleased,
    StockReserved,
    StockView,
    batch_scope,
)
from orderflow.auth import acting_as, signing
from orderflow.identity import ENGINE, KeyRing

# A stock record that cannot answer in this time is retried later, on a durable timer, rather
# than holding the order's workflow task (and a worker's shutdown) indefinitely.
CALL_TIMEOUT = timedelta(seconds=4)


# The server admits 10 updates in flight per workflow; past that, calls are refused and
# retried, and throughput collapses. One worker keeps its own calls to a record below that.
PER_RECORD = 8
# Of those, reservation calls out to one record at once from one worker: a reservation goes
# at once, alone, while fewer are out; once this many are out, the reservations that reach this
# worker for the record wait for one to come back and then go together.
CALLS_IN_FLIGHT = 4

Waiting = tuple[ReserveRequest, "asyncio.Future[StockReserved]"]


class _Line:
    """The reservations waiting to be sent to one stock record, in arrival order, and how many
    calls are out to it."""

    def __init__(self) -> None:
        self.waiting: deque[Waiting] = deque()
        self.out = 0


class StockActivities:
    """Reservations are sent by group commit. A reservation goes at once, alone (the
    ``reserve`` update, with a token for its order), while fewer than ``CALLS_IN_FLIGHT`` calls
    are out to its record from this worker; the reservations that arrive once that many are out
    wait for one to come back, and go together, in arrival order, as one ``reserve_batch``
    update (with a token scoped to that batch's reservations). A hot record then takes many
    reservations per workflow task instead of one, and no longer meets the server's 10-updates
    ceiling. A batch the record refuses (one of its reservations would be refused alone) is sent
    again one by one, so only the reservation at fault is refused. ``batches=False`` sends every
    reservation alone: for rolling this release out beside workers of one whose stock records
    do not know ``reserve_batch`` (README, Upgrading)."""

    def __init__(
        self,
        client: Client,
        task_queue: str,
        keys: KeyRing,
        *,
        batches: bool = True,
        continue_as_new_after: int | None = None,
    ) -> None:
        # Signs what it sends with the engine's key from ``keys``.
        self.client = signing(client, keys)
        self.task_queue = task_queue
        self.batches = batches
        # For records this creates: hand over to a fresh run after this many changes (the
        # record's own default when None; the stock bench sets it low to cross hand-overs).
        self.continue_as_new_after = continue_as_new_after
        self._gates: dict[str, asyncio.Semaphore] = {}
        self._lines: dict[str, _Line] = {}
        self._senders: set[asyncio.Task[None]] = set()

    def _gate(self, workflow_id: str) -> asyncio.Semaphore:
        return self._gates.setdefault(workflow_id, asyncio.Semaphore(PER_RECORD))

    @activity.defn(name=StockCall.RESERVE.value)
    async def reserve_stock(self, req: ReserveRequest) -> StockReserved:
        return await self.reserve(req)

    async def reserve(self, req: ReserveRequest) -> StockReserved:
        """Reserve for one order, together with whatever else is waiting for its record."""
        if not self.batches:
            return await self.reserve_alone(req)
        wf_id = stock_workflow_id(req.location, req.sku)
        line = self._lines.setdefault(wf_id, _Line())
        done: asyncio.Future[StockReserved] = asyncio.get_running_loop().create_future()
        line.waiting.append((req, done))
        if line.out < CALLS_IN_FLIGHT:
            line.out += 1
            sender = asyncio.create_task(self._send_while_waiting(wf_id, line))
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        return await done

    async def _send_while_waiting(self, wf_id: str, line: _Line) -> None:
        batch: list[Waiting] = []
        try:
            while line.waiting:
                batch = []
                while line.waiting and len(batch) < MAX_BATCH:
                    batch.append(line.waiting.popleft())
                await self._send(wf_id, batch)
        except BaseException as err:
            # Cancelled (the worker shutting down) or a fault: nobody is left waiting on it.
            _fail(batch, wf_id, err)
            if line.out == 1:
                _fail(list(line.waiting), wf_id, err)
                line.waiting.clear()
            raise
        finally:
            line.out -= 1
            if not line.out and not line.waiting and self._lines.get(wf_id) is line:
                del self._lines[wf_id]

    async def _send(self, wf_id: str, batch: list[Waiting]) -> None:
        async with self._gate(wf_id):
            # Taken only now: a reservation whose attempt ended meanwhile is not sent.
            live = [(req, done) for req, done in batch if not done.done()]
            if len(live) == 1:
                await self._settle(*live[0], gated=True)
                return
            if not live:
                return
            try:
                answer = await self._reserve_batch([req for req, _ in live])
            except WorkflowUpdateFailedError:
                refused = True
            except Exception as err:  # the server or the record could not be reached
                _fail(live, wf_id, err)
                return
            else:
                refused = False
                for (_, done), reserved in zip(live, answer.reservations, strict=True):
                    if not done.done():
                        done.set_result(reserved)
        if refused:
            # Refused whole: each alone, so only the reservation at fault is refused.
            await asyncio.gather(*(self._settle(req, done) for req, done in live))

    async def _settle(
        self, req: ReserveRequest, done: asyncio.Future[StockReserved], *, gated: bool = False
    ) -> None:
        if done.done():
            return
        try:
            reserved = await (self._reserve_one(req) if gated else self.reserve_alone(req))
        except Exception as err:
            if not done.done():
                done.set_exception(err)
        else:
            if not done.done():
                done.set_result(reserved)

    def _start(self, req: ReserveRequest) -> WithStartWorkflowOperation[Any, Any]:
        return WithStartWorkflowOperation(
            STOCK_WORKFLOW,
            StockInput(
                location=req.location,
                sku=req.sku,
                on_hand=req.initial_on_hand,
                **(
                    {"continue_as_new_after": self.continue_as_new_after}
                    if self.continue_as_new_after
                    else {}
                ),
            ),
            id=stock_workflow_id(req.location, req.sku),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            task_queue=self.task_queue,
            static_summary=f"Stock of {req.sku} at {req.location}",
        )

    async def _reserve_batch(self, reqs: list[ReserveRequest]) -> StockBatchReserved:
        cmds = [ReserveStock(order_id=r.order_id, qty=r.qty) for r in reqs]
        # The token names this batch's reservations: it carries no other.
        with acting_as(ENGINE, "engine", batch_scope(cmds)):
            batch: StockBatchReserved = await self.client.execute_update_with_start_workflow(
                RESERVE_BATCH_UPDATE,
                ReserveBatch(reservations=cmds),
                start_workflow_operation=self._start(reqs[0]),
                result_type=StockBatchReserved,
                rpc_timeout=CALL_TIMEOUT,
            )
        return batch

    async def reserve_alone(self, req: ReserveRequest) -> StockReserved:
        """One ``reserve`` update for one reservation."""
        async with self._gate(stock_workflow_id(req.location, req.sku)):
            return await self._reserve_one(req)

    async def _reserve_one(self, req: ReserveRequest) -> StockReserved:
        try:
            with acting_as(ENGINE, "engine", req.order_id):
                reserved: StockReserved = await self.client.execute_update_with_start_workflow(
                    RESERVE_UPDATE,
                    ReserveStock(order_id=req.order_id, qty=req.qty),
                    start_workflow_operation=self._start(req),
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


def _fail(waiting: list[Waiting], wf_id: str, err: BaseException) -> None:
    """Each reservation still waiting fails with an error of its own (its activity retries)."""
    for _, done in waiting:
        if not done.done():
            done.set_exception(
                ApplicationError(f"stock record {wf_id} was not reached: {err!r}", type="Unreached")
            )


class StockReadActivities:
    """The order's read of a stock record, to confirm what the record's signal said."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name=READ_STOCK_RECORD)
    async def read_stock_record(self, req: ReadStock) -> StockView:
        handle = self.client.get_workflow_handle(stock_workflow_id(req.location, req.sku))
        return await handle.query("reservations", result_type=StockView)
