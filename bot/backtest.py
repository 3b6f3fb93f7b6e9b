"""`watchfloor backtest`: which alerts a config change would add and remove, on the news already stored.

    stored stories (first seen since --since) | score with the current config | score with the proposed one
                                              | decide alerts per story       | decide alerts per story
                                              | diff per topic: added, removed

Deciding is the pipeline's own rule (`bot.decide.decide_alerts`): one alert per story per topic, for the
story's best-scoring flagged report; destinations do not matter here, so each topic gets one. Stories are the
stored ones: a proposed `[stories]` change is not re-clustered (the diff is about what alerts, not how
reports group).

Without a proposed config the "before" side is what was decided when the items arrived (the stored alerts
and scores) and the "after" side a fresh scoring with the current config: after feedback or a model
change, it shows what the topic would now do differently.

Models are trained afresh from each config's examples and the store's feedback labels; the store is only
read (the model versions registry is neither consulted nor written).

A whole story is in or out of the comparison: a story counts when it was first seen since the cut-off, and
then all its reports count, so an alert raised by an earlier report of the story is never cut in half.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from sqlalchemy import select

from bot.config import Config
from bot.decide import decide_alerts
from bot.durations import format_duration
from bot.items import Item, ScoredItem
from bot.scoring import TopicScorer
from bot.store import SCORE_FLOOR, Store, alerts, items, scores, stories
from bot.topic_models import background_examples, feedback_examples, topic_definition
from classifiers.model import TopicModels

Decisions = Mapping[tuple[str, str], str]  # (topic, story) → the alerted item's id
Scores = Mapping[tuple[str, str], float]  # (item id, topic) → score

_ANYWHERE = "backtest"  # the one pseudo-destination: an alert per story and topic, wherever it would go


class BacktestError(ValueError):
    """A backtest that cannot run as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Change:
    """An alert one side raises and the other does not: the story, its alerted report, both scores."""

    topic: str
    story: str
    item_id: str
    old_score: float | None  # None: not scored (the topic is new) or stored below the score floor
    new_score: float | None


@dataclass
class TopicDiff:
    topic: str
    before: int = 0  # stories alerted before
    after: int = 0
    added: list[Change] = field(default_factory=list)
    removed: list[Change] = field(default_factory=list)


# --- Pure decisions -------------------------------------------------------------------------------------


def decide_stories(scored: Sequence[ScoredItem], topic_ids: Iterable[str]) -> dict[tuple[str, str], str]:
    """(topic, story) → alerted item, as the pipeline decides, for every topic in `topic_ids`."""
    destinations = {topic: [_ANYWHERE] for topic in topic_ids}
    now = datetime.now(UTC)  # only stamps the Alert objects, which are thrown away
    return {(a.topic, a.story): a.item_id for a in decide_alerts(scored, destinations, (), now)}


def diff_alerts(
    before: Decisions,
    after: Decisions,
    old_scores: Scores,
    new_scores: Scores,
    topics: Iterable[str] = (),
) -> dict[str, TopicDiff]:
    """Per topic (every topic in `topics`, and any with an alert on either side): the stories alerted on
    one side only, with the alerted report and its score on both sides."""
    out = {topic: TopicDiff(topic) for topic in topics}
    for topic, _ in (*before, *after):
        out.setdefault(topic, TopicDiff(topic))
    for (topic, _), _item in before.items():
        out[topic].before += 1
    for (topic, _), _item in after.items():
        out[topic].after += 1
    for (topic, story), item_id in after.items():
        if (topic, story) not in before:
            out[topic].added.append(
                Change(
                    topic, story, item_id, old_scores.get((item_id, topic)), new_scores.get((item_id, topic))
                )
            )
    for (topic, story), item_id in before.items():
        if (topic, story) not in after:
            out[topic].removed.append(
                Change(
                    topic, story, item_id, old_scores.get((item_id, topic)), new_scores.get((item_id, topic))
                )
            )
    return out


def score_map(scored: Sequence[ScoredItem]) -> dict[tuple[str, str], float]:
    return {(s.item.id, ts.topic): float(ts.score) for s in scored for ts in s.scores}


def trained_models(config: Config, store: Store) -> TopicModels:
    """`config`'s topic models trained on its examples and the store's feedback labels.

    Trained here rather than by `load_or_train(config, store)`, which records and may activate versions in
    the store's registry: a backtest only reads, and a proposed config must not become the running one.
    (Training takes well under a second for a handful of topics.)"""
    definitions = [topic_definition(config, t) for t in config.active_topics]
    extra = feedback_examples(store, [d.id for d in definitions])
    return TopicModels.train(definitions, background_examples(config), extra=extra)


def rescore(config: Config, store: Store, reports: Sequence[tuple[Item, str]]) -> list[ScoredItem]:
    """Score stored reports with `config`'s topics, trained with the store's feedback."""
    scorer = TopicScorer(trained_models(config, store), config.active_topics)
    batch = [item for item, _ in reports]
    return [
        ScoredItem(item=item, story=story, scores=ts, summary="")
        for (item, story), ts in zip(reports, scorer.score(batch, explain=False), strict=True)
    ]


# --- Reading the store ----------------------------------------------------------------------------------


