"""Tokens on every update, checked by the worker: an update without one, with one it cannot
verify, or from a principal the rules do not allow, is refused before anything is recorded.
An order's start is checked with its terms: without a placer's token the order is rejected."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import temporalio.client
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from domain.carrier import CarrierEvent
from domain.holds import DisputeHold, PlaceHold, ReleaseHold
from domain.ids import delivery_workflow_id, order_workflow_id, stock_workflow_id
from domain.promises import KeepPromise, MakePromise
from orderflow.auth import HEADER, header_payload
from orderflow.identity import KeyRing, Principal
from tests.conftest import Stack
from workflows.search_attributes import CARRIER, ORDER_STATUS

BILLING = Principal.parse("billing")


def arrears(**kw: Any) -> dict[str, Any]:
    return {
        "department": "billing",
        "actor": "ana",
        "reason_code": "arrears",
        "customer_message": "Your account shows 120.00 unpaid.",
        **kw,
    }


class _Fixed(temporalio.client.OutboundInterceptor):
    def __init__(self, next: temporalio.client.OutboundInterceptor, token: str) -> None:
        super().__init__(next)
        self.token = token

    async def start_workflow_update(
        self, input: temporalio.client.StartWorkflowUpdateInput
    ) -> temporalio.client.WorkflowUpdateHandle[Any]:
        input.headers = {**input.headers, HEADER: header_payload(self.token)}
        return await super().start_workflow_update(input)

    async def start_workflow(self, input: temporalio.client.StartWorkflowInput) -> Any:
        input.headers = {**input.headers, HEADER: header_payload(self.token)}
        return await super().start_workflow(input)


class FixedToken(temporalio.client.Interceptor):
    """Another SDK's client sending the header as it is told to, whatever it holds, on the
    updates and the starts it sends."""

    def __init__(self, token: str) -> None:
        self.token = token

    def intercept_client(
        self, next: temporalio.client.OutboundInterceptor
    ) -> temporalio.client.OutboundInterceptor:
        return _Fixed(next, self.token)


def with_token(client: Client, token: str) -> Client:
    config = client.config()
    config["interceptors"] = [FixedToken(token)]
    return Client(**config)


async def refused(
    stack: Stack,
    oid: str,
    token: str | None,
    update: str,
    body: dict[str, Any],
    *,
    workflow_id: str | None = None,
) -> str:
    """Send ``update`` with ``token`` (none: no header) to the order (or ``workflow_id``);
    return the refusal, having checked nothing was recorded."""
    wid = workflow_id or order_workflow_id(oid)
    before = await stack.quiet(wid)
    client = stack.client if token is None else with_token(stack.client, token)
    if token is None:  # a client that signs nothing: no interceptor at all
        config = client.config()
        config["interceptors"] = []
        client = Client(**config)
    handle = client.get_workflow_handle(wid)
    with pytest.raises(WorkflowUpdateFailedError) as err:
        await handle.execute_update(update, body)
    assert await stack.quiet(wid) == before, "a refused update reached the order's history"
    cause = err.value.cause
    assert cause is not None and getattr(cause, "non_retryable", False)
    return str(cause)


@pytest.fixture
async def order(stack: Stack) -> str:
    view, _ = await stack.app.place_order(stack.order())
    return view.order_id


def ring_of(stack: Stack) -> KeyRing:
    return KeyRing(stack.app.settings.keys_path)


async def test_a_token_from_a_key_the_engine_does_not_trust_is_refused(
    stack: Stack, order: str, tmp_path: Path
) -> None:
    elsewhere = KeyRing(tmp_path / "elsewhere")
    elsewhere.add(BILLING)
    token = elsewhere.issue(BILLING, actor="mallory")
    says = await refused(stack, order, token, "place_hold", arrears())
    assert "credential: key 'billing/" in says and "is not trusted" in says


async def test_an_expired_token_is_refused(stack: Stack, order: str) -> None:
    token = ring_of(stack).issue(BILLING, actor="ana", now=datetime.now(UTC) - timedelta(hours=1))
    says = await refused(stack, order, token, "place_hold", arrears())
    assert "credential: the token expired at" in says


async def test_a_token_that_is_not_one_is_refused(stack: Stack, order: str) -> None:
    says = await refused(stack, order, "let-me-in", "place_hold", arrears())
    assert "credential: not a signed token" in says


async def test_a_department_flag_that_contradicts_the_token_is_refused(
    stack: Stack, order: str
) -> None:
    token = ring_of(stack).issue(Principal.parse("care"), actor="bo")
    says = await refused(stack, order, token, "place_hold", arrears())
    assert "department: the hold says billing, but the credential is care's" in says


async def test_care_cannot_release_billings_hold_even_naming_billing(
    stack: Stack, order: str
) -> None:
    hold = await stack.app.place_hold(order, PlaceHold.model_validate(arrears()))
    token = ring_of(stack).issue(Principal.parse("care"), actor="bo")
    release = ReleaseHold(hold_id=hold.hold_id, department="billing", resolution="Fine.")
    says = await refused(stack, order, token, "release_hold", release.model_dump(mode="json"))
    assert "department: the command says billing, but the credential is care's" in says
    assert (await stack.app.view(order)).blocked_by == ["billing"]


async def test_only_the_orders_customer_disputes_its_hold(stack: Stack, order: str) -> None:
    hold = await stack.app.place_hold(order, PlaceHold.model_validate(arrears()))
    other = ring_of(stack).issue(Principal.parse("customer:C-1002"), actor="C-1002")
    dispute = DisputeHold(hold_id=hold.hold_id, customer_message="I paid on Monday.")
    says = await refused(stack, order, other, "dispute_hold", dispute.model_dump(mode="json"))
    assert "only the order's customer (customer:C-1001) may dispute a hold" in says
    # The order's own customer may (the app acts as the order's customer for a dispute).
    await stack.app.dispute_hold(order, dispute)
    view = await stack.app.view(order)
    assert view.holds[0].status == "disputed" and view.holds[0].principal == "billing"


async def test_a_token_with_a_broken_signature_is_refused(stack: Stack, order: str) -> None:
    token = ring_of(stack).issue(BILLING, actor="ana")
    says = await refused(stack, order, token[:-4] + "AAAA", "place_hold", arrears())
    assert "credential: the signature does not match key 'billing/" in says


def token(stack: Stack, principal: str, order_id: str | None = None) -> str:
    return ring_of(stack).issue(Principal.parse(principal), actor="x", order_id=order_id)


async def test_an_update_without_a_token_is_refused(stack: Stack, order: str) -> None:
    says = await refused(stack, order, None, "place_hold", arrears())
    assert "credential: no token in the orderflow-auth header" in says


async def test_a_token_for_another_order_is_refused(stack: Stack, order: str) -> None:
    says = await refused(stack, order, token(stack, "billing", "T-other"), "place_hold", arrears())
    assert f"the token is for order T-other, not for order {order}" in says


async def test_a_customer_cancels_only_their_own_order_and_the_desk_for_them(
    stack: Stack,
) -> None:
    mine = await stack.place()
    cancel = {"by": "customer", "reason": "changed my mind"}
    says = await refused(stack, mine.order_id, token(stack, "customer:C-1002"), "cancel", cancel)
    assert "only the order's customer (customer:C-1001) or an order desk may cancel it" in says
    says = await refused(stack, mine.order_id, token(stack, "billing"), "cancel", cancel)
    assert "only the order's customer" in says
    # The order desk takes the customer's call and cancels for them; the order says who.
    handle = with_token(stack.client, token(stack, "desk:web")).get_workflow_handle(
        order_workflow_id(mine.order_id)
    )
    await handle.execute_update("cancel", cancel)
    view = await stack.until(mine.order_id, lambda v: v.status == "cancelled")
    assert view.cancelled_by == "desk:web"
    [asked] = [e for e in await stack.app.timeline(mine.order_id) if e.kind == "cancel_requested"]
    assert asked.principal == "desk:web" and asked.kid.startswith("desk:web/")


async def test_promises_are_made_and_kept_by_the_department_that_makes_them(
    stack: Stack, order: str
) -> None:
    due = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    promise = {"kind": "callback", "due_at": due, "text": "We call you back.", "department": "care"}
    says = await refused(stack, order, token(stack, "billing"), "make_promise", promise)
    assert "only care or supervisor:care may make care's promises, not billing" in says
    made = await stack.app.make_promise(order, MakePromise.model_validate(promise))
    keep = {"promise_id": made.promise_id, "note": "called"}
    says = await refused(stack, order, token(stack, "billing"), "keep_promise", keep)
    assert f"may keep promise {made.promise_id}, not billing" in says
    await stack.app.keep_promise(order, KeepPromise.model_validate(keep))
    [kept] = [p for p in (await stack.app.view(order)).promises if p.promise_id == made.promise_id]
    assert kept.status == "kept" and kept.principal == kept.settled_principal == "care"


async def test_only_the_booked_carrier_reports_and_only_the_customer_reschedules(
    stack: Stack,
) -> None:
    placed = await stack.place()
    oid = placed.order_id
    booked = await stack.until(oid, lambda v: bool(v.deliveries) and v.deliveries[-1].tracking)
    carrier = booked.deliveries[-1].carrier
    other = next(c for c in ("ups", "dhl", "post") if c != carrier)
    delivery = delivery_workflow_id(oid, 1)
    says = await refused(
        stack,
        oid,
        token(stack, f"carrier:{other}"),
        "carrier_event",
        {"event": "delivered"},
        workflow_id=delivery,
    )
    assert (
        f"booked with {carrier}; only carrier:{carrier} reports on it, not carrier:{other}" in says
    )
    says = await refused(
        stack,
        oid,
        token(stack, f"carrier:{carrier}"),
        "redirect",
        {"pickup_point": "Locker 12"},
        workflow_id=delivery,
    )
    assert "only the order's customer (customer:C-1001) may redirect the delivery" in says
    # The booked carrier's own event is taken (the app sends it as that carrier).
    await stack.app.carrier_event(oid, CarrierEvent(event="picked-up", actor="driver-7"))
    await stack.app.carrier_event(oid, CarrierEvent(event="delivered", actor="driver-7"))
    await stack.until(oid, lambda v: v.status == "completed")
    # The order's timeline says who reported each event, as the delivery verified it.
    [picked] = [e for e in await stack.app.timeline(oid) if e.kind == "picked_up"]
    assert (picked.principal, picked.actor) == (f"carrier:{carrier}", "driver-7")
    assert picked.kid.startswith(f"carrier:{carrier}/")


async def test_stock_counts_are_changed_by_stock_control_or_the_stores_clerks(
    stack: Stack,
) -> None:
    await stack.app.receive_stock(stack.location, "PHONE-A5", 1, "DN-1")  # as stock control
    record = stock_workflow_id(stack.location, "PHONE-A5")
    receive = {"qty": 5, "reference": "DN-2"}
    says = await refused(stack, "", token(stack, "care"), "receive", receive, workflow_id=record)
    assert f"only stock, supervisor:stock or store:{stack.location} may receive stock" in says
    says = await refused(
        stack,
        "",
        token(stack, "desk:web"),
        "reserve",
        {"order_id": "X", "qty": 1},
        workflow_id=record,
    )
    assert "only the engine may reserve stock for an order, not desk:web" in says
    clerk = with_token(stack.client, token(stack, f"store:{stack.location}"))
    await clerk.get_workflow_handle(record).execute_update("receive", receive)
    [stock] = await stack.app.stock(stack.location, "PHONE-A5")
    assert stock.on_hand == 16


def straight_client(stack: Stack, by: str | None) -> Client:
    """A client that goes straight to Temporal, sending ``by``'s token (none: no header)."""
    config = stack.client.config()
    config["interceptors"] = [FixedToken(token(stack, by))] if by else []
    return Client(**config)


