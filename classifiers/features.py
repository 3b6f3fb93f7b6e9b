"""Text features shared by every topic: one vocabulary, one pass over a batch, one sparse matrix.

Why not scikit-learn's TfidfVectorizer: it builds a Python string for every token and n-gram and looks each
up in a dict from bytecode, which caps scoring at a few thousand reports a second per topic. Here a whole
batch is lower-cased, encoded once, and tokenised with numpy on the bytes: word boundaries from a byte
table, a 64-bit polynomial hash per token from prefix sums, ids by binary search in the vocabulary, and
bigrams as integer pairs. No per-token Python objects are made while scoring.

The vocabulary is scikit-learn's ``TfidfVectorizer(ngram_range=(1, 2), stop_words="english")`` one (words
of 2+ characters, stop words dropped before bigrams are formed; a test checks it), with bigrams never
spanning the title/body boundary. Weighting: sublinear ``log2(1 + tf)`` (which also takes the fractional
counts of tail words, below), smoothed idf, L2-normalised rows.

The title counts twice (each of its unigrams and bigrams has weight 2), because a headline states what a
report is about while the body drifts into background; for the same reason body words after the first
``lead_tokens`` count only ``tail_weight``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

_P = np.uint64(0x100000001B3)  # odd multiplier: invertible mod 2**64
_P_INV = np.uint64(pow(int(_P), -1, 2**64))
_DOC_BREAK, _PART_BREAK = 0, 1  # bytes "\x00" and "\x01": no bigram may span them
_CHUNK_BYTES = 1_000_000  # bound the memory of one tokenisation pass (8 bytes per byte, a few arrays)

# Word bytes: ASCII letters, digits, underscore, and every non-ASCII byte (accented letters, Cyrillic...);
# the common non-ASCII punctuation is masked separately in _tokenise.
_WORD_BYTE = np.zeros(256, dtype=bool)
for _c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_":
    _WORD_BYTE[_c] = True
_WORD_BYTE[128:] = True


_FIB = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: spreads the hash's high bits over table slots


class _HashTable:
    """uint64 key → int64 value, open addressing with linear probing, built and probed with numpy.

    Replaces ``np.searchsorted`` on the vocabulary, which was the slowest step of scoring (random binary
    search over 64-bit keys); a probe here is one multiply, one gather and one compare per token.
    """

    def __init__(self, keys: np.ndarray, values: np.ndarray, default: int) -> None:
        self.default = default
        bits = max(4, int(np.ceil(np.log2(max(len(keys), 1) * 4))))  # load factor ≤ 1/4: short probes
        self._shift = np.uint64(64 - bits)
        self._mask = (1 << bits) - 1
        self._keys = np.zeros(1 << bits, dtype=np.uint64)
        self._values = np.full(1 << bits, default, dtype=np.int64)
        self._used = np.zeros(1 << bits, dtype=bool)
        keys = keys.astype(np.uint64)
        self._size = len(keys)
        pending = np.arange(len(keys))
        slots = self._slots(keys)
        while len(pending):
            want = slots[pending]
            free = ~self._used[want]
            # of the keys that want the same free slot, the first takes it; the rest probe on
            _, first = np.unique(want, return_index=True)
            winner = np.zeros(len(pending), dtype=bool)
            winner[first] = True
            winner &= free
            placed = pending[winner]
            self._used[slots[placed]] = True
            self._keys[slots[placed]] = keys[placed]
            self._values[slots[placed]] = values[placed]
            pending = pending[~winner]
            slots[pending] = (slots[pending] + 1) & self._mask

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        return ((keys * _FIB) >> self._shift).astype(np.int64)

    def __len__(self) -> int:
        return self._size

    def get(self, keys: np.ndarray) -> np.ndarray:
        """The value of every key, or the default for keys not in the table."""
        keys = keys.astype(np.uint64, copy=False)
        out = np.full(len(keys), self.default, dtype=np.int64)
        pending = np.arange(len(keys))
        at = self._slots(keys)  # the slot to probe next, for each pending key
        while len(pending):
            used = self._used[at]
            match = used & (self._keys[at] == keys[pending])
            out[pending[match]] = self._values[at[match]]
            more = used & ~match  # an empty slot ends the probe: the key is absent
            pending = pending[more]
            at = (at[more] + 1) & self._mask
        return out


@dataclass(frozen=True, slots=True)
class _Tokens:
    """Tokens of a batch: hash, byte span, document index, and whether a break precedes each."""

    lowered: np.ndarray  # the batch as lower-cased UTF-8 bytes
    hashes: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    doc: np.ndarray
    breaks: np.ndarray  # sorted positions of break bytes: no bigram spans one
    in_body: np.ndarray  # token is in the body (not the title)


_LOWER_BYTE = np.arange(256, dtype=np.uint8)
_LOWER_BYTE[ord("A") : ord("Z") + 1] += 32


class _Powers:
    """P**i and P**-i mod 2**64 for i up to the longest chunk, computed once and shared (read-only)."""

    def __init__(self) -> None:
        self.forward = np.ones(1, dtype=np.uint64)
        self.inverse = np.ones(1, dtype=np.uint64)
        self._lock = threading.Lock()

    def upto(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        forward, inverse = self.forward, self.inverse
        if len(forward) <= n:
            with self._lock:
                size = max(n + 1, 2 * len(self.forward))
                forward = np.empty(size, dtype=np.uint64)
                forward[0] = 1
                np.cumprod(np.full(size - 1, _P, dtype=np.uint64), out=forward[1:])
                inverse = np.empty(size, dtype=np.uint64)
                inverse[0] = 1
                np.cumprod(np.full(size - 1, _P_INV, dtype=np.uint64), out=inverse[1:])
                self.forward, self.inverse = forward, inverse
        return forward, inverse


_POWERS = _Powers()


def _blank(text: str) -> str:
    return text.replace("\x00", " ").replace("\x01", " ")


def _tokenise(docs: Sequence[tuple[str, str]]) -> _Tokens:
    parts = [f"{title}\x01{body}" for title, body in docs]
    # str.lower knows every alphabet but is slow on non-ASCII text; the byte table below lowers ASCII fast
    parts = [part if part.isascii() else part.lower() for part in parts]
    text = "\x00".join(parts)
    if text.count("\x00") != len(docs) - 1 or text.count("\x01") != len(docs):
        # break bytes inside a report would shift the title/body/doc bookkeeping: blank them out
        parts = [f"{_blank(title)}\x01{_blank(body)}".lower() for title, body in docs]
        text = "\x00".join(parts)
    ascii_only = text.isascii()
    raw = text.encode("utf-8", "replace")
    b = _LOWER_BYTE[np.frombuffer(raw, dtype=np.uint8)]
    word = _WORD_BYTE[b]
    if not ascii_only:
        # General punctuation U+2000–U+206F (’ “ ” – — …) is E2 80 xx / E2 81 xx in UTF-8; NBSP is C2 A0.
        punct = np.flatnonzero((b[:-2] == 0xE2) & ((b[1:-1] == 0x80) | (b[1:-1] == 0x81)))
        for shift in (0, 1, 2):
            word[punct + shift] = False
        nbsp = np.flatnonzero((b[:-1] == 0xC2) & (b[1:] == 0xA0))
        word[nbsp] = False
        word[nbsp + 1] = False
    edges = np.diff(word.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    long_enough = (ends - starts) >= 2
    starts, ends = starts[long_enough], ends[long_enough]
    n = len(b)
    forward, inverse = _POWERS.upto(n)
    prefix = np.zeros(n + 1, dtype=np.uint64)
    np.cumsum(b * forward[:n], out=prefix[1:])
    hashes = (prefix[ends] - prefix[starts]) * inverse[starts]
    break_at = np.flatnonzero(b <= _PART_BREAK)
    is_doc_break = b[break_at] == _DOC_BREAK
    doc = np.searchsorted(break_at[is_doc_break], starts)
    in_body = np.searchsorted(break_at[~is_doc_break], starts) - doc == 1
    return _Tokens(b, hashes, starts, ends, doc, break_at, in_body)


def _chunks(docs: Sequence[tuple[str, str]]) -> Iterable[tuple[int, Sequence[tuple[str, str]]]]:
    """Split a batch so one tokenisation pass never holds more than about _CHUNK_BYTES of text."""
    start, size = 0, 0
    for i, (title, body) in enumerate(docs):
        size += len(title) + len(body) + 2
        if size > _CHUNK_BYTES:
            yield start, docs[start : i + 1]
            start, size = i + 1, 0
    if start < len(docs):
        yield start, docs[start:]


def _hash_words(words: Iterable[str]) -> np.ndarray:
    return _tokenise([("", " ".join(words))]).hashes


class NewsVectorizer:
    """Word 1–2-gram sublinear TF-IDF with a fast batch transform (see the module docstring)."""

    def __init__(
        self,
        min_df: int = 1,
        stop_words: Iterable[str] = ENGLISH_STOP_WORDS,
        n_jobs: int | None = None,
        lead_tokens: int = 30,
        tail_weight: float = 1.0,
    ) -> None:
        self.min_df = min_df
        self.lead_tokens = lead_tokens
        self.tail_weight = tail_weight
        self.n_jobs = n_jobs if n_jobs is not None else min(4, os.cpu_count() or 1)
        self.stop_words = tuple(sorted(stop_words))
        self._words = _HashTable(np.zeros(0, np.uint64), np.zeros(0, np.int64), 0)  # hash → id, -1 stop word
        self._n_words = 1
        self._unigram_feature = np.zeros(1, dtype=np.int64)  # word id → feature index or -1
        self._bigrams = _HashTable(np.zeros(0, np.uint64), np.zeros(0, np.int64), -1)  # a*n_words+b → feature
        self.idf = np.zeros(0, dtype=np.float32)
        self.feature_names: list[str] = []

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def _word_ids(self, tokens: _Tokens) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Word id (0 unknown), doc index, 'bigram allowed with previous' and weight of every kept token."""
        ids = self._words.get(tokens.hashes)
        keep = ids >= 0  # stop words (-1) are dropped before bigrams are formed, as in scikit-learn
        ids, starts, doc = ids[keep], tokens.starts[keep], tokens.doc[keep]
        in_body = tokens.in_body[keep]
        joined = np.zeros(len(ids), dtype=bool)
        if len(ids) > 1:
            breaks_before = np.searchsorted(tokens.breaks, starts)
            joined[1:] = (breaks_before[1:] == breaks_before[:-1]) & (ids[1:] > 0) & (ids[:-1] > 0)
        # The title counts twice: as if it were fed in twice, without tokenising it twice (a bigram's weight
        # is its second word's, and no bigram spans the title/body break, so every count is the same).
        weight = np.where(in_body, np.float32(1.0), np.float32(2.0))
        if self.tail_weight != 1.0 and len(ids):
            # rank of each body token within its body: the lead counts fully, the tail less
            group = doc * 2 + in_body
            first = np.flatnonzero(np.concatenate(([True], group[1:] != group[:-1])))
            rank = np.arange(len(ids)) - np.repeat(first, np.diff(np.append(first, len(ids))))
            weight[in_body & (rank >= self.lead_tokens)] = self.tail_weight
        return ids, doc, joined, weight

    def _grams(self, ids: np.ndarray, joined: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feature index of every unigram and bigram occurrence, and which token row it belongs to."""
        uni = self._unigram_feature[ids]
        rows = [np.flatnonzero(uni >= 0)]
        cols = [uni[rows[0]]]
        if len(self._bigrams):
            at = np.flatnonzero(joined)
            features = self._bigrams.get((ids[at - 1] * self._n_words + ids[at]).astype(np.uint64))
            hit = features >= 0
            rows.append(at[hit])
            cols.append(features[hit])
        return np.concatenate(rows), np.concatenate(cols)

    def fit(self, docs: Sequence[tuple[str, str]]) -> NewsVectorizer:
        """Learn the vocabulary and idf from (title, text) pairs."""
        tokens = _tokenise(docs)
        stop_hashes = np.unique(_hash_words(self.stop_words))
        word_hashes, first = np.unique(tokens.hashes, return_index=True)
        is_word = ~np.isin(word_hashes, stop_hashes)
        word_hashes, first = word_hashes[is_word], first[is_word]
        names = [
            tokens.lowered[s:e].tobytes().decode("utf-8", "replace")
            for s, e in zip(tokens.starts[first].tolist(), tokens.ends[first].tolist(), strict=True)
        ]
        self._n_words = len(word_hashes) + 1
        keys = np.concatenate((word_hashes, stop_hashes))
        ids = np.concatenate((np.arange(1, self._n_words, dtype=np.int64), np.full(len(stop_hashes), -1)))
        self._words = _HashTable(keys, ids, 0)

        word_ids, doc, joined, _ = self._word_ids(tokens)
        n_docs = len(docs)
        uni_df = np.bincount(
            np.unique(doc * self._n_words + word_ids) % self._n_words, minlength=self._n_words
        )
        uni_df[0] = 0
        at = np.flatnonzero(joined)
        pair = word_ids[at - 1] * self._n_words + word_ids[at]
        pair_doc = np.unique(np.stack((doc[at], pair), axis=1), axis=0) if len(at) else np.zeros((0, 2), int)
        bigram_keys, bigram_df = np.unique(pair_doc[:, 1], return_counts=True)
        keep_bigram = bigram_df >= self.min_df
        bigram_keys, bigram_df = bigram_keys[keep_bigram], bigram_df[keep_bigram]
        unigram_ids = np.flatnonzero(uni_df >= max(self.min_df, 1))

        self._unigram_feature = np.full(self._n_words, -1, dtype=np.int64)
        self._unigram_feature[unigram_ids] = np.arange(len(unigram_ids))
        self._bigrams = _HashTable(
            bigram_keys.astype(np.uint64),
            np.arange(len(unigram_ids), len(unigram_ids) + len(bigram_keys), dtype=np.int64),
            -1,
        )
        word_names = ["", *names]
        self.feature_names = [word_names[i] for i in unigram_ids.tolist()] + [
            f"{word_names[k // self._n_words]} {word_names[k % self._n_words]}" for k in bigram_keys.tolist()
        ]
        df = np.concatenate((uni_df[unigram_ids], bigram_df)).astype(np.float64)
        self.idf = (np.log((1 + n_docs) / (1 + df)) + 1).astype(np.float32)
        return self

    def transform(self, docs: Sequence[tuple[str, str]]) -> sp.csr_matrix:
        """(title, text) pairs → L2-normalised TF-IDF rows, float32 CSR of shape (len(docs), n_features)."""

        def grams(part: tuple[int, Sequence[tuple[str, str]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            offset, chunk = part
            ids, doc, joined, weight = self._word_ids(_tokenise(chunk))
            token_rows, features = self._grams(ids, joined)
            return doc[token_rows] + offset, features, weight[token_rows]

        parts = list(_chunks(docs))
        if len(parts) > 1 and self.n_jobs > 1:
            # numpy releases the GIL in the heavy steps, so threads scale across cores without pickling.
            with ThreadPoolExecutor(max_workers=self.n_jobs) as pool:
                results = list(pool.map(grams, parts))
        else:
            results = [grams(part) for part in parts]
        r = np.concatenate([r for r, _, _ in results]) if results else np.zeros(0, dtype=np.int64)
        c = np.concatenate([c for _, c, _ in results]) if results else np.zeros(0, dtype=np.int64)
        w = np.concatenate([w for _, _, w in results]) if results else np.zeros(0, dtype=np.float32)
        counts = sp.csr_matrix((w, (r, c)), shape=(len(docs), self.n_features), dtype=np.float32)
        counts.sum_duplicates()
        # sublinear tf that also takes fractional (tail-weighted) counts: 1 → 1, 2 → 1.58, 0.5 → 0.58
        counts.data = np.log2(1 + counts.data) * self.idf[counts.indices]
        norms = np.sqrt(
            np.bincount(
                np.repeat(np.arange(len(docs)), np.diff(counts.indptr)),
                weights=counts.data.astype(np.float64) ** 2,
                minlength=len(docs),
            )
        )
        norms[norms == 0] = 1
        counts.data /= np.repeat(norms, np.diff(counts.indptr)).astype(np.float32)
        return counts