def existing_store(url: str) -> Store | None:
    """The store at `url`, or None when it is a SQLite file that does not exist yet: a read-only command
    must not leave an empty database behind where the worker has never run."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and ":memory:" not in url and not Path(url[len(prefix) :]).is_file():
        return None
    return Store.open(url)


def stored_reports(store: Store, since: datetime) -> list[tuple[Item, str]]:
    """(item, story id) for every report of the stories first seen at or after `since`, oldest first."""
    recent = select(stories.c.id).where(stories.c.first_seen >= since)
    query = (
        select(items)
        .where(items.c.story_id.in_(recent.scalar_subquery()))
        .order_by(items.c.published, items.c.id)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        (
            Item(
                r["id"], r["url"], r["title"], r["text"], r["published"], r["source"], r["guid"], r["fetched"]
            ),
            r["story_id"],
        )
        for r in rows
    ]


def stored_decisions(store: Store, story_ids: Iterable[str]) -> dict[tuple[str, str], str]:
    """(topic, story) → alerted item, from the stored alerts (one per topic, whatever the destinations)."""
    wanted = sorted(set(story_ids))
    found: dict[tuple[str, str], str] = {}
    with store.engine.connect() as conn:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = (
                select(alerts.c.topic, alerts.c.story_id, alerts.c.item_id)
                .where(alerts.c.story_id.in_(chunk))
                .order_by(alerts.c.created, alerts.c.destination)
            )
            for topic, story, item_id in conn.execute(query):
                found.setdefault((str(topic), str(story)), str(item_id))
    return found


def stored_scores(store: Store, item_ids: Iterable[str]) -> dict[tuple[str, str], float]:
    """(item, topic) → the score stored when the item arrived (scores under the store's floor are absent)."""
    wanted = sorted(set(item_ids))
    found: dict[tuple[str, str], float] = {}
    with store.engine.connect() as conn:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = select(scores.c.item_id, scores.c.topic, scores.c.score).where(
                scores.c.item_id.in_(chunk)
            )
            for item_id, topic, value in conn.execute(query):
                found[(str(item_id), str(topic))] = float(value)
    return found


# --- The command ----------------------------------------------------------------------------------------


def _plain(text: str, limit: int) -> str:
    """Feed text for a terminal: control characters (escape sequences a hostile title could carry) become
    spaces, and long titles are cut."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _score(value: float | None) -> str:
    return "  —  " if value is None else f"{value:.3f}"


def _alerts(n: int) -> str:
    return "1 alert" if n == 1 else f"{n} alerts"


def render_diff(diffs: Mapping[str, TopicDiff], reports: Mapping[str, Item]) -> str:
    """Per topic: the counts, then each added (+) and removed (-) alert, oldest first."""
    lines: list[str] = []
    for topic in diffs:
        d = diffs[topic]
        if not d.added and not d.removed:
            lines.append(f"{topic}: {_alerts(d.before)}, unchanged")
            continue
        lines.append(
            f"{topic}: {_alerts(d.before)} → {d.after}: {len(d.added)} added, {len(d.removed)} removed"
        )
        changes = [("+", c) for c in d.added] + [("-", c) for c in d.removed]
        changes.sort(key=lambda pair: (reports[pair[1].item_id].published, pair[1].item_id))
        for sign, change in changes:
            item = reports[change.item_id]
            lines.append(
                f"  {sign} {item.published:%Y-%m-%d}  {_score(change.old_score)} → {_score(change.new_score)}  "
                f"{_plain(item.source, 24):<24}  {_plain(item.title, 90)}"
            )
    return "\n".join(lines)


def run_backtest(
    current: Config,
    proposed: Config | None,
    out: TextIO,
    now: datetime,
    since: timedelta,
    topic: str | None = None,
    names: tuple[str, str] = ("current", "proposed"),
) -> int:
    """Print what `proposed` (or, without one, a fresh scoring with `current`) would change on the stories
    first seen in the last `since`. Raises BacktestError for an unknown `topic`."""
    known = {t.id for t in current.topics} | ({t.id for t in proposed.topics} if proposed else set())
    if topic is not None and topic not in known:
        raise BacktestError(f"no topic {topic!r}; topics: {', '.join(sorted(known))}")
    cutoff = now - since
    store = existing_store(current.database_url())
    if store is None:
        out.write(f"backtest: no database yet at {current.database_url()}: nothing stored to compare\n")
        return 0
    try:
        reports = stored_reports(store, cutoff)
        by_id = {item.id: item for item, _ in reports}
        n_stories = len({story for _, story in reports})
        out.write(
            f"backtest: {len(reports)} stored reports in {n_stories} stories first seen since "
            f"{cutoff:%Y-%m-%d %H:%M} UTC ({format_duration(since)})\n"
        )
        if not reports:
            out.write("nothing to compare: poll first, or widen --since\n")
            return 0
        now_scored = rescore(current, store, reports)
        if proposed is None:
            out.write(
                f"before: the alerts stored when the reports arrived; after: a fresh scoring with "
                f"{names[0]} (its models with the feedback labels so far)\n\n"
            )
            before = stored_decisions(store, {story for _, story in reports})
            old_scores: Scores = stored_scores(store, by_id)
            after = decide_stories(now_scored, [t.id for t in current.active_topics])
            new_scores: Scores = score_map(now_scored)
            topics = [t.id for t in current.active_topics]
        else:
            out.write(f"before: {names[0]}; after: {names[1]}\n\n")
            new_scored = rescore(proposed, store, reports)
            before = decide_stories(now_scored, [t.id for t in current.active_topics])
            after = decide_stories(new_scored, [t.id for t in proposed.active_topics])
            old_scores, new_scores = score_map(now_scored), score_map(new_scored)
            topics = [t.id for t in current.active_topics]
            topics += [t.id for t in proposed.active_topics if t.id not in topics]
    finally:
        store.close()
    diffs = diff_alerts(before, after, old_scores, new_scores, topics)
    if topic is not None:
        diffs = {topic: diffs.get(topic, TopicDiff(topic))}
    out.write(render_diff(diffs, by_id) + "\n")
    out.write(
        "\nscores: before → after, of the alerted report; — = not scored (a topic on one side only) or "
        f"stored below {SCORE_FLOOR}\n"
    )
    return 0
