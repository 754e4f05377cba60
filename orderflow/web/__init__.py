"""orderflow's HTTP listener (``orderflow dev --web-port``, the compose stack's ``web`` service).

It serves the codec endpoint of Temporal's remote codec protocol (``/codec/encode``,
``/codec/decode``), so the Temporal Web UI and the ``temporal`` CLI show decoded payloads to
staff, and the sign-in that gives a browser a staff session. Only staff decode: a request needs a
staff Bearer token (``orderflow token --as staff:NAME``) or a staff session cookie, and a browser's
request must come from an allowed origin (the Temporal UI's, and the listener's own).
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import socket
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from google.protobuf import json_format
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client

from domain.errors import UNDECODABLE_ENCODING, OrderflowError
from orderflow.codec import EncryptionCodec
from orderflow.config import Settings
from orderflow.identity import TRUST_FILE, Credential, PrincipalKind, TrustStore, verify
from orderflow.web.pages import framed
from orderflow.web.sessions import COOKIE, LIFETIME, Sessions, session_secret

_log = logging.getLogger(__name__)

# The largest codec request taken: a batch of payloads the size Temporal allows in one event.
MAX_CODEC_BODY = 4 * 1024 * 1024
ALLOWED_HEADERS = "Content-Type, X-Namespace, Authorization, Authorization-Extras"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def problem(status: int, title: str, detail: str, **headers: str) -> JSONResponse:
    """An RFC 9457 problem document."""
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


class Listener:
    """What the routes share: the settings, the trust store, the codec and the sessions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.codec = EncryptionCodec(settings.codec_keys(), encrypt=settings.codec_encrypt)
        self._trust_path = settings.keys_path / TRUST_FILE
        self._trust: TrustStore | None = None
        self._used: dict[str, datetime] = {}
        self.sessions = Sessions(session_secret(settings.keys_path))
        self.own_origin = origin_of(settings.public_web_url)
        self.origins = {self.own_origin, origin_of(settings.ui_url)}
        # http://localhost:8233 and http://127.0.0.1:8233 are the same UI to a newcomer.
        for origin in list(self.origins):
            if "//localhost:" in origin:
                self.origins.add(origin.replace("//localhost:", "//127.0.0.1:"))
        self.secure_cookie = self.own_origin.startswith("https:")

    def first_use(self, jti: str, expires_at: datetime) -> bool:
        """True the first time a token (by its ``jti``) signs in here; remembered until it
        expires."""
        now = datetime.now(UTC)
        self._used = {j: t for j, t in self._used.items() if t > now}
        if jti in self._used:
            return False
        self._used[jti] = expires_at
        return True

    def foreign(self, request: Request) -> str | None:
        origin = request.headers.get("origin")
        return origin if origin is not None and origin not in self.origins else None

    def cross_site_form(self, request: Request) -> Response | None:
        """A form post from a page of another origin (login CSRF, a forced sign-out)."""
        if (bad := self.foreign(request)) is not None:
            return problem(403, "Forbidden", f"origin {bad} may not post here")
        if request.headers.get("sec-fetch-site") == "cross-site":
            return problem(403, "Forbidden", "a page of another site may not post here")
        return None

    @property
    def trust(self) -> TrustStore | None:
        """The workers' trust store, once there is one (it follows the file from then on)."""
        if self._trust is None and self._trust_path.exists():
            self._trust = TrustStore.load(self._trust_path)
        return self._trust

    def credential(self, token: str) -> Credential | str:
        """The credential a token proves for this listener, or why it proves none. A token
        bound to one order or one workflow (as every token in a history's headers is) is for
        that message only."""
        if self.trust is None:
            return "this listener has no trust store yet: it accepts no token"
        try:
            cred = verify(self.trust, token)
        except OrderflowError as err:
            return str(err)
        if cred.order_id is not None or cred.workflow_id is not None:
            return (
                "credential: this token is bound to one order or workflow; make one for this "
                "use with `orderflow token --as staff:NAME`"
            )
        return cred

    def who(self, request: Request) -> tuple[str, str] | str:
        """The principal and actor a request proves (Bearer token, else session cookie), or
        why it proves none."""
        auth = request.headers.get("authorization", "")
        if auth:
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return "the Authorization header takes 'Bearer <token>' (orderflow token)"
            cred = self.credential(token.strip())
            if isinstance(cred, str):
                return cred
            return str(cred.principal), cred.actor
        session = self.sessions.read(request.cookies.get(COOKIE))
        # A session ends early when the key whose token opened it is retired.
        if session is not None and self.trust is not None and session.kid in self.trust:
            return session.principal, session.actor
        if request.cookies.get(COOKIE):
            return "the session has expired or is not valid: sign in again at /signin"
        return (
            "no credential: send 'Authorization: Bearer <token>' (orderflow token --as "
            "staff:NAME) or sign in at /signin"
        )


