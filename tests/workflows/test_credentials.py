"""Tokens on the order's hold updates, checked by the worker: a token it cannot verify, or one
that contradicts what the update says, is refused before anything is recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import temporalio.client
from temporalio.client import Client, WorkflowUpdateFailedError

from domain.holds import DisputeHold, PlaceHold, ReleaseHold
from domain.ids import order_workflow_id
from orderflow.auth import HEADER, header_payload
from orderflow.identity import KeyRing, Principal
from tests.conftest import Stack

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


class FixedToken(temporalio.client.Interceptor):
    """Another SDK's client sending the header as it is told to, whatever it holds."""

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


async def refused(stack: Stack, oid: str, token: str, update: str, body: dict[str, Any]) -> str:
    """Send ``update`` with ``token``; return the refusal, having checked nothing was recorded."""
    wid = order_workflow_id(oid)
    before = await stack.quiet(wid)
    handle = with_token(stack.client, token).get_workflow_handle(wid)
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
