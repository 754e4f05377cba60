"""The five customer stories as scenarios the engine plays for real.

Each file in ``seeds/stories/`` names the actors (customer, departments, a carrier, the clock)
and their actions in order. Story time is compressed by a scale factor: every policy duration
and every wait is divided by it, so days play in seconds. Each story runs at a location of its
own (a copy of the named store with the story's stock), so stories repeat identically.

One module on purpose: the runner and every action a story file may name read together, so
a new kind of action is added in one place.
"""

from __future__ import annotations

import asyncio
import time
import tomllib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from domain.carrier import CarrierEvent
from domain.delivery import Redirect, Reschedule
from domain.durations import parse_duration
from domain.errors import InvalidInput, WrongState
from domain.holds import DisputeHold, PlaceHold, ReleaseHold, UpholdHold
from domain.order import ShipPolicy
from domain.promises import KeepPromise, MakePromise
from domain.registry import Policy
from domain.view import OrderView
from orderflow.identity import KeyRing
from orderflow.service import Orderflow

DEFAULT_SCALE = 21600.0  # one story day plays in four seconds
CUSTOMER_CONTACTS = ("dispute", "reschedule", "redirect", "cancel")

Action = Literal[
    "place",
    "expect",
    "wait",
    "hold",
    "dispute",
    "release",
    "uphold",
    "promise",
    "keep",
    "receive",
    "carrier",
    "reschedule",
    "redirect",
    "cancel",
]


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    action: Action
    actor: str = "clock"
    note: str = ""
    name: str = ""
    # expect
    status: str | None = None
    delivery: str | None = None
    deliveries: int | None = None
    # wait / promise due / reschedule window, in story time
    for_: str | None = Field(default=None, alias="for")
    due: str | None = None
    start: str | None = None
    end: str | None = None
    # holds and promises
    department: str = ""
    reason: str = ""
    reference: str = ""
    amount: str | None = None
    message: str = ""
    resolution: str = ""
    hold: str = ""
    promise: str = ""
    kind: str = ""
    text: str = ""
    as_: str | None = Field(default=None, alias="as")
    # stock and carrier
    qty: int = 0
    event: str = ""
    evidence: dict[str, str] = Field(default_factory=dict)
    pickup_point: str = ""


class StoryLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str
    qty: int = 1


