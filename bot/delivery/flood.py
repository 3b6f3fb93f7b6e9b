"""Flood control, the same for every channel that posts alerts one by one (Slack channels, Teams webhooks).

    due alerts of one (topic, destination) | the first `hourly_cap` in the last hour as messages of their own
        | the rest held | once the oldest held has waited `rollup_delay`: one "N more stories on <topic>"
        | at most one such roll-up an hour per (topic, destination)

When a story breaks, every outlet's take on it can flag the same topic within minutes; forty messages in a
channel bury the one that mattered and teach people to mute it. The cap keeps a topic's first stories as
alerts of their own and gathers the rest into one message.

What counts: alerts the store records as `sent` within the hour, as messages of their own
(`Store.sent_since(..., rolled_up=False)`) for the cap, as a roll-up (`rolled_up=True`) for the once an
hour rule. Held alerts have status `held` (`Store.hold_alert`); a roll-up marks them sent and rolled up
(`Store.mark_rolled_up`). Mutes are applied before any of this (`Store.set_aside_muted` takes held alerts
too): a muted topic gets neither alerts nor roll-ups.

The decisions (`HourlyCap.holds`, `rollups`) are pure; `hourly_cap` and `due_rollups` read the store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.items import Alert
from bot.store import Store, StoredAlert

WINDOW = timedelta(hours=1)


@dataclass
class HourlyCap:
    """How many alerts of each topic each destination has had in the window, as one delivery run sees it:
    read once per (topic, destination) through `sent_before`, then counted up as the run posts."""

    cap: int
    sent_before: Callable[[str, str], int]  # (topic, destination) → alerts sent in the window
    _sent: dict[tuple[str, str], int] = field(default_factory=dict)

    def holds(self, alert: Alert) -> bool:
        """True when `alert` must wait for its topic's roll-up: the destination has had `cap` already."""
        key = (alert.topic, alert.destination)
        if key not in self._sent:
            self._sent[key] = self.sent_before(*key)
        return self._sent[key] >= self.cap

    def count(self, alert: Alert) -> None:
        """`alert` went out (or was settled) as a message of its own in this run."""
        key = (alert.topic, alert.destination)
        self._sent[key] = self._sent.get(key, 0) + 1


def hourly_cap(store: Store, now: datetime, cap: int) -> HourlyCap:
    """The cap for a run at `now`, counting what the store has sent in the hour before it."""
    since = now - WINDOW
    return HourlyCap(cap, lambda topic, dest: store.sent_since(topic, dest, since, rolled_up=False))


@dataclass(frozen=True, slots=True)
class Rollup:
    """Held stories of one topic for one destination, to go out as one message."""

    destination: str
    topic: str
    held: tuple[StoredAlert, ...]

    @property
    def alert_ids(self) -> list[str]:
        return [h.alert.id for h in self.held]


def rollups(held: Sequence[StoredAlert], now: datetime, delay: timedelta) -> list[Rollup]:
    """The held alerts grouped by (destination, topic) in the order given, keeping the groups whose oldest
    alert has waited `delay`: a roll-up sent at once would carry one story where a few minutes gather the
    rest of the burst."""
    groups: dict[tuple[str, str], list[StoredAlert]] = {}
    for stored in held:
        groups.setdefault((stored.alert.destination, stored.alert.topic), []).append(stored)
    return [
        Rollup(dest, topic, tuple(group))
        for (dest, topic), group in groups.items()
        if min(h.alert.created for h in group) <= now - delay
    ]


def due_rollups(store: Store, prefix: str, now: datetime, delay: timedelta) -> list[Rollup]:
    """The roll-ups to send now to destinations starting with `prefix`: gathered for `delay`, and none sent
    for that topic and destination in the last hour (the rest wait for the next hour's)."""
    return [
        r
        for r in rollups(store.held_alerts(prefix), now, delay)
        if not store.sent_since(r.topic, r.destination, now - WINDOW, rolled_up=True)
    ]
