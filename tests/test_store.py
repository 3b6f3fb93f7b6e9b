"""The store on SQLite and on PostgreSQL: the same statements, the same results."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

import bot.store
from bot.decide import decide_alerts
from bot.dedup import item_keys, new_items
from bot.items import Item, ScoredItem, TopicScore, Why
from bot.sources.health import SourceHealth
from bot.store import Store
from bot.store import stories as stories_table

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def item(n: int, source: str = "wire", url: str | None = None, guid: str | None = None) -> Item:
    return Item(
        id=f"id{n}",
        url=url or f"https://news.example/{n}",
        title=f"Title {n}",
        text=f"Text of report {n}.",
        published=NOW - timedelta(hours=n),
        source=source,
        guid=guid,
        fetched=NOW,
    )


def scored(it: Item, story: str, score: float = 0.9, flagged: bool = True) -> ScoredItem:
    why = Why(terms=(("north korean", 0.8),), rules_matched=("north korea",))
    return ScoredItem(
        item=it,
        story=story,
        scores=(TopicScore("dprk", score, flagged, why), TopicScore("cables", 0.01, False)),
        summary=f"Summary {it.id}.",
    )


def save(store: Store, batch: list[ScoredItem], dests: dict[str, list[str]] | None = None) -> list[str]:
    known = store.known_keys(k for s in batch for k in item_keys(s.item))
    fresh, keys = new_items([s.item for s in batch], known)
    chosen = [s for s in batch if s.item in fresh]
    with store.transaction() as conn:
        found = store.alerts_of_stories(conn, [s.story for s in chosen])
        already = {(a.story, a.topic, a.destination) for group in found.values() for a in group}
        alerts = decide_alerts(chosen, dests or {"dprk": ["slack:#dprk"]}, already, NOW)
        store.save_scored(conn, chosen, keys, {"dprk": "v1"}, alerts)
    return [a.id for a in alerts]


def test_items_stories_scores_and_alerts_round_trip(store: Store) -> None:
    a, b = item(1, "wire"), item(2, "desk")
    created = save(store, [scored(a, "id1"), scored(b, "id1")])
    assert len(created) == 1  # one story → one alert per destination
    tally = store.tally()
    assert (tally.items, tally.stories, tally.alerts_per_topic) == (2, 1, {"dprk": 1})
    [due] = store.due_alerts(NOW)
    assert due.title == "Title 1" and due.n_sources == 2 and due.score == 0.9
    assert due.why["terms"] == [["north korean", 0.8]] and due.why["rules"] == ["north korea"]
    assert due.published == a.published and due.published.tzinfo is not None
    stored = store.item("id2")
    assert stored is not None and stored["story_id"] == "id1" and stored["summary"] == "Summary id2."


def test_saving_the_same_items_again_adds_nothing(store: Store) -> None:
    batch = [scored(item(n), f"id{n}") for n in range(5)]
    assert len(save(store, batch)) == 5
    assert save(store, batch) == []
    # Same URL from another source, and same global guid under a new URL: both known.
    again = [
        scored(item(1, source="other"), "x"),
        scored(item(9, url="https://news.example/other", guid="https://news.example/0"), "y"),
    ]
    assert len(save(store, [scored(item(7, guid="https://news.example/0"), "id7")])) == 1
    assert save(store, again) == []
    assert store.tally().items == 6


def test_a_story_alerts_once_per_topic_and_destination_across_cycles(store: Store) -> None:
    save(store, [scored(item(1), "id1")], {"dprk": ["slack:#a"]})
    assert save(store, [scored(item(2), "id1")], {"dprk": ["slack:#a"]}) == []
    # A destination added later gets the story once.
    assert len(save(store, [scored(item(3), "id1")], {"dprk": ["slack:#a", "slack:#b"]})) == 1
    assert store.tally().stories == 1


def test_outbox_retry_and_dead_letters(store: Store) -> None:
    [alert_id] = save(store, [scored(item(1), "id1")])
    store.mark_failed(alert_id, "HTTP 500", NOW + timedelta(minutes=1))
    assert store.due_alerts(NOW) == []
    assert [a.alert.id for a in store.due_alerts(NOW + timedelta(minutes=2))] == [alert_id]
    store.mark_failed(alert_id, "HTTP 500 again", None)
    assert store.due_alerts(NOW + timedelta(days=1)) == []
    [dead] = store.alerts_for("dead")
    assert dead.attempts == 2
    store.mark_sent(alert_id, NOW, "ts-1")
    assert store.alerts_for("sent")[0].alert.id == alert_id


def test_source_health_round_trip(store: Store) -> None:
    store.ensure_sources([("wire", "https://wire.example/rss"), ("desk", "https://desk.example/atom")])
    store.ensure_sources([("wire", "https://wire.example/rss2")])
    health = SourceHealth(
        last_success=NOW,
        last_error="HTTP 503",
        last_error_at=NOW,
        consecutive_failures=2,
        etag='"abc"',
        last_modified="Fri, 27 Nov 2026 10:00:00 GMT",
        next_due=NOW + timedelta(hours=1),
    )
    with store.transaction() as conn:
        store.save_health(conn, [("wire", health, 503)], NOW)
    got = store.source_health()
    assert got["wire"] == health
    assert got["desk"] == SourceHealth()
    rows = {r["name"]: r for r in store.source_rows()}
    assert rows["wire"]["url"] == "https://wire.example/rss2" and rows["wire"]["last_status"] == 503


def test_recent_items_for_the_story_index(store: Store) -> None:
    save(store, [scored(item(n), f"id{n}") for n in (1, 30, 80)])
    recent = store.recent_items(NOW - timedelta(hours=48))
    assert [r.id for r in recent] == ["id30", "id1"]


def test_low_scores_are_not_stored(store: Store) -> None:
    save(store, [scored(item(1), "id1", score=0.01, flagged=False)])
    assert store.due_alerts(NOW) == [] and store.tally().items == 1


def test_search_index_catches_up_once_per_new_item(store: Store) -> None:
    from bot.queries import search_items

    save(store, [scored(item(1), "id1")])
    assert [h.item_id for h in search_items(store, ["report"])] == ["id1"]
    assert store.index_for_search() == 0  # nothing new: nothing indexed twice
    save(store, [scored(item(2), "id2")])
    assert [h.item_id for h in search_items(store, ["report"])] == ["id1", "id2"]
    assert [h.item_id for h in search_items(store, ["repo"])] == ["id1", "id2"]  # word beginnings match
    assert search_items(store, ["absent"]) == []


def test_a_story_grows_across_batches(store: Store) -> None:
    """Later reports of a stored story add to its count, outlets and last_seen (one executemany for all)."""
    save(store, [scored(item(5, "wire"), "id5"), scored(item(9, "desk", url="https://x.example/9"), "id9")])
    save(
        store,
        [
            scored(item(3, "desk", url="https://desk.example/3"), "id5"),
            scored(item(1, "wire", url="https://wire.example/1"), "id5"),
            scored(item(7, "post", url="https://post.example/7"), "id9"),
        ],
    )
    with store.engine.connect() as conn:
        rows = {
            r.id: r
            for r in conn.execute(
                select(
                    stories_table.c.id,
                    stories_table.c.first_seen,
                    stories_table.c.last_seen,
                    stories_table.c.n_items,
                )
            )
        }
    assert rows["id5"].n_items == 3 and rows["id9"].n_items == 2
    assert rows["id5"].first_seen == NOW - timedelta(hours=5)
    assert rows["id5"].last_seen == NOW - timedelta(hours=1)
    assert rows["id9"].last_seen == NOW - timedelta(hours=7)  # an older report does not move it back
    assert store.story_sources("id5") == ["desk", "wire"]
    assert store.story_sources("id9") == ["desk", "post"]


def test_sqlite_checkpoints_on_the_stores_own_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit does not copy the WAL into the database file itself (SQLite's automatic checkpoint is only a
    far-off backstop); the store's thread does it after the commit, without blocking anyone."""
    monkeypatch.setattr(bot.store, "CHECKPOINT_EVERY_S", 0.0)
    db = tmp_path / "store.sqlite"
    store = Store.open(f"sqlite:///{db}")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == bot.store.WAL_BACKSTOP_PAGES
        store.settle()
        before = db.stat().st_size
        big = [
            replace(scored(item(n), f"id{n}"), item=replace(item(n), text="word " * 2000))
            for n in range(2000)
        ]  # ~20 MB: SQLite's default threshold (1,000 pages) would checkpoint inside the commit
        with store.transaction() as conn:
            store.save_items(conn, big, {s.item.id: item_keys(s.item) for s in big}, {})
        store.settle()
        assert db.stat().st_size > before + 10_000_000  # the thread copied the pages into the file
        busy, frames, done = store.checkpoint()
        assert busy == 0 and frames == done  # nothing left behind
    finally:
        store.close()


