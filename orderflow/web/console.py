"""The department console: a department (or its supervisor) signs in at ``/signin`` with a token
of its own (``orderflow token --as billing``) and works its queue at ``/console``: the holds it
placed, disputed first and then by the date they must be resolved, with their age and
escalations, to release or uphold; the promises it made that are due; the orders it blocks that
are older than a chosen age. Each row links to the order's workflow in the Temporal UI.

What the console sends carries a token the console's key (``console:web``) signs for the
signed-in department, vouching for the person its own token named: the workflow applies the same
rules as to any client, so a department cannot release another's hold here either.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse

from domain.errors import OrderflowError
from domain.holds import ReleaseHold, UpholdHold
from domain.ids import order_workflow_id
from orderflow.identity import CONSOLE, KeyRing, Principal, PrincipalKind, sign_for, verify
from orderflow.service import Orderflow
from orderflow.web.customer import door
from orderflow.web.pages import message, page
from orderflow.web.sessions import COOKIE

OPEN = ("active", "disputed")
# What the console says after an action (only these: the address bar carries the code).
NOTICES = {"released": "The hold was released.", "upheld": "The hold was upheld."}


def age(span: timedelta) -> str:
    """How long, as a person says it."""
    minutes = int(span.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // (24 * 60)} days"


def add_console(app: FastAPI, listener: Any, service: Orderflow) -> None:
    ring = KeyRing(service.settings.keys_path)

    def signed_in(request: Request) -> tuple[Principal, str] | None:
        session = listener.sessions.read(request.cookies.get(COOKIE))
        if session is None or listener.trust is None or session.kid not in listener.trust:
            return None
        principal = Principal.parse(session.principal)
        if principal.kind not in (PrincipalKind.DEPARTMENT, PrincipalKind.SUPERVISOR):
            return None
        return principal, session.actor

    async def render(
        request: Request, who: tuple[Principal, str], *, status: int = 200, **extra: Any
    ) -> Response:
        principal, actor = who
        department = principal.id
        older = min(max(int(request.query_params.get("older", "24") or 0), 0), 10_000)
        now = datetime.now(UTC)
        views = await service.list_orders(blocked_by=department, limit=500)
        rows = []
        for v in views:
            for h in v.holds:
                if h.department == department and h.status in OPEN:
                    rows.append(
                        {
                            "order_id": v.order_id,
                            "hold": h,
                            "age": age(now - h.placed_at),
                            "overdue": h.sla_due_at < now,
                            "ui_link": service.ui_link(order_workflow_id(v.order_id)),
                        }
                    )
        rows.sort(key=lambda r: (r["hold"].status != "disputed", r["hold"].sla_due_at))
        promises = [
            {
                **p,
                "due_at": datetime.fromisoformat(p["due_at"]),
                "ui_link": service.ui_link(order_workflow_id(p["order_id"])),
            }
            for p in await service.list_promises(department=department)
            if p.get("status") == "open"
        ]
        promises.sort(key=lambda p: p["due_at"])
        blocked = [
            {
                "order_id": v.order_id,
                "status": v.status,
                "placed_at": v.placed_at,
                "next_step": v.next_step,
                "ui_link": service.ui_link(order_workflow_id(v.order_id)),
            }
            for v in views
            if v.placed_at <= now - timedelta(hours=older)
        ]
        errors = dict(extra.get("errors", {}))
        listed = {f"{r['order_id']}-{r['hold'].hold_id}" for r in rows}
        for key in [k for k in errors if k not in listed]:
            # A hold not in this queue (another department's, or one already closed).
            errors["other"] = f"{key.replace('-H', ', hold H', 1)}: {errors.pop(key)}"
        return page(
            "console.html",
            status,
            department=department,
            principal=str(principal),
            actor=actor,
            holds=rows,
            promises=promises,
            blocked=blocked,
            older=older,
            csrf_token=listener.sessions.csrf(request.cookies.get(COOKIE, "")),
            errors=errors,
            notice=extra.get("notice", ""),
        )

    @app.get("/console")
    async def console(request: Request) -> Response:
        who = signed_in(request)
        if who is None:
            return RedirectResponse("/signin", status_code=303)
        try:
            notice = NOTICES.get(request.query_params.get("done", ""), "")
            return await render(request, who, notice=notice)
        except ValueError:
            return message("Bad request", "older: a number of hours", 400)

    async def act(request: Request, build: Any) -> Response:
        refused = listener.cross_site_form(request)
        if refused is not None:
            return refused
        who = signed_in(request)
        if who is None:
            return RedirectResponse("/signin", status_code=303)
        form = await request.form()
        if not listener.sessions.csrf_ok(
            request.cookies.get(COOKIE, ""), str(form.get("csrf", ""))
        ):
            return message("Please try again", "The form had expired; reload the page.", 403)
        principal, actor = who
        order_id, hold_id = str(form.get("order_id", "")), str(form.get("hold_id", ""))
        try:
            token = sign_for(ring.require(CONSOLE)[-1], principal, actor=actor)
            acting = service.presenting(verify(listener.trust, token), token)
            done = await build(acting, principal.id, order_id, hold_id, form)
        except OrderflowError as err:
            return await render(
                request, who, status=400, errors={f"{order_id}-{hold_id}": str(err)}
            )
        return RedirectResponse(f"/console?done={done}", status_code=303)

    @app.post("/console/release")
    async def release(request: Request) -> Response:
        async def build(svc: Orderflow, dept: str, order_id: str, hold_id: str, form: Any) -> str:
            cmd = door(
                ReleaseHold,
                {"hold_id": hold_id, "department": dept, "resolution": form.get("resolution", "")},
            )
            await svc.release_hold(order_id, cmd)
            return "released"

        return await act(request, build)

    @app.post("/console/uphold")
    async def uphold(request: Request) -> Response:
        async def build(svc: Orderflow, dept: str, order_id: str, hold_id: str, form: Any) -> str:
            cmd = door(
                UpholdHold,
                {
                    "hold_id": hold_id,
                    "department": dept,
                    "customer_message": form.get("message", ""),
                },
            )
            await svc.uphold_hold(order_id, cmd)
            return "upheld"

        return await act(request, build)
