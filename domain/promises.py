"""Promises to the customer, each on a clock: the records, the commands and answers of the two
promise updates, and the rules that make, keep, break and withdraw them.

Pure functions over the order's state; the order workflow calls them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from domain.base import (
    ENGINE,
    MAX_OPEN_PROMISES,
    MAX_PROMISES,
    Command,
    Model,
    Name,
    Receipt,
    Words,
    required_text,
)
from domain.durations import MAX_SECONDS
from domain.errors import InvalidInput, NotAllowed, WrongState
from domain.timeline import Told

if TYPE_CHECKING:
    from domain.order import OrderState


class PromiseKind(StrEnum):
    CALLBACK = "callback"
    STOCK_DATE = "stock_date"
    DELIVERY_WINDOW = "delivery_window"
    REPAIR = "repair"
    REFUND = "refund"
    CUSTOM = "custom"


class PromiseStatus(StrEnum):
    OPEN = "open"
    KEPT = "kept"
    BROKEN = "broken"
    WITHDRAWN = "withdrawn"


class Promise(Model):
    promise_id: str
    kind: PromiseKind
    text: str
    department: str
    actor: str
    made_at: datetime
    due_at: datetime
    status: PromiseStatus = PromiseStatus.OPEN
    settled_at: datetime | None = None
    settled_by: str = ""
    note: str = ""
    reference: str = ""
    # The verified principals who made and kept it (empty: the engine, or before credentials).
    principal: str = ""
    settled_principal: str = ""


class PromiseView(Model):
    """A promise as every channel sees it."""

    promise_id: str
    kind: str
    text: str
    department: str
    due_at: datetime
    status: str
    settled_at: datetime | None = None
    # Who made it and who kept it (principal, and the actor it vouched for).
    principal: str = ""
    actor: str = ""
    settled_by: str = ""
    settled_principal: str = ""

    @classmethod
    def of(cls, promise: Promise) -> PromiseView:
        return cls.model_validate(dict(promise))


# --------------------------------------------------------------------------- commands


class MakePromise(Command):
    # Free text on the wire, so a wrong kind is refused with the list of right ones.
    kind: Name
    due_at: datetime
    text: Words
    department: Name
    actor: Name = "unknown"
    # The department's own reference: repeating it returns the same promise.
    reference: Name = ""


class PromiseMade(Receipt):
    promise_id: str
    due_at: datetime
    already_made: bool = False


class KeepPromise(Command):
    promise_id: Name
    note: Words = ""
    actor: Name = "unknown"


class PromiseKept(Receipt):
    promise_id: str
    kept_at: datetime


# --------------------------------------------------------------------------- rules

# When the engine keeps the promises it makes itself.
ENGINE_KEEPS = {
    PromiseKind.STOCK_DATE: "when stock is allocated to the order",
    PromiseKind.DELIVERY_WINDOW: "when the carrier delivers inside the window",
    PromiseKind.REFUND: "when the refund is issued",
}


def check_make_promise(state: OrderState, cmd: MakePromise, now: datetime) -> None:
    state.require_open("make a promise")
    if cmd.kind not in PromiseKind.__members__.values():
        kinds = ", ".join(PromiseKind)
        raise InvalidInput(f"unknown promise kind '{cmd.kind}'; use one of {kinds}")
    state.department(cmd.department)
    required_text(cmd.text, "text")
    if cmd.due_at <= now:
        raise InvalidInput(f"due_at {cmd.due_at.isoformat()} is in the past")


def check_promise_limits(state: OrderState, cmd: MakePromise, now: datetime) -> None:
    """The bounds a new promise must fit in: checked at the door (the validator) only, so an
    order an older version let past them still replays."""
    if cmd.due_at - now > timedelta(seconds=MAX_SECONDS):
        raise InvalidInput(f"due_at {cmd.due_at.isoformat()} is more than 100 years away")
    state.require_fewer(
        len(open_promises(state)), MAX_OPEN_PROMISES, "open promises", "; keep one first"
    )
    state.require_fewer(len(state.promises), MAX_PROMISES, "promises in all")
    state.require_mail_room("make a promise")


def make_promise(state: OrderState, cmd: MakePromise, now: datetime) -> Promise:
    check_make_promise(state, cmd, now)
    promise = Promise(
        promise_id=f"P{len(state.promises) + 1}",
        kind=PromiseKind(cmd.kind),
        text=cmd.text.strip(),
        department=cmd.department,
        actor=cmd.actor,
        made_at=now,
        due_at=cmd.due_at,
        reference=cmd.reference,
    )
    state.promises.append(promise)
    return promise


def check_keep_promise(state: OrderState, cmd: KeepPromise) -> Promise:
    promise = state.promise(cmd.promise_id)
    if promise.status != PromiseStatus.OPEN:
        raise WrongState(f"promise {promise.promise_id} is already {promise.status.value}")
    if promise.actor == ENGINE:
        when = ENGINE_KEEPS.get(promise.kind, "when it sees it kept")
        raise NotAllowed(f"promise {promise.promise_id} is kept by the engine itself, {when}")
    return promise


def existing_promise(state: OrderState, cmd: MakePromise) -> Promise | None:
    """The promise this command repeats: same department and the same non-empty reference."""
    if not cmd.reference:
        return None
    for promise in state.promises:
        if promise.department == cmd.department and promise.reference == cmd.reference:
            return promise
    return None


def keep_promise(
    state: OrderState, promise: Promise, now: datetime, *, by: str, note: str = ""
) -> None:
    promise.status = PromiseStatus.KEPT
    promise.settled_at = now
    promise.settled_by = by
    promise.note = note


def made(promise: Promise, *, already: bool = False) -> PromiseMade:
    return PromiseMade(promise_id=promise.promise_id, due_at=promise.due_at, already_made=already)


def kept_by_hand(state: OrderState, cmd: KeepPromise, now: datetime) -> PromiseKept:
    """A department says it kept its promise: recorded, and on the timeline."""
    promise = check_keep_promise(state, cmd)
    keep_promise(state, promise, now, by=cmd.actor, note=cmd.note)
    state.log(now, Told.PROMISE_KEPT, f"{promise.department} kept its promise: {promise.text}")
    return PromiseKept(promise_id=promise.promise_id, kept_at=now)


def break_promise(promise: Promise, now: datetime) -> None:
    """Its due time passed unkept."""
    promise.status = PromiseStatus.BROKEN
    promise.settled_at = now
    promise.settled_by = ENGINE


def withdraw(promise: Promise, now: datetime, *, note: str) -> None:
    """Nobody is held to it any more (replaced, or the order was cancelled)."""
    promise.status = PromiseStatus.WITHDRAWN
    promise.settled_at = now
    promise.note = note


def open_promises(state: OrderState, kind: PromiseKind | None = None) -> list[Promise]:
    return [
        p
        for p in state.promises
        if p.status == PromiseStatus.OPEN and (kind is None or p.kind == kind)
    ]