async def rejected_start(stack: Stack, by: str | None) -> str:
    """Start an order straight through Temporal with ``by``'s token (none: no header)."""
    inp = stack.order().model_dump(mode="json")
    handle = await straight_client(stack, by).start_workflow(
        "OrderWorkflow",
        inp,
        id=order_workflow_id(inp["order_id"]),
        task_queue=stack.app.settings.task_queue,
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), 20)
    assert (await handle.describe()).search_attributes.get("OrderStatus") == ["rejected"]
    assert stack.mail(inp["order_id"]) == [] and stack.ledger.entries(inp["order_id"]) == []
    return str(failed.value.cause)


async def test_an_order_is_placed_only_by_a_desk_or_its_own_customer(stack: Stack) -> None:
    says = await rejected_start(stack, None)
    assert "order rejected: credential: no token in the orderflow-auth header" in says
    says = await rejected_start(stack, "billing")
    assert "an order is placed by an order desk or by its own customer" in says
    says = await rejected_start(stack, "customer:C-1002")
    assert "(customer:C-1001), not by customer:C-1002" in says
    # Its own customer may place it; the order and its timeline say who did.
    stack.app.as_principal = Principal.parse("customer:C-1001")  # as with --as
    try:
        view = await stack.place()
    finally:
        stack.app.as_principal = None
    placed = await stack.until(view.order_id, lambda v: v.status == "shipping")
    assert placed.placed_by == "customer:C-1001"


