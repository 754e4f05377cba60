"""Customer data encrypted in every payload Temporal stores.

Every client and worker of the engine encodes its payloads with ``EncryptionCodec``: AES-256-GCM,
a fresh 96-bit nonce per payload, the key id in the payload's metadata (and bound to the
ciphertext as associated data, so a payload cannot be passed off as another key's). The server,
its backups and anyone reading the namespace see ``binary/encrypted`` and a key id; people who may
read decoded histories use the codec endpoint (``orderflow.web``).

Keys (``CodecKeys``) come from ``ORDERFLOW_CODEC_KEY`` (``KID=BASE64[,KID=BASE64...]``, the first
encrypts) or from the key file (``ORDERFLOW_CODEC_KEYS_FILE``, by default ``codec-keys.json`` in
the keys directory; ``orderflow keys init`` creates it). Rotation in two steps, so that no process
ever meets a key it lacks: ``orderflow keys codec-add`` adds a key that only decrypts; once every
worker and client holds the file, ``codec-use KID`` makes it encrypt (``codec-rotate`` does both,
for one machine). Older keys still decrypt until ``codec-retire``. A process following the file
picks each change up with no restart.

A signal is the one message a worker drops, logged with the key's id, when it cannot open it (the
SDK drops a signal whose input it cannot convert): a forged signal must not stop an order, and
the two-step rotation keeps the engine's own signals readable to every worker.

Decoding never falls back to plain text for an encrypted payload. One it cannot open (its key is
unknown here, or its GCM tag fails) becomes a ``binary/undecodable`` payload carrying the reason:
converting it raises ``UndecodablePayload`` naming the key id. An update carrying one is refused
with that message; a workflow task meeting one fails, is logged with it, and is retried, so adding
the missing key resumes the order where it stood. A payload with no encryption metadata (a
department system sending plain JSON through the ``temporal`` CLI) decodes as it is.

One kind of payload stays in the clear: an update's receipt (``domain.base.Receipt``: the hold
id, the promise's due time), which names people only by id, so that a system that sends plain
JSON reads the answer to what it sent. The converter marks it; everything else is encrypted.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import os
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import TypeAdapter
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter, PydanticPayloadConverter
from temporalio.converter import DataConverter, EncodingPayloadConverter, PayloadCodec

from domain.base import Receipt
from domain.errors import (
    UNDECODABLE_ENCODING,
    InvalidInput,
    NotFound,
    OrderflowError,
    UndecodablePayload,
)

_log = logging.getLogger(__name__)

ENCRYPTED_ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
# Set by the engine's converter on a receipt (``domain.base.Receipt``): left in the clear.
IN_CLEAR = "orderflow-in-clear"
KEY_FILE = "codec-keys.json"
KEY_BYTES = 32
NONCE_BYTES = 12


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key_id() -> str:
    return f"codec-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"


class CodecKeys:
    """The AES-256 keys this process encrypts and decrypts with: one encrypts, all decrypt.
    Loaded from a file, it follows the file: a key added or retired there counts from the next
    batch of payloads on (``follow``: one ``stat`` per batch)."""

    def __init__(self, keys: dict[str, bytes], encrypt_with: str, *, source: str = "") -> None:
        self.source = source
        self._set(keys, encrypt_with)
        self._path: Path | None = None
        self._stamp: tuple[int, int, int] | None = None

    def _set(self, keys: dict[str, bytes], encrypt_with: str) -> None:
        where = f" ({self.source})" if self.source else ""
        if not keys:
            raise InvalidInput(f"codec keys{where}: there is no key")
        for kid, key in keys.items():
            if len(key) != KEY_BYTES:
                raise InvalidInput(
                    f"codec key '{kid}'{where} is {len(key)} bytes; AES-256-GCM takes "
                    f"{KEY_BYTES} (create one with `orderflow keys codec-rotate`)"
                )
        if encrypt_with not in keys:
            raise InvalidInput(f"codec keys{where}: encrypt_with '{encrypt_with}' is not a key")
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}
        self.encrypt_with = encrypt_with

    # ------------------------------------------------------------------ reading

    @staticmethod
    def _parse_file(path: Path) -> tuple[dict[str, bytes], str]:
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise NotFound(
                f"no codec key file at {path}: create it with `orderflow keys init`, or set "
                "ORDERFLOW_CODEC_KEY"
            ) from None
        except (OSError, ValueError) as err:
            raise InvalidInput(f"codec key file {path} is not readable JSON: {err}") from None
        keys = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(keys, dict) or not isinstance(doc.get("encrypt_with"), str):
            raise InvalidInput(
                f"codec key file {path} is not an object with 'encrypt_with' and 'keys'"
            )
        return {str(kid): _decoded_key(str(kid), v, str(path)) for kid, v in keys.items()}, doc[
            "encrypt_with"
        ]

    @staticmethod
    def _stamp_of(path: Path) -> tuple[int, int, int]:
        st = path.stat()
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    @classmethod
    def from_file(cls, path: Path) -> CodecKeys:
        stamp = cls._stamp_of(path) if path.exists() else None
        keys, encrypt_with = cls._parse_file(path)
        ring = cls(keys, encrypt_with, source=str(path))
        ring._path, ring._stamp = path, stamp
        return ring

    @classmethod
    def from_text(cls, text: str) -> CodecKeys:
        """``KID=BASE64[,KID=BASE64...]`` (``ORDERFLOW_CODEC_KEY``): the first key encrypts."""
        keys: dict[str, bytes] = {}
        for part in (p.strip() for p in text.split(",")):
            kid, sep, value = part.partition("=")
            if not sep or not kid.strip():
                raise InvalidInput(
                    "ORDERFLOW_CODEC_KEY: each key is KID=BASE64 (32 bytes), separated by commas"
                )
            keys[kid.strip()] = _decoded_key(kid.strip(), value.strip(), "ORDERFLOW_CODEC_KEY")
        return cls(keys, next(iter(keys)), source="ORDERFLOW_CODEC_KEY")

    def follow(self) -> None:
        """Read the file again when it changed (its inode, size or modification time); a
        broken file keeps the keys last read, and is read again on the next call."""
        if self._path is None:
            return
        try:
            stamp = self._stamp_of(self._path)
            if stamp != self._stamp:
                self._set(*self._parse_file(self._path))
                self._stamp = stamp
        except (OSError, OrderflowError) as err:
            _log.warning("codec keys not reloaded, the keys last read stay: %s", err)

    @property
    def ids(self) -> list[str]:
        return list(self._ciphers)

    def current(self) -> tuple[str, AESGCM]:
        return self.encrypt_with, self._ciphers[self.encrypt_with]

    def cipher(self, kid: str) -> AESGCM | None:
        return self._ciphers.get(kid)


def _decoded_key(kid: str, value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"codec key '{kid}' ({where}) is not a base64 string")
    try:
        return _unb64(value)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"codec key '{kid}' ({where}) is not base64") from None


# ---------------------------------------------------------------------- the key file


def _write(path: Path, keys: dict[str, str], encrypt_with: str) -> None:
    """Replace the file whole (a process following it never reads half of it), readable by
    its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"encrypt_with": encrypt_with, "keys": keys}, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _raw_file(path: Path) -> tuple[dict[str, str], str]:
    CodecKeys._parse_file(path)  # refuses a broken file with its reason
    doc = json.loads(path.read_text())
    return dict(doc["keys"]), doc["encrypt_with"]


