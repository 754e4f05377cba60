"""Who sent an update, proven: the worker checks the token in its ``orderflow-auth`` header.

Every update must carry one. When an update is validated (live only: validators never replay),
the token is verified against the worker's trust store, at the workflow task's time; an update
without a token, or whose token fails, is refused before anything is recorded, with the reason. The workflow's validators then see the verified caller
(``caller``) and apply the order's rules to it (``domain.authority``). The handler, which runs
again on every replay, reads the principal the recorded token names without verifying it again,
so rotating or retiring a key never breaks a replay; an update recorded without a token (orders
from before credentials) has no caller.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ExecuteWorkflowInput,
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

with workflow.unsafe.imports_passed_through():
    from domain.authority import Caller
    from domain.errors import NotAllowed, OrderflowError
    from orderflow.auth import claimed, token_of, verified
    from orderflow.desk import desk_for
    from orderflow.identity import LEEWAY


def _refuse(err: OrderflowError) -> ApplicationError:
    return ApplicationError(str(err), type=err.type, non_retryable=True)


class _CredentialInbound(WorkflowInboundInterceptor):
    def __init__(self, next: WorkflowInboundInterceptor) -> None:
        super().__init__(next)
        # The tokens this run has taken, until they expire: a token is good for one message
        # to a workflow, so one read from its history cannot be sent again. Handlers (which
        # replay) fill it; validators add to it too, for two copies in one workflow task.
        self._used: dict[str, datetime] = {}

    def _forget_expired(self) -> None:
        now = workflow.now()
        for jti in [j for j, until in self._used.items() if until + LEEWAY < now]:
            del self._used[jti]

    def _remember(self, caller: Caller | None) -> None:
        if caller is not None and caller.jti and caller.expires_at is not None:
            self._used[caller.jti] = caller.expires_at

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        # The token the start carried, for the workflow to have checked (and recorded) as
        # its first step: a start cannot be refused before it is in history.
        instance = workflow.instance()
        if hasattr(instance, "start_token"):
            instance.start_token = token_of(input.headers)
        return await super().execute_workflow(input)

    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        desk = desk_for(workflow.info().task_queue)
        trust = desk.trust if desk is not None else None
        if trust is None:
            raise _refuse(
                NotAllowed(
                    "credential: this worker has no trust store to check tokens against "
                    "(ORDERFLOW_KEYS_DIR/trust.json)"
                )
            )
        try:
            caller = verified(input.headers, trust, workflow.now())
        except OrderflowError as err:
            raise _refuse(err) from None
        here = workflow.info().workflow_id
        if caller.workflow_id is not None and caller.workflow_id != here:
            # A token read from another workflow's history is good for that one only.
            raise _refuse(
                NotAllowed(f"credential: the token was signed for {caller.workflow_id}, not {here}")
            )
        if caller.jti in self._used:
            raise _refuse(
                NotAllowed(
                    "credential: this token was used already; a token is good for one message "
                    "(make a new one for each: orderflow token --as PRINCIPAL)"
                )
            )
        self._remember(caller)
        _set_caller(caller)
        super().handle_update_validator(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        # Read by the handler before its first await (see OrderWorkflow's handlers).
        caller = claimed(input.headers)
        self._forget_expired()
        self._remember(caller)
        _set_caller(caller)
        return await super().handle_update_handler(input)


def _set_caller(caller: Any) -> None:
    instance = workflow.instance()
    if hasattr(instance, "caller"):
        instance.caller = caller


class Credentials(Interceptor):
    """Verifies the token an update carries, and tells the workflow who sent it."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _CredentialInbound
