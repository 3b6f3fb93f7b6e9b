"""The pipeline, one poll cycle drawn as a shell pipeline of its steps:

    due sources | fetch (httpx, conditional) | parse | normalise | dedup (exact) | stories (near-dup)
                | score topics | summarise flagged | decide alerts + thread follow-ups | store (one transaction)
                | deliver (outbox: console, Slack)

`ingest` runs everything after normalisation on a batch of items; `poll_sources` adds fetching and source
health. Neither decides anything itself: the decisions are the pure functions they call.

Where the work runs: with feed workers (`[fetch].parse_processes` > 0), each fetched feed is parsed, keyed,
scored and summarised in a worker process as soon as it arrives (bot/prepare.py), overlapping the other
fetches. The poller then dedups, assigns stories, decides and stores. A cycle of up to INGEST_PART_SOURCES
sources is one batch; a bigger one is ingested in parts of that many sources, in config order, each as soon
as all of its sources are in, while the later ones are still being fetched (see `ingest_parts`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime

from bot.config import Config, SourceConfig
from bot.decide import decide_alerts, decide_followups
from bot.dedup import item_keys, new_positions
from bot.items import Alert, Followup, Item, ScoredItem, TopicScore
from bot.prepare import FeedWorkers, PreparedBatch, PreparedFeed, PrepareQueue
from bot.scoring import TopicScorer
from bot.sources.fetch import Fetcher, FetchLimits, FetchResult
from bot.sources.health import SourceHealth, after_fetch, record_parse_error
from bot.sources.poll import FetchRequest, fetch_one, parse_and_normalise
from bot.store import Store
from bot.stories import StoryIndex
from bot.summary import summarise

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What a cycle needs; built once by the composition root and swapped on config reload."""

    config: Config
    store: Store
    scorer: TopicScorer
    stories: StoryIndex
    console_fallback: bool = True  # no Slack token: Slack destinations print to the console
    # Poll jobs overlap; the story index and SQLite want one writer at a time.
    lock: threading.Lock = field(default_factory=threading.Lock)
    # (name, url) pairs known to have their row in the sources table, so a poll does not re-check them.
    ensured: set[tuple[str, str]] = field(default_factory=set)

    def destinations(self) -> dict[str, list[str]]:
        """Topic → where its alerts go: config.toml's destinations, then the channels subscribed with
        `/news subscribe` (one small query per ingest), each destination once, config order first."""
        routed = {
            t.id: list(dict.fromkeys(t.destinations))
            for t in self.config.active_topics
            if t.id in self.scorer.topic_ids
        }
        for sub in self.store.subscriptions():
            found = routed.get(sub.topic)
            if found is not None and sub.destination not in found:
                found.append(sub.destination)
        return routed


@dataclass
class IngestReport:
    received: int = 0
    new: int = 0
    flagged: int = 0
    alerts: list[Alert] = field(default_factory=list)
    followups: list[Followup] = field(default_factory=list)
    # The batch's new items with their stories, scores and summaries, from `ingest`. A poll's report leaves
    # it empty (the store has them): a cold cycle of 100,000 items held ~200 MB of them to its end.
    scored: list[ScoredItem] = field(default_factory=list)


