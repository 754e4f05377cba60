"""OrderWorkflow: owns one customer order from placement to completion.

Departments and partners act on the order only through its updates, each validated by a rule in
``domain`` before it reaches history. The run goes step by step (reserve, authorize, hand over
or deliver, capture); a step stops while a hold is active and gives way to compensation when a
cancel is accepted. Every decision is a function in ``domain``; the workflow holds the state
and sequences. Small collaborators (``workflows/support``) each own one concern: the deadline
timer (hold SLAs, promises, the pickup window), the outbox (every e-mail, in order, exactly
once), the publisher (search attributes and the UI's details), the shipment (the running
delivery and its reports), and the call gate every call to another system goes through, one
at a time.

One module of a little over 400 lines on purpose: its fourteen handlers are the order's whole
message surface (what departments, carriers, stock records and the customer may send), listed
beside the run they steer; each is a few lines over a ``domain`` rule.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, NoReturn, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from domain import authority, holds, messages, notices, promises, reservation
    from domain import fulfilment as steps
    from domain import order as rules
    from domain.authority import Caller
    from domain.billing import PaymentCall, PaymentState
    from domain.carrier import Booking, CarrierCall
    from domain.delivery import DeliveryOutcome, DeliveryReport, DeliveryReports, DeliveryStatus
    from domain.errors import InvalidInput, OrderflowError, WrongState, refusal_of
    from domain.order import (
        OrderState,
        OrderStatus,
        PlacementRequest,
        PlaceOrder,
        PlaceOrderInput,
        ShipPolicy,
        TermsDecision,
        placed_on_terms,
        unpriced,
    )
    from domain.registry import LostAction
    from domain.steps import Step
    from domain.stock import (
        READ_STOCK_RECORD,
        ReadStock,
        ReservationStatus,
        StockAllocated,
        StockCall,
        StockReserved,
        StockView,
        StockWithdrawn,
        WaitlistMoved,
        confirms,
    )
    from domain.timeline import TimelineEntry, Told
    from domain.view import OrderView, order_view
    from orderflow.desk import desk_for
    from workflows.search_attributes import ORDER_STATUS
    from workflows.support.changes import Changes
    from workflows.support.gate import RETRY, CallGate, TimerMark
    from workflows.support.outbox import (
        MAIL_AFTER_RECORD,
        MAIL_BESIDE_STEPS_STUCK_SECONDS,
        MAIL_BESIDE_STUCK_STEPS,
        Outbox,
    )
    from workflows.support.publisher import Publisher
    from workflows.support.refusals import NO_INPUT, accepted, admitted, door, refusal
    from workflows.support.shipment import READ_REPORTS, Shipment
    from workflows.support.timer import DeadlineTimer

# Seconds by which a far deadline's timer is armed early (see DeadlineTimer).
ARM_EARLY = 1.0
# Orders from now on wait out the last of those seconds in the worker (activities/clock.py).
DEADLINE_IN_WORKER = "deadline-waited-in-worker"
WAIT_OUT_TIMEOUT = timedelta(seconds=10)


class _Cancelled(Exception):
    """Raised inside the run when a cancel was accepted; compensation follows."""


M = TypeVar("M", bound=BaseModel)

# Orders started from now on refuse a start input that fails the door (``OrderWorkflow._reject``).
START_AT_DOOR = "start-at-door"
# The ``OrderStatus`` of an order refused at the door.
REJECTED = "rejected"
# Orders started from now on take a ``PlaceOrder`` and record the engine's terms for it.
ENGINE_TERMS = "engine-terms"
TERMS_TIMEOUT = timedelta(seconds=10)
# Orders of several lines reserve each line.
ORDER_LINES = "order-lines"
# Orders of several lines for delivery ship per their ``ShipPolicy``, each delivery captured
# for what it handed over.
LINE_DELIVERIES = "line-deliveries"
# Orders started from now on apply a stock record's signal only once the record confirms it.
STOCK_FACTS_READ = "stock-facts-read"
CLAIM_READ_TIMEOUT = timedelta(seconds=10)
# Orders started from now on are placed only with a verified token of a principal that places
# orders (an order desk, the engine, the order's own customer), checked with their terms.
START_CREDENTIAL = "start-credential"
# Orders started from now on keep the search attributes their start set while they hold
# (the order desk sets status and carrier): no upsert repeats them in the first task.
INDEXED_AT_START = "indexed-at-start"
# Orders from now on whose start set other search attributes than their own put theirs in place
# in their first task.
INDEX_PUT_RIGHT = "index-put-right"
# Orders started on 0.8 recorded this one marker for every change above and the outbox's and
# the shipment's: each costs an order two history events (workflows/support/changes.py).
ORDER_CHANGES = "order-changes-0.8"
FOLDED_CHANGES = frozenset(
    {
        START_AT_DOOR,
        ENGINE_TERMS,
        ORDER_LINES,
        LINE_DELIVERIES,
        STOCK_FACTS_READ,
        START_CREDENTIAL,
        MAIL_AFTER_RECORD,
        MAIL_BESIDE_STUCK_STEPS,
        MAIL_BESIDE_STEPS_STUCK_SECONDS,
        READ_REPORTS,
    }
)
# Orders started on 0.9 recorded this one: 0.8's changes and those since.
ORDER_CHANGES_0_9 = "order-changes-0.9"
# Orders started from now on mark a workflow task that must carry a command before its first
# call on a durable timer, not by upserting their search attributes (workflows/support/gate.py).
MARKS_BY_TIMER = "marks-by-timer"
# Orders started from now on record this one: 0.9's changes and those since.
ORDER_CHANGES_0_10 = "order-changes-0.10"
FOLDS = [
    (ORDER_CHANGES_0_10, frozenset({MARKS_BY_TIMER})),
    (ORDER_CHANGES_0_9, frozenset({DEADLINE_IN_WORKER, INDEXED_AT_START})),
    (ORDER_CHANGES, FOLDED_CHANGES),
]
# Stands in for a start input no version of the engine could read: the order is refused.
_UNREADABLE = PlaceOrderInput.model_construct(order_id="unreadable", lines=[], location="")


def _carries_terms(raw: RawValue) -> bool:
    """A start input that carries the customer's record (and so every term) itself."""
    payload = raw.payload
    if payload is None or payload.metadata.get("encoding") != b"json/plain":
        return False
    try:
        data = json.loads(payload.data)
    except ValueError:
        return False
    return isinstance(data, dict) and "customer" in data


