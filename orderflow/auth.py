"""Credentials on the wire: the ``orderflow-auth`` header every start, update and signal of a
client carries, and reading it back in the worker.

A client acts as a principal for the length of a call (``acting_as``); its interceptor signs a
fresh token with that principal's key and sends it in the header. The ``temporal`` CLI sends
the same header with ``--headers 'orderflow-auth="<token>"'`` (a JSON string), so a system in
another language does the same with a token from ``orderflow token``.

In the worker, an update's validator verifies the header against the trust store
(``verified``); its handler, which also runs on replay, reads the principal the token names
without checking the signature again (``claimed``): only a verified token got the update into
history, and keys rotated or retired since must not break a replay.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import jwt
import temporalio.client
from temporalio.api.common.v1 import Payload
from temporalio.converter import default as default_converter

from domain.authority import Caller
from domain.errors import NotAllowed, OrderflowError
from orderflow.identity import KeyRing, Principal, TrustStore, sign, verify

HEADER = "orderflow-auth"


@dataclass(frozen=True)
class Acting:
    principal: Principal
    actor: str
    order_id: str | None = None
    # Who starts the workflow when an update starts it (update-with-start): an order is
    # placed by an order desk, while the hold it starts with is the department's.
    starter: Principal | None = None
    # A token the caller presented (the HTTP API's Bearer token): sent as it is, instead of
    # one signed here, so the workflow verifies the caller's own proof.
    token: str | None = None


_ACTING: ContextVar[Acting | None] = ContextVar("orderflow_acting", default=None)


@contextlib.contextmanager
def acting_as(
    principal: Principal,
    actor: str,
    order_id: str | None = None,
    *,
    starter: Principal | None = None,
    token: str | None = None,
) -> Iterator[None]:
    """Calls made inside carry a token of ``principal`` vouching for ``actor`` (the start of
    an update-with-start one of ``starter``, when given), or ``token`` as it is."""
    token_var = _ACTING.set(Acting(principal, actor, order_id, starter, token))
    try:
        yield
    finally:
        _ACTING.reset(token_var)


def default_actor() -> str:
    """Who a principal vouches for when no ``--actor`` names someone: the local user."""
    return os.environ.get("USER") or getpass.getuser() or "unknown"


def header_payload(token: str) -> Payload:
    """The header's value: the token as a JSON string, as the ``temporal`` CLI sends it."""
    return default_converter().payload_converter.to_payloads([token])[0]


def token_of(headers: Mapping[str, Payload]) -> str | None:
    """The token a message's header carries, if any."""
    payload = headers.get(HEADER)
    if payload is None:
        return None
    try:
        value = json.loads(payload.data)
    except ValueError:
        value = payload.data.decode(errors="replace")
    return value if isinstance(value, str) else None


def verified(headers: Mapping[str, Payload], trust: TrustStore, now: datetime) -> Caller:
    """The caller an update's header proves, or ``NotAllowed`` saying why not."""
    token = token_of(headers)
    if token is None:
        raise NotAllowed(
            f"credential: no token in the {HEADER} header (orderflow token --as PRINCIPAL)"
        )
    return caller_of(token, trust, now)


def caller_of(token: str, trust: TrustStore, now: datetime) -> Caller:
    """The caller a token proves at ``now``, or ``NotAllowed`` saying why not."""
    cred = verify(trust, token, now)
    return Caller(
        kind=cred.principal.kind.value,
        id=cred.principal.id,
        actor=cred.actor,
        kid=cred.kid,
        order_id=cred.order_id,
        workflow_id=cred.workflow_id,
        jti=cred.jti,
        expires_at=cred.expires_at,
    )


