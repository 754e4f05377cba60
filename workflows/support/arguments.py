"""Every update of the engine takes one argument, a JSON object. A caller that sends more (the
``temporal`` CLI with two ``--input`` flags, an SDK call with two arguments) would otherwise
reach the validator as extra positional arguments, and the SDK's ``TypeError`` would come back
retryable: a worker interceptor refuses it first, as every other malformed message is."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from domain.errors import InvalidInput


class _OneArgumentInbound(WorkflowInboundInterceptor):
    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        if len(input.args) > 1:
            err = InvalidInput(
                f"{input.update} takes one argument, a JSON object; {len(input.args)} were sent"
            )
            raise ApplicationError(str(err), type=err.type, non_retryable=True)
        super().handle_update_validator(input)


class OneArgument(Interceptor):
    """Refuses an update sent with more than one argument, in its validator."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _OneArgumentInbound
