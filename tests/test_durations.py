"""Durations as users write them."""

from datetime import timedelta

import pytest

from bot.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(minutes=90)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        (" 6H ", timedelta(hours=6)),
        ("0.5h", timedelta(minutes=30)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "3 parsecs", "15", "m", "-5m", "0s"])
def test_refused_with_a_hint(text: str) -> None:
    with pytest.raises(DurationError, match=r"90s, 15m, 6h or 7d|longer than zero"):
        parse_duration(text)


def test_zero_when_allowed_and_format() -> None:
    assert parse_duration("0s", allow_zero=True) == timedelta(0)
    assert format_duration(timedelta(minutes=90)) == "1h30m" and format_duration(timedelta(0)) == "0s"
