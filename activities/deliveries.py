"""The order's read of its delivery's reports: a query of the delivery workflow, so that what
the order applies is what the delivery recorded, never what a signal claims."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from domain.delivery import READ_DELIVERY_REPORTS, DeliveryReport, ReadReports


class DeliveryReadActivities:
    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name=READ_DELIVERY_REPORTS)
    async def read_delivery_reports(self, req: ReadReports) -> list[DeliveryReport]:
        handle = self.client.get_workflow_handle(req.workflow_id)
        return await handle.query("reports_after", req.after, result_type=list[DeliveryReport])
