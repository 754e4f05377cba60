"""The customer's order page: reached from the link at the end of every e-mail the order sends
(``orderflow.links``), no password.

The link's token (signed by the order page's key for that customer and that order, good for
opening the page for two weeks) is exchanged for a session cookie limited to the order's page,
and the address bar drops it. The page shows the order in plain words, and lets the customer
dispute a hold, reschedule or redirect a delivery, or cancel: each form carries a CSRF token,
and each action is sent to the engine with a token the page's key signs for that customer and
order, so the workflow applies the same rules as to any client. A refused action shows the
engine's reason next to its form and changes nothing. An expired link says so and offers to
e-mail a fresh one to the address the order has for the customer (never to the visitor).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from activities.notify import Mailer, RecipientRefused, SentLog
from domain.base import admit
from domain.delivery import Redirect, Reschedule
from domain.errors import NotFound, OrderflowError
from domain.holds import DisputeHold
from domain.notices import Notification
from domain.order import CancelOrder
from orderflow.identity import KeyRing, PrincipalKind, verify, verify_link
from orderflow.links import order_links
from orderflow.service import Orderflow
from orderflow.temporal import ServerUnreachable
from orderflow.web.api import status_of
from orderflow.web.pages import message, page

COOKIE = "orderflow_order"
LIFETIME = timedelta(hours=8)
# Where each form's refusal is shown on the page.
FORM_KEYS = {
    "disputed": lambda form: f"dispute-{form.get('hold_id', '')!s}",
    "rescheduled": lambda form: "reschedule",
    "redirected": lambda form: "redirect",
    "cancelled": lambda form: "cancel",
}


def door(model: Any, fields: dict[str, Any]) -> Any:
    """A form read at the engine's door: the same refusals as any other client's."""
    return admit(json.dumps(fields).encode(), model, what=model.__name__)


def version_of(view_json: str) -> str:
    return hashlib.sha256(view_json.encode()).hexdigest()[:16]


def add_order_pages(app: FastAPI, listener: Any, service: Orderflow) -> None:
    settings = service.settings
    ring = KeyRing(settings.keys_path)
    mailer = Mailer(
        settings.smtp_host,
        settings.smtp_port,
        SentLog(settings.data_dir / "web-sent.sqlite3"),
        link=order_links(settings, service.registry),
    )

    def base(order_id: str) -> str:
        return f"/o/{order_id}"

    def customer_of(request: Request, order_id: str) -> str | None:
        """The customer whose session is open on this order's page."""
        cookie = request.cookies.get(COOKIE)
        session = listener.sessions.read(cookie)
        if session is None or session.order_id != order_id:
            return None
        if listener.trust is None or session.kid not in listener.trust:
            return None  # the page's key was retired: links signed with it end
        kind, _, customer = session.principal.partition(":")
        return customer if kind == PrincipalKind.CUSTOMER.value else None

    async def render(
        request: Request,
        order_id: str,
        *,
        status: int = 200,
        errors: dict[str, str] | None = None,
        notice: str = "",
    ) -> HTMLResponse:
        view, timeline = await asyncio.gather(
            service.view(order_id), service.timeline(order_id, known=True)
        )
        if view.customer_id != customer_of(request, order_id):
            return not_theirs()
        cookie = request.cookies.get(COOKIE, "")
        return page(
            "order.html",
            status,
            v=view,
            timeline=timeline,
            errors=errors or {},
            notice=notice,
            base=base(order_id),
            csrf_token=listener.sessions.csrf(cookie),
            version=version_of(view.model_dump_json()),
        )

    def not_theirs() -> HTMLResponse:
        return message("This link is for another order", "It shows nothing of this one.", 403)

    def not_open() -> HTMLResponse:
        return message(
            "Open your order from its e-mail",
            "This page opens from the link at the end of any e-mail about your order. Open "
            "the link in your latest e-mail.",
            401,
        )

    @app.exception_handler(NotFound)
    async def _gone(request: Request, err: NotFound) -> Response:
        return message("No such order", str(err), 404)

    @app.exception_handler(ServerUnreachable)
    async def _down(request: Request, err: ServerUnreachable) -> Response:
        return message("Please try again shortly", "The order service is not answering.", 503)

    @app.get("/o/{order_id}", response_class=HTMLResponse)
    async def order_page(order_id: str, request: Request) -> Response:
        token = request.query_params.get("t")
        if token:
            return await open_link(order_id, token)
        customer = customer_of(request, order_id)
        if customer is None:
            return not_open()
        notice = {"disputed": "Your answer was sent.", "rescheduled": "The delivery was moved.",
                  "redirected": "The delivery goes to the pickup point.",
                  "cancelled": "Your order is being cancelled."}.get(
            request.query_params.get("done", ""), ""
        )  # fmt: skip
        return await render(request, order_id, notice=notice)

    async def open_link(order_id: str, token: str) -> Response:
        if listener.trust is None:
            return message("Not available", "The order page is not ready yet.", 503)
        try:
            cred, expired = verify_link(listener.trust, token)
        except OrderflowError:
            return message("This link does not work", "Open the link in your latest e-mail.", 403)
        if cred.order_id != order_id:
            return not_theirs()
        if expired:
            return message(
                "This link has expired",
                f"Links in our e-mails work for two weeks; this one ended on "
                f"{cred.expires_at:%d %b %Y}. We can e-mail a new link to the address we have "
                "for you.",
                401,
                fresh_link_token=token,
                fresh_link_action=f"{base(order_id)}/fresh-link",
            )
        if (await service.view(order_id)).customer_id != cred.principal.id:
            return not_theirs()
        until = datetime.now(UTC) + LIFETIME
        response = RedirectResponse(base(order_id), status_code=303)
        response.set_cookie(
            COOKIE,
            listener.sessions.issue(str(cred.principal), "order link", cred.kid, until, order_id),
            max_age=int(LIFETIME.total_seconds()),
            path=base(order_id),
            httponly=True,
            samesite="lax",
            secure=listener.secure_cookie,
        )
        return response

    @app.get("/o/{order_id}/version")
    async def order_version(order_id: str, request: Request) -> Response:
        customer = customer_of(request, order_id)
        if customer is None:
            return JSONResponse({"detail": "no session"}, 401)
        view = await service.view(order_id)
        if view.customer_id != customer:
            return JSONResponse({"detail": "not this customer's order"}, 403)
        return JSONResponse({"version": version_of(view.model_dump_json())})

    @app.post("/o/{order_id}/fresh-link", response_class=HTMLResponse)
    async def fresh_link(order_id: str, request: Request) -> Response:
        """An expired link asks for a new one: it goes by e-mail to the address the order has
        for its customer, at most once an hour per order, never to the visitor."""
        refused = listener.cross_site_form(request)
        if refused is not None:
            return refused
        form = await request.form()
        if listener.trust is None:
            return message("Not available", "The order page is not ready yet.", 503)
        try:
            cred, expired = verify_link(listener.trust, str(form.get("t", "")))
        except OrderflowError:
            return message("This link does not work", "Open the link in your latest e-mail.", 403)
        if cred.order_id != order_id:
            return not_theirs()
        if not expired:
            return RedirectResponse(f"{base(order_id)}?t={form.get('t')}", status_code=303)
        view = await service.view(order_id)
        if view.customer_id != cred.principal.id or not view.customer_email:
            return not_theirs()
        hour = datetime.now(UTC).strftime("%Y%m%d%H")
        note = Notification(
            # One per order and hour: asking again sends nothing more.
            key=f"fresh-link-{order_id}-{hour}",
            to=view.customer_email,
            subject=f"Order {order_id}: your link",
            body="Here is a new link to your order, as you asked.",
            order_id=order_id,
        )
        try:
            await asyncio.to_thread(mailer.send_all, [note])
        except (OSError, RecipientRefused):
            return message("Please try again shortly", "We could not send the e-mail.", 503)
        return message(
            "We sent you a new link",
            "Look for it in the e-mail address we have for you.",
            200,
        )

    async def act(order_id: str, request: Request, what: str, build: Any) -> Response:
        refused = listener.cross_site_form(request)
        if refused is not None:
            return refused
        customer = customer_of(request, order_id)
        if customer is None:
            return not_open()
        form = await request.form()
        cookie = request.cookies.get(COOKIE, "")
        if not listener.sessions.csrf_ok(cookie, str(form.get("csrf", ""))):
            return message("Please try again", "The form had expired; reload the page.", 403)
        key = FORM_KEYS[what](form)
        try:
            call = build(form)
            token = ring.for_customer(customer, order_id)
            acting = service.presenting(verify(listener.trust, token), token)
            await call(acting)
        except OrderflowError as err:
            return await render(request, order_id, status=status_of(err), errors={key: str(err)})
        except ValueError as err:
            return await render(request, order_id, status=400, errors={key: str(err)})
        return RedirectResponse(f"{base(order_id)}?done={what}", status_code=303)

    def text(form: Any, name: str) -> str:
        # Browsers send a textarea's line breaks as CRLF; the engine takes LF.
        return str(form.get(name, "")).replace("\r\n", "\n").strip()

    def instant(value: str) -> datetime:
        try:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        except ValueError:
            raise ValueError(f"'{value}' is not a date and time") from None

    @app.post("/o/{order_id}/dispute")
    async def dispute(order_id: str, request: Request) -> Response:
        def build(form: Any) -> Any:
            hold_id = text(form, "hold_id")
            cmd = door(DisputeHold, {"hold_id": hold_id, "customer_message": text(form, "message")})
            return lambda svc: svc.dispute_hold(order_id, cmd)

        return await act(order_id, request, "disputed", build)

    @app.post("/o/{order_id}/reschedule")
    async def reschedule(order_id: str, request: Request) -> Response:
        def build(form: Any) -> Any:
            cmd = door(
                Reschedule,
                {
                    "window_start": instant(text(form, "window_start")).isoformat(),
                    "window_end": instant(text(form, "window_end")).isoformat(),
                },
            )
            return lambda svc: svc.reschedule(order_id, cmd)

        return await act(order_id, request, "rescheduled", build)

    @app.post("/o/{order_id}/redirect")
    async def redirect(order_id: str, request: Request) -> Response:
        def build(form: Any) -> Any:
            cmd = door(Redirect, {"pickup_point": text(form, "pickup_point")})
            return lambda svc: svc.redirect(order_id, cmd)

        return await act(order_id, request, "redirected", build)

    @app.post("/o/{order_id}/cancel")
    async def cancel(order_id: str, request: Request) -> Response:
        def build(form: Any) -> Any:
            reason = text(form, "message")
            cmd = door(
                CancelOrder, {"by": "customer", "reason": reason, "customer_message": reason}
            )
            return lambda svc: svc.cancel(order_id, cmd)

        return await act(order_id, request, "cancelled", build)
