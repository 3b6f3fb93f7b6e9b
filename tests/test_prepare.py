"""Feed workers (bot/prepare.py): what they prepare per feed, and what the poller stores from it, must be
exactly what the poller computes itself from the same feeds; a worker that dies costs only its feeds.
A big cycle ingested in parts (bot/pipeline.py) must store what ingesting its parts in config order
would, whatever order its sources answer in, and lose nothing when a part fails or the cycle is cancelled."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import sqlite3
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from support import FIXTURES, ROOT

import bot.pipeline
import bot.stories
from bot.config import Config, load_config
from bot.feed_server import FeedServer
from bot.items import Item
from bot.pipeline import IngestReport, PollReport, Runtime, fetch_limits, ingest, poll_sources
from bot.prepare import FeedWorkers, PreparedBatch, PreparedFeed, prepare_feeds
from bot.runtime import build_runtime
from bot.sources.fetch import Fetcher, FetchResult
from bot.sources.poll import parse_and_normalise
from bot.stories import StoryIndex, story_terms

sys.path.insert(0, str(ROOT / "bench"))
import feedserver  # the benchmark's synthetic feeds: many items, many near-duplicates

LEARNING = FIXTURES / "learning"
NOW = datetime(2024, 3, 10, tzinfo=UTC)
TABLES = {
    "items": "SELECT id, url, guid, source, title, text, summary, published, fetched, story_id FROM items",
    "item_keys": "SELECT key, item_id FROM item_keys",
    "stories": "SELECT id, first_seen, last_seen, n_items, sources FROM stories",
    "scores": "SELECT item_id, topic, score, flagged, why, model_version FROM scores",
    "alerts": "SELECT id, topic, destination, story_id, item_id, created, status FROM alerts",
    "followups": "SELECT id, alert_id, item_ids, created FROM followups",
}


def write_config(folder: Path, db: Path, sources: dict[str, str] | None = None) -> Path:
    path = folder / "config.toml"
    blocks = "".join(f'[[sources]]\nname = "{n}"\nurl = "{u}"\n\n' for n, u in (sources or {}).items())
    path.write_text(
        blocks
        + f"""
[storage]
url = "sqlite:///{db}"

[classifier]
background = ["{LEARNING / "background.jsonl"}"]
model_dir = "{folder.parent / "models"}"

[[topics]]
id = "cables"
description = "Damage to undersea telecom and power cables and pipelines by ships, anchors or sabotage"
threshold = 0.3
rules = {{ any = ["cable|cables|pipeline"] }}
examples = {{ files = ["{LEARNING / "cables-examples.jsonl"}"] }}
destinations = ["console", "slack:#cables"]
""",
        encoding="utf-8",
    )
    return path


def news_feed(reports: list[dict[str, str]]) -> bytes:
    """An RSS 2.0 document of fixture news reports (the cables topic flags several of them)."""

    def date(r: dict[str, str]) -> str:  # undated reports get the fetch time
        when = r.get("published")
        return (
            f"<pubDate>{format_datetime(datetime.fromisoformat(when).replace(tzinfo=UTC))}</pubDate>"
            if when
            else ""
        )

    entries = "".join(
        f"<item><title>{escape(r['title'])}</title><link>{escape(r['url'])}</link>{date(r)}"
        f"<description>{escape('<p>' + r['text'] + '</p>')}</description></item>"
        for r in reports
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>News</title>{entries}</channel></rss>'.encode()


def fetched_feeds() -> list[tuple[FetchResult, str]]:
    """Three feeds of fixture news (flagged items, syndicated copies across outlets) and four synthetic
    50-item feeds (near-duplicates that join stories): a cycle's worth, without the network."""
    reports = [json.loads(line) for line in (LEARNING / "cables-news.jsonl").read_text().splitlines()]
    bodies = [news_feed(reports[n::3]) for n in range(3)]
    bodies += [feedserver.build_feed(n, datetime(2024, 3, 9, tzinfo=UTC)) for n in range(4)]
    bodies.append(news_feed(reports[:4]))  # a feed repeating reports of the first: exact duplicates
    return [
        (
            FetchResult(
                f"http://feeds.example/{n}", f"http://feeds.example/{n}", 200, body, None, None, None, 0.1
            ),
            f"src{n}",
        )
        for n, body in enumerate(bodies)
    ]


