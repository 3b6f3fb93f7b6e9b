"""Which alerts to create: pure decisions over scored items."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.decide import alert_id, decide_alerts
from bot.dedup import item_keys, new_items
from bot.items import Item, ScoredItem, TopicScore

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def scored(n: int, story: str, flags: dict[str, float]) -> ScoredItem:
    item = Item(f"i{n}", f"https://x.example/{n}", f"t{n}", "x", NOW - timedelta(minutes=n), "src")
    return ScoredItem(item, story, tuple(TopicScore(t, s, s >= 0.5) for t, s in flags.items()), "")


def test_one_alert_per_story_topic_destination_for_the_best_item() -> None:
    batch = [
        scored(1, "s1", {"a": 0.6, "b": 0.9}),
        scored(2, "s1", {"a": 0.8, "b": 0.1}),
        scored(3, "s3", {"a": 0.2}),
    ]
    alerts = decide_alerts(batch, {"a": ["slack:#x", "console"], "b": ["slack:#y"]}, set(), NOW)
    got = {(a.topic, a.destination, a.item_id) for a in alerts}
    assert got == {("a", "slack:#x", "i2"), ("a", "console", "i2"), ("b", "slack:#y", "i1")}
    assert all(a.id == alert_id(a.topic, a.destination, a.story) for a in alerts)


def test_already_alerted_and_unrouted_topics_do_not_alert() -> None:
    batch = [scored(1, "s1", {"a": 0.9, "c": 0.9})]
    assert decide_alerts(batch, {"a": ["console"]}, {("s1", "a", "console")}, NOW) == []


def test_exact_duplicates_by_url_or_guid() -> None:
    a = Item("1", "https://x.example/1", "t", "x", NOW, "one", guid="42")
    same_guid_other_feed = Item("2", "https://x.example/2", "t", "x", NOW, "two", guid="42")
    same_guid_same_feed = Item("3", "https://x.example/3", "t", "x", NOW, "one", guid="42")
    global_guid = Item("4", "https://x.example/4", "t", "x", NOW, "one", guid="tag:x.example,2026:1")
    global_guid_again = Item("5", "https://x.example/5", "t", "x", NOW, "two", guid="tag:x.example,2026:1")
    fresh, keys = new_items(
        [a, same_guid_other_feed, same_guid_same_feed, global_guid, global_guid_again], {}
    )
    assert [i.id for i in fresh] == ["1", "2", "4"]
    assert keys["1"] == item_keys(a)
    fresh, _ = new_items(
        [Item("9", "https://x.example/1", "t", "x", NOW, "three")], {k: "1" for k in keys["1"]}
    )
    assert fresh == []
