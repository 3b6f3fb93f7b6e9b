"""`bot.queries` on both databases: the same answers from SQLite and PostgreSQL (the `store` fixture)."""

from __future__ import annotations

from datetime import timedelta

from news_store import CABLES, DPRK, HOSTILE, NOW, fill, news_config

from bot import queries
from bot.store import Store


def test_latest_dedupes_destinations_and_orders_newest_first(store: Store) -> None:
    fill(store, news_config())
    found = queries.latest_alerted(store, None, 10)
    assert [a.item_id for a in found] == ["i-hostile", "i-cable", "i-dprk-shells", "i-dprk-old"]
    assert found[0].alerted == NOW - timedelta(minutes=30) and found[0].alerted.tzinfo is not None
    assert found[0].title == HOSTILE and found[2].statuses == ("pending", "pending")
    assert found[1].statuses == ("dead",)
    assert [a.item_id for a in queries.latest_alerted(store, DPRK, 2)] == ["i-hostile", "i-dprk-shells"]


def test_topic_activity_counts_stories_in_24h_and_7d(store: Store) -> None:
    fill(store, news_config())
    activity = queries.topic_activity(store, NOW)
    assert (activity[DPRK].last_day, activity[DPRK].last_week) == (2, 3)
    assert (activity[CABLES].last_day, activity[CABLES].last_week) == (1, 1)


def test_status_report(store: Store) -> None:
    fill(store, news_config())
    report = queries.status_report(store)
    broken = next(s for s in report.sources if s.name == "broken-feed")
    assert broken.consecutive_failures == 3 and broken.last_status == 503
    assert report.last_poll == NOW - timedelta(minutes=10)
    assert report.outbox == {"console": 3, "slack:#dprk-watch": 3}
    assert report.dead_count == 1 and report.dead_latest[0].last_error == "channel_not_found"
    assert {(v.topic, v.version, v.scores) for v in report.model_versions} == {
        (DPRK, "dprk0123abcd", 3),
        (CABLES, "cable456efab", 2),
    }


def test_search_ranks_and_filters(store: Store) -> None:
    fill(store, news_config())
    assert [h.item_id for h in queries.search_items(store, ["russian"])] == ["i-dprk-shells", "i-cable"]
    ranks = [h.rank for h in queries.search_items(store, ["russian"])]
    assert ranks[0] > ranks[1]  # the title hit ranks first
    assert [h.item_id for h in queries.search_items(store, ["ARTILLERY"], source="WIRE")] == ["i-dprk-shells"]
    recent = queries.search_items(store, ["cable"], since=NOW - timedelta(days=7))
    assert [h.item_id for h in recent] == ["i-cable"]
    assert [h.item_id for h in queries.search_items(store, ["cable"], topic=CABLES)] == ["i-cable"]
    # LIKE wildcards typed by a user are literal characters.
    assert queries.search_items(store, ["%"]) == [] and queries.search_items(store, ["_"]) == []


def test_find_item_by_id_and_url_with_scores(store: Store) -> None:
    fill(store, news_config())
    item = queries.find_item(store, "i-dprk-shells")
    assert item is not None and item.scores[0].why["terms"][0] == ["north korean", 0.91]
    by_url = queries.find_item(store, "HTTPS://NEWS.EXAMPLE/i-dprk-shells?utm_source=x")
    assert by_url is not None and by_url.id == "i-dprk-shells"
    assert queries.find_item(store, "i-none") is None


def test_metrics_and_health(store: Store) -> None:
    fill(store, news_config())
    queries.database_ok(store)
    m = queries.metrics(store)
    assert (m.items, m.sources, m.sources_failing) == (5, 3, 1)
    assert m.alerts_by_status == {"dead": 1, "pending": 6}
