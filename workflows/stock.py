"""StockWorkflow: one SKU at one location. The reservations every store, the call centre and the
web share; never oversells because every change runs through this one workflow."""

from __future__ import annotations

import contextlib
from typing import Annotated

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import authority
    from domain import stock as rules
    from domain.authority import Caller
    from domain.base import Model
    from domain.errors import InvalidInput, OrderflowError, WrongState
    from domain.ids import order_workflow_id
    from domain.stock import (
        RELEASE_UPDATE,
        RESERVE_BATCH_UPDATE,
        RESERVE_UPDATE,
        STOCK_WORKFLOW,
        AdjustStock,
        ReceiveStock,
        ReleaseStock,
        ReserveBatch,
        ReserveStock,
        StockAdjusted,
        StockAllocated,
        StockBatchReserved,
        StockInput,
        StockReceived,
        StockReleased,
        StockReserved,
        StockState,
        StockView,
        StockWithdrawn,
        WaitlistMoved,
    )
    from workflows.support.refusals import NO_INPUT, accepted, admitted, door


# Stock records started from now on refuse a start input that fails the door.
STOCK_START_AT_DOOR = "stock-start-at-door"


@workflow.defn(name=STOCK_WORKFLOW)
class StockWorkflow:
    @workflow.init
    def __init__(self, raw: Annotated[RawValue, StockInput] = NO_INPUT) -> None:
        # A start input that fails the door (a record started from outside with a made-up
        # input) ends the record at once, as an order's does: its workflow id is free again
        # for the engine's next reservation, and no workflow task fails on it.
        self.refusal: OrderflowError | None = None
        inp = self._input(raw)
        self.inp = inp
        # A state is carried only from the record's previous run (continue-as-new); a first
        # run starts from its count, whatever else a start input says.
        carried = inp.state if workflow.info().continued_run_id else None
        self.state = carried or StockState(location=inp.location, sku=inp.sku, on_hand=inp.on_hand)
        self.changes = 0
        # Who sent the update being validated: set by the credentials interceptor.
        self.caller: Caller | None = None

    def _input(self, raw: RawValue) -> StockInput:
        if workflow.info().continued_run_id:
            # The record's own previous run handed it over (it may be large): taken as it is.
            return accepted(raw, StockInput)
        try:
            return admitted(raw, StockInput, "the stock record's start input")
        except OrderflowError as err:
            refusal = err
        if not workflow.patched(STOCK_START_AT_DOOR):
            # History keeps what older versions took: a replay reads it as they did.
            with contextlib.suppress(ValueError, AssertionError):
                return accepted(raw, StockInput)
        self.refusal = refusal
        return StockInput(location="", sku="")

    def _open(self) -> None:
        if self.refusal is not None:
            raise WrongState(f"this stock record was started with a bad input: {self.refusal}")

    @workflow.run
    async def run(self, raw: Annotated[RawValue, StockInput] = NO_INPUT) -> None:
        if self.refusal is not None:
            workflow.logger.warning("stock record rejected at the door: %s", self.refusal)
            raise ApplicationError(
                f"stock record rejected: {self.refusal}",
                type=InvalidInput.__name__,
                non_retryable=True,
            )
        inp = self.inp
        workflow.set_current_details(self._details())
        await workflow.wait_condition(self._should_continue_as_new)
        # Let running handlers finish (their signals to orders included) before handing over.
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            StockInput(
                location=self.state.location,
                sku=self.state.sku,
                state=self.state,
                continue_as_new_after=inp.continue_as_new_after,
            )
        )

    def _should_continue_as_new(self) -> bool:
        limit = self.inp.continue_as_new_after
        return workflow.info().is_continue_as_new_suggested() or self.changes >= limit

    def _details(self) -> str:
        s = self.state
        return (
            f"**{s.sku} at {s.location}**: {s.on_hand} on hand, {s.available} available, "
            f"{len(s.reservations) - s.waiting} reserved, {s.waiting} waiting"
        )

    def _changed(self) -> None:
        self.changes += 1
        workflow.set_current_details(self._details())

    async def _tell(self, order_id: str, signal: str, payload: Model) -> None:
        handle = workflow.get_external_workflow_handle(order_workflow_id(order_id))
        try:
            await handle.signal(signal, payload)
        except Exception:  # the order finished meanwhile; nothing left to tell
            workflow.logger.info("order %s no longer running; %s not delivered", order_id, signal)

    def _positions(self) -> dict[str, int]:
        return {r.order_id: i for i, r in enumerate(self.state.waitlist, start=1)}

    async def _line_moved(self, before: dict[str, int]) -> None:
        """Tell every order still waiting whose place in line changed."""
        for order_id, position in self._positions().items():
            if before.get(order_id) not in (None, position):
                await self._tell(
                    order_id,
                    "waitlist_moved",
                    WaitlistMoved(
                        location=self.state.location, sku=self.state.sku, position=position
                    ),
                )

    async def _allocated(self, orders: list[rules.StockReservation], reference: str) -> None:
        for r in orders:
            await self._tell(
                r.order_id,
                "stock_allocated",
                StockAllocated(
                    location=self.state.location, sku=self.state.sku, qty=r.qty, reference=reference
                ),
            )

    # -- reserve ---------------------------------------------------------------------------

    @workflow.update(name=RESERVE_UPDATE)
    def reserve(self, raw: Annotated[RawValue, ReserveStock] = NO_INPUT) -> StockReserved:
        cmd = accepted(raw, ReserveStock)
        result = rules.reserve(self.state, cmd, workflow.now())
        self._changed()
        return result

    @reserve.validator
    def validate_reserve(self, raw: Annotated[RawValue, ReserveStock] = NO_INPUT) -> None:
        def rule(cmd: ReserveStock) -> None:
            self._open()
            authority.check_engine(self.caller, "reserve stock for an order", cmd.order_id)
            rules.check_reserve(self.state, cmd)

        door(raw, ReserveStock, RESERVE_UPDATE, rule)

    # -- reserve_batch: the reservations that reached one worker together --------------------

    @workflow.update(name=RESERVE_BATCH_UPDATE)
    def reserve_batch(
        self, raw: Annotated[RawValue, ReserveBatch] = NO_INPUT
    ) -> StockBatchReserved:
        batch = accepted(raw, ReserveBatch)
        result = rules.reserve_batch(self.state, batch.reservations, workflow.now())
        self._changed()
        return result

    @reserve_batch.validator
    def validate_reserve_batch(self, raw: Annotated[RawValue, ReserveBatch] = NO_INPUT) -> None:
        def rule(batch: ReserveBatch) -> None:
            self._open()
            authority.check_engine_for_batch(
                self.caller,
                "reserve stock for a batch of orders",
                rules.batch_scope(batch.reservations),
            )
            rules.check_reserve_batch(self.state, batch.reservations)

        door(raw, ReserveBatch, RESERVE_BATCH_UPDATE, rule)

    # -- release ---------------------------------------------------------------------------

    @workflow.update(name=RELEASE_UPDATE)
    async def release(self, raw: Annotated[RawValue, ReleaseStock] = NO_INPUT) -> StockReleased:
        cmd = accepted(raw, ReleaseStock)
        before = self._positions()
        released, allocated = rules.release(self.state, cmd)
        self._changed()
        await self._allocated(allocated, f"released by {cmd.order_id}")
        await self._line_moved(before)
        return StockReleased(
            order_id=cmd.order_id, released=released, allocated_to=[r.order_id for r in allocated]
        )

    @release.validator
    def validate_release(self, raw: Annotated[RawValue, ReleaseStock] = NO_INPUT) -> None:
        door(
            raw,
            ReleaseStock,
            RELEASE_UPDATE,
            lambda cmd: (
                self._open(),
                authority.check_engine(self.caller, "release an order's stock", cmd.order_id),
            ),
        )

    # -- receive ---------------------------------------------------------------------------

    @workflow.update
    async def receive(self, raw: Annotated[RawValue, ReceiveStock] = NO_INPUT) -> StockReceived:
        cmd = accepted(raw, ReceiveStock)
        before = self._positions()
        result = rules.receive(self.state, cmd)
        self._changed()
        await self._allocated(
            [r for r in self.state.reservations if r.order_id in result.allocated_to], cmd.reference
        )
        await self._line_moved(before)
        return result

    @receive.validator
    def validate_receive(self, raw: Annotated[RawValue, ReceiveStock] = NO_INPUT) -> None:
        def rule(cmd: ReceiveStock) -> None:
            self._open()
            authority.check_stock_keeper(self.caller, self.state.location, "receive stock")
            rules.check_receive(self.state, cmd)

        door(raw, ReceiveStock, "receive", rule)

    # -- adjust ----------------------------------------------------------------------------

    @workflow.update
    async def adjust(self, raw: Annotated[RawValue, AdjustStock] = NO_INPUT) -> StockAdjusted:
        cmd = accepted(raw, AdjustStock)
        before = self._positions()
        bumped, allocated = rules.adjust(self.state, cmd)
        self._changed()
        for r in bumped:
            await self._tell(
                r.order_id,
                "stock_withdrawn",
                StockWithdrawn(
                    location=self.state.location,
                    sku=self.state.sku,
                    position=self.state.position(r.order_id) or 0,
                    reason=cmd.reason,
                ),
            )
        await self._allocated(allocated, f"stock count: {cmd.reason}")
        await self._line_moved(before)
        return StockAdjusted(
            on_hand=self.state.on_hand,
            waitlisted=[r.order_id for r in bumped],
            allocated_to=[r.order_id for r in allocated],
        )

    @adjust.validator
    def validate_adjust(self, raw: Annotated[RawValue, AdjustStock] = NO_INPUT) -> None:
        def rule(cmd: AdjustStock) -> None:
            self._open()
            authority.check_stock_keeper(self.caller, self.state.location, "adjust a stock count")
            rules.check_adjust(self.state, cmd)

        door(raw, AdjustStock, "adjust", rule)

    # -- query -----------------------------------------------------------------------------

    @workflow.query
    def reservations(self) -> StockView:
        return rules.view(self.state)
