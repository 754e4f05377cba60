"""The CLI as a department system uses it, against `orderflow dev` started as a user would:
a real dev server with its SQLite file, the SMTP sink and the worker, all in one process tree."""

from __future__ import annotations

import json
import stat
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orderflow.devserver import free_port, temporal_binary
from orderflow.identity import KeyRing, Principal
from tests.e2e.conftest import BIN, Cli


def test_an_order_from_placement_to_delivery_through_the_cli(cli: Cli) -> None:
    placed = cli.run(
        "order",
        "place",
        "--customer",
        "C-1002",
        "--sku",
        "PHONE-A5",
        "--location",
        "warehouse-north",
        "--carrier",
        "dhl",
        "--order-id",
        "E2E-1",
    )
    assert placed.stdout.strip() == "E2E-1"
    again = cli.json(
        "order",
        "place",
        "--customer",
        "C-1002",
        "--sku",
        "PHONE-A5",
        "--location",
        "warehouse-north",
        "--carrier",
        "dhl",
        "--order-id",
        "E2E-1",
    )
    assert again["order_id"] == "E2E-1" and again["created"] is False

    view = cli.until(
        ("order", "show", "E2E-1"),
        lambda v: v["deliveries"] and v["deliveries"][0]["status"] == "booked",
    )
    [line] = view["lines"]
    assert {k: line[k] for k in ("line", "sku", "name", "qty", "unit_price")} == {
        "line": 1,
        "sku": "PHONE-A5",
        "name": "A5 smartphone, 64 GB",
        "qty": 1,
        "unit_price": 349.0,
    }
    assert view["totals"]["ordered"] == view["total"] == 349.0
    assert view["deliveries"][0]["carrier"] == "dhl"

    early = cli.run("carrier", "event", "E2E-1", "delivered", check=False)
    assert (
        early.returncode == 2
        and early.stderr.startswith("error:")
        and "picked up first" in early.stderr
    )
    assert len(early.stderr.strip().splitlines()) == 1

    hold_id = cli.run(
        "hold",
        "place",
        "E2E-1",
        "--department",
        "billing",
        "--reason",
        "arrears",
        "--message",
        "Your fibre account shows 50.00 unpaid.",
        "--ref",
        "INV-1",
        "--amount",
        "50",
        "--actor",
        "ana",
    ).stdout.strip()
    assert hold_id == "H1"
    blocked = cli.until(
        ("orders", "list", "--blocked-by", "billing"),
        lambda rows: any(r["order_id"] == "E2E-1" for r in rows),
    )
    assert blocked[0]["blocked_by"] == ["billing"]
    wrong = cli.run(
        "hold", "release", "E2E-1", "H1", "--department", "care", "--resolution", "x", check=False
    )
    assert wrong.returncode == 2 and "only billing or its supervisor" in wrong.stderr
    cli.run("hold", "release", "E2E-1", "H1", "--department", "billing", "--resolution", "Paid.")

    cli.run("carrier", "event", "E2E-1", "picked-up")
    cli.run("carrier", "event", "E2E-1", "scan", "--evidence", "location=Hub North")
    cli.run("carrier", "event", "E2E-1", "delivered")
    done = cli.until(("order", "show", "E2E-1"), lambda v: v["status"] == "completed")
    assert done["charged"] == done["total"] == 349.0
    assert [h["status"] for h in done["holds"]] == ["released"]

    timeline = cli.json("order", "timeline", "E2E-1")
    kinds = [e["kind"] for e in timeline]
    assert kinds[0] == "placed" and "hold_placed" in kinds and kinds[-1] == "completed"
    assert set(timeline[0]) == {"at", "kind", "text", "principal", "actor", "kid"}
    # Each entry says who did it, as their token proved: the desk placed it, billing held it.
    by = {e["kind"]: e["principal"] for e in timeline if e["principal"]}
    assert by["placed"] == "desk:web" and by["hold_placed"] == "billing"
    assert done["placed_by"] == "desk:web"

    mail = cli.until(
        ("inbox", "--to", "sam.okafor@example.com"),
        lambda m: any("complete" in x["subject"] for x in m),
    )
    subjects = [m["subject"] for m in mail]
    assert "Order E2E-1 is on hold by Billing" in subjects
    assert set(mail[0]) == {"to", "subject", "body", "message_id", "date"}


