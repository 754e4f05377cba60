import json

import pytest

from domain.ids import order_workflow_id
from tests.conftest import Stack
from tests.workflows import test_lines as T


def dump(hist):
    for e in hist.events:
        a = e.WhichOneof("attributes")
        extra = ""
        if e.HasField("marker_recorded_event_attributes"):
            m = e.marker_recorded_event_attributes
            if "data" in m.details:
                d = json.loads(m.details["data"].payloads[0].data)
                extra = f"{d.get('activity_type')} seq={d.get('seq')}"
            else:
                extra = m.marker_name
        if e.HasField("workflow_execution_update_accepted_event_attributes"):
            extra = (
                e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
            )
        if e.HasField("workflow_task_failed_event_attributes"):
            extra = e.workflow_task_failed_event_attributes.failure.message[:200]
        print(e.event_id, a.replace("_event_attributes", ""), extra)


@pytest.mark.parametrize("n", range(15))
async def test_dbg(stack: Stack, n: int) -> None:
    orders = []
    orig = stack.place

    async def place(**kw):
        v = await orig(**kw)
        orders.append(v.order_id)
        return v

    stack.place = place
    try:
        await T.test_a_line_cancelled_while_it_waits_is_never_charged(stack)
        for oid in orders:
            hist = await stack.client.get_workflow_handle(order_workflow_id(oid)).fetch_history()
            if "call-spanned-tasks" in hist.to_json():
                print("SPANNED", oid)
    except Exception as e:
        print("FAILED", e)
        for oid in orders:
            h = stack.client.get_workflow_handle(order_workflow_id(oid))
            hist = await h.fetch_history()
            dump(hist)
        raise
