"""Durations and times as people write them: ``90s``, ``15m``, ``4h``, ``2d``, ISO 8601."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from domain.errors import InvalidInput

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
MAX_SECONDS = 100 * 365 * 86400
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """Parse ``90s``, ``15m``, ``4h``, ``2d`` or ``1w`` into a positive timedelta."""
    match = _DURATION.match(text or "")
    if not match:
        raise InvalidInput(f"'{text}' is not a duration; write it like 90s, 15m, 4h or 2d")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise InvalidInput(f"duration '{text}' must be greater than zero")
    if seconds > MAX_SECONDS:
        raise InvalidInput(f"duration '{text}' is too long; at most 100 years")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Render a duration the way :func:`parse_duration` reads it (largest whole unit)."""
    seconds = delta.total_seconds()
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_time(text: str, *, now: datetime) -> datetime:
    """Parse an ISO 8601 time, or a duration meaning "from now" (``2h`` = two hours from now).

    Times without a zone are taken as UTC so that every channel reads the same instant.
    """
    text = (text or "").strip()
    if _DURATION.match(text):
        return now + parse_duration(text)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"'{text}' is not a time; use ISO 8601 like 2026-12-01T17:00:00Z, or a duration like 2h"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def human_time(value: datetime) -> str:
    """A time the customer can read in an e-mail: ``Tue 01 Dec 2026, 17:00 UTC``."""
    return value.astimezone(UTC).strftime("%a %d %b %Y, %H:%M UTC")