GC_PAUSE_SOURCES = 100  # a poll of this many sources or more runs with the cyclic collector paused
_gc_lock = threading.Lock()
_gc_holds = 0
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile (reference counting still frees everything that is not a
    cycle). A cold cycle allocates a few million small objects (items, scores, rows), and each burst set
    off collections that walked the whole heap again: 1.0 of the 1.2 s spent building 400,000 TopicScores
    went to the collector. Ingests hold the runtime's lock and big polls are rare, so pauses do not chain:
    the collector runs between them. Nested pauses share one; the last out restores what was before."""
    global _gc_holds, _gc_was_enabled
    with _gc_lock:
        if _gc_holds == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_holds += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holds -= 1
            if _gc_holds == 0 and _gc_was_enabled:
                gc.enable()


def ingest(
    rt: Runtime, batch: Sequence[Item], now: datetime, prepared: PreparedBatch | None = None
) -> IngestReport:
    """Dedup, stories, scores, summaries, decisions and the store for one batch, under the runtime's lock.

    `prepared`, when given, holds the batch's keys, scores, summaries and story terms computed by feed
    workers, in batch order; it is used only if its scorer is still the running one (else recomputed)."""
    with rt.lock, gc_paused():
        return _ingest(rt, batch, now, prepared)


def _ingest(
    rt: Runtime, batch: Sequence[Item], now: datetime, prepared: PreparedBatch | None
) -> IngestReport:
    report = IngestReport(received=len(batch))
    if prepared is not None and len(prepared.keys) != len(batch):
        raise ValueError(f"prepared rows for {len(prepared.keys)} items, batch has {len(batch)}")
    batch_keys = prepared.keys if prepared is not None else [item_keys(item) for item in batch]
    known = rt.store.known_keys(k for ks in batch_keys for k in ks)
    positions, keys = new_positions(batch, known, batch_keys)
    fresh = [batch[n] for n in positions]
    report.new = len(fresh)
    if not fresh:
        return report
    scorer = rt.scorer
    terms = prepared.terms.rows(positions) if prepared is not None else None
    reuse = prepared if prepared is not None and prepared.scorer is scorer else None
    versions = {tid: scorer.models.fingerprint(tid)[:12] for tid in scorer.topic_ids}
    scored: list[ScoredItem] = []
    # Three things overlap here, in one transaction: the story index (mostly numpy, in threads of its own),
    # the scorer on a second thread (unless workers scored already), and the store on a third, saving each
    # part of the batch as soon as its stories are decided. Alerts need the whole batch's stories and
    # scores, so they are decided and saved last.
    with (
        rt.store.transaction() as conn,
        ThreadPoolExecutor(max_workers=1) as scoring_thread,
        ThreadPoolExecutor(max_workers=1) as store_thread,  # one: parts are saved in order
    ):
        # Prepared scores are taken part by part, as the parts are saved; others are computed meanwhile.
        scoring = None if reuse else scoring_thread.submit(_scores_and_summaries, scorer, fresh)
        saves: list[Future[None]] = []

        def save_part(first: int, stories: list[str]) -> None:
            if any(s.done() and s.exception() is not None for s in saves):
                return  # an earlier part failed: the transaction will roll back
            last = first + len(stories)
            if reuse is not None:
                rows = positions[first:last]
                topic_scores = reuse.scores.take(rows)
                summaries = [reuse.summaries.get(n, "") for n in rows]
            else:
                assert scoring is not None
                computed, all_summaries = scoring.result()
                topic_scores, summaries = computed[first:last], all_summaries[first:last]
            part = [
                ScoredItem(item=fresh[n], story=story, scores=ts, summary=summary)
                for n, story, ts, summary in zip(
                    range(first, last), stories, topic_scores, summaries, strict=True
                )
            ]
            scored.extend(part)
            rt.store.save_items(conn, part, {s.item.id: keys[s.item.id] for s in part}, versions)

        def decided(first: int, stories: list[str]) -> None:
            saves.append(store_thread.submit(save_part, first, stories))

        if terms is not None:  # a cycle's worth, from feed workers: stored in parts as stories are decided
            story_ids = rt.stories.assign(fresh, terms, decided)
        else:
            story_ids = rt.stories.assign(fresh)
            decided(0, story_ids)
        for save in saves:
            save.result()
        report.flagged = sum(1 for s in scored if s.flagged)
        existing = rt.store.alerts_of_stories(conn, story_ids)
        already = {(a.story, a.topic, a.destination) for found in existing.values() for a in found}
        report.alerts = decide_alerts(scored, rt.destinations(), already, now)
        for alert in report.alerts:
            existing.setdefault(alert.story, []).append(alert)
        report.followups = decide_followups(scored, existing, now)
        rt.store.save_outcome(conn, scored, report.alerts, report.followups)
    report.scored = scored
    return report


def _scores_and_summaries(
    scorer: TopicScorer, fresh: list[Item]
) -> tuple[list[tuple[TopicScore, ...]], list[str]]:
    """Each item's topic scores and summary (flagged items only; others get "")."""
    topic_scores = scorer.score(fresh)
    summaries = [
        summarise(item.title, item.text) if any(s.flagged for s in ts) else ""
        for item, ts in zip(fresh, topic_scores, strict=True)
    ]
    return topic_scores, summaries


@dataclass
class PollReport:
    polled: int = 0
    not_modified: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    ingest: IngestReport = field(default_factory=IngestReport)


def fetch_limits(config: Config) -> FetchLimits:
    f = config.fetch
    total = f.timeout.total_seconds()
    return FetchLimits(
        connect_timeout=min(10.0, total),
        read_timeout=total,
        total_timeout=total,
        max_bytes=f.max_bytes,
        max_redirects=f.max_redirects,
        per_host=f.per_host,
        max_concurrency=f.concurrency,
    )


def parse_pool(config: Config) -> FeedWorkers | None:
    """Worker processes for the feeds' CPU work (parse, score: a second core helps), or None to parse in
    a thread and score in the poller."""
    if config.fetch.parse_processes <= 0:
        return None
    return FeedWorkers(config.fetch.parse_processes)


