"""E-mails: who hears of what (the notices each event makes), and each e-mail as the order
queues it, keyed so it is sent once."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from domain import messages
from domain.base import Model
from domain.holds import Hold, blocked_department
from domain.order import OrderState
from domain.promises import Promise
from domain.timeline import Told

# The one call that sends e-mail (an activity).
SEND_EMAILS = "send_emails"


class Notification(Model):
    """One e-mail. ``key`` makes it idempotent: the same key is never sent twice."""

    key: str
    to: str
    subject: str
    body: str
    order_id: str = ""


class EmailBatch(Model):
    """The e-mails an order queued in one step, sent together in order."""

    notes: list[Notification]


def notification_key(workflow_id: str, seq: int, to: str, subject: str, body: str) -> str:
    """Position and content together: a retry of the same message is recognised, while a
    different message at the same position (a history that was cut short and replayed
    differently, as after a server crash) is still sent."""
    digest = hashlib.sha256(f"{to}\n{subject}\n{body}".encode()).hexdigest()[:12]
    return f"{workflow_id}.{seq}.{digest}"


@dataclass(frozen=True)
class Notice:
    """An e-mail the order sends: to the customer (on the timeline under ``kind``), or to a
    department's or supervisor's address (none when the registry has no address)."""

    mail: tuple[str, str]
    kind: str = ""
    to: str = ""

    @property
    def to_customer(self) -> bool:
        return bool(self.kind)


# Who hears of what. The customer always hears first.


def hold_placed(state: OrderState, hold: Hold) -> list[Notice]:
    """The customer, and the department whose step the hold blocks."""
    dept = state.department(hold.department)
    blocked = blocked_department(state, hold)
    return [
        Notice(messages.hold_placed_customer(state, hold, dept), kind=Told.HOLD_PLACED),
        Notice(messages.hold_placed_department(state, hold, dept), to=blocked.notify_email),
    ]


def hold_released(state: OrderState, hold: Hold) -> list[Notice]:
    dept = state.department(hold.department)
    return [Notice(messages.hold_released_customer(state, hold, dept), kind=Told.HOLD_RELEASED)]


def hold_disputed(state: OrderState, hold: Hold) -> list[Notice]:
    """The customer, then the department and its supervisor."""
    dept = state.department(hold.department)
    mail = messages.hold_disputed_department(state, hold, dept)
    return [
        Notice(messages.hold_disputed_customer(state, hold, dept), kind=Told.HOLD_DISPUTED),
        Notice(mail, to=dept.notify_email),
        Notice(mail, to=dept.supervisor_email),
    ]


def hold_upheld(state: OrderState, hold: Hold) -> list[Notice]:
    dept = state.department(hold.department)
    return [Notice(messages.hold_upheld_customer(state, hold, dept), kind=Told.HOLD_UPHELD)]


def hold_escalated(state: OrderState, hold: Hold) -> list[Notice]:
    """The customer (the truth and a new date), then the department's supervisor."""
    dept = state.department(hold.department)
    return [
        Notice(messages.hold_escalated_customer(state, hold, dept), kind=Told.HOLD_ESCALATED),
        Notice(messages.hold_escalated_supervisor(state, hold, dept), to=dept.supervisor_email),
    ]


def promise_made(state: OrderState, promise: Promise) -> list[Notice]:
    dept = state.department(promise.department)
    return [Notice(messages.promise_made(state, promise, dept), kind=Told.PROMISE_MADE)]


def promise_broken(state: OrderState, promise: Promise) -> list[Notice]:
    """The customer hears first, then the promiser's supervisor."""
    dept = state.department(promise.department)
    return [
        Notice(messages.promise_broken_customer(state, promise, dept), kind=Told.PROMISE_BROKEN),
        Notice(messages.promise_broken_supervisor(state, promise, dept), to=dept.supervisor_email),
    ]
