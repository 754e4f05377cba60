"""The order's terms: what the engine adds to a ``PlaceOrder`` from its own registry
(``orderflow.desk``). Run once per order, as an activity, so its answer is recorded."""

from __future__ import annotations

from temporalio import activity

from domain import authority
from domain.errors import NotAllowed, OrderflowError
from domain.ids import order_workflow_id
from domain.order import PlacementRequest, PlaceOrder, TermsDecision
from orderflow.auth import HEADER, caller_of
from orderflow.desk import OrderDesk


class TermsActivities:
    def __init__(self, desk: OrderDesk) -> None:
        self.desk = desk

    @activity.defn(name="order_terms")
    async def order_terms(self, req: PlaceOrder) -> TermsDecision:
        return self.desk.decide(req)

    @activity.defn(name="placement_terms")
    async def placement_terms(self, req: PlacementRequest) -> TermsDecision:
        """The terms of an order whose start carried a token of a principal that places
        orders; otherwise the refusal that rejects it."""
        trust = self.desk.trust
        try:
            if trust is None:
                raise NotAllowed(
                    "credential: this worker has no trust store to check tokens against"
                )
            if req.token is None:
                raise NotAllowed(
                    f"credential: no token in the {HEADER} header of the order's start "
                    "(orderflow token --as desk:web)"
                )
            here = activity.info().workflow_id
            if here != order_workflow_id(req.order.order_id):
                raise NotAllowed(
                    f"order_id: order {req.order.order_id} runs as workflow "
                    f"{order_workflow_id(req.order.order_id)}, not {here}"
                )
            caller = caller_of(req.token, trust, req.started_at)
            if caller.workflow_id is not None and caller.workflow_id != here:
                raise NotAllowed(
                    f"credential: the token was signed for {caller.workflow_id}, not {here}"
                )
            authority.check_places_order(caller, req.order.customer_id, req.order.order_id)
        except OrderflowError as err:
            return TermsDecision(refusal=str(err), refusal_type=err.type)
        decision = self.desk.decide(req.order)
        return decision.model_copy(update={"placed_by": caller})
