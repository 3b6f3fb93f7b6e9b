"""Golden files: each feed in tests/fixtures/feeds/ beside the JSON of what it must become.

Regenerate after an intended change with `WATCHFLOOR_REGEN_GOLDEN=1 pytest tests/sources/test_feed_golden.py`,
then read the diff: the JSON is the spec.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.normalise import normalise_entry
from bot.sources.feeds import parse_feed

FEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "feeds"
FETCHED = datetime(2025, 1, 8, 12, 0, tzinfo=UTC)
FEED_URL = "https://wire.example/feeds/all.xml"


def _result(path: Path) -> dict[str, Any]:
    parsed = parse_feed(path.read_bytes(), FEED_URL)
    items = [normalise_entry(e, "golden", FETCHED) for e in parsed.entries]
    return {
        "title": parsed.title,
        "error": parsed.error,
        "items": [
            None
            if item is None
            else {
                "id": item.id,
                "url": item.url,
                "title": item.title,
                "text": item.text,
                "published": item.published.isoformat(),
                "guid": item.guid,
            }
            for item in items
        ],
    }


@pytest.mark.parametrize("path", sorted(p for p in FEEDS.iterdir() if p.suffix in (".xml", ".rdf")), ids=str)
def test_golden(path: Path) -> None:
    expected_path = path.with_suffix(".json")
    got = _result(path)
    if os.environ.get("WATCHFLOOR_REGEN_GOLDEN"):
        expected_path.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert got == json.loads(expected_path.read_text(encoding="utf-8"))
