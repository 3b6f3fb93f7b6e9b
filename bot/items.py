"""The plain data that flows between pipeline stages.

Every stage takes and returns these frozen dataclasses, so each stage can be tested alone and the whole
chain run once from the CLI. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class RawEntry:
    """One entry as a feed parser saw it, before normalisation. Strings may hold HTML and junk."""

    title: str
    link: str
    guid: str | None = None
    summary: str = ""  # description / summary, may be HTML
    content: str = ""  # full content (content:encoded, atom:content), may be HTML
    published: datetime | None = None  # timezone-aware when the feed said so; None when absent/unparseable
    author: str = ""


@dataclass(frozen=True, slots=True)
class Item:
    """One news report, normalised: the unit everything downstream works on."""

    id: str  # stable: derived from the canonical URL (or guid when there is no link)
    url: str  # canonical URL
    title: str  # plain text
    text: str  # plain text: HTML stripped, entities decoded, whitespace folded
    published: datetime  # UTC, aware; the fetch time when the feed gave none
    source: str  # the source's name from config
    guid: str | None = None
    fetched: datetime | None = None


@dataclass(frozen=True, slots=True)
class Why:
    """Why a topic fired (or did not): the evidence shown to the analyst."""

    terms: tuple[tuple[str, float], ...] = ()  # (term, signed weight) that pushed the score, strongest first
    rules_matched: tuple[str, ...] = ()  # keyword rule terms that held
    rules_failed: str | None = None  # why the keyword rules did not hold, when they did not


NO_WHY = Why()


class TopicScore(NamedTuple):
    """One topic's verdict on one item. A NamedTuple: a poll cycle makes one per item per topic, and
    tuple construction is several times cheaper than a frozen dataclass's."""

    topic: str
    score: float
    flagged: bool
    why: Why = NO_WHY


@dataclass(frozen=True, slots=True)
class ScoredItem:
    item: Item
    story: str  # story id: the id of the first item of its story
    scores: tuple[TopicScore, ...]
    summary: str

    @property
    def flagged(self) -> tuple[str, ...]:
        return tuple(s.topic for s in self.scores if s.flagged)


@dataclass(frozen=True, slots=True)
class Alert:
    """One flagged story for one destination. `id` is stable so a retry never makes a second alert."""

    id: str
    topic: str
    destination: str
    story: str
    item_id: str
    created: datetime


@dataclass(frozen=True, slots=True)
class Followup:
    """Later reports of an alerted story, for one alert, from one ingest batch: one thread reply."""

    id: str
    alert_id: str
    item_ids: tuple[str, ...]
    created: datetime
