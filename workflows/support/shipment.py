"""The order's side of its running delivery: the child workflow it started, and the reports the
delivery signalled that the order has not applied yet. A delivery is the order's child; only the
order talks to the customer, so every report ends up applied here, in the order it was made."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from domain.delivery import (
        READ_DELIVERY_REPORTS,
        DeliveryInput,
        DeliveryOutcome,
        DeliveryReport,
        ReadReports,
    )
    from workflows.delivery import DeliveryWorkflow


# Deliveries started from now on are read from (``DeliveryInput.reports_read``): a signal
# only says there is news, whoever sent it.
READ_REPORTS = "delivery-reports-read"
READ_TIMEOUT = timedelta(seconds=10)


class Shipment:
    def __init__(self, patched: Callable[[str], bool]) -> None:
        # How the order asks whether it makes a change (workflows/support/changes.py).
        self._patched = patched
        self._child: Any = None
        self._reports: list[DeliveryReport] = []
        # The running delivery's reports are read from it, and how many have been.
        self._reads = False
        self._read = 0
        self._poked = False

    def received(self, reports: list[DeliveryReport]) -> None:
        """Reports the delivery signalled; applied by ``follow`` in the run. A delivery the
        order reads from only says it has news: the signal's content is not taken, so a
        signal from anyone else changes nothing."""
        if self._reads:
            self._poked = True
            return
        self._reports.extend(reports)

    async def start(self, delivery: DeliveryInput, *, workflow_id: str, order_id: str) -> None:
        """Start the delivery (when this workflow task completes)."""
        self._reads = self._patched(READ_REPORTS)
        self._read, self._poked = 0, False
        if self._reads:
            delivery = delivery.model_copy(update={"reports_read": True})
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
            if self._poked and not self._child.done():
                self._poked = False
                await self._read_news()
            while self._reports:
                apply(self._reports.pop(0))
            if self._child.done() and not self._reports:
                break
        outcome: DeliveryOutcome = self._child.result()
        self._child = None
        # A delivery read from sends every report in its outcome: those not read yet apply.
        for report in outcome.reports[self._read :] if self._reads else outcome.reports:
            apply(report)
        return outcome

    async def _read_news(self) -> None:
        """The delivery's reports since the last read, from the delivery itself (recorded:
        a replay reads the same)."""
        news: list[DeliveryReport] = await workflow.execute_local_activity(
            READ_DELIVERY_REPORTS,
            ReadReports(workflow_id=self._child.id, after=self._read),
            result_type=list[DeliveryReport],
            start_to_close_timeout=READ_TIMEOUT,
            summary="read delivery reports",
        )
        self._read += len(news)
        self._reports.extend(news)

    def _news(self) -> bool:
        return bool(self._reports) or self._poked or self._child.done()

    async def cancel(self) -> bool:
        """Cancel a running delivery (its booking goes with it). True when one was running."""
        if self._child is None or self._child.done():
            return False
        self._child.cancel()
        with contextlib.suppress(ChildWorkflowError, asyncio.CancelledError):
            await self._child
        return True
