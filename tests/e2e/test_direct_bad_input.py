"""Bad input from a department system that talks to Temporal directly, in any language: a plain
SDK client with the default converter (no orderflow helpers) and the `temporal` CLI.

Each message is refused at the door with a non-retryable application error whose type a program
can branch on and whose message names the JSON field; the order's view is what it was, its
history holds neither a failed workflow task nor the refused update, and it goes on taking
valid updates."""

from __future__ import annotations

import json
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from domain.ids import delivery_workflow_id, order_workflow_id, stock_workflow_id
from orderflow.identity import KeyRing
from tests.conftest import Stack, token_header
from tests.conftest import plain_client as system_client
from tests.e2e.test_direct_bad_input_table import temporal_cli as run_temporal_cli

HOLD = {
    "department": "billing",
    "reason_code": "arrears",
    "actor": "ledger-bot",
    "customer_message": "Your account shows 120.00 unpaid.",
}
NO_ARGUMENT = object()


def hold(**change: Any) -> dict[str, Any]:
    return {**HOLD, **change}


def without(body: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != field}


# (update, message, refusal type, what the refusal names)
ORDER_CASES = [
    pytest.param("place_hold", hold(refrence="INV-1"), "InvalidInput", "refrence", id="typo-field"),
    pytest.param("place_hold", hold(actor="a" * 100_000), "TooLarge", "bytes", id="100KB-actor"),
    pytest.param("place_hold", hold(actor="a" * 201), "InvalidInput", "actor", id="long-actor"),
    pytest.param(
        "place_hold",
        hold(customer_message="m" * 2001),
        "InvalidInput",
        "customer_message",
        id="long-message",
    ),
    pytest.param("place_hold", hold(actor="ana\x00"), "InvalidInput", "actor", id="NUL"),
    pytest.param("place_hold", hold(actor="\x1b[31mana"), "InvalidInput", "actor", id="ESC"),
    pytest.param("place_hold", hold(actor="ana\r\nBcc: x"), "InvalidInput", "actor", id="CRLF"),
    pytest.param(
        "place_hold", hold(reason_code="arrears\u202e"), "InvalidInput", "reason_code", id="bidi"
    ),
    pytest.param("place_hold", hold(department=5), "InvalidInput", "department", id="wrong-type"),
    pytest.param(
        "place_hold", hold(department=["billing"]), "InvalidInput", "department", id="list"
    ),
    pytest.param(
        "place_hold", without(HOLD, "department"), "InvalidInput", "department", id="missing"
    ),
    pytest.param("place_hold", "arrears", "InvalidInput", "place_hold", id="not-an-object"),
    pytest.param("place_hold", 42, "InvalidInput", "place_hold", id="a-number"),
    pytest.param("place_hold", NO_ARGUMENT, "InvalidInput", "one argument", id="no-argument"),
    pytest.param("place_hold", hold(amount=1e30), "InvalidInput", "amount", id="amount-1e30"),
    pytest.param(
        "place_hold", hold(x="y" * 1_000_000), "TooLarge", "65536", id="1MB-unknown-field"
    ),
    pytest.param(
        "make_promise",
        {
            "kind": "callback",
            "due_at": "9999-12-31T00:00:00Z",
            "text": "t",
            "department": "billing",
        },
        "InvalidInput",
        "due_at",
        id="promise-due-9999",
    ),
    pytest.param(
        "release_hold",
        {"hold_id": "H1", "department": "care", "resolution": "ok", "extra": 1},
        "InvalidInput",
        "extra",
        id="release-unknown-field",
    ),
    pytest.param(
        "cancel", {"by": "customer", "reason": 7}, "InvalidInput", "reason", id="cancel-wrong-type"
    ),
]


async def plain_client(stack: Stack, principal: str = "billing") -> Client:
    """A client as another system would make it: the default converter and a token of its
    principal, nothing of orderflow."""
    config = stack.client.config()
    return await system_client(
        config["service_client"].config.target_host,
        stack.client.namespace,
        KeyRing(stack.app.settings.keys_path),
        principal,
    )


async def events(handle: WorkflowHandle[Any, Any]) -> list[int]:
    return [e.event_type async for e in handle.fetch_history_events()]


async def refused(handle: WorkflowHandle[Any, Any], update: str, body: Any) -> ApplicationError:
    args: list[Any] = [] if body is NO_ARGUMENT else [body]
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(update, args=args)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError), cause
    return cause


def assert_untouched(before: list[int], after: list[int]) -> None:
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in after
    # The refused update reached no history: no event was added for it.
    assert after == before


