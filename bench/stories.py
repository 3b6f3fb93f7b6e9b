"""Story clustering speed: StoryIndex.assign on N distinct items, the old algorithm against the new.

Items are the bench feed farm's synthetic reports (bench/feedserver.py: 50-item RSS feeds, parsed and
normalised as the poller does), all pushed through `assign` in one call, as in a poll cycle that brings
them all. Prints µs/item for both and the ratio, from one run on the same machine (ratios travel between
machines; absolute numbers do not, and this one may be shared). The old algorithm is a frozen copy of
bot/stories.py before its rewrite (BASELINE_SOURCE below), so the comparison survives later commits.

Run: ``python bench/stories.py [--items 100000] [--repeat 1]``. Parsing the feeds takes longer than the
clustering; ``--cache FILE`` pickles the parsed items for the next run.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
import types
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from feedserver import ITEMS_PER_FEED, build_feed  # noqa: E402

from bot.items import Item  # noqa: E402
from bot.normalise import normalise_entry  # noqa: E402
from bot.sources.feeds import parse_feed  # noqa: E402
from bot.stories import StoryIndex  # noqa: E402

NOW = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
WINDOW = timedelta(days=3)


def synthetic_items(n: int, cache: Path | None) -> list[Item]:
    if cache is not None and cache.exists():
        items: list[Item] = pickle.loads(cache.read_bytes())
        if len(items) >= n:
            return items[:n]
    items = []
    for feed in range(-(-n // ITEMS_PER_FEED)):
        parsed = parse_feed(build_feed(feed, NOW), f"https://wire{feed}.example/feed", "application/rss+xml")
        for entry in parsed.entries:
            item = normalise_entry(entry, f"wire{feed}", NOW)
            if item is not None:
                items.append(item)
    if cache is not None:
        cache.write_bytes(pickle.dumps(items))
    return items[:n]


def baseline() -> types.ModuleType:
    module = types.ModuleType("stories_baseline")
    exec(compile(BASELINE_SOURCE, "<bench/stories.py BASELINE_SOURCE>", "exec"), module.__dict__)
    return module


def time_assign(make: Callable[[], object], items: Sequence[Item], repeat: int) -> tuple[float, int]:
    """Best of `repeat` runs: seconds for one assign call on a fresh index, and the number of stories."""
    best, n_stories = float("inf"), 0
    for _ in range(repeat):
        index = make()
        start = time.perf_counter()
        stories = index.assign(items)  # type: ignore[attr-defined]
        best = min(best, time.perf_counter() - start)
        n_stories = len(set(stories))
    return best, n_stories


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=None, help="pickle of parsed items to reuse")
    args = parser.parse_args(argv)
    items = synthetic_items(args.items, args.cache)
    old = baseline()
    runs = {
        "old": time_assign(lambda: old.StoryIndex(window=WINDOW), items, args.repeat),
        "new": time_assign(lambda: StoryIndex(window=WINDOW), items, args.repeat),
    }
    for name, (seconds, n_stories) in runs.items():
        print(f"{name}: {seconds * 1e6 / len(items):8.1f} µs/item  {seconds:6.2f} s  {n_stories} stories")
    print(f"speed-up: {runs['old'][0] / runs['new'][0]:.1f}x on {len(items)} items")


# bot/stories.py as it was before the numpy tokeniser and the sorted posting array (frozen; not linted).
BASELINE_SOURCE = r'''
from __future__ import annotations

import gc
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import chain

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from sklearn.utils import murmurhash3_32

from bot.items import Item

# Chosen on news_dev.jsonl by cross-validation over events from a flat region of pairwise F1
# (see tests/test_stories.py for the measured precision and recall it must keep).
DEFAULT_THRESHOLD = 0.25

N_FEATURES = 1 << 20
LEAD_CHARS = 500  # the inverted pyramid: who/what/where is in the first couple of sentences
KEYS_PER_ITEM = 16  # highest-weight terms per item posted in the inverted index
QUERY_KEYS = 8  # of those, the strongest few looked up to find an item's candidates
POSTINGS_PER_KEY = 8  # only the most recent items per key are candidates: bounds work on common terms
CANDIDATES_PER_ITEM = 8  # exact cosine only for the candidates sharing the most keys
_PAIR_CHUNK = 200_000  # candidate pairs scored at once (memory bound for the row gathers)

# Words every news report uses whatever it is about: they make unrelated reports look alike.
_NEWS_STOP_WORDS = frozenset(
    [
        "said",
        "says",
        "say",
        "saying",
        "told",
        "tell",
        "according",
        "report",
        "reports",
        "reported",
        "reporting",
        "news",
        "new",
        "year",
        "years",
        "week",
        "weeks",
        "month",
        "months",
        "day",
        "days",
        "today",
        "yesterday",
        "tomorrow",
        "time",
        "times",
        "people",
        "official",
        "officials",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "statement",
        "added",
        "including",
        "just",
        "like",
        "also",
        "could",
        "would",
        "will",
        "may",
        "might",
        "amid",
        "including",
        "make",
        "made",
        "since",
        "still",
        "now",
        "according",
        "percent",
    ]
)
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) | _NEWS_STOP_WORDS

_TOKEN = re.compile(r"[^\W\d_]+|\d+(?:[.,]\d+)*")


def _stem(token: str) -> str:
    """Plural folding only: cheap, and enough for 'cables'/'cable', 'Houthis'/'Houthi'."""
    if len(token) > 4 and token.endswith("ies"):
        return token[:-3] + "y"
    if len(token) > 3 and token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


# Memo of whitespace-separated chunk -> its feature number, or _NONE for a stop word / punctuation. A chunk
# with several words ("Yong-hyun", "U.S.-China") maps to its first word's feature with _MORE set, and its
# other features wait in _EXTRA. Words follow Zipf's law, so after a few hundred items almost every chunk
# is a dict hit: str.split plus one C-level map over dict.get is several times cheaper than a regex over
# every text, and tokenising is most of the cost of a poll cycle.
_MEMO: dict[str, int] = {}
_EXTRA: dict[str, tuple[int, ...]] = {}
_MEMO_MAX = 1 << 20
_NONE = -1
_MORE = 1 << 30


def _features(chunk: str) -> tuple[int, ...]:
    out = []
    for word in _TOKEN.findall(chunk.lower()):
        if word[0].isdigit():
            word = word.replace(",", "")
            if len(word) < 2:
                continue
        elif len(word) < 2 or word in STOP_WORDS:
            continue
        out.append(int(murmurhash3_32(_stem(word), positive=True)) & (N_FEATURES - 1))
    return tuple(out)


def _learn(chunks: list[str]) -> None:
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
        _EXTRA.clear()
    for chunk in set(chunks).difference(_MEMO):
        found = _features(chunk)
        if not found:
            _MEMO[chunk] = _NONE
        elif len(found) == 1:
            _MEMO[chunk] = found[0]
        else:
            _MEMO[chunk] = found[0] | _MORE
            _EXTRA[chunk] = found[1:]


def _chunk_features(chunks: list[str]) -> np.ndarray:
    codes = list(map(_MEMO.get, chunks))  # C-level loop: the common case is all hits
    if None in codes:
        _learn(chunks)
        codes = list(map(_MEMO.__getitem__, chunks))
    return np.array(codes, dtype=np.int64)


def terms(title: str, text: str) -> list[int]:
    """The features of one report: the hashed words of its title and lead, stop words out.

    Unigrams only: measured on news_dev, bigrams of paraphrased reports rarely match and only dilute the
    vector (pairwise F1 0.56 with bigrams and the title counted twice, 0.61 without).
    """
    counts = _count_matrix([_report_text(title, text)])
    return np.repeat(counts.indices, counts.data.astype(np.int64)).tolist()


def _report_text(title: str, text: str) -> str:
    return f"{title} {text[:LEAD_CHARS]}"


def _count_matrix(texts: list[str]) -> sp.csr_matrix:
    """Term counts of many texts at once; every loop here runs in C (str.split, map, dict.get, fromiter)."""
    # Millions of short-lived lists would trigger the cyclic garbage collector again and again, each pass
    # walking every live object: measured as most of the cost of a 100,000-item batch. Nothing here
    # makes cycles, so the collector waits until the batch is counted.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _count_matrix_inner(texts)
    finally:
        if gc_was_enabled:
            gc.enable()


def _count_matrix_inner(texts: list[str]) -> sp.csr_matrix:
    split = list(map(str.split, texts))
    per_text = np.fromiter(map(len, split), dtype=np.int64, count=len(split))
    chunks = list(chain.from_iterable(split))
    codes = _chunk_features(chunks)
    rows = np.repeat(np.arange(len(texts), dtype=np.int64), per_text)
    more = np.flatnonzero(codes >= _MORE)
    extra_rows: list[int] = []
    extra_cols: list[int] = []
    for at in more.tolist():  # the few compound chunks: their other words
        found = _EXTRA.get(chunks[at], ())
        extra_rows.extend([int(rows[at])] * len(found))
        extra_cols.extend(found)
    codes[more] -= _MORE
    keep = codes >= 0
    cols, rows = codes[keep], rows[keep]
    if extra_rows:  # rare: merge the compound words' extra features back in row order
        rows = np.concatenate([rows, np.asarray(extra_rows, dtype=np.int64)])
        cols = np.concatenate([cols, np.asarray(extra_cols, dtype=np.int64)])
        order = np.argsort(rows, kind="stable")
        rows, cols = rows[order], cols[order]
    indptr = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(texts)), out=indptr[1:])
    counts = sp.csr_matrix(
        (np.ones(cols.size), cols.astype(np.int32), indptr), shape=(len(texts), N_FEATURES)
    )
    counts.sum_duplicates()  # sorts each row and turns repeats into term counts
    return counts


def _utc_seconds(when: datetime) -> int:
    if when.tzinfo is None:  # the store hands back naive UTC on SQLite
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


class _Rows:
    """Growable CSR storage of unit vectors (amortised O(1) append, no vstack of the whole index)."""

    def __init__(self) -> None:
        self.indptr = np.zeros(1024, dtype=np.int64)
        self.indices = np.zeros(1 << 16, dtype=np.int32)
        self.data = np.zeros(1 << 16, dtype=np.float32)
        self.n = 0

    @property
    def nnz(self) -> int:
        return int(self.indptr[self.n])

    def append(self, rows: sp.csr_matrix) -> None:
        m, nnz = rows.shape[0], rows.nnz
        need_rows, need_nnz = self.n + m + 1, self.nnz + nnz
        if need_rows > self.indptr.size:
            self.indptr = np.resize(self.indptr, max(need_rows, 2 * self.indptr.size))
        if need_nnz > self.indices.size:
            size = max(need_nnz, 2 * self.indices.size)
            self.indices = np.resize(self.indices, size)
            self.data = np.resize(self.data, size)
        start = self.nnz
        self.indptr[self.n + 1 : self.n + m + 1] = rows.indptr[1:] + start
        self.indices[start : start + nnz] = rows.indices
        self.data[start : start + nnz] = rows.data
        self.n += m

    def matrix(self) -> sp.csr_matrix:
        nnz = self.nnz
        return sp.csr_matrix(
            (self.data[:nnz], self.indices[:nnz], self.indptr[: self.n + 1]),
            shape=(self.n, N_FEATURES),
            copy=False,
        )


class StoryIndex:
    """Assigns each item to a story: the story of its most similar earlier report within the window."""

    def __init__(self, window: timedelta = timedelta(days=3), threshold: float = DEFAULT_THRESHOLD) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"StoryIndex threshold is {threshold}: use a cosine similarity in (0, 1]")
        self.window = window
        self.threshold = threshold
        self._window_s = int(window.total_seconds())
        self._reset()

    def _reset(self) -> None:
        self._df = np.zeros(N_FEATURES, dtype=np.int32)  # document frequency over the indexed items
        self._rows = _Rows()
        self._ids: list[str] = []
        self._stories: list[str] = []
        self._published = np.zeros(0, dtype=np.int64)
        self._keys: list[np.ndarray] = []  # per row: its candidate keys (kept for rebuilding on prune)
        self._postings: dict[int, list[int]] = {}
        self._row_of: dict[str, int] = {}
        self._pending: list[tuple[str, str, str, str, datetime]] = []

    def __len__(self) -> int:
        self._flush_known()
        return len(self._ids)

    # --- public API -------------------------------------------------------------------------------

    def add_known(self, item_id: str, story_id: str, title: str, text: str, published: datetime) -> None:
        """Warm the index with an item already in the store (its story decided in an earlier run)."""
        self._pending.append((item_id, story_id, title, text, published))

    def assign(self, items: Sequence[Item]) -> list[str]:
        """For each item, in order, the id of its story (the first item's id when it starts one)."""
        self._flush_known()
        if not items:
            return []
        result: list[str | None] = [None] * len(items)
        fresh: list[int] = []  # positions of items not seen before
        first_pos: dict[str, int] = {}
        for pos, item in enumerate(items):
            row = self._row_of.get(item.id)
            if row is not None:
                result[pos] = self._stories[row]
            elif item.id in first_pos:
                pass  # a repeat within the batch: takes the story of its first occurrence below
            else:
                first_pos[item.id] = pos
                fresh.append(pos)
        if fresh:
            batch = [items[p] for p in fresh]
            stories = self._insert(
                [i.id for i in batch],
                [_report_text(i.title, i.text) for i in batch],
                np.array([_utc_seconds(i.published) for i in batch], dtype=np.int64),
                None,
            )
            for pos, story in zip(fresh, stories, strict=True):
                result[pos] = story
        for pos, item in enumerate(items):
            if result[pos] is None:
                result[pos] = result[first_pos[item.id]]
        return [s for s in result if s is not None]

    def prune(self, now: datetime) -> None:
        """Forget items published before `now - window`: they can no longer join anything."""
        self._flush_known()
        if not self._ids:
            return
        keep = np.flatnonzero(self._published >= _utc_seconds(now) - self._window_s)
        if keep.size == len(self._ids):
            return
        old = self._rows.matrix()
        kept = old[keep]
        ids = [self._ids[k] for k in keep]
        stories = [self._stories[k] for k in keep]
        keys = [self._keys[k] for k in keep]
        published = self._published[keep]
        counts = self._row_df_counts(kept)
        self._reset()
        self._df = counts
        self._rows.append(kept)
        self._ids, self._stories, self._keys, self._published = ids, stories, keys, published
        self._row_of = {item_id: row for row, item_id in enumerate(ids)}
        for row, row_keys in enumerate(keys):
            for key in row_keys.tolist():
                self._postings.setdefault(key, []).append(row)

    # --- internals --------------------------------------------------------------------------------

    @staticmethod
    def _row_df_counts(rows: sp.csr_matrix) -> np.ndarray:
        return np.bincount(rows.indices, minlength=N_FEATURES).astype(np.int32)

    def _flush_known(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        seen: set[str] = set()
        unique = []
        for entry in pending:
            if entry[0] not in self._row_of and entry[0] not in seen:
                seen.add(entry[0])
                unique.append(entry)
        if unique:
            self._insert(
                [e[0] for e in unique],
                [_report_text(e[2], e[3]) for e in unique],
                np.array([_utc_seconds(e[4]) for e in unique], dtype=np.int64),
                [e[1] for e in unique],
            )

    def _vectorise(self, texts: list[str]) -> sp.csr_matrix:
        counts = _count_matrix(texts)
        self._df += self._row_df_counts(counts)
        n_docs = len(self._ids) + counts.shape[0]
        idf = np.log((1.0 + n_docs) / (1.0 + self._df[counts.indices])) + 1.0
        data = (1.0 + np.log(counts.data)) * idf
        norms = np.sqrt(np.add.reduceat(data * data, counts.indptr[:-1])) if counts.nnz else np.zeros(0)
        lengths = np.diff(counts.indptr)
        row_norm = np.zeros(counts.shape[0])
        has = lengths > 0
        row_norm[has] = norms[has]
        data /= np.repeat(np.where(row_norm > 0, row_norm, 1.0), lengths)
        return sp.csr_matrix((data.astype(np.float32), counts.indices, counts.indptr), shape=counts.shape)

    @staticmethod
    def _top_keys(x: sp.csr_matrix) -> list[np.ndarray]:
        """Each row's few highest-weight features: rare, specific terms that paraphrases still share."""
        lengths = np.diff(x.indptr)
        row = np.repeat(np.arange(x.shape[0], dtype=np.int64), lengths)
        # One integer sort: row in the high bits, descending weight (weights are in [0, 1]) in the low ones.
        sort_key = (row << 31) | ((1.0 - x.data.astype(np.float64)) * ((1 << 30) - 1)).astype(np.int64)
        order = np.argsort(sort_key)
        rank = np.arange(x.nnz) - np.repeat(x.indptr[:-1], lengths)
        top = order[rank < KEYS_PER_ITEM]  # order is grouped by row, so rank is the rank in the row
        keys = x.indices[top]
        bounds = np.minimum(lengths, KEYS_PER_ITEM).cumsum()
        return np.split(keys, bounds[:-1])

    def _insert(
        self,
        ids: list[str],
        texts: list[str],
        published: np.ndarray,
        known_stories: list[str] | None,
    ) -> list[str]:
        base = len(self._ids)
        x = self._vectorise(texts)
        keys = self._top_keys(x)
        self._rows.append(x)
        self._published = np.concatenate([self._published, published])
        self._keys.extend(keys)
        self._ids.extend(ids)
        for offset, item_id in enumerate(ids):
            self._row_of[item_id] = base + offset

        if known_stories is not None:  # warm start: the stories were decided before; only index them
            self._stories.extend(known_stories)
            self._post(base, keys)
            return known_stories

        best = self._best_matches(base, keys, published)
        stories: list[str] = []
        for offset, item_id in enumerate(ids):
            match = int(best[offset])
            if match < 0:
                story = item_id
            elif match >= base:
                story = stories[match - base]
            else:
                story = self._stories[match]
            stories.append(story)
        self._stories.extend(stories)
        return stories

    def _post(self, base: int, keys: list[np.ndarray]) -> None:
        postings = self._postings
        for offset, row_keys in enumerate(keys):
            row = base + offset
            for key in row_keys.tolist():
                postings.setdefault(key, []).append(row)

    def _best_matches(self, base: int, keys: list[np.ndarray], published: np.ndarray) -> np.ndarray:
        """For each new row (base + offset), the earlier row it is most similar to, or -1."""
        n_new = len(keys)
        best = np.full(n_new, -1, dtype=np.int64)
        # Candidate generation: walk the batch in order so each item only sees earlier ones.
        counts: list[int] = []
        dst: list[int] = []
        postings = self._postings
        cap = POSTINGS_PER_KEY
        for offset, row_keys in enumerate(keys):
            row = base + offset
            before = len(dst)
            for rank, key in enumerate(row_keys.tolist()):
                posting = postings.get(key)
                if posting is None:
                    postings[key] = [row]
                else:
                    if rank < QUERY_KEYS:
                        dst.extend(posting[-cap:])
                    posting.append(row)
            counts.append(len(dst) - before)
        if not dst:
            return best
        pair_src = np.repeat(np.arange(n_new, dtype=np.int64), counts)
        pair_dst = np.fromiter(dst, dtype=np.int64, count=len(dst))
        # Same time window only.
        all_published = self._published
        close = np.abs(all_published[pair_dst] - published[pair_src]) <= self._window_s
        pair_src, pair_dst = pair_src[close], pair_dst[close]
        if pair_src.size == 0:
            return best
        # Count shared keys per pair; keep the candidates sharing most keys.
        code = pair_src * (base + n_new) + pair_dst
        code, shared = np.unique(code, return_counts=True)
        pair_src, pair_dst = code // (base + n_new), code % (base + n_new)
        order = np.lexsort((-shared, pair_src))
        pair_src, pair_dst = pair_src[order], pair_dst[order]
        starts = np.searchsorted(pair_src, pair_src, side="left")
        place = np.arange(pair_src.size) - starts
        keep = place < CANDIDATES_PER_ITEM
        pair_src, pair_dst = pair_src[keep], pair_dst[keep]
        # Exact cosine for the remaining pairs, in chunks.
        matrix = self._rows.matrix()
        sims = np.empty(pair_src.size, dtype=np.float32)
        for lo in range(0, pair_src.size, _PAIR_CHUNK):
            hi = min(lo + _PAIR_CHUNK, pair_src.size)
            a = matrix[pair_src[lo:hi] + base]
            b = matrix[pair_dst[lo:hi]]
            sims[lo:hi] = np.asarray(a.multiply(b).sum(axis=1)).ravel()
        ok = sims >= self.threshold - 1e-6
        pair_src, pair_dst, sims = pair_src[ok], pair_dst[ok], sims[ok]
        if pair_src.size == 0:
            return best
        # Best per item: highest similarity, ties to the earliest row.
        order = np.lexsort((pair_dst, -sims, pair_src))
        pair_src, pair_dst = pair_src[order], pair_dst[order]
        first = np.ones(pair_src.size, dtype=bool)
        first[1:] = pair_src[1:] != pair_src[:-1]
        best[pair_src[first]] = pair_dst[first]
        return best
'''


if __name__ == "__main__":
    main()
