"""Holds and promises: the departments' messages to an order, and finding promises."""

from __future__ import annotations

from typing import Any

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
from domain.promises import (
    KeepPromise,
    MakePromise,
    PromiseKept,
    PromiseMade,
    PromiseStatus,
)
from orderflow.identity import DESK, Principal, PrincipalKind
from orderflow.service.orders import OrderService
from workflows.order import OrderWorkflow


def department(name: str) -> Principal:
    return Principal(kind=PrincipalKind.DEPARTMENT, id=name)


class HoldService(OrderService):
    def _department(self, name: str) -> Principal:
        """The department a command names, as the principal it is sent as; one the registry
        does not know is named as such before any key is looked for."""
        self.registry.department(name)
        return department(name)

    async def place_hold(self, order_id: str, cmd: PlaceHold) -> HoldPlaced:
        with self.acting(self._department(cmd.department), cmd.actor, order_id):
            return await self._update(order_id, OrderWorkflow.place_hold, cmd)

    async def release_hold(self, order_id: str, cmd: ReleaseHold) -> HoldReleased:
        with self.acting(self._department(cmd.department), cmd.actor, order_id):
            return await self._update(order_id, OrderWorkflow.release_hold, cmd)

    async def dispute_hold(self, order_id: str, cmd: DisputeHold) -> HoldDisputed:
        """Sent as the order's customer."""
        customer = await self.customer_of(order_id)
        with self.acting(customer, customer.id, order_id):
            return await self._update(order_id, OrderWorkflow.dispute_hold, cmd)

    async def uphold_hold(self, order_id: str, cmd: UpholdHold) -> HoldUpheld:
        with self.acting(self._department(cmd.department), cmd.actor, order_id):
            return await self._update(order_id, OrderWorkflow.uphold_hold, cmd)

    async def make_promise(self, order_id: str, cmd: MakePromise) -> PromiseMade:
        with self.acting(self._department(cmd.department), cmd.actor, order_id):
            return await self._update(order_id, OrderWorkflow.make_promise, cmd)

    async def keep_promise(self, order_id: str, cmd: KeepPromise) -> PromiseKept:
        """Sent as the department that made the promise."""
        view = await self.view(order_id)
        made = next((p for p in view.promises if p.promise_id == cmd.promise_id), None)
        who = department(made.department) if made is not None else self.as_principal
        if who is None:  # no such promise: the order says so, whoever asks
            who = DESK
        with self.acting(who, cmd.actor, order_id):
            return await self._update(order_id, OrderWorkflow.keep_promise, cmd)

    async def list_promises(
        self, *, broken: bool = False, department: str | None = None
    ) -> list[dict[str, Any]]:
        """Every promise on the orders visibility finds, as rows."""
        if department:
            self.registry.department(department)
        rows: list[dict[str, Any]] = []
        for v in await self.list_orders(limit=2000):
            for p in v.promises:
                if broken and p.status != PromiseStatus.BROKEN:
                    continue
                if department and p.department != department:
                    continue
                rows.append({"order_id": v.order_id, **p.model_dump(mode="json")})
        return rows
