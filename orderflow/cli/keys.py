"""Who acts: signed tokens for other tools, and the keys behind them (orderflow.identity)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from domain.durations import parse_duration
from domain.errors import InvalidInput
from orderflow import codec
from orderflow.cli.common import JSON, actor, app, emit_json, keys_app, out, settings
from orderflow.identity import DEFAULT_TTL, KeyRing, Principal, dev_keys
from orderflow.registry import Registry

AS = typer.Option(
    ...,
    "--as",
    help="The principal: billing, supervisor:billing, carrier:ups, store:LOCATION, desk:web, "
    "staff:NAME, customer:ID, engine (ORDERFLOW_AS).",
    envvar="ORDERFLOW_AS",
)


def _ring() -> KeyRing:
    return KeyRing(settings().keys_path)


@app.command()
def token(
    as_: str = AS,
    who: str | None = typer.Option(
        None, "--actor", help="The person or process the principal vouches for (default $USER)."
    ),
    order: str | None = typer.Option(None, "--order", help="Limit the token to one order."),
    ttl: str = typer.Option("5m", "--ttl", help="How long it is good for (at most 1h)."),
) -> None:
    """Print a signed token for other tools (temporal --headers, an HTTP Bearer header)."""
    lifetime = parse_duration(ttl) if ttl else DEFAULT_TTL
    print(_ring().issue(Principal.parse(as_), actor=actor(who), order_id=order, ttl=lifetime))


@keys_app.command("list")
def keys_list(as_json: bool = JSON) -> None:
    """The trusted keys, newest last, and whether this machine holds each private key."""
    rows = _ring().listed()
    if as_json:
        emit_json(rows)
        return
    table = Table("kid", "principal", "created", "private key here")
    for r in rows:
        table.add_row(
            r["kid"], r["principal"], r["created"][:19], "yes" if r["private_here"] else ""
        )
    out.print(table)


@keys_app.command("add")
def keys_add(as_: str = AS) -> None:
    """A new key for a principal: trusted now, and the one its tokens are signed with from now;
    older keys still verify until retired (rotation without downtime)."""
    print(_ring().add(Principal.parse(as_)))


@keys_app.command("retire")
def keys_retire(
    kid: str = typer.Argument(..., help="The key id, from orderflow keys list."),
) -> None:
    """Stop trusting a key: tokens it signed are refused from now on."""
    _ring().retire(kid)
    print(f"{kid} retired")


@keys_app.command("init")
def keys_init() -> None:
    """A key for every principal the seeds name that has none here yet, and the trust store
    (what ``orderflow dev`` does on its first start; the compose stack's ``keys`` service runs
    it once before the workers start). Prints the new keys' ids."""
    s = settings()
    for kid in dev_keys(s, Registry(s.seeds_dir)):
        print(kid)


# ---------------------------------------------------------------- the payload codec's keys


def _codec_file() -> Path:
    s = settings()
    if s.codec_key is not None:
        raise InvalidInput(
            "the codec keys come from ORDERFLOW_CODEC_KEY here: change that setting instead "
            "of the key file"
        )
    return s.codec_keys_path


@keys_app.command("codec-list")
def codec_list(as_json: bool = JSON) -> None:
    """The payload codec's keys: the one that encrypts, and those that still decrypt."""
    rows = codec.listed(_codec_file())
    if as_json:
        emit_json(rows)
        return
    table = Table("kid", "encrypts new payloads")
    for r in rows:
        table.add_row(r["kid"], "yes" if r["encrypts"] else "")
    out.print(table)


@keys_app.command("codec-add")
def codec_add() -> None:
    """Rotation, step 1: a new codec key that decrypts but does not encrypt yet. Give every
    worker and client the new file, then `codec-use` it. Prints its id."""
    print(codec.add(_codec_file()))


@keys_app.command("codec-use")
def codec_use(
    kid: str = typer.Argument(..., help="The key id, from orderflow keys codec-list."),
) -> None:
    """Rotation, step 2: encrypt with this key from now on (every process holding the file
    must already hold it; older keys still decrypt)."""
    codec.use(_codec_file(), kid)
    print(f"{kid} encrypts new payloads")


@keys_app.command("codec-rotate")
def codec_rotate() -> None:
    """Both steps at once, for a key file that the processes of one machine share (the dev
    stack): a new key that encrypts from now on. Prints its id."""
    print(codec.rotate(_codec_file()))


@keys_app.command("codec-retire")
def codec_retire(
    kid: str = typer.Argument(..., help="The key id, from orderflow keys codec-list."),
) -> None:
    """Remove a codec key: payloads it encrypted no longer decode (histories of orders still
    open or kept for audit need it; retire a key only once none does)."""
    codec.retire(_codec_file(), kid)
    print(f"{kid} retired")
