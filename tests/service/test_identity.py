"""Principals' keys and tokens: what a token proves, and every way one is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from domain.errors import InvalidInput, NotAllowed, NotFound
from orderflow.config import Settings
from orderflow.identity import (
    MAX_TTL,
    KeyRing,
    Principal,
    PrincipalKind,
    TrustStore,
    dev_keys,
    sign,
    verify,
)
from orderflow.registry import Registry
from tests.conftest import SEEDS

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
BILLING = Principal.parse("billing")
CARE = Principal.parse("care")


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    ring = KeyRing(tmp_path / "keys")
    ring.add(BILLING, NOW)
    ring.add(CARE, NOW)
    return ring


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        ("billing", PrincipalKind.DEPARTMENT, "billing"),
        ("supervisor:billing", PrincipalKind.SUPERVISOR, "billing"),
        ("carrier:ups", PrincipalKind.CARRIER, "ups"),
        ("store:store-downtown", PrincipalKind.STORE, "store-downtown"),
        ("customer:C-1001", PrincipalKind.CUSTOMER, "C-1001"),
        ("engine", PrincipalKind.ENGINE, "engine"),
    ],
)
def test_principals_are_written_as_users_name_them(
    text: str, kind: PrincipalKind, name: str
) -> None:
    principal = Principal.parse(text)
    assert (principal.kind, principal.id, str(principal)) == (kind, name, text)


@pytest.mark.parametrize("text", ["pilot:x", "carrier:", "supervisor:bad name", "engine:x"])
def test_what_is_not_a_principal_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="as:"):
        Principal.parse(text)


def test_a_token_proves_its_principal_actor_and_order(ring: KeyRing) -> None:
    token = ring.issue(BILLING, actor="ana", order_id="ORD-1", now=NOW)
    cred = verify(ring.trust(), token, NOW + timedelta(minutes=1))
    assert cred.principal == BILLING and cred.actor == "ana" and cred.order_id == "ORD-1"
    assert cred.kid.startswith("billing/") and cred.expires_at == NOW + timedelta(minutes=5)
    other = ring.issue(BILLING, actor="ana", now=NOW)
    assert verify(ring.trust(), other, NOW).jti != cred.jti


def test_an_expired_token_is_refused(ring: KeyRing) -> None:
    token = ring.issue(BILLING, actor="ana", now=NOW)
    with pytest.raises(NotAllowed, match="expired at 2026-12-01T09:05:00"):
        verify(ring.trust(), token, NOW + timedelta(minutes=6))


def test_a_token_from_the_future_is_refused(ring: KeyRing) -> None:
    token = ring.issue(BILLING, actor="ana", now=NOW + timedelta(hours=1))
    with pytest.raises(NotAllowed, match="issued in the future"):
        verify(ring.trust(), token, NOW)


def test_a_tampered_token_is_refused(ring: KeyRing) -> None:
    token = ring.issue(CARE, actor="bo", now=NOW)
    header, payload, signature = token.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["act"] = "someone else"
    forged = ".".join(
        [header, jwt.utils.base64url_encode(json.dumps(claims).encode()).decode(), signature]
    )
    with pytest.raises(NotAllowed, match="signature does not match key 'care/"):
        verify(ring.trust(), forged, NOW)


def test_a_key_cannot_speak_for_another_principal(ring: KeyRing) -> None:
    """care's key signing a token that says billing: refused, whatever the signature."""
    [care_key] = ring.private_keys(CARE)
    lying = dict(care_key, principal="billing")
    token = sign(lying, actor="bo", now=NOW)
    with pytest.raises(NotAllowed, match=r"token says billing, but key 'care/.*' belongs to care"):
        verify(ring.trust(), token, NOW)


