"""Saved histories are a contract with the orders still running on the version that recorded
them: files under ``tests/histories/`` may be added, or moved unchanged, never edited or
deleted, unless ``tests/histories/RETIRED.toml`` retires them with a reason and the date after
which no order of their version can still be open.

The check reads the repository's own record: the first content the repository ever held at each
history path, from the commit where the contract began (0.1) on, must still be somewhere under
``tests/histories/``, byte for byte.
"""

from __future__ import annotations

import subprocess
import tomllib
from datetime import UTC, date, datetime

from orderflow.config import PROJECT_ROOT

# Main at 0.1: the histories there and every one added since are append-only.
CONTRACT_START = "af0e7a9e946480ebe93c39754caa13bae1ed061b"
FOLDER = "tests/histories"


def git(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def first_contents() -> dict[str, str]:
    """Each history path the repository has held since the contract began, with the blob of
    the first content it held there."""
    first: dict[str, str] = {}
    for line in git("ls-tree", "-r", CONTRACT_START, "--", FOLDER).splitlines():
        meta, path = line.split("\t", 1)
        first.setdefault(path, meta.split()[2])
    log = git(
        "log",
        "--reverse",
        "--no-renames",
        "--no-abbrev",
        "--raw",
        "--format=",
        "--diff-filter=A",
        f"{CONTRACT_START}..HEAD",
        "--",
        FOLDER,
    )
    for line in log.splitlines():
        if line.startswith(":"):
            meta, path = line.split("\t", 1)
            first.setdefault(path, meta.split()[3])
    return {p: b for p, b in first.items() if p.endswith(".json")}


def present_contents() -> dict[str, str]:
    """The blob of every history file as it is in the work tree now, by path."""
    files = sorted(
        str(p.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / FOLDER).rglob("*.json")
    )
    blobs = git("hash-object", "--stdin-paths", stdin="\n".join(files) + "\n").split()
    return dict(zip(files, blobs, strict=True))


def retired(today: date) -> set[str]:
    data = tomllib.loads((PROJECT_ROOT / FOLDER / "RETIRED.toml").read_text())
    paths = set()
    for entry in data.get("retired", []):
        path, reason, after = entry["path"], entry["reason"].strip(), entry["no_open_orders_after"]
        assert reason, f"RETIRED.toml: {path} needs a reason"
        assert isinstance(after, date), f"RETIRED.toml: {path}: no_open_orders_after is a date"
        assert after <= today, (
            f"RETIRED.toml: {path} cannot retire before {after}: orders of its version may "
            "still be open until then"
        )
        paths.add(f"{FOLDER}/{path}")
    return paths


def test_the_contract_starts_in_this_repository() -> None:
    assert git("merge-base", "--is-ancestor", CONTRACT_START, "HEAD") == ""


def test_saved_histories_are_only_added_or_moved_unchanged() -> None:
    present = present_contents()
    blobs = set(present.values())
    gone = retired(datetime.now(UTC).date())
    broken = sorted(
        path for path, blob in first_contents().items() if blob not in blobs and path not in gone
    )
    assert broken == [], (
        "saved histories were edited or deleted (add new ones instead, and version the "
        f"workflow change with workflow.patched; or retire them in RETIRED.toml): {broken[:5]}"
    )