def due_sources(config: Config, health: dict[str, SourceHealth], now: datetime) -> list[str]:
    """Enabled sources whose backoff or interval has run out (never-polled ones are due at once)."""
    due = []
    for s in config.sources:
        if not s.enabled:
            continue
        h = health.get(s.name)
        if h is None or h.next_due is None or h.next_due <= now:
            due.append(s.name)
    return due


async def _fetch_and_prepare(
    fetcher: Fetcher, request: FetchRequest, name: str, now: datetime, queue: PrepareQueue | None
) -> tuple[FetchResult, PreparedFeed]:
    result = await fetch_one(fetcher, request)
    if result.error is not None or result.body is None or result.not_modified:
        return result, PreparedFeed([])
    # Parsing (and, in workers, scoring) is CPU work: off the event loop, so other fetches keep flowing;
    # in worker processes when there are some, so that it runs on another core.
    if queue is None:
        found, error = await asyncio.to_thread(parse_and_normalise, result, name, now)
        prepared = PreparedFeed(found, error)
    else:
        try:
            prepared = await queue.prepare(result, name)
        except Exception as exc:  # a worker died or the pool is gone: this source fails, the cycle goes on
            prepared = PreparedFeed([], f"feed worker failed: {type(exc).__name__}: {exc}")
    # The body is parsed: the cycle keeps the result for the source's health only. A cold cycle of 2,000
    # feeds otherwise held ~100 MB of bodies to its end, memory the poller faulted in afresh each time.
    return replace(result, body=None), prepared


async def poll_sources(
    rt: Runtime,
    fetcher: Fetcher,
    names: Sequence[str],
    now: datetime,
    rng: random.Random | None = None,
    parse_pool: FeedWorkers | None = None,
) -> PollReport:
    """Fetch the named sources concurrently, record each one's health, ingest all new items at once."""
    report = PollReport()
    by_name = {s.name: s for s in rt.config.sources}
    chosen = [by_name[n] for n in names if n in by_name]
    if not chosen:
        return report
    missing = [(s.name, s.url) for s in chosen if (s.name, s.url) not in rt.ensured]
    if missing:
        rt.store.ensure_sources(missing)
        rt.ensured.update(missing)
    # A big cycle holds a part of its batch in memory before ingesting it: no collector passes over the
    # growing heap meanwhile (0.6 s of the poller's CPU in bench/poll.py's cold cycle). Small polls, the
    # scheduler's one source at a time, allocate too little to matter and never pause it.
    with gc_paused() if len(chosen) >= GC_PAUSE_SOURCES else nullcontext():
        return await _poll_chosen(rt, fetcher, chosen, now, rng, parse_pool)


async def _poll_chosen(
    rt: Runtime,
    fetcher: Fetcher,
    chosen: list[SourceConfig],
    now: datetime,
    rng: random.Random | None,
    parse_pool: FeedWorkers | None,
) -> PollReport:
    report = PollReport()
    health = rt.store.source_health()
    scorer = rt.scorer  # the whole cycle is scored by the scorer it started with
    queue = PrepareQueue(parse_pool, scorer, now) if parse_pool is not None else None
    parts = ingest_parts(len(chosen))
    outcomes: list[tuple[FetchResult, PreparedFeed] | None] = [None] * len(chosen)
    waiting = [hi - lo for lo, hi in parts]  # sources of each part not fetched and prepared yet
    part_of = [p for p, (lo, hi) in enumerate(parts) for _ in range(lo, hi)]
    updates: list[tuple[str, SourceHealth, int]] = []
    ingests: list[IngestReport] = []
    ready: asyncio.Queue[int | None] = asyncio.Queue()
    next_part = 0
    cycle_started = time.perf_counter()

    async def ingest_in_order() -> None:
        # One part at a time, in config order: each is a whole `ingest` of its own (lock, transaction).
        while (part := await ready.get()) is not None and not stopping:
            lo, hi = parts[part]
            batch, joined = _collect(rt, chosen[lo:hi], outcomes[lo:hi], health, now, rng, report, updates)
            outcomes[lo:hi] = [None] * (hi - lo)  # what is left of them is in `batch` and `joined`
            if batch:
                prepared = PreparedBatch.join(scorer, joined) if queue is not None else None
                started = time.perf_counter()
                done = await asyncio.to_thread(ingest, rt, batch, now, prepared)
                done.scored = []
                ingests.append(done)
                if len(parts) > 1:  # where a big cycle's time goes: parts should keep up with the fetches
                    log.info(
                        "cycle part %d/%d: sources %d-%d, %d items, %d new, ingested in %.2f s (at %.2f s)",
                        part + 1, len(parts), lo, hi - 1, done.received, done.new,
                        time.perf_counter() - started, time.perf_counter() - cycle_started,
                    )  # fmt: skip

    async def poll_one(n: int, source: SourceConfig) -> None:
        nonlocal next_part
        h = health.get(source.name)
        request = FetchRequest(source.url, h.etag, h.last_modified) if h else FetchRequest(source.url)
        outcomes[n] = await _fetch_and_prepare(fetcher, request, source.name, now, queue)
        waiting[part_of[n]] -= 1
        while next_part < len(parts) and waiting[next_part] == 0:
            ready.put_nowait(next_part)
            next_part += 1

    stopping = False
    ingester = asyncio.create_task(ingest_in_order())
    # Cancelled (the service is stopping), during the fetches or after: the part being ingested finishes
    # first (its transaction runs in a thread, which nothing can interrupt, and the store must not close
    # under it), the parts still waiting are dropped. No health is saved, so the next poll fetches them all
    # again without validators; dedup keeps what was stored from being stored twice.
    try:
        await asyncio.gather(*(poll_one(n, s) for n, s in enumerate(chosen)))
    except BaseException:
        stopping = True
        raise
    finally:
        ready.put_nowait(None)
        try:
            await asyncio.shield(ingester)  # an ingest that failed raises here: health is then not saved
        except asyncio.CancelledError:
            stopping = True
            await asyncio.wait([ingester])
            raise
    report.ingest = _merged(ingests)
    with rt.store.transaction() as conn:
        rt.store.save_health(conn, updates, now)
    return report