def test_a_key_not_in_the_trust_store_is_refused(ring: KeyRing, tmp_path: Path) -> None:
    elsewhere = KeyRing(tmp_path / "elsewhere")
    elsewhere.add(BILLING, NOW)
    token = elsewhere.issue(BILLING, actor="mallory", now=NOW)
    with pytest.raises(NotAllowed, match=r"key 'billing/.*' is not trusted"):
        verify(ring.trust(), token, NOW)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-token",
        "a.b.c",
        jwt.encode({"sub": "billing"}, "a shared secret of 32 bytes or more", algorithm="HS256"),
    ],
    ids=["empty", "not-a-jwt", "garbage", "hmac-signed"],
)
def test_a_malformed_token_is_refused(ring: KeyRing, token: str) -> None:
    with pytest.raises(NotAllowed, match="credential:"):
        verify(ring.trust(), token, NOW)


def test_keys_rotate_without_downtime(ring: KeyRing) -> None:
    """A new key signs from the moment it is added; the old one verifies until it is retired."""
    before = ring.issue(BILLING, actor="ana", now=NOW)
    old_kid = verify(ring.trust(), before, NOW).kid
    new_kid = ring.add(BILLING, NOW + timedelta(seconds=1))
    after = ring.issue(BILLING, actor="ana", now=NOW)
    assert verify(ring.trust(), after, NOW).kid == new_kid != old_kid
    assert verify(ring.trust(), before, NOW).kid == old_kid
    ring.retire(old_kid)
    with pytest.raises(NotAllowed, match="not trusted"):
        verify(ring.trust(), before, NOW)
    assert verify(ring.trust(), after, NOW).kid == new_kid
    with pytest.raises(NotFound, match="no trusted key"):
        ring.retire(old_kid)


def test_a_principal_without_a_key_here_cannot_sign(ring: KeyRing) -> None:
    with pytest.raises(NotFound, match="no credential for supervisor:billing"):
        ring.issue(Principal.parse("supervisor:billing"), actor="ana")


@pytest.mark.parametrize("ttl", [timedelta(0), MAX_TTL + timedelta(seconds=1)])
def test_a_token_lives_briefly(ring: KeyRing, ttl: timedelta) -> None:
    with pytest.raises(InvalidInput, match="ttl: a token lives at most 1h"):
        ring.issue(BILLING, actor="ana", ttl=ttl)


def test_private_keys_are_their_owners_alone_and_the_trust_store_holds_none(
    ring: KeyRing,
) -> None:
    private = ring.root / "private"
    assert private.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in private.iterdir())
    trusted = json.loads(ring.trust_path.read_text())["keys"]
    assert [k["principal"] for k in trusted] == ["billing", "care"]
    assert not any("d" in k for k in trusted)
    assert len(TrustStore.load(ring.trust_path).key(trusted[0]["kid"])) == 2


def test_the_dev_stack_has_a_key_for_every_seeded_principal(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, seeds_dir=SEEDS)
    registry = Registry(SEEDS)
    created = dev_keys(settings, registry)
    principals = {kid.rsplit("/", 1)[0] for kid in created}
    assert {"billing", "supervisor:billing", "carrier:ups", "store:store-downtown"} <= principals
    assert {"desk:web", "staff:operator", "engine"} <= principals
    assert {f"supervisor:{d}" for d in registry.departments} <= principals
    # A second start creates nothing; every key signs and verifies.
    assert dev_keys(settings, registry) == []
    ring = KeyRing(settings.keys_path)
    token = ring.issue(Principal.parse("carrier:dhl"), actor="driver-7")
    assert str(verify(ring.trust(), token).principal) == "carrier:dhl"


