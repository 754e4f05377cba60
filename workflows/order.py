"""OrderWorkflow: owns one customer order from placement to completion.

Departments and partners act on the order only through its updates, each validated before it
reaches history. Every deadline the order has (hold SLAs, promises, the pickup window) is served
by one loop with one timer. Every e-mail goes through one outbox, in order, exactly once.

Calls into other systems (stock, payments, the carrier, e-mail) are local activities, one at a
time: one marker event each in history, and a run of steps that nothing blocks completes in the
workflow task that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from domain import holds as hold_rules
    from domain import messages
    from domain import order as rules
    from domain import promises as promise_rules
    from domain.base import ENGINE
    from domain.billing import PaymentCall, PaymentRequest
    from domain.carrier import Booking, BookShipment, CarrierCall, booking_key
    from domain.delivery import (
        DeliveryInput,
        DeliveryOutcome,
        DeliveryReport,
        DeliveryReports,
        DeliverySummary,
    )
    from domain.errors import OrderflowError, WrongState
    from domain.holds import (
        DisputeHold,
        HoldDisputed,
        HoldPlaced,
        HoldReleased,
        HoldStatus,
        HoldUpheld,
        PlaceHold,
        ReleaseHold,
        UpholdHold,
    )
    from domain.ids import delivery_workflow_id
    from domain.notices import SEND_EMAILS, EmailBatch, Notification
    from domain.order import (
        CancelOrder,
        CollectOrder,
        OrderCancelled,
        OrderState,
        OrderStatus,
        OrderView,
        PlaceOrderInput,
        TimelineEntry,
    )
    from domain.promises import (
        KeepPromise,
        MakePromise,
        Promise,
        PromiseKept,
        PromiseMade,
        PromiseStatus,
    )
    from domain.stock import (
        ReleaseRequest,
        Reservation,
        ReserveRequest,
        StockAllocated,
        StockCall,
        StockReserved,
        StockWithdrawn,
        WaitlistMoved,
    )
    from workflows.calls import TaskGuard, local_call
    from workflows.delivery import DeliveryWorkflow
    from workflows.search_attributes import BLOCKED_BY, CARRIER, ORDER_STATUS

# Seconds by which a far deadline's timer is armed early (see _deadline_loop).
ARM_EARLY = 1.0
# The UI's details stay short: the order view has everything.
DETAIL_ITEMS = 10


class _Cancelled(Exception):
    """Raised inside the run loop when a cancel was accepted; compensation follows."""


def _refuse(err: OrderflowError) -> ApplicationError:
    return ApplicationError(str(err), type=err.type, non_retryable=True)


def _validate(check: Callable[[], object]) -> None:
    try:
        check()
    except OrderflowError as err:
        raise _refuse(err) from None


@workflow.defn
class OrderWorkflow:
    @workflow.init
    def __init__(self, inp: PlaceOrderInput) -> None:
        if inp.placed_at is None:
            inp = inp.model_copy(update={"placed_at": workflow.now()})
        self.state = OrderState(input=inp)
        self.version = 0
        self.outbox: list[tuple[str, Notification]] = []
        self.mail_seq = 0
        self.reports: list[DeliveryReport] = []
        self.collect: CollectOrder | None = None
        self.child: Any = None
        self.done = False
        self.indexed: tuple[str, tuple[str, ...], str] | None = None
        self.deadline_checked = -1
        # A step's call is running (busy) or the outbox is sending (mailing): never both.
        self.busy = False
        self.mailing = False
        # The order's command before a call in a task that has none yet (workflows/calls.py).
        self.guard = TaskGuard(self._index)

    # ======================================================================== run

    @workflow.run
    async def run(self, inp: PlaceOrderInput) -> OrderView:
        s = self.state
        # The first workflow task always completes with a command, even when a query or a slow
        # first call makes the worker complete it early (see workflows/calls.py).
        self.guard.command_now()
        self._tell_customer("placed", messages.order_placed(s))
        self._changed()
        publisher = asyncio.create_task(self._publish_loop())
        mailer = asyncio.create_task(self._mail_loop())
        # Never awaited: an armed timer ends with the workflow, with no cancel event for it.
        self.deadlines = asyncio.create_task(self._deadline_loop())
        try:
            await self._fulfil()
        except _Cancelled:
            await self._compensate()
        # An order stays open until every promise made on it is kept or reported broken.
        await workflow.wait_condition(lambda: not promise_rules.open_promises(s))
        await workflow.wait_condition(workflow.all_handlers_finished)
        self.done = True
        self._changed()
        await mailer
        await publisher
        return rules.view(s)

    async def _fulfil(self) -> None:
        s = self.state
        while True:
            await self._reserve()
            if s.payment == "none":
                await self._gate("authorize payment")
                await self._payment("authorize_payment", PaymentCall.AUTHORIZE, "a")
                s.payment = "authorized"
                self._set_status(OrderStatus.PAYMENT_AUTHORIZED)
                self._tell_customer("payment", messages.payment_authorized(s))
            if s.input.pickup:
                if await self._hand_over_in_store():
                    break
                continue  # not collected, back in line per policy
            await self._deliver()
            break
        await self._gate("capture payment")
        await self._payment("capture_payment", PaymentCall.CAPTURE, "c")
        s.payment = "captured"
        s.charged = s.total
        self._set_status(OrderStatus.COMPLETED)
        self._tell_customer("completed", messages.completed(s))

    # ------------------------------------------------------------------ steps

    async def _effect(
        self, method: str, arg: Any, *, summary: str | None = None, result_type: type | None = None
    ) -> Any:
        """Run one step's call. The outbox waits while steps run back to back, so their e-mails
        go out together once the order waits for something."""
        if self.mailing:
            await workflow.wait_condition(lambda: not self.mailing)
        self.busy = True
        try:
            return await local_call(
                method, arg, summary=summary, guard=self.guard, result_type=result_type
            )
        finally:
            self.busy = False

    async def _gate(self, step: str) -> None:
        """Stop here while any hold is active; a release resumes in the same workflow task."""
        self.state.step = step
        self._changed()
        if self.state.blocked or self._cancelling:
            await workflow.wait_condition(lambda: not self.state.blocked or self._cancelling)
        if self._cancelling:
            raise _Cancelled

    @property
    def _cancelling(self) -> bool:
        return self.state.cancel is not None

    async def _wait(self, condition: Callable[[], bool]) -> None:
        await workflow.wait_condition(lambda: condition() or self._cancelling)
        if self._cancelling:
            raise _Cancelled

    async def _reserve(self) -> None:
        s = self.state
        line = s.input.lines[0]
        if s.reservation is None or s.reservation.status in ("released", "collected"):
            await self._gate("reserve stock")
            result: StockReserved = await self._effect(
                StockCall.RESERVE,
                ReserveRequest(
                    location=s.input.location,
                    sku=line.sku,
                    order_id=s.order_id,
                    qty=line.qty,
                    initial_on_hand=s.input.initial_stock.get(line.sku, 0),
                ),
                result_type=StockReserved,
            )
            # A stock signal may have arrived while the activity ran; it wins.
            if s.reservation is None or s.reservation.status in (
                "released",
                "collected",
                "pending",
            ):
                s.reservation = Reservation(
                    location=result.location,
                    sku=result.sku,
                    qty=result.qty,
                    status=result.status,
                    position=result.position,
                )
            if s.reservation.status == "reserved":
                self._set_status(OrderStatus.RESERVED)
                self._tell_customer("reserved", messages.stock_reserved(s))
        if s.reservation.status == "waitlisted":
            await self._wait_for_stock()

    async def _wait_for_stock(self) -> None:
        s = self.state
        assert s.reservation is not None
        self._set_status(OrderStatus.WAITLISTED)
        s.step = "wait for stock"
        if not promise_rules.open_promises(s, "stock_date"):
            promise = promise_rules.make_promise(
                s,
                MakePromise(
                    kind="stock_date",
                    due_at=workflow.now() + s.input.policy.restock_promise,
                    text="e-mail you the moment stock arrives",
                    department="stock",
                    actor=ENGINE,
                ),
                workflow.now(),
            )
            self._tell_customer(
                "waitlisted", messages.waitlisted(s, s.reservation.position or 0, promise)
            )
        self._changed()
        await self._wait(lambda: s.reservation is not None and s.reservation.status == "reserved")
        for promise in promise_rules.open_promises(s, "stock_date"):
            promise_rules.keep_promise(
                s, promise, workflow.now(), by=ENGINE, note="stock allocated"
            )
        self._set_status(OrderStatus.RESERVED)
        self._tell_customer("stock_allocated", messages.stock_allocated(s))

    async def _payment(self, name: str, method: Any, suffix: str) -> None:
        s = self.state
        await self._effect(
            method,
            PaymentRequest(
                order_id=s.order_id, amount=s.total, key=f"{workflow.info().workflow_id}.{suffix}"
            ),
            summary=name,
        )

    async def _release_stock(self, *, collected: bool) -> None:
        s = self.state
        res = s.reservation
        if res is None or res.status in ("released", "collected", "pending"):
            return
        await self._effect(
            StockCall.RELEASE,
            ReleaseRequest(
                location=res.location, sku=res.sku, order_id=s.order_id, collected=collected
            ),
        )
        res.status = "collected" if collected else "released"
        res.position = None

    async def _hand_over_in_store(self) -> bool:
        """Wait for the customer at the store. True when collected, False when put back in line."""
        s = self.state
        assert s.reservation is not None
        await self._gate("hand over in store")
        s.reservation.expires_at = workflow.now() + s.input.policy.pickup_window
        self._set_status(OrderStatus.READY_FOR_PICKUP)
        self._tell_customer("ready_for_pickup", messages.ready_for_pickup(s))
        await self._wait(lambda: self.collect is not None or s.reservation.expires_at is None)  # type: ignore[union-attr]
        if self.collect is None:
            # Expired and policy says back in line: the deadline loop released it.
            await self._release_stock(collected=False)
            self._tell_customer("pickup_expired", messages.pickup_expired(s, cancelled=False))
            return False
        await self._release_stock(collected=True)
        self._tell_customer("collected", messages.collected(s))
        self._set_status(OrderStatus.DELIVERED)
        return True

    async def _deliver(self) -> None:
        s = self.state
        while True:
            if s.reservation is not None and s.reservation.status == "waitlisted":
                await self._wait_for_stock()
            await self._gate("book the carrier")
            outcome = await self._ship()
            if outcome.status == "delivered":
                self._set_status(OrderStatus.DELIVERED)
                return
            if outcome.status == "lost" and s.input.policy.lost_action == "reship":
                self._tell_customer("lost", messages.lost_parcel(s, action="reship"))
                await self._reserve()
                continue
            # Lost with a refund policy, or returned after verified attempts: refund in full.
            reason = (
                "lost by the carrier" if outcome.status == "lost" else "returned by the carrier"
            )
            if outcome.status == "lost":
                self._tell_customer("lost", messages.lost_parcel(s, action="refund"))
            s.cancel = CancelOrder(by="fulfilment", actor=ENGINE, reason=reason)
            raise _Cancelled

    async def _ship(self) -> DeliveryOutcome:
        s = self.state
        n = len(s.deliveries) + 1
        carrier = s.input.carrier or (
            s.input.carriers[0].carrier_id if s.input.carriers else "post"
        )
        now = workflow.now()
        window_end = now + s.input.policy.delivery_window
        summary = DeliverySummary(
            delivery_id=n,
            workflow_id=delivery_workflow_id(s.order_id, n),
            carrier=carrier,
            window_start=now,
            window_end=window_end,
        )
        # From here the delivery keeps the window's timer; the order keeps none for it.
        s.deliveries.append(summary)
        for old in promise_rules.open_promises(s, "delivery_window"):
            old.status = PromiseStatus.WITHDRAWN
            old.settled_at = now
            old.note = "replaced by a new delivery"
        promise_rules.make_promise(
            s,
            MakePromise(
                kind="delivery_window",
                due_at=window_end,
                text=f"deliver your order with {self._carrier_name(carrier)}",
                department="fulfilment",
                actor=ENGINE,
            ),
            now,
        )
        self._set_status(OrderStatus.SHIPPING)
        # The delivery starts first, so it is there for the carrier's first event however soon
        # after the booking that comes. It starts when this workflow task completes; the step's
        # e-mails wait for the next one.
        self.busy = True
        try:
            self.child = await workflow.start_child_workflow(
                DeliveryWorkflow.run,
                DeliveryInput(
                    order_id=s.order_id,
                    delivery_id=n,
                    carrier=carrier,
                    destination=s.input.customer.address,
                    destination_gps=s.input.customer.gps,
                    window_start=now,
                    window_end=window_end,
                    policy=s.input.policy,
                ),
                id=summary.workflow_id,
                static_summary=f"Delivery {n} of order {s.order_id} with {carrier}",
            )
        finally:
            self.busy = False
        booking: Booking = await self._effect(
            CarrierCall.BOOK,
            BookShipment(
                key=booking_key(summary.workflow_id),
                order_id=s.order_id,
                delivery_id=n,
                carrier=carrier,
                destination=s.input.customer.address,
            ),
            summary=f"book delivery {n} with {carrier}",
            result_type=Booking,
        )
        self._on_report(
            DeliveryReport(
                delivery_id=n,
                kind="booked",
                at=workflow.now(),
                status="booked",
                tracking=booking.tracking,
                window_start=now,
                window_end=window_end,
            )
        )
        # The goods have left the store with the carrier.
        await self._release_stock(collected=True)
        while True:
            await self._wait(lambda: bool(self.reports) or self.child.done())
            while self.reports:
                self._on_report(self.reports.pop(0))
            if self.child.done() and not self.reports:
                break
        outcome: DeliveryOutcome = self.child.result()
        self.child = None
        # What the delivery had not reported yet: routine movements, then how it ended.
        for report in outcome.reports:
            self._on_report(report)
        return outcome

    def _carrier_name(self, carrier_id: str) -> str:
        for c in self.state.input.carriers:
            if c.carrier_id == carrier_id:
                return c.name
        return carrier_id

    def _on_report(self, report: DeliveryReport) -> None:
        s = self.state
        summary = next((d for d in s.deliveries if d.delivery_id == report.delivery_id), None)
        if summary is None:
            return
        summary.status = report.status
        summary.tracking = report.tracking or summary.tracking
        summary.window_start, summary.window_end = report.window_start, report.window_end
        summary.pickup_point = report.pickup_point
        now = workflow.now()
        if report.kind in ("scanned", "picked_up"):
            summary.last_scan_at = report.at
        if report.kind == "picked_up" and s.status == OrderStatus.SHIPPING:
            self._set_status(OrderStatus.IN_TRANSIT)
        if report.kind == "attempted":
            from domain.delivery import Attempt

            summary.attempts.append(
                Attempt(
                    at=report.at,
                    verified=bool(report.verified),
                    reason=report.reason,
                    missing=report.missing,
                )
            )
        if report.kind == "rescheduled" and report.window_end is not None:
            for p in promise_rules.open_promises(s, "delivery_window"):
                p.due_at = report.window_end
        if report.kind == "delivered":
            for p in promise_rules.open_promises(s, "delivery_window"):
                promise_rules.keep_promise(s, p, now, by=ENGINE, note="delivered inside the window")
        if report.kind == "window_missed":
            # The delivery watched its window for the order: the promise is broken.
            for p in promise_rules.open_promises(s, "delivery_window"):
                self._break(p)
            self._changed()
            return
        mail = None
        if report.kind not in ("picked_up", "scanned"):
            # Routine movements arrive with a later report: the customer already has the
            # tracking number from the booking e-mail, so they are only recorded.
            mail = messages.delivery_event(s, report, self._carrier_name(summary.carrier))
        if mail is not None:
            self._tell_customer(report.kind, mail)
        else:
            s.log(now, report.kind, f"delivery {report.delivery_id}: {report.kind}")
        self._changed()

    # ------------------------------------------------------------------ compensation

    async def _compensate(self) -> None:
        """Undo in reverse: carrier booking, then payment, then stock. Each exactly once."""
        s = self.state
        assert s.cancel is not None
        done: list[str] = []
        if self.child is not None and not self.child.done():
            self.child.cancel()
            with contextlib.suppress(ChildWorkflowError, asyncio.CancelledError):
                await self.child
            done.append("carrier booking cancelled")
            if s.deliveries:
                s.deliveries[-1].status = "cancelled"
        if s.payment == "authorized":
            await self._payment("void_payment", PaymentCall.VOID, "void")
            s.payment = "voided"
            done.append("payment authorization voided")
        elif s.payment == "captured":
            await self._payment("refund_payment", PaymentCall.REFUND, "refund")
            s.payment = "refunded"
            s.refunded = s.charged
            done.append(f"refunded {s.charged:.2f}")
        if s.reservation is not None and s.reservation.status in ("reserved", "waitlisted"):
            await self._release_stock(collected=False)
            done.append("stock reservation released")
        now = workflow.now()
        for hold in s.active_holds:
            hold.status = HoldStatus.RELEASED
            hold.released_at = now
            hold.released_by = f"{ENGINE} (order cancelled)"
            hold.resolution = "order cancelled"
        for p in promise_rules.open_promises(s):
            if p.actor == ENGINE:
                p.status = PromiseStatus.WITHDRAWN
                p.settled_at = now
                p.note = "order cancelled"
        s.compensations = done
        self._set_status(OrderStatus.CANCELLED)
        self._tell_customer(
            "cancelled", messages.cancelled(s, s.cancel.by, s.cancel.customer_message)
        )

    # ======================================================================== deadlines

    async def _deadline_loop(self) -> None:
        """One timer for every deadline the order has. It is re-armed at once only when the
        soonest deadline comes sooner; when it moves later (a promise kept, a hold released)
        the armed timer stays, and on firing the loop finds nothing due and arms the next. A
        change elsewhere costs nothing, and an order that completes leaves its timer unfired."""
        s = self.state
        while True:
            armed = rules.next_deadline(s)
            self.deadline_checked = self.version
            timeout = None
            if armed is not None:
                remaining = (armed - workflow.now()).total_seconds()
                # The server starts the timer when this workflow task completes, which can be
                # a moment after workflow.now() when the task also sends e-mail. A far deadline
                # is therefore armed a little early; the wake-up, a task with nothing else in
                # it, arms the exact remainder.
                if remaining > 2 * ARM_EARLY:
                    remaining -= ARM_EARLY
                timeout = max(remaining, 0.001)
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda armed=armed: self._deadline_sooner(armed),
                    timeout=timeout,
                    timeout_summary="next-deadline",
                )
            if self.done:
                return
            for deadline in rules.due(s, workflow.now()):
                self._fire(deadline)

    def _deadline_sooner(self, armed: datetime | None) -> bool:
        if self.deadline_checked == self.version:
            return False
        self.deadline_checked = self.version
        soonest = rules.next_deadline(self.state)
        return soonest is not None and (armed is None or soonest < armed)

    def _fire(self, deadline: rules.Deadline) -> None:
        s = self.state
        now = workflow.now()
        if deadline.kind == "hold_sla":
            hold = s.hold(deadline.ref)
            dept = s.department(hold.department)
            hold_rules.escalate_hold(s, hold, now)
            self._tell_customer("hold_escalated", messages.hold_escalated_customer(s, hold, dept))
            self._tell(dept.supervisor_email, messages.hold_escalated_supervisor(s, hold, dept))
        elif deadline.kind == "promise_due":
            self._break(s.promise(deadline.ref))
        elif deadline.kind == "pickup_expiry":
            assert s.reservation is not None
            s.reservation.expires_at = None
            if s.input.policy.unpicked_action == "cancel":
                s.cancel = CancelOrder(
                    by="stock",
                    actor=ENGINE,
                    reason="not collected in time",
                    customer_message="You did not collect the order within the pickup window.",
                )
        self._changed()

    def _break(self, promise: Promise) -> None:
        """A promise's due time passed unkept: the customer hears first, then the supervisor."""
        s = self.state
        dept = s.department(promise.department)
        promise.status = PromiseStatus.BROKEN
        promise.settled_at = workflow.now()
        promise.settled_by = ENGINE
        self._tell_customer("promise_broken", messages.promise_broken_customer(s, promise, dept))
        self._tell(dept.supervisor_email, messages.promise_broken_supervisor(s, promise, dept))

    # ======================================================================== notifications

    def _tell_customer(self, kind: str, mail: messages.Mail) -> None:
        subject, body = mail
        self.state.told_customer(workflow.now(), kind, messages.summary(body))
        self._enqueue("customer", self.state.input.customer.email, subject, body)

    def _tell(self, to: str, mail: messages.Mail) -> None:
        if to:
            self._enqueue("department", to, *mail)

    def _enqueue(self, audience: str, to: str, subject: str, body: str) -> None:
        self.mail_seq += 1
        # Position and content together: a retry of the same message is recognised, while a
        # different message at the same position (a history that was cut short and replayed
        # differently, as after a server crash) is still sent.
        digest = hashlib.sha256(f"{to}\n{subject}\n{body}".encode()).hexdigest()[:12]
        key = f"{workflow.info().workflow_id}.{self.mail_seq}.{digest}"
        self.outbox.append(
            (
                audience,
                Notification(
                    key=key, to=to, subject=subject, body=body, order_id=self.state.order_id
                ),
            )
        )

    async def _mail_loop(self) -> None:
        """Send the outbox in order, so the customer hears first: everything queued goes in one
        call once no step is running (a hold's e-mail goes before the department's call
        returns, since the update's answer leaves with the same workflow task)."""
        while True:
            await workflow.wait_condition(
                lambda: (bool(self.outbox) and not self.busy) or (self.done and not self.outbox)
            )
            if not self.outbox:
                return
            batch = [note for _, note in self.outbox]
            self.mailing = True
            try:
                await local_call(
                    SEND_EMAILS,
                    EmailBatch(notes=batch),
                    guard=self.guard,
                    summary=f"{len(batch)} e-mail" + ("s" if len(batch) > 1 else ""),
                )
            finally:
                self.mailing = False
            del self.outbox[: len(batch)]

    # ======================================================================== state upkeep

    def _set_status(self, status: OrderStatus) -> None:
        self.state.status = status
        self._changed()

    def _changed(self) -> None:
        """Something changed: the publisher refreshes what the Temporal UI and visibility
        show, once per workflow task however many changes it held."""
        self.version += 1

    async def _publish_loop(self) -> None:
        published = -1
        while True:
            # Not while a step's call runs: a run of steps is published once, when it stops.
            await workflow.wait_condition(
                lambda published=published: self.version != published and not self.busy
            )
            published = self.version
            self._publish()
            if self.done:
                return

    def _index_values(self) -> tuple[str, tuple[str, ...], str]:
        """What the order's search attributes say: status, blocking departments, carrier."""
        s = self.state
        carrier = s.deliveries[-1].carrier if s.deliveries else (s.input.carrier or "")
        return s.status.value, tuple(s.blocked_by), carrier

    def _index(self) -> None:
        """Upsert the order's search attributes as they stand."""
        status, blocked, carrier = self.indexed = self._index_values()
        updates = [
            ORDER_STATUS.value_set(status),
            BLOCKED_BY.value_set(list(blocked)) if blocked else BLOCKED_BY.value_unset(),
        ]
        if carrier:
            updates.append(CARRIER.value_set(carrier))
        workflow.upsert_search_attributes(updates)

    def _publish(self) -> None:
        s = self.state
        if self._index_values() != self.indexed:
            self._index()  # each upsert is a history event: only on real change
        step, due = rules.next_step(s)
        lines = [f"**{s.status.value.replace('_', ' ')}**: next, {step}"]
        if due:
            lines[0] += f" (due {due.isoformat(timespec='seconds')})"
        for h in s.active_holds:
            lines.append(
                f"- hold {h.hold_id} by **{h.department}** ({h.reason}), placed by {h.actor}, "
                f"SLA {h.sla_due_at.isoformat(timespec='seconds')}, escalations {h.escalations}"
            )
        promises = promise_rules.open_promises(s)
        for p in promises[:DETAIL_ITEMS]:
            lines.append(
                f"- promise {p.promise_id} ({p.kind}) by {p.department}, due {p.due_at.isoformat(timespec='seconds')}"
            )
        if len(promises) > DETAIL_ITEMS:
            lines.append(f"- and {len(promises) - DETAIL_ITEMS} more open promises")
        workflow.set_current_details("\n".join(lines))

    # ======================================================================== holds

    @workflow.update
    def place_hold(self, cmd: PlaceHold) -> HoldPlaced:
        s = self.state
        existing = hold_rules.existing_hold(s, cmd)
        if existing is not None:
            return HoldPlaced(
                hold_id=existing.hold_id,
                department=existing.department,
                sla_due_at=existing.sla_due_at,
                already_placed=True,
            )
        hold = hold_rules.place_hold(s, cmd, workflow.now())
        dept = s.department(hold.department)
        self._tell_customer("hold_placed", messages.hold_placed_customer(s, hold, dept))
        blocked_dept = hold_rules.blocked_department(s, hold)
        self._tell(blocked_dept.notify_email, messages.hold_placed_department(s, hold, dept))
        self._changed()
        return HoldPlaced(
            hold_id=hold.hold_id, department=hold.department, sla_due_at=hold.sla_due_at
        )

    @place_hold.validator
    def validate_place_hold(self, cmd: PlaceHold) -> None:
        _validate(lambda: hold_rules.check_place_hold(self.state, cmd))

    @workflow.update
    def release_hold(self, cmd: ReleaseHold) -> HoldReleased:
        s = self.state
        hold = hold_rules.release_hold(s, cmd, workflow.now())
        dept = s.department(hold.department)
        self._changed()
        self._tell_customer("hold_released", messages.hold_released_customer(s, hold, dept))
        assert hold.released_at is not None
        return HoldReleased(
            hold_id=hold.hold_id, released_at=hold.released_at, blocked_by=s.blocked_by
        )

    @release_hold.validator
    def validate_release_hold(self, cmd: ReleaseHold) -> None:
        _validate(lambda: hold_rules.check_release_hold(self.state, cmd))

    @workflow.update
    def dispute_hold(self, cmd: DisputeHold) -> HoldDisputed:
        s = self.state
        hold = hold_rules.dispute_hold(s, cmd, workflow.now())
        dept = s.department(hold.department)
        self._tell_customer("hold_disputed", messages.hold_disputed_customer(s, hold, dept))
        mail = messages.hold_disputed_department(s, hold, dept)
        self._tell(dept.notify_email, mail)
        self._tell(dept.supervisor_email, mail)
        self._changed()
        return HoldDisputed(hold_id=hold.hold_id, sla_due_at=hold.sla_due_at)

    @dispute_hold.validator
    def validate_dispute_hold(self, cmd: DisputeHold) -> None:
        _validate(lambda: hold_rules.check_dispute_hold(self.state, cmd))

    @workflow.update
    def uphold_hold(self, cmd: UpholdHold) -> HoldUpheld:
        s = self.state
        hold = hold_rules.uphold_hold(s, cmd, workflow.now())
        dept = s.department(hold.department)
        self._tell_customer("hold_upheld", messages.hold_upheld_customer(s, hold, dept))
        self._changed()
        return HoldUpheld(hold_id=hold.hold_id, sla_due_at=hold.sla_due_at)

    @uphold_hold.validator
    def validate_uphold_hold(self, cmd: UpholdHold) -> None:
        _validate(lambda: hold_rules.check_uphold_hold(self.state, cmd))

    # ======================================================================== cancel

    @workflow.update
    async def cancel(self, cmd: CancelOrder) -> OrderCancelled:
        s = self.state
        if s.cancel is None:
            s.cancel = cmd.model_copy(update={"customer_message": cmd.customer_message.strip()})
            self._changed()
        await workflow.wait_condition(lambda: s.status == OrderStatus.CANCELLED)
        return OrderCancelled(
            order_id=s.order_id, cancelled_at=workflow.now(), compensations=s.compensations
        )

    @cancel.validator
    def validate_cancel(self, cmd: CancelOrder) -> None:
        def check() -> None:
            if self.state.cancel is not None:
                raise WrongState(f"order {self.state.order_id} is already being cancelled")
            rules.check_cancel(self.state, cmd)

        _validate(check)

    # ======================================================================== promises

    @workflow.update
    def make_promise(self, cmd: MakePromise) -> PromiseMade:
        s = self.state
        existing = promise_rules.existing_promise(s, cmd)
        if existing is not None:
            return PromiseMade(
                promise_id=existing.promise_id, due_at=existing.due_at, already_made=True
            )
        promise = promise_rules.make_promise(s, cmd, workflow.now())
        self._tell_customer(
            "promise_made", messages.promise_made(s, promise, s.department(promise.department))
        )
        self._changed()
        return PromiseMade(promise_id=promise.promise_id, due_at=promise.due_at)

    @make_promise.validator
    def validate_make_promise(self, cmd: MakePromise) -> None:
        if promise_rules.existing_promise(self.state, cmd) is None:
            _validate(lambda: promise_rules.check_make_promise(self.state, cmd, workflow.now()))

    @workflow.update
    def keep_promise(self, cmd: KeepPromise) -> PromiseKept:
        s = self.state
        promise = promise_rules.check_keep_promise(s, cmd)
        now = workflow.now()
        promise_rules.keep_promise(s, promise, now, by=cmd.actor, note=cmd.note)
        s.log(now, "promise_kept", f"{promise.department} kept its promise: {promise.text}")
        self._changed()
        return PromiseKept(promise_id=promise.promise_id, kept_at=now)

    @keep_promise.validator
    def validate_keep_promise(self, cmd: KeepPromise) -> None:
        _validate(lambda: promise_rules.check_keep_promise(self.state, cmd))

    # ======================================================================== store pickup

    @workflow.update
    def pickup(self, cmd: CollectOrder) -> OrderView:
        self.collect = cmd
        self._changed()
        return rules.view(self.state)

    @pickup.validator
    def validate_pickup(self, cmd: CollectOrder) -> None:
        def check() -> None:
            s = self.state
            if not s.input.pickup:
                raise WrongState(f"order {s.order_id} is for home delivery, not store pickup")
            if s.status != OrderStatus.READY_FOR_PICKUP:
                raise WrongState(f"order {s.order_id} is {s.status.value}, not ready for pickup")
            if s.reservation is None or cmd.location != s.reservation.location:
                where = s.reservation.location if s.reservation else s.input.location
                raise WrongState(
                    f"order {s.order_id} waits for collection at {where}, not {cmd.location}"
                )

        _validate(check)

    # ======================================================================== facts (signals)

    @workflow.signal
    def stock_allocated(self, fact: StockAllocated) -> None:
        res = self.state.reservation
        if res is not None and res.sku == fact.sku and res.location == fact.location:
            res.status = "reserved"
            res.position = None
        elif res is None:
            self.state.reservation = Reservation(
                location=fact.location, sku=fact.sku, qty=fact.qty, status="reserved"
            )
        self._changed()

    @workflow.signal
    def stock_withdrawn(self, fact: StockWithdrawn) -> None:
        s = self.state
        res = s.reservation
        if res is None or res.status != "reserved":
            return
        res.status = "waitlisted"
        res.position = fact.position
        self._tell_customer("stock_withdrawn", messages.stock_withdrawn(s, fact.position))
        self._set_status(OrderStatus.WAITLISTED)

    @workflow.signal
    def waitlist_moved(self, fact: WaitlistMoved) -> None:
        res = self.state.reservation
        if res is not None and res.status == "waitlisted" and res.sku == fact.sku:
            res.position = fact.position
            self._changed()

    @workflow.signal
    def delivery_reports(self, batch: DeliveryReports) -> None:
        self.reports.extend(batch.reports)
        self.version += 1

    # ======================================================================== queries

    @workflow.query
    def view(self) -> OrderView:
        return rules.view(self.state)

    @workflow.query
    def timeline(self) -> list[TimelineEntry]:
        return self.state.timeline
