"""Digests and surge notices as plain data: built by `bot.digest` / `bot.surge`, frozen into the messages
outbox as JSON (`to_payload`), rendered per channel (Slack, Teams, console) from `from_payload`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class StoryLine:
    """One story as a digest or surge lists it: its best report, with the story's outlets."""

    story_id: str
    item_id: str
    topic: str
    title: str
    url: str
    source: str
    published: datetime
    summary: str
    score: float
    n_sources: int
    sources: tuple[str, ...] = ()

    @classmethod
    def from_payload(cls, d: dict[str, Any]) -> StoryLine:
        return cls(
            story_id=d["story_id"],
            item_id=d["item_id"],
            topic=d["topic"],
            title=d["title"],
            url=d["url"],
            source=d["source"],
            published=datetime.fromisoformat(d["published"]),
            summary=d.get("summary", ""),
            score=float(d["score"]),
            n_sources=int(d["n_sources"]),
            sources=tuple(d.get("sources", ())),
        )


@dataclass(frozen=True, slots=True)
class DigestTopic:
    topic: str
    title: str
    stories: tuple[StoryLine, ...]
    more: int = 0  # stories of the period beyond the ones listed


@dataclass(frozen=True, slots=True)
class Digest:
    destination: str
    since: datetime
    until: datetime
    topics: tuple[DigestTopic, ...]
    # Titles of the topics with news in the period that were left out because they are muted here.
    muted: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not any(t.stories for t in self.topics)

    def to_payload(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    @classmethod
    def from_payload(cls, d: dict[str, Any]) -> Digest:
        return cls(
            destination=d["destination"],
            since=datetime.fromisoformat(d["since"]),
            until=datetime.fromisoformat(d["until"]),
            topics=tuple(
                DigestTopic(
                    topic=t["topic"],
                    title=t["title"],
                    stories=tuple(StoryLine.from_payload(s) for s in t["stories"]),
                    more=int(t.get("more", 0)),
                )
                for t in d["topics"]
            ),
            muted=tuple(d.get("muted", ())),
        )


@dataclass(frozen=True, slots=True)
class Surge:
    """A topic's stories in a window far above its usual rate."""

    topic: str
    title: str
    window_start: datetime
    window_end: datetime
    count: int  # stories in the window
    usual: float  # median stories per window over the baseline
    factor: float  # count / max(usual, 1)
    stories: tuple[StoryLine, ...]

    def to_payload(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    @classmethod
    def from_payload(cls, d: dict[str, Any]) -> Surge:
        return cls(
            topic=d["topic"],
            title=d["title"],
            window_start=datetime.fromisoformat(d["window_start"]),
            window_end=datetime.fromisoformat(d["window_end"]),
            count=int(d["count"]),
            usual=float(d["usual"]),
            factor=float(d["factor"]),
            stories=tuple(StoryLine.from_payload(s) for s in d["stories"]),
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