def stored_rows(db: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(db) as conn:
        return {name: sorted(conn.execute(sql).fetchall(), key=repr) for name, sql in TABLES.items()}


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stories decided (and stored) in parts of 7 items, as a 100,000-item cycle is in parts of 5,000."""
    monkeypatch.setattr(bot.stories, "_MATCH_ROWS", 7)


def runtime(folder: Path, sources: dict[str, str] | None = None) -> tuple[Config, Path]:
    folder.mkdir()
    db = folder / "watchfloor.sqlite"
    return load_config(write_config(folder, db, sources)), db


@pytest.mark.usefixtures("small_parts")
def test_prepared_feeds_store_exactly_what_the_poller_computes_itself(tmp_path: Path) -> None:
    fetched = fetched_feeds()
    config_a, db_a = runtime(tmp_path / "poller")
    rt = build_runtime(config_a, NOW)
    batch = [item for result, source in fetched for item in parse_and_normalise(result, source, NOW)[0]]
    itself = ingest(rt, batch, NOW)
    rt.store.close()

    config_b, db_b = runtime(tmp_path / "workers")
    rt = build_runtime(config_b, NOW)
    # As the workers do: a few feeds per job.
    prepared = prepare_feeds(fetched[:3], NOW, rt.scorer) + prepare_feeds(fetched[3:], NOW, rt.scorer)
    joined = PreparedBatch.join(rt.scorer, prepared)
    assert joined is not None
    from_workers = ingest(rt, [item for p in prepared for item in p.items], NOW, joined)
    rt.store.close()

    assert itself.new == from_workers.new > 200
    assert itself.flagged == from_workers.flagged > 0
    assert [a.id for a in itself.alerts] == [a.id for a in from_workers.alerts]
    assert [s.summary for s in itself.scored] == [s.summary for s in from_workers.scored]
    assert [s.scores for s in itself.scored] == [s.scores for s in from_workers.scored]
    a, b = stored_rows(db_a), stored_rows(db_b)
    assert a == b
    assert len({row[-1] for row in a["items"]}) < len(a["items"])  # some reports joined a story
    assert a["followups"]  # later reports of alerted stories went into threads


def test_prepared_scores_are_dropped_when_the_scorer_changed(tmp_path: Path) -> None:
    """A cycle prepared by workers holding the old models is scored again by the running ones."""
    fetched = fetched_feeds()[:3]
    config, _ = runtime(tmp_path / "swap")
    rt = build_runtime(config, NOW)
    prepared = prepare_feeds(fetched, NOW, rt.scorer)
    joined = PreparedBatch.join(rt.scorer, prepared)
    assert joined is not None
    joined.scores.probs[:] = 0.0  # what an old model might have said: nothing is flagged
    rt.scorer = build_runtime(config, NOW, store=rt.store).scorer  # a reload swapped the scorer
    report = ingest(rt, [item for p in prepared for item in p.items], NOW, joined)
    rt.store.close()
    assert report.flagged > 0


@pytest.mark.usefixtures("small_parts")
def test_story_terms_and_parts_give_the_stories_of_one_whole_batch() -> None:
    items: list[Item] = []
    for result, source in fetched_feeds():
        items.extend(parse_and_normalise(result, source, NOW)[0])
    items = list({i.id: i for i in items}.values())  # all new to the index: decided in parts
    whole = StoryIndex().assign(items)
    parts: list[tuple[int, list[str]]] = []
    streamed = StoryIndex().assign(items, story_terms(items), lambda first, ids: parts.append((first, ids)))
    assert streamed == whole
    assert len(parts) > 1 and [first for first, _ in parts] == sorted({first for first, _ in parts})
    assert [s for _, ids in parts for s in ids] == whole
    assert len(set(whole)) < len(whole)


def test_a_dead_feed_worker_costs_its_feeds_and_the_next_poll_has_new_workers(tmp_path: Path) -> None:
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "wire.xml").write_bytes((FIXTURES / "poll" / "wire.xml").read_bytes())
    workers = FeedWorkers(1)
    with FeedServer(feeds) as server:
        config, _ = runtime(tmp_path / "service", {"wire": server.url("wire.xml")})
        rt = build_runtime(config, NOW)

        async def cycle() -> tuple[str | None, int]:
            async with Fetcher(fetch_limits(rt.config)) as fetcher:
                report = await poll_sources(rt, fetcher, ["wire"], NOW, parse_pool=workers)
            return report.failed.get("wire"), report.ingest.new

        try:
            pool = workers.executor_for(rt.scorer)
            with pytest.raises(Exception):  # noqa: B017 - the worker's death surfaces as BrokenProcessPool
                pool.submit(os._exit, 1).result()
            error, new = asyncio.run(cycle())
            assert error is not None and "feed worker failed" in error and new == 0
            error, new = asyncio.run(cycle())
            assert error is None and new > 0
        finally:
            workers.shutdown()
            rt.store.close()


class SlowFeeds:
    """Serves fixed bodies on 127.0.0.1; the ones named in `slow` answer after `delay` seconds, so that a
    cycle's sources arrive out of config order."""

    def __init__(self, bodies: dict[str, bytes], slow: set[str], delay: float = 0.4) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.strip("/")
                if name in slow:
                    time.sleep(delay)
                body = bodies[name]
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/{name}"

    def __enter__(self) -> SlowFeeds:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def poll_all(rt: Runtime, names: list[str]) -> PollReport:
    async def cycle() -> PollReport:
        async with Fetcher(fetch_limits(rt.config)) as fetcher:
            return await poll_sources(rt, fetcher, names, NOW)

    return asyncio.run(cycle())


def test_a_big_cycle_is_ingested_in_parts_by_config_order_not_by_arrival(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Parts of 3 sources (as 2,000 sources are in parts of 500): the first source answers last, yet the
    store ends up exactly as if the three parts had been ingested one after another in config order."""
    monkeypatch.setattr(bot.pipeline, "INGEST_PART_SOURCES", 3)
    fetched = fetched_feeds()
    names = [source for _, source in fetched]
    assert bot.pipeline.ingest_parts(len(names)) == [(0, 3), (3, 6), (6, 8)]
    with SlowFeeds({s: r.body or b"" for r, s in fetched}, slow={names[0]}) as server:
        config, db = runtime(tmp_path / "parts", {s: server.url(s) for s in names})
        rt = build_runtime(config, NOW)
        started = []
        real_ingest = bot.pipeline.ingest

        def recording(rt: Runtime, batch: list[Item], now: datetime, prepared: object = None) -> IngestReport:
            started.append(sorted({i.source for i in batch}))
            return real_ingest(rt, batch, now, None)

        monkeypatch.setattr(bot.pipeline, "ingest", recording)
        with caplog.at_level(logging.INFO, logger="bot.pipeline"):
            report = poll_all(rt, names)
        health = rt.store.source_health()
        rt.store.close()
    assert started == [sorted(names[0:3]), sorted(names[3:6]), sorted(names[6:8])]
    parts_logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("cycle part")]
    assert [m.split(":")[0] for m in parts_logged] == ["cycle part 1/3", "cycle part 2/3", "cycle part 3/3"]
    assert "sources 6-7" in parts_logged[2]
    assert report.polled == 8 and not report.failed
    assert all(health[s].last_success == NOW and health[s].consecutive_failures == 0 for s in names)

    config_ref, db_ref = runtime(tmp_path / "reference")
    rt = build_runtime(config_ref, NOW)
    reference: list[IngestReport] = []
    for lo, hi in [(0, 3), (3, 6), (6, 8)]:
        part = [i for result, source in fetched[lo:hi] for i in parse_and_normalise(result, source, NOW)[0]]
        reference.append(real_ingest(rt, part, NOW))
    rt.store.close()
    assert report.ingest.new == sum(r.new for r in reference) > 200
    assert report.ingest.received == sum(r.received for r in reference)
    assert [a.id for a in report.ingest.alerts] == [a.id for r in reference for a in r.alerts]
    assert [f.id for f in report.ingest.followups] == [f.id for r in reference for f in r.followups]
    assert report.ingest.followups  # later parts' reports of stories alerted by earlier parts: thread replies
    ours, theirs = stored_rows(db), stored_rows(db_ref)
    assert ours == theirs
    assert len({row[-1] for row in ours["items"]}) < len(ours["items"])  # stories span reports


def test_a_part_that_fails_to_ingest_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second part's ingest fails: the cycle raises and saves no source health (so the next poll fetches
    everything again, without validators); the first part's items stay stored once, and the next cycle
    stores the rest."""
    monkeypatch.setattr(bot.pipeline, "INGEST_PART_SOURCES", 3)
    fetched = fetched_feeds()
    names = [source for _, source in fetched]
    with SlowFeeds({s: r.body or b"" for r, s in fetched}, slow=set()) as server:
        config, _ = runtime(tmp_path / "parts", {s: server.url(s) for s in names})
        rt = build_runtime(config, NOW)
        real_ingest = bot.pipeline.ingest
        calls = []

        def failing_second(
            rt: Runtime, batch: list[Item], now: datetime, prepared: object = None
        ) -> IngestReport:
            calls.append(len(batch))
            if len(calls) == 2:
                raise sqlite3.OperationalError("disk I/O error")
            return real_ingest(rt, batch, now, None)

        monkeypatch.setattr(bot.pipeline, "ingest", failing_second)
        with pytest.raises(sqlite3.OperationalError):
            poll_all(rt, names)
        assert len(calls) == 2  # the third part is not ingested after a failure
        assert all(h.last_success is None and h.etag is None for h in rt.store.source_health().values())
        first_part = rt.store.tally().items
        assert first_part > 0
        monkeypatch.setattr(bot.pipeline, "ingest", real_ingest)
        assert_the_next_cycle_stores_the_rest_once(rt, names, first_part, tmp_path / "reference")


def test_prepared_feeds_cross_processes_intact() -> None:
    """Items travel as columns with POSIX times; other time zones and missing fetch times survive too."""
    published = datetime(2026, 11, 27, 9, 30, 15, 123457, tzinfo=UTC)
    items = [
        Item("a", "https://x.example/a", "Title a", "Text a", published, "wire", "g-a", published),
        Item(
            "b",
            "https://x.example/b",
            "Title b",
            "Text b",
            datetime(1999, 12, 31, 23, 59, 59, 999999, UTC),
            "wire",
        ),
        Item(
            "c",
            "https://x.example/c",
            "Title c",
            "",
            datetime(1970, 1, 1, tzinfo=UTC),
            "wire",
            None,
            published,
        ),
    ]
    for feed in (
        PreparedFeed(items, None),
        PreparedFeed(
            [*items, replace(items[0], id="d", published=published.astimezone(timezone(timedelta(hours=9))))]
        ),
    ):
        back = pickle.loads(pickle.dumps(feed, protocol=5))
        assert back.items == feed.items
        assert [i.published.tzinfo for i in back.items] == [i.published.tzinfo for i in feed.items]
        assert [i.published.utcoffset() for i in back.items] == [i.published.utcoffset() for i in feed.items]


def test_a_cycle_cancelled_between_parts_keeps_what_it_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service stops while the first part is being ingested and the others wait their turn: that part
    finishes and stays stored, the waiting ones are dropped, no health is saved; the next cycle stores the
    rest, each item once."""
    monkeypatch.setattr(bot.pipeline, "INGEST_PART_SOURCES", 3)
    fetched = fetched_feeds()
    names = [source for _, source in fetched]
    real_ingest = bot.pipeline.ingest
    ingesting = threading.Event()

    def slow_first(rt: Runtime, batch: list[Item], now: datetime, prepared: object = None) -> IngestReport:
        if not ingesting.is_set():
            ingesting.set()
            time.sleep(1.0)  # the other parts arrive and queue up meanwhile
        return real_ingest(rt, batch, now, None)

    with SlowFeeds({s: r.body or b"" for r, s in fetched}, slow=set()) as server:
        config, _ = runtime(tmp_path / "parts", {s: server.url(s) for s in names})
        rt = build_runtime(config, NOW)
        monkeypatch.setattr(bot.pipeline, "ingest", slow_first)

        async def cancelled_cycle() -> None:
            async with Fetcher(fetch_limits(rt.config)) as fetcher:
                cycle = asyncio.create_task(poll_sources(rt, fetcher, names, NOW))
                while not ingesting.is_set():
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.5)  # every fetch is done by now; the first part is still ingesting
                cycle.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await cycle
                # The cycle ends only once the part in hand is stored; the queued ones were dropped.
                with sqlite3.connect(db_path(rt)) as conn:
                    stored = {row[0] for row in conn.execute("SELECT DISTINCT source FROM items")}
                assert stored == set(names[0:3])

        asyncio.run(cancelled_cycle())
        first_part = rt.store.tally().items
        assert all(h.last_success is None for h in rt.store.source_health().values())
        monkeypatch.setattr(bot.pipeline, "ingest", real_ingest)
        assert_the_next_cycle_stores_the_rest_once(rt, names, first_part, tmp_path / "reference")


def assert_the_next_cycle_stores_the_rest_once(
    rt: Runtime, names: list[str], first_part: int, reference: Path
) -> None:
    """After a cycle that stored `first_part` items and no health, the next stores the rest: in all, what
    one whole ingest of the same feeds stores, each item once."""
    again = poll_all(rt, names)
    total = rt.store.tally().items
    rt.store.close()
    assert not again.failed and again.ingest.new == total - first_part > 0
    config_ref, _ = runtime(reference)
    rt = build_runtime(config_ref, NOW)
    fetched = fetched_feeds()
    whole = ingest(
        rt, [i for result, source in fetched for i in parse_and_normalise(result, source, NOW)[0]], NOW
    )
    rt.store.close()
    assert total == whole.new


def db_path(rt: Runtime) -> str:
    return str(rt.store.engine.url.database)
