"""Carriers: their events on an order's delivery, the customer's changes to it, and each
carrier's scorecard."""

from __future__ import annotations

from typing import Any, TypeVar

from temporalio.client import WorkflowHandle
from temporalio.workflow import UpdateMethodMultiParam

from domain.carrier import CarrierEvent, CarrierEventRecorded
from domain.delivery import (
    TERMINAL,
    DeliveryOutcome,
    DeliveryState,
    DeliveryStatus,
    DeliveryUpdated,
    Redirect,
    Reschedule,
)
from domain.errors import InvalidInput, NotFound, OrderflowError, WrongState
from domain.ids import delivery_workflow_id
from orderflow.identity import Principal, PrincipalKind
from orderflow.service.base import ServiceBase
from orderflow.service.calls import NoSuchWorkflow, call, quote, send_update
from workflows.delivery import DeliveryWorkflow

P = TypeVar("P")
R = TypeVar("R")

SCORES = ("deliveries", "delivered", "on_time", "attempts", "unverified_attempts", "traces", "lost")


class CarrierService(ServiceBase):
    async def _delivery(
        self, order_id: str, delivery: int | None
    ) -> tuple[WorkflowHandle[DeliveryWorkflow, DeliveryOutcome], str]:
        """The delivery's workflow, and the carrier it is booked with."""
        # The order's own record says which deliveries it has; no need to read the live one.
        v = await self._view(self._order(order_id), order_id)
        if not v.deliveries:
            raise WrongState(f"order {order_id} has no delivery yet (it is {v.status})")
        if delivery is not None and delivery < 1:
            raise InvalidInput(f"--delivery must be 1 or more (got {delivery})")
        n = delivery or v.deliveries[-1].delivery_id
        summary = next((d for d in v.deliveries if d.delivery_id == n), None)
        if summary is None:
            raise NotFound(f"order {order_id} has no delivery {n}")
        if summary.status in TERMINAL:
            raise WrongState(
                f"delivery {n} of order {order_id} is already {summary.status}; it takes no more events"
            )
        handle = self.client.get_workflow_handle_for(
            DeliveryWorkflow.run, delivery_workflow_id(order_id, n)
        )
        return handle, summary.carrier

    async def _delivery_update(
        self,
        order_id: str,
        delivery: int | None,
        update: UpdateMethodMultiParam[[DeliveryWorkflow, P], R],
        arg: P,
        *,
        by_customer: bool = False,
        actor: str = "",
    ) -> R:
        """Sent as the delivery's carrier, or (``by_customer``) as the order's customer."""
        handle, carrier = await self._delivery(order_id, delivery)
        who = (
            await self.customer_of(order_id)
            if by_customer
            else Principal(kind=PrincipalKind.CARRIER, id=carrier)
        )
        try:
            with self.acting(who, actor or who.id, order_id):
                return await send_update(
                    handle, update, arg, what=f"delivery of order {order_id}", address=self.address
                )
        except NoSuchWorkflow:  # closed between our look and the update
            raise WrongState(
                f"the delivery of order {order_id} has finished; it takes no more events"
            ) from None

    async def carrier_event(
        self, order_id: str, event: CarrierEvent, delivery: int | None = None
    ) -> CarrierEventRecorded:
        return await self._delivery_update(
            order_id, delivery, DeliveryWorkflow.carrier_event, event, actor=event.actor
        )

    async def reschedule(self, order_id: str, cmd: Reschedule) -> DeliveryUpdated:
        return await self._delivery_update(
            order_id, None, DeliveryWorkflow.reschedule, cmd, by_customer=True
        )

    async def redirect(self, order_id: str, cmd: Redirect) -> DeliveryUpdated:
        return await self._delivery_update(
            order_id, None, DeliveryWorkflow.redirect, cmd, by_customer=True
        )

    async def scorecard(self) -> list[dict[str, Any]]:
        """Per carrier: deliveries, how many on time, attempts (and unverified ones), traces,
        losses; read from every delivery workflow visibility finds."""
        cards = {c: _card(c, carrier.name) for c, carrier in self.registry.carriers.items()}
        query = (
            f"WorkflowType = 'DeliveryWorkflow' AND TaskQueue = {quote(self.settings.task_queue)}"
        )
        async for wf in self._list(query, 5000):
            try:
                st: DeliveryState = await call(
                    self.client.get_workflow_handle(wf.id, run_id=wf.run_id).query(
                        DeliveryWorkflow.status
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
            card["lost"] += int(st.status == DeliveryStatus.LOST)
            if st.status == DeliveryStatus.DELIVERED:
                card["delivered"] += 1
                card["on_time"] += int(wf.close_time is None or wf.close_time <= st.window_end)
        for card in cards.values():
            card["on_time_rate"] = (
                round(card["on_time"] / card["delivered"], 3) if card["delivered"] else None
            )
        return list(cards.values())


def _card(carrier_id: str, name: str) -> dict[str, Any]:
    """A carrier's empty scorecard."""
    return {"carrier_id": carrier_id, "name": name, **dict.fromkeys(SCORES, 0)}
