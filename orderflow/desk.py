"""The order desk: the terms an order is placed on, from the engine's own registry.

A caller sends a ``PlaceOrder`` (who orders what, from where); the desk adds what the engine owns:
the customer's record, each line's name and price, the carrier, the departments that may hold
the order, the carriers, the policy and the location's opening stock. The order asks for its
terms once, in an activity, so they are recorded in its history and a replay reads them
from there, whatever the registry says by then.

Each worker opens one desk per task queue (``open_desk``). Besides that activity, an
order's validators and queries may read the desk while its terms are being recorded: they run
only when a message arrives, never on replay, so the registry as it stands is the right answer
for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from domain.errors import InvalidInput, OrderflowError
from domain.order import OrderLine, OrderTerms, PlaceOrder, TermsDecision
from domain.registry import Department, Policy
from orderflow.registry import Registry

if TYPE_CHECKING:
    from orderflow.identity import TrustStore


@dataclass(frozen=True)
class Staged:
    """Terms set in advance for one order by code running beside the worker."""

    policy: Policy | None = None
    departments: list[Department] | None = None


class OrderDesk:
    def __init__(self, registry: Registry, policy: Policy) -> None:
        registry.validate_all()
        self.registry = registry
        self.policy = policy
        self._staged: dict[str, Staged] = {}
        # The public keys the worker accepts tokens from (orderflow.identity); none: updates
        # that carry a token are refused, as nothing can check it.
        self.trust: TrustStore | None = None

    def stage(
        self,
        order_id: str,
        *,
        policy: Policy | None = None,
        departments: list[Department] | None = None,
    ) -> None:
        """Set one order's policy or departments before it is placed. Only code in the
        worker's own process can: the stories (which compress days into seconds) and tests.
        No message from outside reaches this."""
        self._staged[order_id] = Staged(policy=policy, departments=departments)

    def policy_for(self, req: PlaceOrder) -> Policy:
        staged = self._staged.get(req.order_id)
        return staged.policy if staged and staged.policy else self.policy

    def departments_for(self, req: PlaceOrder) -> list[Department]:
        staged = self._staged.get(req.order_id)
        if staged and staged.departments is not None:
            return staged.departments
        return list(self.registry.departments.values())

    def terms(self, req: PlaceOrder) -> OrderTerms:
        """The order's terms; an ``OrderflowError`` naming the field when it cannot be placed."""
        reg = self.registry
        customer = _field("customer_id", lambda: reg.customer(req.customer_id))
        location = _field("location", lambda: reg.location(req.location))
        lines = []
        for n, line in enumerate(req.lines):
            try:
                item = reg.sku(line.sku)
            except OrderflowError as err:
                raise type(err)(f"lines[{n}].sku: {err}") from None
            lines.append(
                OrderLine(sku=item.sku, name=item.name, qty=line.qty, unit_price=item.price)
            )
        if req.pickup and req.carrier is not None:
            raise InvalidInput("carrier: a store-pickup order (pickup: true) is not shipped")
        if req.carrier is not None:
            _field("carrier", lambda: reg.carrier(req.carrier or ""))
        carrier = req.carrier or (None if req.pickup else next(iter(reg.carriers), None))
        return OrderTerms(
            customer=customer,
            lines=lines,
            carrier=carrier,
            policy=self.policy_for(req),
            departments=self.departments_for(req),
            carriers=list(reg.carriers.values()),
            initial_stock=dict(location.stock),
        )

    def decide(self, req: PlaceOrder) -> TermsDecision:
        try:
            return TermsDecision(terms=self.terms(req))
        except OrderflowError as err:
            return TermsDecision(refusal=str(err), refusal_type=err.type)


T = TypeVar("T")


def _field(name: str, lookup: Callable[[], T]) -> T:
    try:
        return lookup()
    except OrderflowError as err:
        raise type(err)(f"{name}: {err}") from None


_DESKS: dict[str, OrderDesk] = {}


def open_desk(task_queue: str, desk: OrderDesk) -> None:
    _DESKS[task_queue] = desk


def close_desk(task_queue: str, desk: OrderDesk) -> None:
    if _DESKS.get(task_queue) is desk:
        del _DESKS[task_queue]


def desk_for(task_queue: str) -> OrderDesk | None:
    return _DESKS.get(task_queue)
