"""Surge alerts: the pure detection rule, the per-window counts in SQL, the job over a real store (SQLite and
PostgreSQL) with a frozen clock, and the rendered Slack and console messages.

The Slack golden file is `tests/fixtures/slack/surge.json`, rendered from `tests/fixtures/surge/surge.json`;
rewrite it with `WATCHFLOOR_UPDATE_GOLDEN=1 pytest tests/test_surge.py` after an intended change.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from support import FIXTURES
from test_render_slack import assert_within_slack_limits, golden, mrkdwn_strings

from bot.config import Config, SurgeConfig, TopicConfig
from bot.dedup import item_keys
from bot.items import Item, ScoredItem, TopicScore, Why
from bot.notices import StoryLine, Surge
from bot.outbox_messages import enqueue_message, pending_messages
from bot.render.console_surge import render_surge
from bot.render.slack_surge import surge_message
from bot.store import Store
from bot.surge import (
    MIN_HISTORY_WINDOWS,
    baseline_counts,
    detect_surge,
    slot_start,
    surge_job,
    topic_histories,
    window_stories,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
W = timedelta(hours=6)
CFG = SurgeConfig()  # 6 h windows, factor 3, at least 5 stories, 14 days of baseline
N_WINDOWS = 56
HOSTILE = "<!channel> Troops <https://evil.example|x> & <@U123> move"


# ---- detection ---------------------------------------------------------------------------------------


def test_the_issues_example_fires_nine_stories_in_6h_against_a_median_of_2() -> None:
    baseline = [1, 2, 3, 2] * 14
    check = detect_surge(baseline, 9, CFG)
    assert check.fired and check.usual == 2.0 and check.factor == 4.5


def test_below_the_factor_or_the_minimum_no_surge() -> None:
    assert not detect_surge([2] * N_WINDOWS, 5, CFG).fired  # 5 < 3 × 2
    assert detect_surge([2] * N_WINDOWS, 6, CFG).fired  # exactly 3 × 2
    # Usual 1 a window: three stories are 3× the rate but fewer than min_stories.
    assert not detect_surge([1] * N_WINDOWS, 4, CFG).fired
    assert detect_surge([1] * N_WINDOWS, 4, replace_cfg(min_stories=4)).fired


def test_a_quiet_topic_surges_on_a_handful_but_not_on_one_story() -> None:
    quiet = [0] * (N_WINDOWS - 3) + [1, 0, 1]
    assert detect_surge(quiet, 1, CFG) == (False, 0.0, 1.0)
    assert not detect_surge(quiet, 4, CFG).fired
    check = detect_surge(quiet, 5, CFG)
    assert check.fired and check.usual == 0.0 and check.factor == 5.0


def test_zero_windows_count_in_the_median() -> None:
    # Busy every other window: the median of a half-empty baseline is what "usual" means here.
    assert detect_surge([0, 4] * 28, 0, CFG).usual == 2.0
    assert detect_surge([0, 0, 0, 4] * 14, 0, CFG).usual == 0.0


def test_a_new_topic_with_no_history_never_surges() -> None:
    assert detect_surge([], 50, CFG) == (False, 0.0, 50.0)
    assert not detect_surge([0] * (MIN_HISTORY_WINDOWS - 1), 50, CFG).fired
    assert detect_surge([0] * MIN_HISTORY_WINDOWS, 50, CFG).fired


def replace_cfg(**changes: object) -> SurgeConfig:
    return SurgeConfig.model_validate({**CFG.model_dump(), **changes})


def test_slot_start_is_aligned_to_the_window() -> None:
    assert slot_start(NOW, W) == NOW  # 12:00 starts a 6 h slot
    assert slot_start(NOW + timedelta(hours=5, minutes=59), W) == NOW
    assert slot_start(NOW + W, W) == NOW + W


# ---- seeding a real store -----------------------------------------------------------------------------

_serial = [0]


def report(
    topic: str,
    published: datetime,
    *,
    story: str | None = None,
    score: float = 0.9,
    flagged: bool = True,
    title: str | None = None,
    source: str = "wire",
) -> ScoredItem:
    _serial[0] += 1
    n = _serial[0]
    item = Item(
        id=f"i{n:06d}",
        url=f"https://news.example/{topic}/{n}",
        title=title or f"{topic} report {n}",
        text=f"Text of report {n}.",
        published=published,
        source=source,
        fetched=published,
    )
    why = Why(terms=(("troops", 0.8),)) if flagged else Why()
    return ScoredItem(
        item=item,
        story=story or f"s{n:06d}",
        scores=(TopicScore(topic, score, flagged, why),),
        summary=f"Summary {n}." if flagged else "",
    )


def save(store: Store, batch: Sequence[ScoredItem]) -> None:
    with store.transaction() as conn:
        keys = {s.item.id: item_keys(s.item) for s in batch}
        store.save_scored(conn, list(batch), keys, {}, [])


def history(topic: str, counts: Sequence[int], end: datetime = NOW) -> list[ScoredItem]:
    """`counts[i-1]` flagged stories in window i before `end` (window 1 the one just before the current),
    plus one unflagged score row in every window: the topic was running all along."""
    out = []
    for i, n in enumerate(counts, start=1):
        middle = end - W * i - timedelta(hours=3)
        out.append(report(topic, middle, score=0.2, flagged=False))
        out += [report(topic, middle + timedelta(minutes=k)) for k in range(n)]
    return out


def burst(topic: str, n: int, end: datetime = NOW, **kw: object) -> list[ScoredItem]:
    """`n` flagged stories in the window ending at `end`, the newest a minute before it."""
    return [report(topic, end - timedelta(minutes=1 + 20 * k), score=0.5 + k / 100, **kw) for k in range(n)]  # type: ignore[arg-type]


def config(**surge: object) -> Config:
    topics = [
        TopicConfig(id="dprk", name="DPRK–Russia <military>", description="d", destinations=["slack:#dprk"]),
        TopicConfig(id="quiet", description="q", destinations=["slack:#dprk"]),
        TopicConfig(id="fresh", description="f", destinations=["slack:#dprk"]),
    ]
    return Config(topics=topics, surge=SurgeConfig.model_validate(surge))


ROUTES = {
    "dprk": ["slack:#dprk", "console", "slack:#muted"],
    "quiet": ["slack:#dprk"],
    "fresh": ["slack:#dprk"],
}
BASELINE = [1, 2, 3, 2] * 14  # median 2


# ---- SQL ------------------------------------------------------------------------------------------------


def test_counts_per_window_are_distinct_stories_by_publication_time(store: Store) -> None:
    seeded = history("dprk", BASELINE)
    # A story with three flagged reports in window 2 counts once there, and again in window 1.
    seeded += [report("dprk", NOW - 2 * W - timedelta(hours=2 + k), story="s-long") for k in range(3)]
    seeded += [report("dprk", NOW - timedelta(hours=7), story="s-long")]
    # Exactly on a boundary: (now − 2W, now − W] is window 1; a report at now − W is in window 1.
    seeded += [report("dprk", NOW - W)]
    # Unflagged reports count as history only; other topics' reports not at all.
    seeded += [report("dprk", NOW - W * 3 - timedelta(hours=1), flagged=False, score=0.3)]
    seeded += history("quiet", [0] * 10)
    save(store, seeded)
    found = topic_histories(store, ["dprk", "quiet", "nothing"], NOW, W, N_WINDOWS)
    expected = {i: n for i, n in enumerate(BASELINE, start=1)}
    expected[1] += 2  # s-long, and the report at now − W
    expected[2] += 1  # s-long, once
    assert dict(found["dprk"].counts) == expected
    assert baseline_counts(found["dprk"], N_WINDOWS) == [expected[i] for i in range(N_WINDOWS, 0, -1)]
    assert found["quiet"].scored_since == 10
    assert baseline_counts(found["quiet"], N_WINDOWS) == [0] * 10
    assert found["nothing"].scored_since is None and baseline_counts(found["nothing"], N_WINDOWS) == []
    assert baseline_counts(None, N_WINDOWS) == []


def test_window_stories_show_each_story_by_its_best_report(store: Store) -> None:
    save(
        store,
        [
            report("dprk", NOW - timedelta(hours=1), story="s-a", score=0.7, source="wire"),
            report("dprk", NOW - timedelta(hours=2), story="s-a", score=0.95, source="desk"),
            report("dprk", NOW - timedelta(hours=3), story="s-b", score=0.8),
            report("dprk", NOW - timedelta(hours=4), story="s-c", score=0.99, flagged=False),
            report("dprk", NOW - W, story="s-old", score=0.99),  # the previous window
            report("dprk", NOW + timedelta(minutes=5), story="s-future", score=0.99),  # after now
        ],
    )
    [a, b] = window_stories(store, ["dprk"], NOW - W, NOW)["dprk"]
    assert (a.story_id, a.score, a.source, a.n_sources, set(a.sources)) == (
        "s-a",
        0.95,
        "desk",
        2,
        {"wire", "desk"},
    )
    assert (b.story_id, b.n_sources) == ("s-b", 1)
    assert a.summary.startswith("Summary") and a.published.tzinfo is not None


# ---- the job ------------------------------------------------------------------------------------------


def surges(store: Store) -> list[tuple[str, Surge]]:
    return [
        (m.destination, Surge.from_payload(m.payload))
        for m in pending_messages(store, "")
        if m.kind == "surge"
    ]


def test_a_surge_goes_once_to_each_destination_and_once_per_window(store: Store) -> None:
    cfg = config()
    save(store, history("dprk", BASELINE) + burst("dprk", 12, title=HOSTILE))
    save(store, history("quiet", [0] * N_WINDOWS) + burst("quiet", 3))  # 3 < min_stories
    save(store, burst("fresh", 20))  # a topic added today: no history, no surge
    store.mute("dprk", "slack:#muted", NOW + timedelta(hours=24), "U0ANA")

    assert surge_job(store, cfg, ROUTES, NOW) == 2
    queued = surges(store)
    assert sorted(d for d, _ in queued) == ["console", "slack:#dprk"]
    surge = queued[0][1]
    assert (surge.topic, surge.title, surge.count, surge.usual, surge.factor) == (
        "dprk",
        "DPRK–Russia <military>",
        12,
        2.0,
        6.0,
    )
    assert (surge.window_start, surge.window_end) == (NOW - W, NOW)
    assert len(surge.stories) == 10  # the ten best of twelve
    assert [s.score for s in surge.stories] == sorted((s.score for s in surge.stories), reverse=True)
    assert all(isinstance(s, StoryLine) and s.topic == "dprk" for s in surge.stories)
    keys = {m.key for m in pending_messages(store, "")}
    assert keys == {f"dprk:{NOW.isoformat()}"}

    # Every run within the window finds the surge still on, and queues nothing.
    for minutes in (0, 10, 60, 6 * 60 - 1):
        assert surge_job(store, cfg, ROUTES, NOW + timedelta(minutes=minutes)) == 0
    # Delivery state does not matter: a sent surge still holds the window.
    assert len(surges(store)) == 2

    # A window later the surge goes on (twelve more stories): one more message per destination.
    later = NOW + W
    save(store, burst("dprk", 12, end=later))
    assert surge_job(store, cfg, ROUTES, later) == 2
    assert len(surges(store)) == 4
    # The mute ended: the muted channel gets the next surge, not a backlog.
    store.unmute("dprk", "slack:#muted")
    save(store, burst("dprk", 12, end=later + W))
    assert surge_job(store, cfg, ROUTES, later + W) == 3


def test_a_mute_by_channel_id_holds_for_a_channel_routed_by_name(store: Store) -> None:
    save(store, history("dprk", BASELINE) + burst("dprk", 12))
    store.note_channel("C0MUTED", "muted", NOW)  # seen in a slash command
    store.mute("dprk", "slack:C0MUTED", NOW + timedelta(hours=24), "U0ANA")  # `/news mute` records the id
    assert surge_job(store, config(), ROUTES, NOW) == 2
    assert sorted(d for d, _ in surges(store)) == ["console", "slack:#dprk"]


def test_a_destination_subscribed_during_a_surge_gets_it_at_once(store: Store) -> None:
    save(store, history("dprk", BASELINE) + burst("dprk", 9))
    assert surge_job(store, config(), {"dprk": ["slack:#dprk"]}, NOW) == 1
    assert (
        surge_job(store, config(), {"dprk": ["slack:#dprk", "slack:#new"]}, NOW + timedelta(minutes=10)) == 1
    )
    assert sorted(d for d, _ in surges(store)) == ["slack:#dprk", "slack:#new"]


def test_the_quiet_time_after_a_surge_spans_slot_boundaries(store: Store) -> None:
    """Seen at 17:00, the surge holds the destination until 23:00, though 18:00 starts a new key slot."""
    first = NOW + timedelta(hours=5)
    save(store, history("dprk", BASELINE, end=first) + burst("dprk", 9, end=first))
    assert surge_job(store, config(), {"dprk": ["slack:#dprk"]}, first) == 1
    save(store, burst("dprk", 9, end=first + timedelta(hours=2)))
    assert surge_job(store, config(), {"dprk": ["slack:#dprk"]}, NOW + W + timedelta(minutes=1)) == 0
    save(store, burst("dprk", 9, end=first + W))
    assert surge_job(store, config(), {"dprk": ["slack:#dprk"]}, first + W) == 1
    assert [m.key for m in pending_messages(store, "")] == [
        f"dprk:{NOW.isoformat()}",
        f"dprk:{(NOW + W).isoformat()}",
    ]


def test_workers_racing_in_one_slot_queue_one_message(store: Store) -> None:
    """Two workers detect the same surge a minute apart; the second one's outbox check lost the race (its
    row is written here first, as the other worker would): the slot key makes the row the same."""
    save(store, history("dprk", BASELINE) + burst("dprk", 9))
    assert surge_job(store, config(), {"dprk": ["slack:#dprk"]}, NOW + timedelta(minutes=1)) == 1
    [message] = pending_messages(store, "")
    again = enqueue_message(store, "surge", "slack:#dprk", message.key, message.payload, NOW, topic="dprk")
    assert again is False and message.key == f"dprk:{NOW.isoformat()}"


def test_no_surge_when_disabled_or_unrouted_or_usual(store: Store) -> None:
    save(store, history("dprk", BASELINE) + burst("dprk", 9))
    assert surge_job(store, config(enabled=False), ROUTES, NOW) == 0
    assert surge_job(store, config(), {"quiet": ["slack:#dprk"]}, NOW) == 0
    assert surge_job(store, config(factor=5), ROUTES, NOW) == 0  # 9 < 5 × 2
    assert surges(store) == []


# ---- rendering ----------------------------------------------------------------------------------------


def fixture_surge() -> Surge:
    return Surge.from_payload(json.loads((FIXTURES / "surge" / "surge.json").read_text()))


def test_slack_surge_matches_golden_file() -> None:
    payload = surge_message(fixture_surge())
    assert_within_slack_limits(payload)
    golden("surge", payload)
    assert payload["metadata"]["event_type"] == "watchfloor_surge"
    assert payload["unfurl_links"] is False
    text = json.dumps(payload, ensure_ascii=False)
    assert "12 stories on DPRK–Russia military cooperation in the last 6h" in text
    assert "usually 2 per 6h" in text and "6.0×" in text and "9 more not listed here" in text


def test_slack_surge_from_the_store_escapes_hostile_titles(store: Store) -> None:
    save(store, history("dprk", BASELINE) + burst("dprk", 9, title=HOSTILE, source="Evil <!here> Outlet"))
    surge_job(store, config(), {"dprk": ["slack:#dprk"]}, NOW)
    [(_, surge)] = surges(store)
    payload = surge_message(surge)
    assert_within_slack_limits(payload)
    strings = list(mrkdwn_strings(payload))
    joined = "\n".join(strings)
    assert "&lt;!channel&gt;" in joined and "&lt;https://evil.example|x&gt;" not in joined
    assert "evil.example∣x&gt;" in joined  # inside our link's label the bar is a look-alike
    assert "DPRK–Russia &lt;military&gt;" in joined and "Evil &lt;!here&gt; Outlet" in joined
    for text in strings:
        assert "<!" not in text.replace("<!date^", "")
        assert "<@" not in text and "<https://evil.example" not in text


def test_slack_surge_stays_within_limits_whatever_the_text() -> None:
    base = fixture_surge()
    line = base.stories[1]
    stories = tuple(
        replace(line, story_id=f"s{i}", title=f"Story {i} " + "<x> & " * 300, source="S&" * 400, n_sources=40)
        for i in range(10)
    )
    huge = replace(base, title="T&<" * 200, stories=stories, count=400, usual=0.0, factor=400.0)
    payload = surge_message(huge)
    assert_within_slack_limits(payload)
    assert "usually none in 6h" in payload["text"]
    empty = surge_message(replace(base, stories=(), count=5))
    assert_within_slack_limits(empty)


def test_console_surge_lists_the_stories_cleanly() -> None:
    surge = fixture_surge()
    text = render_surge(surge, "console")
    assert "SURGE DPRK–Russia military cooperation (dprk-russia-military) → console" in text
    assert "12 stories in the last 6h" in text and "usually 2 per 6h" in text and "…and 9 more" in text
    assert "\u202e" not in text and "North Korean troops seen" in text
