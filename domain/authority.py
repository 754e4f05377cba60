"""Who may do what to an order: the verified caller of an update, and the rules that decide
whether that caller may send it.

The caller is what a signed token proved (``orderflow.identity``): the principal (a department,
a supervisor, a carrier, a store, the order desk, staff, the engine or a customer) and the actor
it vouches for. The rules here are pure; the order's validators run them with the caller the
worker verified, and refuse with ``NotAllowed`` naming who may.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from domain.base import Model
from domain.errors import NotAllowed

if TYPE_CHECKING:
    from domain.holds import Hold
    from domain.order import OrderState
    from domain.promises import Promise

DEPARTMENT = "department"
SUPERVISOR = "supervisor"
CUSTOMER = "customer"
CARRIER = "carrier"
STORE = "store"
DESK = "desk"
ENGINE = "engine"
# The department that keeps the stock records' counts.
STOCK_CONTROL = "stock"
# How a department system gets a token, for the refusal of an update sent without one.
HOW = "send a token in the orderflow-auth header (orderflow token --as PRINCIPAL)"


class Caller(Model):
    """The principal a verified token names, and the actor it vouches for."""

    kind: str
    id: str
    actor: str
    kid: str = ""
    # The one order the token is good for, when it names one (a customer's order link).
    order_id: str | None = None
    # The one workflow the token was signed for, when it names one (each client call does).
    workflow_id: str | None = None
    # The token's own id and end: a token is good for one message to a workflow.
    jti: str = ""
    expires_at: datetime | None = None

    @classmethod
    def reported(cls, principal: str, actor: str, kid: str) -> Caller:
        """The caller another of the engine's workflows verified and reported (a delivery's
        carrier or customer), from the principal as written."""
        kind, sep, name = principal.partition(":")
        if not sep:
            kind, name = (ENGINE, ENGINE) if principal == ENGINE else (DEPARTMENT, principal)
        return cls(kind=kind, id=name, actor=actor, kid=kid)

    @property
    def principal(self) -> str:
        if self.kind == DEPARTMENT:
            return self.id
        if self.kind == "engine":
            return "engine"
        return f"{self.kind}:{self.id}"

    @property
    def department(self) -> str | None:
        """The department it speaks for: a department's system or its supervisor."""
        return self.id if self.kind in (DEPARTMENT, SUPERVISOR) else None


def require_caller(caller: Caller | None, what: str, order_id: str | None = None) -> Caller:
    """The caller, who must be there; a token scoped to another order is refused."""
    if caller is None:
        raise NotAllowed(f"credential: {what} needs a credential; {HOW}")
    if order_id is not None and caller.order_id and caller.order_id != order_id:
        raise NotAllowed(
            f"credential: the token is for order {caller.order_id}, not for order {order_id}"
        )
    return caller


def _department_or_supervisor(who: Caller, department: str, what: str) -> Caller:
    if who.department != department:
        raise NotAllowed(
            f"credential: only {department} or {SUPERVISOR}:{department} may {what}, "
            f"not {who.principal}"
        )
    return who


def check_places_hold(
    caller: Caller | None, department: str, order_id: str | None = None
) -> Caller:
    """A hold is placed by the department named on it, or by its supervisor; a flag that
    names another department than the credential is refused."""
    who = require_caller(caller, "placing a hold", order_id)
    if who.department is None:
        raise NotAllowed(
            f"credential: {who.principal} cannot place a hold; a department or its supervisor does"
        )
    if who.department != department:
        raise NotAllowed(
            f"department: the hold says {department}, but the credential is {who.principal}'s"
        )
    return who


def check_answers_hold(
    caller: Caller | None, hold: Hold, department: str, verb: str, order_id: str | None = None
) -> Caller:
    """A hold is released or upheld by the department that placed it, or by its supervisor."""
    who = require_caller(caller, f"to {verb} a hold", order_id)
    if who.department != department:
        raise NotAllowed(
            f"department: the command says {department}, but the credential is {who.principal}'s"
        )
    if who.department != hold.department:
        raise NotAllowed(
            f"hold {hold.hold_id} was placed by {hold.department}; only {hold.department} or "
            f"supervisor:{hold.department} may {verb} it, not {who.principal}"
        )
    return who


def check_is_customer(caller: Caller | None, state: OrderState, what: str) -> Caller:
    """Only the order's own customer."""
    return check_customer(caller, state.input.customer.customer_id, state.order_id, what)


def check_customer(caller: Caller | None, customer: str, order_id: str, what: str) -> Caller:
    """Only the customer of order ``order_id``."""
    who = require_caller(caller, what, order_id)
    if who.kind != CUSTOMER or who.id != customer:
        raise NotAllowed(
            f"credential: only the order's customer ({CUSTOMER}:{customer}) may {what}, "
            f"not {who.principal}"
        )
    return who


def check_cancels(caller: Caller | None, state: OrderState, by: str) -> Caller:
    """A cancel ``by`` the customer comes from the order's customer or from the order desk
    that takes the customer's call; a department's cancel from that department or its
    supervisor."""
    order_id = state.order_id
    who = require_caller(caller, "to cancel an order", order_id)
    if by == CUSTOMER:
        if who.kind == DESK:
            return who
        customer = state.input.customer.customer_id
        if who.kind != CUSTOMER or who.id != customer:
            raise NotAllowed(
                f"credential: only the order's customer ({CUSTOMER}:{customer}) or an order "
                f"desk may cancel it, not {who.principal}"
            )
        return who
    return _department_or_supervisor(who, by, f"cancel for {by}")


