"""One shipment with one carrier: its records, its clock (trace, lost, the window), the
customer's changes to it, and what the delivery reports to its order. The carrier's events on
it are judged in ``domain.carrier_events``.

Pure rules; the delivery workflow holds one ``DeliveryState`` and calls these.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from domain.base import Command, Model, Name, Receipt
from domain.carrier import CarrierEventRecorded
from domain.errors import InvalidInput, WrongState
from domain.registry import Policy


class DeliveryStatus(StrEnum):
    BOOKING = "booking"
    BOOKED = "booked"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    ATTEMPTED = "attempted"
    EXCEPTION = "exception"
    DELIVERED = "delivered"
    LOST = "lost"
    RETURNED = "returned"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = (
    DeliveryStatus.DELIVERED,
    DeliveryStatus.LOST,
    DeliveryStatus.RETURNED,
    DeliveryStatus.CANCELLED,
)


class ReportKind(StrEnum):
    """What a delivery tells its order."""

    BOOKED = "booked"
    PICKED_UP = "picked_up"
    SCANNED = "scanned"
    ATTEMPTED = "attempted"
    EXCEPTION = "exception"
    RESCHEDULED = "rescheduled"
    REDIRECTED = "redirected"
    TRACE_OPENED = "trace_opened"
    WINDOW_MISSED = "window_missed"
    DELIVERED = "delivered"
    LOST = "lost"
    RETURNED = "returned"

    @property
    def routine(self) -> bool:
        """Nothing to tell anyone yet (a pickup, a scan): the order learns of it with the next
        report, or with the outcome."""
        return self in (ReportKind.PICKED_UP, ReportKind.SCANNED)


class Attempt(Model):
    at: datetime
    verified: bool
    reason: str = ""
    missing: list[str] = Field(default_factory=list)


class DeliverySummary(Model):
    """The order's record of one of its deliveries."""

    delivery_id: int
    workflow_id: str
    carrier: str
    status: DeliveryStatus = DeliveryStatus.BOOKING
    tracking: str = ""
    window_start: datetime | None = None
    window_end: datetime | None = None
    pickup_point: str = ""
    attempts: list[Attempt] = Field(default_factory=list)
    last_scan_at: datetime | None = None
    # The order's lines the parcel carries (1 is the first), on an order that ships its lines
    # apart; empty: the whole order.
    lines: list[int] = Field(default_factory=list)


class Reschedule(Command):
    window_start: datetime
    window_end: datetime
    actor: Name = "customer"


class Redirect(Command):
    pickup_point: Annotated[Name, Field(min_length=1)]
    actor: Name = "customer"


class DeliveryUpdated(Receipt):
    delivery_id: int
    status: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    pickup_point: str = ""


class DeliveryReport(Model):
    """What a delivery tells its order. Only the order talks to the customer."""

    delivery_id: int
    kind: ReportKind
    at: datetime
    status: DeliveryStatus
    verified: bool | None = None
    reason: str = ""
    missing: list[str] = Field(default_factory=list)
    tracking: str = ""
    window_start: datetime | None = None
    window_end: datetime | None = None
    pickup_point: str = ""
    location: str = ""
    # Who sent the event or change it reports, as its token proved (empty: the delivery's
    # own timers, or before credentials).
    principal: str = ""
    actor: str = ""
    kid: str = ""


class DeliveryReports(Model):
    """Reports a delivery sends its order in one signal, oldest first."""

    reports: list[DeliveryReport]


class DeliveryInput(Model):
    order_id: str
    # The order's customer, who alone reschedules or redirects the delivery (empty for
    # deliveries started before credentials: their order's customer is asked for by scope).
    customer_id: str = ""
    delivery_id: int
    carrier: str
    destination: str = ""
    # "lat,lon" of the address, when known; an attempt's GPS fix must be near it.
    destination_gps: str = ""
    window_start: datetime
    window_end: datetime
    policy: Policy = Field(default_factory=Policy)
    # The order reads this delivery's reports from it (``reports_after``) when told there are
    # new ones, and takes all of them from its outcome, instead of trusting a signal's
    # content: a signal may come from anyone. False for deliveries started before.
    reports_read: bool = False


# The order's call that reads a delivery's reports from it.
READ_DELIVERY_REPORTS = "read_delivery_reports"


class ReadReports(Model):
    """The order asks its delivery for the reports it has sent since the first ``after``."""

    workflow_id: str
    after: int


class DeliveryOutcome(Model):
    delivery_id: int
    status: DeliveryStatus
    at: datetime
    verified_attempts: int = 0
    unverified_attempts: int = 0
    # What the order has not been told yet (routine movements, the final event), in order.
    reports: list[DeliveryReport] = Field(default_factory=list)