def _cors(origin: str) -> dict[str, str]:
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


def create_app(settings: Settings, client: Client | None = None) -> FastAPI:
    """The listener; with a client of the engine, also the HTTP API under ``/api/v1``."""
    listener = Listener(settings)
    app = FastAPI(title="orderflow", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.listener = listener

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> Response:
        """No such page: a problem document for the API's callers, a line for everyone else."""
        if request.url.path.startswith("/api/"):
            from orderflow.web.api import problem_response

            return problem_response(err.status_code, str(err.detail))
        return problem(err.status_code, str(err.detail), str(err.detail))

    if client is not None:
        from orderflow.registry import Registry
        from orderflow.service import Orderflow
        from orderflow.web.api import create_api
        from orderflow.web.console import add_console
        from orderflow.web.customer import add_order_pages

        service = Orderflow(client, Registry(settings.seeds_dir), settings)
        app.mount("/api/v1", create_api(service, lambda: listener.trust))
        add_order_pages(app, listener, service)
        add_console(app, listener, service)

    foreign = listener.foreign
    cross_site_form = listener.cross_site_form

    @app.options("/codec/{operation}")
    async def codec_preflight(operation: str, request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is None or origin not in listener.origins:
            return problem(403, "Forbidden", f"origin {origin} may not call the codec endpoint")
        return Response(
            status_code=204,
            headers={
                **_cors(origin),
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": "600",
            },
        )

    @app.post("/codec/{operation}")
    async def codec(operation: str, request: Request) -> Response:
        origin = request.headers.get("origin")
        cors = _cors(origin) if origin in listener.origins else {}
        if (bad := foreign(request)) is not None:
            return problem(403, "Forbidden", f"origin {bad} may not call the codec endpoint")
        if operation not in ("encode", "decode"):
            return problem(404, "Not Found", "the codec endpoint has /encode and /decode", **cors)
        who = listener.who(request)
        if isinstance(who, str):
            return problem(401, "Unauthorized", who, **{"WWW-Authenticate": "Bearer"}, **cors)
        principal, actor = who
        if not principal.startswith(f"{PrincipalKind.STAFF.value}:"):
            return problem(
                403, "Forbidden", f"{principal} may not read payloads: staff only", **cors
            )
        body = await request.body()
        if len(body) > MAX_CODEC_BODY:
            return problem(413, "Content Too Large", f"at most {MAX_CODEC_BODY} bytes", **cors)
        try:
            payloads = json_format.Parse(body, Payloads(), ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError) as err:
            detail = f'the body is {{"payloads": [...]}} in protobuf JSON: {err}'
            return problem(400, "Bad Request", detail, **cors)
        if operation == "encode":
            out = await listener.codec.encode(payloads.payloads)
        else:
            out = [_readable(p) for p in await listener.codec.decode(payloads.payloads)]
        _log.info(
            "codec %s of %d payloads for %s (%s), namespace %s",
            operation,
            len(out),
            principal,
            actor,
            request.headers.get("x-namespace", "?"),
        )
        return Response(
            json_format.MessageToJson(Payloads(payloads=out), indent=None),
            media_type="application/json",
            headers=cors,
        )

    @app.get("/signin", response_class=HTMLResponse)
    async def signin_form(request: Request) -> HTMLResponse:
        return framed(_signin_page(listener, request))

    @app.post("/signin")
    async def signin(request: Request) -> Response:
        if (refused := cross_site_form(request)) is not None:
            return refused
        form = await request.form()
        cred = listener.credential(str(form.get("token", "")).strip())
        if isinstance(cred, str):
            return framed(_signin_page(listener, request, cred), 401)
        # A token signs in once, and the session lasts no longer than the token would have.
        if not listener.first_use(cred.jti, cred.expires_at):
            why = "credential: this token was used already; make a new one to sign in"
            return framed(_signin_page(listener, request, why), 401)
        now = datetime.now(UTC)
        until = min(now + LIFETIME, cred.expires_at)
        # A department or its supervisor goes on to its console; staff stay here.
        works_queue = cred.principal.kind.value in ("department", "supervisor")
        response = RedirectResponse("/console" if works_queue else "/signin", status_code=303)
        response.set_cookie(
            COOKIE,
            listener.sessions.issue(str(cred.principal), cred.actor, cred.kid, until),
            max_age=max(1, int((until - now).total_seconds())),
            httponly=True,
            samesite="lax",
            secure=listener.secure_cookie,
        )
        return response

    @app.post("/signout")
    async def signout(request: Request) -> Response:
        if (refused := cross_site_form(request)) is not None:
            return refused
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> HTMLResponse:
        return framed(_signin_page(listener, request))

    return app


def _readable(opened: Payload) -> Payload:
    """What the codec endpoint answers for a payload it cannot open: a JSON note saying why,
    which the Web UI and the CLI show in its place (never the ciphertext as if it were data)."""
    if opened.metadata.get("encoding") != UNDECODABLE_ENCODING:
        return opened
    note = json.dumps({"undecodable": opened.data.decode(errors="replace")})
    return Payload(metadata={"encoding": b"json/plain"}, data=note.encode())


def _signin_page(listener: Listener, request: Request, error: str | None = None) -> str:
    session = listener.sessions.read(request.cookies.get(COOKIE))
    codec = f"{listener.settings.public_web_url}/codec"
    ui = listener.settings.ui_url
    if session is not None:
        state = (
            f"<p>Signed in as <strong>{html.escape(session.principal)}</strong> "
            f"({html.escape(session.actor)}) until {session.expires_at:%Y-%m-%d %H:%M} UTC.</p>"
            '<form method="post" action="/signout"><button>Sign out</button></form>'
        )
    else:
        state = "<p>Not signed in.</p>"
    failed = f'<p role="alert" class="error">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>orderflow: sign in</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;
color:#1a1a1a}} textarea{{width:100%;font:14px monospace}} .error{{color:#a00000}}
code{{background:#f2f2f2;padding:0 .2rem}}</style></head>
<body><main><h1>orderflow</h1>
{state}{failed}
<h2>Sign in</h2>
<form method="post" action="/signin">
<p><label for="token">Token</label> (from <code>orderflow token --as staff:NAME --ttl 1h</code>)</p>
<textarea id="token" name="token" rows="4" required></textarea>
<p><button type="submit">Sign in</button></p></form>
<h2>Decoded histories in the Temporal UI</h2>
<p>Customer data is encrypted in every history. Staff who are signed in here read it decoded in
the <a href="{html.escape(ui)}">Temporal UI</a>: open its Data Encoder settings, choose
<em>Use my browser setting</em>, set the endpoint to <code>{html.escape(codec)}</code>, turn on
<em>Include cross-origin credentials</em>, and apply.</p>
<p>From the <code>temporal</code> CLI: <code>--codec-endpoint {html.escape(codec)}
--codec-auth "Bearer $(orderflow token --as staff:NAME)"</code>.</p>
</main></body></html>"""


def bind(settings: Settings) -> socket.socket:
    """The listener's socket, bound now: a port in use is an error here, with its number."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.web_host, settings.web_port))
    except OSError as err:
        sock.close()
        raise OSError(
            f"cannot listen on {settings.web_host}:{settings.web_port} ({err.strerror}); "
            "choose another with --web-port or ORDERFLOW_WEB_PORT"
        ) from None
    sock.listen(128)
    return sock


async def serve(
    settings: Settings, stop: asyncio.Event, sock: socket.socket, client: Client | None = None
) -> None:
    """Serve the listener on ``sock`` until ``stop`` is set."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, client),
            log_level="warning",
            lifespan="off",
            # Open order pages ask every second; a connection kept for 30 s serves them all.
            timeout_keep_alive=30,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    await task
    stopping.cancel()