# Fewer, bigger parts pay less per part (each ingest looks up keys, updates the stories earlier parts
# began, commits); more, smaller ones leave less to ingest after the last fetch. bench/poll.py's cold cycle
# (2,000 feeds) took 9.6-10.7 s in parts of 250, 9.0-9.5 in parts of 500 or 667, 9.8-10.5 in parts of 1,000.
INGEST_PART_SOURCES = 500


def ingest_parts(n_sources: int) -> list[tuple[int, int]]:
    """(first, end) source positions of each part of a cycle that is ingested on its own.

    A big cycle is ingested in parts of INGEST_PART_SOURCES sources, in config order, each as soon as all
    of its sources are fetched and prepared, while the later ones are still being fetched: the store and
    the story index then work beside the fetches instead of after them (bench/poll.py's cold cycle spent
    ~6 s ingesting 100,000 items at its end, one core idle). The result is that of polling the sources
    in groups, which is what the scheduler does anyway (one source at a time): dedup and stories see the
    earlier parts in the store and the index. Parts are fixed by position, not by arrival, so a cycle's
    outcome does not depend on which server answered first."""
    return [(lo, min(lo + INGEST_PART_SOURCES, n_sources)) for lo in range(0, n_sources, INGEST_PART_SOURCES)]


def _collect(
    rt: Runtime,
    sources: Sequence[SourceConfig],
    outcomes: Sequence[tuple[FetchResult, PreparedFeed] | None],
    health: dict[str, SourceHealth],
    now: datetime,
    rng: random.Random | None,
    report: PollReport,
    updates: list[tuple[str, SourceHealth, int]],
) -> tuple[list[Item], list[PreparedFeed]]:
    """Each source's new health (into `updates`) and tallies (into `report`); the part's items."""
    batch: list[Item] = []
    prepared: list[PreparedFeed] = []
    for source, outcome in zip(sources, outcomes, strict=True):
        assert outcome is not None, "a part is collected once all of its sources are done"
        result, feed = outcome
        found, parse_error = feed.items, feed.error
        interval = rt.config.interval(source)
        before = health.get(source.name, SourceHealth())
        after = after_fetch(before, result, now, interval, max_backoff=rt.config.fetch.max_backoff, rng=rng)
        report.polled += 1
        if result.error is not None:
            report.failed[source.name] = result.error
            log.warning("source=%r status=%s error=%s", source.name, result.status, result.error)
        elif result.not_modified:
            report.not_modified += 1
        elif parse_error and not found:
            after = record_parse_error(before, parse_error, now, interval)
            report.failed[source.name] = parse_error
            log.warning("source=%r status=%s error=%s", source.name, result.status, parse_error)
        batch.extend(found)
        prepared.append(feed)
        updates.append((source.name, after, result.status))
    return batch, prepared


def _merged(reports: Sequence[IngestReport]) -> IngestReport:
    if len(reports) == 1:
        return reports[0]
    merged = IngestReport()
    for r in reports:
        merged.received += r.received
        merged.new += r.new
        merged.flagged += r.flagged
        merged.alerts.extend(r.alerts)
        merged.followups.extend(r.followups)
        merged.scored.extend(r.scored)
    return merged