@workflow.defn
class OrderWorkflow:
    @workflow.init
    def __init__(self, raw: Annotated[RawValue, PlaceOrder] = NO_INPUT) -> None:
        # Which changes this order makes: its first command, before anything asks one.
        self.changes = Changes(FOLDS)
        # The start input passes the door like any update; an order started from it is refused
        # in its first task (``run``). History keeps what older versions accepted, so a replay
        # reads it leniently.
        self.refusal: OrderflowError | None = None
        # A ``PlaceOrder`` whose terms the order has not recorded yet (``_record_terms``).
        self.awaiting_terms: PlaceOrder | None = None
        # Why the registry, as it stands, could not place the order: what its validators say
        # while its terms are being recorded.
        self.unplaceable: OrderflowError | None = None
        if _carries_terms(raw):
            inp, unreadable = self._whole_input(raw)
        else:
            inp, unreadable = self._request(raw)
        # Decided here, before any update that came with the start is validated. An order an
        # older version accepted (no marker in its history) runs on as it did.
        self.rejected = self.refusal is not None and (
            unreadable or self.changes.patched(START_AT_DOOR)
        )
        if inp.placed_at is None:
            inp = inp.model_copy(update={"placed_at": workflow.now()})
        self.state = OrderState(input=inp)
        self.collect: rules.CollectOrder | None = None
        # Who sent the update being validated or handled (workflows/support/credentials.py).
        self.caller: Caller | None = None
        # A stock record's signals are claims the record confirms (``_claimed``); orders an
        # older version started take them as sent.
        self.facts_read = self.changes.patched(STOCK_FACTS_READ)
        self.claims: list[StockAllocated | StockWithdrawn | WaitlistMoved] = []
        self.confirming: asyncio.Task[None] | None = None
        # The token the order's start carried (set before ``run`` by the same interceptor).
        self.start_token: str | None = None
        # Who placed it, as that token proved.
        self.placed_by: Caller | None = None
        self.several_lines = False
        # What each line cancel undid, by line index: its caller's answer.
        self.line_compensations: dict[int, list[str]] = {}
        self.shipment = Shipment(self.changes.patched)
        # What the start set is what visibility shows until the order says otherwise.
        self.indexed_at_start = self.changes.patched(INDEXED_AT_START)
        self.publisher = Publisher(self.state, indexed=self.indexed_at_start)
        # A task with no command yet marks itself before its first call: on a timer, or (orders
        # started before 0.10) by indexing the search attributes.
        self.marks_by_timer = self.changes.patched(MARKS_BY_TIMER)
        self.gate = CallGate(TimerMark() if self.marks_by_timer else self.publisher.index)
        self.outbox = Outbox(self.state, self.gate, self.changes.patched)
        self.deadlines = DeadlineTimer(
            lambda: rules.next_deadline(self.state),
            summary="next-deadline",
            arm_early=ARM_EARLY,
            wait_out=self._wait_out,
        )

    def _whole_input(self, raw: RawValue) -> tuple[PlaceOrderInput, bool]:
        """A start input carrying the order's terms, as orders started before the engine owned
        them did: replayed as before; refused for an order started now."""
        try:
            inp = admitted(raw, PlaceOrderInput, "the order's start input")
        except OrderflowError as err:
            self.refusal = err
            try:
                return accepted(raw, PlaceOrderInput), False
            except (ValueError, AssertionError):
                return _UNREADABLE, True
        if self.changes.patched(ENGINE_TERMS):
            self.refusal = InvalidInput(
                "customer: unknown field; an order's start input is a PlaceOrder (order_id, "
                "customer_id, lines of sku and qty, location, carrier, pickup, actor): the "
                "engine adds the customer's record, prices, departments, carriers and policy "
                "from its registry (orderflow schema place_order)"
            )
        return inp, False

    def _request(self, raw: RawValue) -> tuple[PlaceOrderInput, bool]:
        """A ``PlaceOrder``: until its terms are recorded, the order stands on what the
        worker's registry says now (for validators and queries only, which never replay)."""
        try:
            req = admitted(raw, PlaceOrder, "the order's start input")
        except OrderflowError as err:
            self.refusal = err
            return _UNREADABLE, True
        if len(req.lines) > 1 and not self.changes.patched(ORDER_LINES):
            # Before orders had lines, the door took one: an order refused then replays so.
            self.refusal = InvalidInput("lines: an order took one line")
            return _UNREADABLE, True
        self.awaiting_terms = req
        # Placed when the order started: the time its caller can read back (describe).
        placed_at = workflow.info().workflow_start_time
        desk = desk_for(workflow.info().task_queue)
        try:
            if desk is None:
                raise WrongState("no order desk on this worker")
            return placed_on_terms(req, desk.terms(req), placed_at), False
        except OrderflowError as err:
            self.unplaceable = err
            return unpriced(req, placed_at), False

    async def _record_terms(self) -> None:
        """The order's terms from the worker's registry, recorded (an activity's result):
        a replay reads them from history, whatever the registry says by then."""
        req = self.awaiting_terms
        assert req is not None
        # An activity, not a local one: a local activity that ends while a query closes the
        # order's first task early is replayed into that task, ahead of where it ran.
        if self.changes.patched(START_CREDENTIAL):
            # Who placed it is checked with its terms, as of its start, and recorded.
            decision = await workflow.execute_activity(
                "placement_terms",
                PlacementRequest(
                    order=req,
                    token=self.start_token,
                    started_at=workflow.info().workflow_start_time,
                ),
                result_type=TermsDecision,
                start_to_close_timeout=TERMS_TIMEOUT,
                summary="order terms",
            )
        else:
            decision = await workflow.execute_activity(
                "order_terms",
                req,
                result_type=TermsDecision,
                start_to_close_timeout=TERMS_TIMEOUT,
                summary="order terms",
            )
        if decision.placed_by is not None:
            self.state.placed_by = decision.placed_by.principal
            self.placed_by = decision.placed_by
        if decision.terms is None:
            self.refusal = refusal_of(decision.refusal_type, decision.refusal)
            self.rejected = True
            self._reject()
        placed_at = self.state.input.placed_at or workflow.now()
        self.state.input = placed_on_terms(req, decision.terms, placed_at)
        self.awaiting_terms = None
        self.unplaceable = None
        # The updates that came with the start (``_terms_recorded``) were waiting first: they
        # apply now, before the order's first step (a hold placed at checkout blocks it).
        await workflow.wait_condition(lambda: True)

    def _puts_index_right(self) -> bool:
        """An order whose start set other search attributes than its own (a start straight
        through Temporal) upserts its own in its first task, a carrier it has not unset. Asked
        only then: orders 0.9.0 started this way kept the start's until their next upsert."""
        if not self.changes.patched(INDEX_PUT_RIGHT):
            return False
        self.publisher.unset_carrier = True
        return True

    async def _terms_recorded(self) -> None:
        """An update that came with the order's start waits here for the order's terms."""
        if self.awaiting_terms is not None:
            await workflow.wait_condition(lambda: self.awaiting_terms is None)

    # ======================================================================== run

    @workflow.run
    async def run(self, raw: Annotated[RawValue, PlaceOrder] = NO_INPUT) -> OrderView:
        if self.rejected:
            self._reject()
        s = self.state
        # The first workflow task always completes with a command, even when a query or a slow
        # first call makes the worker complete it early (workflows/support/gate.py): the fold's
        # marker, or the search attributes indexed (orders started before 0.9, and orders whose
        # start set other search attributes than the order's own, which are put right at once).
        if self.indexed_at_start and (
            self.publisher.indexed_as_started or not self._puts_index_right()
        ):
            self.gate.issued()
        elif self.marks_by_timer:
            self.publisher.index()  # put right at once, not left to a mark
            self.gate.issued()
        else:
            self.gate.command_now()
        if self.awaiting_terms is not None:
            await self._record_terms()
        # An order of several lines reserves, releases and tells per line. Orders an older
        # version accepted with several lines (it reserved only the first) run on as they did.
        self.several_lines = len(s.input.lines) > 1 and self.changes.patched(ORDER_LINES)
        with s.acting(self.placed_by):
            self.outbox.tell_customer(Told.PLACED, messages.order_placed(s))
        self._changed()
        publisher = asyncio.create_task(self.publisher.run(lambda: self.gate.steps_idle))
        mailer = asyncio.create_task(self.outbox.run())
        # Never awaited: an armed timer ends with the workflow, with no cancel event for it.
        self._deadline_task = asyncio.create_task(self._keep_deadlines())
        try:
            await self._fulfil()
        except _Cancelled:
            await self._compensate()
        # An order stays open until every promise made on it is kept or reported broken.
        await workflow.wait_condition(lambda: not promises.open_promises(s))
        await workflow.wait_condition(workflow.all_handlers_finished)
        self.outbox.close()
        self.publisher.close()
        self.deadlines.close()
        await mailer
        await publisher
        return order_view(s)

    async def _fulfil(self) -> None:
        s = self.state
        if self.several_lines and not s.input.pickup and self.changes.patched(LINE_DELIVERIES):
            await self._fulfil_lines()
            return
        while True:
            await self._reserve()
            if s.payment == PaymentState.NONE:
                await self._authorize()
            if s.input.pickup:
                if await self._hand_over_in_store():
                    break
                continue  # not collected, back in line per policy
            await self._deliver()
            break
        await self._step(Step.CAPTURE_PAYMENT)
        await self._payment(PaymentCall.CAPTURE)
        s.payment = PaymentState.CAPTURED
        s.charged = s.open_total
        self._set_status(OrderStatus.COMPLETED)
        self.outbox.tell_customer(Told.COMPLETED, messages.completed(s))

    async def _fulfil_lines(self) -> None:
        """An order of several lines for delivery. Each line is reserved on its own and the
        total authorized at once. Under ``ship=available`` the reserved lines ship together now
        and each line that waits follows in a delivery of its own once stock arrives; under
        ``complete``, one delivery once every line is reserved. Each delivery is captured for
        the lines it handed over; a lost parcel's lines are sent again or voided, by policy."""
        s = self.state
        s.ships_apart = s.input.ship == ShipPolicy.AVAILABLE
        waiting: list[int] = []
        first = True
        while s.pending_lines:
            asked = await self._reserve_pending(first=first)
            waiting = sorted(set(waiting) | set(asked))
            first = False
            if s.payment == PaymentState.NONE:
                await self._authorize()
            if not self._ready_lines():
                if waiting:
                    s.step = Step.WAIT_FOR_STOCK
                    if not s.delivered_lines:
                        s.status = OrderStatus.WAITLISTED
                    self._changed()
                await self._wait(self._lines_may_go_on)
            waiting = self._stock_arrived(waiting)
            if not self._ready_lines() or any(self._to_reserve(n) for n in s.pending_lines):
                continue  # reserve first what a released hold or a lost parcel left unreserved
            await self._step(Step.BOOK_CARRIER)
            ready = self._ready_lines()
            if ready:
                await self._deliver_lines(ready)
        if not s.delivered_lines:
            # Nothing was handed over: what is still authorized is voided.
            s.cancel = s.cancel or steps.nothing_to_deliver()
            raise _Cancelled
        s.payment = PaymentState.CAPTURED
        self._set_status(OrderStatus.COMPLETED)
        self.outbox.tell_customer(Told.COMPLETED, messages.completed(s))

    async def _reserve_pending(self, *, first: bool) -> list[int]:
        """Ask each line's stock record, one at a time, for the lines that have no reservation
        and no hold on them (first, every line; later, a line whose hold was lifted or whose
        parcel was lost). The customer hears where each line is when some wait, and first
        when all are reserved. Returns the lines that now wait in line."""
        s = self.state
        asked: list[int] = []
        for n in s.pending_lines:
            if self._to_reserve(n):
                # A hold on the whole order stops here until it is released.
                await self._step(Step.RESERVE_STOCK)
                if not self._to_reserve(n):
                    continue
                result = await self.gate.step(
                    StockCall.RESERVE, reservation.reserve_request(s, n), result_type=StockReserved
                )
                reservation.take_reservation(s, result, n)
                asked.append(n)
        waiting = [n for n in asked if n in reservation.lines_in(s, ReservationStatus.WAITLISTED)]
        if waiting:
            promise = reservation.promise_stock_date(s, workflow.now())
            self._set_status(OrderStatus.WAITLISTED)
            self.outbox.tell_customer(Told.WAITLISTED, messages.lines_waiting(s, promise))
        elif asked and first:
            self._set_status(OrderStatus.RESERVED)
            self.outbox.tell_customer(Told.RESERVED, messages.lines_reserved(s))
        return waiting

    def _to_reserve(self, n: int) -> bool:
        """Line ``n`` is still to come, has no reservation, and no hold on it alone."""
        s = self.state
        return (
            n in s.pending_lines
            and reservation.needs_reservation(s, n)
            and not s.line_held_alone(n)
        )

    def _ready_lines(self) -> list[int]:
        """The lines to ship now: reserved and not held, all of them under ``complete``."""
        s = self.state
        pending = s.pending_lines
        reserved = reservation.lines_in(s, ReservationStatus.RESERVED)
        ready = [n for n in pending if n in reserved and not s.line_held(n)]
        if not s.ships_apart and len(ready) < len(pending):
            return []
        return ready

    def _lines_may_go_on(self) -> bool:
        """Some line can ship, or be asked for again (a hold on it lifted), or none is left."""
        s = self.state
        return (
            bool(self._ready_lines())
            or not s.pending_lines
            or any(self._to_reserve(n) for n in s.pending_lines)
        )

    def _stock_arrived(self, waiting: list[int]) -> list[int]:
        """Lines that waited and are now reserved: the customer hears; the stock-date promise
        is kept once no line waits. Returns the lines still waiting."""
        s = self.state
        pending = s.pending_lines
        reserved = reservation.lines_in(s, ReservationStatus.RESERVED)
        in_line = reservation.lines_in(s, ReservationStatus.WAITLISTED)
        arrived = [n for n in waiting if n in reserved and n in pending]
        still = [n for n in waiting if n in pending and n in in_line]
        if arrived:
            self.outbox.tell_customer(
                Told.STOCK_ALLOCATED, messages.lines_stock_arrived(s, arrived)
            )
        if waiting and not still:
            reservation.stock_arrived(s, workflow.now())
        return still

    async def _deliver_lines(self, lines: list[int]) -> None:
        """One delivery of ``lines``: captured for them when delivered; when lost, sent again
        or voided by policy; when returned, voided."""
        s = self.state
        outcome = await self._ship(lines)
        delivery_id = outcome.delivery_id
        wid = workflow.info().workflow_id
        if outcome.status == DeliveryStatus.DELIVERED:
            await self._step(Step.CAPTURE_PAYMENT)
            capture = steps.delivery_payment(s, PaymentCall.CAPTURE, lines, delivery_id, wid)
            await self.gate.step(
                PaymentCall.CAPTURE, capture, summary=f"capture delivery {delivery_id}"
            )
            steps.lines_delivered(s, lines)
            self._changed()
            return
        if steps.reship(s, outcome):
            # Their reservations were handed to the carrier: the lines are reserved again.
            self.outbox.tell_customer(
                Told.LOST, messages.lines_lost(s, lines, action=LostAction.RESHIP)
            )
            return
        if not s.delivered_lines and lines == s.pending_lines:
            # Nothing else of the order is left to deliver: it is cancelled and refunded whole.
            if outcome.status == DeliveryStatus.LOST:
                self.outbox.tell_customer(
                    Told.LOST, messages.lost_parcel(s, action=LostAction.REFUND)
                )
            s.cancel = steps.refund_after(outcome)
            raise _Cancelled
        void = steps.delivery_payment(s, PaymentCall.VOID, lines, delivery_id, wid)
        await self.gate.step(PaymentCall.VOID, void, summary=f"void delivery {delivery_id}")
        steps.lines_undelivered(s, lines, outcome)
        action = LostAction.REFUND if outcome.status == DeliveryStatus.LOST else None
        self.outbox.tell_customer(Told.LOST, messages.lines_lost(s, lines, action=action))
        self._changed()

    async def _authorize(self) -> None:
        """The order's total (its lines not cancelled) is authorized, and the customer told."""
        s = self.state
        await self._step(Step.AUTHORIZE_PAYMENT)
        await self._payment(PaymentCall.AUTHORIZE)
        s.payment = PaymentState.AUTHORIZED
        s.authorized = s.open_total
        self._set_status(OrderStatus.PAYMENT_AUTHORIZED)
        self.outbox.tell_customer(Told.PAYMENT, messages.payment_authorized(s))

    # ------------------------------------------------------------------ steps

    async def _step(self, step: Step) -> None:
        """Stop here while any hold is active; a release resumes in the same workflow task."""
        s = self.state
        s.step = step
        self._changed()
        if s.line_cancels:
            await self._cancel_lines()
        if s.blocks(step) or s.cancelling:
            await workflow.wait_condition(
                lambda: not s.blocks(step) or s.cancelling or bool(s.line_cancels)
            )
            while s.line_cancels and not s.cancelling:
                await self._cancel_lines()
                if s.blocks(step):
                    await workflow.wait_condition(
                        lambda: not s.blocks(step) or s.cancelling or bool(s.line_cancels)
                    )
        if s.cancelling:
            raise _Cancelled

    async def _wait(self, condition: Callable[[], bool]) -> None:
        s = self.state
        await workflow.wait_condition(lambda: condition() or s.cancelling or bool(s.line_cancels))
        while s.line_cancels and not s.cancelling:
            await self._cancel_lines()
            if not condition():
                await workflow.wait_condition(
                    lambda: condition() or s.cancelling or bool(s.line_cancels)
                )
        if s.cancelling:
            raise _Cancelled

    async def _cancel_lines(self) -> None:
        """Carry out the line cancels accepted: each line's stock given back and its part of the
        authorization voided, and the customer told; the rest of the order goes on."""
        s = self.state
        while s.line_cancels:
            cmd = s.line_cancels[0]
            assert cmd.line is not None
            n = cmd.line - 1
            request = reservation.release_request(s, collected=False, n=n)
            voided = s.payment == PaymentState.AUTHORIZED
            # One call at a time (see workflows/support/gate.py).
            if request is not None:
                await self.gate.step(StockCall.RELEASE, request)
                reservation.stock_released(s, collected=False, n=n)
            if voided:
                void = steps.line_void_request(s, n, workflow.info().workflow_id)
                await self.gate.step(PaymentCall.VOID, void, summary=f"void line {cmd.line}")
            s.line_cancels.pop(0)
            self.line_compensations[n] = steps.line_cancelled(
                s, n, voided=voided, released=request is not None
            )
            reservation.no_wait_left(s, workflow.now())
            mail = messages.line_cancelled(s, n, cmd.by, cmd.customer_message)
            self.outbox.tell_customer(Told.LINE_CANCELLED, mail)
            self._changed()

    async def _reserve(self) -> None:
        s = self.state
        if self.several_lines:
            await self._reserve_lines()
            return
        if reservation.needs_reservation(s):
            await self._step(Step.RESERVE_STOCK)
            result = await self.gate.step(
                StockCall.RESERVE, reservation.reserve_request(s), result_type=StockReserved
            )
            if reservation.take_reservation(s, result).status == ReservationStatus.RESERVED:
                self._set_status(OrderStatus.RESERVED)
                self.outbox.tell_customer(Told.RESERVED, messages.stock_reserved(s))
        assert s.reservation is not None
        if s.reservation.status == ReservationStatus.WAITLISTED:
            await self._wait_for_stock()

    async def _reserve_lines(self) -> None:
        """Each line on its own stock record, first come first served, one call at a time
        (see workflows/support/gate.py); the order goes on once every line is reserved (its
        lines ship together)."""
        s = self.state
        asked = False
        while True:
            for n in s.open_lines:
                if reservation.needs_reservation(s, n) and not s.line_held(n):
                    await self._step(Step.RESERVE_STOCK)
                    if s.line_held(n) or s.line_cancelled(n):
                        continue
                    result = await self.gate.step(
                        StockCall.RESERVE,
                        reservation.reserve_request(s, n),
                        result_type=StockReserved,
                    )
                    reservation.take_reservation(s, result, n)
                    asked = True
            # A hold on some lines stops their reservations until it is released.
            held = [n for n in s.open_lines if reservation.needs_reservation(s, n)]
            if not held:
                break
            s.step = Step.RESERVE_STOCK
            self._changed()
            await self._wait(partial(self._hold_lifted, held))
        if reservation.all_reserved(s):
            if asked:
                self._set_status(OrderStatus.RESERVED)
                self.outbox.tell_customer(Told.RESERVED, messages.lines_reserved(s))
            return
        if reservation.lines_in(s, ReservationStatus.WAITLISTED):
            await self._wait_for_stock()

    def _hold_lifted(self, held: list[int]) -> bool:
        """Some of these held lines may go on: released from their hold, or cancelled."""
        s = self.state
        return any(n not in s.open_lines or not s.line_held(n) for n in held)

    async def _wait_for_stock(self) -> None:
        s = self.state
        assert s.reservation is not None
        self._set_status(OrderStatus.WAITLISTED)
        s.step = Step.WAIT_FOR_STOCK
        promise = reservation.promise_stock_date(s, workflow.now())
        if self.several_lines:
            waiting = reservation.lines_in(s, ReservationStatus.WAITLISTED)
            self.outbox.tell_customer(Told.WAITLISTED, messages.lines_waiting(s, promise))
            self._changed()
            await self._wait(lambda: reservation.all_reserved(s))
            if all(n in s.cancelled_lines for n in waiting):
                # No stock arrived: the lines that waited were cancelled (and told).
                self._set_status(OrderStatus.RESERVED)
                return
        else:
            if promise is not None:
                mail = messages.waitlisted(s, s.reservation.position or 0, promise)
                self.outbox.tell_customer(Told.WAITLISTED, mail)
            self._changed()
            await self._wait(
                lambda: (
                    s.reservation is not None and s.reservation.status == ReservationStatus.RESERVED
                )
            )
        reservation.stock_arrived(s, workflow.now())
        self._set_status(OrderStatus.RESERVED)
        self.outbox.tell_customer(Told.STOCK_ALLOCATED, messages.stock_allocated(s))

    async def _payment(self, call: PaymentCall) -> None:
        request = steps.payment_request(self.state, call, workflow.info().workflow_id)
        await self.gate.step(call, request, summary=call.value)

    async def _release_stock(self, *, collected: bool, lines: list[int] | None = None) -> None:
        s = self.state
        for n in range(len(s.reservations)) if lines is None else lines:
            request = reservation.release_request(s, collected=collected, n=n)
            if request is not None:
                await self.gate.step(StockCall.RELEASE, request)
                reservation.stock_released(s, collected=collected, n=n)

    async def _hand_over_in_store(self) -> bool:
        """Wait for the customer at the store. True when collected, False when put back in line."""
        s = self.state
        await self._step(Step.HAND_OVER_IN_STORE)
        steps.open_pickup_window(s, workflow.now())
        self._set_status(OrderStatus.READY_FOR_PICKUP)
        self.outbox.tell_customer(Told.READY_FOR_PICKUP, messages.ready_for_pickup(s))
        await self._wait(lambda: self.collect is not None or s.reservation.expires_at is None)  # type: ignore[union-attr]
        if self.collect is None:
            # Expired and policy says back in line: the deadline loop released it.
            await self._release_stock(collected=False)
            mail = messages.pickup_expired(s, cancelled=False)
            self.outbox.tell_customer(Told.PICKUP_EXPIRED, mail)
            return False
        await self._release_stock(collected=True)
        self.outbox.tell_customer(Told.COLLECTED, messages.collected(s))
        self._set_status(OrderStatus.DELIVERED)
        return True

    async def _deliver(self) -> None:
        s = self.state
        while True:
            if reservation.lines_in(s, ReservationStatus.WAITLISTED):
                await self._wait_for_stock()
            await self._step(Step.BOOK_CARRIER)
            outcome = await self._ship()
            if outcome.status == DeliveryStatus.DELIVERED:
                self._set_status(OrderStatus.DELIVERED)
                return
            if steps.reship(s, outcome):
                self.outbox.tell_customer(
                    Told.LOST, messages.lost_parcel(s, action=LostAction.RESHIP)
                )
                await self._reserve()
                continue
            if outcome.status == DeliveryStatus.LOST:
                self.outbox.tell_customer(
                    Told.LOST, messages.lost_parcel(s, action=LostAction.REFUND)
                )
            s.cancel = steps.refund_after(outcome)
            raise _Cancelled

    async def _ship(self, lines: list[int] | None = None) -> DeliveryOutcome:
        s = self.state
        delivery = steps.start_delivery(s, workflow.now(), lines)
        self._changed()
        workflow_id = s.deliveries[-1].workflow_id
        # The delivery starts first, so it is there for the carrier's first event however soon
        # after the booking that comes. It starts when this workflow task completes; the step's
        # e-mails wait for the next one.
        with self.gate.step_running():
            await self.shipment.start(delivery, workflow_id=workflow_id, order_id=s.order_id)
        booking: Booking = await self.gate.step(
            CarrierCall.BOOK,
            steps.book_request(s, delivery, workflow_id),
            summary=f"book delivery {delivery.delivery_id} with {delivery.carrier}",
            result_type=Booking,
        )
        self._on_report(steps.booked(delivery, booking, workflow.now()))
        # The goods have left the store with the carrier.
        await self._release_stock(collected=True, lines=lines)
        return await self.shipment.follow(self._on_report, self._wait)

    def _on_report(self, report: DeliveryReport) -> None:
        who = (
            Caller.reported(report.principal, report.actor, report.kid)
            if report.principal
            else None
        )
        with self.state.acting(who):
            told = steps.apply_report(self.state, report, workflow.now())
            if told is not None:
                self.outbox.send(told)
                self._changed()

    async def _compensate(self) -> None:
        """Undo in reverse: carrier booking, then payment, then stock. Each exactly once."""
        s = self.state
        assert s.cancel is not None
        done: list[str] = []
        if await self.shipment.cancel():
            done.append("carrier booking cancelled")
            steps.delivery_cancelled(s)
        undo = steps.payment_undo(s)
        if undo is not None:
            await self._payment(undo)
            done.append(steps.payment_undone(s, undo))
        if any(res is not None and res.status.holds_stock_or_place for res in s.reservations):
            await self._release_stock(collected=False)
            done.append("stock reservation released")
        steps.close_cancelled(s, done, workflow.now())
        self._changed()
        mail = messages.cancelled(s, s.cancel.by, s.cancel.customer_message)
        self.outbox.tell_customer(Told.CANCELLED, mail)

    # ======================================================================== deadlines

    async def _keep_deadlines(self) -> None:
        """Every deadline of the order on one timer: at each wake-up, what has passed is applied
        and told, soonest first."""
        s = self.state
        while True:
            await self.deadlines.wait()
            if self.deadlines.closed:
                return
            now = self.deadlines.now()
            for deadline in rules.due(s, now):
                self.outbox.send(steps.deadline_passed(s, deadline, now))
                self._changed()

    async def _wait_out(self, at: datetime) -> bool:
        """The last second before a deadline, waited out in the worker rather than on a timer
        that fires up to a second late (activities/clock.py). An activity, not a local one: the
        order goes on taking updates meanwhile, so what arrives before the deadline still counts
        before it. Orders whose history took the timer at this point keep it."""
        if not self.changes.patched(DEADLINE_IN_WORKER):
            return False
        await workflow.execute_activity(
            rules.WAIT_UNTIL,
            at,
            start_to_close_timeout=WAIT_OUT_TIMEOUT,
            retry_policy=RETRY,
            summary="until the deadline",
        )
        return True

    # ======================================================================== upkeep

    def _door(self, raw: RawValue, model: type[M], what: str, rule: Callable[[M], object]) -> None:
        """An update's validator on this order: refused outright when the order itself was
        rejected at its start (an update that came with the start must not report success)."""
        if self.rejected:
            raise refusal(WrongState(f"order {self.state.order_id} was rejected: {self.refusal}"))
        if self.unplaceable is not None:
            raise refusal(
                WrongState(f"order {self.state.order_id} cannot be placed: {self.unplaceable}")
            )
        door(raw, model, what, rule)

    def _reject(self) -> NoReturn:
        """An order whose start input fails the door ends in its first task: nothing promised,
        charged or reserved, no one told anything; staff find it as ``OrderStatus = 'rejected'``
        and the reason in its failure."""
        workflow.upsert_search_attributes([ORDER_STATUS.value_set(REJECTED)])
        workflow.logger.warning("order rejected at the door: %s", self.refusal)
        raise ApplicationError(
            f"order rejected: {self.refusal}", type=InvalidInput.__name__, non_retryable=True
        )

    def _set_status(self, status: OrderStatus) -> None:
        self.state.status = status
        self._changed()

    def _changed(self) -> None:
        """The order's state changed: the UI is refreshed (once per workflow task) and the
        deadlines are looked at again."""
        self.publisher.changed()
        self.deadlines.moved()

    # ======================================================================== holds

    @workflow.update
    async def place_hold(
        self, raw: Annotated[RawValue, holds.PlaceHold] = NO_INPUT
    ) -> holds.HoldPlaced:
        who = self.caller
        await self._terms_recorded()
        cmd = accepted(raw, holds.PlaceHold)
        s = self.state
        existing = holds.existing_hold(s, cmd)
        if existing is not None:
            return holds.placed(existing, already=True)
        with s.acting(who):
            hold = holds.place_hold(s, cmd, workflow.now())
            hold.principal = who.principal if who else ""
            self.outbox.send(notices.hold_placed(s, hold))
        self._changed()
        return holds.placed(hold)

    @place_hold.validator
    def validate_place_hold(self, raw: Annotated[RawValue, holds.PlaceHold] = NO_INPUT) -> None:
        def rule(cmd: holds.PlaceHold) -> None:
            # A retried call answers with the hold it placed, whatever the order's limits now.
            # An unknown department is named as such, whoever asks.
            self.state.department(cmd.department)
            authority.check_places_hold(self.caller, cmd.department, self.state.order_id)
            if holds.existing_hold(self.state, cmd) is None:
                holds.check_place_hold(self.state, cmd)
                holds.check_hold_limits(self.state)

        self._door(raw, holds.PlaceHold, "place_hold", rule)

    @workflow.update
    async def release_hold(
        self, raw: Annotated[RawValue, holds.ReleaseHold] = NO_INPUT
    ) -> holds.HoldReleased:
        who = self.caller
        await self._terms_recorded()
        cmd = accepted(raw, holds.ReleaseHold)
        s = self.state
        with s.acting(who):
            hold = holds.release_hold(s, cmd, workflow.now())
            hold.released_principal = who.principal if who else ""
            self._changed()
            self.outbox.send(notices.hold_released(s, hold))
        return holds.released(s, hold)

    @release_hold.validator
    def validate_release_hold(self, raw: Annotated[RawValue, holds.ReleaseHold] = NO_INPUT) -> None:
        def rule(cmd: holds.ReleaseHold) -> None:
            hold = holds.check_release_hold(self.state, cmd)
            authority.check_answers_hold(
                self.caller, hold, cmd.department, "release", self.state.order_id
            )

        self._door(raw, holds.ReleaseHold, "release_hold", rule)

    @workflow.update
    async def dispute_hold(
        self, raw: Annotated[RawValue, holds.DisputeHold] = NO_INPUT
    ) -> holds.HoldDisputed:
        who = self.caller
        await self._terms_recorded()
        cmd = accepted(raw, holds.DisputeHold)
        s = self.state
        with s.acting(who):
            hold = holds.dispute_hold(s, cmd, workflow.now())
            self.outbox.send(notices.hold_disputed(s, hold))
        self._changed()
        return holds.disputed(hold)

    @dispute_hold.validator
    def validate_dispute_hold(self, raw: Annotated[RawValue, holds.DisputeHold] = NO_INPUT) -> None:
        def rule(cmd: holds.DisputeHold) -> None:
            authority.check_is_customer(self.caller, self.state, "dispute a hold")
            holds.check_dispute_hold(self.state, cmd)
            self.state.require_mail_room("dispute a hold")

        self._door(raw, holds.DisputeHold, "dispute_hold", rule)

    @workflow.update
    async def uphold_hold(
        self, raw: Annotated[RawValue, holds.UpholdHold] = NO_INPUT
    ) -> holds.HoldUpheld:
        who = self.caller
        await self._terms_recorded()
        cmd = accepted(raw, holds.UpholdHold)
        s = self.state
        with s.acting(who):
            hold = holds.uphold_hold(s, cmd, workflow.now())
            self.outbox.send(notices.hold_upheld(s, hold))
        self._changed()
        return holds.upheld(hold)

    @uphold_hold.validator
    def validate_uphold_hold(self, raw: Annotated[RawValue, holds.UpholdHold] = NO_INPUT) -> None:
        def rule(cmd: holds.UpholdHold) -> None:
            hold = holds.check_uphold_hold(self.state, cmd)
            authority.check_answers_hold(
                self.caller, hold, cmd.department, "uphold", self.state.order_id
            )

        self._door(raw, holds.UpholdHold, "uphold_hold", rule)

    # ======================================================================== cancel

    @workflow.update
    async def cancel(
        self, raw: Annotated[RawValue, rules.CancelOrder] = NO_INPUT
    ) -> rules.OrderCancelled:
        who = self.caller
        await self._terms_recorded()
        cmd = accepted(raw, rules.CancelOrder)
        s = self.state
        if rules.is_line_cancel(s, cmd):
            assert cmd.line is not None
            n = cmd.line - 1
            if rules.accept_cancel(s, cmd):
                self._cancel_requested(who, cmd)
                self._changed()
            await workflow.wait_condition(lambda: n in s.cancelled_lines or s.cancelling)
            return rules.OrderCancelled(
                order_id=s.order_id,
                cancelled_at=workflow.now(),
                compensations=self.line_compensations.get(n, []),
            )
        if rules.accept_cancel(s, cmd):
            s.cancelled_by = who.principal if who else ""
            self._cancel_requested(who, cmd)
            self._changed()
        await workflow.wait_condition(lambda: s.status == OrderStatus.CANCELLED)
        return rules.OrderCancelled(
            order_id=s.order_id, cancelled_at=workflow.now(), compensations=s.compensations
        )

    def _cancel_requested(self, who: Caller | None, cmd: rules.CancelOrder) -> None:
        """The accepted cancel on the timeline, with who asked for it."""
        what = f"line {cmd.line}" if cmd.line is not None else "the order"
        with self.state.acting(who):
            self.state.log(
                workflow.now(), Told.CANCEL_REQUESTED, f"cancel of {what} accepted: {cmd.reason}"
            )

    @cancel.validator
    def validate_cancel(self, raw: Annotated[RawValue, rules.CancelOrder] = NO_INPUT) -> None:
        def rule(cmd: rules.CancelOrder) -> None:
            authority.check_cancels(self.caller, self.state, cmd.by)
            rules.check_cancel(self.state, cmd)

        self._door(raw, rules.CancelOrder, "cancel", rule)

    # ======================================================================== promises

    @workflow.update
    async def make_promise(
        self, raw: Annotated[RawValue, promises.MakePromise] = NO_INPUT
    ) -> promises.PromiseMade:
        who = self.caller
        await self._terms_recorded()
        cmd = accepted(raw, promises.MakePromise)
        s = self.state
        existing = promises.existing_promise(s, cmd)
        if existing is not None:
            return promises.made(existing, already=True)
        with s.acting(who):
            promise = promises.make_promise(s, cmd, workflow.now())
            promise.principal = who.principal if who else ""
            self.outbox.send(notices.promise_made(s, promise))
        self._changed()
        return promises.made(promise)

    @make_promise.validator
    def validate_make_promise(
        self, raw: Annotated[RawValue, promises.MakePromise] = NO_INPUT
    ) -> None:
        def rule(cmd: promises.MakePromise) -> None:
            authority.check_makes_promise(self.caller, cmd.department, self.state.order_id)
            if promises.existing_promise(self.state, cmd) is None:
                promises.check_make_promise(self.state, cmd, workflow.now())
                promises.check_promise_limits(self.state, cmd, workflow.now())

        self._door(raw, promises.MakePromise, "make_promise", rule)

    @workflow.update
    async def keep_promise(
        self, raw: Annotated[RawValue, promises.KeepPromise] = NO_INPUT
    ) -> promises.PromiseKept:
        who = self.caller
        await self._terms_recorded()
        cmd = accepted(raw, promises.KeepPromise)
        with self.state.acting(who):
            kept = promises.kept_by_hand(self.state, cmd, workflow.now())
        self.state.promise(cmd.promise_id).settled_principal = who.principal if who else ""
        self._changed()
        return kept

    @keep_promise.validator
    def validate_keep_promise(
        self, raw: Annotated[RawValue, promises.KeepPromise] = NO_INPUT
    ) -> None:
        def rule(cmd: promises.KeepPromise) -> None:
            promise = promises.check_keep_promise(self.state, cmd)
            authority.check_keeps_promise(self.caller, promise, self.state.order_id)

        self._door(raw, promises.KeepPromise, "keep_promise", rule)

    # ======================================================================== store pickup

    @workflow.update
    async def pickup(self, raw: Annotated[RawValue, rules.CollectOrder] = NO_INPUT) -> OrderView:
        who = self.caller
        await self._terms_recorded()
        cmd = accepted(raw, rules.CollectOrder)
        self.collect = cmd
        if who is not None:
            with self.state.acting(who):
                self.state.log(
                    workflow.now(), Told.PICKUP_CONFIRMED, f"pickup confirmed at {cmd.location}"
                )
        self._changed()
        return order_view(self.state)

    @pickup.validator
    def validate_pickup(self, raw: Annotated[RawValue, rules.CollectOrder] = NO_INPUT) -> None:
        def rule(cmd: rules.CollectOrder) -> None:
            rules.check_pickup(self.state, cmd)
            authority.check_collects(self.caller, self.state, cmd.location)

        self._door(raw, rules.CollectOrder, "pickup", rule)

    # ======================================================================== facts (signals)

    @workflow.signal
    def stock_allocated(self, fact: StockAllocated) -> None:
        if not self._claimed(fact):
            self._allocated(fact)

    @workflow.signal
    def stock_withdrawn(self, fact: StockWithdrawn) -> None:
        if not self._claimed(fact):
            self._withdrawn(fact)

    @workflow.signal
    def waitlist_moved(self, fact: WaitlistMoved) -> None:
        if not self._claimed(fact):
            self._moved(fact)

    def _allocated(self, fact: StockAllocated) -> None:
        reservation.stock_allocated(self.state, fact)
        self._changed()

    def _withdrawn(self, fact: StockWithdrawn) -> None:
        s = self.state
        if reservation.stock_withdrawn(s, fact):
            self.outbox.tell_customer(
                Told.STOCK_WITHDRAWN, messages.stock_withdrawn(s, fact.position)
            )
            self._set_status(OrderStatus.WAITLISTED)

    def _moved(self, fact: WaitlistMoved) -> None:
        if reservation.waitlist_moved(self.state, fact):
            self._changed()

    def _claimed(self, fact: StockAllocated | StockWithdrawn | WaitlistMoved) -> bool:
        """A stock record's signal to an order started from now on is a claim: it applies
        once the record itself confirms it (``_confirm_claims``), so a signal sent by anyone
        else changes nothing. True when the fact was taken as a claim."""
        if not self.facts_read:
            return False
        self.claims.append(fact)
        if self.confirming is None:
            self.confirming = asyncio.create_task(self._confirm_claims())
        return True

    async def _confirm_claims(self) -> None:
        """Each claim checked against its stock record as the record stands now (a read,
        recorded: a replay reads the same), then applied as the record has it."""
        while True:
            await workflow.wait_condition(lambda: bool(self.claims))
            claims, self.claims = self.claims, []
            views: dict[tuple[str, str], StockView] = {}
            for fact in claims:
                key = (fact.location, fact.sku)
                if key not in views:
                    views[key] = await workflow.execute_local_activity(
                        READ_STOCK_RECORD,
                        ReadStock(location=fact.location, sku=fact.sku),
                        result_type=StockView,
                        start_to_close_timeout=CLAIM_READ_TIMEOUT,
                        summary=f"read stock of {fact.sku} at {fact.location}",
                    )
                confirmed = confirms(views[key], self.state.order_id, fact)
                if confirmed is None:
                    workflow.logger.warning(
                        "a stock signal the record does not confirm was not taken: %s", fact
                    )
                elif isinstance(confirmed, StockAllocated):
                    self._allocated(confirmed)
                elif isinstance(confirmed, StockWithdrawn):
                    self._withdrawn(confirmed)
                elif isinstance(confirmed, WaitlistMoved):
                    self._moved(confirmed)

    @workflow.signal
    def delivery_reports(self, batch: DeliveryReports) -> None:
        self.shipment.received(batch.reports)
        self._changed()

    # ======================================================================== queries

    @workflow.query
    def view(self) -> OrderView:
        if self.rejected:
            raise ApplicationError(f"order rejected: {self.refusal}", type="InvalidInput")
        return order_view(self.state)

    @workflow.query
    def order_input(self) -> PlaceOrderInput:
        """What the order runs on: the caller's order on the engine's terms."""
        return self.state.input

    @workflow.query
    def timeline(self) -> list[TimelineEntry]:
        return self.state.timeline
