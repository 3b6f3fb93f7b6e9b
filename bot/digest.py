"""Digests: a destination's top stories per topic for a period, built from the store and queued once.

    digest job (cron fire) | period since the destination's last digest | candidates (SQL) | rank (pure)
        | best report per story (SQL) | Digest | enqueue under the fire time, unless empty

Which stories count. A story belongs to a topic's digest for the period (since, until] when the *first*
item of that story flagged for the topic was fetched in the period: the moment Watchfloor learned that the
story matters to the topic. Fetch time, not published time, because feeds publish late and lie about dates:
a report published at 07:55 and polled at 08:05 must land in the next digest, not fall between two. Each
(story, topic) has exactly one such moment, so consecutive periods neither lose nor repeat a story.

How they rank (`rank_stories`, pure): `rank = best flagged score + OUTLET_WEIGHT × log2(outlets)`, where the
best flagged score is the story's highest score for the topic and outlets the number of distinct sources
reporting the story. A story carried by 4 outlets gains 0.2, by 8 gains 0.3: coverage lifts a story past a
slightly higher-scored one-outlet story, but no amount of coverage lifts a weak match over a strong one by
more than a few tenths. Ties go to more outlets, then the higher score, then the earlier story.

Exactly once: the job enqueues under key = the scheduled fire time (ISO, UTC) in the messages outbox, whose
(kind, destination, key) is unique, so a re-run or a second worker enqueues nothing more. An empty digest
is not enqueued, and since the next period starts at the last *queued* digest's `until`, nothing is lost.

Mutes. A topic muted at the digest's destination when the digest fires (`/news mute`, the Mute button) is
left out of that digest, which names it in one line ("Muted here, left out: …"). Its stories of the period
are not shown later either: a muted channel asked for silence, not for a burst when the mute ends (the
policy of `Store.set_aside_muted` for alerts). When a queued digest leaves a topic out, its `until` closes
the period for every topic alike. When the mute leaves nothing else to send, the digest is kept in the
outbox with status `muted` (never sent, and not a dead letter) so that its `until` still closes the
period: otherwise the next digest would start at the previous one and bring the muted stories back.
Stories of the topics not muted are unaffected: the digest held none of theirs, or it would have gone out.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import ColumnElement, func, literal, select

from bot.channels import same_channels
from bot.config import Config, DigestConfig
from bot.notices import Digest, DigestTopic, StoryLine
from bot.outbox_messages import enqueue_message, last_message
from bot.store import Mute, Store, items, scores, stories

log = logging.getLogger(__name__)

KIND = "digest"
# Status of a digest that mutes left empty: recorded under its fire time so its period counts as covered,
# never picked up for delivery (which takes `pending` only).
MUTED = "muted"
DEFAULT_PERIOD = timedelta(hours=24)
OUTLET_WEIGHT = 0.1
_CHUNK = 500  # ids per IN (…): well under SQLite's variable limit


@dataclass(frozen=True, slots=True)
class Candidate:
    """A story flagged for a topic in the period, with what ranking needs."""

    topic: str
    story_id: str
    score: float  # the story's best flagged score for the topic
    outlets: tuple[str, ...]  # distinct sources reporting the story
    first_seen: datetime  # when its first flagged item was fetched

    @property
    def rank(self) -> float:
        return self.score + OUTLET_WEIGHT * math.log2(max(len(self.outlets), 1))


@dataclass(frozen=True, slots=True)
class Ranked:
    """A topic's top stories, best first, and how many more the period held."""

    top: tuple[Candidate, ...]
    more: int


def rank_stories(candidates: Iterable[Candidate], per_topic: int) -> dict[str, Ranked]:
    """Topic → its `per_topic` best candidates (see the module docstring for the formula) and the count of
    the rest. Pure: the same candidates always give the same order."""
    by_topic: dict[str, list[Candidate]] = {}
    for c in candidates:
        by_topic.setdefault(c.topic, []).append(c)
    ranked = {}
    for topic, found in by_topic.items():
        found.sort(key=lambda c: (-c.rank, -len(c.outlets), -c.score, c.first_seen, c.story_id))
        ranked[topic] = Ranked(tuple(found[:per_topic]), max(0, len(found) - per_topic))
    return ranked


# -- reading the store ---------------------------------------------------------------------------------------


def _unindexed(column: ColumnElement[str]) -> ColumnElement[str]:
    return column + literal("")


