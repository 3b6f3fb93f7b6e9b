"""The store the `/news` tests read: a few items, alerts, a dead letter and a failing source.

Shared by the HTTP tests (test_news_command.py) and the query tests on SQLite and PostgreSQL
(test_news_queries.py). A module, not a conftest: tests/ already has one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from support import FIXTURES

from bot.config import Config, load_config
from bot.decide import decide_alerts
from bot.dedup import item_keys, new_items
from bot.items import Item, ScoredItem, TopicScore, Why
from bot.sources.health import SourceHealth
from bot.store import Store

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
REQUESTS = FIXTURES / "slack_requests"
DPRK = "dprk-russia-military"
CABLES = "undersea-cable-sabotage"
HOSTILE = "<!channel> Pyongyang ships missiles <https://evil.example|click here> & more"


# -- the store ----------------------------------------------------------------------------------------------


def _scored(
    item_id: str, title: str, source: str, published: datetime, topic: str, score: float, text: str = ""
) -> ScoredItem:
    item = Item(
        item_id,
        f"https://news.example/{item_id}",
        title,
        text or f"{title}. Reported by {source}.",
        published,
        source,
    )
    flagged = score >= 0.5
    why = Why(terms=(("north korean", 0.91), ("shells", 0.4)), rules_matched=("korea",)) if flagged else Why()
    return ScoredItem(item, item.id, (TopicScore(topic, score, flagged, why),), f"Summary of {item_id}.")


def fill(store: Store, config: Config) -> None:
    """Five items: three alerted on DPRK (one three days ago, one hostile), one cable alert that went to
    the dead letters, one unflagged old item; a healthy source and a failing one."""
    store.ensure_sources([(s.name, s.url) for s in config.sources])
    batches = [
        (NOW - timedelta(days=3), _scored("i-dprk-old", "Russia receives North Korean rockets", "gazette",
                                          NOW - timedelta(days=3), DPRK, 0.7)),
        (NOW - timedelta(hours=2), _scored("i-dprk-shells", "North Korean artillery shells reach Russian front",
                                           "wire", NOW - timedelta(hours=2), DPRK, 0.91)),
        (NOW - timedelta(hours=1), _scored("i-cable", "Anchor drags across Baltic data cable", "gazette",
                                           NOW - timedelta(hours=1), CABLES, 0.8,
                                           "A Russian-flagged tanker dragged its anchor. Reported by gazette.")),
        (NOW - timedelta(minutes=30), _scored("i-hostile", HOSTILE, "wire", NOW - timedelta(minutes=30),
                                              DPRK, 0.75)),
        (NOW - timedelta(days=10), _scored("i-repair", "Cable repair ship leaves port with artillery escort",
                                           "gazette", NOW - timedelta(days=10), CABLES, 0.2)),
    ]  # fmt: skip
    destinations = {t.id: list(t.destinations) for t in config.topics}
    versions = {DPRK: "dprk0123abcd", CABLES: "cable456efab"}
    for when, s in batches:
        _, keys = new_items([s.item], {}, [item_keys(s.item)])
        with store.transaction() as conn:
            alerts = decide_alerts([s], destinations, set(), when)
            store.save_scored(conn, [s], keys, versions, alerts)
    [cable_alert] = [a for a in store.alerts_for() if a.alert.item_id == "i-cable"]
    store.mark_failed(cable_alert.alert.id, "channel_not_found", None)
    with store.transaction() as conn:
        store.save_health(
            conn,
            [
                ("wire", SourceHealth(last_success=NOW - timedelta(minutes=10)), 200),
                (
                    "broken-feed",
                    SourceHealth(
                        last_success=NOW - timedelta(days=2),
                        last_error="HTTP 503 <b>Service Unavailable</b>",
                        last_error_at=NOW - timedelta(minutes=10),
                        consecutive_failures=3,
                    ),
                    503,
                ),
            ],
            NOW - timedelta(minutes=10),
        )


def news_config() -> Config:
    return load_config(REQUESTS / "config.toml")
