"""Nothing half-done: no e-mail leaves about a message history could still lose, and a mail
outage delays e-mail without stalling any order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import WorkflowHandle
from temporalio.common import RawValue
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from activities.billing import Ledger
from domain.order import CancelOrder
from orderflow.devserver import free_port
from orderflow.smtp_sink import SmtpSink, read_inbox
from orderflow.worker import build_worker
from tests.conftest import FAST, Stack, acting, app_beside_worker, make_stack, stack_settings

HOLD = {
    "department": "billing",
    "actor": "ana",
    "reason_code": "arrears",
    "customer_message": "Your account shows 120.00 unpaid.",
}


async def task_failures(handle: WorkflowHandle[Any, Any]) -> list[int]:
    """The causes of the workflow task failures in an order's history, waiting for one."""
    deadline = time.monotonic() + 30
    while True:
        failed = [
            event.workflow_task_failed_event_attributes.cause
            async for event in handle.fetch_history_events()
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
        ]
        if failed:
            return failed
        assert time.monotonic() < deadline, "the update's workflow task never failed"
        await asyncio.sleep(0.2)


async def test_an_update_whose_task_fails_after_its_handler_ran_emails_no_one(
    stack: Stack,
) -> None:
    oid, _ = await stack.place_held()
    await stack.mail_until(oid, lambda m: any("on hold" in x.subject for x in m))
    before = {m.message_id for m in stack.mail(oid)}
    handle = stack.client.get_workflow_handle(f"order-{oid}")
    # 3 MB in a field the handler ignores: validation passes and the handler runs, but the
    # workflow task that would record the update is too large to complete.
    huge = {**HOLD, "reference": "INV-BIG", "notes": "x" * 3_000_000}
    with contextlib.suppress(Exception):
        await asyncio.wait_for(handle.execute_update("place_hold", huge), timeout=6)
    failed = await task_failures(handle)
    assert failed[0] == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_PAYLOADS_TOO_LARGE
    # The handler ran and queued the hold's e-mails in that task; none of them left.
    await asyncio.sleep(3)
    assert {m.message_id for m in stack.mail(oid)} == before, "an e-mail about a lost hold left"


class FaultAfterHandler(Interceptor):
    """A worker fault between an update's handler and its task's completion that has nothing
    to do with size (a bug in code that runs after the handler, an out-of-memory kill): the
    first time a hold with reference ``FAULT`` is handled, the task fails after the handler
    has run and queued the hold's e-mails."""

    faults = 0

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        fault = self

        class Inbound(WorkflowInboundInterceptor):
            async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
                result = await super().handle_update_handler(input)
                # Updates take their input raw (workflows/support/refusals.py).
                raw = input.args[0] if input.args else None
                cmd = json.loads(raw.payload.data) if isinstance(raw, RawValue) else {}
                if cmd.get("reference") == "FAULT" and fault.faults == 0:
                    fault.faults += 1
                    raise RuntimeError("worker fault after the handler ran")
                return result

        return Inbound


async def test_a_task_that_fails_after_its_handler_ran_sends_nothing_and_reuses_no_id(
    env: WorkflowEnvironment, sink: SmtpSink, tmp_path: Path
) -> None:
    with acting("billing"):
        fault = FaultAfterHandler()
        async with make_stack(env, sink, tmp_path, "fault", interceptors=[fault]) as stack:
            oid, first = await stack.place_held()
            await stack.mail_until(oid, lambda m: any("on hold" in x.subject for x in m))
            handle = stack.client.get_workflow_handle(f"order-{oid}")
            # The faulty task is retried: the update is either applied once by the retry or
            # refused to its caller, never half-applied.
            outcome: Any
            try:
                outcome = await asyncio.wait_for(
                    handle.execute_update("place_hold", {**HOLD, "reference": "FAULT"}), timeout=20
                )
            except Exception as err:  # either outcome is checked below
                outcome = err
            assert fault.faults == 1
            failed = await task_failures(handle)
            assert (
                WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE
                in failed
            )
            # A later hold goes on normally.
            later = await handle.execute_update("place_hold", {**HOLD, "reference": "LATER"})
            view = await stack.app.view(oid)
            recorded = {h.hold_id: h.reference for h in view.holds}
            assert len(recorded) == len(view.holds), "a hold id was given twice"
            assert recorded[later["hold_id"]] == "LATER"
            assert first.hold_id in recorded
            if isinstance(outcome, dict):
                assert recorded[outcome["hold_id"]] == "FAULT"
            else:
                assert "FAULT" not in recorded.values()
            await stack.mail_until(oid, lambda m: any("LATER" in x.body for x in m))
            await asyncio.sleep(2)
            # Each recorded hold was told to the customer exactly once, under its own id; nothing
            # was told about a hold history does not hold.
            to_customer = [m for m in stack.mail(oid) if "on hold" in m.subject]
            told = [
                ref
                for m in to_customer
                for ref in ("FAULT", "LATER")
                if f"Reference: {ref}." in m.body
            ]
            assert sorted(told) == sorted(
                ref for ref in recorded.values() if ref in ("FAULT", "LATER")
            )
            department = [m for m in stack.mail(oid) if m.subject.startswith("[")]
            ids = [m.subject.split("]")[0][1:] for m in department]
            assert sorted(ids) == sorted(set(ids)), f"two department e-mails for one hold id: {ids}"
            assert set(ids) <= set(recorded)
            assert sink.handler.duplicates == 0


async def test_a_mail_outage_delays_mail_and_nothing_else(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    port = free_port()
    maildir = tmp_path / "maildir"
    sink = SmtpSink(maildir, port=port)
    settings = stack_settings(sink, tmp_path)  # the sink is not started: the server is down
    app = app_beside_worker(env.client, settings)
    async with build_worker(env.client, settings, desk=app.desk):
        stack = Stack(app, maildir, Ledger(settings.ledger_path))
        shipped = await stack.place()
        gives_up = await stack.place(
            policy=FAST.model_copy(update={"mail_give_up": timedelta(seconds=3)})
        )
        cancelled = await stack.place()
        # Steps go on without the mail server: reserved, paid, booked.
        await stack.until(shipped.order_id, lambda v: v.status == "shipping")
        started = time.monotonic()
        done = await app.cancel(
            cancelled.order_id,
            CancelOrder(by="customer", actor="C-1001", reason="changed my mind"),
        )
        assert time.monotonic() - started < 5
        assert "payment authorization voided" in done.compensations
        # Past its give-up time an e-mail is recorded as undeliverable, for staff to see.
        view = await stack.until(gives_up.order_id, lambda v: bool(v.undeliverable_emails))
        assert any("received" in subject for subject in view.undeliverable_emails)
        kinds = [e.kind for e in await app.timeline(gives_up.order_id)]
        assert "email_undeliverable" in kinds
        assert read_inbox(maildir) == []

        # The mail server is back: every e-mail still owed arrives, once.
        sink.start()
        try:
            for order_id in (shipped.order_id, cancelled.order_id):
                await stack.mail_until(
                    order_id, lambda m: any("received" in x.subject for x in m), timeout=30
                )
            # Each order's batches go in order: the cancellation's follows its first.
            told = await stack.mail_until(
                cancelled.order_id,
                lambda m: any("cancelled" in x.subject.lower() for x in m),
                timeout=60,
            )
            subjects = [m.subject for m in told]
            assert "received" in subjects[0]
            assert len(subjects) == len(set(m.message_id for m in stack.mail(cancelled.order_id)))
            assert sink.handler.duplicates == 0
            assert stack.mail(gives_up.order_id) == []
        finally:
            sink.stop()
