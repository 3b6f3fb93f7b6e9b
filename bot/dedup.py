"""Exact duplicates: the keys by which an item is recognised again across sources and polls."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence

from bot.items import Item

# A guid such as "1" or "post-42" is only unique inside its own feed; URL-, URN- and tag-shaped guids, and
# long opaque ones, are meant to be global (RSS 2.0 `isPermaLink`, Atom `id` is an IRI).
_GLOBAL_GUID = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|.{24,})", re.IGNORECASE)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def item_keys(item: Item) -> list[str]:
    keys = [f"u:{_digest(item.url)}"]
    if item.guid:
        guid = item.guid.strip()
        scope = "" if _GLOBAL_GUID.match(guid) else f"{item.source}\0"
        keys.append(f"g:{_digest(scope + guid)}")
    return keys


def new_items(
    batch: Sequence[Item], known: Mapping[str, str], batch_keys: Sequence[list[str]] | None = None
) -> tuple[list[Item], dict[str, list[str]]]:
    """The items of `batch` not seen before (by any key, in the store or earlier in the batch), with keys.

    `batch_keys`, when given, are `item_keys` of each item of `batch`, already computed by the caller."""
    positions, keys_of = new_positions(batch, known, batch_keys)
    return [batch[n] for n in positions], keys_of


def new_positions(
    batch: Sequence[Item], known: Mapping[str, str], batch_keys: Sequence[list[str]] | None = None
) -> tuple[list[int], dict[str, list[str]]]:
    """`new_items` as positions in `batch`: for callers holding other per-item data in batch order."""
    seen = set(known)
    fresh: list[int] = []
    keys_of: dict[str, list[str]] = {}
    for n, item in enumerate(batch):
        keys = batch_keys[n] if batch_keys is not None else item_keys(item)
        if item.id in keys_of or not seen.isdisjoint(keys):
            continue
        seen.update(keys)
        fresh.append(n)
        keys_of[item.id] = keys
    return fresh, keys_of