def test_an_order_of_several_lines_ships_what_is_in_stock_and_the_rest_when_it_arrives(
    cli: Cli,
) -> None:
    """A phone, a case, a router out of stock and a laptop out of stock: the phone and the case
    leave at once; the laptop's line is cancelled while it waits (its part voided, never
    captured); the router follows in a second delivery when stock comes in."""
    for sku in ("ROUTER-F1", "LAPTOP-P14"):
        cli.run(
            "stock", "adjust", "--location", "warehouse-north", "--sku", sku,
            "--count", "0", "--reason", "count found none",
        )  # fmt: skip
    cli.run(
        "order", "place", "--customer", "C-1002", "--location", "warehouse-north",
        "--line", "PHONE-A5", "--line", "CASE-X12:2", "--line", "ROUTER-F1",
        "--line", "LAPTOP-P14", "--order-id", "E2E-LINES",
    )  # fmt: skip
    first = cli.until(
        ("order", "show", "E2E-LINES"),
        lambda v: bool(v["deliveries"]) and v["deliveries"][0]["status"] == "booked",
    )
    assert first["ship"] == "available" and first["deliveries"][0]["lines"] == [1, 2]
    assert [line["status"] for line in first["lines"][2:]] == ["waitlisted", "waitlisted"]
    laptop = first["lines"][3]["unit_price"]
    cancelled = cli.run(
        "order", "cancel", "E2E-LINES", "--line", "4", "--by", "customer",
        "--reason", "bought elsewhere",
    )  # fmt: skip
    assert cancelled.stdout.strip() == (
        f"E2E-LINES line 4 cancelled: line 4: stock reservation released; line 4: "
        f"{laptop:.2f} voided"
    )
    gone = cli.run(
        "order", "cancel", "E2E-LINES", "--line", "1", "--by", "customer", "--reason", "x",
        check=False,
    )  # fmt: skip
    assert gone.returncode == 2 and gone.stderr.startswith("error: --line: the order's line 1")
    for event in ("picked-up", "delivered"):
        cli.run("carrier", "event", "E2E-LINES", event)
    cli.until(("order", "show", "E2E-LINES"), lambda v: v["status"] == "partly_delivered")

    cli.run(
        "stock", "receive", "--location", "warehouse-north", "--sku", "ROUTER-F1",
        "--qty", "5", "--ref", "DN-E2E-LINES",
    )  # fmt: skip
    second = cli.until(
        ("order", "show", "E2E-LINES"),
        lambda v: len(v["deliveries"]) == 2 and v["deliveries"][1]["status"] == "booked",
    )
    assert second["deliveries"][1]["lines"] == [3]
    for event in ("picked-up", "delivered"):
        cli.run("carrier", "event", "E2E-LINES", event)
    done = cli.until(("order", "show", "E2E-LINES"), lambda v: v["status"] == "completed")
    delivered = sum(line["unit_price"] * line["qty"] for line in done["lines"][:3])
    assert done["charged"] == done["totals"]["captured"] == delivered
    assert done["totals"]["voided"] == laptop
    assert [line["status"] for line in done["lines"]] == ["delivered"] * 3 + ["cancelled"]
    shown = cli.run("order", "show", "E2E-LINES").stdout
    assert "delivery 2 (line 3)" in shown and "ships available" in shown


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            (
                "order",
                "place",
                "--customer",
                "C-1002",
                "--sku",
                "NOPE",
                "--location",
                "warehouse-north",
            ),
            "unknown SKU",
        ),
        (
            (
                "order",
                "place",
                "--customer",
                "C-9",
                "--sku",
                "PHONE-A5",
                "--location",
                "warehouse-north",
            ),
            "unknown customer",
        ),
        (
            ("order", "place", "--customer", "C-1002", "--sku", "PHONE-A5", "--location", "mars"),
            "unknown location",
        ),
        (
            (
                "order",
                "place",
                "--customer",
                "C-1002",
                "--sku",
                "PHONE-A5",
                "--location",
                "warehouse-north",
                "--qty",
                "0",
            ),
            "at least 1",
        ),
        (
            (
                "order",
                "place",
                "--customer",
                "C-1002",
                "--sku",
                "PHONE-A5",
                "--location",
                "warehouse-north",
                "--order-id",
                "bad id!",
            ),
            "not a valid id",
        ),
        (("carrier", "event", "NO-SUCH-ORDER", "picked-up"), "no order 'NO-SUCH-ORDER'"),
        (("order", "show", "NO-SUCH-ORDER"), "no order"),
        (
            (
                "hold",
                "place",
                "NO-SUCH-ORDER",
                "--department",
                "billing",
                "--reason",
                "arrears",
                "--message",
                "m",
            ),
            "no order",
        ),
        (("order", "place", "--customer", "C-1002"), "--line SKU[:QTY] (or --sku) is required"),
        (("orders", "list", "--older-than", "yesterday"), "not a duration"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(cli: Cli, args: tuple[str, ...], says: str) -> None:
    proc = cli.run(*args, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and says in lines[0]
    assert proc.stdout == ""


def test_server_down_is_one_line_naming_the_address_and_exit_3(cli: Cli) -> None:
    dead = free_port()
    env = {**cli.env, "TEMPORAL_ADDRESS": f"localhost:{dead}", "ORDERFLOW_CONNECT_WAIT": "1.5"}
    started = time.monotonic()
    proc = subprocess.run(
        [str(BIN), "order", "show", "X-1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert f"localhost:{dead}" in proc.stderr and "Traceback" not in proc.stderr
    # It kept trying for the time it says before giving up.
    assert "(tried for 1.5 s)" in proc.stderr and time.monotonic() - started >= 1.5


def test_a_server_that_comes_up_while_the_command_waits_is_reached(cli: Cli) -> None:
    """A busy or restarting server is not "unreachable": the command keeps trying for
    ORDERFLOW_CONNECT_WAIT seconds (10 by default) before it says so."""
    port = free_port()
    env = {**cli.env, "TEMPORAL_ADDRESS": f"localhost:{port}", "ORDERFLOW_CONNECT_WAIT": "30"}
    command = subprocess.Popen(
        [str(BIN), "order", "show", "X-LATE"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    server = subprocess.Popen(
        [str(temporal_binary()), "server", "start-dev", "--headless", "--port", str(port),
         "--ui-port", str(free_port())],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _, err = command.communicate(timeout=60)
    finally:
        server.terminate()
        server.wait(timeout=30)
    # It reached the server: the answer is the order's, not "cannot reach".
    assert command.returncode == 2, err
    assert "no order 'X-LATE'" in err


def test_an_order_terminated_outside_the_engine_is_explained_within_a_minute(cli: Cli) -> None:
    cli.run(
        "order",
        "place",
        "--customer",
        "C-1003",
        "--sku",
        "ROUTER-F1",
        "--location",
        "store-downtown",
        "--pickup",
        "--order-id",
        "E2E-TERM",
    )
    cli.until(("order", "show", "E2E-TERM"), lambda v: v["status"] == "ready_for_pickup")
    address = cli.env["TEMPORAL_ADDRESS"]
    subprocess.run(
        [
            str(temporal_binary()),
            "workflow",
            "terminate",
            "--address",
            address,
            "-w",
            "order-E2E-TERM",
            "--reason",
            "clean-up script run by mistake",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    mail = cli.until(
        ("inbox", "--to", "priya.raman@example.com"),
        lambda m: any("E2E-TERM has been stopped" in x["subject"] for x in m),
        timeout=60,
    )
    stopped = next(m for m in mail if "has been stopped" in m["subject"])
    assert "voided the payment authorization of 89.00" in stopped["body"]
    stock = cli.json("stock", "show", "--location", "store-downtown", "--sku", "ROUTER-F1")
    assert "E2E-TERM" not in json.dumps(stock)


def test_the_stacks_state_is_readable_by_its_owner_only(cli: Cli) -> None:
    cli.run(
        "order", "place", "--customer", "C-1004", "--sku", "CASE-X12", "--location", "store-mall"
    )
    data = Path(cli.env["ORDERFLOW_DATA_DIR"])
    cli.until(("inbox", "--to", "tom.becker@example.com"), lambda m: bool(m))
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for name in ("ledger.sqlite3", "sent.sqlite3", "carrier.sqlite3"):
        assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name
    maildir = data / "maildir"
    assert stat.S_IMODE(maildir.stat().st_mode) == 0o700
    assert {stat.S_IMODE(f.stat().st_mode) for f in (maildir / "new").iterdir()} == {0o600}


def test_order_show_links_the_ui_of_the_stack_it_talks_to(cli: Cli) -> None:
    cli.run(
        "order",
        "place",
        "--customer",
        "C-1002",
        "--sku",
        "CASE-X12",
        "--location",
        "store-mall",
        "--order-id",
        "E2E-LINK",
    )
    shown = cli.run("order", "show", "E2E-LINK").stdout
    assert f"http://localhost:{cli.ui_port}/namespaces/default/workflows/order-E2E-LINK" in shown


def temporal(cli: Cli, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``temporal`` CLI against the stack: what a system in another language does."""
    return subprocess.run(
        [str(temporal_binary()), *args, "--address", cli.env["TEMPORAL_ADDRESS"]],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_system_in_another_language_places_an_order_and_a_hold_from_the_published_schema(
    cli: Cli,
) -> None:
    schemas = cli.json("schema")
    assert set(schemas) == {
        "place_order",
        "place_hold",
        "release_hold",
        "dispute_hold",
        "uphold_hold",
        "cancel",
        "make_promise",
        "keep_promise",
        "pickup",
        "carrier_event",
        "reschedule",
        "redirect",
        "receive",
        "adjust",
    }
    place = schemas["place_order"]
    assert place["workflow"] == "OrderWorkflow" and place["sent_as"] == "workflow start"
    assert set(place["input"]["required"]) == {"order_id", "customer_id", "lines", "location"}
    # No price, customer record, department or policy can be sent: the engine owns them.
    assert not {"customer", "policy", "departments", "carriers"} & set(place["input"]["properties"])
    order = {
        "order_id": "E2E-SCHEMA",
        "customer_id": "C-1001",
        "lines": [{"sku": "PHONE-A5", "qty": 1}],
        "location": "warehouse-north",
    }
    started = temporal(
        cli,
        "workflow",
        "start",
        "--type",
        "OrderWorkflow",
        "--task-queue",
        "orderflow",
        "-w",
        "order-E2E-SCHEMA",
        # The order desk's token: only a principal that places orders may start one.
        "--headers",
        f'orderflow-auth="{cli.run("token", "--as", "desk:web").stdout.strip()}"',
        "--input",
        json.dumps(order),
    )
    assert started.returncode == 0, started.stderr
    # Priced and addressed by the engine's registry.
    shown = cli.until(("order", "show", "E2E-SCHEMA"), lambda v: v["payment"] == "authorized")
    assert shown["total"] == 349 and shown["customer_id"] == "C-1001"

    schema = cli.json("schema", "place_hold")
    assert schema["workflow"] == "OrderWorkflow" and schema["sent_as"] == "update"
    required = set(schema["input"]["required"])
    assert required == {"department", "reason_code", "customer_message"}
    hold = {
        "department": "billing",
        "reason_code": "arrears",
        "actor": "ledger-bot",
        "customer_message": "Your account shows 20.00 unpaid.",
    }
    assert required <= set(hold)
    sent = temporal(
        cli,
        "workflow",
        "update",
        "execute",
        "-w",
        "order-E2E-SCHEMA",
        "--name",
        "place_hold",
        "--headers",
        f'orderflow-auth="{cli.run("token", "--as", "billing").stdout.strip()}"',
        "--input",
        json.dumps(hold),
        "--output",
        "json",
    )
    assert sent.returncode == 0, sent.stderr
    view = cli.json("order", "show", "E2E-SCHEMA")
    assert [h["department"] for h in view["holds"]] == ["billing"]


def test_a_system_in_another_language_signs_its_updates_with_a_token(cli: Cli) -> None:
    """The `temporal` CLI sends `orderflow token`'s token in the orderflow-auth header; the
    worker records who placed the hold, and refuses care's token releasing billing's hold."""
    cli.run(
        "order", "place", "--customer", "C-1001", "--sku", "PHONE-A5",
        "--location", "warehouse-north", "--order-id", "E2E-TOKEN",
    )  # fmt: skip

    def update(name: str, body: dict[str, str], token: str) -> subprocess.CompletedProcess[str]:
        return temporal(
            cli, "workflow", "update", "execute", "-w", "order-E2E-TOKEN", "--name", name,
            "--headers", f'orderflow-auth="{token}"', "--input", json.dumps(body),
        )  # fmt: skip

    billing = cli.run("token", "--as", "billing", "--actor", "ledger-7").stdout.strip()
    hold = {
        "department": "billing",
        "reason_code": "arrears",
        "actor": "ledger-7",
        "customer_message": "Invoice 7 is unpaid.",
    }
    placed = update("place_hold", hold, billing)
    assert placed.returncode == 0, placed.stderr
    view = cli.json("order", "show", "E2E-TOKEN")
    assert [(h["department"], h["principal"]) for h in view["holds"]] == [("billing", "billing")]

    care = cli.run("token", "--as", "care", "--actor", "bo").stdout.strip()
    release = {"hold_id": "H1", "department": "billing", "resolution": "Looks fine."}
    refused = update("release_hold", release, care)
    assert refused.returncode != 0
    assert "the command says billing, but the credential is care's" in refused.stderr
    forged = update("release_hold", release, billing[:-4] + "AAAA")
    assert forged.returncode != 0 and "signature does not match" in forged.stderr
    assert cli.json("order", "show", "E2E-TOKEN")["blocked_by"] == ["billing"]

    # billing's supervisor, with her own key.
    cli.run(
        "--as", "supervisor:billing", "hold", "release", "E2E-TOKEN", "H1",
        "--department", "billing", "--resolution", "Paid at the counter.",
    )  # fmt: skip
    done = cli.json("order", "show", "E2E-TOKEN")
    assert done["blocked_by"] == [] and done["holds"][0]["released_principal"] == (
        "supervisor:billing"
    )


def test_the_temporal_cli_is_refused_without_a_good_token_and_changes_nothing(cli: Cli) -> None:
    """What a system in another language gets wrong about credentials, each refused with the
    reason and nothing recorded: no header, a header that is no token, an expired token, and a
    token of a key retired since; and an order started without a desk's token is rejected."""
    cli.run(
        "order", "place", "--customer", "C-1002", "--sku", "CASE-X12",
        "--location", "warehouse-north", "--order-id", "E2E-NOTOKEN",
    )  # fmt: skip
    hold = {
        "department": "billing",
        "reason_code": "arrears",
        "customer_message": "Invoice 8 is unpaid.",
    }

    def place(*headers: str) -> subprocess.CompletedProcess[str]:
        return temporal(
            cli, "workflow", "update", "execute", "-w", "order-E2E-NOTOKEN",
            "--name", "place_hold", *headers, "--input", json.dumps(hold),
        )  # fmt: skip

    def events() -> int:
        shown = temporal(cli, "workflow", "show", "-w", "order-E2E-NOTOKEN", "--output", "json")
        return len(json.loads(shown.stdout)["events"])

    cli.until(("order", "show", "E2E-NOTOKEN"), lambda v: v["status"] == "shipping")
    time.sleep(1)
    before = events()
    no_header = place()
    assert no_header.returncode != 0
    assert "credential: no token in the orderflow-auth header" in no_header.stderr
    not_a_token = place("--headers", "orderflow-auth=42")
    assert not_a_token.returncode != 0 and "no token" in not_a_token.stderr

    # A token billing's system made an hour ago, with its own key (the dev stack's data dir).
    ring = KeyRing(Path(cli.env["ORDERFLOW_DATA_DIR"]) / "keys")
    stale = ring.issue(
        Principal.parse("billing"), actor="ledger-7", now=datetime.now(UTC) - timedelta(hours=1)
    )
    expired = place("--headers", f'orderflow-auth="{stale}"')
    assert expired.returncode != 0 and "credential: the token expired at" in expired.stderr

    # Rotation: a new key signs, the old one still verifies until it is retired.
    old = cli.run("token", "--as", "billing").stdout.strip()
    kid = cli.run("keys", "add", "--as", "billing").stdout.strip()
    new = cli.run("token", "--as", "billing").stdout.strip()
    old_kid = next(
        k["kid"]
        for k in cli.json("keys", "list")
        if k["principal"] == "billing" and k["kid"] != kid
    )
    cli.run("keys", "retire", old_kid)
    retired = place("--headers", f'orderflow-auth="{old}"')
    assert retired.returncode != 0 and f"key '{old_kid}' is not trusted" in retired.stderr
    assert events() == before, "a refused update reached the order's history"
    taken = place("--headers", f'orderflow-auth="{new}"')
    assert taken.returncode == 0, taken.stderr
    view = cli.json("order", "show", "E2E-NOTOKEN")
    assert [h["principal"] for h in view["holds"]] == ["billing"]

    # A start without a token is recorded, and the order ends at once, rejected.
    order = {
        "order_id": "E2E-NODESK",
        "customer_id": "C-1002",
        "lines": [{"sku": "CASE-X12", "qty": 1}],
        "location": "warehouse-north",
    }
    started = temporal(
        cli, "workflow", "start", "--type", "OrderWorkflow", "--task-queue", "orderflow",
        "-w", "order-E2E-NODESK", "--input", json.dumps(order),
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 30
    while True:
        shown = cli.call("order", "show", "E2E-NODESK")
        if shown.returncode != 0 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert shown.returncode == 2
    assert "order rejected: credential: no token in the orderflow-auth header" in shown.stderr