async def test_a_key_added_while_the_worker_runs_is_trusted_and_a_retired_one_is_not(
    stack: Stack, order: str
) -> None:
    ring = ring_of(stack)
    old = ring.issue(BILLING, actor="ana")
    new_kid = ring.add(BILLING)  # rotation: the new key signs from now on
    new = ring.issue(BILLING, actor="ana")
    handle = with_token(stack.client, new).get_workflow_handle(order_workflow_id(order))
    await handle.execute_update("place_hold", arrears(reference="NEW-KEY"))
    old_kid = next(
        k["kid"] for k in ring.listed() if k["principal"] == "billing" and k["kid"] != new_kid
    )
    ring.retire(old_kid)
    says = await refused(stack, order, old, "place_hold", arrears(reference="OLD-KEY"))
    assert f"credential: key '{old_kid}' is not trusted" in says


async def test_an_order_started_under_another_orders_workflow_id_is_rejected(
    stack: Stack,
) -> None:
    """A workflow id that is not the order's own would let one order act on another's stock
    (reservations are the order id's): it is rejected, having done nothing."""
    inp = stack.order().model_dump(mode="json")
    handle = await straight_client(stack, "desk:web").start_workflow(
        "OrderWorkflow", inp, id="order-not-its-own", task_queue=stack.app.settings.task_queue
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), 20)
    assert f"runs as workflow order-{inp['order_id']}, not order-not-its-own" in str(
        failed.value.cause
    )
    assert stack.ledger.entries(inp["order_id"]) == []