class DeliveryState(Model):
    inp: DeliveryInput
    status: DeliveryStatus = DeliveryStatus.BOOKING
    window_start: datetime
    window_end: datetime
    pickup_point: str = ""
    attempts: list[Attempt] = Field(default_factory=list)
    last_movement_at: datetime
    trace_opened: bool = False
    # The order has been told that the delivery window passed without a delivery.
    window_missed: bool = False
    results: dict[str, CarrierEventRecorded] = Field(default_factory=dict)
    # Every report sent to the order so far, oldest first (what ``reports_after`` answers).
    reported: list[DeliveryReport] = Field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def verified_attempts(self) -> int:
        return sum(1 for a in self.attempts if a.verified)

    @property
    def unverified_attempts(self) -> int:
        return sum(1 for a in self.attempts if not a.verified)


def check_reschedule(state: DeliveryState, cmd: Reschedule, now: datetime) -> None:
    if state.terminal:
        raise WrongState(f"delivery {state.inp.delivery_id} is already {state.status}")
    if cmd.window_end <= cmd.window_start:
        raise InvalidInput("the window must end after it starts (START/END)")
    if cmd.window_end <= now:
        raise InvalidInput("the new window is in the past")
    if cmd.window_end - cmd.window_start > timedelta(days=7):
        raise InvalidInput("a delivery window may be at most 7 days long")


def check_redirect(state: DeliveryState, cmd: Redirect) -> None:
    if state.terminal:
        raise WrongState(f"delivery {state.inp.delivery_id} is already {state.status}")


def silence_deadline(state: DeliveryState) -> datetime | None:
    """When the carrier's silence opens a trace, or once one is open, makes the parcel lost."""
    if state.terminal or state.status == DeliveryStatus.BOOKING:
        return None
    policy = state.inp.policy
    if not state.trace_opened:
        return state.last_movement_at + policy.scan_sla
    return state.last_movement_at + policy.lost_after


def window_deadline(state: DeliveryState) -> datetime | None:
    """The end of the delivery window, the order's promise to the customer, until the order
    has been told it passed. The delivery keeps this timer while it runs, so the order keeps
    none of its own for it."""
    if state.terminal or state.status == DeliveryStatus.BOOKING or state.window_missed:
        return None
    return state.window_end


def next_deadline(state: DeliveryState) -> datetime | None:
    """The soonest of the delivery's deadlines: its one timer waits for it."""
    return min(
        (d for d in (silence_deadline(state), window_deadline(state)) if d is not None),
        default=None,
    )


# --------------------------------------------------------------------------- what happens


def report(
    state: DeliveryState, kind: ReportKind, now: datetime, **extra: object
) -> DeliveryReport:
    """A report to the order, with the delivery as it stands now."""
    return DeliveryReport.model_validate(
        {
            "delivery_id": state.inp.delivery_id,
            "kind": kind,
            "at": now,
            "status": state.status,
            "window_start": state.window_start,
            "window_end": state.window_end,
            "pickup_point": state.pickup_point,
            **extra,
        }
    )


def reschedule(state: DeliveryState, cmd: Reschedule, now: datetime) -> DeliveryReport:
    state.window_start = cmd.window_start
    state.window_end = cmd.window_end
    return report(state, ReportKind.RESCHEDULED, now)


def redirect(state: DeliveryState, cmd: Redirect, now: datetime) -> DeliveryReport:
    state.pickup_point = cmd.pickup_point.strip()
    return report(state, ReportKind.REDIRECTED, now)


def updated(state: DeliveryState) -> DeliveryUpdated:
    """The answer to the customer's reschedule or redirect."""
    return DeliveryUpdated(
        delivery_id=state.inp.delivery_id,
        status=state.status,
        window_start=state.window_start,
        window_end=state.window_end,
        pickup_point=state.pickup_point,
    )


def window_passed(state: DeliveryState, now: datetime) -> DeliveryReport | None:
    """The window's end passed with the parcel not delivered: the order hears it once."""
    window = window_deadline(state)
    if window is None or window > now:
        return None
    state.window_missed = True
    return report(state, ReportKind.WINDOW_MISSED, now)


def silence_passed(state: DeliveryState, now: datetime) -> bool:
    """The carrier has been silent past the scan SLA (or, with a trace open, past lost_after)."""
    silence = silence_deadline(state)
    return silence is not None and silence <= now


def declare_lost(state: DeliveryState, now: datetime) -> DeliveryReport:
    state.status = DeliveryStatus.LOST
    return report(state, ReportKind.LOST, now)


def urgent(pending: list[DeliveryReport]) -> bool:
    """A report waits that the order must have now, not with the next one."""
    return any(not r.kind.routine for r in pending)


def outcome(state: DeliveryState, now: datetime, pending: list[DeliveryReport]) -> DeliveryOutcome:
    return DeliveryOutcome(
        delivery_id=state.inp.delivery_id,
        status=state.status,
        at=now,
        verified_attempts=state.verified_attempts,
        unverified_attempts=state.unverified_attempts,
        reports=pending,
    )
