"""A feed's CPU work, done where it is parsed, so the poller's own core is left for stories and the store:

    fetched body ──parse──► entries ──normalise──► items ──► dedup keys, topic scores (+ summaries of
    flagged items), story terms                                                    = PreparedFeed

Everything here is a pure function of the body and the scorer: per item, not per batch, so preparing feed
by feed in any process gives the same numbers as the poller preparing the whole batch itself (scores are
row-wise; story terms carry no idf). `FeedWorkers` runs it in worker processes that each hold a copy of
the scorer.

What it costs: a worker scores every item of a changed feed, also those the store already has (it cannot
know which are new). A re-polled feed is mostly known items, so that is ~2 ms of a worker's CPU per changed
50-item feed; in exchange a cold cycle of 100,000 items (bench/poll.py) takes ~5 s of scoring and ~1.5 s
of story tokenising off the poller's core, where stories and the store are left. A worker's whole share
is ~4 ms per 50-item feed: parse and normalise ~1.4, scores ~1.5, story terms ~0.6, keys and pickling.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import operator
import os
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from bot.dedup import item_keys
from bot.items import Item
from bot.scoring import ScoreRows, TopicScorer
from bot.sources.fetch import FetchResult
from bot.sources.poll import parse_and_normalise
from bot.stories import StoryTerms, story_terms
from bot.summary import summarise


@dataclass(frozen=True, slots=True)
class PreparedFeed:
    """One fetch's items, and what the poller would otherwise compute for them itself.

    `keys`, `scores`, `summaries` and `terms` are None when the feed was only parsed (no worker); when
    set, they hold one entry per item in `items` order (`summaries`: item position → summary of the
    items flagged for some topic)."""

    items: list[Item]
    error: str | None = None
    keys: list[list[str]] | None = None
    scores: ScoreRows | None = None
    summaries: dict[int, str] = field(default_factory=dict)
    terms: StoryTerms | None = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Items travel as columns, UTC times as POSIX timestamps (exact to the microsecond for centuries
        # around 1970): pickling tuples that hold two aware datetimes each cost a worker 0.49 s per 100,000
        # items, columns 0.22 s (bench/poll.py's cold cycle has 100,000); frozen dataclasses cost more.
        items = self.items
        if not all(
            i.published.tzinfo is UTC and (i.fetched is None or i.fetched.tzinfo is UTC) for i in items
        ):
            return (_rebuild_rows, ([_item_fields(i) for i in items], *self._rest()))
        columns = (
            [i.id for i in items],
            [i.url for i in items],
            [i.title for i in items],
            [i.text for i in items],
            [i.published.timestamp() for i in items],
            [i.source for i in items],
            [i.guid for i in items],
            [None if i.fetched is None else i.fetched.timestamp() for i in items],
        )
        return (_rebuild_columns, (columns, *self._rest()))

    def _rest(self) -> tuple[Any, ...]:
        return self.error, self.keys, self.scores, self.summaries, self.terms


_item_fields = operator.attrgetter(*(f.name for f in fields(Item)))


def _rebuild_rows(rows: list[tuple[Any, ...]], *rest: Any) -> PreparedFeed:
    return PreparedFeed([Item(*row) for row in rows], *rest)


def _rebuild_columns(columns: tuple[list[Any], ...], *rest: Any) -> PreparedFeed:
    ids, urls, titles, texts, published, sources, guids, fetched = columns
    times: dict[float | None, datetime | None] = {None: None}  # a feed's items share their fetch time
    for t in fetched:
        if t not in times:
            times[t] = datetime.fromtimestamp(t, UTC)
    items = [
        Item(i, u, ti, te, datetime.fromtimestamp(p, UTC), so, g, times[f])
        for i, u, ti, te, p, so, g, f in zip(
            ids, urls, titles, texts, published, sources, guids, fetched, strict=True
        )
    ]
    return PreparedFeed(items, *rest)


def prepare_feeds(
    fetched: Sequence[tuple[FetchResult, str]], now: datetime, scorer: TopicScorer
) -> list[PreparedFeed]:
    """Parse, normalise, key, score and summarise fetch results, one PreparedFeed per (result, source
    name), in order (pure: no I/O). The feeds' items are scored together: the scorer and the story terms
    cost ~1 ms per call whatever its size, about what a 50-item feed's own scoring costs."""
    parsed = [parse_and_normalise(result, source, now) for result, source in fetched]
    items = [item for found, _ in parsed for item in found]
    if not items:
        return [PreparedFeed(found, error) for found, error in parsed]
    scores = scorer.score_rows(items)
    terms = story_terms(items)
    out = []
    start = 0
    for found, error in parsed:
        if not found:
            out.append(PreparedFeed(found, error))
            continue
        end = start + len(found)
        detailed = {n - start: row for n, row in scores.detailed.items() if start <= n < end}
        summaries = {
            n: summarise(found[n].title, found[n].text)
            for n, row in detailed.items()
            if any(s.flagged for s in row)
        }
        out.append(
            PreparedFeed(
                found,
                error,
                [item_keys(i) for i in found],
                ScoreRows(scores.topic_ids, scores.probs[start:end], detailed),
                summaries,
                StoryTerms(terms.counts[start:end], terms.lead_chars),
            )
        )
        start = end
    return out


