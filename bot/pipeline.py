"""The pipeline, one poll cycle drawn as a shell pipeline of its steps:

    due sources | fetch (httpx, conditional) | parse | normalise | dedup (exact) | stories (near-dup)
                | score topics | summarise flagged | decide alerts + thread follow-ups | store (one transaction)
                | deliver (outbox: console, Slack)

`ingest` runs everything after normalisation on a batch of items; `poll_sources` adds fetching and source
health. Neither decides anything itself: the decisions are the pure functions they call.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import random
import threading
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from bot.config import Config
from bot.decide import decide_alerts, decide_followups
from bot.dedup import item_keys, new_items
from bot.items import Alert, Followup, Item, ScoredItem
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
    scored: list[ScoredItem] = field(default_factory=list)


def ingest(rt: Runtime, batch: Sequence[Item], now: datetime) -> IngestReport:
    with rt.lock:
        return _ingest(rt, batch, now)


def _ingest(rt: Runtime, batch: Sequence[Item], now: datetime) -> IngestReport:
    report = IngestReport(received=len(batch))
    batch_keys = [item_keys(item) for item in batch]
    known = rt.store.known_keys(k for ks in batch_keys for k in ks)
    fresh, keys = new_items(batch, known, batch_keys)
    report.new = len(fresh)
    if not fresh:
        return report
    story_ids = rt.stories.assign(fresh)
    topic_scores = rt.scorer.score(fresh)
    scored = []
    for item, story, ts in zip(fresh, story_ids, topic_scores, strict=True):
        flagged = any(s.flagged for s in ts)
        summary = summarise(item.title, item.text) if flagged else ""
        scored.append(ScoredItem(item=item, story=story, scores=ts, summary=summary))
    report.flagged = sum(1 for s in scored if s.flagged)
    versions = {tid: rt.scorer.models.fingerprint(tid)[:12] for tid in rt.scorer.topic_ids}
    with rt.store.transaction() as conn:
        existing = rt.store.alerts_of_stories(conn, story_ids)
        already = {(a.story, a.topic, a.destination) for found in existing.values() for a in found}
        report.alerts = decide_alerts(scored, rt.destinations(), already, now)
        for alert in report.alerts:
            existing.setdefault(alert.story, []).append(alert)
        report.followups = decide_followups(scored, existing, now)
        rt.store.save_scored(conn, scored, keys, versions, report.alerts, report.followups)
    report.scored = scored
    return report


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


def parse_pool(config: Config) -> Executor | None:
    """Worker processes for feed parsing (CPU-bound: a second core helps), or None to parse in a thread."""
    if config.fetch.parse_processes <= 0:
        return None
    # spawn, not fork: the poller has threads (APScheduler, asyncio.to_thread) that fork would copy mid-state.
    return ProcessPoolExecutor(config.fetch.parse_processes, mp_context=multiprocessing.get_context("spawn"))


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


async def _fetch_and_parse(
    fetcher: Fetcher, request: FetchRequest, name: str, now: datetime, parse_pool: Executor | None
) -> tuple[FetchResult, list[Item], str | None]:
    result = await fetch_one(fetcher, request)
    if result.error is not None or result.body is None or result.not_modified:
        return result, [], None
    # Parsing is CPU work: off the event loop (other fetches keep flowing), in a process pool when given
    # one so that it runs on another core.
    loop = asyncio.get_running_loop()
    found, error = await loop.run_in_executor(parse_pool, parse_and_normalise, result, name, now)
    return result, found, error


async def poll_sources(
    rt: Runtime,
    fetcher: Fetcher,
    names: Sequence[str],
    now: datetime,
    rng: random.Random | None = None,
    parse_pool: Executor | None = None,
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
    health = rt.store.source_health()
    outcomes = await asyncio.gather(
        *(
            _fetch_and_parse(
                fetcher,
                FetchRequest(s.url, health[s.name].etag, health[s.name].last_modified)
                if s.name in health
                else FetchRequest(s.url),
                s.name,
                now,
                parse_pool,
            )
            for s in chosen
        )
    )
    batch: list[Item] = []
    updates: list[tuple[str, SourceHealth, int]] = []
    for source, (result, found, parse_error) in zip(chosen, outcomes, strict=True):
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
        updates.append((source.name, after, result.status))
    report.ingest = await asyncio.to_thread(ingest, rt, batch, now) if batch else IngestReport()
    with rt.store.transaction() as conn:
        rt.store.save_health(conn, updates, now)
    return report