def ensure_key_file(path: Path) -> str | None:
    """A key file with one new key, unless there is one: the new key's id, or None."""
    if path.exists():
        return None
    kid = new_key_id()
    _write(path, {kid: _b64(AESGCM.generate_key(bit_length=256))}, kid)
    return kid


def add(path: Path) -> str:
    """A new key that decrypts, not yet encrypting: give every worker and client the file,
    then ``use`` it. A process must never meet a key it lacks."""
    keys, encrypt_with = _raw_file(path)
    kid = new_key_id()
    keys[kid] = _b64(AESGCM.generate_key(bit_length=256))
    _write(path, keys, encrypt_with)
    return kid


def use(path: Path, kid: str) -> None:
    """Encrypt with ``kid`` from now on; the other keys still decrypt."""
    keys, _ = _raw_file(path)
    if kid not in keys:
        raise NotFound(f"codec key '{kid}' is not in {path} (keys: {', '.join(keys)})")
    _write(path, keys, kid)


def rotate(path: Path) -> str:
    """``add`` and ``use`` at once: for a key file that one machine's processes share."""
    kid = add(path)
    use(path, kid)
    return kid


def retire(path: Path, kid: str) -> None:
    """Remove a key: payloads it encrypted no longer decode here. The key that encrypts now
    cannot be retired (rotate first)."""
    keys, encrypt_with = _raw_file(path)
    if kid not in keys:
        raise NotFound(f"codec key '{kid}' is not in {path} (keys: {', '.join(keys)})")
    if kid == encrypt_with:
        raise InvalidInput(
            f"codec key '{kid}' encrypts new payloads; rotate (orderflow keys codec-rotate) "
            "before retiring it"
        )
    del keys[kid]
    _write(path, keys, encrypt_with)


