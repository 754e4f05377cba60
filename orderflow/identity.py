"""Who acts on an order: principals, their Ed25519 keys, and the short-lived tokens they sign.

A **principal** is a system or person the engine knows: a department's system (``billing``), a
department's supervisor (``supervisor:billing``), a carrier (``carrier:ups``), the clerks of a
store (``store:store-downtown``), the order desk that places orders (``desk:web``), staff who read
order histories (``staff:ana``), the engine itself (``engine``) and customers
(``customer:C-1001``).

Each principal holds one or more **keys**: Ed25519, kept as JWKs whose ``kid`` names the
principal and the key's thumbprint (RFC 7638), so keys rotate without downtime: a new key signs
from the moment it is added, and the older ones still verify until they are retired. Private keys
stay with each principal's system (``<keys dir>/private/``, readable by its owner only); the
engine's side holds only the **trust store** (``<keys dir>/trust.json``), a JWK Set of public
keys, each with the principal it belongs to.

A **token** is a JWT signed with EdDSA: ``sub`` the principal, ``act`` the person or process the
principal vouches for, ``ord`` an order it is limited to (optional), ``iat``/``exp`` (a few
minutes) and ``jti``. ``verify`` accepts it only when its key is in the trust store, belongs to
the principal the token names, and the signature and times hold; every refusal says which.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from pydantic import BaseModel, ConfigDict

from domain.durations import format_duration
from domain.errors import InvalidInput, NotAllowed, NotFound, OrderflowError
from orderflow.codec import ensure_key_file

if TYPE_CHECKING:
    from orderflow.config import Settings
    from orderflow.registry import Registry

ISSUER = "orderflow"
ALGORITHM = "EdDSA"
# How long a token is good for unless its maker asks otherwise, and the most it may ask.
DEFAULT_TTL = timedelta(minutes=5)
MAX_TTL = timedelta(hours=1)
# Clocks of different machines disagree a little.
LEEWAY = timedelta(seconds=30)
TRUST_FILE = "trust.json"
_log = logging.getLogger("orderflow.identity")
PRIVATE_DIR = "private"


def _warm_up() -> None:
    """Have the cryptography library raise ``InvalidSignature`` once, here. It imports that
    exception's type the first time it raises it, and an import that first happens inside a
    workflow's update validator (the worker's import hooks) aborts the process with a panic."""
    key = Ed25519PrivateKey.generate().public_key()
    with contextlib.suppress(InvalidSignature):
        key.verify(b"\0" * 64, b"")


_warm_up()


class PrincipalKind(StrEnum):
    DEPARTMENT = "department"
    SUPERVISOR = "supervisor"
    CARRIER = "carrier"
    STORE = "store"
    DESK = "desk"
    STAFF = "staff"
    ENGINE = "engine"
    CUSTOMER = "customer"
    # The customer's order page (orderflow.web): its key vouches for a customer on one order
    # only, the one a link from that order's e-mail opened.
    PORTAL = "portal"
    # The department console (orderflow.web): its key vouches for a department, or its
    # supervisor, whose own token signed the console in.
    CONSOLE = "console"


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Principal(BaseModel):
    """A principal, written as users name it: ``billing`` (a department), ``supervisor:billing``,
    ``carrier:ups``, ``store:store-downtown``, ``desk:web``, ``staff:ana``, ``engine``,
    ``customer:C-1001``."""

    model_config = ConfigDict(frozen=True)

    kind: PrincipalKind
    id: str

    @classmethod
    def parse(cls, text: str) -> Principal:
        text = text.strip()
        if text == PrincipalKind.ENGINE.value:
            return cls(kind=PrincipalKind.ENGINE, id="engine")
        kind, sep, name = text.partition(":")
        if not sep:
            kind, name = PrincipalKind.DEPARTMENT.value, text
        kinds = [k.value for k in PrincipalKind]
        if kind not in kinds or kind == PrincipalKind.ENGINE.value:
            raise InvalidInput(
                f"as: '{text}' is not a principal; write a department (billing) or "
                "supervisor:DEPT, carrier:ID, store:LOCATION, desk:NAME, staff:NAME, "
                "portal:NAME, console:NAME, customer:ID or engine"
            )
        if not _NAME.match(name):
            raise InvalidInput(f"as: '{name}' is not a valid name in '{text}'")
        return cls(kind=PrincipalKind(kind), id=name)

    def __str__(self) -> str:
        if self.kind == PrincipalKind.DEPARTMENT:
            return self.id
        if self.kind == PrincipalKind.ENGINE:
            return "engine"
        return f"{self.kind.value}:{self.id}"

    @property
    def file_stem(self) -> str:
        return str(self).replace(":", "--")


# The engine itself: what its activities send to the engine's other workflows.
ENGINE = Principal(kind=PrincipalKind.ENGINE, id="engine")
# The order desk of the web shop: who places orders unless ``--as`` names another.
DESK = Principal(kind=PrincipalKind.DESK, id="web")
# The customer's order page.
PORTAL = Principal(kind=PrincipalKind.PORTAL, id="web")
# The department console.
CONSOLE = Principal(kind=PrincipalKind.CONSOLE, id="web")
# An order link in an e-mail: good for opening that order's page, for this long.
LINK_AUDIENCE = "order-link"
LINK_TTL = timedelta(days=14)


class Credential(BaseModel):
    """What a verified token proves: who acts, for whom, on what, with which key, until when."""

    model_config = ConfigDict(frozen=True)

    principal: Principal
    actor: str
    order_id: str | None = None
    workflow_id: str | None = None
    kid: str
    jti: str
    expires_at: datetime


# --------------------------------------------------------------------------- keys


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    if isinstance(key, Ed25519PrivateKey):
        return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def thumbprint(x: str) -> str:
    """RFC 7638 thumbprint of an Ed25519 public JWK."""
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    return _b64(hashlib.sha256(canonical.encode()).digest())


def new_key(principal: Principal, now: datetime) -> dict[str, Any]:
    """A new private JWK for ``principal``."""
    private = Ed25519PrivateKey.generate()
    x = _b64(_raw(private.public_key()))
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": ALGORITHM,
        "use": "sig",
        "kid": f"{principal}/{thumbprint(x)[:16]}",
        "x": x,
        "d": _b64(_raw(private)),
        "principal": str(principal),
        "created": now.astimezone(UTC).isoformat(),
    }


def public_jwk(private_jwk: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in private_jwk.items() if k != "d"}


class TrustStore:
    """The public keys the engine accepts, each with the principal it belongs to. One loaded
    from a file follows it: a key added or retired there (``orderflow keys``) counts from
    the next update on, with no restart, so keys rotate without downtime."""

    def __init__(self, keys: Iterable[dict[str, Any]]) -> None:
        self._keys = self._parse(keys)
        self._path: Path | None = None
        self._stamp: tuple[int, int, int] | None = None

    @staticmethod
    def _parse(keys: Iterable[dict[str, Any]]) -> dict[str, tuple[Principal, Ed25519PublicKey]]:
        parsed: dict[str, tuple[Principal, Ed25519PublicKey]] = {}
        for jwk in keys:
            if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
                kid = jwk.get("kid") if isinstance(jwk, dict) else jwk
                raise InvalidInput(f"trust store: key {kid!r} is not an Ed25519 JWK")
            try:
                public = Ed25519PublicKey.from_public_bytes(_unb64(jwk["x"]))
                parsed[jwk["kid"]] = (Principal.parse(jwk["principal"]), public)
            except (KeyError, ValueError, TypeError) as err:
                raise InvalidInput(
                    f"trust store: key {jwk.get('kid')!r} is not usable: {err!s}"
                ) from None
        return parsed

    @staticmethod
    def _read(path: Path) -> list[dict[str, Any]]:
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise NotFound(f"no trust store at {path}") from None
        except ValueError as err:
            raise InvalidInput(f"trust store {path} is not JSON: {err}") from None
        keys = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(keys, list):
            raise InvalidInput(f"trust store {path} is not a JWK Set (an object with 'keys')")
        return keys

    @staticmethod
    def _stamp_of(path: Path) -> tuple[int, int, int]:
        """Which version of the file is there: ``orderflow keys`` replaces it whole (a new
        inode), so two changes within one tick of the clock still differ."""
        st = path.stat()
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    @classmethod
    def load(cls, path: Path) -> TrustStore:
        stamp = cls._stamp_of(path) if path.exists() else None
        store = cls(cls._read(path))
        store._path, store._stamp = path, stamp
        return store

    def _follow(self) -> None:
        """Read the file again when it changed; a file being rewritten or broken keeps the
        keys last read (``orderflow keys`` replaces it whole, atomically)."""
        if self._path is None:
            return
        try:
            stamp = self._stamp_of(self._path)
            if stamp != self._stamp:
                self._keys = self._parse(self._read(self._path))
                self._stamp = stamp
        except (OSError, OrderflowError) as err:
            _log.warning("trust store not reloaded, the keys last read stay: %s", err)

    def __contains__(self, kid: str) -> bool:
        self._follow()
        return kid in self._keys

    def key(self, kid: str) -> tuple[Principal, Ed25519PublicKey]:
        self._follow()
        found = self._keys.get(kid)
        if found is None:
            raise NotAllowed(f"credential: key '{kid}' is not trusted (unknown or retired)")
        return found


class KeyRing:
    """A keys directory: the trust store, and the private keys held on this machine."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # The private keys here by principal, oldest first, read once per change of the folder
        # (a key added or retired, by this process or another): signing reads no file per update.
        self._read: tuple[int, dict[str, list[dict[str, Any]]]] | None = None

    @property
    def trust_path(self) -> Path:
        return self.root / TRUST_FILE

    def _trusted(self) -> list[dict[str, Any]]:
        if not self.trust_path.exists():
            return []
        return list(json.loads(self.trust_path.read_text()).get("keys", []))

    def _write_trust(self, keys: list[dict[str, Any]]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.trust_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keys": keys}, indent=2) + "\n")
        tmp.replace(self.trust_path)

    def trust(self) -> TrustStore:
        return TrustStore(self._trusted())

    def private_keys(self, principal: Principal) -> list[dict[str, Any]]:
        """This machine's private keys of ``principal``, oldest first."""
        return list(self._private_by_principal().get(str(principal), ()))

    def _private_by_principal(self) -> dict[str, list[dict[str, Any]]]:
        folder = self.root / PRIVATE_DIR
        try:
            changed = folder.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        if self._read is None or self._read[0] != changed:
            keys = [json.loads(path.read_text()) for path in sorted(folder.glob("*.jwk"))]
            by_principal: dict[str, list[dict[str, Any]]] = {}
            for key in sorted(keys, key=lambda k: k.get("created", "")):
                by_principal.setdefault(key["principal"], []).append(key)
            self._read = (changed, by_principal)
        return self._read[1]

    def add(self, principal: Principal, now: datetime | None = None) -> str:
        """A new key for ``principal``: trusted at once, and the one it signs with from now."""
        jwk = new_key(principal, now or datetime.now(UTC))
        folder = self.root / PRIVATE_DIR
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        path = folder / f"{principal.file_stem}.{jwk['kid'].rsplit('/', 1)[1]}.jwk"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(jwk, out)
        self._write_trust([*self._trusted(), public_jwk(jwk)])
        return str(jwk["kid"])

    def retire(self, kid: str) -> None:
        """Stop trusting a key (tokens it signed are refused from now) and drop it here."""
        trusted = self._trusted()
        if not any(k["kid"] == kid for k in trusted):
            raise NotFound(f"no trusted key '{kid}'")
        self._write_trust([k for k in trusted if k["kid"] != kid])
        principal, _, thumb = kid.rpartition("/")
        stem = Principal.parse(principal).file_stem
        (self.root / PRIVATE_DIR / f"{stem}.{thumb}.jwk").unlink(missing_ok=True)

    def listed(self) -> list[dict[str, Any]]:
        """The trusted keys, and whether this machine holds each one's private half."""
        return [
            {
                "kid": k["kid"],
                "principal": k["principal"],
                "created": k.get("created", ""),
                "private_here": (
                    self.root
                    / PRIVATE_DIR
                    / f"{Principal.parse(k['principal']).file_stem}.{k['kid'].rsplit('/', 1)[1]}.jwk"
                ).exists(),
            }
            for k in self._trusted()
        ]

    def ensure(self, principals: Iterable[Principal]) -> list[str]:
        """A key for each principal that has none here; returns the new keys' ids."""
        return [self.add(p) for p in principals if not self.private_keys(p)]

    def issue(
        self,
        principal: Principal,
        *,
        actor: str,
        order_id: str | None = None,
        ttl: timedelta = DEFAULT_TTL,
        now: datetime | None = None,
        workflow_id: str | None = None,
    ) -> str:
        """A token signed with ``principal``'s newest key on this machine."""
        keys = self.require(principal)
        return sign(
            keys[-1], actor=actor, order_id=order_id, ttl=ttl, now=now, workflow_id=workflow_id
        )

    def for_customer(
        self, customer_id: str, order_id: str, *, link: bool = False, actor: str = "order page"
    ) -> str:
        """The order page's token for a customer on one order (``link``: the e-mail's link)."""
        keys = self.require(PORTAL)
        if link:
            return sign_for_customer(
                keys[-1], customer_id, order_id, actor="order link", ttl=LINK_TTL,
                audience=LINK_AUDIENCE,
            )  # fmt: skip
        return sign_for_customer(keys[-1], customer_id, order_id, actor=actor)

    def require(self, principal: Principal) -> list[dict[str, Any]]:
        """``principal``'s private keys here; refused when there are none."""
        keys = self.private_keys(principal)
        if not keys:
            raise NotFound(
                f"no credential for {principal} in {self.root}: only a principal whose private "
                "key you hold can act (orderflow dev creates dev keys for every principal in "
                "the seeds; a department's machine holds its own)"
            )
        return keys


def _encode(
    private_jwk: dict[str, Any],
    subject: Principal,
    actor: str,
    ttl: timedelta,
    now: datetime | None,
    **scope: str | None,
) -> str:
    """A token signed with ``private_jwk`` for ``subject``, with ``scope`` claims (``ord``,
    ``wid``, ``aud``) that are given."""
    issued = (now or datetime.now(UTC)).astimezone(UTC)
    private = Ed25519PrivateKey.from_private_bytes(_unb64(private_jwk["d"]))
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": str(subject),
        "act": actor,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    claims.update({k: v for k, v in scope.items() if v})
    return jwt.encode(claims, private, algorithm=ALGORITHM, headers={"kid": private_jwk["kid"]})


def sign(
    private_jwk: dict[str, Any],
    *,
    actor: str,
    order_id: str | None = None,
    ttl: timedelta = DEFAULT_TTL,
    now: datetime | None = None,
    workflow_id: str | None = None,
) -> str:
    """A token of the key's principal vouching for ``actor``; limited to one order
    (``ord``) and to one workflow (``wid``, what a client signs for each call) when given."""
    if not timedelta(0) < ttl <= MAX_TTL:
        raise InvalidInput(
            f"ttl: a token lives at most {format_duration(MAX_TTL)} "
            f"(got {format_duration(ttl) if ttl > timedelta(0) else ttl})"
        )
    if not actor.strip():
        raise InvalidInput("actor: a token names the person or process it acts for")
    principal = Principal.parse(private_jwk["principal"])
    return _encode(private_jwk, principal, actor.strip(), ttl, now, ord=order_id, wid=workflow_id)


def sign_for_customer(
    portal_jwk: dict[str, Any],
    customer_id: str,
    order_id: str,
    *,
    actor: str = "order page",
    ttl: timedelta = DEFAULT_TTL,
    audience: str | None = None,
    now: datetime | None = None,
) -> str:
    """A token of the order page's key vouching for ``customer_id`` on ``order_id`` only: what
    the page sends for a customer who opened it from their order's e-mail (no ``audience``),
    or that e-mail's link itself (``audience=LINK_AUDIENCE``, living up to ``LINK_TTL``)."""
    if Principal.parse(portal_jwk["principal"]).kind != PrincipalKind.PORTAL:
        raise InvalidInput("only an order page's key (portal:NAME) vouches for a customer")
    if not _SCOPE.match(order_id) or not _NAME.match(customer_id):
        raise InvalidInput(f"order {order_id!r} of customer {customer_id!r} cannot be named")
    if not (timedelta(0) < ttl <= (LINK_TTL if audience else MAX_TTL)):
        raise InvalidInput(f"ttl: {format_duration(ttl)} is too long for this token")
    customer = Principal(kind=PrincipalKind.CUSTOMER, id=customer_id)
    return _encode(portal_jwk, customer, actor, ttl, now, ord=order_id, aud=audience)


# An order or workflow id a token may name.
_SCOPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")


def _scopes_well_formed(claims: dict[str, Any]) -> None:
    """``ord`` and ``wid``, when a token has them, name one order or workflow: a token whose
    scope is empty or not a name is refused, never read as unscoped."""
    for claim in ("ord", "wid"):
        if claim in claims and not (isinstance(claims[claim], str) and _SCOPE.match(claims[claim])):
            raise NotAllowed(f"credential: the token's '{claim}' is not an order or workflow id")


def vouched(owner: Principal, claimed: Principal, claims: dict[str, Any]) -> bool:
    """An order page's key speaks for a customer, on one order only; the console's for a
    department or its supervisor."""
    if owner.kind == PrincipalKind.PORTAL:
        return claimed.kind == PrincipalKind.CUSTOMER and isinstance(claims.get("ord"), str)
    if owner.kind == PrincipalKind.CONSOLE:
        return claimed.kind in (PrincipalKind.DEPARTMENT, PrincipalKind.SUPERVISOR)
    return False


def sign_for(
    console_jwk: dict[str, Any], principal: Principal, *, actor: str, ttl: timedelta = DEFAULT_TTL
) -> str:
    """The console's token for a department (or supervisor) signed in to it, vouching for the
    person its own token named."""
    owner = Principal.parse(console_jwk["principal"])
    if owner.kind != PrincipalKind.CONSOLE or not vouched(owner, principal, {}):
        raise InvalidInput(f"{owner} does not vouch for {principal}")
    return _encode(console_jwk, principal, actor, ttl, None)


def _signer(
    trust: TrustStore, token: str, not_a_token: str, unsigned: str
) -> tuple[str, Principal, Ed25519PublicKey]:
    """The key a token names and whose it is, as the trust store has it (not yet checked
    against the signature)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise NotAllowed(not_a_token) from None
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM or not isinstance(kid, str):
        raise NotAllowed(unsigned or not_a_token)
    owner, public = trust.key(kid)
    return kid, owner, public


def verify_link(
    trust: TrustStore, token: str, now: datetime | None = None
) -> tuple[Credential, bool]:
    """The customer and order an e-mail's order link opens, and whether it has expired (an
    expired link still says whose it was, so the page can offer to e-mail a fresh one to the
    customer's own address); ``NotAllowed`` when it is no such link."""
    kid, owner, public = _signer(trust, token, "this is not an order link", "")
    try:
        claims = jwt.decode(
            token,
            public,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            audience=LINK_AUDIENCE,
            options={"require": ["exp", "sub", "ord", "aud"], "verify_exp": False},
        )
    except jwt.PyJWTError as err:
        raise NotAllowed(f"this is not a valid order link ({err})") from None
    _scopes_well_formed(claims)
    try:
        claimed = Principal.parse(str(claims["sub"]))
    except InvalidInput:
        raise NotAllowed("this is not an order link") from None
    if not vouched(owner, claimed, claims):
        raise NotAllowed("this is not an order link")
    expires = datetime.fromtimestamp(claims["exp"], UTC)
    cred = Credential(
        principal=claimed,
        actor=str(claims.get("act", "order link")),
        order_id=str(claims["ord"]),
        kid=kid,
        jti=str(claims.get("jti", "")),
        expires_at=expires,
    )
    return cred, (now or datetime.now(UTC)) > expires + LEEWAY


def verify(trust: TrustStore, token: str, now: datetime | None = None) -> Credential:
    """The credential a token proves, or ``NotAllowed`` saying why not."""
    kid, owner, public = _signer(
        trust,
        token,
        "credential: not a signed token (expected a JWT)",
        "credential: a token must be signed with EdDSA and name its key (kid)",
    )
    at = (now or datetime.now(UTC)).astimezone(UTC)
    try:
        claims = jwt.decode(
            token,
            public,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            leeway=LEEWAY,
            options={"require": ["exp", "iat", "sub", "act", "jti"], "verify_exp": False},
        )
    except jwt.InvalidSignatureError:
        raise NotAllowed(f"credential: the signature does not match key '{kid}'") from None
    except jwt.PyJWTError as err:
        raise NotAllowed(f"credential: {err}") from None
    expires = datetime.fromtimestamp(claims["exp"], UTC)
    if at > expires + LEEWAY:
        raise NotAllowed(f"credential: the token expired at {expires.isoformat()}")
    if datetime.fromtimestamp(claims["iat"], UTC) > at + LEEWAY:
        raise NotAllowed("credential: the token was issued in the future")
    if expires - datetime.fromtimestamp(claims["iat"], UTC) > MAX_TTL:
        raise NotAllowed(f"credential: a token may live at most {format_duration(MAX_TTL)}")
    _scopes_well_formed(claims)
    try:
        claimed = Principal.parse(str(claims["sub"]))
    except InvalidInput as err:
        raise NotAllowed(f"credential: the token's subject is not a principal ({err})") from None
    actor = str(claims["act"])
    if claimed != owner:
        if not vouched(owner, claimed, claims):
            raise NotAllowed(
                f"credential: the token says {claimed}, but key '{kid}' belongs to {owner}"
            )
        actor = f"{actor} ({owner})"
    return Credential(
        principal=claimed,
        actor=actor,
        order_id=claims.get("ord"),
        workflow_id=claims.get("wid"),
        kid=kid,
        jti=str(claims["jti"]),
        expires_at=expires,
    )


def seeded_principals(
    departments: Iterable[str],
    carriers: Iterable[str],
    locations: Iterable[str],
    customers: Iterable[str] = (),
) -> list[Principal]:
    """Every principal the seeds name: each department and its supervisor, each carrier, the
    clerks of each store, the web shop's order desk, the staff on duty, the engine, and (on a
    dev stack, where one machine plays everyone) each customer."""
    out: list[Principal] = []
    for dept in sorted(departments):
        out.append(Principal(kind=PrincipalKind.DEPARTMENT, id=dept))
        out.append(Principal(kind=PrincipalKind.SUPERVISOR, id=dept))
    out += [Principal(kind=PrincipalKind.CARRIER, id=c) for c in sorted(carriers)]
    out += [Principal(kind=PrincipalKind.STORE, id=loc) for loc in sorted(locations)]
    out += [
        DESK,
        PORTAL,
        CONSOLE,
        Principal(kind=PrincipalKind.STAFF, id="operator"),
        ENGINE,
    ]
    out += [Principal(kind=PrincipalKind.CUSTOMER, id=c) for c in sorted(customers)]
    return out


def dev_keys(settings: Settings, registry: Registry) -> list[str]:
    """``orderflow dev``: a key for every seeded principal that has none in the keys dir yet
    (the dev stack holds every principal's key; a real deployment gives each system its own)."""
    ring = KeyRing(settings.keys_path)
    created = ring.ensure(
        seeded_principals(
            registry.departments, registry.carriers, registry.locations, registry.customers
        )
    )
    # And the payload codec's key, unless the environment gives one (orderflow.codec).
    if settings.codec_key is None:
        codec_kid = ensure_key_file(settings.codec_keys_path)
        if codec_kid is not None:
            created.append(codec_kid)
    return created
