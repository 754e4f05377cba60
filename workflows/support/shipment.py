"""The order's side of its running delivery: the child workflow it started, and the reports the
delivery signalled that the order has not applied yet. A delivery is the order's child; only the
order talks to the customer, so every report ends up applied here, in the order it was made."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from domain.delivery import DeliveryInput, DeliveryOutcome, DeliveryReport
    from workflows.delivery import DeliveryWorkflow


class Shipment:
    def __init__(self) -> None:
        self._child: Any = None
        self._reports: list[DeliveryReport] = []

    def received(self, reports: list[DeliveryReport]) -> None:
        """Reports the delivery signalled; applied by ``follow`` in the run."""
        self._reports.extend(reports)

    async def start(self, delivery: DeliveryInput, *, workflow_id: str, order_id: str) -> None:
        """Start the delivery (when this workflow task completes)."""
        self._child = await workflow.start_child_workflow(
            DeliveryWorkflow.run,
            delivery,
            id=workflow_id,
            static_summary=f"Delivery {delivery.delivery_id} of order {order_id} "
            f"with {delivery.carrier}",
        )

    async def follow(
        self,
        apply: Callable[[DeliveryReport], None],
        wait: Callable[[Callable[[], bool]], Awaitable[None]],
    ) -> DeliveryOutcome:
        """Apply the delivery's reports as they come, until it ends; then what it had not
        reported yet (routine movements, then how it ended). ``wait`` may raise to stop."""
        while True:
            await wait(self._news)
            while self._reports:
                apply(self._reports.pop(0))
            if self._child.done() and not self._reports:
                break
        outcome: DeliveryOutcome = self._child.result()
        self._child = None
        for report in outcome.reports:
            apply(report)
        return outcome

    def _news(self) -> bool:
        return bool(self._reports) or self._child.done()

    async def cancel(self) -> bool:
        """Cancel a running delivery (its booking goes with it). True when one was running."""
        if self._child is None or self._child.done():
            return False
        self._child.cancel()
        with contextlib.suppress(ChildWorkflowError, asyncio.CancelledError):
            await self._child
        return True
