"""An update the workflow was not ready for is sent again; every other refusal is reported."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.any_pb2 import Any as AnyProto
from temporalio.api.common.v1 import GrpcStatus
from temporalio.service import RPCError, RPCStatusCode

from domain.errors import WrongState
from orderflow.service import calls as service


def rpc_error(message: str, detail: str | None) -> RPCError:
    status = GrpcStatus(code=RPCStatusCode.FAILED_PRECONDITION.value, message=message)
    if detail:
        status.details.append(AnyProto(type_url=f"type.googleapis.com/{detail}"))
    return RPCError(message, RPCStatusCode.FAILED_PRECONDITION, status.SerializeToString())


NOT_READY = "temporal.api.errordetails.v1.WorkflowNotReadyFailure"


class Handle:
    """A workflow handle whose first answers are the given errors."""

    def __init__(self, *errors: RPCError) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def execute_update(self, update: Any, arg: Any) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return f"applied {arg}"


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "NOT_READY_RETRIES", (0.0, 0.0, 0.0))


async def test_an_update_the_workflow_was_not_ready_for_is_sent_again() -> None:
    handle = Handle(rpc_error("unexpected workflow task failure", NOT_READY))
    result = await service.send_update(handle, "carrier_event", "picked-up", what="delivery")  # type: ignore[arg-type]
    assert result == "applied picked-up" and handle.calls == 2


async def test_a_workflow_that_stays_not_ready_is_reported_after_the_retries() -> None:
    handle = Handle(*[rpc_error("unexpected workflow task failure", NOT_READY)] * 4)
    with pytest.raises(RPCError):
        await service.send_update(handle, "carrier_event", "x", what="delivery")  # type: ignore[arg-type]
    assert handle.calls == 4


async def test_other_refusals_are_not_sent_again() -> None:
    finished = Handle(rpc_error("workflow execution already completed", None))
    with pytest.raises(WrongState, match="already finished"):
        await service.send_update(finished, "carrier_event", "x", what="delivery")  # type: ignore[arg-type]
    assert finished.calls == 1
