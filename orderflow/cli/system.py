"""The local stack and what a newcomer looks at first: dev, worker, demo, catalog, inbox."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.table import Table

from domain.errors import InvalidInput
from orderflow.cli.common import (
    JSON,
    _state,
    app,
    emit_json,
    out,
    registry,
    settings,
    with_app,
)
from orderflow.service import money
from orderflow.smtp_sink import read_inbox
from orderflow.temporal import connect

# ============================================================================ the stack


@app.command()
def dev(
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Where state lives (ORDERFLOW_DATA_DIR)."
    ),
    port: int = typer.Option(7233, "--port", help="Temporal gRPC port."),
    ui_port: int = typer.Option(8233, "--ui-port", help="Temporal Web UI port."),
    smtp_port: int | None = typer.Option(
        None, "--smtp-port", help="SMTP sink port (ORDERFLOW_SMTP_PORT)."
    ),
    web_port: int | None = typer.Option(
        None,
        "--web-port",
        help="orderflow's HTTP listener: the codec endpoint and sign-in (ORDERFLOW_WEB_PORT, "
        "default 8000).",
    ),
    demo: bool = typer.Option(False, "--demo", help="Play the sample order once the stack is up."),
    verbose: bool = typer.Option(
        False,
        "--verbose",
        help="Stream the worker's log lines here (else: DATA_DIR/orderflow.log).",
    ),
    exit_after_demo: bool = typer.Option(False, "--exit-after-demo", help="Stop after --demo."),
) -> None:
    """Run the local stack: Temporal dev server + Web UI, an SMTP sink, and the worker."""
    from orderflow.stack import run_stack

    s = settings()
    if data_dir is not None:
        s.data_dir = data_dir
    if smtp_port is not None:
        s.smtp_port = smtp_port
    if web_port is not None:
        s.web_port = web_port
    s.ui_url = f"http://localhost:{ui_port}"
    asyncio.run(
        run_stack(
            s,
            port=port,
            ui_port=ui_port,
            demo=demo,
            exit_after_demo=exit_after_demo,
            verbose=verbose,
        )
    )


@app.command()
def web() -> None:
    """Run orderflow's HTTP listener only (the compose stack's web service): the codec endpoint
    for the Temporal UI and CLI, and staff sign-in, on ORDERFLOW_WEB_HOST:ORDERFLOW_WEB_PORT."""
    from orderflow.logging import configure
    from orderflow.temporal import connect
    from orderflow.web import bind, serve

    s = settings()
    configure()
    sock = bind(s)

    async def go() -> None:
        client = await connect(_state["address"], converter=s.data_converter(), wait=s.connect_wait)
        print(
            f"orderflow web on {s.public_web_url}: codec endpoint {s.public_web_url}/codec, "
            f"API {s.public_web_url}/api/v1 (OpenAPI at /api/v1/openapi.json)",
            flush=True,
        )
        await serve(s, asyncio.Event(), sock, client)

    asyncio.run(go())


@app.command()
def worker() -> None:
    """Run the worker only (same as python worker.py)."""
    from orderflow.logging import configure
    from orderflow.temporal import metrics_runtime
    from orderflow.worker import run_worker

    configure()
    s = settings()

    async def go() -> None:
        runtime = metrics_runtime(s.metrics_port) if s.metrics_port else None
        client = await connect(
            _state["address"], converter=s.data_converter(), runtime=runtime, wait=s.connect_wait
        )
        await run_worker(client, s)

    asyncio.run(go())


@app.command()
def demo(
    stories: list[str] = typer.Argument(
        None, help="Story ids (000-004); default: the sample order and every story."
    ),
    scale: float = typer.Option(
        21600.0, "--scale", help="Story seconds per real second (21600: a day in 4 s)."
    ),
) -> None:
    """Play the sample order and the customer stories against the running stack."""
    from orderflow.demo import run_demo

    if scale <= 0:
        raise InvalidInput("--scale must be positive")
    with_app(lambda of: run_demo(of, stories or [], scale=scale))


@app.command()
def catalog(as_json: bool = JSON) -> None:
    """SKUs and prices, locations and stock, customers, carriers, departments."""
    reg = registry()
    reg.validate_all()
    doc = {
        "skus": [s.model_dump(mode="json") for s in reg.skus.values()],
        "locations": [loc.model_dump(mode="json") for loc in reg.locations.values()],
        "customers": [
            {"customer_id": c.customer_id, "name": c.name, "email": c.email}
            for c in reg.customers.values()
        ],
        "carriers": [{"carrier_id": c.carrier_id, "name": c.name} for c in reg.carriers.values()],
        "departments": [
            {
                "department": d.department,
                "name": d.name,
                "supervisor": d.supervisor,
                "hold_sla": d.hold_sla.total_seconds(),
                "reason_codes": sorted(d.reason_codes),
            }
            for d in reg.departments.values()
        ],
    }
    if as_json:
        emit_json(doc)
        return
    t = Table("sku", "name", "price", title="SKUs")
    for s in reg.skus.values():
        t.add_row(s.sku, s.name, money(s.price))
    out.print(t)
    t = Table("location", "name", "stock", title="Locations")
    for loc in reg.locations.values():
        t.add_row(loc.location, loc.name, ", ".join(f"{k}={v}" for k, v in loc.stock.items()))
    out.print(t)
    t = Table("customer", "name", "email", title="Customers")
    for c in reg.customers.values():
        t.add_row(c.customer_id, c.name, c.email)
    out.print(t)
    out.print("Carriers: " + ", ".join(f"{c.carrier_id} ({c.name})" for c in reg.carriers.values()))
    t = Table("department", "supervisor", "hold SLA", "reason codes", title="Departments")
    for d in reg.departments.values():
        t.add_row(d.department, d.supervisor, str(d.hold_sla), ", ".join(sorted(d.reason_codes)))
    out.print(t)


@app.command()
def inbox(
    to: str | None = typer.Option(None, "--to", help="Only mail to this address."),
    as_json: bool = JSON,
) -> None:
    """Mail delivered to the local SMTP sink."""
    messages = read_inbox(settings().maildir, to)
    if as_json:
        emit_json([m.model_dump(exclude={"order_id"}) for m in messages])
        return
    for m in messages:
        out.print(f"[bold]{m.subject}[/bold]  to {m.to}  {m.date}")
        out.print(m.body.rstrip(), markup=False)
        out.print()
    if not messages:
        out.print("no mail yet")


@app.command()
def schema(
    update: str | None = typer.Argument(
        None, help="One message (place_order, place_hold, ...); default: all."
    ),
    as_json: bool = JSON,
) -> None:
    """Print the JSON Schema of each message's input and result, the order's start and every
    update (for systems in other languages).
    The output is JSON either way; ``--json`` is accepted as on every read command."""
    from orderflow.schema import update_schema, update_schemas

    emit_json(update_schema(update) if update else update_schemas())
