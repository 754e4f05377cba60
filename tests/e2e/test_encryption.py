"""Customer data is encrypted in every history of the stack `orderflow dev` runs: the raw history
holds none of it, `orderflow order show` and staff through the codec endpoint read it, and no one
else does."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from orderflow.devserver import temporal_binary
from orderflow.identity import KeyRing, Principal
from orderflow.registry import Registry
from tests.conftest import SEEDS
from tests.e2e.conftest import Cli

CUSTOMER = Registry(SEEDS).customers["C-1001"]
PERSONAL = [CUSTOMER.name, CUSTOMER.email, CUSTOMER.address, CUSTOMER.gps]


def web(cli: Cli) -> str:
    return f"http://localhost:{cli.env['ORDERFLOW_WEB_PORT']}"


def ui_origin(cli: Cli) -> str:
    return f"http://localhost:{cli.ui_port}"


def temporal(cli: Cli, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(temporal_binary()), *args, "--address", cli.env["TEMPORAL_ADDRESS"]],
        capture_output=True,
        text=True,
        timeout=60,
    )


def raw_history(cli: Cli, workflow_id: str, *codec: str) -> str:
    shown = temporal(cli, "workflow", "show", "-w", workflow_id, "--output", "json", *codec)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def payload_texts(history: str) -> str:
    """Every payload's data as text, the way a reader of the JSON history would decode it."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("data"), str) and "metadata" in node:
                out.append(base64.b64decode(node["data"]).decode(errors="replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history))
    return "\n".join(out)


def payloads_of(history: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "metadata" in node and "data" in node:
                out.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(history))
    return out


@pytest.fixture(scope="module")
def shipped(cli: Cli) -> str:
    """An order the way the demo places one, shipped by the carrier with the customer's address."""
    cli.run(
        "order", "place", "--customer", "C-1001", "--sku", "PHONE-A5",
        "--location", "warehouse-north", "--order-id", "E2E-SECRET",
    )  # fmt: skip
    cli.until(("order", "show", "E2E-SECRET"), lambda v: v["deliveries"])
    return "E2E-SECRET"


def test_the_raw_history_holds_no_personal_data_and_order_show_reads_it(
    cli: Cli, shipped: str
) -> None:
    for workflow_id in (f"order-{shipped}", f"delivery-{shipped}-1"):
        history = raw_history(cli, workflow_id)
        text = history + payload_texts(history)
        assert [p for p in PERSONAL if p in text] == [], workflow_id
        assert "YmluYXJ5L2VuY3J5cHRlZA==" in history  # binary/encrypted
    shown = cli.run("order", "show", shipped).stdout
    assert CUSTOMER.name in shown and CUSTOMER.email in shown and CUSTOMER.address in shown
    view = cli.json("order", "show", shipped)
    assert (view["customer_name"], view["ship_to"]) == (CUSTOMER.name, CUSTOMER.address)


def test_staff_read_decoded_histories_through_the_codec_endpoint_and_no_one_else(
    cli: Cli, shipped: str
) -> None:
    endpoint = f"{web(cli)}/codec"
    staff = cli.run("token", "--as", "staff:operator", "--ttl", "10m").stdout.strip()
    decoded = raw_history(
        cli,
        f"delivery-{shipped}-1",
        "--codec-endpoint",
        endpoint,
        "--codec-auth",
        f"Bearer {staff}",
    )
    texts = payload_texts(decoded)
    assert CUSTOMER.address in texts and CUSTOMER.gps in texts

    [sealed] = [
        p
        for p in json.loads(raw_history(cli, f"order-{shipped}"))["events"][0][
            "workflowExecutionStartedEventAttributes"
        ]["input"]["payloads"]
    ]
    body = {"payloads": [sealed]}
    billing = cli.run("token", "--as", "billing").stdout.strip()
    customer = cli.run("token", "--as", "customer:C-1001").stdout.strip()
    with httpx.Client(base_url=endpoint, timeout=10) as http:
        ok = http.post("/decode", json=body, headers={"Authorization": f"Bearer {staff}"})
        assert ok.status_code == 200
        [opened] = ok.json()["payloads"]
        assert json.loads(base64.b64decode(opened["data"]))["customer_id"] == "C-1001"

        nobody = http.post("/decode", json=body)
        assert nobody.status_code == 401
        assert nobody.headers["content-type"] == "application/problem+json"
        assert "no credential" in nobody.json()["detail"]
        for token in (billing, customer):
            refused = http.post("/decode", json=body, headers={"Authorization": f"Bearer {token}"})
            assert refused.status_code == 403 and "staff only" in refused.json()["detail"]
        forged = http.post(
            "/decode", json=body, headers={"Authorization": f"Bearer {staff[:-4]}AAAA"}
        )
        assert forged.status_code == 401 and "signature" in forged.json()["detail"]
        # Another site's page cannot use the endpoint, even with a good token.
        elsewhere = http.post(
            "/decode",
            json=body,
            headers={"Authorization": f"Bearer {staff}", "Origin": "http://evil.example"},
        )
        assert elsewhere.status_code == 403
        assert "access-control-allow-origin" not in elsewhere.headers
        preflight = http.options(
            "/decode",
            headers={
                "Origin": "http://evil.example",
                "Access-Control-Request-Method": "POST",
            },
        )
        assert preflight.status_code == 403
        malformed = http.post(
            "/decode", content=b"{}{", headers={"Authorization": f"Bearer {staff}"}
        )
        assert malformed.status_code == 400 and "payloads" in malformed.json()["detail"]
        # A payload of a key the stack does not hold: a note saying so, never the ciphertext.
        foreign = {**sealed, "metadata": {**sealed["metadata"], "encryption-key-id": "Ym9ndXM="}}
        [note] = http.post(
            "/decode", json={"payloads": [foreign]}, headers={"Authorization": f"Bearer {staff}"}
        ).json()["payloads"]
        said = json.loads(base64.b64decode(note["data"]))["undecodable"]
        assert "codec key 'bogus', which is not among" in said


def test_a_browser_signed_in_as_staff_decodes_from_the_temporal_ui_origin(
    cli: Cli, shipped: str
) -> None:
    """What the Temporal UI does: a preflight, then a POST with the session cookie."""
    origin = ui_origin(cli)
    sealed = json.loads(raw_history(cli, f"order-{shipped}"))["events"][0][
        "workflowExecutionStartedEventAttributes"
    ]["input"]
    with httpx.Client(base_url=web(cli), timeout=10) as browser:
        preflight = browser.options(
            "/codec/decode",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == origin
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert "X-Namespace" in preflight.headers["access-control-allow-headers"]

        headers = {"Origin": origin, "X-Namespace": "default"}
        before = browser.post("/codec/decode", json=sealed, headers=headers)
        assert before.status_code == 401
        assert before.headers["access-control-allow-origin"] == origin

        billing = cli.run("token", "--as", "billing").stdout.strip()
        signed = browser.post("/signin", data={"token": billing}, follow_redirects=True)
        assert "Console: billing" in signed.text
        assert browser.post("/codec/decode", json=sealed, headers=headers).status_code == 403

        staff = cli.run("token", "--as", "staff:operator").stdout.strip()
        browser.post("/signin", data={"token": staff}, follow_redirects=True)
        cookie = browser.cookies.jar
        assert any(
            c.name == "orderflow_session" and c.has_nonstandard_attr("HttpOnly") for c in cookie
        )
        after = browser.post("/codec/decode", json=sealed, headers=headers)
        assert after.status_code == 200
        assert after.headers["access-control-allow-origin"] == origin
        [opened] = after.json()["payloads"]
        assert json.loads(base64.b64decode(opened["data"]))["order_id"] == shipped

        garbage = browser.post("/signin", data={"token": "not-a-token"})
        assert garbage.status_code == 401 and "not a signed token" in garbage.text


def test_a_command_without_a_usable_codec_key_says_so_and_sends_nothing(
    cli: Cli, shipped: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    missing = tmp_path_factory.mktemp("nokeys") / "codec-keys.json"
    nokey = Cli({**cli.env, "ORDERFLOW_CODEC_KEYS_FILE": str(missing)})
    placed = nokey.run(
        "order", "place", "--customer", "C-1001", "--sku", "PHONE-A5",
        "--location", "warehouse-north", "--order-id", "E2E-NOKEY", check=False,
    )  # fmt: skip
    assert placed.returncode == 2
    assert f"no codec key file at {missing}" in placed.stderr
    short = base64.urlsafe_b64encode(b"0" * 16).decode()
    shortkey = Cli({**cli.env, "ORDERFLOW_CODEC_KEY": f"k1={short}"})
    shown = shortkey.run("order", "show", shipped, check=False)
    assert shown.returncode == 2 and "is 16 bytes; AES-256-GCM takes 32" in shown.stderr
    # A stack's own key file, rotated: the new key encrypts, the old one still decrypts.
    before = cli.json("keys", "codec-list")
    fresh = cli.run("keys", "codec-rotate").stdout.strip()
    after = cli.json("keys", "codec-list")
    assert [k["kid"] for k in after if k["encrypts"]] == [fresh]
    assert {k["kid"] for k in before} < {k["kid"] for k in after}
    assert CUSTOMER.name in cli.run("order", "show", shipped).stdout
    cli.run(
        "hold", "place", shipped, "--department", "care", "--reason", "customer_request",
        "--message", "We will call you first.",
    )  # fmt: skip
    sealed = [
        p["metadata"].get("encryption-key-id")
        for p in payloads_of(raw_history(cli, f"order-{shipped}"))
    ]
    assert base64.b64encode(fresh.encode()).decode() in sealed
    assert "E2E-NOKEY" not in cli.run("orders", "list").stdout


def test_a_session_ends_at_sign_out_or_when_its_key_is_retired_and_cannot_be_forged(
    cli: Cli, shipped: str
) -> None:
    sealed = json.loads(raw_history(cli, f"order-{shipped}"))["events"][0][
        "workflowExecutionStartedEventAttributes"
    ]["input"]
    headers = {"Origin": ui_origin(cli), "X-Namespace": "default"}
    ring = KeyRing(Path(cli.env["ORDERFLOW_DATA_DIR"]) / "keys")
    staff = Principal.parse("staff:operator")
    with httpx.Client(base_url=web(cli), timeout=10) as browser:
        # A token bound to one workflow, as every token in a history's headers is, opens
        # nothing here: reading it from a history gives no one the codec.
        bound = ring.issue(staff, actor="ana", workflow_id=f"order-{shipped}")
        refused = browser.post(
            "/codec/decode", json=sealed, headers={"Authorization": f"Bearer {bound}"}
        )
        assert refused.status_code == 401 and "bound to one order or workflow" in refused.text
        assert browser.post("/signin", data={"token": bound}).status_code == 401
        # Another site's page cannot sign a browser in.
        for hostile in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            login = browser.post(
                "/signin", data={"token": ring.issue(staff, actor="ana")}, headers=hostile
            )
            assert login.status_code == 403
        assert "orderflow_session" not in browser.cookies

        browser.post("/signin", data={"token": ring.issue(staff, actor="ana")})
        assert browser.post("/codec/decode", json=sealed, headers=headers).status_code == 200
        cookie = browser.cookies["orderflow_session"]
        body, mac = cookie.rsplit(".", 1)
        forged = httpx.post(
            f"{web(cli)}/codec/decode",
            json=sealed,
            headers=headers,
            cookies={"orderflow_session": f"{body}.{mac[:-2]}AA"},
        )
        assert forged.status_code == 401 and "not valid" in forged.json()["detail"]
        browser.post("/signout")
        assert browser.post("/codec/decode", json=sealed, headers=headers).status_code == 401

        # A session opened with a key that is then retired ends with it.
        browser.post("/signin", data={"token": ring.issue(staff, actor="ana")})
        assert browser.post("/codec/decode", json=sealed, headers=headers).status_code == 200
        old = [k["kid"] for k in ring.listed() if k["principal"] == str(staff)]
        ring.add(staff)
        for kid in old:
            ring.retire(kid)
        assert browser.post("/codec/decode", json=sealed, headers=headers).status_code == 401