def check_makes_promise(caller: Caller | None, department: str, order_id: str) -> Caller:
    who = require_caller(caller, "making a promise", order_id)
    return _department_or_supervisor(who, department, f"make {department}'s promises")


def check_keeps_promise(caller: Caller | None, promise: Promise, order_id: str) -> Caller:
    """A promise is kept by the department that made it, or by its supervisor (the engine
    keeps its own; ``domain.promises`` refuses those to everyone)."""
    who = require_caller(caller, "keeping a promise", order_id)
    return _department_or_supervisor(who, promise.department, f"keep promise {promise.promise_id}")


def check_collects(caller: Caller | None, state: OrderState, location: str) -> Caller:
    """A pickup is confirmed by a clerk of the pickup store, or by the order's customer."""
    order_id = state.order_id
    who = require_caller(caller, "confirming a pickup", order_id)
    if who.kind == STORE and who.id == location:
        return who
    if who.kind == CUSTOMER and who.id == state.input.customer.customer_id:
        return who
    raise NotAllowed(
        f"credential: only {STORE}:{location} or the order's customer may confirm its pickup, "
        f"not {who.principal}"
    )


def check_carrier(caller: Caller | None, carrier: str, order_id: str) -> Caller:
    """Only the booked carrier reports on its delivery."""
    who = require_caller(caller, "a carrier event", order_id)
    if who.kind != CARRIER or who.id != carrier:
        raise NotAllowed(
            f"credential: the delivery is booked with {carrier}; only {CARRIER}:{carrier} "
            f"reports on it, not {who.principal}"
        )
    return who


def check_stock_keeper(caller: Caller | None, location: str, what: str) -> Caller:
    """A stock record's count is changed by stock control (or its supervisor) or by a clerk
    of the store it belongs to, with a token for stock, not one for an order."""
    who = require_caller(caller, what)
    if who.order_id:
        raise NotAllowed(f"credential: the token is for order {who.order_id}; it cannot {what}")
    if who.department == STOCK_CONTROL or (who.kind == STORE and who.id == location):
        return who
    raise NotAllowed(
        f"credential: only {STOCK_CONTROL}, {SUPERVISOR}:{STOCK_CONTROL} or {STORE}:{location} "
        f"may {what}, not {who.principal}"
    )


def check_engine(caller: Caller | None, what: str, order_id: str) -> Caller:
    """What only the engine itself does for one order (reserving and releasing its stock),
    with a token for that order."""
    who = require_caller(caller, what)
    if who.kind != ENGINE:
        raise NotAllowed(f"credential: only the engine may {what}, not {who.principal}")
    if who.order_id != order_id:
        raise NotAllowed(
            f"credential: the engine's token is for order {who.order_id}, not for order {order_id}"
        )
    return who


def check_engine_for_batch(caller: Caller | None, what: str, scope: str) -> Caller:
    """What only the engine does for several orders at once (a batch of reservations), with a
    token scoped to that batch (``domain.stock.batch_scope``): a token for one order, or read
    from a record's history for another batch, carries nothing else."""
    who = require_caller(caller, what)
    if who.kind != ENGINE:
        raise NotAllowed(f"credential: only the engine may {what}, not {who.principal}")
    if who.order_id != scope:
        raise NotAllowed(
            f"credential: the engine's token is for {who.order_id or 'no order or batch'}, "
            "not for this batch (a batch is sent with a token for its own reservations)"
        )
    return who


def check_places_order(caller: Caller | None, customer: str, order_id: str) -> Caller:
    """An order is placed by an order desk, by the engine (a replacement order), or by the
    customer it is for."""
    who = require_caller(caller, "placing an order", order_id)
    if who.kind in (DESK, ENGINE):
        return who
    if who.kind == CUSTOMER and who.id == customer:
        return who
    raise NotAllowed(
        f"credential: an order is placed by an order desk or by its own customer "
        f"({CUSTOMER}:{customer}), not by {who.principal}"
    )


# The company's own people and systems: they read orders and stock. A principal of any other
# kind (a customer, a carrier, the order page's or the console's own key) reads only what a
# rule below gives it.
COMPANY = (DEPARTMENT, SUPERVISOR, DESK, STORE, "staff", ENGINE)


def check_reads_order(caller: Caller | None, customer: str, order_id: str) -> Caller:
    """Who may read an order (its view and timeline): its own customer, and the company's
    people and systems."""
    who = require_caller(caller, "reading an order", order_id)
    if who.kind == CUSTOMER:
        return check_customer(who, customer, order_id, "read this order")
    if who.kind not in COMPANY:
        raise NotAllowed(f"credential: {who.principal} does not read orders")
    return who


def check_lists_orders(caller: Caller | None, customer: str | None) -> Caller:
    """Listing orders: the company's people and systems, or a customer their own."""
    who = require_caller(caller, "listing orders")
    if who.order_id is not None:
        raise NotAllowed("credential: a token for one order does not list orders")
    if who.kind == CUSTOMER:
        if customer != who.id:
            raise NotAllowed(
                f"credential: a customer lists only their own orders (customer={who.id})"
            )
        return who
    if who.kind not in COMPANY:
        raise NotAllowed(f"credential: {who.principal} does not list orders")
    return who


def check_reads_stock(caller: Caller | None) -> Caller:
    """Stock records: the company's people and systems, with a token for no one order."""
    who = require_caller(caller, "reading stock")
    if who.kind not in COMPANY or who.order_id is not None:
        raise NotAllowed(f"credential: stock is read by the company, not {who.principal}")
    return who