async def test_a_token_signed_for_another_workflow_or_order_is_refused(
    stack: Stack, order: str
) -> None:
    """What a client signs is bound to the workflow it is sent to: a token read from one
    order's history is good for no other; the engine's stock tokens name their order."""
    elsewhere = ring_of(stack).issue(BILLING, actor="ana", workflow_id="order-T-elsewhere")
    says = await refused(stack, order, elsewhere, "place_hold", arrears())
    assert "the token was signed for order-T-elsewhere" in says
    record = stock_workflow_id(stack.location, "PHONE-A5")
    engine_for_other = token(stack, "engine", "T-other")
    says = await refused(
        stack, "", engine_for_other, "release", {"order_id": order}, workflow_id=record
    )
    assert f"the engine's token is for order T-other, not for order {order}" in says
    clerk_for_order = token(stack, f"store:{stack.location}", order)
    says = await refused(
        stack, "", clerk_for_order, "adjust", {"count": 0, "reason": "x"}, workflow_id=record
    )
    assert f"the token is for order {order}; it cannot adjust a stock count" in says


async def test_a_stock_record_started_from_outside_takes_no_state_from_its_input(
    stack: Stack,
) -> None:
    """Only a record's own previous run hands it its state: a first run with reservations
    and receipts in its start input starts from its count alone."""
    loc = stack.add_location({"PHONE-A5": 2})
    forged = {
        "location": loc,
        "sku": "PHONE-A5",
        "on_hand": 2,
        "state": {
            "location": loc,
            "sku": "PHONE-A5",
            "on_hand": 500,
            "reservations": [
                {
                    "order_id": "T-mine",
                    "qty": 1,
                    "since": "2026-01-01T00:00:00Z",
                    "status": "reserved",
                }
            ],
        },
    }
    await stack.client.start_workflow(
        "StockWorkflow",
        forged,
        id=stock_workflow_id(loc, "PHONE-A5"),
        task_queue=stack.app.settings.task_queue,
    )
    [view] = await stack.app.stock(loc, "PHONE-A5")
    assert view.on_hand == 2 and view.reserved == []