def _candidates(store: Store, topics: Sequence[str], since: datetime, until: datetime) -> list[Candidate]:
    """Stories whose first flagged item for a topic was fetched in (since, until].

    Driven by the period's items, not by the topics' flagged scores: at 200,000 items a pass over every
    flagged score ever stored took 1.5 s, while the period's items are few. A story with a flagged item
    fetched before the period is left out by `NOT EXISTS` over that story's items (index `ix_items_story`),
    checked once per story and topic: it was in an earlier digest.

    The `|| ''` on `topic` and `items.id` is deliberate: it keeps the planner off `ix_scores_topic_flagged`
    and off looking items up from scores. Without ANALYZE statistics SQLite prefers that index for its
    two-column equality, and it reads every flagged score ever stored (once per candidate, inside
    `NOT EXISTS`). So the period's items are read first and their scores reached by primary key."""
    per_story = (
        select(
            scores.c.topic,
            items.c.story_id,
            func.max(scores.c.score).label("best"),
            func.min(items.c.fetched).label("first_seen"),
        )
        .select_from(items.join(scores, scores.c.item_id == _unindexed(items.c.id)))
        .where(
            items.c.fetched > since,
            items.c.fetched <= until,
            _unindexed(scores.c.topic).in_(list(topics)),
            scores.c.flagged,
        )
        .group_by(scores.c.topic, items.c.story_id)
        .subquery()
    )
    earlier_item, earlier_score = items.alias("earlier_item"), scores.alias("earlier_score")
    flagged_before = (
        select(earlier_item.c.id)
        .join(earlier_score, earlier_score.c.item_id == earlier_item.c.id)
        .where(
            earlier_item.c.story_id == per_story.c.story_id,
            _unindexed(earlier_score.c.topic) == per_story.c.topic,
            earlier_score.c.flagged,
            earlier_item.c.fetched <= since,
        )
    )
    query = (
        select(per_story, stories.c.sources)
        .join(stories, stories.c.id == per_story.c.story_id)
        .where(~flagged_before.exists())
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        Candidate(topic, story_id, float(best), tuple(json.loads(outlets or "[]")), _utc(first_seen))
        for topic, story_id, best, first_seen, outlets in rows
    ]


def _utc(value: datetime | str) -> datetime:
    # An aggregate over a UTCDateTime column comes back through the column type on both databases; the
    # guard keeps a driver that returns text (older SQLite builds) from breaking a digest.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Report(NamedTuple):
    id: str
    story_id: str
    title: str
    url: str
    source: str
    published: datetime
    summary: str | None
    score: float

    def order(self) -> tuple[float, datetime, str]:
        """Best first: the highest score, then the earliest published, then the id (for a stable pick)."""
        return (-self.score, self.published, self.id)


def _story_lines(store: Store, topic: str, chosen: Sequence[Candidate], until: datetime) -> list[StoryLine]:
    """Each chosen story's best report for the topic: its highest-scored flagged item (the earliest
    published on a tie), with title, summary, link and source."""
    ids = [c.story_id for c in chosen]
    best: dict[str, _Report] = {}
    with store.engine.connect() as conn:
        for start in range(0, len(ids), _CHUNK):
            query = (
                select(
                    items.c.id,
                    items.c.story_id,
                    items.c.title,
                    items.c.url,
                    items.c.source,
                    items.c.published,
                    items.c.summary,
                    scores.c.score,
                )
                .join(scores, scores.c.item_id == items.c.id)
                .where(
                    _unindexed(scores.c.topic) == topic,  # by story, not by topic: see _candidates
                    scores.c.flagged,
                    items.c.story_id.in_(ids[start : start + _CHUNK]),
                    items.c.fetched <= until,
                )
            )
            for row in conn.execute(query):
                report = _Report(*row)
                known = best.get(report.story_id)
                if known is None or report.order() < known.order():
                    best[report.story_id] = report
    lines = []
    for c in chosen:
        found = best.get(c.story_id)
        if found is None:  # the story's items vanished between the two reads (a purge): skip, do not fail
            continue
        lines.append(
            StoryLine(
                story_id=c.story_id,
                item_id=found.id,
                topic=topic,
                title=found.title,
                url=found.url,
                source=found.source,
                published=_utc(found.published),
                summary=found.summary or "",
                score=c.score,
                n_sources=max(len(c.outlets), 1),
                sources=c.outlets,
            )
        )
    return lines


def build_digest(
    store: Store,
    config: Config,
    destination: str,
    topics: Sequence[str],
    since: datetime,
    until: datetime,
    per_topic: int,
    muted: Collection[str] = (),
) -> Digest:
    """The top `per_topic` stories of each topic in (since, until], topics in the order given; topics with
    nothing new are left out (`Digest.empty` when none is left). Topics in `muted` are left out too, and
    those of them with news in the period are named in `Digest.muted`."""
    wanted = list(dict.fromkeys(topics))
    ranked = rank_stories(_candidates(store, wanted, since, until), per_topic) if wanted else {}
    sections, held_back = [], []
    for topic_id in wanted:
        found = ranked.get(topic_id)
        if found is None or not found.top:
            continue
        topic = config.topic(topic_id)
        title = topic.title if topic else topic_id
        if topic_id in muted:
            held_back.append(title)
            continue
        lines = _story_lines(store, topic_id, found.top, until)
        if not lines:
            continue
        sections.append(DigestTopic(topic_id, title, tuple(lines), found.more))
    return Digest(destination, since, until, tuple(sections), tuple(held_back))


# -- which topics, which period --------------------------------------------------------------------------------