class Story(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    customer: str
    # The order: its first line (``sku``, ``qty``), and any further ``lines``.
    sku: str
    qty: int = 1
    lines: list[StoryLine] = Field(default_factory=list)
    # How the lines ship: ``available`` (what is reserved now) or ``complete`` (all at once).
    ship: ShipPolicy = ShipPolicy.AVAILABLE
    location: str
    carrier: str | None = None
    stock: dict[str, int] = Field(default_factory=dict)
    policy: dict[str, str] = Field(default_factory=dict)
    step: list[Step]


class HoldLine(BaseModel):
    hold_id: str
    department: str
    reason: str
    placed_by: str
    released_by: str
    blocked_hours: float
    escalations: int


class StoryReport(BaseModel):
    story_id: str
    title: str
    order_id: str
    status: str
    # Contacts the customer had to make to learn something (calls, chats): the goal is none.
    contacts_to_learn: int
    # What the customer did themselves on the order page (dispute, reschedule, redirect, cancel).
    self_service_actions: int
    customer_emails: int
    blocked_hours: float
    holds: list[HoldLine]
    promises_kept: int
    promises_broken: int
    verified_attempts: int
    unverified_attempts: int
    deliveries: int
    price_at_placement: Decimal
    charged: Decimal
    ui_link: str
    # Each invariant: kept (True), broken (False), or not something this story could test
    # (None, shown as "n/a": no lost parcel to re-ship, no promise to keep).
    checks: dict[str, bool | None]

    @property
    def ok(self) -> bool:
        return all(v is not False for v in self.checks.values())


def load_stories(folder: Path) -> list[Story]:
    stories: list[Story] = []
    for path in sorted(folder.glob("*.toml")):
        try:
            stories.append(Story.model_validate(tomllib.loads(path.read_text(encoding="utf-8"))))
        except (tomllib.TOMLDecodeError, ValidationError) as err:
            first = (
                str(err).splitlines()[0]
                if isinstance(err, tomllib.TOMLDecodeError)
                else _first(err)
            )
            raise InvalidInput(f"story file {path}: {first}") from None
    return stories


def _first(err: ValidationError) -> str:
    e = err.errors()[0]
    return f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"


def pick(stories: list[Story], wanted: list[str]) -> list[Story]:
    if not wanted:
        return stories
    chosen = []
    for w in wanted:
        match = [s for s in stories if s.id == w or s.id == w.zfill(3)]
        if not match:
            raise InvalidInput(f"no story '{w}'; stories: {', '.join(s.id for s in stories)}")
        chosen += match
    return chosen


class Player:
    """Plays one story against the engine and reports what the customer lived through."""

    def __init__(
        self,
        app: Orderflow,
        story: Story,
        *,
        scale: float = DEFAULT_SCALE,
        on_step: Callable[[Step], None] | None = None,
        web: httpx.AsyncClient | None = None,
    ) -> None:
        if app.desk is None:
            raise WrongState(
                "stories play on a worker beside them (orderflow dev --demo, orderflow demo): "
                "its order desk takes each story's store and compressed clock"
            )
        self.app = app
        self.desk = app.desk
        self.story = story
        self.scale = scale
        self.on_step = on_step or (lambda step: None)
        run = uuid.uuid4().hex[:6]
        self.order_id = f"S{story.id}-{run}"
        self.location = f"{story.location}.story{story.id}.{run}"
        self.holds: dict[str, str] = {}
        self.promises: dict[str, str] = {}
        self.placed: OrderView | None = None
        # The web front end's HTTP API (orderflow's listener): what the customer does on the
        # order page goes through it, as their page sends it; without it, through the service.
        self.web = web
        self.self_service = 0

    async def _on_page(self, path: str, body: dict[str, Any]) -> None:
        """A customer's action as their order page sends it: to the HTTP API, with a token the
        page's key signs for this customer and order."""
        assert self.web is not None
        token = KeyRing(self.app.settings.keys_path).for_customer(
            self.story.customer, self.order_id
        )
        response = await self.web.post(
            f"/api/v1/orders/{self.order_id}/{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code >= 400:
            raise InvalidInput(f"{path}: {response.json().get('detail', response.text)}")
        self.self_service += 1

    def real(self, story_time: str) -> timedelta:
        return parse_duration(story_time) / self.scale

    def _policy(self) -> Policy:
        fields: dict[str, Any] = {k: parse_duration(v) for k, v in self.story.policy.items()}
        return Policy(**fields).scaled(self.scale)

    def _register_location(self) -> None:
        base = self.desk.registry.location(self.story.location)
        stock = {**base.stock, **self.story.stock}
        self.desk.registry.locations[self.location] = base.model_copy(
            update={"location": self.location, "stock": stock}
        )

    async def play(self) -> StoryReport:
        self._register_location()
        for step in self.story.step:
            self.on_step(step)
            await self._do(step)
        return await self.report()

    async def _expect(self, step: Step, timeout: float = 60) -> None:
        def ok(v: OrderView) -> bool:
            if step.status and v.status != step.status:
                return False
            if step.deliveries is not None and len(v.deliveries) < step.deliveries:
                return False
            return not (
                step.delivery and (not v.deliveries or v.deliveries[-1].status != step.delivery)
            )

        deadline = time.monotonic() + timeout
        while True:
            view = await self.app.view(self.order_id)
            if ok(view):
                return
            if time.monotonic() > deadline:
                raise InvalidInput(
                    f"story {self.story.id}: order {self.order_id} is {view.status} "
                    f"({view.next_step}), expected {step.model_dump(exclude_defaults=True)}"
                )
            await asyncio.sleep(0.05)

    async def _do(self, step: Step) -> None:
        app, oid, s = self.app, self.order_id, self.story
        now = datetime.now(UTC)
        match step.action:
            case "place":
                inp = app.order_input(
                    customer_id=s.customer,
                    lines=[(s.sku, s.qty)] + [(line.sku, line.qty) for line in s.lines],
                    location=self.location,
                    carrier=s.carrier,
                    pickup=False,
                    order_id=oid,
                    actor="customer",
                    ship=s.ship.value,
                )
                # The story's clock: its policy and the departments' SLAs, compressed.
                self.desk.stage(
                    oid,
                    policy=self._policy(),
                    departments=[
                        d.model_copy(update={"hold_sla": d.hold_sla / self.scale})
                        for d in self.desk.registry.departments.values()
                    ],
                )
                self.placed, _ = await app.place_order(inp)
            case "expect":
                await self._expect(step)
            case "wait":
                await asyncio.sleep(self.real(step.for_ or "0s").total_seconds())
            case "hold":
                placed = await app.place_hold(
                    oid,
                    PlaceHold(
                        department=step.department,
                        actor=step.actor,
                        reason_code=step.reason,
                        customer_message=step.message,
                        reference=step.reference,
                        amount=Decimal(step.amount) if step.amount else None,
                    ),
                )
                self.holds[step.name] = placed.hold_id
            case "dispute":
                cmd = DisputeHold(hold_id=self.holds[step.hold], customer_message=step.message)
                if self.web is not None:
                    await self._on_page("holds/dispute", cmd.model_dump(mode="json"))
                else:
                    await app.dispute_hold(oid, cmd)
                    self.self_service += 1
            case "release":
                await app.release_hold(
                    oid,
                    ReleaseHold(
                        hold_id=self.holds[step.hold],
                        department=step.department,
                        actor=step.as_ or step.actor,
                        resolution=step.resolution,
                    ),
                )
            case "uphold":
                await app.uphold_hold(
                    oid,
                    UpholdHold(
                        hold_id=self.holds[step.hold],
                        department=step.department,
                        actor=step.as_ or step.actor,
                        customer_message=step.message,
                    ),
                )
            case "promise":
                made = await app.make_promise(
                    oid,
                    MakePromise(
                        kind=step.kind,
                        due_at=now + self.real(step.due or "1d"),
                        text=step.text,
                        department=step.department,
                        actor=step.actor,
                    ),
                )
                self.promises[step.name] = made.promise_id
            case "keep":
                await app.keep_promise(
                    oid,
                    KeepPromise(
                        promise_id=self.promises[step.promise], note=step.note, actor=step.actor
                    ),
                )
            case "receive":
                await app.receive_stock(self.location, s.sku, step.qty, step.reference)
            case "carrier":
                await app.carrier_event(
                    oid,
                    CarrierEvent(
                        event=step.event,
                        evidence=step.evidence,
                        reason=step.reason,
                        actor=step.actor,  # type: ignore[arg-type]
                    ),
                )
            case "reschedule":
                moved = Reschedule(
                    window_start=now + self.real(step.start or "1d"),
                    window_end=now + self.real(step.end or "2d"),
                )
                if self.web is not None:
                    await self._on_page("reschedule", moved.model_dump(mode="json"))
                else:
                    await app.reschedule(oid, moved)
                    self.self_service += 1
            case "redirect":
                sent = Redirect(pickup_point=step.pickup_point)
                if self.web is not None:
                    await self._on_page("redirect", sent.model_dump(mode="json"))
                else:
                    await app.redirect(oid, sent)
                    self.self_service += 1
            case "cancel":
                from domain.order import CancelOrder

                cancel = CancelOrder(
                    by=step.department or "customer",
                    actor=step.actor,
                    reason=step.reason,
                    customer_message=step.message,
                )
                if self.web is not None and cancel.by == "customer":
                    await self._on_page("cancel", cancel.model_dump(mode="json"))
                else:
                    await app.cancel(oid, cancel)
                    self.self_service += cancel.by == "customer"

    async def report(self) -> StoryReport:
        view = await self.app.view(self.order_id)
        timeline = await self.app.timeline(self.order_id)
        story_hours = self.scale / 3600
        end = datetime.now(UTC)
        holds = [
            HoldLine(
                hold_id=h.hold_id,
                department=h.department,
                reason=h.reason,
                placed_by=h.placed_by,
                released_by=h.released_by or "-",
                escalations=h.escalations,
                blocked_hours=round(
                    ((h.released_at or end) - h.placed_at).total_seconds() * story_hours, 1
                ),
            )
            for h in view.holds
        ]
        attempts = [a for d in view.deliveries for a in d.attempts]
        told = {(e.kind, e.at) for e in timeline}
        catalog = self.app.registry
        placed_total = sum((line.unit_price * line.qty for line in view.lines), Decimal("0"))
        limit = Policy().attempt_limit
        lost = [d for d in view.deliveries if d.status == "lost"]
        checks: dict[str, bool | None] = {
            "customer told of every hold at once": all(
                ("hold_placed", h.placed_at) in told for h in view.holds
            )
            if view.holds
            else None,
            "nothing cancelled without a message": any(
                e.kind == "cancelled" and e.text for e in timeline
            )
            if view.status == "cancelled"
            else None,
            "no unverified attempt counted": all(
                d.status != "returned" or sum(a.verified for a in d.attempts) >= limit
                for d in view.deliveries
            )
            if attempts
            else None,
            "a lost parcel re-shipped": all(
                any(later.delivery_id > d.delivery_id for later in view.deliveries) for d in lost
            )
            if lost
            else None,
            "price unchanged": all(
                line.unit_price == catalog.sku(line.sku).price for line in view.lines
            )
            and (view.status != "completed" or view.charged == placed_total),
            "every promise kept or reported broken": all(
                p.status in ("kept", "withdrawn")
                or (p.status == "broken" and any(e.kind == "promise_broken" for e in timeline))
                for p in view.promises
            )
            if view.promises
            else None,
        }
        return StoryReport(
            story_id=self.story.id,
            title=self.story.title,
            order_id=self.order_id,
            status=view.status,
            contacts_to_learn=sum(
                1
                for st in self.story.step
                if st.actor == "customer" and st.action not in (*CUSTOMER_CONTACTS, "place")
            ),
            self_service_actions=self.self_service,
            customer_emails=view.customer_emails,
            blocked_hours=round(sum(h.blocked_hours for h in holds), 1),
            holds=holds,
            promises_kept=sum(p.status == "kept" for p in view.promises),
            promises_broken=sum(p.status == "broken" for p in view.promises),
            verified_attempts=sum(a.verified for a in attempts),
            unverified_attempts=sum(not a.verified for a in attempts),
            deliveries=len(view.deliveries),
            price_at_placement=placed_total,
            charged=view.charged,
            ui_link=self.app.ui_link(f"order-{self.order_id}"),
            checks=checks,
        )
