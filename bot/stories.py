"""Near-duplicate stories: reports of the same event by several outlets join one story.

Exact duplicates (same canonical URL or guid) never reach this module; what is left are paraphrases —
different outlets, different wording, same facts. The promise:

    items ──title + lead as bytes, words hashed in numpy, stop words out, plurals folded──► hashed unigrams
          ──tf·idf (idf from the items in the window) × title / name / number emphasis──► unit vectors
          ──candidates: earlier items sharing one of each item's few highest-weight terms──►
          ──exact cosine on candidates, same time window, earlier items only──► best match ≥ threshold
          ──► story id = the story of the best match, else the item's own id

A story's id is the id of its first item, so it is stable however many reports join later. The index is
in memory: the worker warms it from the store at start-up (`add_known`) and forgets what has left the
window (`prune`). Term hashing is stateless, so nothing about the vocabulary needs saving.

What makes two paraphrases of one event alike is what a rewrite cannot change: names (Sounion, Hodeidah,
Yi Peng 3), numbers (25 crew, 150,000 tonnes) and the headline's subject. Those terms weigh more than the
prose around them; the weights were chosen by cross-validation over events on news_dev.jsonl (see
bench/stories.py and tests/test_stories.py for the measured precision and recall).

Cost: a poll cycle can bring 100,000 items, and the whole cycle has a budget of seconds, so there is no
per-word Python. Each batch becomes one byte buffer; word boundaries, lower-casing, hashing (a polynomial
rolling hash over prefix sums), stop words and plural folding are numpy operations over all of it at once.
Candidate generation is a sorted posting array (term, row) searched with numpy rather than dict lookups,
and candidate lists are bounded (a few keys per item, the most recent few postings per key), so the work
stays linear in the batch rather than all-pairs.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from bot.items import Item


@dataclass(frozen=True, slots=True)
class Weighting:
    """How much a term's place and form count, on top of tf·idf (0 = no emphasis)."""

    # Headline emphasis measured no better than none (CV F1 0.52 at 0.5 vs 0.53 at 0): rewrites change
    # headline wording most, and a headline's names and numbers are emphasised below anyway.
    title: float = 0.0  # a term in the headline
    name: float = 0.5  # a capitalised word mid-sentence (Sounion, Hodeidah, Aspides): paraphrases keep names
    number: float = 1.0  # a number (25 crew, 150,000 tonnes, Hwasong-18): paraphrases keep numbers too
    lead_chars: int = 400  # the inverted pyramid: who/what/where is in the first couple of sentences


# Chosen on news_dev.jsonl by cross-validation grouped by event, from a flat region of pairwise F1
# (bench/stories.py --quality reproduces it; tests/test_stories.py keeps the measured floors).
DEFAULT_THRESHOLD = 0.25
DEFAULT_WEIGHTING = Weighting()

N_FEATURES = 1 << 20
TITLE_CHARS = 300  # headlines longer than this are feed junk (a whole paragraph in <title>)
KEYS_PER_ITEM = 16  # highest-weight terms per item posted in the index
QUERY_KEYS = 8  # of those, the strongest few looked up to find an item's candidates
POSTINGS_PER_KEY = 8  # only the most recent items per key are candidates: bounds work on common terms
CANDIDATES_PER_ITEM = 8  # exact cosine only for the candidates sharing the most keys
_PAIR_CHUNK = 200_000  # candidate pairs scored at once (memory bound for the row gathers)
_MATCH_ROWS = 5_000  # new rows matched per task: the threads' share, and the part a caller may store
_MATCH_THREADS = min(2, os.cpu_count() or 1)

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
        "make",
        "made",
        "since",
        "still",
        "now",
        "percent",
    ]
)
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) | _NEWS_STOP_WORDS


# --- tokenising: bytes in, (row, feature, flags) out, all in numpy -----------------------------------

