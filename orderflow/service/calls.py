"""How the service talks to Temporal: every call's failure turned into an error a person can
act on, and updates the workflow was not ready for sent again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

from temporalio.client import WorkflowHandle, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from domain import errors
from domain.errors import InvalidInput, NotFound, OrderflowError, WrongState
from orderflow.temporal import ServerUnreachable

T = TypeVar("T")
W = TypeVar("W")
P = TypeVar("P")
QUERY_TIMEOUT = timedelta(seconds=10)


class NoSuchWorkflow(NotFound):
    """The server has no running workflow by that id (never started, or already closed)."""


def _refusal(err: ApplicationError) -> OrderflowError:
    """The engine's refusal, as the same class on this side (its ``type`` names it)."""
    cls = getattr(errors, err.type or "", None)
    if not (isinstance(cls, type) and issubclass(cls, OrderflowError)):
        cls = InvalidInput
    return cls(err.message)


async def call(awaitable: Awaitable[T], *, what: str, address: str = "") -> T:
    """Await a Temporal call, turning its failures into errors a person can act on."""
    try:
        return await awaitable
    except WorkflowUpdateFailedError as err:
        cause: BaseException | None = err.cause
        while cause is not None and not isinstance(cause, ApplicationError):
            cause = getattr(cause, "cause", None)
        if isinstance(cause, ApplicationError):
            raise _refusal(cause) from None
        raise WrongState(f"{what} failed: {err}") from None
    except WorkflowQueryFailedError as err:
        raise WrongState(f"{what} failed: {err}") from None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise NoSuchWorkflow(f"{what}: not found") from None
        if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            raise ServerUnreachable(address or "the configured address", str(err)) from None
        if err.status == RPCStatusCode.CANCELLED or "Timeout expired" in err.message:
            raise WrongState(f"{what}: no answer in time; the engine is busy, try again") from None
        if err.status == RPCStatusCode.FAILED_PRECONDITION and "completed" in err.message:
            raise WrongState(f"{what}: the workflow has already finished") from None
        raise


def not_ready(err: BaseException) -> bool:
    """The server could not hand the update to the workflow because the workflow task carrying
    it failed; the update was not applied (``WorkflowNotReadyFailure``)."""
    return (
        isinstance(err, RPCError)
        and err.status == RPCStatusCode.FAILED_PRECONDITION
        and any("WorkflowNotReadyFailure" in d.type_url for d in err.grpc_status.details)
    )


# Times an update the workflow was not ready for is sent again, and the pause before each.
NOT_READY_RETRIES = (0.2, 0.5, 1.0)


async def send_update(
    handle: WorkflowHandle[W, Any],
    update: UpdateMethodMultiParam[[W, P], T],
    arg: P,
    *,
    what: str,
    address: str = "",
) -> T:
    """Send an update. One that the workflow was not ready for (its task failed for a moment,
    as when a query and an update meet in a new workflow's first task) was not applied, so it
    is sent again a few times before the error is reported. The same cause as the workflows'
    early-completion guard (workflows/support/gate.py); it can go with it."""
    for pause in NOT_READY_RETRIES:
        try:
            return await call(handle.execute_update(update, arg), what=what, address=address)
        except RPCError as err:
            if not not_ready(err):
                raise
            await asyncio.sleep(pause)
    return await call(handle.execute_update(update, arg), what=what, address=address)


def quote(value: str) -> str:
    """A string in a visibility query."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def first_error(err: Exception) -> str:
    """The first of pydantic's validation errors, naming the field."""
    errors = getattr(err, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(err)


def money(value: Decimal | float | None) -> str:
    return "" if value is None else f"{Decimal(str(value)):.2f}"
