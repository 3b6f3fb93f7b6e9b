"""One poll cycle's source work: fetch many feeds at once, then parse and normalise each body.

    requests ──fetch_all──► FetchResult per request ──parse_and_normalise──► (Items, parse error)

The two steps are separate on purpose: fetching is I/O (concurrent, on the event loop), parsing is CPU
(pure, callable from a test or a worker thread with no network). Neither step raises for a bad source:
failures come back as data so the scheduler can record them in SourceHealth and carry on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.items import Item
from bot.normalise import normalise_entry
from bot.sources.feeds import parse_feed
from bot.sources.fetch import Fetcher, FetchResult


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """What to fetch and the validators from the last successful fetch (SourceHealth.etag/last_modified)."""

    url: str
    etag: str | None = None
    last_modified: str | None = None


async def fetch_one(fetcher: Fetcher, req: FetchRequest) -> FetchResult:
    try:
        return await fetcher.fetch(req.url, etag=req.etag, last_modified=req.last_modified)
    except Exception as exc:  # Fetcher.fetch promises not to raise; if it ever does, contain it here
        return FetchResult(
            req.url, req.url, 0, None, req.etag, req.last_modified, f"fetch crashed: {exc!r}", 0.0
        )


async def fetch_all(fetcher: Fetcher, requests: Sequence[FetchRequest]) -> list[FetchResult]:
    """Fetch every request concurrently (the Fetcher's limits pace them); results in request order.
    One failing source never stops or delays the others beyond its own deadline."""
    return list(await asyncio.gather(*(fetch_one(fetcher, r) for r in requests)))


def parse_and_normalise(
    result: FetchResult, source_name: str, now: datetime
) -> tuple[list[Item], str | None]:
    """Items from one fetch result, and error text when the body was there but is not a usable feed.

    A 304 or a failed fetch gives no items and no parse error (the fetch error lives on the result)."""
    if result.body is None or result.not_modified:
        return [], None
    parsed = parse_feed(result.body, result.final_url or result.url, result.content_type)
    items = []
    for entry in parsed.entries:
        item = normalise_entry(entry, source_name, now)
        if item is not None:
            items.append(item)
    return items, parsed.error