# 32-bit hashes: features are 20 bits anyway, and uint32 arrays halve the memory traffic of uint64.
_P = 0x01000193  # the FNV prime: odd, so invertible modulo 2**32
_MASK = (1 << 32) - 1
_MIX_FEATURE = np.uint32(0x9E3779B1)  # multiply-shift: a rolling hash's high bits are the good ones
_MIX_STOP = np.uint32(0x85EBCA77)
_STOP_BITS = 22
_CHUNK_BYTES = 1 << 20  # bytes tokenised at once: bounds the power tables (2 × 4 MiB) and temporaries
# A token's code packs four 10-bit counters (a report has far fewer than 1,024 words): summed per term,
# they are how often it occurs, and how often in the headline, as a name, as a number.
_TITLE, _NAME, _NUMBER = 1 << 10, 1 << 20, 1 << 30
_FIELD = (1 << 10) - 1
_TF_FACTOR = np.concatenate(([0.0], 1.0 + np.log(np.arange(1, _FIELD + 1, dtype=np.float64))))  # by count

_LETTER, _DIGIT = 1, 2
_CLASS = np.zeros(256, dtype=np.int8)
_CLASS[[*range(ord("a"), ord("z") + 1), *range(ord("A"), ord("Z") + 1), *range(0x80, 0x100)]] = _LETTER
_CLASS[ord("0") : ord("9") + 1] = _DIGIT
# ASCII only: a non-ASCII capital (Ö, Ł) stays as it is, so "Łódź" and "ŁÓDŹ" differ; headlines in capitals
# are rare and both spellings still share their ASCII-cased neighbours.
_LOWER = np.arange(256, dtype=np.uint8)
_LOWER[ord("A") : ord("Z") + 1] += 32
_HASH_BYTE = _LOWER.astype(np.uint32) + np.uint32(1)  # +1: a NUL byte still changes the hash
_SENTENCE_END = np.zeros(256, dtype=bool)
_SENTENCE_END[list(b".!?:")] = True
_NOT_PLURAL = np.zeros(256, dtype=bool)
_NOT_PLURAL[list(b"sui")] = True  # -ss, -us, -is: "press", "virus", "analysis" are not plurals

_tables: dict[str, np.ndarray] = {}


def _py_hash(word: str) -> int:
    h, power = 0, 1
    for byte in word.encode():
        h = (h + (byte + 1) * power) & _MASK  # stop words are lower case already
        power = (power * _P) & _MASK
    return h


def _table(name: str) -> np.ndarray:
    """Powers of the hash base, their inverses and the stop-word bitmap, built on first use."""
    if not _tables:
        base = np.empty(_CHUNK_BYTES + 1, dtype=np.uint32)
        base[0] = 1
        base[1:] = _P
        _tables["pow"] = np.multiply.accumulate(base, dtype=np.uint32)  # wraps modulo 2**32, as the hash does
        base[1:] = pow(_P, -1, 1 << 32)
        _tables["inv"] = np.multiply.accumulate(base, dtype=np.uint32)
        stop = np.zeros(1 << _STOP_BITS, dtype=bool)
        hashes = np.array([_py_hash(w) for w in STOP_WORDS], dtype=np.uint32)
        stop[(hashes * _MIX_STOP) >> np.uint32(32 - _STOP_BITS)] = True
        _tables["stop"] = stop
    return _tables[name]


def _report_fields(titles: list[str], texts: list[str], lead_chars: int) -> list[bytes]:
    """Title, lead, title, lead, ... as UTF-8: what the tokeniser reads."""
    fields: list[bytes] = [b""] * (2 * len(titles))
    fields[0::2] = [title[:TITLE_CHARS].encode() for title in titles]
    fields[1::2] = [text[:lead_chars].encode() for text in texts]
    return fields