def claimed(headers: Mapping[str, Payload]) -> Caller | None:
    """The caller a recorded update's token names (verified when the update was accepted);
    ``None`` for an update recorded without one (orders from before credentials)."""
    token = token_of(headers)
    if token is None:
        return None
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
        kid = jwt.get_unverified_header(token).get("kid", "")
        principal = Principal.parse(str(claims["sub"]))
    except (jwt.PyJWTError, ValueError, KeyError, OrderflowError):
        return None
    scope = claims.get("ord")
    expires = claims.get("exp")
    actor = str(claims.get("act", ""))
    # A key's id begins with its principal: a token that key signed for another (the order
    # page's for a customer, the console's for a department) names both, as when verified.
    owner = kid.rpartition("/")[0] if isinstance(kid, str) else ""
    if owner and owner != str(principal):
        actor = f"{actor} ({owner})"
    return Caller(
        kind=principal.kind.value,
        id=principal.id,
        actor=actor,
        kid=kid,
        order_id=str(scope) if scope else None,
        jti=str(claims.get("jti", "")),
        expires_at=datetime.fromtimestamp(expires, UTC) if isinstance(expires, int) else None,
    )


def signing(client: temporalio.client.Client, ring: KeyRing) -> temporalio.client.Client:
    """The same client, signing what it sends as the principal it acts as (a client that
    signs already is returned as it is)."""
    config = client.config()
    if any(isinstance(i, SigningInterceptor) for i in config["interceptors"]):
        return client
    config["interceptors"] = [*config["interceptors"], SigningInterceptor(ring)]
    return temporalio.client.Client(**config)


class SigningInterceptor(temporalio.client.Interceptor):
    """Adds a fresh token of the principal the client acts as to every start, update and
    signal it sends."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    def intercept_client(
        self, next: temporalio.client.OutboundInterceptor
    ) -> temporalio.client.OutboundInterceptor:
        return _Signing(next, self.ring)


class _Signing(temporalio.client.OutboundInterceptor):
    def __init__(self, next: temporalio.client.OutboundInterceptor, ring: KeyRing) -> None:
        super().__init__(next)
        self._ring = ring

    def _signed(
        self, headers: Mapping[str, Payload], workflow_id: str, *, start: bool = False
    ) -> Mapping[str, Payload]:
        acting = _ACTING.get()
        if acting is not None and acting.token is not None:
            return {**headers, HEADER: header_payload(acting.token)}
        if acting is not None and start and acting.starter is not None:
            acting = replace(acting, principal=acting.starter)
        keys = self._ring.private_keys(acting.principal) if acting is not None else []
        if acting is None or not keys:
            # Sent without a token: the worker decides whether it may be.
            return headers
        # Bound to the workflow it is sent to: read from a history, it is good for no other.
        token = sign(
            keys[-1], actor=acting.actor, order_id=acting.order_id, workflow_id=workflow_id
        )
        return {**headers, HEADER: header_payload(token)}

    async def start_workflow(
        self, input: temporalio.client.StartWorkflowInput
    ) -> temporalio.client.WorkflowHandle[Any, Any]:
        input.headers = self._signed(input.headers, input.id)
        return await super().start_workflow(input)

    async def signal_workflow(self, input: temporalio.client.SignalWorkflowInput) -> None:
        input.headers = self._signed(input.headers, input.id)
        await super().signal_workflow(input)

    async def start_workflow_update(
        self, input: temporalio.client.StartWorkflowUpdateInput
    ) -> temporalio.client.WorkflowUpdateHandle[Any]:
        input.headers = self._signed(input.headers, input.id)
        return await super().start_workflow_update(input)

    async def start_update_with_start_workflow(
        self, input: temporalio.client.StartWorkflowUpdateWithStartInput
    ) -> temporalio.client.WorkflowUpdateHandle[Any]:
        start = input.start_workflow_input
        headers = self._signed(input.update_workflow_input.headers, start.id)
        input.update_workflow_input = replace(input.update_workflow_input, headers=headers)
        input.start_workflow_input = replace(
            start, headers=self._signed(start.headers, start.id, start=True)
        )
        return await super().start_update_with_start_workflow(input)
