"""Digests: ranking (pure), building from a real store (SQLite and PostgreSQL), the period, and the
scheduled job with a frozen clock across a daylight-saving change."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support import FIXTURES, ROOT

from bot.config import Config, DigestConfig, load_config, parse_config
from bot.dedup import item_keys, new_items
from bot.digest import (
    Candidate,
    build_digest,
    digest_job,
    digest_period,
    digest_trigger,
    last_fire_time,
    rank_stories,
    routed_topics,
)
from bot.items import Item, ScoredItem, TopicScore, Why
from bot.notices import Digest
from bot.outbox_messages import enqueue_message, last_message, mark_message_failed, pending_messages
from bot.service import Service
from bot.store import Store

T0 = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
DPRK = "dprk-russia-military"
CABLES = "undersea-cable-sabotage"

CONFIG = f"""
[classifier]
background = []

[[topics]]
id = "{DPRK}"
name = "DPRK–Russia military cooperation"
description = "North Korean arms or troops going to Russia"
destinations = ["slack:#dprk-watch"]

[[topics]]
id = "{CABLES}"
name = "Undersea cable sabotage"
description = "Damage to undersea cables"
destinations = ["slack:#infra-watch", "console"]
"""


def config(extra: str = "") -> Config:
    return parse_config(CONFIG + extra, Path("config.toml"))


def report(
    item_id: str,
    story: str,
    source: str,
    fetched: datetime,
    scores: dict[str, float],
    title: str = "",
    threshold: float = 0.5,
) -> ScoredItem:
    item = Item(
        item_id,
        f"https://news.example/{item_id}",
        title or f"Title of {item_id}",
        f"Text of {item_id}.",
        fetched - timedelta(minutes=5),
        source,
        fetched=fetched,
    )
    why = Why(terms=(("north korean", 0.9),))
    verdicts = tuple(TopicScore(t, s, s >= threshold, why) for t, s in scores.items())
    return ScoredItem(item, story, verdicts, f"Summary of {item_id}.")


def save(store: Store, reports: Sequence[ScoredItem]) -> None:
    """Each report in its own transaction, as successive poll cycles would store them."""
    for r in reports:
        _, keys = new_items([r.item], {}, [item_keys(r.item)])
        with store.transaction() as conn:
            store.save_scored(conn, [r], keys, {}, [])


# -- ranking (pure) ---------------------------------------------------------------------------------------


def candidate(story: str, score: float, outlets: int, minute: int = 0, topic: str = DPRK) -> Candidate:
    return Candidate(
        topic, story, score, tuple(f"o{n}" for n in range(outlets)), T0 + timedelta(minutes=minute)
    )


def test_rank_weighs_score_and_outlets_and_counts_the_rest() -> None:
    found = rank_stories(
        [
            candidate("lone-strong", 0.99, 1),  # rank 0.99
            candidate("wide", 0.92, 4),  # 0.92 + 0.1 × 2 = 1.12
            candidate("pair", 0.90, 2),  # 1.00
            candidate("weak-but-everywhere", 0.55, 16),  # 0.55 + 0.4 = 0.95
            candidate("tie-later", 0.90, 2, minute=5),  # same rank as "pair", seen later
            candidate("other-topic", 0.99, 9, topic=CABLES),
        ],
        per_topic=4,
    )
    assert [c.story_id for c in found[DPRK].top] == ["wide", "pair", "tie-later", "lone-strong"]
    assert found[DPRK].more == 1
    assert [c.story_id for c in found[CABLES].top] == ["other-topic"] and found[CABLES].more == 0


def test_rank_breaks_equal_rank_by_outlets_then_score() -> None:
    # 0.8 + 0.1 × log2(2) == 0.9 + 0: equal rank, the story with more outlets first.
    found = rank_stories([candidate("one", 0.9, 1), candidate("two", 0.8, 2)], per_topic=5)
    assert [c.story_id for c in found[DPRK].top] == ["two", "one"]


# -- building over a real store -------------------------------------------------------------------------------


def test_build_lists_stories_first_flagged_in_the_period_best_report_first(store: Store) -> None:
    since, until = T0, T0 + timedelta(hours=24)
    save(
        store,
        [
            # Story A: three outlets inside the period; the gazette report scores best.
            report("a1", "A", "wire", since + timedelta(hours=1), {DPRK: 0.7}),
            report("a2", "A", "gazette", since + timedelta(hours=2), {DPRK: 0.95}, title="Best of A"),
            report("a3", "A", "desk", since + timedelta(hours=3), {DPRK: 0.3}),  # not flagged: no pick
            # Story B: flagged before the period: already in an earlier digest, not again.
            report("b1", "B", "wire", since - timedelta(hours=1), {DPRK: 0.9}),
            report("b2", "B", "gazette", since + timedelta(hours=1), {DPRK: 0.9}),
            # Story C: first report not flagged (before), a later one flagged inside: it counts now.
            report("c1", "C", "wire", since - timedelta(hours=2), {DPRK: 0.2}),
            report("c2", "C", "desk", since + timedelta(hours=4), {DPRK: 0.8}),
            # Story D: fetched right at `until` counts; E just after does not.
            report("d1", "D", "wire", until, {DPRK: 0.6, CABLES: 0.9}),
            report("e1", "E", "wire", until + timedelta(seconds=1), {DPRK: 0.99}),
            # Story F: exactly at `since` is the previous period's.
            report("f1", "F", "wire", since, {DPRK: 0.99}),
        ],
    )
    digest = build_digest(store, config(), "slack:#dprk-watch", [DPRK, CABLES], since, until, per_topic=2)
    assert digest.destination == "slack:#dprk-watch" and (digest.since, digest.until) == (since, until)
    [dprk, cables] = digest.topics
    assert dprk.title == "DPRK–Russia military cooperation"
    # A: 0.95 + 0.1 × log2(3) ≈ 1.11; C: 0.8 + 0.1 = 0.9; D: 0.6.
    assert [s.story_id for s in dprk.stories] == ["A", "C"] and dprk.more == 1
    best = dprk.stories[0]
    assert (best.item_id, best.title, best.source, best.score) == ("a2", "Best of A", "gazette", 0.95)
    assert best.url == "https://news.example/a2" and best.summary == "Summary of a2."
    assert best.n_sources == 3 and set(best.sources) == {"wire", "gazette", "desk"}
    assert [s.story_id for s in cables.stories] == ["D"] and cables.more == 0
    # Round trip through the outbox's JSON, as the renderers will see it.
    assert Digest.from_payload(digest.to_payload()) == digest


def test_build_with_nothing_new_is_empty(store: Store) -> None:
    save(store, [report("x1", "X", "wire", T0 - timedelta(days=2), {DPRK: 0.9})])
    digest = build_digest(store, config(), "console", [DPRK], T0, T0 + timedelta(days=1), per_topic=5)
    assert digest.empty and digest.topics == ()


def test_routed_topics_include_subscriptions(store: Store) -> None:
    cfg = config()
    assert routed_topics(cfg, store, ["slack:#DPRK-watch"]) == [DPRK]
    assert routed_topics(cfg, store, ["slack:C0NOTHING"]) == []
    store.subscribe(CABLES, "slack:C0ANALYSTS", "U0ADMIN001", T0)
    assert routed_topics(cfg, store, ["slack:C0ANALYSTS", "slack:#analysts"]) == [CABLES]


def test_period_starts_at_the_last_queued_digests_until(store: Store) -> None:
    now = T0 + timedelta(days=3)
    assert digest_period(store, "slack:#dprk-watch", now) == (now - timedelta(hours=24), now)
    until = T0 + timedelta(days=1, hours=7)
    empty = Digest("slack:#dprk-watch", T0, until, ())
    enqueue_message(store, "digest", "slack:#dprk-watch", until.isoformat(), empty.to_payload(), until)
    assert digest_period(store, "slack:#dprk-watch", now) == (until, now)
    assert digest_period(store, "slack:#other", now) == (now - timedelta(hours=24), now)
    # A later digest that Slack refused for good: the next one covers its period again, nothing is lost.
    later = until + timedelta(days=1)
    refused = Digest("slack:#dprk-watch", until, later, ())
    enqueue_message(store, "digest", "slack:#dprk-watch", later.isoformat(), refused.to_payload(), later)
    assert digest_period(store, "slack:#dprk-watch", now) == (later, now)
    dead = last_message(store, "digest", "slack:#dprk-watch")
    assert dead is not None
    mark_message_failed(store, dead.id, "channel_not_found", None)
    assert digest_period(store, "slack:#dprk-watch", now) == (until, now)


# -- the scheduled job, across the end of British Summer Time ---------------------------------------------------

LONDON_WEEKDAYS = """
[[digests]]
destination = "slack:#dprk-watch"
cron = "0 8 * * mon-fri"
timezone = "Europe/London"
per_topic = 3
"""


def test_weekday_0800_london_fires_at_0700_utc_in_summer_and_0800_in_winter() -> None:
    [digest] = config(LONDON_WEEKDAYS).digests
    trigger = digest_trigger(digest)
    fires, after = [], datetime(2026, 10, 22, 12, 0, tzinfo=UTC)  # Thursday; clocks go back Sunday 25th
    for _ in range(4):
        nxt = trigger.get_next_fire_time(None, after)
        assert nxt is not None
        fires.append(nxt.astimezone(UTC))
        after = nxt + timedelta(seconds=1)
    assert fires == [
        datetime(2026, 10, 23, 7, 0, tzinfo=UTC),  # Friday, BST (UTC+1)
        datetime(2026, 10, 26, 8, 0, tzinfo=UTC),  # Monday, GMT: no weekend digests
        datetime(2026, 10, 27, 8, 0, tzinfo=UTC),
        datetime(2026, 10, 28, 8, 0, tzinfo=UTC),
    ]
    # The job's key is the latest fire at or before its clock, however late the job runs.
    assert last_fire_time(trigger, datetime(2026, 10, 26, 8, 0, tzinfo=UTC)) == fires[1]
    assert last_fire_time(trigger, datetime(2026, 10, 26, 7, 59, tzinfo=UTC)) == fires[0]
    assert last_fire_time(trigger, datetime(2026, 10, 26, 8, 40, tzinfo=UTC)) == fires[1]
    # Spring: the last Sunday of March 2027 moves 08:00 London from 08:00 UTC to 07:00 UTC.
    spring = trigger.get_next_fire_time(None, datetime(2027, 3, 26, 9, 0, tzinfo=UTC))
    assert spring is not None and spring.astimezone(UTC) == datetime(2027, 3, 29, 7, 0, tzinfo=UTC)


def test_digest_job_across_the_dst_change_enqueues_each_fire_once_and_loses_nothing(store: Store) -> None:
    cfg = config(LONDON_WEEKDAYS)
    [digest_cfg] = cfg.digests
    friday = datetime(2026, 10, 23, 7, 0, tzinfo=UTC)  # 08:00 BST
    monday = datetime(2026, 10, 26, 8, 0, tzinfo=UTC)  # 08:00 GMT
    save(
        store,
        [
            report("thu", "THU", "wire", datetime(2026, 10, 22, 18, 0, tzinfo=UTC), {DPRK: 0.9}),
            # 07:30 UTC Friday is 08:30 in London, after Friday's digest: it belongs to Monday's.
            report("fri", "FRI", "wire", datetime(2026, 10, 23, 7, 30, tzinfo=UTC), {DPRK: 0.8}),
            report("sat", "SAT", "gazette", datetime(2026, 10, 24, 11, 0, tzinfo=UTC), {DPRK: 0.7}),
            # 07:30 UTC Monday is 07:30 in London (GMT now), before Monday's digest.
            report("mon", "MON", "desk", datetime(2026, 10, 26, 7, 30, tzinfo=UTC), {DPRK: 0.6}),
            report(
                "cab", "CAB", "desk", datetime(2026, 10, 24, 9, 0, tzinfo=UTC), {CABLES: 0.9}
            ),  # not routed
        ],
    )
    # Friday's fire, run on time and again by a second worker a few seconds later: queued once.
    assert digest_job(store, cfg, digest_cfg, friday) is True
    assert digest_job(store, cfg, digest_cfg, friday + timedelta(seconds=7)) is False
    # Monday's fire, run late (a restart): still keyed by its fire time, covering Friday 07:00 → Monday 08:00.
    assert digest_job(store, cfg, digest_cfg, monday + timedelta(minutes=3)) is True
    assert digest_job(store, cfg, digest_cfg, monday + timedelta(minutes=4)) is False
    queued = pending_messages(store, "slack:")
    assert [m.key for m in queued] == [friday.isoformat(), monday.isoformat()]
    first, second = (Digest.from_payload(m.payload) for m in queued)
    assert first.until == friday and first.since == friday - timedelta(hours=24)
    assert [s.story_id for t in first.topics for s in t.stories] == ["THU"]
    assert (second.since, second.until) == (friday, monday)
    assert [s.story_id for t in second.topics for s in t.stories] == ["FRI", "SAT", "MON"]


def test_nothing_new_queues_nothing_and_keeps_the_period_open(store: Store) -> None:
    cfg = config(LONDON_WEEKDAYS)
    [digest_cfg] = cfg.digests
    tuesday = datetime(2026, 10, 27, 8, 0, tzinfo=UTC)
    wednesday = tuesday + timedelta(days=1)
    save(store, [report("old", "OLD", "wire", tuesday - timedelta(hours=2), {DPRK: 0.9})])
    assert digest_job(store, cfg, digest_cfg, tuesday) is True
    assert digest_job(store, cfg, digest_cfg, wednesday) is False  # nothing since Tuesday 08:00
    assert len(pending_messages(store, "slack:")) == 1
    # A story arriving Wednesday after the empty run, and one Wednesday night: Thursday's digest has both.
    save(
        store,
        [
            report("wed", "WED", "wire", wednesday + timedelta(hours=3), {DPRK: 0.9}),
            report("night", "NIGHT", "wire", wednesday + timedelta(hours=14), {DPRK: 0.8}),
        ],
    )
    thursday = wednesday + timedelta(days=1)
    assert digest_job(store, cfg, digest_cfg, thursday) is True
    last = last_message(store, "digest", "slack:#dprk-watch")
    assert last is not None
    digest = Digest.from_payload(last.payload)
    assert digest.since == tuesday and digest.until == thursday
    assert [s.story_id for t in digest.topics for s in t.stories] == ["WED", "NIGHT"]


def test_explicit_topics_override_routing(store: Store) -> None:
    extra = (
        f'\n[[digests]]\ndestination = "console"\ncron = "0 18 * * *"\ntopics = ["{DPRK}"]\nper_topic = 1\n'
    )
    cfg = config(extra)
    [digest_cfg] = cfg.digests
    evening = datetime(2026, 10, 20, 18, 0, tzinfo=UTC)
    save(
        store,
        [
            report("d1", "D1", "wire", evening - timedelta(hours=1), {DPRK: 0.9}),
            report("d2", "D2", "wire", evening - timedelta(hours=2), {DPRK: 0.7}),
            report("c1", "C1", "wire", evening - timedelta(hours=1), {CABLES: 0.9}),  # routed to console
        ],
    )
    assert digest_job(store, cfg, digest_cfg, evening + timedelta(minutes=1)) is True
    [queued] = pending_messages(store, "console")
    digest = Digest.from_payload(queued.payload)
    [only] = digest.topics
    assert only.topic == DPRK and [s.story_id for s in only.stories] == ["D1"] and only.more == 1


# -- scheduling in the service ------------------------------------------------------------------------------


def test_service_schedules_one_cron_job_per_digest_and_follows_reloads(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    base = (FIXTURES / "config" / "minimal.toml").read_text()
    path.write_text(
        base
        + '\n[[digests]]\ndestination = "console"\ncron = "0 8 * * mon-fri"\ntimezone = "Europe/London"\n'
        + '\n[[digests]]\ndestination = "console"\ncron = "0 18 * * *"\n'
    )
    now = datetime(2026, 10, 23, 12, 0, tzinfo=UTC)

    async def scenario() -> None:
        async with Service(path, load_config(path), clock=lambda: now) as service:
            service.schedule()
            service.scheduler.start(paused=True)  # next run times computed, nothing fires
            jobs = {j.id: j for j in service.scheduler.get_jobs() if j.id.startswith("digest:")}
            assert set(jobs) == {"digest:console", "digest:console#2"}
            morning = jobs["digest:console"].next_run_time
            assert morning is not None and morning.astimezone(UTC) > now
            assert str(jobs["digest:console"].trigger.timezone) == "Europe/London"

            # Reload: the evening digest leaves, the morning one moves to 07:30.
            path.write_text(
                base + '\n[[digests]]\ndestination = "console"\ncron = "30 7 * * mon-fri"\n'
                'timezone = "Europe/London"\n'
            )
            assert isinstance(await service.check_config(), Config)
            jobs = {j.id: j for j in service.scheduler.get_jobs() if j.id.startswith("digest:")}
            assert set(jobs) == {"digest:console"}
            fire = jobs["digest:console"].next_run_time
            assert fire is not None and (fire.hour, fire.minute) == (7, 30)
            assert await service.digest("console") is False  # nothing stored: nothing queued
            assert await service.digest("gone") is False

    asyncio.run(scenario())


def test_shipped_config_documents_digests_commented_out(shipped_config: Config) -> None:
    # The example is commented out, so the demo is unchanged; uncommented, it must validate as shown.
    assert shipped_config.digests == []
    raw = (ROOT / "config.toml").read_text(encoding="utf-8")
    block = raw[raw.index("# [[digests]]") :].split("\n\n")[0]
    example = "\n".join(line.removeprefix("# ") for line in block.splitlines() if line.startswith("# "))
    [digest] = config(example).digests
    assert isinstance(digest, DigestConfig) and digest.timezone == "Europe/London"


def test_readme_digest_example_validates() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Digests") :]
    example = section[section.index("```toml\n") + len("```toml\n") : section.index("```\n", 8)]
    [digest] = config(example).digests
    assert (digest.cron, digest.timezone, digest.per_topic) == ("0 8 * * mon-fri", "Europe/London", 5)