def test_orderflow_token_prints_a_token_the_engine_accepts(tmp_path: Path) -> None:
    env = {**os.environ, "ORDERFLOW_DATA_DIR": str(tmp_path), "ORDERFLOW_AS": ""}
    cli = [str(Path(sys.executable).parent / "orderflow")]
    added = subprocess.run(
        [*cli, "keys", "add", "--as", "supervisor:billing"], env=env, capture_output=True, text=True
    )
    assert added.returncode == 0 and added.stdout.startswith("supervisor:billing/")
    made = subprocess.run(
        [*cli, "token", "--as", "supervisor:billing", "--actor", "lena", "--order", "ORD-9"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    cred = verify(KeyRing(tmp_path / "keys").trust(), made.stdout.strip())
    assert (str(cred.principal), cred.actor, cred.order_id) == (
        "supervisor:billing",
        "lena",
        "ORD-9",
    )
    refused = subprocess.run(
        [*cli, "token", "--as", "care"], env=env, capture_output=True, text=True
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: no credential for care in ")
    assert len(refused.stderr.strip().splitlines()) == 1


def test_acting_as_a_principal_whose_key_is_not_here_is_refused(tmp_path: Path) -> None:
    env = {**os.environ, "ORDERFLOW_DATA_DIR": str(tmp_path), "ORDERFLOW_AS": ""}
    cli = [str(Path(sys.executable).parent / "orderflow")]
    done = subprocess.run(
        [*cli, "--address", "127.0.0.1:1", "--as", "supervisor:billing", "hold", "release",
         "ORD-1", "H1", "--department", "billing", "--resolution", "x"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("error: no credential for supervisor:billing in ")


def test_the_order_page_and_console_keys_vouch_only_within_their_scope(tmp_path: Path) -> None:
    """The order page's key speaks for a customer on one order; the console's for a department
    or its supervisor; neither for anyone else, and a link opens a page but carries nothing."""
    from orderflow.identity import CONSOLE, PORTAL, sign_for, sign_for_customer, verify_link

    ring = KeyRing(tmp_path)
    ring.ensure([PORTAL, CONSOLE])
    trust = ring.trust()
    portal, console = ring.require(PORTAL)[-1], ring.require(CONSOLE)[-1]
    for_customer = verify(trust, ring.for_customer("C-1001", "O-1"))
    assert (str(for_customer.principal), for_customer.order_id) == ("customer:C-1001", "O-1")
    assert for_customer.actor == "order page (portal:web)"
    for_billing = verify(trust, sign_for(console, Principal.parse("billing"), actor="ana"))
    assert (str(for_billing.principal), for_billing.actor) == ("billing", "ana (console:web)")
    # Out of scope: the console for a customer, staff or the engine; the page for a department.
    for principal in ("customer:C-1001", "staff:ana", "carrier:ups"):
        with pytest.raises(InvalidInput, match="does not vouch"):
            sign_for(console, Principal.parse(principal), actor="x")
    with pytest.raises(InvalidInput, match="only an order page's key"):
        sign_for_customer(console, "C-1001", "O-1")
    with pytest.raises(InvalidInput, match="cannot be named"):
        sign_for_customer(portal, "C-1001", "")
    # A link is no credential, and a credential no link.
    link = ring.for_customer("C-1001", "O-1", link=True)
    with pytest.raises(NotAllowed):
        verify(trust, link)
    assert verify_link(trust, link)[0].order_id == "O-1"
    with pytest.raises(NotAllowed):
        verify_link(trust, ring.for_customer("C-1001", "O-1"))


def test_a_token_whose_scope_is_empty_or_not_a_name_is_refused(tmp_path: Path) -> None:
    import jwt as pyjwt

    from orderflow.identity import ALGORITHM, ISSUER, _unb64

    ring = KeyRing(tmp_path)
    ring.ensure([Principal.parse("customer:C-1001")])
    jwk = ring.require(Principal.parse("customer:C-1001"))[-1]
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(_unb64(jwk["d"]))
    now = int(datetime.now(UTC).timestamp())
    for scope in ("", 7, ["O-1"]):
        claims = {"iss": ISSUER, "sub": "customer:C-1001", "act": "x", "iat": now,
                  "exp": now + 60, "jti": "j", "ord": scope}  # fmt: skip
        token = pyjwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": jwk["kid"]})
        with pytest.raises(NotAllowed, match="'ord' is not an order or workflow id"):
            verify(ring.trust(), token)