async def test_a_broken_trust_store_keeps_the_keys_last_read(stack: Stack, order: str) -> None:
    path = ring_of(stack).trust_path
    good = path.read_text()
    path.write_text('{"keys": [{"kid": "x"}]}')
    try:
        handle = with_token(stack.client, token(stack, "billing")).get_workflow_handle(
            order_workflow_id(order)
        )
        placed = await handle.execute_update("place_hold", arrears(reference="STILL-TRUSTED"))
        assert placed["hold_id"]
    finally:
        path.write_text(good)


async def test_a_token_is_good_for_one_message(stack: Stack, order: str) -> None:
    """A token read from an order's history cannot be sent to it again, with another
    message: billing's token that placed a hold does not release it."""
    once = token(stack, "billing")
    handle = with_token(stack.client, once).get_workflow_handle(order_workflow_id(order))
    placed = await handle.execute_update("place_hold", arrears(reference="ONCE"))
    release = {"hold_id": placed["hold_id"], "department": "billing", "resolution": "x"}
    says = await refused(stack, order, once, "release_hold", release)
    assert "credential: this token was used already" in says
    assert (await stack.app.view(order)).blocked_by == ["billing"]


async def test_an_order_started_with_false_search_attributes_shows_its_own_from_its_first_task(
    stack: Stack,
) -> None:
    """A start straight through Temporal may set any search attributes: the order puts its
    own in their place in its first task (the UI and `order list` never show the lie), and
    unsets a carrier a store-pickup order has not."""
    inp = stack.order(pickup=True).model_dump(mode="json")
    handle = await straight_client(stack, "desk:web").start_workflow(
        "OrderWorkflow",
        inp,
        id=order_workflow_id(inp["order_id"]),
        task_queue=stack.app.settings.task_queue,
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(ORDER_STATUS, "completed"), SearchAttributePair(CARRIER, "dhl")]
        ),
    )
    await stack.until(inp["order_id"], lambda v: v.status != "placed")
    first_task: list[dict[str, Any]] = []
    async for e in handle.fetch_history_events():
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            break  # the order's terms: its first task ended before
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = e.upsert_workflow_search_attributes_event_attributes.search_attributes
            first_task.append({k: v.data for k, v in fields.indexed_fields.items()})
    status = [f for f in first_task if "OrderStatus" in f]
    assert status and status[0]["OrderStatus"] == b'"placed"'
    assert status[0]["Carrier"] in (b"", b"null")  # unset
    listed = (await handle.describe()).search_attributes
    assert listed.get("OrderStatus") != ["completed"] and "Carrier" not in listed
