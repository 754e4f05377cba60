"""``orderflow demo``: place the sample order, play the carrier, and show what the customer saw."""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections.abc import Callable

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from domain.carrier import CarrierEvent
from domain.errors import InvalidInput
from domain.view import OrderView
from orderflow.identity import PORTAL, KeyRing
from orderflow.links import order_page_url
from orderflow.service import Orderflow
from orderflow.smtp_sink import read_inbox
from orderflow.stories import DEFAULT_SCALE, Player, Step, Story, StoryReport, load_stories, pick
from orderflow.worker import build_worker, order_desk

console = Console()


async def wait_for(
    of: Orderflow, order_id: str, ok: Callable[[OrderView], bool], timeout: float = 60
) -> OrderView:
    deadline = time.monotonic() + timeout
    while True:
        view = await of.view(order_id)
        if ok(view):
            return view
        if time.monotonic() > deadline:
            raise InvalidInput(
                f"order {order_id} did not get there in {timeout:.0f}s; it is {view.status}: {view.next_step}"
            )
        await asyncio.sleep(0.1)


async def run_demo(
    of: Orderflow,
    stories: list[str],
    *,
    scale: float = DEFAULT_SCALE,
    web: httpx.AsyncClient | None = None,
) -> list[StoryReport]:
    """Without arguments: the sample order, then every story. With story ids: those stories.

    Stories set their own store and clock on the order desk of a worker beside them: the
    stack's own (``orderflow dev --demo``), or else one started here on a task queue of its
    own (``<task queue>-stories``), for as long as the stories play."""
    chosen = pick(load_stories(of.settings.seeds_dir / "stories"), stories)
    if not stories:
        await play_sample(of)
    if of.desk is not None:
        reports = await play_stories(of, chosen, scale=scale, web=web)
    else:
        settings = of.settings.model_copy(
            update={"task_queue": f"{of.settings.task_queue}-stories"}
        )
        desk = order_desk(settings, of.registry)
        async with build_worker(of.client, settings, desk=desk):
            stage = Orderflow(of.client, desk.registry, settings, desk=desk)
            reports = await play_stories(stage, chosen, scale=scale, web=web)
    for report in reports:
        print_report(report, scale)
    bad = [r.story_id for r in reports if not r.ok]
    if bad:
        raise InvalidInput(f"stories {', '.join(bad)} broke an invariant; see the tables above")
    return reports


async def play_stories(
    of: Orderflow, stories: list[Story], *, scale: float, web: httpx.AsyncClient | None = None
) -> list[StoryReport]:
    with Progress(
        TextColumn("[bold]{task.fields[story]}[/bold]"),
        BarColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=False,
    ) as progress:

        async def one(story: Story) -> StoryReport:
            task = progress.add_task("", total=len(story.step), story=f"{story.id} {story.title}")

            def advance(step: Step) -> None:
                progress.update(
                    task, advance=1, description=f"{step.actor}: {step.note or step.action}"[:70]
                )

            report = await Player(of, story, scale=scale, on_step=advance, web=web).play()
            progress.update(task, description="done" if report.ok else "INVARIANT BROKEN")
            return report

        return list(await asyncio.gather(*(one(s) for s in stories)))


def print_report(r: StoryReport, scale: float) -> None:
    t = Table(
        show_header=False,
        title=f"Story {r.story_id}: {r.title}  (order {r.order_id}, {r.status})",
        title_justify="left",
    )
    t.add_column("what", style="bold")
    t.add_column("value")
    t.add_row("contacts the customer had to make to learn something", str(r.contacts_to_learn))
    t.add_row("what the customer did on their order page", str(r.self_service_actions))
    t.add_row("e-mails the customer received", str(r.customer_emails))
    t.add_row("hours the order was blocked (story time)", f"{r.blocked_hours:g}")
    for h in r.holds:
        t.add_row(
            f"hold {h.hold_id} ({h.department}/{h.reason})",
            f"placed by {h.placed_by}, released by {h.released_by}, blocked {h.blocked_hours:g} h, "
            f"escalations {h.escalations}",
        )
    t.add_row("promises kept / broken", f"{r.promises_kept} / {r.promises_broken}")
    t.add_row(
        "carrier attempts verified / unverified", f"{r.verified_attempts} / {r.unverified_attempts}"
    )
    t.add_row("deliveries", str(r.deliveries))
    t.add_row("price at placement / charged", f"{r.price_at_placement:.2f} / {r.charged:.2f}")
    for check, ok in r.checks.items():
        shown = "[dim]n/a[/dim]" if ok is None else "[green]yes[/green]" if ok else "[red]NO[/red]"
        t.add_row(check, shown)
    t.add_row("Temporal UI", r.ui_link)
    console.print(t)