@dataclass
class PreparedBatch:
    """A cycle's prepared feeds joined in order: `ingest` takes the rows of the new items from it."""

    scorer: TopicScorer
    keys: list[list[str]]
    scores: ScoreRows
    summaries: dict[int, str]
    terms: StoryTerms

    @classmethod
    def join(cls, scorer: TopicScorer, feeds: list[PreparedFeed]) -> PreparedBatch | None:
        """None unless every feed with items was prepared in full (else the poller does it all itself)."""
        full = [f for f in feeds if f.items]
        if not full or any(f.keys is None or f.scores is None or f.terms is None for f in full):
            return None
        keys: list[list[str]] = []
        summaries: dict[int, str] = {}
        for f in full:
            summaries.update((len(keys) + n, text) for n, text in f.summaries.items())
            keys.extend(f.keys or ())
        return cls(
            scorer,
            keys,
            ScoreRows.concat([f.scores for f in full if f.scores is not None]),
            summaries,
            StoryTerms.concat([f.terms for f in full if f.terms is not None]),
        )


# The scorer of this worker process, installed once when the process starts (see FeedWorkers).
_scorer: TopicScorer | None = None


def _install_scorer(scorer: TopicScorer) -> None:
    global _scorer
    _scorer = scorer


def prepare_in_worker(fetched: Sequence[tuple[FetchResult, str]], now: datetime) -> list[PreparedFeed]:
    """`prepare_feeds` with this worker's scorer: the job FeedWorkers' executor runs."""
    if _scorer is None:  # pragma: no cover - the pool's initializer always runs first
        raise RuntimeError("feed worker started without a scorer")
    return prepare_feeds(fetched, now, _scorer)


class PrepareQueue:
    """Hands fetched feeds to the workers a few at a time, within a few milliseconds of their arrival.

    One job per feed paid the scorer's and the story terms' fixed cost per call on every 50-item feed:
    ~1 ms of a worker's ~5 ms per feed in bench/poll.py. Feeds that arrive together (a cycle brings
    hundreds a second) go in one job of up to `feeds_per_job`; a lone feed waits `wait` seconds at most."""

    def __init__(
        self,
        workers: FeedWorkers,
        scorer: TopicScorer,
        now: datetime,
        feeds_per_job: int = 4,
        wait: float = 0.005,
    ) -> None:
        self._workers = workers
        self._scorer = scorer
        self._now = now
        self.feeds_per_job = feeds_per_job
        self.wait = wait
        self._loop = asyncio.get_running_loop()
        self._pending: list[tuple[FetchResult, str, asyncio.Future[PreparedFeed]]] = []
        self._timer: asyncio.TimerHandle | None = None

    def prepare(self, result: FetchResult, source: str) -> asyncio.Future[PreparedFeed]:
        done: asyncio.Future[PreparedFeed] = self._loop.create_future()
        self._pending.append((result, source, done))
        if len(self._pending) >= self.feeds_per_job:
            self._flush()
        elif self._timer is None:
            self._timer = self._loop.call_later(self.wait, self._flush)
        return done

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        jobs, self._pending = self._pending, []
        if not jobs:
            return
        executor = self._workers.executor_for(self._scorer)
        try:
            job = executor.submit(prepare_in_worker, [(r, s) for r, s, _ in jobs], self._now)
        except RuntimeError as exc:  # shut down (the service is stopping), or broken (a worker died)
            if isinstance(exc, BrokenProcessPool):
                self._workers.discard(executor)
            for _, _, done in jobs:
                done.set_exception(exc)
            return
        asyncio.wrap_future(job, loop=self._loop).add_done_callback(
            lambda finished: self._deliver(executor, finished, [done for _, _, done in jobs])
        )

    def _deliver(
        self,
        executor: Executor,
        finished: asyncio.Future[list[PreparedFeed]],
        waiting: list[asyncio.Future[PreparedFeed]],
    ) -> None:
        if not finished.cancelled() and isinstance(finished.exception(), BrokenProcessPool):
            # A worker died (killed, out of memory, a crash in a C parser on a hostile feed): the feeds it
            # held fail, and the next job starts a fresh pool instead of failing forever.
            self._workers.discard(executor)
        for n, done in enumerate(waiting):
            if done.done():
                continue
            if finished.cancelled():
                done.cancel()
            elif (exc := finished.exception()) is not None:
                done.set_exception(exc)
            else:
                done.set_result(finished.result()[n])


def _ready() -> int:
    return os.getpid() if _scorer is not None else 0


class FeedWorkers:
    """Worker processes preparing feeds (CPU-bound: a second core helps), for one scorer at a time.

    Each worker gets the scorer once, when it starts (~1 MB pickled), not with every feed. A poll with
    another scorer (config reload, retrain) starts new workers; the old ones finish the feeds they were
    given and exit."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._scorer: TopicScorer | None = None
        self._pool: ProcessPoolExecutor | None = None

    def executor_for(self, scorer: TopicScorer) -> Executor:
        if self._pool is None or scorer is not self._scorer:
            old = self._pool
            # spawn, not fork: the poller has threads (APScheduler, asyncio.to_thread) that fork would copy
            # mid-state.
            self._pool = ProcessPoolExecutor(
                self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_install_scorer,
                initargs=(scorer,),
            )
            self._scorer = scorer
            if old is not None:
                old.shutdown(wait=False)
        return self._pool

    def discard(self, executor: Executor) -> None:
        """Stop using `executor` (broken: one of its workers died); the next job starts a new pool."""
        if executor is self._pool and self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
            self._scorer = None

    def warm(self, scorer: TopicScorer) -> None:
        """Start every worker for `scorer` now and wait until they are ready (a service's first poll, or a
        benchmark that must not time process start-up)."""
        pool = self.executor_for(scorer)
        seen: set[int] = set()
        for _ in range(100):  # a worker that is quick to start may answer for a slower one: ask again
            seen.update(f.result() for f in [pool.submit(_ready) for _ in range(self.processes)])
            if len(seen) >= self.processes:
                return
            time.sleep(0.1)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)
            self._pool = None
            self._scorer = None