def routed_topics(config: Config, store: Store, destinations: Iterable[str]) -> list[str]:
    """Topics whose alerts go to any of `destinations`: config.toml's routing, then `/news subscribe`
    subscriptions, in config order. Destinations compare by every spelling of their channel
    (bot/channels.py), so a `slack:#name` digest takes in the subscriptions made in that channel."""
    here = same_channels(destinations, store.slack_channel_names())
    subscribed = {s.topic for s in store.subscriptions() if s.destination.lower() in here}
    return [
        t.id
        for t in config.active_topics
        if t.id in subscribed or any(d.lower() in here for d in t.destinations)
    ]


def digest_topics(config: Config, store: Store, digest: DigestConfig) -> list[str]:
    return list(digest.topics) or routed_topics(config, store, [digest.destination])


def muted_topics(
    mutes: Iterable[Mute], destination: str, at: datetime, names: Mapping[str, str] | None = None
) -> set[str]:
    """Topics muted at `destination` at `at`. Compared as `routed_topics` routes topics to a digest (every
    spelling of the channel, given `names`: Slack channel id → name), so a topic the digest picks up by
    its destination is muted by the same destination, whether the mute named it by id or by `#name`."""
    here = same_channels([destination], names or {})
    return {m.topic for m in mutes if m.destination.lower() in here and m.until > at}


def digest_period(store: Store, destination: str, now: datetime) -> tuple[datetime, datetime]:
    """(since, until = now): since the `until` of the destination's last queued digest (or last one
    recorded as `muted`), else a day back. A digest that went to the dead letters does not count: the next
    one covers its stories again."""
    last = last_message(store, KIND, destination, skip_dead=True)
    if last is not None:
        try:
            return datetime.fromisoformat(last.payload["until"]).astimezone(UTC), now
        except (KeyError, TypeError, ValueError):
            log.warning("digest destination=%s last payload has no usable until; a day back", destination)
    return now - DEFAULT_PERIOD, now


def digest_trigger(digest: DigestConfig) -> CronTrigger:
    """The digest's schedule: its crontab read in its own time zone, so "0 8 * * mon-fri" in Europe/London
    is 08:00 on London's clocks in summer and winter alike."""
    return CronTrigger.from_crontab(digest.cron, timezone=ZoneInfo(digest.timezone))


def last_fire_time(trigger: CronTrigger, now: datetime) -> datetime | None:
    """The latest time at or before `now` the trigger fired, in UTC: the digest's natural key, the same
    whichever worker runs the job and however late."""
    for back in (timedelta(hours=1), timedelta(days=1), timedelta(days=32), timedelta(days=367)):
        fire = trigger.get_next_fire_time(None, now - back)
        if fire is None or fire > now:
            continue
        while True:
            later = trigger.get_next_fire_time(None, fire + timedelta(microseconds=1))
            if later is None or later > now:
                return fire.astimezone(UTC)
            fire = later
    return None


def digest_job(store: Store, config: Config, digest: DigestConfig, now: datetime) -> bool:
    """Build and queue the digest due at the latest fire time ≤ `now`; True when it was queued now.

    Nothing is queued when it is empty (the period then stays open: the next digest starts at the last
    queued one's `until`), nor when this fire time's digest is already queued. Topics muted at the
    destination at the fire time are left out; when that alone empties the digest, it is recorded as
    `muted` instead of queued, closing its period (see the module docstring)."""
    fire = last_fire_time(digest_trigger(digest), now)
    if fire is None:
        log.warning("digest destination=%s has not fired yet at %s", digest.destination, now.isoformat())
        return False
    since, until = digest_period(store, digest.destination, fire)
    if since >= until:
        return False  # this fire time's digest is already queued
    # The mutes table keeps no start time, so a mute set after the fire but before a late run counts as
    # well: the digest has not gone out yet, and the channel has asked for silence.
    muted = muted_topics(store.active_mutes(fire), digest.destination, fire, store.slack_channel_names())
    built = build_digest(
        store,
        config,
        digest.destination,
        digest_topics(config, store, digest),
        since,
        until,
        digest.per_topic,
        muted,
    )
    key, payload = fire.isoformat(), built.to_payload()
    if built.empty and built.muted:
        recorded = enqueue_message(store, KIND, digest.destination, key, payload, now, status=MUTED)
        log.info(
            "digest destination=%s fire=%s nothing sent: every topic with news is muted here muted=%s "
            "recorded=%s",
            digest.destination,
            key,
            ",".join(sorted(muted)),
            recorded,
        )
        return False
    if built.empty:
        log.info("digest destination=%s fire=%s nothing new", digest.destination, key)
        return False
    queued = enqueue_message(store, KIND, digest.destination, key, payload, now)
    log.info(
        "digest destination=%s fire=%s stories=%d muted_left_out=%d queued=%s",
        digest.destination,
        key,
        sum(len(t.stories) for t in built.topics),
        len(built.muted),
        queued,
    )
    return queued


def digest_names(config: Config) -> dict[str, DigestConfig]:
    """Each digest under a stable name, its scheduler job's suffix: the destination, with `#2`, `#3`… for
    a destination's second and later digests (a morning and an evening one, say)."""
    named: dict[str, DigestConfig] = {}
    for d in config.digests:
        name, n = d.destination, 1
        while name in named:
            n += 1
            name = f"{d.destination}#{n}"
        named[name] = d
    return named
