"""The order's terms: what the engine adds to a ``PlaceOrder`` from its own registry
(``orderflow.desk``). Run once per order, as an activity, so its answer is recorded."""

from __future__ import annotations

from temporalio import activity

from domain.order import PlaceOrder, TermsDecision
from orderflow.desk import OrderDesk


class TermsActivities:
    def __init__(self, desk: OrderDesk) -> None:
        self.desk = desk

    @activity.defn(name="order_terms")
    async def order_terms(self, req: PlaceOrder) -> TermsDecision:
        return self.desk.decide(req)
