"""The HTTP API for department and partner systems: JSON under ``/api/v1/``, OpenAPI at
``/api/v1/openapi.json``, errors as RFC 9457 problem documents.

Every request carries ``Authorization: Bearer <token>``, the same tokens as the ``temporal`` CLI's
header (``orderflow token``). A message to an order is sent on with the caller's own token, so the
workflow verifies it and applies the same rules as for any other client; like there, a token
carries one message (make one per write). Reads are checked here (``domain.authority``). Each
message's body is the update's own input, as ``orderflow schema`` publishes it, read at the same
door: the same refusals as the CLI and the ``temporal`` CLI.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Body, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain import authority
from domain.authority import Caller
from domain.base import admit
from domain.carrier import CarrierEvent, CarrierEventRecorded
from domain.delivery import DeliveryUpdated, Redirect, Reschedule
from domain.errors import (
    InvalidInput,
    LimitReached,
    NotAllowed,
    NotFound,
    OrderflowError,
    TooLarge,
    UndecodablePayload,
    WrongState,
)
from domain.holds import (
    DisputeHold,
    HoldDisputed,
    HoldPlaced,
    HoldReleased,
    HoldUpheld,
    PlaceHold,
    ReleaseHold,
    UpholdHold,
)
from domain.order import CancelOrder, OrderCancelled, PlaceOrder
from domain.promises import KeepPromise, MakePromise, PromiseKept, PromiseMade
from domain.stock import ReceiveStock, StockReceived, StockView
from domain.timeline import TimelineEntry
from domain.view import OrderView
from orderflow.identity import Credential, TrustStore, verify
from orderflow.service import Orderflow
from orderflow.temporal import ServerUnreachable

M = TypeVar("M", bound=BaseModel)

STATUS_OF: list[tuple[type[OrderflowError], int]] = [
    (TooLarge, 413),
    (InvalidInput, 400),
    (NotFound, 404),
    (WrongState, 409),
    (LimitReached, 409),
    (NotAllowed, 403),
]
TITLES = {
    400: "Bad Request",
    405: "Method Not Allowed",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Content Too Large",
    503: "Service Unavailable",
}


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    # The engine's refusal type (InvalidInput, NotAllowed, WrongState ...), as the CLI's.
    refusal: str = ""


class ProblemError(Exception):
    def __init__(self, status: int, detail: str, refusal: str = "") -> None:
        super().__init__(detail)
        self.status, self.detail, self.refusal = status, detail, refusal


def problem_response(status: int, detail: str, refusal: str = "") -> JSONResponse:
    doc = Problem(title=TITLES.get(status, "Error"), status=status, detail=detail, refusal=refusal)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        doc.model_dump(), status_code=status, media_type="application/problem+json", headers=headers
    )


def status_of(err: OrderflowError) -> int:
    """The token was verified at this door, so the engine's refusals are about what it may
    do (403), what was sent (400, 413), what is there (404) and when (409)."""
    return next((code for cls, code in STATUS_OF if isinstance(err, cls)), 400)


PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": TITLES[code]} for code in (400, 401, 403, 404, 409)
}


class OrderPlaced(BaseModel):
    order: OrderView
    created: bool = Field(description="False when an order with this id existed already")


def credential(request: Request) -> tuple[Credential, str]:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ProblemError(
            401, "send 'Authorization: Bearer <token>' (orderflow token --as PRINCIPAL)"
        )
    store: TrustStore | None = request.app.state.trust()
    if store is None:
        raise ProblemError(401, "the web service has no trust store yet: it accepts no token")
    try:
        cred = verify(store, token)
    except OrderflowError as err:
        raise ProblemError(401, str(err), err.type) from None
    if cred.workflow_id is not None:
        raise ProblemError(
            401,
            "credential: this token was bound to one workflow by the client that sent it; "
            "make one for the API with `orderflow token`",
            "NotAllowed",
        )
    return cred, token


Who = Annotated[tuple[Credential, str], Depends(credential)]


def create_api(service: Orderflow, trust: Any) -> FastAPI:
    """The API on ``service`` (a client of the engine); ``trust`` gives the trust store."""
    api = FastAPI(
        title="orderflow API",
        version="1",
        description=__doc__,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    api.state.trust = trust

    @api.exception_handler(ProblemError)
    async def _problem(_: Request, err: ProblemError) -> JSONResponse:
        return problem_response(err.status, err.detail, err.refusal)

    @api.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        # No such path or method here: a problem document too.
        return problem_response(err.status_code, str(err.detail))

    @api.exception_handler(OrderflowError)
    async def _refused(_: Request, err: OrderflowError) -> JSONResponse:
        return problem_response(status_of(err), str(err), err.type)

    @api.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        parts = []
        for e in err.errors()[:3]:
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            msg = str(e.get("msg", "")).removeprefix("Value error, ")
            parts.append(f"{where}: {msg}" if where else msg)
        return problem_response(400, "; ".join(parts) or "invalid request", "InvalidInput")

    @api.exception_handler(ServerUnreachable)
    async def _down(_: Request, err: ServerUnreachable) -> JSONResponse:
        return problem_response(503, str(err))

    @api.exception_handler(UndecodablePayload)
    async def _sealed(_: Request, err: UndecodablePayload) -> JSONResponse:
        return problem_response(503, f"the web service cannot read the engine's answer: {err}")

    def caller(cred: Credential) -> Caller:
        return Caller(
            kind=cred.principal.kind.value,
            id=cred.principal.id,
            actor=cred.actor,
            kid=cred.kid,
            order_id=cred.order_id,
        )

    async def door(request: Request, model: type[M], what: str) -> M:
        """The body read again at the engine's door: unknown fields and the rest refused
        exactly as the workflow would."""
        return admit(await request.body(), model, what=what)

    async def readable(who: tuple[Credential, str], order_id: str) -> OrderView:
        """The order, for a caller who may read it. A customer asking for an order not theirs
        hears what they would of an order that does not exist: nothing of whose it is."""
        asker = caller(who[0])
        if asker.kind == authority.CUSTOMER:
            unknown = NotFound(f"no order '{order_id}'")
            if asker.order_id is not None and asker.order_id != order_id:
                raise unknown
            try:
                view = await service.view(order_id)
            except NotFound:
                raise unknown from None
            if view.customer_id != asker.id:
                raise unknown
            return view
        authority.require_caller(asker, "reading an order", order_id)
        if asker.kind not in authority.COMPANY:
            raise NotAllowed(f"credential: {asker.principal} does not read orders")
        return await service.view(order_id)

    def acting(who: tuple[Credential, str]) -> Orderflow:
        return service.presenting(*who)

    # ------------------------------------------------------------------------------ orders

    @api.get("/orders/{order_id}", response_model=OrderView, responses=PROBLEMS, tags=["orders"])
    async def show_order(order_id: str, who: Who) -> OrderView:
        """The order's view: the same document as `orderflow order show --json`."""
        return await readable(who, order_id)

    @api.get(
        "/orders/{order_id}/timeline",
        response_model=list[TimelineEntry],
        responses=PROBLEMS,
        tags=["orders"],
    )
    async def order_timeline(order_id: str, who: Who) -> list[TimelineEntry]:
        await readable(who, order_id)
        return await service.timeline(order_id, known=True)

    @api.get("/orders", response_model=list[OrderView], responses=PROBLEMS, tags=["orders"])
    async def list_orders(
        who: Who,
        status: Annotated[str | None, Query(max_length=40)] = None,
        blocked_by: Annotated[str | None, Query(max_length=40)] = None,
        customer: Annotated[str | None, Query(max_length=40)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[OrderView]:
        """Orders by status, blocking department or customer, newest first."""
        authority.check_lists_orders(caller(who[0]), customer)
        return await service.list_orders(
            status=status, blocked_by=blocked_by, customer=customer, limit=limit
        )

    @api.post(
        "/orders",
        response_model=OrderPlaced,
        status_code=201,
        responses=PROBLEMS,
        tags=["orders"],
    )
    async def place_order(
        request: Request, who: Who, body: Annotated[PlaceOrder, Body()]
    ) -> OrderPlaced:
        """Place an order (an order desk, or the customer it is for). Repeating an order id
        returns that order (`created` false)."""
        cmd = await door(request, PlaceOrder, "place_order")
        view, created = await acting(who).place_order(cmd)
        return OrderPlaced(order=view, created=created)

    @api.post(
        "/orders/{order_id}/cancel",
        response_model=OrderCancelled,
        responses=PROBLEMS,
        tags=["orders"],
    )
    async def cancel_order(
        order_id: str, request: Request, who: Who, body: Annotated[CancelOrder, Body()]
    ) -> OrderCancelled:
        return await acting(who).cancel(order_id, await door(request, CancelOrder, "cancel"))

    # ------------------------------------------------------------------------------- holds

    @api.post(
        "/orders/{order_id}/holds",
        response_model=HoldPlaced,
        responses=PROBLEMS,
        tags=["holds"],
    )
    async def place_hold(
        order_id: str, request: Request, who: Who, body: Annotated[PlaceHold, Body()]
    ) -> HoldPlaced:
        """Place a hold: the department named must be the token's (or its supervisor's)."""
        return await acting(who).place_hold(order_id, await door(request, PlaceHold, "place_hold"))

    @api.post(
        "/orders/{order_id}/holds/release",
        response_model=HoldReleased,
        responses=PROBLEMS,
        tags=["holds"],
    )
    async def release_hold(
        order_id: str, request: Request, who: Who, body: Annotated[ReleaseHold, Body()]
    ) -> HoldReleased:
        cmd = await door(request, ReleaseHold, "release_hold")
        return await acting(who).release_hold(order_id, cmd)

    @api.post(
        "/orders/{order_id}/holds/dispute",
        response_model=HoldDisputed,
        responses=PROBLEMS,
        tags=["holds"],
    )
    async def dispute_hold(
        order_id: str, request: Request, who: Who, body: Annotated[DisputeHold, Body()]
    ) -> HoldDisputed:
        cmd = await door(request, DisputeHold, "dispute_hold")
        return await acting(who).dispute_hold(order_id, cmd)

    @api.post(
        "/orders/{order_id}/holds/uphold",
        response_model=HoldUpheld,
        responses=PROBLEMS,
        tags=["holds"],
    )
    async def uphold_hold(
        order_id: str, request: Request, who: Who, body: Annotated[UpholdHold, Body()]
    ) -> HoldUpheld:
        cmd = await door(request, UpholdHold, "uphold_hold")
        return await acting(who).uphold_hold(order_id, cmd)

    # ---------------------------------------------------------------------------- promises

    @api.post(
        "/orders/{order_id}/promises",
        response_model=PromiseMade,
        responses=PROBLEMS,
        tags=["promises"],
    )
    async def make_promise(
        order_id: str, request: Request, who: Who, body: Annotated[MakePromise, Body()]
    ) -> PromiseMade:
        cmd = await door(request, MakePromise, "make_promise")
        return await acting(who).make_promise(order_id, cmd)

    @api.post(
        "/orders/{order_id}/promises/keep",
        response_model=PromiseKept,
        responses=PROBLEMS,
        tags=["promises"],
    )
    async def keep_promise(
        order_id: str, request: Request, who: Who, body: Annotated[KeepPromise, Body()]
    ) -> PromiseKept:
        cmd = await door(request, KeepPromise, "keep_promise")
        return await acting(who).keep_promise(order_id, cmd)

    # ------------------------------------------------------------------- the customer's

    @api.post(
        "/orders/{order_id}/reschedule",
        response_model=DeliveryUpdated,
        responses=PROBLEMS,
        tags=["deliveries"],
    )
    async def reschedule(
        order_id: str, request: Request, who: Who, body: Annotated[Reschedule, Body()]
    ) -> DeliveryUpdated:
        """The customer moves the running delivery's window."""
        return await acting(who).reschedule(order_id, await door(request, Reschedule, "reschedule"))

    @api.post(
        "/orders/{order_id}/redirect",
        response_model=DeliveryUpdated,
        responses=PROBLEMS,
        tags=["deliveries"],
    )
    async def redirect(
        order_id: str, request: Request, who: Who, body: Annotated[Redirect, Body()]
    ) -> DeliveryUpdated:
        """The customer sends the running delivery to a pickup point."""
        return await acting(who).redirect(order_id, await door(request, Redirect, "redirect"))

    # ------------------------------------------------------------------- carriers, stock

    @api.post(
        "/orders/{order_id}/deliveries/{delivery_id}/events",
        response_model=CarrierEventRecorded,
        responses=PROBLEMS,
        tags=["carriers"],
    )
    async def carrier_event(
        order_id: str,
        delivery_id: Annotated[int, Path(ge=1, le=1000)],
        request: Request,
        who: Who,
        body: Annotated[CarrierEvent, Body()],
    ) -> CarrierEventRecorded:
        """A carrier's scan, attempt or delivery, from the carrier the delivery is booked
        with."""
        cmd = await door(request, CarrierEvent, "carrier_event")
        return await acting(who).carrier_event(order_id, cmd, delivery_id)

    @api.get(
        "/stock/{location}", response_model=list[StockView], responses=PROBLEMS, tags=["stock"]
    )
    async def show_stock(
        location: str, who: Who, sku: Annotated[str | None, Query(max_length=40)] = None
    ) -> list[StockView]:
        authority.check_reads_stock(caller(who[0]))
        return await service.stock(location, sku)

    @api.post(
        "/stock/{location}/{sku}/receive",
        response_model=StockReceived,
        responses=PROBLEMS,
        tags=["stock"],
    )
    async def receive_stock(
        location: str, sku: str, request: Request, who: Who, body: Annotated[ReceiveStock, Body()]
    ) -> StockReceived:
        """Goods arrived: stock control or the store's clerks."""
        cmd = await door(request, ReceiveStock, "receive")
        return await acting(who).receive_stock(location, sku, cmd.qty, cmd.reference)

    return api
