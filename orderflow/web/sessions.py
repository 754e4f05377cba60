"""Signed-in sessions at orderflow's HTTP listener: a cookie the listener signs (HMAC-SHA256
with a secret kept beside the keys), naming the principal and actor a verified token proved at
sign-in, and until when. The cookie is HttpOnly and SameSite=Lax, so a page of another site
cannot use it; the Temporal UI on the same host (another port is the same site) sends it to the
codec endpoint when its codec setting "include cross-origin credentials" is on."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

COOKIE = "orderflow_session"
SECRET_FILE = "web-session.key"
# At most; a session ends when the token that opened it would have expired.
LIFETIME = timedelta(hours=8)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def session_secret(keys_dir: Path) -> bytes:
    """The listener's secret: created on first use, readable by its owner only; every web
    process sharing the keys dir honours the same sessions."""
    path = keys_dir / SECRET_FILE
    if not path.exists():
        keys_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
        os.replace(tmp, path)
    return path.read_text().strip().encode()


@dataclass(frozen=True)
class Session:
    principal: str
    actor: str
    # The key whose token opened the session: retiring it ends the session.
    kid: str
    expires_at: datetime
    # A customer's session is for the one order its link opened.
    order_id: str | None = None


class Sessions:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def csrf(self, cookie: str) -> str:
        """The token a session's forms carry: a page of another site cannot know it (a key
        of its own, derived from the secret)."""
        key = hmac.new(self._secret, b"csrf", hashlib.sha256).digest()
        return _b64(hmac.new(key, cookie.encode(), hashlib.sha256).digest())

    def csrf_ok(self, cookie: str, sent: str) -> bool:
        return hmac.compare_digest(self.csrf(cookie).encode(), sent.encode())

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())

    def issue(
        self, principal: str, actor: str, kid: str, until: datetime, order_id: str | None = None
    ) -> str:
        claims = {"sub": principal, "act": actor, "kid": kid, "exp": int(until.timestamp())}
        if order_id is not None:
            claims["ord"] = order_id
        body = _b64(json.dumps(claims).encode())
        return f"{body}.{self._mac(body)}"

    def read(self, cookie: str | None, now: datetime | None = None) -> Session | None:
        """The session a cookie carries, or None when it is missing, forged or expired."""
        if not cookie or "." not in cookie:
            return None
        body, mac = cookie.rsplit(".", 1)
        if not hmac.compare_digest(mac.encode(), self._mac(body).encode()):
            return None
        try:
            claims = json.loads(_unb64(body))
            expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
            order = claims.get("ord")
            session = Session(
                str(claims["sub"]),
                str(claims["act"]),
                str(claims["kid"]),
                expires,
                str(order) if order is not None else None,
            )
        except (ValueError, KeyError, TypeError):
            return None
        if (now or datetime.now(UTC)) >= expires:
            return None
        return session
