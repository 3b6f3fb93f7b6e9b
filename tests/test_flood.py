"""Flood control's rules, shared by Slack and Teams delivery: the hourly cap per (topic, destination), and
which held stories make a roll-up now (gathered for the delay, none sent in the last hour)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.decide import decide_alerts
from bot.dedup import item_keys, new_items
from bot.delivery.flood import HourlyCap, due_rollups, hourly_cap, rollups
from bot.items import Alert, Item, ScoredItem, TopicScore, Why
from bot.store import Store, StoredAlert

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DELAY = timedelta(minutes=10)


def held(alert_id: str, topic: str, destination: str, created: datetime) -> StoredAlert:
    values: dict[str, Any] = {
        "alert": Alert(alert_id, topic, destination, f"s-{alert_id}", f"i-{alert_id}", created),
        "status": "held",
        "attempts": 0,
        "title": f"Story {alert_id}",
        "url": f"https://news.example/{alert_id}",
        "source": "Wire",
        "published": created,
        "summary": "",
        "score": 0.9,
        "why": {},
        "n_sources": 1,
    }
    return StoredAlert(**values)


def test_the_cap_counts_per_topic_and_destination_from_what_was_sent_before() -> None:
    looked_up: list[tuple[str, str]] = []

    def sent_before(topic: str, destination: str) -> int:
        looked_up.append((topic, destination))
        return {("flood", "teams:ops"): 2}.get((topic, destination), 0)

    cap = HourlyCap(3, sent_before)
    ops = Alert("a1", "flood", "teams:ops", "s", "i", NOW)
    desk = Alert("a2", "flood", "teams:desk", "s", "i", NOW)
    assert not cap.holds(ops)
    cap.count(ops)
    assert cap.holds(ops) and cap.holds(ops)  # 2 before + 1 now = the cap
    assert not cap.holds(desk)  # another destination has its own count
    assert not cap.holds(Alert("a3", "calm", "teams:ops", "s", "i", NOW))  # and another topic
    assert looked_up.count(("flood", "teams:ops")) == 1  # read once per run, then counted


def test_rollups_group_by_destination_and_topic_and_wait_for_the_delay() -> None:
    early = NOW - DELAY - timedelta(seconds=1)
    stories = [
        held("a", "flood", "teams:ops", early),
        held("b", "flood", "teams:desk", NOW - timedelta(minutes=2)),  # not gathered yet
        held("c", "flood", "teams:ops", NOW),  # joins its group's roll-up: the oldest decides
        held("d", "calm", "teams:ops", NOW - DELAY),  # exactly the delay: due
    ]
    due = rollups(stories, NOW, DELAY)
    assert [(r.destination, r.topic, r.alert_ids) for r in due] == [
        ("teams:ops", "flood", ["a", "c"]),
        ("teams:ops", "calm", ["d"]),
    ]
    assert rollups([], NOW, DELAY) == []


def add_alerts(store: Store, destination: str, n: int) -> list[str]:
    """`n` alerts of topic "flood" to `destination`, created a second apart from NOW; their ids."""
    ids = []
    for k in range(n):
        item = Item(f"{destination}-{k}", f"https://news.example/{k}", f"Story {k}", "Text.", NOW, "wire")
        why = Why(terms=(("flood", 0.9),), rules_matched=())
        scored = ScoredItem(item, item.id, (TopicScore("flood", 0.9, True, why),), "Summary.")
        _, keys = new_items([item], {}, [item_keys(item)])
        with store.transaction() as conn:
            alerts = decide_alerts([scored], {"flood": [destination]}, set(), NOW + timedelta(seconds=k))
            store.save_scored(conn, [scored], keys, {}, alerts)
        ids += [a.id for a in alerts]
    return ids


def test_due_rollups_read_the_store_and_keep_to_one_an_hour(store: Store) -> None:
    first, second, third = add_alerts(store, "teams:ops", 3)
    store.mark_sent(first, NOW + timedelta(minutes=1), "teams:ops")
    assert hourly_cap(store, NOW + timedelta(minutes=2), 1).holds(store.alerts_for("sent")[0].alert)
    store.hold_alert(second)
    assert due_rollups(store, "teams:", NOW + timedelta(minutes=5), DELAY) == []  # still gathering
    [rollup] = due_rollups(store, "teams:", NOW + timedelta(minutes=11), DELAY)
    assert (rollup.destination, rollup.topic, rollup.alert_ids) == ("teams:ops", "flood", [second])
    assert due_rollups(store, "slack:", NOW + timedelta(minutes=11), DELAY) == []  # another channel kind
    store.mark_rolled_up([second], NOW + timedelta(minutes=11), "teams:ops:run-1")
    store.hold_alert(third)
    assert due_rollups(store, "teams:", NOW + timedelta(minutes=40), DELAY) == []  # one an hour
    [later] = due_rollups(store, "teams:", NOW + timedelta(minutes=72), DELAY)
    assert later.alert_ids == [third]
    # A rolled-up story does not count against the cap of stories sent as messages of their own.
    assert hourly_cap(store, NOW + timedelta(minutes=30), 2).sent_before("flood", "teams:ops") == 1
