"""Items from JSON lines, as `watchfloor score` and `eval` read them: each bad line is an error, not a crash."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.items import Item
from bot.normalise import item_id
from bot.text import html_to_text
from bot.urls import canonical_url


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    error: str


def parse_time(value: Any, default: datetime) -> datetime:
    if not isinstance(value, str) or not value.strip():
        return default
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return default
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def item_from_line(raw: str, line_no: int, now: datetime) -> Item | LineError:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        return LineError(line_no, f"not JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(data, dict):
        return LineError(line_no, 'expected a JSON object with at least "title" and "text"')
    missing = [k for k in ("title", "text") if not isinstance(data.get(k), str)]
    if missing:
        return LineError(line_no, "missing or not a string: " + ", ".join(missing))
    url = canonical_url(data["url"]) if isinstance(data.get("url"), str) and data["url"] else ""
    given = data.get("id")
    ident = str(given) if given not in (None, "") else (item_id(url, None) if url else f"line-{line_no}")
    return Item(
        id=ident,
        url=url,
        title=html_to_text(data["title"]),
        text=html_to_text(data["text"]),
        published=parse_time(data.get("published"), now),
        source=str(data.get("source") or ""),
        guid=None,
        fetched=now,
    )
