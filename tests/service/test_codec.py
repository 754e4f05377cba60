"""The payload codec on its own: AES-256-GCM with key ids, rotation, tampering, plain payloads,
receipts left in the clear, and the key file's errors."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload

from domain.errors import InvalidInput, NotFound, UndecodablePayload
from domain.holds import HoldPlaced, PlaceHold
from orderflow.codec import (
    ENCRYPTED_ENCODING,
    KEY_ID,
    CodecKeys,
    EncryptionCodec,
    add,
    data_converter,
    ensure_key_file,
    listed,
    retire,
    rotate,
    use,
)

CUSTOMER = {"name": "Maria Lopez", "email": "maria.lopez@example.com", "gps": "40.4168,-3.7038"}


def plain(doc: object) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(doc).encode())


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "codec-keys.json"
    assert ensure_key_file(path) is not None
    return path


async def test_a_payload_is_sealed_with_the_key_id_and_opens_to_what_was_written(
    key_file: Path,
) -> None:
    codec = EncryptionCodec(CodecKeys.from_file(key_file))
    [sealed] = await codec.encode([plain(CUSTOMER)])
    assert sealed.metadata["encoding"] == ENCRYPTED_ENCODING
    assert sealed.metadata[KEY_ID].decode() == listed(key_file)[0]["kid"]
    for secret in CUSTOMER.values():
        assert secret.encode() not in sealed.data
    # A fresh nonce each time: the same data never reads the same twice.
    [again] = await codec.encode([plain(CUSTOMER)])
    assert again.data != sealed.data
    [opened] = await codec.decode([sealed])
    assert json.loads(opened.data) == CUSTOMER


async def test_rotation_encrypts_with_the_new_key_and_old_payloads_decode_until_retired(
    key_file: Path,
) -> None:
    codec = EncryptionCodec(CodecKeys.from_file(key_file))
    first = listed(key_file)[0]["kid"]
    [old] = await codec.encode([plain({"n": 1})])
    second = rotate(key_file)
    # The process follows the file: no restart.
    [new] = await codec.encode([plain({"n": 2})])
    assert new.metadata[KEY_ID].decode() == second != first
    assert [json.loads(p.data) for p in await codec.decode([old, new])] == [{"n": 1}, {"n": 2}]
    with pytest.raises(InvalidInput, match=r"rotate .* before retiring"):
        retire(key_file, second)
    retire(key_file, first)
    [gone, still] = await codec.decode([old, new])
    assert json.loads(still.data) == {"n": 2}
    with pytest.raises(UndecodablePayload, match=f"codec key '{first}', which is not among"):
        data_converter(None).payload_converter.from_payloads([gone])


async def test_a_tampered_payload_is_refused_naming_its_key_never_read_as_plain(
    key_file: Path,
) -> None:
    codec = EncryptionCodec(CodecKeys.from_file(key_file))
    [sealed] = await codec.encode([plain(CUSTOMER)])
    flipped = bytearray(sealed.data)
    flipped[20] ^= 0x01
    tampered = Payload(metadata=dict(sealed.metadata), data=bytes(flipped))
    [opened] = await codec.decode([tampered])
    with pytest.raises(UndecodablePayload, match="fails its integrity check"):
        data_converter(None).payload_converter.from_payloads([opened], [dict])
    # Nor can a payload be passed off as another key's: the key id is bound to the ciphertext.
    rotate(key_file)
    relabelled = Payload(
        metadata={**sealed.metadata, KEY_ID: listed(key_file)[1]["kid"].encode()},
        data=sealed.data,
    )
    [opened] = await codec.decode([relabelled])
    assert opened.metadata["encoding"] == b"binary/undecodable"


async def test_a_plain_payload_from_a_system_without_the_codec_decodes_as_it_is(
    key_file: Path,
) -> None:
    codec = EncryptionCodec(CodecKeys.from_file(key_file))
    sent = plain({"department": "billing"})
    assert await codec.decode([sent]) == [sent]


async def test_a_receipt_stays_readable_and_everything_else_is_encrypted(key_file: Path) -> None:
    converter = data_converter(CodecKeys.from_file(key_file))
    due = datetime(2026, 12, 7, tzinfo=UTC)
    receipt = HoldPlaced(hold_id="H1", department="billing", sla_due_at=due)
    hold = PlaceHold(department="billing", reason_code="arrears", customer_message="Maria, pay")
    sent_receipt, sent_hold = await converter.encode([receipt, hold])
    assert json.loads(sent_receipt.data)["hold_id"] == "H1"
    assert sent_hold.metadata["encoding"] == ENCRYPTED_ENCODING
    assert b"Maria" not in sent_hold.data
    back = await converter.decode([sent_receipt, sent_hold], [HoldPlaced, PlaceHold])
    assert back == [receipt, hold]


def test_a_missing_key_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "codec-keys.json"
    with pytest.raises(NotFound, match=f"no codec key file at {missing}"):
        CodecKeys.from_file(missing)


def test_a_key_of_the_wrong_length_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "codec-keys.json"
    short = base64.urlsafe_b64encode(b"k" * 16).decode()
    path.write_text(json.dumps({"encrypt_with": "k1", "keys": {"k1": short}}))
    with pytest.raises(InvalidInput, match=r"codec key 'k1' .* is 16 bytes; AES-256-GCM takes 32"):
        CodecKeys.from_file(path)
    with pytest.raises(InvalidInput, match="is 16 bytes"):
        CodecKeys.from_text(f"k1={short}")
    with pytest.raises(InvalidInput, match="KID=BASE64"):
        CodecKeys.from_text("just-a-key")


def test_a_broken_file_keeps_the_keys_last_read_until_it_is_mended(key_file: Path) -> None:
    keys = CodecKeys.from_file(key_file)
    kid = keys.current()[0]
    good = key_file.read_text()
    key_file.write_text("{not json")
    keys.follow()
    assert keys.current()[0] == kid
    key_file.write_text(good)
    fresh = rotate(key_file)
    keys.follow()
    assert keys.current()[0] == fresh


async def test_a_key_added_decrypts_at_once_and_encrypts_only_once_put_to_use(
    key_file: Path,
) -> None:
    """Rotation in two steps: every process holds the new key before any encrypts with it."""
    writer = EncryptionCodec(CodecKeys.from_file(key_file))
    first = listed(key_file)[0]["kid"]
    second = add(key_file)
    [sealed] = await writer.encode([plain({"n": 1})])
    assert sealed.metadata[KEY_ID].decode() == first
    assert {k["kid"]: k["encrypts"] for k in listed(key_file)} == {first: True, second: False}
    use(key_file, second)
    [sealed] = await writer.encode([plain({"n": 2})])
    assert sealed.metadata[KEY_ID].decode() == second
    with pytest.raises(NotFound, match="codec key 'nope' is not in"):
        use(key_file, "nope")


async def test_with_encryption_off_for_a_rollout_payloads_are_written_plain_and_still_read(
    key_file: Path,
) -> None:
    keys = CodecKeys.from_file(key_file)
    [sealed] = await data_converter(keys).encode([{"n": 1}])
    rolling_out = data_converter(keys, encrypt=False)
    [written] = await rolling_out.encode([{"n": 2}])
    assert written.metadata["encoding"] == b"json/plain"
    assert await rolling_out.decode([sealed, written]) == [{"n": 1}, {"n": 2}]