async def play_sample(of: Orderflow) -> None:
    path = of.settings.seeds_dir / "sample_order.toml"
    try:
        sample = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise InvalidInput(f"cannot read {path}: {err}") from None
    inp = of.order_input(
        customer_id=sample["customer"],
        sku=sample["sku"],
        qty=int(sample.get("qty", 1)),
        location=sample["location"],
        carrier=sample.get("carrier"),
        pickup=False,
        order_id=sample["order_id"],
        actor="demo",
    )
    view, created = await of.place_order(inp)
    oid = view.order_id
    console.print(
        f"[bold]Order {oid}[/bold] " + ("placed" if created else f"already exists ({view.status})")
    )
    if view.status not in ("completed", "cancelled"):
        view = await wait_for(
            of, oid, lambda v: bool(v.deliveries) and v.deliveries[-1].status != "booking"
        )
        for ev in sample.get("event", []):
            done = {d for d in [view.deliveries[-1].status]}
            if ev["event"] == "picked-up" and done & {"picked_up", "in_transit", "delivered"}:
                continue
            with console.status(f"carrier: {ev['event']}"):
                try:
                    await of.carrier_event(
                        oid,
                        CarrierEvent(
                            event=ev["event"], location=ev.get("location", ""), actor="demo-carrier"
                        ),
                    )
                except Exception as err:  # a re-run meets events already recorded
                    console.print(f"  carrier {ev['event']}: {err}")
        view = await wait_for(of, oid, lambda v: v.status in ("completed", "cancelled"))
    await asyncio.sleep(0.5)  # the last e-mail leaves the outbox
    customer = of.registry.customer(view.customer_id)

    table = Table(
        "when", "what", "the customer was told", title=f"Timeline of order {oid}: {view.status}"
    )
    for e in await of.timeline(oid):
        table.add_row(e.at.strftime("%H:%M:%S"), e.kind, e.text)
    console.print(table)
    if (of.settings.maildir / "new").is_dir():
        mails = [m for m in read_inbox(of.settings.maildir, customer.email) if m.order_id == oid]
        mt = Table(
            "subject", "message id", title=f"E-mails {customer.email} received ({len(mails)})"
        )
        for m in mails:
            mt.add_row(m.subject, m.message_id)
        console.print(mt)
    else:  # mail goes to a real mail server (Mailpit under docker compose): count what was sent
        console.print(
            f"E-mails sent to {customer.email}: {view.customer_emails} (see your mail server's inbox)"
        )
    console.print(
        f"Price at placement {view.lines[0].unit_price:.2f} x {view.lines[0].qty}, charged {view.charged:.2f}"
    )
    console.print(f"Temporal UI: {of.ui_link('order-' + oid)}")
    ring = KeyRing(of.settings.keys_path)
    if ring.private_keys(PORTAL):
        link = order_page_url(
            of.settings, oid, ring.for_customer(customer.customer_id, oid, link=True)
        )
        # Plain prints: a link must stay whole to be opened from the terminal.
        print(f"The customer's order page (the link in each of their e-mails):\n  {link}")
    print(
        f"The department console: {of.settings.public_web_url}/console\n"
        "  (sign in with a token from `orderflow token --as billing --ttl 1h`)",
        flush=True,
    )
