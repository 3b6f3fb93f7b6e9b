"""Which alerts to create: a pure function of (scored items, topics, what was already alerted, now).

A story alerts once per topic and destination; later reports of the same story join it silently (the Slack
work threads them). Deciding here, without I/O, keeps the rule testable and the runner thin.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from bot.items import Alert, Followup, ScoredItem


def alert_id(topic: str, destination: str, story: str) -> str:
    """Stable, so a retried cycle recomputes the same id and the outbox's unique key absorbs it."""
    return hashlib.sha1(f"{topic}\0{destination}\0{story}".encode()).hexdigest()[:24]


def decide_alerts(
    scored: Sequence[ScoredItem],
    destinations: Mapping[str, Sequence[str]],
    already: Iterable[tuple[str, str, str]],
    now: datetime,
) -> list[Alert]:
    """One alert per (story, topic, destination) not alerted before, for the story's best-scoring new item.

    `destinations` maps each active topic id to where it routes; topics absent from it do not alert.
    `already` holds (story, topic, destination) triples that have an alert from an earlier cycle.
    """
    done = set(already)
    best: dict[tuple[str, str], tuple[float, ScoredItem]] = {}
    for s in scored:
        for ts in s.scores:
            if not ts.flagged or ts.topic not in destinations:
                continue
            key = (s.story, ts.topic)
            if key not in best or ts.score > best[key][0]:
                best[key] = (ts.score, s)
    out: list[Alert] = []
    for (story, topic), (_score, s) in sorted(best.items(), key=lambda kv: (kv[1][1].item.published, kv[0])):
        for dest in destinations[topic]:
            if (story, topic, dest) in done:
                continue
            done.add((story, topic, dest))
            out.append(
                Alert(
                    id=alert_id(topic, dest, story),
                    topic=topic,
                    destination=dest,
                    story=story,
                    item_id=s.item.id,
                    created=now,
                )
            )
    return out


def decide_followups(
    scored: Sequence[ScoredItem], alerts_by_story: Mapping[str, Sequence[Alert]], now: datetime
) -> list[Followup]:
    """For every alert of a story (earlier or just decided), one follow-up listing the batch's other
    reports of that story: later outlets go into the alert's thread instead of alerting again.

    `alerts_by_story` maps a story id to all its alerts, existing and new."""
    by_story: dict[str, list[ScoredItem]] = {}
    for s in scored:
        by_story.setdefault(s.story, []).append(s)
    out = []
    for story, members in by_story.items():
        for alert in alerts_by_story.get(story, ()):
            others = tuple(
                m.item.id
                for m in sorted(members, key=lambda m: m.item.published)
                if m.item.id != alert.item_id
            )
            if not others:
                continue
            ident = hashlib.sha1(f"{alert.id}\0{chr(0).join(others)}".encode()).hexdigest()[:24]
            out.append(Followup(id=ident, alert_id=alert.id, item_ids=others, created=now))
    return out
