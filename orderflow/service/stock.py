"""Stock records: receipts, stock takes, and what every location holds."""

from __future__ import annotations

import contextlib
from typing import Any

from temporalio.client import WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

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

    def _keeper(self) -> contextlib.AbstractContextManager[None]:
        """Stock counts change as stock control (or the store that ``--as`` names)."""
        return self.acting(
            Principal(kind=PrincipalKind.DEPARTMENT, id=STOCK_CONTROL), default_actor()
        )

    async def receive_stock(
        self, location: str, sku: str, qty: int, reference: str
    ) -> StockReceived:
        if qty <= 0:
            raise InvalidInput(f"--qty must be at least 1 (got {qty})")
        with self._keeper():
            return await call(
                self.client.execute_update_with_start_workflow(
                    StockWorkflow.receive,
                    ReceiveStock(qty=qty, reference=reference),
                    start_workflow_operation=self._stock_start(location, sku),
                ),
                what=f"stock of {sku} at {location}",
                address=self.address,
            )

    async def adjust_stock(self, location: str, sku: str, count: int, reason: str) -> StockAdjusted:
        if count < 0:
            raise InvalidInput(f"--count cannot be negative (got {count})")
        if not reason.strip():
            raise InvalidInput("--reason must not be empty")
        with self._keeper():
            return await call(
                self.client.execute_update_with_start_workflow(
                    StockWorkflow.adjust,
                    AdjustStock(count=count, reason=reason),
                    start_workflow_operation=self._stock_start(location, sku),
                ),
                what=f"stock of {sku} at {location}",
                address=self.address,
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
