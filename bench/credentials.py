"""What checking a caller's token costs an update: the worker verifies one token per update, in
the update's validator, next to decoding the update itself.

Prints, measured in one run on this machine: microseconds per token made (the client's side)
and verified (the worker's), the validator's own decoding of the same ``place_hold`` update,
and the ratio of the two (target: verification well under 1 ms per update).

    .venv/bin/python bench/credentials.py [--n 2000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import full_flag, record

from domain.holds import PlaceHold
from orderflow.auth import header_payload, verified
from orderflow.identity import KeyRing, Principal

HOLD = {
    "department": "billing",
    "actor": "ana",
    "reason_code": "arrears",
    "customer_message": "Your account shows 120.00 unpaid since October.",
    "reference": "INV-77",
    "amount": "120.00",
}


def per_call_us(fn: Callable[[], object], n: int) -> float:
    fn()  # warm
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    full_flag(parser, "20,000 tokens")
    args = parser.parse_args()
    n = max(args.n, 20_000) if args.full else args.n
    with tempfile.TemporaryDirectory() as tmp:
        ring = KeyRing(Path(tmp))
        billing = Principal.parse("billing")
        ring.add(billing)
        trust = ring.trust()
        token = ring.issue(billing, actor="ana", order_id="ORD-1")
        headers = {"orderflow-auth": header_payload(token)}
        body = json.dumps(HOLD).encode()
        sign_us = per_call_us(lambda: ring.issue(billing, actor="ana", order_id="ORD-1"), n)
        verify_us = per_call_us(lambda: verified(headers, trust, datetime.now(UTC)), n)
        decode_us = per_call_us(lambda: PlaceHold.model_validate_json(body), n)
    print(f"{n} tokens, one key, Ed25519/EdDSA (PyJWT, cryptography)")
    print(f"make a token (client, per update):   {sign_us:8.1f} us")
    print(f"verify a token (worker, per update): {verify_us:8.1f} us (target well under 1000 us)")
    print(f"decode the place_hold itself:        {decode_us:8.1f} us")
    print(f"ratio verify/decode: {verify_us / decode_us:.1f}")
    record(
        "credentials",
        "verify a caller's token, per update",
        f"{verify_us:.0f} µs (sign {sign_us:.0f} µs; {verify_us / decode_us:.0f}x decoding it)",
        "well under 1000 µs",
        verify_us < 1000,
    )


if __name__ == "__main__":
    main()
