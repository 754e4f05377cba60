"""Who may do what to an order: the verified caller of an update, and the rules that decide
whether that caller may send it.

The caller is what a signed token proved (``orderflow.identity``): the principal (a department,
a supervisor, a carrier, a store, the order desk, staff, the engine or a customer) and the actor
it vouches for. The rules here are pure; the order's validators run them with the caller the
worker verified, and refuse with ``NotAllowed`` naming who may.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from domain.base import Model
from domain.errors import NotAllowed

if TYPE_CHECKING:
    from domain.holds import Hold
    from domain.order import OrderState

DEPARTMENT = "department"
SUPERVISOR = "supervisor"
CUSTOMER = "customer"
# How a department system gets a token, for the refusal of an update sent without one.
HOW = "send a token in the orderflow-auth header (orderflow token --as PRINCIPAL)"


class Caller(Model):
    """The principal a verified token names, and the actor it vouches for."""

    kind: str
    id: str
    actor: str
    kid: str = ""

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


def require_caller(caller: Caller | None, what: str) -> Caller:
    if caller is None:
        raise NotAllowed(f"credential: {what} needs a credential; {HOW}")
    return caller


def check_places_hold(caller: Caller | None, department: str) -> Caller:
    """A hold is placed by the department named on it, or by its supervisor; a flag that
    names another department than the credential is refused."""
    who = require_caller(caller, "placing a hold")
    if who.department is None:
        raise NotAllowed(
            f"credential: {who.principal} cannot place a hold; a department or its supervisor does"
        )
    if who.department != department:
        raise NotAllowed(
            f"department: the hold says {department}, but the credential is {who.principal}'s"
        )
    return who


def check_answers_hold(caller: Caller | None, hold: Hold, department: str, verb: str) -> Caller:
    """A hold is released or upheld by the department that placed it, or by its supervisor."""
    who = require_caller(caller, f"to {verb} a hold")
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
    who = require_caller(caller, what)
    customer = state.input.customer.customer_id
    if who.kind != CUSTOMER or who.id != customer:
        raise NotAllowed(
            f"credential: only the order's customer ({CUSTOMER}:{customer}) may {what}, "
            f"not {who.principal}"
        )
    return who
