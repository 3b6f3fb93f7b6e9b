"""The store bench/slack.py measures against: `n` stored items made from the shipped examples, built once
and cached under a name that spells its parameters, so only the first run pays for it.

Why generated: `/news search` and `/news latest` must be measured at the size a team's store reaches
(200,000 items is a few months of a large source list), and the shipped examples are ~800 rows. Each item
recombines those rows (the title and text of one, then a sentence from each of two others), so the words,
their frequencies and the phrases analysts search for are real news text; ids, URLs, times and outlets
are made up. A fraction (`flagged`) is built on a topic's positive examples and scored above the topic's
threshold; its alerts come from the pipeline's own `decide_alerts`, so `latest` and `topic:` have alerts
to find. About a third of the items join a recent story, as syndicated reports do.

Everything is written through the pipeline's bulk path, `Store.save_scored`, then the full-text index is
caught up with `Store.index_for_search`, as the first search after a poll would do. The alerts are then
marked sent: a store this old has an empty outbox, and the delivery benchmark enqueues its own.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.config import Config, StorageConfig, load_config
from bot.decide import decide_alerts
from bot.dedup import item_keys
from bot.items import Alert, Item, ScoredItem, TopicScore, Why
from bot.normalise import item_id
from bot.store import Store

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# Bump when the generated data changes shape: cached stores of an older layout are then rebuilt.
LAYOUT = 1
# The generated news ends here and the served app's clock stands here, so `since:7d` finds the same items
# whatever day the benchmark runs (and whenever its cached store was built).
DATA_END = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DATA_SPAN = timedelta(days=120)
BATCH = 5000
STORY_JOIN = 0.3  # share of items that are another outlet's report of a recent story
RECENT_STORIES = 200  # how far back (in items) a report looks for its story

# Outlets: names without spaces, so `source:<name>` can be typed in a command.
SOURCES = tuple(
    [
        "bbc-world", "al-jazeera", "guardian-world", "dw-world", "nk-news", "yonhap", "kyiv-independent",
        "reuters-world", "ap-world", "france24", "nhk-world", "focus-taiwan", "taipei-times",
        "lloyds-list", "splash247", "maritime-executive", "submarine-networks", "the-record",
        "defense-news", "breaking-defense", "war-on-the-rocks", "38-north", "meduza", "moscow-times",
    ]
    + [f"regional-{n:02d}" for n in range(36)]
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Row:
    """One example: its text, the outlet's domain, and the topics it is a positive example of."""

    title: str
    text: str
    domain: str
    topics: frozenset[str]

    def sentences(self) -> list[str]:
        return [s for s in re.split(r"(?<=[.!?])\s+", self.text) if len(s) > 20] or [self.text]


@dataclass(frozen=True, slots=True)
class BuildStats:
    items: int
    flagged: int
    alerts: int
    stories: int
    write_s: float
    index_s: float
    megabytes: float


def _domain(url: str) -> str:
    m = re.match(r"https?://(?:www\.)?([^/]+)", url or "")
    return m.group(1) if m else "news.example"


def load_rows(topic_ids: Sequence[str]) -> list[Row]:
    """The shipped labelled news, background news and hand-written examples, as rows."""
    rows: list[Row] = []
    for line in (EXAMPLES / "news_labelled.jsonl").read_text().splitlines():
        r = json.loads(line)
        positive = frozenset(t for t, label in (r.get("labels") or {}).items() if label and t in topic_ids)
        rows.append(Row(r["title"], r["text"], _domain(r.get("url", "")), positive))
    for line in (EXAMPLES / "background.jsonl").read_text().splitlines():
        r = json.loads(line)
        rows.append(Row(r["title"], r["text"], r.get("source") or "news.example", frozenset()))
    for topic in topic_ids:
        hand = EXAMPLES / f"{topic}.jsonl"
        if not hand.exists():
            continue
        for line in hand.read_text().splitlines():
            r = json.loads(line)
            rows.append(Row(r["title"], r["text"], "news.example", frozenset([topic] if r["label"] else [])))
    return rows


