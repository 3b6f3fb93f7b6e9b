"""Durations as people write them in config and commands: `90s`, `15m`, `6h`, `7d`, `2w`, `1h30m`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_WHOLE = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*[smhdw]\s*)+$")


class DurationError(ValueError):
    pass


def parse_duration(text: str, allow_zero: bool = False) -> timedelta:
    """Parse `15m`, `6h`, `1h30m`, `7d`; raise DurationError with a usable hint otherwise."""
    cleaned = text.strip().lower()
    if not cleaned or not _WHOLE.match(cleaned):
        raise DurationError(f"{text!r} is not a duration: write a number and a unit, like 90s, 15m, 6h or 7d")
    seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(cleaned))
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise DurationError(f"{text!r} is not a duration: it must be longer than zero")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The shortest exact spelling, for messages: 5400 s → `1h30m`."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)
