"""A worker meeting a payload sealed with a codec key it does not hold: an update is refused with
the key's id and the order stays as it was; an order's start waits, its failed task logged with
the key's id, and goes on once the operator gives the workers the key (no restart)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from activities.billing import Ledger
from domain.holds import PlaceHold
from domain.ids import order_workflow_id
from orderflow.auth import signing
from orderflow.codec import CodecKeys, _b64, data_converter
from orderflow.identity import KeyRing
from orderflow.service import Orderflow
from orderflow.smtp_sink import SmtpSink
from orderflow.worker import build_worker
from tests.conftest import (
    TEST_CODEC_FILE,
    Stack,
    acting,
    app_beside_worker,
    plain_client,
    stack_settings,
)

INTRUDER = "codec-intruder"


async def client_with(env: WorkflowEnvironment, keys: CodecKeys, ring: KeyRing) -> Client:
    """A client of the same server whose payloads are sealed with ``keys``."""
    return signing(
        await Client.connect(
            env.client.service_client.config.target_host,
            namespace=env.client.namespace,
            data_converter=data_converter(keys),
        ),
        ring,
    )


async def failed_tasks(client: Client, workflow_id: str) -> list[str]:
    messages = []
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            messages.append(event.workflow_task_failed_event_attributes.failure.message)
    return messages


async def test_an_update_sealed_with_an_unknown_key_is_refused_naming_it_and_changes_nothing(
    stack: Stack, env: WorkflowEnvironment
) -> None:
    view = await stack.place()
    workflow_id = order_workflow_id(view.order_id)
    before = await stack.quiet(workflow_id)
    intruder = await client_with(
        env,
        CodecKeys({INTRUDER: os.urandom(32)}, INTRUDER),
        KeyRing(stack.app.settings.keys_path),
    )
    hold = PlaceHold(department="billing", reason_code="arrears", customer_message="Pay first.")
    with acting("billing"), pytest.raises(WorkflowUpdateFailedError) as refused:
        await intruder.get_workflow_handle(workflow_id).execute_update("place_hold", hold)
    cause = refused.value.cause
    assert f"payload encrypted with codec key '{INTRUDER}'" in str(cause)
    assert (await stack.app.view(view.order_id)).holds == []
    assert await stack.quiet(workflow_id) == before
    assert await failed_tasks(stack.client, workflow_id) == []


async def test_an_order_sealed_with_an_unknown_key_waits_and_goes_on_once_workers_hold_it(
    env: WorkflowEnvironment, sink: SmtpSink, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The workers' key file (a copy of the tests' key), which the operator will extend.
    keys_file = tmp_path / "codec-keys.json"
    shutil.copy(TEST_CODEC_FILE, keys_file)
    worker_client = await Client.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        data_converter=data_converter(CodecKeys.from_file(keys_file)),
    )
    settings = stack_settings(sink, tmp_path)
    app = app_beside_worker(worker_client, settings)
    stack = Stack(app, sink.handler.dir, Ledger(settings.ledger_path))
    new_key = os.urandom(32)
    # A client already on a key the workers have not been given yet.
    early = await client_with(
        env, CodecKeys({INTRUDER: new_key}, INTRUDER), KeyRing(settings.keys_path)
    )
    order = stack.order()
    workflow_id = order_workflow_id(order.order_id)
    async with build_worker(worker_client, settings, desk=app.desk):
        await Orderflow(early, app.registry, settings, desk=app.desk).place_order(order)
        deadline = time.monotonic() + 20
        while not (failures := await failed_tasks(worker_client, workflow_id)):
            assert time.monotonic() < deadline, "the worker never tried the order"
            await asyncio.sleep(0.1)
        assert f"codec key '{INTRUDER}'" in failures[0]
        assert any(f"codec key '{INTRUDER}'" in r.getMessage() for r in caplog.records)

        # The operator adds the key to the workers' file; the order goes on where it stood.
        doc = json.loads(keys_file.read_text())
        doc["keys"][INTRUDER] = _b64(new_key)
        keys_file.write_text(json.dumps(doc))
        shipped = await stack.until(order.order_id, lambda v: bool(v.deliveries), timeout=30)
        assert shipped.customer_name == app.registry.customers["C-1001"].name


async def test_a_system_sending_plain_json_reads_its_receipt_and_nothing_personal(
    stack: Stack, env: WorkflowEnvironment
) -> None:
    """A department system without the codec: its plain JSON is taken, the hold's receipt
    comes back readable, and the order's view (a query) stays sealed to it."""
    view = await stack.place()
    system = await plain_client(
        env.client.service_client.config.target_host,
        env.client.namespace,
        KeyRing(stack.app.settings.keys_path),
        "billing",
        codec=False,
    )
    handle = system.get_workflow_handle(order_workflow_id(view.order_id))
    hold = {"department": "billing", "reason_code": "arrears", "customer_message": "Unpaid."}
    receipt = await handle.execute_update("place_hold", hold, result_type=dict)
    assert receipt["hold_id"] == "H1" and receipt["department"] == "billing"
    assert [h.department for h in (await stack.app.view(view.order_id)).holds] == ["billing"]
    with pytest.raises(Exception, match="binary/encrypted"):
        await handle.query("view", result_type=dict)
