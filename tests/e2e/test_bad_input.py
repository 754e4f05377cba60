"""Bad input through the CLI, as a department system might send it: every refusal is one
``error:`` line on stderr, exit code 2 and nothing on stdout; the order it targets looks exactly
the same before and after; and no workflow task or workflow fails because of it.

The orders the table aims at are set up once per module and left in a stable state:

- ``booked``: delivery booked, waiting for the carrier; billing hold H1 active, billing hold H2
  released; promise P1 (the engine's delivery window) open, P2 (care) kept, P3 (care) open.
- ``transit``: picked up by the carrier.
- ``done``: delivered and completed.

A case the engine does not refuse correctly stays in the table, marked ``xfail(strict=True)``
with the reason, until the engine is fixed.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orderflow.config import PROJECT_ROOT
from orderflow.devserver import temporal_binary
from tests.e2e.conftest import Cli

TAG = uuid.uuid4().hex[:6].upper()
LONG_REF = "R" * 201
LONG_TEXT = "x" * 2001
LONG_ID = "A" * 65
NO_SUCH = f"NO-{TAG}"
PLACE = "order place --customer C-1003"
PL = f"{PLACE} --sku PHONE-A5 --location warehouse-north"
HOLD = "hold place {order} --department billing --reason arrears"
PROMISE = "promise make {order} --kind callback --department care"
STOCK = "--location warehouse-north --sku PHONE-A5"
# The scan, attempt and delivery windows of the orders placed here.
WINDOW = "2030-01-01T09:00Z/2030-01-01T13:00Z"


@dataclass(frozen=True)
class Case:
    command: str  # as typed in a shell; {order} is the target order's id
    says: str  # a piece of the one error line
    target: str | None = None  # booked | transit | done
    seeds: str | None = None  # name of a corruption applied to a copy of seeds/
    env: dict[str, str] = field(default_factory=dict)

    def args(self, order_id: str | None) -> list[str]:
        return [a.replace("{order}", order_id or "") for a in shlex.split(self.command)]


def case(
    command: str,
    says: str,
    target: str | None = None,
    *,
    id: str,
    seeds: str | None = None,
    env: dict[str, str] | None = None,
    xfail: str | None = None,
) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(Case(command, says, target, seeds, env or {}), id=id, marks=marks)


B, T, D = "booked", "transit", "done"

CASES = [
    # -- malformed ids ----------------------------------------------------------------------
    case(f"{PL} --order-id 'bad id!'", "not a valid id", id="order-id-space-and-bang"),
    case(f"{PL} --order-id {LONG_ID}", "not a valid id", id="order-id-65-chars"),
    case(f"{PL} --order-id -lead", "not a valid id", id="order-id-leading-dash"),
    case("order show ../etc/passwd", "no order", id="show-path-like-id"),
    case(f"order timeline {NO_SUCH}", "no order", id="timeline-unknown-order"),
    case("carrier event 'bad id!' picked-up", "no order", id="event-malformed-order-id"),
    case(
        "hold release {order} H9 --department billing --resolution ok",
        "has no hold 'H9'",
        B,
        id="release-unknown-hold",
    ),
    case(
        "hold dispute {order} h1 --message 'I paid'",
        "has no hold 'h1'",
        B,
        id="dispute-hold-id-wrong-case",
    ),
    # -- departments and reason codes ------------------------------------------------------
    case(
        "hold place {order} --department marketing --reason arrears --message m",
        "unknown department 'marketing'",
        B,
        id="hold-unknown-department",
    ),
    case(
        "hold place {order} --department billing --reason late_fee --message m",
        "not one of billing's reason codes",
        B,
        id="hold-unknown-reason-code",
    ),
    case(
        "hold place {order} --department care --reason arrears --message m",
        "not one of care's reason codes",
        B,
        id="hold-reason-of-another-department",
    ),
    case(
        "hold release {order} H1 --department care --resolution done",
        "only billing or its supervisor",
        B,
        id="release-by-wrong-department",
    ),
    # Who acts is what the credential proves (--as signs with that principal's key).
    case(
        "--as care hold place {order} --department billing --reason arrears --message m",
        "the hold says billing, but the credential is care's",
        B,
        id="as-care-naming-billing",
    ),
    case(
        "--as care hold release {order} H1 --department billing --resolution done",
        "the command says billing, but the credential is care's",
        B,
        id="as-care-releasing-billings-hold",
    ),
    case(
        "--as customer:C-1001 hold dispute {order} H1 --message 'I paid'",
        "only the order's customer (customer:C-1003) may dispute a hold, not customer:C-1001",
        B,
        id="as-another-customer-disputing",
    ),
    case(
        "--as carrier:ups carrier event {order} picked-up",
        "booked with dhl; only carrier:dhl reports on it, not carrier:ups",
        B,
        id="as-another-carrier",
    ),
    case(
        "--as billing order cancel {order} --by customer --reason 'changed my mind'",
        "only the order's customer (customer:C-1003) or an order desk may cancel it, not billing",
        B,
        id="as-billing-cancelling-for-the-customer",
    ),
    case(
        f"--as care stock receive {STOCK} --qty 5 --ref DN-1",
        "only stock, supervisor:stock or store:warehouse-north may receive stock, not care",
        id="as-care-receiving-stock",
    ),
    case(
        "--as nobody-here hold place {order} --department billing --reason arrears --message m",
        "no credential for nobody-here",
        B,
        id="as-a-principal-without-a-key",
    ),
    case(
        "hold uphold {order} H1 --department stock --message 'pay first'",
        "only billing or its supervisor",
        B,
        id="uphold-by-wrong-department",
    ),
    case("orders list --blocked-by marketing", "unknown department", id="list-unknown-department"),
    case(
        "order cancel {order} --by marketing --reason x --message m",
        "unknown department",
        B,
        id="cancel-by-unknown-department",
    ),
    case(
        "promise make {order} --kind callback --due 2h --department marketing --text t",
        "unknown department",
        B,
        id="promise-unknown-department",
    ),
    # -- empty and over-long texts ---------------------------------------------------------
    case(f"{HOLD} --message ''", "must not be empty", B, id="hold-empty-message"),
    case(f"{HOLD} --message '   '", "must not be empty", B, id="hold-blank-message"),
    case(f"{HOLD} --message {LONG_TEXT}", "longer than 2000", B, id="hold-message-too-long"),
    case(f"{HOLD} --message m --ref {LONG_REF}", "longer than 200", B, id="hold-ref-too-long"),
    case(
        "hold release {order} H1 --department billing --resolution ' '",
        "must not be empty",
        B,
        id="release-blank-resolution",
    ),
    case(
        "hold dispute {order} H1 --message ''", "must not be empty", B, id="dispute-empty-message"
    ),
    case(
        "hold uphold {order} H1 --department billing --message ' '",
        "must not be empty",
        B,
        id="uphold-blank-message",
    ),
    case(f"{PROMISE} --due 2h --text '  '", "must not be empty", B, id="promise-blank-text"),
    case(
        "order cancel {order} --by care --reason changed",
        "--message (a department's cancel needs one)",
        B,
        id="department-cancel-without-message",
    ),
    case(
        "order cancel {order} --by customer --reason ' '",
        "must not be empty",
        B,
        id="cancel-blank-reason",
    ),
    case(
        f"order cancel {{order}} --by customer --reason {LONG_REF}",
        "longer than 200",
        B,
        id="cancel-reason-too-long",
    ),
    case(
        "delivery redirect {order} --pickup-point ' '",
        "must not be empty",
        B,
        id="redirect-blank-pickup-point",
    ),
    case(
        f"stock adjust {STOCK} --count 3 --reason ''",
        "--reason must not be empty",
        id="stock-adjust-empty-reason",
    ),
    # -- amounts and quantities ------------------------------------------------------------
    case(f"{HOLD} --message m --amount -5", "must not be negative", B, id="hold-negative-amount"),
    case(f"{HOLD} --message m --amount 12,50", "is not a number", B, id="hold-amount-comma"),
    case(
        f"{HOLD} --message m --amount NaN",
        "amount must be a number",
        B,
        id="hold-amount-nan",
    ),
    case(
        f"{HOLD} --message m --amount 0.001",
        "more than two decimal places",
        B,
        id="hold-amount-three-decimals",
    ),
    case(
        f"{HOLD} --message m --amount 1e20",
        "amount is larger than",
        B,
        id="hold-amount-too-large",
    ),
    case(f"{PL} --qty 0", "at least 1", id="qty-zero"),
    case(f"{PL} --qty -1", "at least 1", id="qty-negative"),
    case(f"{PL} --qty 1001", "less than or equal to 1000", id="qty-too-large"),
    case(f"{PL} --qty two", "--qty", id="qty-not-an-integer"),
    case(f"stock receive {STOCK} --qty -3", "at least 1", id="stock-receive-negative"),
    case(f"stock receive {STOCK} --qty 0", "at least 1", id="stock-receive-zero"),
    case(
        f"stock adjust {STOCK} --count -1 --reason count",
        "cannot be negative",
        id="stock-adjust-negative-count",
    ),
    # -- unknown references ----------------------------------------------------------------
    case(f"{PLACE} --sku PHONE-Z9 --location warehouse-north", "unknown SKU", id="unknown-sku"),
    case(f"{PLACE} --sku PHONE-A5 --location moon-base", "unknown location", id="unknown-location"),
    case(
        "order place --customer C-9999 --sku PHONE-A5 --location warehouse-north",
        "unknown customer",
        id="unknown-customer",
    ),
    case(f"{PL} --carrier fedex", "unknown carrier", id="unknown-carrier"),
    case(f"{PL} --carrier ups --pickup", "exclude each other", id="pickup-with-carrier"),
    case(f"{PLACE} --sku PHONE-A5", "--location is required", id="no-location"),
    # -- order lines ------------------------------------------------------------------------
    case(
        "order cancel {order} --by customer --reason x --line 9",
        "has 1 line; there is no line 9",
        B,
        id="cancel-line-that-is-not-there",
    ),
    case(
        "hold place {order} --department billing --reason arrears --message m --line 9",
        "has 1 line; there is no line 9",
        B,
        id="hold-on-a-line-that-is-not-there",
    ),
    case(
        "order cancel {order} --by customer --reason x --line 1",
        "--line: the order's line 1 has left the store",
        B,
        id="cancel-line-that-left",
    ),
    case(
        f"{PLACE} --line PHONE-A5 --line PHONE-Z9:2 --location warehouse-north",
        "line 2: unknown SKU 'PHONE-Z9'",
        id="line-unknown-sku",
    ),
    case(
        f"{PLACE} --line PHONE-A5:0 --location warehouse-north",
        "quantity must be at least 1",
        id="line-qty-zero",
    ),
    case(
        f"{PLACE} --line PHONE-A5:two --location warehouse-north",
        "--line 1: the quantity in 'PHONE-A5:two' is not a whole number",
        id="line-qty-not-a-number",
    ),
    case(
        f"{PLACE} --line PHONE-A5: --location warehouse-north",
        "not SKU or SKU:QTY",
        id="line-no-qty",
    ),
    case(f"{PLACE} --line :3 --location warehouse-north", "not SKU or SKU:QTY", id="line-no-sku"),
    case(
        f"{PLACE} --line PHONE-A5 --line CASE-X12 --ship sometimes --location warehouse-north",
        "--ship: 'sometimes' is not a shipping policy; use available",
        id="ship-policy-unknown",
    ),
    case(
        f"{PLACE} "
        + " ".join(f"--line CASE-X12:{n}" for n in range(1, 52))
        + " --location warehouse-north",
        "at most 50 lines (got 51)",
        id="line-51-lines",
    ),
    case(
        f"{PLACE} --sku PHONE-A5 --line CASE-X12 --location warehouse-north",
        "not both",
        id="line-and-sku",
    ),
    case(
        f"{PLACE} --location warehouse-north",
        "--line SKU[:QTY] (or --sku) is required",
        id="line-none",
    ),
    case("stock show --location moon-base", "unknown location", id="stock-unknown-location"),
    case(
        "stock receive --location warehouse-north --sku NOPE --qty 1",
        "unknown SKU",
        id="stock-receive-unknown-sku",
    ),
    case(
        "order pickup {order} --location moon-base",
        "unknown location",
        B,
        id="pickup-unknown-location",
    ),
    case("promise keep {order} P9", "has no promise 'P9'", B, id="keep-unknown-promise"),
    case(
        "promise make {order} --kind horoscope --due 2h --department care --text t",
        "unknown promise kind",
        B,
        id="promise-unknown-kind",
    ),
    # -- times and durations ---------------------------------------------------------------
    case(
        f"{PROMISE} --due yesterday --text 'call back'",
        "is not a time",
        B,
        id="promise-due-yesterday",
    ),
    case(
        f"{PROMISE} --due 2020-01-01T09:00Z --text 'call back'",
        "is in the past",
        B,
        id="promise-due-in-the-past",
    ),
    case(
        f"{PROMISE} --due 0s --text 'call back'",
        "greater than zero",
        B,
        id="promise-due-zero-duration",
    ),
    case(
        f"{PROMISE} --due 999999999w --text 'call back'",
        "is too long",
        B,
        id="promise-due-overflow",
    ),
    case("orders list --older-than 5", "not a duration", id="older-than-no-unit"),
    case("orders list --older-than -1h", "not a duration", id="older-than-negative"),
    case(
        "orders list --older-than 999999999w",
        "is too long",
        id="older-than-overflow",
    ),
    case(
        "delivery reschedule {order} --window tomorrow",
        "START/END",
        B,
        id="reschedule-window-without-slash",
    ),
    case(
        "delivery reschedule {order} --window 2030-01-02T10:00Z/2030-01-01T10:00Z",
        "must end after it starts",
        B,
        id="reschedule-window-backwards",
    ),
    case(
        "delivery reschedule {order} --window 2020-01-01T09:00Z/2020-01-01T13:00Z",
        "in the past",
        B,
        id="reschedule-window-in-the-past",
    ),
    # -- wrong state -----------------------------------------------------------------------
    case(
        "hold release {order} H2 --department billing --resolution again",
        "already released",
        B,
        id="release-hold-twice",
    ),
    case(
        "hold dispute {order} H2 --message 'I paid'",
        "already released",
        B,
        id="dispute-released-hold",
    ),
    case("promise keep {order} P2", "already kept", B, id="keep-promise-twice"),
    case(
        "order pickup {order} --location warehouse-north",
        "home delivery",
        B,
        id="pickup-of-a-delivery-order",
    ),
    # -- carrier events --------------------------------------------------------------------
    case("carrier event {order} delivered", "picked up first", B, id="delivered-before-pickup"),
    case(
        "carrier event {order} scan --evidence location=Hub",
        "out of order",
        B,
        id="scan-before-pickup",
    ),
    case("carrier event {order} lost", "out of order", B, id="lost-before-pickup"),
    case("carrier event {order} teleported", "unknown event", B, id="unknown-carrier-event"),
    case(
        f"carrier event {{order}} picked-up --event-id PU-{TAG}",
        "out of order",
        T,
        id="second-pickup-new-event-id",
    ),
    case("carrier event {order} scan", "needs the location", T, id="scan-without-location"),
    case(
        "carrier event {order} scan --evidence 'location= '",
        "needs the location",
        T,
        id="scan-blank-location",
    ),
    case(
        "carrier event {order} attempted --evidence photo",
        "KEY=VALUE",
        T,
        id="evidence-without-equals",
    ),
    case(
        "carrier event {order} attempted --evidence =IMG_1.jpg",
        "KEY=VALUE",
        T,
        id="evidence-without-key",
    ),
    case(
        "carrier event {order} delivered --delivery 7",
        "no delivery 7",
        T,
        id="event-unknown-delivery-number",
    ),
    case(
        f"carrier event {{order}} picked-up --event-id P0-{TAG} --delivery 0",
        "--delivery must be 1 or more",
        T,
        id="event-delivery-zero",
    ),
    case(
        "carrier event {order} attempted --evidence photo=IMG_1.jpg --evidence photo=IMG_2.jpg "
        "--evidence gps=40.6782,-73.9442",
        "is given twice",
        T,
        id="evidence-duplicate-key",
    ),
    # -- finished orders -------------------------------------------------------------------
    case(
        f"carrier event {{order}} delivered --event-id D2-{TAG}",
        "already delivered",
        D,
        id="event-for-delivered-order",
    ),
    case(
        "carrier event {order} scan --evidence location=Hub",
        "already delivered",
        D,
        id="scan-for-delivered-order",
    ),
    case(f"{HOLD} --message 'late hold'", "completed", D, id="hold-on-completed-order"),
    case(f"{PROMISE} --due 2h --text t", "completed", D, id="promise-on-completed-order"),
    case("promise keep {order} P1", "completed", D, id="keep-on-completed-order"),
    case(
        "order cancel {order} --by customer --reason 'changed my mind'",
        "completed",
        D,
        id="cancel-completed-order",
    ),
    case(
        f"delivery reschedule {{order}} --window {WINDOW}",
        "already delivered",
        D,
        id="reschedule-delivered",
    ),
    # -- usage errors ----------------------------------------------------------------------
    case(
        "hold place {order} --reason arrears --message m",
        "Missing option",
        B,
        id="hold-missing-department",
    ),
    case(
        "hold release {order} --department billing --resolution x",
        "Missing argument",
        B,
        id="release-missing-hold-id",
    ),
    # -- seeds and settings ----------------------------------------------------------------
    case("catalog", "is not valid TOML", seeds="garbage-catalog", id="seeds-garbage-toml"),
    case("catalog", "departments.toml", seeds="bad-hold-sla", id="seeds-bad-hold-sla"),
    case("catalog", "customers.toml", seeds="bad-customer-id", id="seeds-bad-customer-id"),
    case("catalog", "catalog.toml", seeds="negative-price", id="seeds-negative-price"),
    case(
        "catalog",
        "'[[carrier]]' entries expected",
        seeds="carrier-not-a-table",
        id="seeds-carrier-not-a-table",
    ),
    case("catalog", "is missing", seeds="missing-file", id="seeds-missing-file"),
    case(PL, "is not valid TOML", seeds="garbage-catalog", id="place-with-garbage-seeds"),
    case(
        "catalog",
        "bad ORDERFLOW_* setting",
        env={"ORDERFLOW_TIME_SCALE": "0"},
        id="setting-time-scale-zero",
    ),
]


# ============================================================================ seeds


def _corrupt(seeds: Path, kind: str) -> None:
    def edit(name: str, change: Callable[[str], str]) -> None:
        path = seeds / name
        path.write_text(change(path.read_text(encoding="utf-8")), encoding="utf-8")

    if kind == "garbage-catalog":
        edit("catalog.toml", lambda t: t + '\n[[sku]\nsku = "BROKEN\nprice = = 3\n{"json": true}\n')
    elif kind == "bad-hold-sla":
        edit("departments.toml", lambda t: t.replace('hold_sla = "24h"', 'hold_sla = "forever"', 1))
    elif kind == "bad-customer-id":
        edit("customers.toml", lambda t: t.replace('"C-1001"', '"C 1001!"', 1))
    elif kind == "negative-price":
        edit("catalog.toml", lambda t: t.replace("price = 699.00", "price = -699.00", 1))
    elif kind == "carrier-not-a-table":
        (seeds / "carriers.toml").write_text('carrier = "ups"\n', encoding="utf-8")
    elif kind == "missing-file":
        (seeds / "departments.toml").unlink()
    else:  # pragma: no cover
        raise ValueError(kind)


# ============================================================================ orders


def temporal(cli: Cli, *args: str) -> Any:
    """The ``temporal`` CLI against the e2e server, JSON out."""
    proc = subprocess.run(
        [temporal_binary(), *args, "--address", cli.env["TEMPORAL_ADDRESS"], "--output", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout or "null")


def failed_tasks(cli: Cli, workflow_id: str) -> int:
    """Workflow tasks that failed in a workflow's history (bad input must never cause one)."""
    events = temporal(cli, "workflow", "show", "--workflow-id", workflow_id)["events"]
    return sum(1 for e in events if e["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_FAILED")


def show(cli: Cli, order_id: str) -> dict[str, Any]:
    proc = cli.call("order", "show", order_id, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


class Orders:
    """Places the orders the cases aim at and brings each to a stable state.

    ``before`` is the order's view as the previous case left it: the first one is taken once
    the order is stable, and every case asserts that its "after" equals it, so each case's
    before and after are compared without a second ``order show`` per case.
    """

    def __init__(self, cli: Cli) -> None:
        self.cli = cli
        self.ids: dict[str, str] = {}
        self.before: dict[str, dict[str, Any]] = {}
        self.n = 0

    def run(self, command: str) -> None:
        self.cli.run(*shlex.split(command))

    def place(self, kind: str) -> str:
        self.n += 1
        order_id = f"BAD-{kind}-{TAG}-{self.n}"
        self.run(
            "order place --customer C-1003 --sku CASE-X12 --location warehouse-north "
            f"--carrier dhl --order-id {order_id}"
        )
        self.cli.until(
            ("order", "show", order_id),
            lambda v: bool(v["deliveries"]) and v["deliveries"][0]["status"] == "booked",
        )
        return order_id

    def pick_up(self, order_id: str) -> None:
        self.run(f"carrier event {order_id} picked-up")
        self.cli.until(("order", "show", order_id), lambda v: v["status"] == "in_transit")

    def booked(self) -> str:
        o = self.place("BOOKED")
        self.run(
            f"hold place {o} --department billing --reason arrears --ref INV-1 --amount 12 "
            "--message 'Your account shows 12.00 unpaid.'"
        )
        self.run(
            f"hold place {o} --department billing --reason fraud_check --ref CHK-2 "
            "--message 'A routine check.'"
        )
        self.run(f"hold release {o} H2 --department billing --resolution Checked.")
        self.run(f"{PROMISE.format(order=o)} --due 2h --text 'call you back'")
        self.run(f"promise keep {o} P2 --note called")
        self.run(f"{PROMISE.format(order=o)} --due 3h --text 'call you back again'")
        view = self.cli.until(
            ("order", "show", o),
            lambda v: (
                [h["status"] for h in v["holds"]] == ["active", "released"]
                and [p["status"] for p in v["promises"]] == ["open", "kept", "open"]
            ),
        )
        assert view["blocked_by"] == ["billing"] and view["status"] == "shipping"
        return o

    def transit(self) -> str:
        o = self.place("TRANSIT")
        self.pick_up(o)
        return o

    def done(self) -> str:
        o = self.place("DONE")
        self.pick_up(o)
        self.run(f"carrier event {o} delivered")
        self.cli.until(("order", "show", o), lambda v: v["status"] == "completed", timeout=60)
        return o

    def get(self, target: str) -> tuple[str, dict[str, Any]]:
        """The order a case aims at, and its view before the case."""
        if target not in self.ids:
            self.ids[target] = getattr(self, target)()
            self.before[target] = show(self.cli, self.ids[target])
        return self.ids[target], self.before[target]


@pytest.fixture(scope="module")
def orders(cli: Cli) -> Iterator[Orders]:
    made = Orders(cli)
    for target in (B, T, D):
        made.get(target)
    yield made
    # After the whole table: no workflow failed on the server, no workflow task failed in the
    # stable orders or their deliveries, and each is still where the table found it.
    failed = temporal(cli, "workflow", "list", "--query", "ExecutionStatus='Failed'")
    assert not failed, f"failed workflows: {[w['execution']['workflowId'] for w in failed]}"
    for target, order_id in made.ids.items():
        assert failed_tasks(cli, f"order-{order_id}") == 0, target
        assert failed_tasks(cli, f"delivery-{order_id}-1") == 0, target
        assert show(cli, order_id) == made.before[target], target
    final = {t: show(cli, o)["status"] for t, o in made.ids.items()}
    assert final == {B: "shipping", T: "in_transit", D: "completed"}


@pytest.fixture
def seeds_copy(tmp_path: Path) -> Callable[[str], Path]:
    def make(kind: str) -> Path:
        target = tmp_path / "seeds"
        shutil.copytree(PROJECT_ROOT / "seeds", target)
        _corrupt(target, kind)
        return target

    return make


# ============================================================================ the table


@pytest.mark.parametrize("bad", CASES)
def test_bad_input_is_refused_and_changes_nothing(
    cli: Cli, orders: Orders, seeds_copy: Callable[[str], Path], bad: Case
) -> None:
    order_id, before = orders.get(bad.target) if bad.target else (None, None)
    env = {**cli.env, **bad.env}
    if bad.seeds:
        env["ORDERFLOW_SEEDS_DIR"] = str(seeds_copy(bad.seeds))

    proc = Cli(env).call(*bad.args(order_id))

    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, f"exit {proc.returncode}: {proc.stderr.strip()}"
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert bad.says in lines[0], lines[0]
    assert proc.stdout == ""
    if order_id:
        assert show(cli, order_id) == before
        assert failed_tasks(cli, f"order-{order_id}") == 0


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 30
    assert len({p.id for p in CASES}) == len(CASES)
