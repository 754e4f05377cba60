"""The HTTP API of the stack `orderflow dev` runs, as a department or partner system uses it:
the same order view as the CLI, the same refusals as problem documents, the same tokens, and no
server error for any input its own OpenAPI document allows (Schemathesis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from orderflow.identity import KeyRing, Principal
from tests.e2e.conftest import Cli

PROBLEM = "application/problem+json"


def api(cli: Cli) -> str:
    return f"http://localhost:{cli.env['ORDERFLOW_WEB_PORT']}/api/v1"


def token(cli: Cli, principal: str, *extra: str) -> dict[str, str]:
    """A fresh token of ``principal``: a token carries one message."""
    made = cli.run("token", "--as", principal, *extra).stdout.strip()
    return {"Authorization": f"Bearer {made}"}


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    doc = response.json()
    assert doc["status"] == status and doc["title"] and doc["detail"]
    return doc


@pytest.fixture(scope="module")
def order(cli: Cli) -> str:
    with httpx.Client(base_url=api(cli), timeout=30) as http:
        placed = http.post(
            "/orders",
            json={
                "order_id": "E2E-API",
                "customer_id": "C-1001",
                "lines": [{"sku": "PHONE-A5", "qty": 1}],
                "location": "warehouse-north",
            },
            headers=token(cli, "desk:web"),
        )
        assert placed.status_code == 201, placed.text
        assert placed.json()["created"] is True
    return "E2E-API"


def test_an_order_reads_the_same_through_the_api_as_through_the_cli(cli: Cli, order: str) -> None:
    cli.until(("order", "show", order), lambda v: v["payment"] == "authorized")
    with httpx.Client(base_url=api(cli), timeout=30) as http:
        shown = http.get(f"/orders/{order}", headers=token(cli, "care"))
        assert shown.status_code == 200
        assert shown.json() == cli.json("order", "show", order)
        timeline = http.get(f"/orders/{order}/timeline", headers=token(cli, "care")).json()
        assert [e["kind"] for e in timeline][:1] == ["placed"]
        again = http.post(
            "/orders",
            json={
                "order_id": order,
                "customer_id": "C-1001",
                "lines": [{"sku": "PHONE-A5", "qty": 1}],
                "location": "warehouse-north",
            },
            headers=token(cli, "desk:web"),
        )
        assert again.status_code == 201 and again.json()["created"] is False


def test_a_department_holds_and_releases_and_every_refusal_is_a_problem_document(
    cli: Cli, order: str
) -> None:
    hold = {"department": "billing", "reason_code": "arrears", "customer_message": "Unpaid."}
    with httpx.Client(base_url=api(cli), timeout=30) as http:
        problem(http.post(f"/orders/{order}/holds", json=hold), 401)
        bad = {"Authorization": "Bearer not-a-token"}
        assert (
            "not a signed token"
            in problem(http.get(f"/orders/{order}", headers=bad), 401)["detail"]
        )
        # Care's token cannot place billing's hold: the workflow's own rule, word for word.
        refused = problem(
            http.post(f"/orders/{order}/holds", json=hold, headers=token(cli, "care")), 403
        )
        assert "billing" in refused["detail"] and refused["refusal"] == "NotAllowed"
        # The door of the engine: an unknown field is refused naming it, as the CLI does.
        typo = {**hold, "reson": "x"}
        unknown = problem(
            http.post(f"/orders/{order}/holds", json=typo, headers=token(cli, "billing")), 400
        )
        assert "unknown field 'reson'" in unknown["detail"]
        problem(
            http.post(
                f"/orders/{order}/holds",
                content=b"{",
                headers={**token(cli, "billing"), "content-type": "application/json"},
            ),
            400,
        )
        problem(http.get("/orders/NO-SUCH", headers=token(cli, "billing")), 404)

        billing = token(cli, "billing")
        placed = http.post(f"/orders/{order}/holds", json=hold, headers=billing)
        assert placed.status_code == 200, placed.text
        hold_id = placed.json()["hold_id"]
        # A token carries one message.
        reused = problem(http.post(f"/orders/{order}/holds", json=hold, headers=billing), 403)
        assert "used already" in reused["detail"]
        view = http.get(f"/orders/{order}", headers=token(cli, "billing")).json()
        assert view["blocked_by"] == ["billing"]

        release = {"hold_id": hold_id, "department": "billing", "resolution": "Paid."}
        released = http.post(
            f"/orders/{order}/holds/release", json=release, headers=token(cli, "billing")
        )
        assert released.status_code == 200 and released.json()["blocked_by"] == []
        problem(
            http.post(
                f"/orders/{order}/holds/release", json=release, headers=token(cli, "billing")
            ),
            409,
        )


def test_a_customer_reads_and_answers_only_their_own_order(cli: Cli, order: str) -> None:
    with httpx.Client(base_url=api(cli), timeout=30) as http:
        hold = {"department": "care", "reason_code": "customer_request", "customer_message": "Hi"}
        hold_id = http.post(f"/orders/{order}/holds", json=hold, headers=token(cli, "care")).json()[
            "hold_id"
        ]
        # Another customer hears what they would of an order that does not exist.
        other = problem(http.get(f"/orders/{order}", headers=token(cli, "customer:C-1002")), 404)
        missing = problem(http.get("/orders/NO-SUCH", headers=token(cli, "customer:C-1002")), 404)
        assert other["detail"] == f"no order '{order}'" and "C-1001" not in other["detail"]
        assert missing["detail"] == "no order 'NO-SUCH'"
        mine = http.get(f"/orders/{order}", headers=token(cli, "customer:C-1001"))
        assert mine.status_code == 200 and mine.json()["customer_name"] == "Maria Lopez"
        dispute = {"hold_id": hold_id, "customer_message": "I asked for nothing."}
        problem(
            http.post(
                f"/orders/{order}/holds/dispute",
                json=dispute,
                headers=token(cli, "customer:C-1002"),
            ),
            403,
        )
        disputed = http.post(
            f"/orders/{order}/holds/dispute", json=dispute, headers=token(cli, "customer:C-1001")
        )
        assert disputed.status_code == 200, disputed.text
        # A token for another order reads nothing of this one.
        scoped = token(cli, "customer:C-1001", "--order", "SOME-OTHER")
        problem(http.get(f"/orders/{order}", headers=scoped), 404)
        # The order page's and the console's own keys read nothing in their own name.
        for kind in ("portal:web", "console:web"):
            refused = problem(http.get(f"/orders/{order}", headers=token(cli, kind)), 403)
            assert "does not read orders" in refused["detail"]
        problem(
            http.get(
                "/orders", params={"customer": "C-1002"}, headers=token(cli, "customer:C-1001")
            ),
            403,
        )


def test_no_input_the_openapi_document_allows_gets_a_server_error(cli: Cli) -> None:
    """Schemathesis generates requests for every operation from the API's own OpenAPI
    document; each answer is below 500, and each refusal a problem document."""
    schema = schemathesis.openapi.from_url(f"{api(cli)}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 13
    keys = KeyRing(Path(cli.env["ORDERFLOW_DATA_DIR"]) / "keys")
    supervisor = Principal.parse("supervisor:billing")
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def call(case: Any) -> None:
            # A fresh token per request, as a system makes one per message.
            fresh = keys.issue(supervisor, actor="schemathesis")
            response = case.call(headers={"Authorization": f"Bearer {fresh}"}, timeout=30)
            assert response.status_code < 500, (case.path, response.text)
            if response.status_code >= 400:
                kind = response.headers.get("content-type")
                assert (kind[0] if isinstance(kind, list) else kind) == PROBLEM, (
                    case.method,
                    case.formatted_path,
                    response.text,
                )

        call()
