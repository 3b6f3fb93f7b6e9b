"""Feedback from the alert buttons, decided in pure code: what a click means and what the clicks add up to.

    click → ButtonValue (parsed, checked) → Vote (store) → latest verdict per user → tally per item → label

What this module promises:
- One verdict per user and item, the latest: a user who clicks *Relevant* and then *Not relevant* has said
  "not relevant". The same item alerted in two channels is one report: a user's clicks on either alert
  count once, the latest.
- An item's training label is the majority of those verdicts. A tie is no label (the model is not taught
  either way) and is reported, so `/news topics` can show the disagreement (issue 4, "Bad input").
- A button's value is data that came back from Slack: it is parsed defensively and every way it can be
  wrong gives a `ButtonValueError` whose message a user can read.

No I/O, no clock: times come in with the votes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Verdict = Literal["relevant", "not_relevant"]
VERDICTS: tuple[Verdict, ...] = ("relevant", "not_relevant")
LABEL_OF: dict[Verdict, int] = {"relevant": 1, "not_relevant": 0}

# Alert ids and topic slugs are short (the store's columns are 40 and 80 characters); anything longer in a
# button value did not come from us.
ALERT_ID_MAX = 40
TOPIC_ID_MAX = 80


class ButtonValueError(ValueError):
    """A button value that is not what Watchfloor put there; the message says what is wrong with it."""


@dataclass(frozen=True, slots=True)
class ButtonValue:
    """What an alert's buttons carry (`bot.render.slack._button_value`)."""

    alert_id: str
    topic: str


def parse_button_value(raw: Any) -> ButtonValue:
    """The `{"alert_id": …, "topic": …}` JSON of an alert button, checked; `ButtonValueError` otherwise."""
    if not isinstance(raw, str) or not raw.strip():
        raise ButtonValueError("the button carries no value")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        raise ButtonValueError("the button's value is not the JSON Watchfloor puts there") from None
    if not isinstance(data, dict):
        raise ButtonValueError("the button's value is not a JSON object")
    alert_id, topic = data.get("alert_id"), data.get("topic")
    if not isinstance(alert_id, str) or not 0 < len(alert_id) <= ALERT_ID_MAX:
        raise ButtonValueError("the button names no valid alert")
    if not isinstance(topic, str) or not 0 < len(topic) <= TOPIC_ID_MAX:
        raise ButtonValueError("the button names no valid topic")
    return ButtonValue(alert_id, topic)


def verdict_of(action_id: str) -> Verdict:
    """`feedback_relevant` → `relevant`, `feedback_not_relevant` → `not_relevant`."""
    verdict = action_id.removeprefix("feedback_")
    if verdict not in VERDICTS:
        raise ValueError(f"action {action_id!r} is not a feedback button")
    return verdict


@dataclass(frozen=True, slots=True)
class Vote:
    """One stored verdict: a user's latest click on one alert."""

    alert_id: str
    item_id: str
    user: str
    verdict: Verdict
    at: datetime


@dataclass(frozen=True, slots=True)
class Tally:
    relevant: int = 0
    not_relevant: int = 0

    @property
    def label(self) -> int | None:
        """1 (relevant), 0 (not relevant), or None when the verdicts are tied (or there are none)."""
        if self.relevant == self.not_relevant:
            return None
        return 1 if self.relevant > self.not_relevant else 0


def latest_per_user(votes: Iterable[Vote]) -> dict[str, Verdict]:
    """user → their latest verdict among `votes` (ties in time: the later in the sequence wins)."""
    latest: dict[str, Vote] = {}
    for vote in votes:
        known = latest.get(vote.user)
        if known is None or vote.at >= known.at:
            latest[vote.user] = vote
    return {user: vote.verdict for user, vote in latest.items()}


def tally(verdicts: Mapping[str, Verdict]) -> Tally:
    values = list(verdicts.values())
    return Tally(relevant=values.count("relevant"), not_relevant=values.count("not_relevant"))


@dataclass(frozen=True)
class ItemLabels:
    """Training labels from feedback: item id → 1 | 0, and the items left out because their users are tied
    (with each tie's tally, for reporting)."""

    labels: dict[str, int] = field(default_factory=dict)
    ties: dict[str, Tally] = field(default_factory=dict)


def item_labels(votes: Iterable[Vote]) -> ItemLabels:
    """The majority of the latest verdict per user, per item; tied items go to `ties`, not `labels`."""
    by_item: dict[str, list[Vote]] = {}
    for vote in votes:
        by_item.setdefault(vote.item_id, []).append(vote)
    result = ItemLabels()
    for item_id, item_votes in by_item.items():
        counted = tally(latest_per_user(item_votes))
        label = counted.label
        if label is None:
            result.ties[item_id] = counted
        else:
            result.labels[item_id] = label
    return result
