"""The CLI's application, its command groups, and what every command shares: settings,
the registry, the acting person, one connection per command, JSON and time output."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console

from domain.base import check_amount
from domain.errors import InvalidInput
from orderflow.auth import default_actor
from orderflow.config import Settings
from orderflow.identity import KeyRing, Principal
from orderflow.registry import Registry
from orderflow.service import Orderflow
from orderflow.temporal import connect

T = TypeVar("T")
EXIT_REFUSED = 2
EXIT_UNREACHABLE = 3

app = typer.Typer(
    help="orderflow: cross-department order workflows. No silent holds; every promise on a clock.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
order_app = typer.Typer(help="Place, show and cancel one order.", no_args_is_help=True)
orders_app = typer.Typer(help="Find orders.", no_args_is_help=True)
hold_app = typer.Typer(
    help="Holds: the only way a department may stop an order.", no_args_is_help=True
)
stock_app = typer.Typer(help="Stock and reservations, per location.", no_args_is_help=True)
carrier_app = typer.Typer(help="Carrier events for a delivery.", no_args_is_help=True)
carriers_app = typer.Typer(help="Carrier records.", no_args_is_help=True)
delivery_app = typer.Typer(help="Customer self-service for a delivery.", no_args_is_help=True)
promise_app = typer.Typer(help="Promises to the customer, each on a clock.", no_args_is_help=True)
promises_app = typer.Typer(help="Find promises.", no_args_is_help=True)
keys_app = typer.Typer(
    help="Principals' signing keys and the trust store (rotate, retire).", no_args_is_help=True
)
for sub, name in [
    (order_app, "order"),
    (orders_app, "orders"),
    (hold_app, "hold"),
    (stock_app, "stock"),
    (carrier_app, "carrier"),
    (carriers_app, "carriers"),
    (delivery_app, "delivery"),
    (promise_app, "promise"),
    (promises_app, "promises"),
    (keys_app, "keys"),
]:
    app.add_typer(sub, name=name)

_state: dict[str, Any] = {"debug": False, "address": None}
out = Console(soft_wrap=True)

JSON = typer.Option(False, "--json", help="Print exactly one JSON document.")
ACTOR = typer.Option(None, "--actor", help="Who acts (defaults to $USER).")


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    address: str | None = typer.Option(
        None, "--address", help="Temporal address (else TEMPORAL_ADDRESS)."
    ),
    as_: str | None = typer.Option(
        None,
        "--as",
        help="Act as this principal (supervisor:billing, customer:C-1001, ...) instead of the "
        "one the command names (ORDERFLOW_AS).",
    ),
) -> None:
    _state["debug"] = debug
    _state["address"] = address
    if as_:
        Principal.parse(as_)  # a principal that cannot be is refused before anything runs
    _state["as"] = as_


# ============================================================================ plumbing


def settings() -> Settings:
    try:
        return Settings()
    except ValueError as err:
        raise InvalidInput(f"bad ORDERFLOW_* setting: {err}".splitlines()[0]) from None


def registry(s: Settings | None = None) -> Registry:
    return Registry((s or settings()).seeds_dir)


def actor(value: str | None) -> str:
    return value or default_actor()


def with_app(fn: Callable[[Orderflow], Awaitable[T]]) -> T:
    async def go() -> T:
        s = settings()
        if _state.get("as"):
            s.acting_as = _state["as"]
        if s.acting_as:
            KeyRing(s.keys_path).require(Principal.parse(s.acting_as))
        client = await connect(_state["address"], converter=s.data_converter(), wait=s.connect_wait)
        return await fn(Orderflow(client, registry(s), s))

    return asyncio.run(go())


def emit_json(value: Any) -> None:
    def convert(v: Any) -> Any:
        if isinstance(v, BaseModel):
            return v.model_dump(mode="json")
        if isinstance(v, list):
            return [convert(x) for x in v]
        if isinstance(v, dict):
            return {k: convert(x) for k, x in v.items()}
        return v

    sys.stdout.write(json.dumps(convert(value), indent=2, default=str) + "\n")


def amount(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidInput(f"--amount '{text}' is not a number") from None
    check_amount(value)
    return value


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"
