"""What the CLI, the demo and department systems do, as plain async functions over a client.

Every failure leaves here as an ``OrderflowError`` (a refusal: exit 2) or ``ServerUnreachable``
(exit 3), with a message a person can act on.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.carrier import CarrierEvent, CarrierEventRecorded
from domain.delivery import TERMINAL, DeliveryState, DeliveryUpdated, Redirect, Reschedule
from domain.errors import InvalidInput, OrderflowError, UnknownReference, WrongState
from domain.fulfilment import placed_view
from domain.holds import (
    DisputeHold,
    HoldDisputed,
    HoldPlaced,
    HoldReleased,
    HoldUpheld,
    PlaceHold,
    ReleaseHold,
    UpholdHold,
)
from domain.ids import delivery_workflow_id, order_workflow_id, stock_workflow_id
from domain.order import (
    CancelOrder,
    CollectOrder,
    OrderCancelled,
    OrderLine,
    OrderStatus,
    PlaceOrderInput,
    TimelineEntry,
)
from domain.promises import KeepPromise, MakePromise, PromiseKept, PromiseMade
from domain.registry import Policy
from domain.stock import (
    AdjustStock,
    ReceiveStock,
    StockAdjusted,
    StockInput,
    StockReceived,
    StockView,
)
from domain.view import STAGE_WORDS, OrderView
from orderflow.config import Settings
from orderflow.registry import Registry
from orderflow.temporal import ServerUnreachable
from workflows.delivery import DeliveryWorkflow
from workflows.order import OrderWorkflow
from workflows.search_attributes import CARRIER, CUSTOMER_ID, ORDER_STATUS
from workflows.stock import StockWorkflow

T = TypeVar("T")
QUERY_TIMEOUT = timedelta(seconds=10)
REFUSALS = {"InvalidInput", "UnknownReference", "NotAllowed", "WrongState"}


class NotFound(UnknownReference):
    """The server has no running workflow by that id (never started, or already closed)."""


def _refusal(err: ApplicationError) -> OrderflowError:
    cls = {"UnknownReference": UnknownReference, "WrongState": WrongState}.get(
        err.type or "", InvalidInput
    )
    return cls(err.message)


async def call(awaitable: Awaitable[T], *, what: str, address: str = "") -> T:
    """Await a Temporal call, turning its failures into errors a person can act on."""
    try:
        return await awaitable
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        while cause is not None and not isinstance(cause, ApplicationError):
            cause = cause.cause  # type: ignore[assignment]
        if isinstance(cause, ApplicationError):
            raise _refusal(cause) from None
        raise WrongState(f"{what} failed: {err}") from None
    except WorkflowQueryFailedError as err:
        raise WrongState(f"{what} failed: {err}") from None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(f"{what}: not found") from None
        if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise ServerUnreachable(address or "the configured address", str(err)) from None
        if err.status == RPCStatusCode.CANCELLED or "Timeout expired" in err.message:
            raise WrongState(f"{what}: no answer in time; the engine is busy, try again") from None
        if err.status == RPCStatusCode.FAILED_PRECONDITION and "completed" in err.message:
            raise WrongState(f"{what}: the workflow has already finished") from None
        raise


def not_ready(err: BaseException) -> bool:
    """The server could not hand the update to the workflow because the workflow task carrying
    it failed; the update was not applied (``WorkflowNotReadyFailure``)."""
    return (
        isinstance(err, RPCError)
        and err.status == RPCStatusCode.FAILED_PRECONDITION
        and any("WorkflowNotReadyFailure" in d.type_url for d in err.grpc_status.details)
    )


# Times an update the workflow was not ready for is sent again, and the pause before each.
NOT_READY_RETRIES = (0.2, 0.5, 1.0)


async def send_update(
    handle: WorkflowHandle[Any, Any], update: Any, arg: Any, *, what: str, address: str = ""
) -> Any:
    """Send an update. One that the workflow was not ready for (its task failed for a moment,
    as when a query and an update meet in a new workflow's first task) was not applied, so it
    is sent again a few times before the error is reported."""
    for pause in (*NOT_READY_RETRIES, None):
        try:
            return await call(handle.execute_update(update, arg), what=what, address=address)
        except RPCError as err:
            if pause is None or not not_ready(err):
                raise
            await asyncio.sleep(pause)


class Orderflow:
    """The application: a Temporal client, the registry and the settings."""

    def __init__(self, client: Client, registry: Registry, settings: Settings) -> None:
        self.client = client
        self.registry = registry
        self.settings = settings

    @property
    def address(self) -> str:
        return self.client.service_client.config.target_host

    def policy(self) -> Policy:
        policy = Policy()
        return policy.scaled(self.settings.time_scale) if self.settings.time_scale != 1 else policy

    def ui_link(self, workflow_id: str) -> str:
        ns = self.client.namespace
        return f"{self.settings.ui_url}/namespaces/{ns}/workflows/{workflow_id}"

    def _order(self, order_id: str) -> WorkflowHandle[OrderWorkflow, OrderView]:
        return self.client.get_workflow_handle_for(OrderWorkflow.run, order_workflow_id(order_id))

    # ------------------------------------------------------------------ orders

    def order_input(
        self,
        *,
        customer_id: str,
        sku: str,
        qty: int,
        location: str | None,
        carrier: str | None,
        pickup: bool,
        order_id: str | None,
        any_location: bool = False,
        actor: str = "web",
        policy: Policy | None = None,
    ) -> PlaceOrderInput:
        reg = self.registry
        customer = reg.customer(customer_id)
        item = reg.sku(sku)
        if qty <= 0:
            raise InvalidInput(f"quantity must be at least 1 (got {qty})")
        if any_location:
            loc = reg.nearest_with_stock(sku, qty)
            if loc is None:
                if location is None:
                    raise InvalidInput(
                        f"no location has {qty} x {sku} in stock; name one with --location to join its waitlist"
                    )
                loc = reg.location(location)
        elif location is None:
            raise InvalidInput("--location is required (or use --any-location)")
        else:
            loc = reg.location(location)
        if carrier is not None:
            reg.carrier(carrier)
        if pickup and carrier is not None:
            raise InvalidInput(
                "--pickup and --carrier exclude each other: a pickup order is not shipped"
            )
        try:
            return PlaceOrderInput(
                order_id=order_id or f"ORD-{uuid.uuid4().hex[:8].upper()}",
                customer=customer,
                lines=[OrderLine(sku=item.sku, name=item.name, qty=qty, unit_price=item.price)],
                location=loc.location,
                carrier=carrier or (None if pickup else next(iter(reg.carriers), None)),
                pickup=pickup,
                placed_at=datetime.now(UTC),
                actor=actor,
                policy=policy or self.policy(),
                departments=list(reg.departments.values()),
                carriers=list(reg.carriers.values()),
                initial_stock=dict(loc.stock),
            )
        except ValueError as err:  # pydantic's ValidationError is a ValueError
            raise InvalidInput(_first_error(err)) from None

    def _start_options(self, inp: PlaceOrderInput) -> dict[str, Any]:
        line = inp.lines[0]
        return {
            "id": order_workflow_id(inp.order_id),
            "task_queue": self.settings.task_queue,
            "id_conflict_policy": WorkflowIDConflictPolicy.FAIL,
            "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
            "search_attributes": TypedSearchAttributes(
                [
                    SearchAttributePair(ORDER_STATUS, "placed"),
                    SearchAttributePair(CUSTOMER_ID, inp.customer.customer_id),
                ]
                + ([SearchAttributePair(CARRIER, inp.carrier)] if inp.carrier else [])
            ),
            "static_summary": (
                f"Order {inp.order_id}: {line.qty} x {line.sku} for customer "
                f"{inp.customer.customer_id}, "
                + ("store pickup" if inp.pickup else f"delivery by {inp.carrier}")
                + f" from {inp.location}"
            ),
        }

    async def place_order(self, inp: PlaceOrderInput) -> tuple[OrderView, bool]:
        """Start the order; with an id that exists already, return that order instead.

        Returns the view and whether this call created the order.
        """
        if inp.placed_at is None:
            inp = inp.model_copy(update={"placed_at": datetime.now(UTC)})
        try:
            await call(
                self.client.start_workflow(OrderWorkflow.run, inp, **self._start_options(inp)),
                what=f"placing order {inp.order_id}",
                address=self.address,
            )
        except WorkflowAlreadyStartedError:
            return await self._view(self._order(inp.order_id), inp.order_id), False
        # The order as it stands when placed, without asking it: a query that reaches a new
        # order before its first workflow task starts rides on that task and makes the worker
        # close it early, with its first calls still running.
        return placed_view(inp), True

    async def place_order_on_hold(self, inp: PlaceOrderInput, hold: PlaceHold) -> HoldPlaced:
        """Start the order with a hold already on it, atomically (update-with-start): for a
        department whose check must come before the order's first step, such as a finance
        partner's approval at checkout. A refused hold starts nothing."""
        start = WithStartWorkflowOperation(OrderWorkflow.run, inp, **self._start_options(inp))
        try:
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

    async def _view(self, handle: WorkflowHandle[Any, Any], order_id: str) -> OrderView:
        try:
            return await call(
                handle.query(OrderWorkflow.view), what=f"order {order_id}", address=self.address
            )
        except UnknownReference:
            raise UnknownReference(
                f"no order '{order_id}'; check the id with orderflow orders list"
            ) from None

    async def view(self, order_id: str) -> OrderView:
        return await self._live(await self._view(self._order(order_id), order_id))

    async def _live(self, view: OrderView) -> OrderView:
        """The order with its open delivery as it is now. A delivery tells its order at once
        what the customer must hear, but routine movements (pickup, scans) only with its next
        report, to keep the order's history short; the view reads them from the delivery."""
        if not view.deliveries or view.status not in ("shipping", "in_transit"):
            return view
        summary = view.deliveries[-1]
        if summary.status in TERMINAL:
            return view
        handle = self.client.get_workflow_handle(summary.workflow_id)
        try:
            live: DeliveryState = await handle.query(DeliveryWorkflow.status)
        except (RPCError, WorkflowQueryFailedError):
            return view  # not started yet, or just closed: the order's record stands
        summary.status = live.status
        summary.window_start, summary.window_end = live.window_start, live.window_end
        summary.pickup_point = live.pickup_point or summary.pickup_point
        if live.status != "booked":
            summary.last_scan_at = live.last_movement_at
            if view.status == "shipping":
                view.status = "in_transit"
                if view.next_step == STAGE_WORDS[OrderStatus.SHIPPING]:
                    view.next_step = STAGE_WORDS[OrderStatus.IN_TRANSIT]
        return view

    async def timeline(self, order_id: str) -> list[TimelineEntry]:
        await self.view(order_id)  # a clear "no order" first
        return await call(
            self._order(order_id).query(OrderWorkflow.timeline), what=f"order {order_id}"
        )

    async def _update(self, order_id: str, update: Any, arg: Any) -> Any:
        """Send an update straight to the order; only when it finds no running order do we
        look closer, to say whether the order is unknown or already finished."""
        try:
            return await send_update(
                self._order(order_id), update, arg, what=f"order {order_id}", address=self.address
            )
        except NotFound:
            view = await self.view(order_id)  # raises "no order" when there is none
            raise WrongState(
                f"order {order_id} is {view.status}; it takes no more changes"
            ) from None

    async def cancel(self, order_id: str, cmd: CancelOrder) -> OrderCancelled:
        return await self._update(order_id, OrderWorkflow.cancel, cmd)  # type: ignore[no-any-return]

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
            f"TaskQueue = {_quote(self.settings.task_queue)}",
        ]
        if status:
            clauses.append(f"OrderStatus = {_quote(status)}")
        if blocked_by:
            self.registry.department(blocked_by)
            clauses.append(f"BlockedBy = {_quote(blocked_by)}")
        if customer:
            clauses.append(f"CustomerId = {_quote(customer)}")
        if older_than:
            clauses.append(f"StartTime < '{older_than.isoformat().replace('+00:00', 'Z')}'")
        query = " AND ".join(clauses)
        found = [wf async for wf in self._list(query, limit)]
        gate = asyncio.Semaphore(16)

        async def one(wf: Any) -> OrderView | None:
            async with gate:
                try:
                    return await call(
                        self.client.get_workflow_handle(wf.id, run_id=wf.run_id).query(
                            OrderWorkflow.view, rpc_timeout=QUERY_TIMEOUT
                        ),
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

    async def _list(self, query: str, limit: int) -> AsyncIterator[Any]:
        try:
            async for wf in self.client.list_workflows(query, limit=limit):
                yield wf
        except RPCError as err:
            if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                raise ServerUnreachable(self.address) from None
            raise

    # ------------------------------------------------------------------ holds

    async def place_hold(self, order_id: str, cmd: PlaceHold) -> HoldPlaced:
        return await self._update(order_id, OrderWorkflow.place_hold, cmd)  # type: ignore[no-any-return]

    async def release_hold(self, order_id: str, cmd: ReleaseHold) -> HoldReleased:
        return await self._update(order_id, OrderWorkflow.release_hold, cmd)  # type: ignore[no-any-return]

    async def dispute_hold(self, order_id: str, cmd: DisputeHold) -> HoldDisputed:
        return await self._update(order_id, OrderWorkflow.dispute_hold, cmd)  # type: ignore[no-any-return]

    async def uphold_hold(self, order_id: str, cmd: UpholdHold) -> HoldUpheld:
        return await self._update(order_id, OrderWorkflow.uphold_hold, cmd)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ promises

    async def make_promise(self, order_id: str, cmd: MakePromise) -> PromiseMade:
        return await self._update(order_id, OrderWorkflow.make_promise, cmd)  # type: ignore[no-any-return]

    async def keep_promise(self, order_id: str, cmd: KeepPromise) -> PromiseKept:
        return await self._update(order_id, OrderWorkflow.keep_promise, cmd)  # type: ignore[no-any-return]

    async def list_promises(
        self, *, broken: bool = False, department: str | None = None
    ) -> list[dict[str, Any]]:
        if department:
            self.registry.department(department)
        rows: list[dict[str, Any]] = []
        for v in await self.list_orders(limit=2000):
            for p in v.promises:
                if broken and p.status != "broken":
                    continue
                if department and p.department != department:
                    continue
                rows.append({"order_id": v.order_id, **p.model_dump(mode="json")})
        return rows

    # ------------------------------------------------------------------ stock

    async def pickup(self, order_id: str, location: str) -> OrderView:
        self.registry.location(location)
        return await self._update(order_id, OrderWorkflow.pickup, CollectOrder(location=location))  # type: ignore[no-any-return]

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

    async def receive_stock(
        self, location: str, sku: str, qty: int, reference: str
    ) -> StockReceived:
        if qty <= 0:
            raise InvalidInput(f"--qty must be at least 1 (got {qty})")
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
        loc = self.registry.location(location)
        skus = [self.registry.sku(sku).sku] if sku else list(self.registry.skus)
        views: list[StockView] = []
        for s in skus:
            handle = self.client.get_workflow_handle(stock_workflow_id(location, s))
            try:
                views.append(
                    await call(
                        handle.query(StockWorkflow.reservations), what="stock", address=self.address
                    )
                )
            except UnknownReference:
                on_hand = loc.stock.get(s, 0)
                if sku or on_hand:
                    views.append(
                        StockView(
                            location=location,
                            sku=s,
                            on_hand=on_hand,
                            available=on_hand,
                            reserved=[],
                            waitlist=[],
                        )
                    )
        return views

    # ------------------------------------------------------------------ carriers

    async def _delivery(self, order_id: str, delivery: int | None) -> WorkflowHandle[Any, Any]:
        # The order's own record says which deliveries it has; no need to read the live one.
        v = await self._view(self._order(order_id), order_id)
        if not v.deliveries:
            raise WrongState(f"order {order_id} has no delivery yet (it is {v.status})")
        if delivery is not None and delivery < 1:
            raise InvalidInput(f"--delivery must be 1 or more (got {delivery})")
        n = delivery or v.deliveries[-1].delivery_id
        summary = next((d for d in v.deliveries if d.delivery_id == n), None)
        if summary is None:
            raise UnknownReference(f"order {order_id} has no delivery {n}")
        if summary.status in TERMINAL:
            raise WrongState(
                f"delivery {n} of order {order_id} is already {summary.status}; it takes no more events"
            )
        return self.client.get_workflow_handle(delivery_workflow_id(order_id, n))

    async def _delivery_update(
        self, order_id: str, delivery: int | None, update: Any, arg: Any
    ) -> Any:
        handle = await self._delivery(order_id, delivery)
        try:
            return await send_update(
                handle, update, arg, what=f"delivery of order {order_id}", address=self.address
            )
        except NotFound:  # closed between our look and the update
            raise WrongState(
                f"the delivery of order {order_id} has finished; it takes no more events"
            ) from None

    async def carrier_event(
        self, order_id: str, event: CarrierEvent, delivery: int | None = None
    ) -> CarrierEventRecorded:
        return await self._delivery_update(
            order_id, delivery, DeliveryWorkflow.carrier_event, event
        )  # type: ignore[no-any-return]

    async def reschedule(self, order_id: str, cmd: Reschedule) -> DeliveryUpdated:
        return await self._delivery_update(order_id, None, DeliveryWorkflow.reschedule, cmd)  # type: ignore[no-any-return]

    async def redirect(self, order_id: str, cmd: Redirect) -> DeliveryUpdated:
        return await self._delivery_update(order_id, None, DeliveryWorkflow.redirect, cmd)  # type: ignore[no-any-return]

    async def scorecard(self) -> list[dict[str, Any]]:
        cards = {c: _card(c, carrier.name) for c, carrier in self.registry.carriers.items()}
        query = (
            f"WorkflowType = 'DeliveryWorkflow' AND TaskQueue = {_quote(self.settings.task_queue)}"
        )
        async for wf in self._list(query, 5000):
            try:
                st: DeliveryState = await call(
                    self.client.get_workflow_handle(wf.id, run_id=wf.run_id).query(
                        DeliveryWorkflow.status, result_type=DeliveryState
                    ),
                    what=wf.id,
                )
            except OrderflowError:
                continue
            card = cards.setdefault(st.inp.carrier, _card(st.inp.carrier, st.inp.carrier))
            card["deliveries"] += 1
            card["attempts"] += len(st.attempts)
            card["unverified_attempts"] += st.unverified_attempts
            card["traces"] += int(st.trace_opened)
            card["lost"] += int(st.status == "lost")
            if st.status == "delivered":
                card["delivered"] += 1
                card["on_time"] += int(wf.close_time is None or wf.close_time <= st.window_end)
        for card in cards.values():
            card["on_time_rate"] = (
                round(card["on_time"] / card["delivered"], 3) if card["delivered"] else None
            )
        return list(cards.values())


def _card(carrier_id: str, name: str) -> dict[str, Any]:
    """A carrier's empty scorecard."""
    counts = (
        "deliveries",
        "delivered",
        "on_time",
        "attempts",
        "unverified_attempts",
        "traces",
        "lost",
    )
    return {"carrier_id": carrier_id, "name": name, **dict.fromkeys(counts, 0)}


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _first_error(err: Exception) -> str:
    errors = getattr(err, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(err)


def money(value: Decimal | float | None) -> str:
    return "" if value is None else f"{Decimal(str(value)):.2f}"
