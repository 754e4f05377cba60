"""Hostile and invalid messages sent straight to Temporal, the way a department system in another
language would: a plain ``temporalio.client.Client`` (default converter, nothing of orderflow)
calling ``execute_update`` and ``signal`` with plain JSON values, and the real ``temporal`` CLI
(``temporal workflow update execute --name ... --input '{...}'``).

Every row, as a user would see it:

- the call raises: a ``WorkflowUpdateFailedError`` whose cause is a non-retryable
  ``ApplicationError`` of the expected ``type`` naming the JSON field (the CLI: a non-zero exit
  with the type, ``retryable: false`` and the field in its output);
- the target's query (the order's ``view``, the delivery's ``status``, the stock record's
  ``reservations``) is the same before and after;
- its history holds no failed workflow task, and no admitted or accepted event for the refused
  update (each call carries an update id of its own);
- it takes a valid update right after (a probe, repeated from the module's setup so it changes
  nothing), and once more at the end of the module.

One stack (a worker on a task queue of its own) serves the whole module. The targets are set up
once and left stable:

- ``order``: a home delivery, booked, waiting for the carrier (policy in hours, so no deadline
  fires while the table runs); hold H1 (billing, ref INV-PROBE) placed by the setup's probe.
- ``delivery``: its delivery 1, picked up (event PU-PROBE, the setup's probe).
- ``stock``: the stock record of its SKU at the module's own location (receipt DN-PROBE).
- ``spare``: an order held at its first step, for the one row that wedges its target.

A row the engine does not refuse correctly stays in the table, marked ``xfail(strict=True)``
with what happens instead, until the engine is fixed.

The ``temporal`` CLI runs as an asyncio subprocess: the worker shares this event loop, and a
blocking ``subprocess.run`` would stall it (the CLI's update then times out after 40 s).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from domain.ids import delivery_workflow_id, order_workflow_id, stock_workflow_id
from domain.registry import Policy
from orderflow.devserver import temporal_binary
from orderflow.identity import KeyRing
from orderflow.smtp_sink import SmtpSink
from tests.conftest import Stack, make_stack, plain_client, token_header

# Deadlines far beyond the table's few seconds: nothing changes a target but the table.
HOURS = Policy(
    pickup_window=timedelta(hours=1),
    restock_promise=timedelta(hours=1),
    dispute_sla=timedelta(hours=1),
    delivery_window=timedelta(hours=4),
    scan_sla=timedelta(hours=4),
    lost_after=timedelta(hours=8),
)
SKU = "PHONE-A5"
# How long one call may take before the row fails (a refusal takes milliseconds).
CALL_TIMEOUT = timedelta(seconds=10)

HOLD = {
    "department": "billing",
    "reason_code": "arrears",
    "actor": "ledger-bot",
    "customer_message": "Your account shows 120.00 unpaid since October.",
}
# The valid message each target is probed with after every row. The setup sends it first, so
# from then on it is a repeat: taken, answered, and changing nothing.
PROBES: dict[str, tuple[str, dict[str, Any]]] = {
    "order": ("place_hold", {**HOLD, "reference": "INV-PROBE"}),
    "delivery": ("carrier_event", {"event": "picked-up", "event_id": "PU-PROBE"}),
    "stock": ("receive", {"qty": 1, "reference": "DN-PROBE"}),
    "spare": ("place_hold", {**HOLD, "reference": "INV-PROBE"}),
}
QUERIES = {"order": "view", "delivery": "status", "stock": "reservations", "spare": "view"}
WANTS_JSON = "place_hold takes one argument, a JSON object"


def hold(**change: Any) -> dict[str, Any]:
    return {**HOLD, **change}


def without(body: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in fields}


# ============================================================================ the rows


@dataclass(frozen=True)
class Bad:
    target: str  # order | delivery | stock | spare
    how: str  # update | cli | signal | unknown-update | transport
    name: str  # the update or signal
    args: tuple[Any, ...]  # the SDK's arguments, or the CLI's flags after --name
    types: tuple[str, ...]  # the refusal types a row accepts
    names: str  # what the refusal's message must mention (the JSON field)
    repeat: int = 1  # a caller that retries sends the same call again
    timeout: timedelta = CALL_TIMEOUT


def row(
    id: str,
    target: str,
    name: str,
    *args: Any,
    names: str,
    types: tuple[str, ...] = ("InvalidInput",),
    how: str = "update",
    repeat: int = 1,
    timeout: timedelta = CALL_TIMEOUT,
    xfail: str | None = None,
) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    bad = Bad(target, how, name, args, types, names, repeat, timeout)
    return pytest.param(bad, id=id, marks=marks)


def cli(id: str, target: str, name: str, *flags: str, names: str, **kw: Any) -> Any:
    return row(id, target, name, *flags, names=names, how="cli", **kw)


def cli_input(body: Any) -> tuple[str, str]:
    return ("--input", json.dumps(body))


ORD, DLV, STK = "order", "delivery", "stock"
SIZE = ("TooLarge", "InvalidInput")

ROWS = [
    # -- unknown fields ----------------------------------------------------------------------
    row(
        "hold-typo-refrence-sent-twice",
        ORD,
        "place_hold",
        hold(refrence="INV-7"),
        names="'refrence'",
        repeat=2,
    ),
    row(
        "release-unknown-field",
        ORD,
        "release_hold",
        {"hold_id": "H1", "department": "billing", "resolution": "Paid.", "note": "x"},
        names="'note'",
    ),
    row(
        "event-typo-evnt-id",
        DLV,
        "carrier_event",
        {"event": "scan", "evnt_id": "E1"},
        names="'evnt_id'",
    ),
    row(
        "adjust-unknown-field",
        STK,
        "adjust",
        {"count": 3, "reason": "count", "by": "ana"},
        names="'by'",
    ),
    # -- too long ----------------------------------------------------------------------------
    row(
        "hold-actor-100KB",
        ORD,
        "place_hold",
        hold(actor="a" * 100_000),
        types=SIZE,
        names="actor",
    ),
    row("hold-actor-201-chars", ORD, "place_hold", hold(actor="a" * 201), names="actor"),
    row(
        "hold-customer-message-2001-chars",
        ORD,
        "place_hold",
        hold(customer_message="m" * 2001),
        names="customer_message",
    ),
    row(
        "hold-reference-201-chars", ORD, "place_hold", hold(reference="R" * 201), names="reference"
    ),
    row(
        "redirect-pickup-point-201-chars",
        DLV,
        "redirect",
        {"pickup_point": "P" * 201},
        names="pickup_point",
    ),
    row(
        "event-evidence-key-201-chars",
        DLV,
        "carrier_event",
        {"event": "scan", "evidence": {"k" * 201: "v"}},
        names="evidence",
    ),
    # -- control and direction characters --------------------------------------------------
    row("hold-actor-NUL", ORD, "place_hold", hold(actor="ana\x00"), names="actor"),
    row("hold-actor-ESC", ORD, "place_hold", hold(actor="\x1b[31mana"), names="actor"),
    row("hold-actor-CRLF", ORD, "place_hold", hold(actor="ana\r\nBcc: x@y"), names="actor"),
    row("hold-actor-LF", ORD, "place_hold", hold(actor="ana\nbob"), names="actor"),
    row("hold-actor-RLO", ORD, "place_hold", hold(actor="ana\u202egnp.exe"), names="actor"),
    row(
        "hold-reason-code-RLO",
        ORD,
        "place_hold",
        hold(reason_code="arrears\u202e"),
        names="reason_code",
    ),
    row(
        "hold-reason-code-NUL",
        ORD,
        "place_hold",
        hold(reason_code="arrears\x00"),
        names="reason_code",
    ),
    row(
        "hold-message-NUL",
        ORD,
        "place_hold",
        hold(customer_message="Pay\x00 up."),
        names="customer_message",
    ),
    row(
        "dispute-message-RLO",
        ORD,
        "dispute_hold",
        {"hold_id": "H1", "customer_message": "I paid \u202e.gnp"},
        names="customer_message",
    ),
    row(
        "event-location-NUL",
        DLV,
        "carrier_event",
        {"event": "scan", "location": "Hub\x00"},
        names="location",
    ),
    row(
        "redirect-pickup-point-RLO",
        DLV,
        "redirect",
        {"pickup_point": "Locker \u202e7"},
        names="pickup_point",
    ),
    row("adjust-reason-ESC", STK, "adjust", {"count": 3, "reason": "count\x1b[2J"}, names="reason"),
    # -- wrong types and missing fields ----------------------------------------------------
    row("hold-department-a-number", ORD, "place_hold", hold(department=5), names="department"),
    row(
        "hold-department-a-list",
        ORD,
        "place_hold",
        hold(department=["billing"]),
        names="department",
    ),
    row("hold-actor-null", ORD, "place_hold", hold(actor=None), names="actor"),
    row(
        "hold-missing-department",
        ORD,
        "place_hold",
        without(HOLD, "department"),
        names="department",
    ),
    row(
        "hold-missing-customer-message",
        ORD,
        "place_hold",
        without(HOLD, "customer_message"),
        names="customer_message",
    ),
    row("cancel-reason-a-number", ORD, "cancel", {"by": "customer", "reason": 7}, names="reason"),
    row(
        "promise-due-not-a-time",
        ORD,
        "make_promise",
        {"kind": "callback", "due_at": "tomorrow", "text": "call you", "department": "care"},
        names="due_at",
    ),
    row("keep-promise-missing-id", ORD, "keep_promise", {"note": "done"}, names="promise_id"),
    row("event-unknown-event", DLV, "carrier_event", {"event": "teleported"}, names="event"),
    row(
        "reschedule-window-a-number",
        DLV,
        "reschedule",
        {"window_start": "tomorrow", "window_end": ["9am"]},
        names="window_start",
    ),
    row("receive-qty-a-word", STK, "receive", {"qty": "many"}, names="qty"),
    row("receive-qty-fractional", STK, "receive", {"qty": 1.5}, names="qty"),
    row("receive-missing-qty", STK, "receive", {"reference": "DN-9"}, names="qty"),
    # -- not an object, or no argument ------------------------------------------------------
    row("hold-a-json-string", ORD, "place_hold", "arrears", names="place_hold"),
    row("hold-a-json-number", ORD, "place_hold", 42, names="place_hold"),
    row("hold-a-json-list", ORD, "place_hold", [HOLD], names="place_hold"),
    row("hold-json-null", ORD, "place_hold", None, names=WANTS_JSON),
    row("hold-no-argument", ORD, "place_hold", names=WANTS_JSON),
    row(
        "hold-two-arguments",
        ORD,
        "place_hold",
        HOLD,
        HOLD,
        names="place_hold takes one argument",
    ),
    row("hold-binary-payload", ORD, "place_hold", b"\x00\x01binary", names="json/plain"),
    row("event-no-argument", DLV, "carrier_event", names="carrier_event"),
    row("adjust-a-json-string", STK, "adjust", "3", names="adjust"),
    # -- numbers out of range ---------------------------------------------------------------
    row("hold-amount-1e30", ORD, "place_hold", hold(amount=1e30), names="amount"),
    row("hold-amount-negative", ORD, "place_hold", hold(amount=-5), names="amount"),
    row("hold-amount-NaN-string", ORD, "place_hold", hold(amount="NaN"), names="amount"),
    row("receive-qty-1e9", STK, "receive", {"qty": 10**9, "reference": "DN-1E9"}, names="qty"),
    row(
        "receive-qty-beyond-int64",
        STK,
        "receive",
        {"qty": 10**30, "reference": "DN-1E30"},
        names="qty",
    ),
    row(
        "adjust-count-1e30-integer",
        STK,
        "adjust",
        {"count": 10**30, "reason": "count"},
        names="count",
    ),
    row(
        "adjust-count-1e30-float", STK, "adjust", {"count": 1e30, "reason": "count"}, names="count"
    ),
    row("adjust-count-negative", STK, "adjust", {"count": -1, "reason": "count"}, names="count"),
    # Only the engine reserves stock for its orders: stock control's own system may not.
    row(
        "reserve-by-a-department",
        STK,
        "reserve",
        {"order_id": "NO-SUCH-ORDER", "qty": 1},
        names="only the engine",
        types=("NotAllowed",),
    ),
    # A batch of reservations is the engine's too, and a batch is a list of 1 to 200.
    row(
        "reserve-batch-by-a-department",
        STK,
        "reserve_batch",
        {"reservations": [{"order_id": "NO-SUCH-ORDER", "qty": 1}]},
        names="only the engine",
        types=("NotAllowed",),
    ),
    row("reserve-batch-empty", STK, "reserve_batch", {"reservations": []}, names="reservations"),
    row(
        "reserve-batch-201",
        STK,
        "reserve_batch",
        {"reservations": [{"order_id": f"O-{i}", "qty": 1} for i in range(201)]},
        names="reservations",
    ),
    # -- sizes ------------------------------------------------------------------------------
    row(
        "hold-1MB-message",
        ORD,
        "place_hold",
        hold(customer_message="x" * 1_000_000),
        types=("TooLarge",),
        names="65536",
    ),
    row(
        "hold-3MB-message",
        "spare",
        "place_hold",
        hold(customer_message="x" * 3_000_000),
        types=("TooLarge",),
        names="65536",
        timeout=timedelta(seconds=5),
        xfail="the server takes a 3 MB update (it refuses only above gRPC's 4 MB); the validator "
        "refuses it as TooLarge, but the rejection carries the 3 MB request back and the SDK "
        "will not upload a payload over 2 MB, so the workflow task fails (PayloadsTooLarge) "
        "twice: the caller waits 20 s for 'Unable to perform workflow execution update due to "
        "Workflow Task in failed state', the order answers no query meanwhile, and its history "
        "gets two WorkflowTaskFailed events",
    ),
    row(
        "hold-5MB-message",
        ORD,
        "place_hold",
        hold(customer_message="x" * 5_000_000),
        how="transport",
        types=(),
        names="larger than max",
    ),
    # -- names that are not this workflow's updates ----------------------------------------
    row("unknown-update", ORD, "no_such_update", HOLD, how="unknown-update", types=(), names=""),
    row("query-name-as-update", ORD, "view", how="unknown-update", types=(), names=""),
    row(
        "signal-name-as-update",
        ORD,
        "stock_allocated",
        {"sku": SKU},
        how="unknown-update",
        types=(),
        names="",
    ),
    row(
        "stock-update-sent-to-order",
        ORD,
        "receive",
        {"qty": 5},
        how="unknown-update",
        types=(),
        names="",
    ),
    row(
        "order-update-sent-to-delivery",
        DLV,
        "place_hold",
        HOLD,
        how="unknown-update",
        types=(),
        names="",
    ),
    # -- signals that do not decode (dropped by the SDK: no task fails, nothing changes) ----
    row(
        "signal-stock-allocated-a-string",
        ORD,
        "stock_allocated",
        "garbage",
        how="signal",
        types=(),
        names="",
    ),
    row(
        "signal-delivery-reports-wrong-shape",
        ORD,
        "delivery_reports",
        {"reports": [{"x": 1}]},
        how="signal",
        types=(),
        names="",
    ),
    row(
        "signal-waitlist-moved-wrong-types",
        ORD,
        "waitlist_moved",
        {"location": 5, "sku": [], "position": "first"},
        how="signal",
        types=(),
        names="",
    ),
    row("signal-unknown-name", ORD, "no_such_signal", HOLD, how="signal", types=(), names=""),
    # -- the temporal CLI -------------------------------------------------------------------
    cli(
        "cli-hold-typo-refrence",
        ORD,
        "place_hold",
        *cli_input(hold(refrence="INV-1")),
        names="'refrence'",
    ),
    cli("cli-hold-actor-NUL", ORD, "place_hold", *cli_input(hold(actor="ana\x00")), names="actor"),
    cli(
        "cli-hold-reason-code-RLO",
        ORD,
        "place_hold",
        *cli_input(hold(reason_code="arrears\u202e")),
        names="reason_code",
    ),
    cli(
        "cli-hold-department-a-number",
        ORD,
        "place_hold",
        *cli_input(hold(department=5)),
        names="department",
    ),
    cli("cli-hold-a-json-string", ORD, "place_hold", "--input", '"arrears"', names="place_hold"),
    cli("cli-hold-no-input", ORD, "place_hold", names=WANTS_JSON),
    cli(
        "cli-event-unknown-event",
        DLV,
        "carrier_event",
        *cli_input({"event": "teleported"}),
        names="event",
    ),
    cli("cli-receive-qty-1e9", STK, "receive", *cli_input({"qty": 10**9}), names="qty"),
    # -- a well-formed signal forged by an outsider: the order only reads its delivery's
    # reports from the delivery on it, so the forged "delivered" changes nothing (last in the
    # table, as it would change the order's view for the rest of the module if taken) ----
    row(
        "signal-forged-delivered-report",
        ORD,
        "delivery_reports",
        {
            "reports": [
                {
                    "delivery_id": 1,
                    "kind": "delivered",
                    "at": "2030-01-01T10:00:00Z",
                    "status": "delivered",
                }
            ]
        },
        how="signal",
        types=(),
        names="",
    ),
]


# ============================================================================ the targets


@dataclass
class Targets:
    stack: Stack
    address: str
    handles: dict[str, WorkflowHandle[Any, Any]]
    # Who each target's system acts as: billing on the orders, the booked carrier on the
    # delivery, stock control on the stock record.
    principals: dict[str, str]
    ring: KeyRing


@pytest.fixture(scope="module")
async def targets(
    env: WorkflowEnvironment, sink: SmtpSink, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Targets]:
    data: Path = tmp_path_factory.mktemp("direct-bad-input")
    async with make_stack(env, sink, data, "direct-bad-input") as stack:
        address = env.client.service_client.config.target_host
        placed = await stack.place(policy=HOURS)
        spare, _ = await stack.place_held(policy=HOURS)
        oid = placed.order_id
        view = await stack.until(
            oid, lambda v: bool(v.deliveries) and v.deliveries[0].status == "booked"
        )
        principals = {
            "order": "billing",
            "delivery": f"carrier:{view.deliveries[0].carrier}",
            "stock": "stock",
            "spare": "billing",
        }
        ring = KeyRing(stack.app.settings.keys_path)
        # Each system's client: the default data converter and its token, nothing else.
        plain = {
            target: await plain_client(address, env.client.namespace, ring, principal)
            for target, principal in principals.items()
        }
        handles = {
            "order": plain["order"].get_workflow_handle(order_workflow_id(oid)),
            "delivery": plain["delivery"].get_workflow_handle(delivery_workflow_id(oid, 1)),
            "stock": plain["stock"].get_workflow_handle(stock_workflow_id(stack.location, SKU)),
            "spare": plain["spare"].get_workflow_handle(order_workflow_id(spare)),
        }
        for target, handle in handles.items():
            await probe(handle, target)
        await asyncio.gather(*(stack.quiet(h.id) for h in handles.values()))
        yield Targets(stack, address, handles, principals, ring)


async def probe(handle: WorkflowHandle[Any, Any], target: str) -> Any:
    name, body = PROBES[target]
    return await handle.execute_update(name, body, rpc_timeout=CALL_TIMEOUT)


async def look(handle: WorkflowHandle[Any, Any], target: str) -> Any:
    return await handle.query(QUERIES[target], rpc_timeout=CALL_TIMEOUT)


async def history(handle: WorkflowHandle[Any, Any]) -> list[Any]:
    return [e async for e in handle.fetch_history_events()]


def recorded_update_ids(events: list[Any]) -> set[str]:
    ids = set()
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            attrs = e.workflow_execution_update_accepted_event_attributes
            ids.add(attrs.accepted_request.meta.update_id or attrs.protocol_instance_id)
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED:
            ids.add(e.workflow_execution_update_admitted_event_attributes.request.meta.update_id)
    return ids


def failed_tasks(events: list[Any]) -> list[Any]:
    return [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]


async def temporal_cli(address: str, *args: str) -> tuple[int, str]:
    """The ``temporal`` binary, run without blocking the worker on this event loop."""
    proc = await asyncio.create_subprocess_exec(
        temporal_binary(),
        *args,
        "--address",
        address,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), CALL_TIMEOUT.total_seconds() * 2)
    return proc.returncode if proc.returncode is not None else -1, out.decode(errors="replace")


def assert_refusal(err: BaseException, bad: Bad) -> None:
    assert isinstance(err, WorkflowUpdateFailedError), repr(err)
    cause = err.cause
    assert isinstance(cause, ApplicationError), repr(cause)
    assert cause.type in bad.types, (cause.type, cause.message)
    assert cause.non_retryable, f"retryable {cause.type}: {cause.message}"
    assert bad.names in cause.message, cause.message


async def send(t: Targets, bad: Bad, update_id: str) -> None:
    """One bad call, as the row says, and what its caller sees."""
    handle = t.handles[bad.target]
    rpc = bad.timeout
    if bad.how == "signal":
        await handle.signal(bad.name, args=list(bad.args), rpc_timeout=rpc)
    elif bad.how == "cli":
        code, out = await temporal_cli(
            t.address,
            "workflow",
            "update",
            "execute",
            "-w",
            handle.id,
            "--name",
            bad.name,
            "--update-id",
            update_id,
            *token_header(t.ring, t.principals[bad.target]),
            *bad.args,
        )
        assert code != 0, out
        assert any(f"type: {kind}" in out for kind in bad.types), out
        assert "retryable: false" in out, out
        assert bad.names in out, out
    elif bad.how == "transport":
        # Refused by the server before any worker sees it: a clear error, nothing sent on.
        with pytest.raises(RPCError) as refused:
            await handle.execute_update(
                bad.name, args=list(bad.args), id=update_id, rpc_timeout=rpc
            )
        assert bad.names in str(refused.value), str(refused.value)
    elif bad.how == "unknown-update":
        # The SDK's own refusal: no such handler.
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                bad.name, args=list(bad.args), id=update_id, rpc_timeout=rpc
            )
        assert "not found" in str(refused.value.cause), refused.value.cause
    else:
        try:
            result = await handle.execute_update(
                bad.name, args=list(bad.args), id=update_id, rpc_timeout=rpc
            )
        except (WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError, RPCError) as e:
            assert_refusal(e, bad)
        else:
            pytest.fail(f"{bad.name} was taken: {result}")


@pytest.mark.parametrize("bad", ROWS)
async def test_bad_input_sent_straight_to_temporal_is_refused_and_changes_nothing(
    targets: Targets, bad: Bad
) -> None:
    handle = targets.handles[bad.target]
    before = await look(handle, bad.target)
    update_ids = [f"bad-{uuid.uuid4().hex[:12]}" for _ in range(bad.repeat)]

    for update_id in update_ids:
        await send(targets, bad, update_id)

    # It still takes a valid update (a repeat: it changes nothing); a signal is applied by now.
    await probe(handle, bad.target)
    assert await look(handle, bad.target) == before
    events = await history(handle)
    assert not failed_tasks(events), [e.workflow_task_failed_event_attributes for e in events]
    assert not recorded_update_ids(events) & set(update_ids)


def test_the_table_covers_what_it_must() -> None:
    bads = [p.values[0] for p in ROWS]
    assert len({p.id for p in ROWS}) == len(ROWS)
    assert {b.target for b in bads} >= {"order", "delivery", "stock"}
    assert sum(b.how == "cli" for b in bads) >= 5
    for target in ("delivery", "stock"):
        assert any(b.target == target and b.how == "cli" for b in bads), target


async def test_every_target_takes_valid_updates_after_the_table(targets: Targets) -> None:
    """After the whole table: each target takes a new valid message, through the plain client
    and through the CLI, and none of them ever failed a workflow task."""
    order, delivery, stock = (targets.handles[t] for t in ("order", "delivery", "stock"))
    holds_before = len((await look(order, "order"))["holds"])
    placed = await order.execute_update("place_hold", hold(reference="INV-AFTER"))
    assert placed["already_placed"] is False
    code, out = await temporal_cli(
        targets.address,
        "workflow",
        "update",
        "execute",
        "-w",
        order.id,
        "--name",
        "place_hold",
        *token_header(targets.ring, "billing"),
        *cli_input(hold(reference="INV-AFTER-CLI")),
    )
    assert code == 0, out
    view = await look(order, "order")
    assert len(view["holds"]) == holds_before + 2
    assert view["status"] == "shipping"

    scanned = await delivery.execute_update(
        "carrier_event", {"event": "scan", "location": "Hub", "event_id": "SC-AFTER"}
    )
    assert scanned["duplicate"] is False
    received = await stock.execute_update("receive", {"qty": 2, "reference": "DN-AFTER"})
    assert received["duplicate"] is False

    for handle in (order, delivery, stock):
        assert not failed_tasks(await history(handle)), handle.id