@pytest.mark.parametrize(("update", "body", "kind", "names"), ORDER_CASES)
async def test_an_order_refuses_bad_input_sent_through_the_sdk(
    stack: Stack, update: str, body: Any, kind: str, names: str
) -> None:
    oid, _ = await stack.place_held()
    handle = (await plain_client(stack)).get_workflow_handle(order_workflow_id(oid))
    await stack.quiet(order_workflow_id(oid))
    view = await handle.query("view")
    history = await events(handle)

    err = await refused(handle, update, body)
    assert err.type == kind and err.non_retryable, (err.type, err.message)
    assert names in err.message

    assert await handle.query("view") == view
    assert_untouched(history, await events(handle))
    # The order goes on: the valid message is taken.
    placed = await handle.execute_update("place_hold", hold(reference="INV-OK"))
    assert placed["hold_id"] == "H2"


async def test_a_typo_in_the_reference_cannot_place_a_hold_twice(stack: Stack) -> None:
    oid, _ = await stack.place_held()
    handle = (await plain_client(stack)).get_workflow_handle(order_workflow_id(oid))
    for _ in range(2):  # the caller retries
        err = await refused(handle, "place_hold", hold(refrence="INV-7"))
        assert err.type == "InvalidInput" and "refrence" in err.message
    view = await handle.query("view")
    assert len(view["holds"]) == 1  # the order's own first hold, none from the typo


async def test_delivery_and_stock_records_refuse_bad_input(stack: Stack) -> None:
    placed = await stack.place()
    oid = placed.order_id
    booked = await stack.until(
        oid, lambda v: bool(v.deliveries) and v.deliveries[-1].status == "booked"
    )
    by = f"carrier:{booked.deliveries[-1].carrier}"
    carrier = (await plain_client(stack, by)).get_workflow_handle(delivery_workflow_id(oid, 1))
    customer = (await plain_client(stack, f"customer:{placed.customer_id}")).get_workflow_handle(
        delivery_workflow_id(oid, 1)
    )
    stock = (await plain_client(stack, "stock")).get_workflow_handle(
        stock_workflow_id(stack.location, "PHONE-A5")
    )
    await stack.quiet(carrier.id)
    cases = [
        (carrier, "carrier_event", {"event": "picked-up", "evnt_id": "E1"}, "evnt_id"),
        (carrier, "carrier_event", {"event": "teleported"}, "event"),
        (carrier, "carrier_event", {"event": "scan", "location": "\u202ehub"}, "location"),
        (customer, "reschedule", {"window_start": 5}, "window"),
        (customer, "redirect", {"pickup_point": "p" * 300}, "pickup_point"),
        (stock, "receive", {"qty": 10**9}, "qty"),
        (stock, "receive", {"qty": "many"}, "qty"),
        # A number in a string is refused too, as the published schema says (integer).
        (stock, "receive", {"qty": "5"}, "qty"),
        (stock, "adjust", {"count": 3, "reason": "r", "by": "x"}, "by"),
    ]
    for handle, update, body, names in cases:
        query = "reservations" if handle is stock else "status"
        view = await handle.query(query)
        history = await events(handle)
        err = await refused(handle, update, body)
        assert err.type == "InvalidInput" and err.non_retryable, (update, body, err.message)
        assert names in err.message, (update, body, err.message)
        assert await handle.query(query) == view
        assert_untouched(history, await events(handle))


async def temporal_cli(stack: Stack, *args: str) -> tuple[int, str]:
    """The ``temporal`` CLI, as billing's system runs it: with a token of billing."""
    address = stack.client.config()["service_client"].config.target_host
    ring = KeyRing(stack.app.settings.keys_path)
    return await run_temporal_cli(address, *args, *token_header(ring, "billing"))


@pytest.mark.parametrize(
    ("given", "names"),
    [
        pytest.param(["--input", json.dumps(hold(refrence="INV-1"))], "refrence", id="typo"),
        pytest.param(["--input", json.dumps(hold(actor="a\u202e"))], "actor", id="bidi"),
        pytest.param(["--input", '"arrears"'], "should be an object", id="a-string"),
        pytest.param([], "one argument", id="no-input"),
    ],
)
async def test_the_temporal_cli_gets_the_same_refusals(
    stack: Stack, given: list[str], names: str
) -> None:
    oid, _ = await stack.place_held()
    workflow_id = order_workflow_id(oid)
    handle = stack.client.get_workflow_handle(workflow_id)
    await stack.quiet(workflow_id)
    view = await stack.app.view(oid)
    history = await events(handle)
    code, out = await temporal_cli(
        stack, "workflow", "update", "execute", "-w", workflow_id, "--name", "place_hold", *given
    )
    assert code != 0
    assert "InvalidInput" in out and names in out, out
    assert await stack.app.view(oid) == view
    assert_untouched(history, await events(handle))
    # The same CLI places a valid hold.
    code, out = await temporal_cli(
        stack,
        "workflow",
        "update",
        "execute",
        "-w",
        workflow_id,
        "--name",
        "place_hold",
        "--input",
        json.dumps(hold(reference="INV-CLI")),
    )
    assert code == 0 and "H2" in out, out