def _slug(title: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", title.lower())[:8]) or "item"


def _why(title: str, rng: random.Random) -> Why:
    words = [w for w in re.findall(r"[a-z]+", title.lower()) if len(w) > 4][:4]
    return Why(terms=tuple((w, round(rng.uniform(0.2, 1.5), 3)) for w in words))


def generate(
    rows: Sequence[Row], n: int, thresholds: Mapping[str, float], flagged: float, seed: int
) -> Iterator[ScoredItem]:
    """`n` scored items, oldest first, ending at DATA_END. Pure: the same arguments give the same items."""
    rng = random.Random(seed)
    positives = [r for r in rows if r.topics]
    negatives = [r for r in rows if not r.topics]
    start = DATA_END - DATA_SPAN
    step = DATA_SPAN / max(n, 1)
    recent: deque[str] = deque(maxlen=RECENT_STORIES)
    for i in range(n):
        flag = rng.random() < flagged
        base = rng.choice(positives if flag else negatives)
        extra = [rng.choice(rng.choice(rows).sentences()) for _ in range(2)]
        published = start + step * i
        url = f"https://{base.domain}/{published:%Y/%m/%d}/{_slug(base.title)}-{seed}-{i}"
        guid = f"urn:bench:{seed}:{i}"
        item = Item(
            id=item_id(url, guid),
            url=url,
            title=base.title,
            text=" ".join([base.text, *extra]),
            published=published,
            source=rng.choice(SOURCES),
            guid=guid,
            fetched=published + timedelta(seconds=rng.uniform(30, 900)),
        )
        story = rng.choice(recent) if recent and rng.random() < STORY_JOIN else item.id
        recent.append(story)
        if flag:
            scores = tuple(
                TopicScore(t, rng.uniform(thresholds[t], 0.99), True, _why(base.title, rng))
                for t in sorted(base.topics)
            )
        elif rng.random() < 0.3:  # a low score on some topic: kept in the store above SCORE_FLOOR
            scores = (TopicScore(rng.choice(sorted(thresholds)), rng.uniform(0.05, 0.3), False),)
        else:
            scores = ()
        yield ScoredItem(item, story, scores, base.sentences()[0])


def bench_config(db: Path) -> Config:
    """The shipped config.toml (its topics, destinations and command) over the benchmark's store."""
    shipped = load_config(ROOT / "config.toml")
    return shipped.model_copy(update={"storage": StorageConfig(url=f"sqlite:///{db}")})


def build(path: Path, n: int, flagged: float, seed: int) -> BuildStats:
    """Write a fresh store of `n` items at `path` (which must not exist)."""
    config = bench_config(path)
    topics = config.active_topics
    thresholds = {t.id: t.threshold for t in topics}
    destinations = {t.id: list(t.destinations) for t in topics}
    versions = {t.id: f"bench{LAYOUT}-{t.id[:12]}" for t in topics}
    rows = load_rows(list(thresholds))
    store = Store.open(f"sqlite:///{path}")
    store.ensure_sources([(name, f"https://feeds.example/{name}.xml") for name in SOURCES])
    alerted: dict[str, set[tuple[str, str, str]]] = {}
    n_flagged = n_alerts = 0
    stories: set[str] = set()
    t0 = time.perf_counter()
    batch: list[ScoredItem] = []

    def flush() -> None:
        nonlocal n_alerts
        new_alerts: list[Alert] = []
        for s in batch:
            if s.flagged:
                done = alerted.setdefault(s.story, set())
                made = decide_alerts([s], destinations, done, s.item.fetched or s.item.published)
                done.update((a.story, a.topic, a.destination) for a in made)
                new_alerts += made
        with store.transaction() as conn:
            store.save_scored(
                conn, batch, {s.item.id: item_keys(s.item) for s in batch}, versions, new_alerts
            )
        n_alerts += len(new_alerts)
        batch.clear()

    for scored in generate(rows, n, thresholds, flagged, seed):
        batch.append(scored)
        n_flagged += bool(scored.flagged)
        stories.add(scored.story)
        if len(batch) >= BATCH:
            flush()
    flush()
    with store.transaction() as conn:
        conn.exec_driver_sql(
            "UPDATE alerts SET status = 'sent', sent_at = created, attempts = 1, "
            "remote_ref = 'C0BENCHOLD:' || id WHERE status = 'pending'"
        )
    write_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    store.index_for_search()
    index_s = time.perf_counter() - t1
    with store.transaction() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return BuildStats(n, n_flagged, n_alerts, len(stories), write_s, index_s, path.stat().st_size / 1e6)


def cached_store(
    n: int, flagged: float, seed: int, *, cache_dir: Path, db: Path | None = None, rebuild: bool = False
) -> tuple[Path, BuildStats | None]:
    """The cached store for these parameters (built now when missing), and the build's stats if it was.

    `db` names the file to use instead of the cache's own name (it is built there when missing)."""
    path = db or cache_dir / f"slack-{n}items-{flagged:g}flagged-seed{seed}-v{LAYOUT}.sqlite"
    if path.exists() and not rebuild:
        return path, None
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_name(path.name + ".building")
    for leftover in (building, *(Path(f"{building}{s}") for s in ("-wal", "-shm"))):
        leftover.unlink(missing_ok=True)
    stats = build(building, n, flagged, seed)
    os.replace(building, path)  # only a complete store ever carries the cache's name
    return path, stats


def working_copy(cached: Path, into: Path) -> Path:
    """A copy to run against: the runs write (search catch-up, the outbox), the cache stays as built."""
    target = into / "work.sqlite"
    shutil.copyfile(cached, target)
    return target
