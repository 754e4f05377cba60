"""Holds: the only way a department may stop an order. The hold's records, the commands and
answers of its four updates, and the rules each update runs.

Pure functions over the order's state; the order workflow calls them from its handlers.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import Field

from domain.base import (
    ENGINE,
    MAX_ACTIVE_HOLDS,
    MAX_HOLDS,
    Command,
    Count,
    Model,
    Money,
    Name,
    Receipt,
    Words,
    check_amount,
    required_text,
)
from domain.errors import InvalidInput, NotAllowed, NotFound, WrongState
from domain.registry import Department
from domain.steps import Step

if TYPE_CHECKING:
    from domain.order import OrderState


class HoldStatus(StrEnum):
    ACTIVE = "active"
    DISPUTED = "disputed"
    UPHELD = "upheld"
    RELEASED = "released"


class Hold(Model):
    hold_id: str
    department: str
    actor: str
    reason: str
    reason_text: str
    customer_message: str
    reference: str = ""
    amount: Money | None = None
    status: HoldStatus = HoldStatus.ACTIVE
    placed_at: datetime
    sla_due_at: datetime
    escalations: int = 0
    blocked_step: str = ""
    dispute_message: str = ""
    released_at: datetime | None = None
    released_by: str = ""
    resolution: str = ""
    # The lines it holds (1 is the first); none: the whole order.
    lines: list[int] = Field(default_factory=list)
    # The verified principals that placed and released it (empty: sent without a credential).
    principal: str = ""
    released_principal: str = ""

    @property
    def active(self) -> bool:
        return self.status != HoldStatus.RELEASED

    def holds_line(self, n: int) -> bool:
        """Whether the hold stops line ``n`` (by index): a hold on the order stops every line."""
        return self.active and (not self.lines or n + 1 in self.lines)


class HoldView(Model):
    """A hold as every channel sees it: the record without the department's internal notes."""

    hold_id: str
    department: str
    reason: str
    reason_text: str
    status: str
    # What the department told the customer, and the customer's answer to a dispute.
    customer_message: str = ""
    dispute_message: str = ""
    placed_at: datetime
    placed_by: str
    sla_due_at: datetime
    reference: str = ""
    amount: Money | None = None
    escalations: int = 0
    released_at: datetime | None = None
    released_by: str = ""
    resolution: str = ""
    # The lines it holds; empty: the whole order.
    lines: list[int] = Field(default_factory=list)
    # The principals whose credentials placed and released it, as verified (empty: sent
    # without one).
    principal: str = ""
    released_principal: str = ""

    @classmethod
    def of(cls, hold: Hold) -> HoldView:
        return cls.model_validate({**dict(hold), "placed_by": hold.actor})


# --------------------------------------------------------------------------- commands


class PlaceHold(Command):
    department: Name
    actor: Name = "unknown"
    reason_code: Name
    customer_message: Words
    reference: Name = ""
    amount: Decimal | None = None
    # Hold only these lines of the order (1 is the first); none: the whole order.
    lines: list[Count] = Field(default_factory=list, max_length=50)


class HoldPlaced(Receipt):
    hold_id: str
    department: str
    sla_due_at: datetime
    already_placed: bool = False


class ReleaseHold(Command):
    hold_id: Name
    department: Name
    actor: Name = "unknown"
    resolution: Words


class HoldReleased(Receipt):
    hold_id: str
    released_at: datetime
    blocked_by: list[str]


class DisputeHold(Command):
    hold_id: Name
    customer_message: Words


class HoldDisputed(Receipt):
    hold_id: str
    sla_due_at: datetime


class UpholdHold(Command):
    hold_id: Name
    department: Name
    actor: Name = "unknown"
    customer_message: Words


class HoldUpheld(Receipt):
    hold_id: str
    sla_due_at: datetime


# --------------------------------------------------------------------------- rules


def check_place_hold(state: OrderState, cmd: PlaceHold) -> Department:
    state.require_open("place a hold")
    dept = state.department(cmd.department)
    if cmd.reason_code not in dept.reason_codes:
        codes = ", ".join(sorted(dept.reason_codes))
        raise InvalidInput(
            f"reason '{cmd.reason_code}' is not one of {dept.department}'s reason codes: {codes}"
        )
    required_text(cmd.customer_message, "customer_message")
    if cmd.amount is not None:
        check_amount(cmd.amount)
    if len(cmd.reference) > 200:
        raise InvalidInput("reference is longer than 200 characters")
    count = len(state.input.lines)
    for line in cmd.lines:
        if not 1 <= line <= count:
            raise NotFound(
                f"lines: order {state.order_id} has {count} line{'s' if count > 1 else ''}; "
                f"there is no line {line}"
            )
        if state.line_cancelled(line - 1):
            raise WrongState(f"lines: order {state.order_id}'s line {line} is cancelled")
    if len(set(cmd.lines)) < len(cmd.lines):
        raise InvalidInput("lines: a line is named twice")
    return dept


def check_hold_limits(state: OrderState) -> None:
    """The caps a new hold must fit in: checked at the door (the validator) only, so an order an
    older version let past them still replays."""
    state.require_fewer(
        len(state.active_holds), MAX_ACTIVE_HOLDS, "active holds", "; release one first"
    )
    state.require_fewer(len(state.holds), MAX_HOLDS, "holds in all")
    state.require_mail_room("place a hold")


