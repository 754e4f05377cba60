"""How a workflow's validators refuse: a rule from ``domain`` raises an ``OrderflowError``, and
the update is rejected with it, non-retryable, before it reaches history."""

from __future__ import annotations

from collections.abc import Callable

from temporalio.exceptions import ApplicationError

from domain.errors import OrderflowError


def refusal(err: OrderflowError) -> ApplicationError:
    """The error a caller sees: the rule's words, and its class name as the type."""
    return ApplicationError(str(err), type=err.type, non_retryable=True)


def validate(check: Callable[[], object]) -> None:
    """Run a rule; its refusal rejects the update."""
    try:
        check()
    except OrderflowError as err:
        raise refusal(err) from None
