"""Nothing half-done: no e-mail leaves about a message history could still lose, and a mail
outage delays e-mail without stalling any order."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta
from pathlib import Path

from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.testing import WorkflowEnvironment

from activities.billing import Ledger
from domain.order import CancelOrder
from orderflow.devserver import free_port
from orderflow.registry import Registry
from orderflow.service import Orderflow
from orderflow.smtp_sink import SmtpSink, read_inbox
from orderflow.worker import build_worker
from tests.conftest import FAST, SEEDS, Stack, stack_settings

HOLD = {
    "department": "billing",
    "actor": "ana",
    "reason_code": "arrears",
    "customer_message": "Your account shows 120.00 unpaid.",
}


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
    failed = []
    deadline = time.monotonic() + 30
    while not failed:
        assert time.monotonic() < deadline, "the oversized update's task never failed"
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                failed.append(event.workflow_task_failed_event_attributes.cause)
        await asyncio.sleep(0.5)
    assert failed[0] == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_PAYLOADS_TOO_LARGE
    # The handler ran and queued the hold's e-mails in that task; none of them left.
    await asyncio.sleep(3)
    assert {m.message_id for m in stack.mail(oid)} == before, "an e-mail about a lost hold left"


async def test_a_mail_outage_delays_mail_and_nothing_else(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    port = free_port()
    maildir = tmp_path / "maildir"
    sink = SmtpSink(maildir, port=port)
    settings = stack_settings(sink, tmp_path)  # the sink is not started: the server is down
    app = Orderflow(env.client, Registry(SEEDS), settings)
    async with build_worker(env.client, settings):
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
