"""One shipment with one carrier: the order of events, the evidence rule, trace and lost.

Pure rules; the delivery workflow holds one ``DeliveryState`` and calls these.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from pydantic import Field

from domain.errors import InvalidInput, WrongState
from domain.models import (
    Attempt,
    CarrierEvent,
    CarrierEventRecorded,
    DeliveryReport,
    Model,
    Policy,
    Redirect,
    Reschedule,
)

TERMINAL = ("delivered", "lost", "returned", "cancelled")
EVIDENCE = ("photo", "gps", "time")


class DeliveryInput(Model):
    order_id: str
    delivery_id: int
    carrier: str
    destination: str = ""
    # "lat,lon" of the address, when known; an attempt's GPS fix must be near it.
    destination_gps: str = ""
    window_start: datetime
    window_end: datetime
    policy: Policy = Field(default_factory=Policy)


class DeliveryOutcome(Model):
    delivery_id: int
    status: str
    at: datetime
    verified_attempts: int = 0
    unverified_attempts: int = 0
    # What the order has not been told yet (routine movements, the final event), in order.
    reports: list[DeliveryReport] = Field(default_factory=list)


class DeliveryState(Model):
    inp: DeliveryInput
    status: str = "booking"
    window_start: datetime
    window_end: datetime
    pickup_point: str = ""
    attempts: list[Attempt] = Field(default_factory=list)
    last_movement_at: datetime
    trace_opened: bool = False
    # The order has been told that the delivery window passed without a delivery.
    window_missed: bool = False
    results: dict[str, CarrierEventRecorded] = Field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def verified_attempts(self) -> int:
        return sum(1 for a in self.attempts if a.verified)

    @property
    def unverified_attempts(self) -> int:
        return sum(1 for a in self.attempts if not a.verified)


# Which statuses accept which event: anything else is out of order.
ACCEPTS: dict[str, tuple[str, ...]] = {
    "picked-up": ("booked",),
    "scan": ("picked_up", "in_transit", "attempted", "exception"),
    "attempted": ("picked_up", "in_transit", "attempted", "exception"),
    "delivered": ("picked_up", "in_transit", "attempted", "exception"),
    "exception": ("booked", "picked_up", "in_transit", "attempted", "exception"),
    "lost": ("picked_up", "in_transit", "attempted", "exception"),
}
SINGLE = ("picked-up", "delivered", "lost")


def dedupe_key(event: CarrierEvent) -> str | None:
    """Events with this key were seen before: answer with the first result."""
    if event.event_id:
        return f"id:{event.event_id}"
    if event.event in SINGLE:
        return f"event:{event.event}"
    return None


def check_event(state: DeliveryState, event: CarrierEvent) -> None:
    key = dedupe_key(event)
    if key and key in state.results:
        return
    if state.terminal:
        raise WrongState(
            f"delivery {state.inp.delivery_id} of order {state.inp.order_id} is already "
            f"{state.status}; '{event.event}' is not accepted"
        )
    if state.status not in ACCEPTS[event.event]:
        raise WrongState(
            f"'{event.event}' is out of order: delivery {state.inp.delivery_id} is {state.status}"
            + ("; the parcel must be picked up first" if state.status == "booked" else "")
        )
    if event.event == "scan" and not event.location.strip():
        raise InvalidInput("a scan needs the location where it happened (--evidence location=...)")


def _distance_m(a: str, b: str) -> float:
    lat1, lon1 = (math.radians(float(x)) for x in a.split(","))
    lat2, lon2 = (math.radians(float(x)) for x in b.split(","))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


def judge_attempt(state: DeliveryState, event: CarrierEvent, now: datetime) -> Attempt:
    """An attempt counts only with a photo, a GPS fix near the address and a time in the window."""
    ev = event.evidence
    missing = [k for k in EVIDENCE if not ev.get(k, "").strip()]
    if "gps" not in missing and state.inp.destination_gps:
        try:
            far = (
                _distance_m(ev["gps"], state.inp.destination_gps) > state.inp.policy.gps_tolerance_m
            )
        except (ValueError, IndexError):
            far = True
        if far:
            missing.append("gps near the address")
    at = now
    if "time" not in missing:
        try:
            at = datetime.fromisoformat(ev["time"].replace("Z", "+00:00"))
            if at.tzinfo is None:
                raise ValueError
            if not (state.window_start <= at <= state.window_end):
                missing.append("time inside the delivery window")
        except ValueError:
            missing.append("time (ISO 8601 with zone)")
            at = now
    return Attempt(at=at, verified=not missing, reason=event.reason, missing=missing)


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
    if state.terminal or state.status == "booking":
        return None
    policy = state.inp.policy
    if not state.trace_opened:
        return state.last_movement_at + policy.scan_sla
    return state.last_movement_at + policy.lost_after


def window_deadline(state: DeliveryState) -> datetime | None:
    """The end of the delivery window, the order's promise to the customer, until the order
    has been told it passed. The delivery keeps this timer while it runs, so the order keeps
    none of its own for it."""
    if state.terminal or state.status == "booking" or state.window_missed:
        return None
    return state.window_end


def next_deadline(state: DeliveryState) -> datetime | None:
    """The soonest of the delivery's deadlines: its one timer waits for it."""
    return min(
        (d for d in (silence_deadline(state), window_deadline(state)) if d is not None),
        default=None,
    )