def listed(path: Path) -> list[dict[str, Any]]:
    keys, encrypt_with = _raw_file(path)
    return [{"kid": kid, "encrypts": kid == encrypt_with} for kid in keys]


# ---------------------------------------------------------------------- the codec


def undecodable(reason: str) -> Payload:
    return Payload(metadata={"encoding": UNDECODABLE_ENCODING}, data=reason.encode())


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: CodecKeys, *, encrypt: bool = True) -> None:
        self.keys = keys
        # Off only while a release that encrypts rolls out beside one that cannot decrypt
        # (README, Upgrading): it decrypts, and writes plain JSON, until every worker can read.
        self.encrypt = encrypt

    def seal(self, payload: Payload) -> Payload:
        if payload.metadata.get(IN_CLEAR) == b"1":
            return payload
        kid, cipher = self.keys.current()
        nonce = os.urandom(NONCE_BYTES)
        sealed = cipher.encrypt(nonce, payload.SerializeToString(), kid.encode())
        return Payload(
            metadata={"encoding": ENCRYPTED_ENCODING, KEY_ID: kid.encode()}, data=nonce + sealed
        )

    def open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCRYPTED_ENCODING:
            return payload
        kid = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self.keys.cipher(kid) if kid else None
        if cipher is None:
            reason = (
                f"payload encrypted with codec key '{kid or '(none named)'}', which is not among "
                f"this process's codec keys ({', '.join(self.keys.ids)})"
            )
        else:
            data = payload.data
            try:
                return Payload.FromString(
                    cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], kid.encode())
                )
            except InvalidTag:
                reason = (
                    f"payload encrypted with codec key '{kid}' fails its integrity check "
                    "(GCM tag): it was altered after it was written"
                )
            except ValueError as err:
                reason = f"payload encrypted with codec key '{kid}' is malformed: {err}"
        _log.warning("cannot decode a payload: %s", reason)
        return undecodable(reason)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self.keys.follow()
        if not self.encrypt:
            return list(payloads)
        return [self.seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self.keys.follow()
        return [self.open(p) for p in payloads]


class _UndecodableConverter(EncodingPayloadConverter):
    """Turns a payload the codec could not open into the error that says why."""

    @property
    def encoding(self) -> str:
        return UNDECODABLE_ENCODING.decode()

    def to_payload(self, value: Any) -> Payload | None:
        return None

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        raise UndecodablePayload(payload.data.decode(errors="replace"))


# The type adapters the converter reads payloads with, shared by every converter of the
# process: the worker makes a converter for each workflow it runs (from its class), and each
# new one would build its adapters again, at every order's first payload of each type.
_TYPE_ADAPTERS = functools.lru_cache(maxsize=1024)(TypeAdapter)


class PayloadConverter(PydanticPayloadConverter):
    """The SDK's pydantic converter, which also reads an undecodable payload as its error."""

    def __init__(self) -> None:
        super().__init__()
        for converter in self.converters.values():
            if isinstance(converter, PydanticJSONPlainPayloadConverter):
                converter._type_adapter = _TYPE_ADAPTERS
        self._set_converters(*self.converters.values(), _UndecodableConverter())

    def to_payloads(self, values: Sequence[Any]) -> list[Payload]:
        payloads = super().to_payloads(values)
        for value, payload in zip(values, payloads, strict=True):
            if isinstance(value, Receipt):
                payload.metadata[IN_CLEAR] = b"1"
        return payloads


def data_converter(keys: CodecKeys | None, *, encrypt: bool = True) -> DataConverter:
    """What every client, worker and replayer of the engine converts payloads with. Without
    keys (a replayer of histories saved before encryption) nothing is encrypted."""
    return DataConverter(
        payload_converter_class=PayloadConverter,
        payload_codec=EncryptionCodec(keys, encrypt=encrypt) if keys is not None else None,
    )


def configured_keys(key_text: str | None, key_file: Path) -> CodecKeys:
    """The keys a process is configured with: ``ORDERFLOW_CODEC_KEY`` when set, else the file.
    A missing or broken one is an error naming it, never a process that writes plain text."""
    if key_text:
        return CodecKeys.from_text(key_text)
    return CodecKeys.from_file(key_file)


def bench_converter() -> DataConverter:
    """For benches: a key of this process, in ``ORDERFLOW_CODEC_KEY`` so that the worker
    processes a bench starts encrypt and decrypt with it too."""
    text = os.environ.get("ORDERFLOW_CODEC_KEY")
    if not text:
        text = f"bench-{secrets.token_hex(3)}={_b64(AESGCM.generate_key(bit_length=256))}"
        os.environ["ORDERFLOW_CODEC_KEY"] = text
    return data_converter(CodecKeys.from_text(text))
