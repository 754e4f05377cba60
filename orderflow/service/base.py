"""What every part of the service shares: the client, the registry and settings, the handle of
an order, and its updates and view."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Awaitable
from functools import cached_property
from typing import Any, Self, TypeVar

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from domain.errors import NotFound, WrongState
from domain.ids import order_workflow_id
from domain.view import OrderView
from orderflow.auth import acting_as, signing
from orderflow.config import Settings
from orderflow.desk import OrderDesk
from orderflow.identity import Credential, KeyRing, Principal, PrincipalKind
from orderflow.registry import Registry
from orderflow.service.calls import NoSuchWorkflow, call, send_update
from orderflow.temporal import ServerUnreachable
from workflows.order import OrderWorkflow

# How long before a query the worker failed is asked once more.
QUERY_RETRY_AFTER = 0.2

P = TypeVar("P")
R = TypeVar("R")


class ServiceBase:
    """The application's parts: a Temporal client, the registry and the settings."""

    def __init__(
        self,
        client: Client,
        registry: Registry,
        settings: Settings,
        *,
        desk: OrderDesk | None = None,
    ) -> None:
        # The keys this machine signs with: every update it sends carries a token of the
        # principal it acts as (orderflow.auth), when it holds that principal's key.
        self.keys = KeyRing(settings.keys_path)
        self.client = signing(client, self.keys)
        self.registry = registry
        self.settings = settings
        # ``--as`` / ORDERFLOW_AS: the principal to act as, instead of the one a command names.
        self.as_principal = Principal.parse(settings.acting_as) if settings.acting_as else None
        # The order desk of a worker in this process, when there is one (the stories, tests):
        # it can stage an order's policy before the order is placed.
        self.desk = desk
        # The HTTP API's caller: their verified credential and the token that proved it, sent
        # on as it is with every message (``presenting``).
        self.presented: tuple[Credential, str] | None = None

    def presenting(self, cred: Credential, token: str) -> Self:
        """This service acting with a caller's own token (the HTTP API): what it sends
        carries that token, and the workflow decides what its principal may do."""
        other = copy.copy(self)
        other.presented = (cred, token)
        other.as_principal = cred.principal
        return other

    def acting(
        self,
        principal: Principal,
        actor: str,
        order_id: str | None = None,
        *,
        starter: Principal | None = None,
    ) -> contextlib.AbstractContextManager[None]:
        """Calls inside carry a token of ``principal`` (or of the ``--as`` principal), which
        needs that principal's key here: without it, "no credential for ..." and nothing is
        sent."""
        if self.presented is not None:
            cred, token = self.presented
            return acting_as(cred.principal, cred.actor, order_id, token=token)
        self.keys.require(self.as_principal or principal)
        if starter is not None:
            self.keys.require(starter)
        return acting_as(self.as_principal or principal, actor, order_id, starter=starter)

    async def customer_of(self, order_id: str) -> Principal:
        """The order's customer, as a principal (who disputes, reschedules, redirects)."""
        view = await self._view(self._order(order_id), order_id)
        return Principal(kind=PrincipalKind.CUSTOMER, id=view.customer_id)

    @property
    def address(self) -> str:
        return self.client.service_client.config.target_host

    @cached_property
    def order_desk(self) -> OrderDesk:
        """The desk that prices an order as its worker will: the one beside this app, or one
        on the same seeds and settings."""
        return self.desk or OrderDesk(self.registry, self.settings.policy())

    def ui_link(self, workflow_id: str) -> str:
        ns = self.client.namespace
        return f"{self.settings.ui_url}/namespaces/{ns}/workflows/{workflow_id}"

    def _order(self, order_id: str) -> WorkflowHandle[OrderWorkflow, OrderView]:
        return self.client.get_workflow_handle_for(OrderWorkflow.run, order_workflow_id(order_id))

    async def _view(self, handle: WorkflowHandle[Any, Any], order_id: str) -> OrderView:
        """The order's own view (its ``view`` query). Asked once more when the worker answered
        with a nondeterminism error: it does so for a query that rode on a task completed early
        (workflows/support/gate.py), then drops the run and answers again from a replay."""

        def ask() -> Awaitable[OrderView]:
            query = handle.query(OrderWorkflow.view)
            return call(query, what=f"order {order_id}", address=self.address)

        try:
            try:
                return await ask()
            except WrongState as err:
                if "Nondeterminism" not in str(err):
                    raise
            await asyncio.sleep(QUERY_RETRY_AFTER)
            return await ask()
        except NoSuchWorkflow:
            raise NotFound(
                f"no order '{order_id}'; check the id with orderflow orders list"
            ) from None

    async def view(self, order_id: str) -> OrderView:
        return await self._view(self._order(order_id), order_id)

    async def _update(
        self, order_id: str, update: UpdateMethodMultiParam[[OrderWorkflow, P], R], arg: P
    ) -> R:
        """Send an update straight to the order; only when it finds no running order do we
        look closer, to say whether the order is unknown or already finished."""
        try:
            return await send_update(
                self._order(order_id), update, arg, what=f"order {order_id}", address=self.address
            )
        except NoSuchWorkflow:
            view = await self.view(order_id)  # raises "no order" when there is none
            raise WrongState(
                f"order {order_id} is {view.status}; it takes no more changes"
            ) from None

    async def _list(self, query: str, limit: int) -> AsyncIterator[Any]:
        """Workflows found by a visibility query."""
        try:
            async for wf in self.client.list_workflows(query, limit=limit):
                yield wf
        except RPCError as err:
            if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                raise ServerUnreachable(self.address) from None
            raise
