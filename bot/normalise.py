"""RawEntry → Item: the one place where feed junk becomes the plain data the pipeline trusts.

Pure functions, no I/O. The promises an Item keeps (see bot/items.py): canonical URL, plain-text title and
text, a UTC-aware `published` that is never in the future, and an `id` that is the same every time the same
article is seen, whichever feed, spelling or poll it came from.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from bot.items import Item, RawEntry
from bot.text import html_to_text
from bot.urls import canonical_url

# Feeds with broken clocks or template bugs date items years ahead (e.g. "2099-01-01", or a local time
# labelled UTC). A day of slack keeps honest time-zone slips; anything later is replaced by the fetch time
# so a bogus date cannot pin an item to the top of every "latest" list.
MAX_FUTURE = timedelta(days=1)
# Nor can a date before the web existed be true (Unix epoch 0 from a template printing an empty field).
MIN_PUBLISHED = datetime(1991, 1, 1, tzinfo=UTC)


def item_id(canonical_url: str | None, guid: str | None) -> str:
    """Stable 16-hex id: of the canonical URL when there is one (so the same article from two feeds is one
    item), else of the guid. blake2b because it is fast and needs no key."""
    basis = canonical_url or (f"guid:{guid}" if guid else "")
    return hashlib.blake2b(basis.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def _published(value: datetime | None, fetched: datetime) -> datetime:
    if value is None:
        return fetched
    # fastfeedparser's dates are already UTC (it hands out ISO strings in +00:00): nothing to convert.
    if value.tzinfo is not UTC:
        if value.tzinfo is None or value.utcoffset() is None:
            value = value.replace(tzinfo=UTC)  # a date without a zone: UTC is the least-wrong reading
        else:
            value = value.astimezone(UTC)
    if value > fetched + MAX_FUTURE or value < MIN_PUBLISHED:
        return fetched
    return value


def normalise_entry(entry: RawEntry, source: str, fetched: datetime) -> Item | None:
    """The Item for one feed entry, or None when it has neither a title nor a link (nothing to show)."""
    if fetched.tzinfo is not UTC:
        fetched = fetched.replace(tzinfo=UTC) if fetched.tzinfo is None else fetched.astimezone(UTC)
    title = html_to_text(entry.title)
    url = canonical_url(entry.link)
    if not title and not url:
        return None
    # Many feeds put a teaser in <description> and the article in <content:encoded>; others repeat the
    # title in both or leave content empty. Take the longer raw string, convert only that one.
    raw_text = entry.content if len(entry.content) > len(entry.summary) else entry.summary
    text = html_to_text(raw_text)
    guid = (entry.guid.strip() if entry.guid else None) or None
    # Neither link nor guid (seen in title-only "breaking" feeds): the title within its source is the
    # best identity left; it keeps a re-poll of the same feed from minting a new item.
    ident = item_id(url, guid) if url or guid else item_id(None, f"title:{source}:{title}")
    # Positional (id, url, title, text, published, source, guid, fetched): keyword arguments cost more,
    # and this runs once per item of every feed.
    return Item(ident, url, title, text, _published(entry.published, fetched), source, guid, fetched)