def _tokens(fields: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, feature, flag code) of every kept word of the reports, in order; fields = title, lead, ..."""
    lengths = np.fromiter(map(len, fields), dtype=np.int64, count=len(fields)) + 1
    doc_end = np.cumsum(lengths[0::2] + lengths[1::2])
    rows, feats, codes = [], [], []
    first = 0
    while first < doc_end.size:  # whole reports per chunk, up to _CHUNK_BYTES (a report is far smaller)
        before = doc_end[first - 1] if first else 0
        last = max(int(np.searchsorted(doc_end, before + _CHUNK_BYTES, side="right")), first + 1)
        r, f, c = _chunk_tokens(fields[2 * first : 2 * last], lengths[2 * first : 2 * last])
        rows.append(r + first)
        feats.append(f)
        codes.append(c)
        first = last
    return np.concatenate(rows), np.concatenate(feats), np.concatenate(codes)


def _chunk_tokens(fields: list[bytes], lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    buf = np.frombuffer(b"\n".join(fields) + b"\n", dtype=np.uint8)
    field_start = np.zeros(lengths.size, dtype=np.int64)
    np.cumsum(lengths[:-1], out=field_start[1:])
    cls = np.take(_CLASS, buf)
    # UTF-8 punctuation is not part of a word: U+2000-U+206F (dashes, curly quotes, ellipsis, thin spaces)
    # and U+00A0-U+00BF (no-break space, guillemets) — otherwise "Houthis’" would be one unknown word.
    at = np.flatnonzero(buf[:-2] == 0xE2)
    at = at[(buf[at + 1] == 0x80) | (buf[at + 1] == 0x81)]
    cls[at] = cls[at + 1] = cls[at + 2] = 0
    at = np.flatnonzero(buf[:-1] == 0xC2)
    at = at[buf[at + 1] >= 0xA0]
    cls[at] = cls[at + 1] = 0
    # "150,000" and "2.5" are one number.
    at = np.flatnonzero((buf[1:-1] == ord(",")) | (buf[1:-1] == ord("."))) + 1
    at = at[(cls[at - 1] == _DIGIT) & (cls[at + 1] == _DIGIT)]
    cls[at] = _DIGIT
    # Words are runs of one class: "F-16" is "f", "16"; "Hwasong18" is "hwasong", "18".
    # (The buffer starts with a headline and ends with "\n", so no word runs off either end.)
    word = cls != 0
    differs = np.empty(cls.size, dtype=bool)
    differs[0] = True
    np.not_equal(cls[1:], cls[:-1], out=differs[1:])
    starts = np.flatnonzero(differs & word)
    differs[:-1] = differs[1:]
    ends = np.flatnonzero(differs & word) + 1

    power, inverse = _table("pow"), _table("inv")
    prefix = np.empty(buf.size + 1, dtype=np.uint32)
    prefix[0] = 0
    np.multiply(np.take(_HASH_BYTE, buf), power[: buf.size], out=prefix[1:])
    np.cumsum(prefix[1:], dtype=np.uint32, out=prefix[1:])  # wraps modulo 2**32, as the hash does

    def span_hash(s: np.ndarray, e: np.ndarray) -> np.ndarray:
        return (prefix[e] - prefix[s]) * inverse[s]  # sum of (byte + 1) * P**(position in the word)

    raw = span_hash(starts, ends)
    letter = cls[starts] == _LETTER
    stop = _table("stop")[(raw * _MIX_STOP) >> np.uint32(32 - _STOP_BITS)]
    keep = np.flatnonzero((ends - starts >= 2) & ~(letter & stop))
    starts, ends, raw, letter = starts[keep], ends[keep], raw[keep], letter[keep]
    size = ends - starts

    # Plural folding only: cheap, and enough for "cables"/"cable", "Houthis"/"Houthi", "militaries".
    last, before = _LOWER[buf[ends - 1]], _LOWER[buf[ends - 2]]
    ends_s = letter & (last == ord("s"))
    ies = np.flatnonzero(ends_s & (size > 4) & (before == ord("e")) & (_LOWER[buf[ends - 3]] == ord("i")))
    plural = np.flatnonzero(ends_s & (size > 3) & ~_NOT_PLURAL[before])
    stem = raw.copy()
    stem[plural] = span_hash(starts[plural], ends[plural] - 1)
    s, e = starts[ies], ends[ies] - 3  # "militaries" -> "military" (written after the -s rule: it wins)
    stem[ies] = span_hash(s, e) + np.uint32(ord("y") + 1) * power[e - s]
    feature = ((stem * _MIX_FEATURE) >> np.uint32(33 - N_FEATURES.bit_length())).astype(np.int32)

    field = np.searchsorted(field_start, starts, side="right") - 1
    row = field >> 1
    in_title = (field & 1) == 0
    # A name: a capital that does not merely start a sentence (or the headline, or the lead).
    capital = letter & (buf[starts] >= ord("A")) & (buf[starts] <= ord("Z"))
    opens = (starts == field_start[field]) | (
        (buf[starts - 1] == ord(" ")) & _SENTENCE_END[buf[np.maximum(starts - 2, 0)]]
    )
    name = capital & ~opens
    # Headlines In Title Case capitalise every word: there, a capital says nothing.
    title_words = np.bincount(row[in_title & letter], minlength=row[-1] + 1 if row.size else 0)
    title_caps = np.bincount(row[in_title & capital], minlength=title_words.size)
    title_case = title_caps > 0.6 * np.maximum(title_words, 1)
    name &= ~(in_title & title_case[row])
    code = 1 + _TITLE * in_title + _NAME * name + _NUMBER * ~letter
    return row, feature, code.astype(np.int64)


def _count_matrix(fields: list[bytes]) -> sp.csr_matrix:
    """Per report and term: the count, how often in the headline, as a name, as a number (packed)."""
    n_docs = len(fields) // 2
    if n_docs == 0:
        return sp.csr_matrix((0, N_FEATURES), dtype=np.int64)
    row, feature, code = _tokens(fields)
    indptr = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n_docs), out=indptr[1:])
    counts = sp.csr_matrix((code, feature.astype(np.int32), indptr), shape=(n_docs, N_FEATURES))
    counts.sum_duplicates()  # sorts each row and adds up the codes of repeated terms
    return counts


@dataclass(frozen=True, slots=True)
class StoryTerms:
    """The hashed terms of some reports, with their counts and flags: the half of story matching that does
    not depend on the index (no idf, no neighbours), so a worker process can compute it beside the parse.

    One row per report, in the reports' order; `lead_chars` is the weighting it was made for."""

    counts: sp.csr_matrix
    lead_chars: int

    def __len__(self) -> int:
        return int(self.counts.shape[0])

    def rows(self, positions: Sequence[int]) -> StoryTerms:
        """These rows, in this order. `positions` are increasing (callers pick a subsequence)."""
        if len(positions) == len(self):  # increasing and as many as there are rows: all of them
            return self
        return StoryTerms(self.counts[np.asarray(positions, dtype=np.int64)], self.lead_chars)

    @classmethod
    def concat(cls, parts: Sequence[StoryTerms]) -> StoryTerms:
        """The parts' rows, in order (all made with the same lead_chars)."""
        if not parts:
            return story_terms([])
        counts = sp.vstack([p.counts for p in parts], format="csr") if len(parts) > 1 else parts[0].counts
        return cls(counts, parts[0].lead_chars)