def test_channel_names_follow_the_latest_sighting(store: Store) -> None:
    t0 = datetime(2026, 11, 1, 8, tzinfo=UTC)
    store.note_channel("C1", "Watch-DPRK", t0)
    store.note_channel("C2", "cables", t0)
    assert store.slack_channel_names() == {"C1": "watch-dprk", "C2": "cables"}
    # Renamed: the new name wins; a late report of the old name does not undo the rename.
    store.note_channel("C1", "dprk-desk", t0 + timedelta(hours=2))
    store.note_channel("C1", "watch-dprk", t0 + timedelta(hours=1))
    store.note_channel("", "ignored", t0)
    assert store.slack_channel_names() == {"C1": "dprk-desk", "C2": "cables"}


def test_a_mute_by_channel_id_silences_alerts_routed_by_name(store: Store) -> None:
    """`/news mute` records the channel id; config.toml routes by `#name`: the mute still holds."""
    now = datetime(2026, 11, 1, 8, tzinfo=UTC)
    save(store, [scored(item(1), "s1")], {"dprk": ["slack:#Watch-DPRK", "slack:#other"]})
    store.note_channel("C1", "watch-dprk", now)
    store.mute("dprk", "slack:C1", now + timedelta(hours=1), "U1")
    assert store.set_aside_muted(now) == 1
    with store.engine.connect() as conn:
        rows = conn.execute(select(bot.store.alerts.c.destination, bot.store.alerts.c.status)).all()
    assert sorted(rows) == [("slack:#Watch-DPRK", "muted"), ("slack:#other", "pending")]
    # A mute that has ended moves nothing more.
    save(store, [scored(item(2), "s2")], {"dprk": ["slack:#watch-dprk"]})
    assert store.set_aside_muted(now + timedelta(hours=2)) == 0
