"""Stock records: receipts, stock takes, and what every location holds."""

from __future__ import annotations

from typing import Any, TypeVar

from temporalio.client import WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.workflow import UpdateMethodMultiParam

from domain import stock as rules
from domain.authority import STOCK_CONTROL
from domain.errors import InvalidInput
from domain.ids import stock_workflow_id
from domain.stock import (
    AdjustStock,
    ReceiveStock,
    StockAdjusted,
    StockInput,
    StockReceived,
    StockState,
    StockView,
)
from orderflow.auth import default_actor
from orderflow.identity import Principal, PrincipalKind
from orderflow.service.base import ServiceBase
from orderflow.service.calls import NoSuchWorkflow, call
from workflows.stock import StockWorkflow

C = TypeVar("C")
R = TypeVar("R")


class StockService(ServiceBase):
    def _stock_start(self, location: str, sku: str) -> WithStartWorkflowOperation[Any, Any]:
        loc = self.registry.location(location)
        self.registry.sku(sku)
        return WithStartWorkflowOperation(
            StockWorkflow.run,
            StockInput(location=location, sku=sku, on_hand=loc.stock.get(sku, 0)),
            id=stock_workflow_id(location, sku),
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            task_queue=self.settings.task_queue,
            static_summary=f"Stock of {sku} at {location}",
        )

    async def _change(
        self,
        location: str,
        sku: str,
        update: UpdateMethodMultiParam[[StockWorkflow, C], R],
        cmd: C,
    ) -> R:
        """A change to a stock count, sent as stock control (or the store ``--as`` names),
        starting the record when it is new."""
        keeper = Principal(kind=PrincipalKind.DEPARTMENT, id=STOCK_CONTROL)
        with self.acting(keeper, default_actor()):
            return await call(
                self.client.execute_update_with_start_workflow(
                    update, cmd, start_workflow_operation=self._stock_start(location, sku)
                ),
                what=f"stock of {sku} at {location}",
                address=self.address,
            )

    async def receive_stock(
        self, location: str, sku: str, qty: int, reference: str
    ) -> StockReceived:
        if qty <= 0:
            raise InvalidInput(f"--qty must be at least 1 (got {qty})")
        return await self._change(
            location, sku, StockWorkflow.receive, ReceiveStock(qty=qty, reference=reference)
        )

    async def adjust_stock(self, location: str, sku: str, count: int, reason: str) -> StockAdjusted:
        if count < 0:
            raise InvalidInput(f"--count cannot be negative (got {count})")
        if not reason.strip():
            raise InvalidInput("--reason must not be empty")
        return await self._change(
            location, sku, StockWorkflow.adjust, AdjustStock(count=count, reason=reason)
        )

    async def stock(self, location: str, sku: str | None = None) -> list[StockView]:
        """Each SKU's record at the location; one never used shows the registry's count."""
        loc = self.registry.location(location)
        skus = [self.registry.sku(sku).sku] if sku else list(self.registry.skus)
        views: list[StockView] = []
        for s in skus:
            handle = self.client.get_workflow_handle_for(
                StockWorkflow.run, stock_workflow_id(location, s)
            )
            try:
                views.append(
                    await call(
                        handle.query(StockWorkflow.reservations), what="stock", address=self.address
                    )
                )
            except NoSuchWorkflow:
                on_hand = loc.stock.get(s, 0)
                if sku or on_hand:
                    views.append(rules.view(StockState(location=location, sku=s, on_hand=on_hand)))
        return views