def story_terms(items: Sequence[Item], lead_chars: int = DEFAULT_WEIGHTING.lead_chars) -> StoryTerms:
    """What `StoryIndex.assign` would compute for these reports before matching them."""
    return StoryTerms(
        _count_matrix(_report_fields([i.title for i in items], [i.text for i in items], lead_chars)),
        lead_chars,
    )


def terms(title: str, text: str, lead_chars: int = DEFAULT_WEIGHTING.lead_chars) -> list[int]:
    """The features of one report: the hashed words of its title and lead, stop words out."""
    counts = _count_matrix(_report_fields([title], [text], lead_chars))
    return np.repeat(counts.indices, counts.data & _FIELD).tolist()


def _utc_seconds(times: list[datetime]) -> np.ndarray:
    # The store hands back naive UTC on SQLite; timestamp() would read a naive time as local.
    return np.array(
        [(t if t.tzinfo is not None else t.replace(tzinfo=UTC)).timestamp() for t in times], dtype=np.float64
    ).astype(np.int64)


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


_ROW_BITS = 32  # a posting is (key << 32) | row, one int64, so one sorted array is the inverted index


class StoryIndex:
    """Assigns each item to a story: the story of its most similar earlier report within the window."""

    def __init__(self, window: timedelta = timedelta(days=3), threshold: float = DEFAULT_THRESHOLD) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"StoryIndex threshold is {threshold}: use a cosine similarity in (0, 1]")
        self.window = window
        self.threshold = threshold
        self.weighting = DEFAULT_WEIGHTING  # set another before the first item to experiment (bench, CV)
        self._window_s = int(window.total_seconds())
        self._reset()

    def _reset(self) -> None:
        self._df = np.zeros(N_FEATURES, dtype=np.int32)  # document frequency over the indexed items
        self._rows = _Rows()
        self._ids: list[str] = []
        self._stories: list[str] = []
        self._published = np.zeros(0, dtype=np.int64)
        self._postings = np.zeros(0, dtype=np.int64)  # sorted (key << 32) | row, KEYS_PER_ITEM per row
        self._row_of: dict[str, int] = {}
        self._pending: list[tuple[str, str, str, str, datetime]] = []

    def __len__(self) -> int:
        self._flush_known()
        return len(self._ids)

    # --- public API -------------------------------------------------------------------------------

    def add_known(self, item_id: str, story_id: str, title: str, text: str, published: datetime) -> None:
        """Warm the index with an item already in the store (its story decided in an earlier run)."""
        self._pending.append((item_id, story_id, title, text, published))

    def assign(
        self,
        items: Sequence[Item],
        terms: StoryTerms | None = None,
        on_part: Callable[[int, list[str]], None] | None = None,
    ) -> list[str]:
        """For each item, in order, the id of its story (the first item's id when it starts one).

        `terms`, when given, are `story_terms(items)` computed elsewhere (a parse worker); the result is
        the same as without them. `on_part(first, stories)`, when given, hears the stories of
        items[first:first + len(stories)] as they are decided, in order, before `assign` returns, so that
        a caller can store them meanwhile; it is called from this thread and must not block for long. A
        batch of items all new to the index is decided in parts; otherwise all at once, at the end."""
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
            if (
                terms is not None
                and terms.lead_chars == self.weighting.lead_chars
                and len(terms) == len(items)
            ):
                counts = terms.rows(fresh).counts
            else:
                counts = _count_matrix(self._fields([i.title for i in batch], [i.text for i in batch]))
            streaming = on_part if len(fresh) == len(items) else None  # positions are rows: 0, 1, 2, ...
            stories = self._insert(
                [i.id for i in batch], counts, _utc_seconds([i.published for i in batch]), None, streaming
            )
            for pos, story in zip(fresh, stories, strict=True):
                result[pos] = story
        for pos, item in enumerate(items):
            if result[pos] is None:
                result[pos] = result[first_pos[item.id]]
        decided = [s for s in result if s is not None]
        if on_part is not None and (not fresh or len(fresh) != len(items)):
            on_part(0, decided)
        return decided

    def prune(self, now: datetime) -> None:
        """Forget items published before `now - window`: they can no longer join anything."""
        self._flush_known()
        if not self._ids:
            return
        keep = np.flatnonzero(self._published >= _utc_seconds([now])[0] - self._window_s)
        if keep.size == len(self._ids):
            return
        kept = self._rows.matrix()[keep]
        renumber = np.full(len(self._ids), -1, dtype=np.int64)
        renumber[keep] = np.arange(keep.size)
        old_rows = renumber[self._postings & ((1 << _ROW_BITS) - 1)]
        postings = ((self._postings >> _ROW_BITS) << _ROW_BITS | old_rows)[old_rows >= 0]
        ids = [self._ids[k] for k in keep]
        stories = [self._stories[k] for k in keep]
        published = self._published[keep]
        self._reset()
        self._df = np.bincount(kept.indices, minlength=N_FEATURES).astype(np.int32)
        self._rows.append(kept)
        self._ids, self._stories, self._published, self._postings = ids, stories, published, postings
        self._row_of = {item_id: row for row, item_id in enumerate(ids)}

    # --- internals --------------------------------------------------------------------------------

    def _fields(self, titles: list[str], texts: list[str]) -> list[bytes]:
        return _report_fields(titles, texts, self.weighting.lead_chars)

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
                _count_matrix(self._fields([e[2] for e in unique], [e[3] for e in unique])),
                _utc_seconds([e[4] for e in unique]),
                [e[1] for e in unique],
            )

    def _vectorise(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        self._df += np.bincount(counts.indices, minlength=N_FEATURES).astype(np.int32)
        n_docs = len(self._ids) + counts.shape[0]
        # The same numbers as log() per term occurrence, cheaper: a big batch takes idf from a table over
        # every feature (a 100,000-item batch has 5 million occurrences of far fewer features), and the
        # tf factor from a table of 1 + log(count) (counts are below 1,024).
        if counts.nnz > N_FEATURES // 4:
            idf = (np.log((1.0 + n_docs) / (1.0 + self._df)) + 1.0)[counts.indices]
        else:
            idf = np.log((1.0 + n_docs) / (1.0 + self._df[counts.indices])) + 1.0
        code = counts.data
        w = self.weighting
        # Few temporaries, in place where the result is the same: a cold cycle's 5 million occurrences make
        # every temporary array ~40 MB of fresh memory to fault in.
        data = np.take(_TF_FACTOR, code & _FIELD)
        data *= idf
        if w.title:
            data *= 1.0 + w.title * ((code >> 10) & _FIELD > 0)
        # 1 + name + number emphasis takes four values: a table of them, indexed by the two flags.
        emphasis = np.array([1.0 + w.name * n + w.number * d for d in (0.0, 1.0) for n in (0.0, 1.0)])
        flags = (code >= _NUMBER).view(np.uint8) << 1
        flags |= ((code >> 20) & _FIELD > 0).view(np.uint8)
        data *= np.take(emphasis, flags)
        lengths = np.diff(counts.indptr)
        norms = np.sqrt(np.bincount(np.repeat(np.arange(lengths.size), lengths), data * data, lengths.size))
        data /= np.repeat(np.where(norms > 0, norms, 1.0), lengths)
        return sp.csr_matrix((data.astype(np.float32), counts.indices, counts.indptr), shape=counts.shape)

    @staticmethod
    def _top_keys(x: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each row's few highest-weight terms (rare, specific terms that paraphrases still share):
        (row, key, rank in the row), grouped by row, strongest first."""
        lengths = np.diff(x.indptr)
        row = np.repeat(np.arange(x.shape[0], dtype=np.int64), lengths)
        # One integer sort: row in the high bits, descending weight (weights are in [0, 1]) in the low ones.
        weight = x.data.astype(np.float64)
        np.subtract(1.0, weight, out=weight)
        weight *= (1 << 30) - 1
        sort_key = weight.astype(np.int64)
        sort_key |= row << 31
        order = np.argsort(sort_key)
        rank = np.arange(x.nnz) - np.repeat(x.indptr[:-1], lengths)
        top = order[rank < KEYS_PER_ITEM]  # order is grouped by row, so rank is the rank in the row
        return row[top], x.indices[top].astype(np.int64), rank[rank < KEYS_PER_ITEM]

    def _insert(
        self,
        ids: list[str],
        counts: sp.csr_matrix,
        published: np.ndarray,
        known_stories: list[str] | None,
        on_rows: Callable[[int, list[str]], None] | None = None,
    ) -> list[str]:
        base = len(self._ids)
        x = self._vectorise(counts)
        row, key, rank = self._top_keys(x)
        row += base
        self._rows.append(x)
        self._published = np.concatenate([self._published, published])
        self._ids.extend(ids)
        self._row_of.update(zip(ids, range(base, base + len(ids)), strict=True))
        new_postings = np.sort((key << _ROW_BITS) | row)

        if known_stories is not None:  # warm start: the stories were decided before; only index them
            self._stories.extend(known_stories)
            self._postings = _merge_sorted(self._postings, new_postings)
            return known_stories

        query = rank < QUERY_KEYS
        stories: list[str] = []
        failed: list[BaseException] = []

        def decide(best: np.ndarray, upto: int) -> None:
            """The stories of rows len(stories)..upto, whose best matches are known (all earlier rows)."""
            first = len(stories)
            for offset in range(first, upto):
                match = int(best[offset])
                if match < 0:
                    story = ids[offset]
                elif match >= base:
                    story = stories[match - base]
                else:
                    story = self._stories[match]
                stories.append(story)
            if on_rows is not None and not failed:
                try:
                    on_rows(first, stories[first:upto])
                except BaseException as exc:  # finish updating the index first: it must stay consistent
                    failed.append(exc)

        self._best_matches(base, row[query], key[query], new_postings, published, decide)
        self._postings = _merge_sorted(self._postings, new_postings)
        self._stories.extend(stories)
        if failed:
            raise failed[0]
        return stories

    def _best_matches(
        self,
        base: int,
        q_row: np.ndarray,
        q_key: np.ndarray,
        new_postings: np.ndarray,
        published: np.ndarray,
        done: Callable[[np.ndarray, int], None],
    ) -> None:
        """For each new row (base + offset), the earlier row it is most similar to, or -1, in `best`;
        `done(best, upto)` hears, in order, when rows up to offset `upto` are matched.

        Each row's answer depends only on the rows before it, all indexed already, so a large batch is
        split into row ranges matched in threads (numpy and scipy's sparse kernels release the GIL): a
        cold poll's 100,000 items otherwise leave the second core idle for seconds."""
        n_new = published.size
        best = np.full(n_new, -1, dtype=np.int64)
        matrix = self._rows.matrix()
        ends = [*range(_MATCH_ROWS, n_new, _MATCH_ROWS), n_new]
        bounds = np.searchsorted(q_row, base + np.array([0, *ends]))  # each range's slice of the queries

        def match(part: int) -> int:
            lo, hi = int(bounds[part]), int(bounds[part + 1])
            if hi > lo:
                self._match_rows(base, q_row[lo:hi], q_key[lo:hi], new_postings, published, matrix, best)
            return ends[part]

        if len(ends) > 1 and _MATCH_THREADS > 1:
            with ThreadPoolExecutor(max_workers=_MATCH_THREADS) as pool:
                for upto in pool.map(match, range(len(ends))):  # in order, as each range is done
                    done(best, upto)
        else:
            for part in range(len(ends)):
                done(best, match(part))

    def _match_rows(
        self,
        base: int,
        q_row: np.ndarray,
        q_key: np.ndarray,
        new_postings: np.ndarray,
        published: np.ndarray,
        matrix: sp.csr_matrix,
        best: np.ndarray,
    ) -> None:
        """`_best_matches` for the new rows queried in q_row/q_key: writes their entries of `best`."""
        n_new = published.size
        # Candidates: for each query key, the POSTINGS_PER_KEY most recent earlier rows posting that key,
        # from the window (all earlier) and from the batch itself (rows before the querying one).
        code = (q_key << _ROW_BITS) | q_row
        src_parts, dst_parts = [], []
        for postings, lookup in (
            (self._postings, (q_key << _ROW_BITS) | ((1 << _ROW_BITS) - 1)),  # every stored row is earlier
            (new_postings, code),  # the batch: the rows before the querying one
        ):
            if postings.size == 0:
                continue
            end = np.searchsorted(postings, lookup, side="left")
            for back in range(1, POSTINGS_PER_KEY + 1):
                at = end - back
                ok = at >= 0
                hit = postings[np.maximum(at, 0)]
                ok &= (hit >> _ROW_BITS) == q_key
                src_parts.append(q_row[ok] - base)
                dst_parts.append(hit[ok] & ((1 << _ROW_BITS) - 1))
        if not src_parts:
            return
        pair_src, pair_dst = np.concatenate(src_parts), np.concatenate(dst_parts)
        # Same time window only.
        close = np.abs(self._published[pair_dst] - published[pair_src]) <= self._window_s
        pair_src, pair_dst = pair_src[close], pair_dst[close]
        if pair_src.size == 0:
            return
        # Count shared keys per pair; keep the candidates sharing most keys.
        total = base + n_new
        first_src = int(pair_src.min())
        code = (pair_src - first_src) * total + pair_dst
        if (int(pair_src.max()) - first_src + 1) * total <= 1 << 32:
            # A task's rows are a few thousand: the codes fit 32 bits, and sorting them takes 2/3 the time.
            code = code.astype(np.uint32)
        pair, shared = np.unique(code, return_counts=True)
        pair = pair.astype(np.int64)
        pair_src = pair // total + first_src  # sorted: np.unique sorts
        order = np.argsort((pair_src << 8) | (255 - shared), kind="stable")  # most shared keys first
        pair_src, pair_dst = pair_src[order], pair[order] % total
        group_start = np.flatnonzero(np.diff(pair_src, prepend=-1))
        place = np.arange(pair_src.size) - np.repeat(group_start, np.diff(group_start, append=pair_src.size))
        keep = place < CANDIDATES_PER_ITEM
        pair_src, pair_dst = pair_src[keep], pair_dst[keep]
        # Exact cosine for the remaining pairs, in chunks.
        sims = np.empty(pair_src.size, dtype=np.float32)
        for lo in range(0, pair_src.size, _PAIR_CHUNK):
            hi = min(lo + _PAIR_CHUNK, pair_src.size)
            a = matrix[pair_src[lo:hi] + base]
            b = matrix[pair_dst[lo:hi]]
            sims[lo:hi] = np.asarray(a.multiply(b).sum(axis=1)).ravel()
        ok = sims >= self.threshold - 1e-6
        pair_src, pair_dst, sims = pair_src[ok], pair_dst[ok], sims[ok]
        if pair_src.size == 0:
            return
        # Best per item: highest similarity, ties to the earliest row.
        order = np.lexsort((pair_dst, -sims, pair_src))
        pair_src, pair_dst = pair_src[order], pair_dst[order]
        first = np.ones(pair_src.size, dtype=bool)
        first[1:] = pair_src[1:] != pair_src[:-1]
        best[pair_src[first]] = pair_dst[first]


def _merge_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.size == 0:
        return b
    return np.insert(a, np.searchsorted(a, b), b)


def pairwise_scores(predicted: Sequence[str], truth: Sequence[str]) -> tuple[float, float, float]:
    """Pairwise precision, recall and F1 of "same story" against "same event" (a clustering metric)."""

    def pairs(counter: Counter[object]) -> int:
        return sum(n * (n - 1) // 2 for n in counter.values())

    both = pairs(Counter(zip(predicted, truth, strict=True)))
    said = pairs(Counter(predicted))
    true = pairs(Counter(truth))
    precision = both / said if said else 1.0
    recall = both / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


__all__ = [
    "DEFAULT_THRESHOLD",
    "DEFAULT_WEIGHTING",
    "STOP_WORDS",
    "StoryIndex",
    "StoryTerms",
    "Weighting",
    "pairwise_scores",
    "story_terms",
    "terms",
]
