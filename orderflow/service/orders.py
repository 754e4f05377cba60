"""Orders: placing, showing, finding, cancelling and collecting them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from temporalio.client import WithStartWorkflowOperation, WorkflowQueryFailedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from domain import authority
from domain.authority import Caller
from domain.delivery import DeliveryState
from domain.errors import InvalidInput, NotFound, OrderflowError, WrongState
from domain.fulfilment import placed_view
from domain.holds import HoldPlaced, PlaceHold
from domain.ids import order_workflow_id
from domain.order import (
    CUSTOMER,
    MAX_ORDER_LINES,
    CancelOrder,
    CollectOrder,
    LineRequest,
    OrderCancelled,
    OrderStatus,
    PlaceOrder,
    PlaceOrderInput,
    ShipPolicy,
    placed_on_terms,
)
from domain.timeline import TimelineEntry
from domain.view import OrderView, running_delivery, with_live_delivery
from orderflow.auth import default_actor
from orderflow.identity import DESK, Principal, PrincipalKind
from orderflow.service.base import ServiceBase
from orderflow.service.calls import QUERY_TIMEOUT, call, first_error, quote
from workflows.delivery import DeliveryWorkflow
from workflows.order import OrderWorkflow
from workflows.search_attributes import CARRIER, CUSTOMER_ID, ORDER_STATUS


class OrderService(ServiceBase):
    def order_input(
        self,
        *,
        customer_id: str,
        sku: str | None = None,
        qty: int = 1,
        lines: Sequence[tuple[str, int]] = (),
        location: str | None,
        carrier: str | None,
        pickup: bool,
        order_id: str | None,
        any_location: bool = False,
        actor: str = "web",
        ship: str = "available",
    ) -> PlaceOrder:
        """The order as a caller places it: ``lines`` of (SKU, quantity), or one ``sku`` and
        ``qty``. Checked here against the registry for the CLI's wording; the engine prices it
        and adds its terms when it starts."""
        reg = self.registry
        customer = reg.customer(customer_id)
        wanted = list(lines) or ([(sku, qty)] if sku is not None else [])
        if not wanted:
            raise InvalidInput("an order needs at least one line")
        if len(wanted) > MAX_ORDER_LINES:
            raise InvalidInput(
                f"an order takes at most {MAX_ORDER_LINES} lines (got {len(wanted)})"
            )
        one = len(wanted) == 1
        for n, (item, units) in enumerate(wanted, start=1):
            where = "" if one else f"line {n}: "
            try:
                reg.sku(item)
            except NotFound as err:
                raise NotFound(f"{where}{err}") from None
            if units <= 0:
                raise InvalidInput(f"{where}quantity must be at least 1 (got {units})")
        if any_location:
            loc = reg.nearest_with_all(wanted)
            if loc is None:
                if location is None:
                    what = " and ".join(f"{units} x {item}" for item, units in wanted)
                    raise InvalidInput(
                        f"no location has {what} in stock; name one with --location to join its waitlist"
                    )
                loc = reg.location(location)
        elif location is None:
            raise InvalidInput("--location is required (or use --any-location)")
        else:
            loc = reg.location(location)
        if carrier is not None:
            reg.carrier(carrier)
        if ship not in set(ShipPolicy):
            raise InvalidInput(
                f"ship: '{ship}' is not a shipping policy; use available (what is reserved ships "
                "now, the rest as it arrives) or complete (one delivery once every line is "
                "reserved)"
            )
        if pickup and carrier is not None:
            raise InvalidInput(
                "--pickup and --carrier exclude each other: a pickup order is not shipped"
            )
        try:
            return PlaceOrder(
                order_id=order_id or f"ORD-{uuid.uuid4().hex[:8].upper()}",
                customer_id=customer.customer_id,
                lines=[LineRequest(sku=item, qty=units) for item, units in wanted],
                location=loc.location,
                carrier=carrier,
                pickup=pickup,
                ship=ShipPolicy(ship),
                actor=actor,
            )
        except ValueError as err:  # pydantic's ValidationError is a ValueError
            raise InvalidInput(first_error(err)) from None

    def _placed(self, req: PlaceOrder) -> PlaceOrderInput:
        """The order as its workflow will record it, on the terms the registry gives now."""
        return placed_on_terms(req, self.order_desk.terms(req), datetime.now(UTC))

    def _start_options(self, inp: PlaceOrderInput) -> dict[str, Any]:
        items = ", ".join(f"{line.qty} x {line.sku}" for line in inp.lines[:3])
        if len(inp.lines) > 3:
            items += f" and {len(inp.lines) - 3} more lines"
        return {
            "id": order_workflow_id(inp.order_id),
            "task_queue": self.settings.task_queue,
            "id_conflict_policy": WorkflowIDConflictPolicy.FAIL,
            "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
            "search_attributes": TypedSearchAttributes(
                [
                    SearchAttributePair(ORDER_STATUS, OrderStatus.PLACED.value),
                    SearchAttributePair(CUSTOMER_ID, inp.customer.customer_id),
                ]
                + ([SearchAttributePair(CARRIER, inp.carrier)] if inp.carrier else [])
            ),
            "static_summary": (
                f"Order {inp.order_id}: {items} for customer "
                f"{inp.customer.customer_id}, "
                + ("store pickup" if inp.pickup else f"delivery by {inp.carrier}")
                + f" from {inp.location}"
            ),
        }

    async def place_order(self, req: PlaceOrder) -> tuple[OrderView, bool]:
        """Start the order; with an id that exists already, return that order instead.

        Returns the view and whether this call created the order.
        """
        inp = self._placed(req)
        # Who may place it is the worker's rule; asked here too, so that a principal that
        # may not is told so now rather than by an order that ends rejected.
        placer = self.as_principal or DESK
        authority.check_places_order(
            Caller(kind=placer.kind.value, id=placer.id, actor=default_actor()),
            inp.customer.customer_id,
            inp.order_id,
        )
        try:
            with self.acting(DESK, default_actor(), inp.order_id):
                handle = await call(
                    self.client.start_workflow(OrderWorkflow.run, req, **self._start_options(inp)),
                    what=f"placing order {req.order_id}",
                    address=self.address,
                )
        except WorkflowAlreadyStartedError:
            return await self._view(self._order(req.order_id), req.order_id), False
        # The order as it stands when placed, without asking it: a query that reaches a new
        # order before its first workflow task starts rides on that task and makes the worker
        # close it early, with its first calls still running. Its placing time is its start's.
        started = await call(handle.describe(), what=f"order {req.order_id}")
        return placed_view(inp.model_copy(update={"placed_at": started.start_time})), True

    async def place_order_on_hold(self, req: PlaceOrder, hold: PlaceHold) -> HoldPlaced:
        """Start the order with a hold already on it, atomically (update-with-start): for a
        department whose check must come before the order's first step, such as a finance
        partner's approval at checkout. A refused hold starts nothing."""
        inp = self._placed(req)
        start = WithStartWorkflowOperation(OrderWorkflow.run, req, **self._start_options(inp))
        dept = Principal(kind=PrincipalKind.DEPARTMENT, id=hold.department)
        try:
            with self.acting(dept, hold.actor, inp.order_id, starter=DESK):
                return await call(
                    self.client.execute_update_with_start_workflow(
                        OrderWorkflow.place_hold, hold, start_workflow_operation=start
                    ),
                    what=f"placing order {inp.order_id}",
                    address=self.address,
                )
        except WorkflowAlreadyStartedError:
            raise WrongState(
                f"order {inp.order_id} exists already; place the hold on it instead"
            ) from None

    async def view(self, order_id: str) -> OrderView:
        """The order's view, with its running delivery's latest movements."""
        view = await self._view(self._order(order_id), order_id)
        summary = running_delivery(view)
        if summary is None:
            return view
        handle = self.client.get_workflow_handle_for(DeliveryWorkflow.run, summary.workflow_id)
        try:
            live: DeliveryState = await handle.query(DeliveryWorkflow.status)
        except (RPCError, WorkflowQueryFailedError):
            return view  # not started yet, or just closed: the order's record stands
        return with_live_delivery(view, live)

    async def timeline(self, order_id: str, *, known: bool = False) -> list[TimelineEntry]:
        """The order's timeline; ``known``: the caller has seen the order already, so no view
        is asked first for a clear "no order"."""
        if not known:
            await self.view(order_id)  # a clear "no order" first
        return await call(
            self._order(order_id).query(OrderWorkflow.timeline), what=f"order {order_id}"
        )

    async def cancel(self, order_id: str, cmd: CancelOrder) -> OrderCancelled:
        """Sent as the order's customer for a customer's cancel, else as the department."""
        if cmd.by == CUSTOMER:
            who = await self.customer_of(order_id)
        else:
            self.registry.department(cmd.by)  # an unknown one is named as such
            who = Principal(kind=PrincipalKind.DEPARTMENT, id=cmd.by)
        with self.acting(who, cmd.actor, order_id):
            return await self._update(order_id, OrderWorkflow.cancel, cmd)

    async def pickup(self, order_id: str, location: str, actor: str = "store") -> OrderView:
        """Sent as a clerk of the store where the order is collected."""
        self.registry.location(location)
        with self.acting(Principal(kind=PrincipalKind.STORE, id=location), actor, order_id):
            return await self._update(
                order_id, OrderWorkflow.pickup, CollectOrder(location=location, actor=actor)
            )

    async def list_orders(
        self,
        *,
        status: str | None = None,
        blocked_by: str | None = None,
        customer: str | None = None,
        older_than: datetime | None = None,
        limit: int = 500,
    ) -> list[OrderView]:
        """Visibility finds the candidates; each order's own view is the truth shown."""
        clauses = [
            "WorkflowType = 'OrderWorkflow'",
            f"TaskQueue = {quote(self.settings.task_queue)}",
        ]
        if status:
            clauses.append(f"OrderStatus = {quote(status)}")
        if blocked_by:
            self.registry.department(blocked_by)
            clauses.append(f"BlockedBy = {quote(blocked_by)}")
        if customer:
            clauses.append(f"CustomerId = {quote(customer)}")
        if older_than:
            clauses.append(f"StartTime < '{older_than.isoformat().replace('+00:00', 'Z')}'")
        query = " AND ".join(clauses)
        found = [wf async for wf in self._list(query, limit)]
        gate = asyncio.Semaphore(16)

        async def one(wf: Any) -> OrderView | None:
            async with gate:
                try:
                    return await call(
                        self.client.get_workflow_handle_for(
                            OrderWorkflow.run, wf.id, run_id=wf.run_id
                        ).query(OrderWorkflow.view, rpc_timeout=QUERY_TIMEOUT),
                        what=wf.id,
                    )
                except (OrderflowError, RPCError):
                    return None

        views: list[OrderView] = []
        for v in await asyncio.gather(*(one(wf) for wf in found)):
            # Visibility is eventually consistent; the order's own view decides.
            if v is None or (status and v.status != status):
                continue
            if blocked_by and blocked_by not in v.blocked_by:
                continue
            views.append(v)
        return views