def existing_hold(state: OrderState, cmd: PlaceHold) -> Hold | None:
    """The hold this command repeats: same department and the same non-empty reference, even
    when it was released since (a retried call must not block the order again; a new matter
    takes a new reference)."""
    if not cmd.reference:
        return None
    for hold in state.holds:
        if hold.department == cmd.department and hold.reference == cmd.reference:
            return hold
    return None


def place_hold(state: OrderState, cmd: PlaceHold, now: datetime) -> Hold:
    dept = check_place_hold(state, cmd)
    hold = Hold(
        hold_id=f"H{len(state.holds) + 1}",
        department=dept.department,
        actor=cmd.actor,
        reason=cmd.reason_code,
        reason_text=dept.reason_codes[cmd.reason_code],
        customer_message=cmd.customer_message.strip(),
        reference=cmd.reference,
        amount=cmd.amount,
        placed_at=now,
        sla_due_at=now + dept.hold_sla,
        blocked_step=state.next_stop,
        lines=sorted(cmd.lines),
    )
    state.holds.append(hold)
    return hold


def blocked_department(state: OrderState, hold: Hold) -> Department:
    """The department whose step the hold blocks: it is told of the hold. The placing
    department when the order has no department of that name."""
    placed_by = state.department(hold.department)
    owner = Step(hold.blocked_step).owner
    return next((d for d in state.input.departments if d.department == owner), placed_by)


def _check_answer(state: OrderState, hold: Hold, department: str, actor: str, verb: str) -> None:
    dept = state.department(hold.department)
    if department != hold.department and actor != dept.supervisor:
        raise NotAllowed(
            f"hold {hold.hold_id} was placed by {hold.department}; only {hold.department} "
            f"or its supervisor {dept.supervisor} may {verb} it"
        )


def check_release_hold(state: OrderState, cmd: ReleaseHold) -> Hold:
    hold = state.hold(cmd.hold_id)
    if not hold.active:
        raise WrongState(f"hold {hold.hold_id} was already released by {hold.released_by}")
    _check_answer(state, hold, cmd.department, cmd.actor, "release")
    required_text(cmd.resolution, "resolution")
    return hold


def release_hold(state: OrderState, cmd: ReleaseHold, now: datetime) -> Hold:
    hold = check_release_hold(state, cmd)
    _release(hold, now, by=f"{cmd.actor} ({cmd.department})", resolution=cmd.resolution.strip())
    return hold


def _release(hold: Hold, now: datetime, *, by: str, resolution: str) -> None:
    hold.status = HoldStatus.RELEASED
    hold.released_at = now
    hold.released_by = by
    hold.resolution = resolution


def release_all_on_cancel(state: OrderState, now: datetime) -> None:
    """A cancelled order blocks nothing any more: its active holds are released by the engine."""
    for hold in state.active_holds:
        _release(hold, now, by=f"{ENGINE} (order cancelled)", resolution="order cancelled")


def check_dispute_hold(state: OrderState, cmd: DisputeHold) -> Hold:
    hold = state.hold(cmd.hold_id)
    if not hold.active:
        raise WrongState(f"hold {hold.hold_id} is already released; nothing to dispute")
    if hold.status == HoldStatus.DISPUTED:
        raise WrongState(f"hold {hold.hold_id} is already disputed")
    required_text(cmd.customer_message, "customer_message")
    return hold


def dispute_hold(state: OrderState, cmd: DisputeHold, now: datetime) -> Hold:
    hold = check_dispute_hold(state, cmd)
    hold.status = HoldStatus.DISPUTED
    hold.dispute_message = cmd.customer_message.strip()
    hold.sla_due_at = min(hold.sla_due_at, now + state.input.policy.dispute_sla)
    return hold


def check_uphold_hold(state: OrderState, cmd: UpholdHold) -> Hold:
    hold = state.hold(cmd.hold_id)
    if not hold.active:
        raise WrongState(f"hold {hold.hold_id} is already released")
    _check_answer(state, hold, cmd.department, cmd.actor, "uphold")
    required_text(cmd.customer_message, "customer_message")
    return hold


def uphold_hold(state: OrderState, cmd: UpholdHold, now: datetime) -> Hold:
    hold = check_uphold_hold(state, cmd)
    hold.status = HoldStatus.UPHELD
    hold.customer_message = cmd.customer_message.strip()
    # Upholding is an answer, so the department gets a fresh SLA to see it through.
    hold.sla_due_at = now + state.department(hold.department).hold_sla
    return hold


def placed(hold: Hold, *, already: bool = False) -> HoldPlaced:
    return HoldPlaced(
        hold_id=hold.hold_id,
        department=hold.department,
        sla_due_at=hold.sla_due_at,
        already_placed=already,
    )


def released(state: OrderState, hold: Hold) -> HoldReleased:
    assert hold.released_at is not None
    return HoldReleased(
        hold_id=hold.hold_id, released_at=hold.released_at, blocked_by=state.blocked_by
    )


def disputed(hold: Hold) -> HoldDisputed:
    return HoldDisputed(hold_id=hold.hold_id, sla_due_at=hold.sla_due_at)


def upheld(hold: Hold) -> HoldUpheld:
    return HoldUpheld(hold_id=hold.hold_id, sla_due_at=hold.sla_due_at)


def hold_period(state: OrderState, hold: Hold) -> timedelta:
    if hold.status == HoldStatus.DISPUTED:
        return state.input.policy.dispute_sla
    return state.department(hold.department).hold_sla


def escalate_hold(state: OrderState, hold: Hold, now: datetime) -> None:
    """The hold's SLA passed: count the escalation and set the next date we tell the customer."""
    hold.escalations += 1
    hold.sla_due_at = now + hold_period(state, hold)
