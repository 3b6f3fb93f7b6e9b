"""Outbox delivery to Slack through the real slack_sdk AsyncWebClient and a local fake Slack Web API.

Retries, 429 Retry-After, dead letters, per-channel order, and the crash between send and record: the
message is found again by its metadata instead of being posted twice.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fakes.slack_api import FakeSlack
from support import FIXTURES, ROOT

from bot.config import load_config
from bot.decide import decide_alerts
from bot.dedup import item_keys, new_items
from bot.delivery.slack import RetryPolicy, SlackDelivery, slack_client
from bot.feed_server import FeedServer
from bot.items import Item, ScoredItem, TopicScore, Why
from bot.service import Service
from bot.store import Store

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def slack(fake: FakeSlack) -> FakeSlack:
    fake.reset()
    return fake


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'outbox.sqlite'}")
    yield store
    store.close()


def add_alerts(store: Store, channel_titles: list[tuple[str, str]], first: int = 0) -> list[str]:
    """Store one flagged item per (channel, title) and its alert; return the alert ids in order."""
    scored = []
    for n, (_, title) in enumerate(channel_titles, start=first):
        item = Item(
            f"i{n}",
            f"https://news.example/{n}",
            title,
            f"Summary text {n}.",
            NOW + timedelta(minutes=n),
            "wire",
        )
        why = Why(terms=(("north korean", 0.9),), rules_matched=("north korea",))
        scored.append(ScoredItem(item, item.id, (TopicScore(f"t{n}", 0.9, True, why),), f"Summary {n}."))
    _, keys = new_items([s.item for s in scored], {}, [item_keys(s.item) for s in scored])
    ids = []
    with store.transaction() as conn:
        for k, (channel, _) in enumerate(channel_titles):
            n = first + k
            alerts = decide_alerts(
                [scored[k]], {f"t{n}": [f"slack:{channel}"]}, set(), NOW + timedelta(seconds=n)
            )
            ids += [a.id for a in alerts]
            store.save_scored(conn, [scored[k]], {scored[k].item.id: keys[scored[k].item.id]}, {}, alerts)
    return ids


class Clock:
    def __init__(self) -> None:
        self.now = NOW + timedelta(minutes=5)

    def __call__(self) -> datetime:
        return self.now


def delivery(store: Store, slack: FakeSlack, clock: Clock, timeout: int = 5) -> SlackDelivery:
    async def no_sleep(_: float) -> None:
        return None

    return SlackDelivery(
        client=slack_client("xoxb-test", slack.base_url, timeout=timeout),
        store=store,
        topic_title=lambda t: f"Topic {t}",
        clock=clock,
        policy=RetryPolicy(base=timedelta(seconds=10), cap=timedelta(minutes=5), max_attempts=4),
        rng=random.Random(7),
        sleep=no_sleep,
    )


def test_alerts_are_posted_with_metadata_and_recorded(db: Store, slack: FakeSlack) -> None:
    ids = add_alerts(db, [("#dprk-watch", "First"), ("#dprk-watch", "Second"), ("C0MARITIME", "Third")])
    clock = Clock()
    report = asyncio.run(delivery(db, slack, clock).deliver_due())
    assert report.sent == 3
    channel = slack.channel_id("#dprk-watch")
    posted = slack.top_level(channel)
    assert [m["metadata"]["event_payload"]["alert_id"] for m in posted] == ids[:2]
    assert [a.remote_ref for a in db.alerts_for("sent")] == [
        f"{channel}:{posted[0]['ts']}",
        f"{channel}:{posted[1]['ts']}",
        f"C0MARITIME:{slack.top_level('C0MARITIME')[0]['ts']}",
    ]
    assert asyncio.run(delivery(db, slack, clock).deliver_due()).sent == 0  # nothing twice


def test_429_waits_its_retry_after_without_counting_an_attempt(db: Store, slack: FakeSlack) -> None:
    [alert_id] = add_alerts(db, [("C0DPRK0001", "Rate limited")])
    clock = Clock()
    slack.fail_next("chat.postMessage", 429, retry_after=30)
    first = asyncio.run(delivery(db, slack, clock).deliver_due())
    assert (first.sent, first.retrying) == (0, 1)
    [pending] = db.alerts_for("pending")
    assert pending.attempts == 0 and pending.last_error == "rate limited (429)"
    clock.now += timedelta(seconds=29)
    assert asyncio.run(delivery(db, slack, clock).deliver_due()).sent == 0  # not before Retry-After
    clock.now += timedelta(seconds=2)
    assert asyncio.run(delivery(db, slack, clock).deliver_due()).sent == 1
    assert len(slack.top_level("C0DPRK0001")) == 1 and db.alerts_for("sent")[0].alert.id == alert_id


def test_5xx_backs_off_then_delivers_and_a_permanent_error_is_a_dead_letter(
    db: Store, slack: FakeSlack
) -> None:
    add_alerts(db, [("C0AAAAAAAA", "Flaky"), ("C0BBBBBBBB", "Refused")])
    clock = Clock()
    slack.fail_next("chat.postMessage", 500)
    slack.fail_next("chat.postMessage", error="is_archived")
    report = asyncio.run(delivery(db, slack, clock).deliver_due())
    assert report.dead == 1 and report.retrying == 1
    [dead] = db.alerts_for("dead")
    assert dead.title == "Refused" and "is_archived" in (dead.last_error or "")
    clock.now += timedelta(minutes=1)  # backoff for attempt 1 is 10–20 s
    assert asyncio.run(delivery(db, slack, clock).deliver_due()).sent == 1
    # The 500 might have posted: the retry looked in the history first (none there), then posted once.
    assert len(slack.top_level("C0AAAAAAAA")) == 1
    assert any(method == "conversations.history" for method, _ in slack.calls)


def test_a_send_that_reached_slack_unheard_is_found_not_reposted(db: Store, slack: FakeSlack) -> None:
    [alert_id] = add_alerts(db, [("#ops", "Timed out but posted")])
    clock = Clock()
    slack.fail_next("chat.postMessage", hang_seconds=5)  # carried out; the answer never arrives in time
    first = asyncio.run(delivery(db, slack, clock, timeout=1).deliver_due())
    assert first.retrying == 1
    [pending] = db.alerts_for("pending")
    assert pending.uncertain and "network" in (pending.last_error or "")
    clock.now += timedelta(minutes=1)
    second = asyncio.run(delivery(db, slack, clock).deliver_due())
    assert (second.sent, second.found_posted) == (0, 1)
    posted = slack.top_level(slack.channel_id("#ops"))
    assert len(posted) == 1 and posted[0]["metadata"]["event_payload"]["alert_id"] == alert_id
    assert db.alerts_for("sent")[0].remote_ref == f"{slack.channel_id('#ops')}:{posted[0]['ts']}"


def test_a_crash_after_marking_uncertain_is_recovered_by_the_history(db: Store, slack: FakeSlack) -> None:
    """The process died between chat.postMessage and mark_sent: the row says uncertain, Slack has it."""
    [alert_id] = add_alerts(db, [("C0CRASH001", "Crash mid-delivery")])
    clock = Clock()
    asyncio.run(delivery(db, slack, clock).deliver_due())
    # Put the row back as a crash would have left it: pending and uncertain, with the message in Slack.
    with db.transaction() as conn:
        conn.exec_driver_sql("UPDATE alerts SET status = 'pending', uncertain = 1, sent_at = NULL")
    report = asyncio.run(delivery(db, slack, clock).deliver_due())
    assert report.found_posted == 1 and len(slack.top_level("C0CRASH001")) == 1
    assert db.alerts_for("sent")[0].alert.id == alert_id


def test_slack_down_for_an_hour_then_everything_arrives_in_order_per_channel(
    db: Store, slack: FakeSlack
) -> None:
    titles = [("C0ORDER001", f"A{n}") for n in range(4)] + [("C0ORDER002", f"B{n}") for n in range(3)]
    add_alerts(db, titles)
    clock = Clock()
    slack.fail_next("chat.postMessage", 503, times=40)
    policy = RetryPolicy(base=timedelta(seconds=10), cap=timedelta(minutes=5), max_attempts=50)
    runs = 0
    while db.alerts_for("pending") and runs < 200:
        d = delivery(db, slack, clock)
        d.policy = policy
        asyncio.run(d.deliver_due())
        clock.now += timedelta(minutes=2)
        runs += 1
    assert not db.alerts_for("pending") and not db.alerts_for("dead")
    got_a = [
        json.loads(m["blocks"][-1]["elements"][0]["value"])["topic"] for m in slack.top_level("C0ORDER001")
    ]
    got_b = [
        json.loads(m["blocks"][-1]["elements"][0]["value"])["topic"] for m in slack.top_level("C0ORDER002")
    ]
    assert got_a == ["t0", "t1", "t2", "t3"] and got_b == ["t4", "t5", "t6"]


def test_pacing_one_message_per_second_per_channel(db: Store, slack: FakeSlack) -> None:
    add_alerts(db, [("C0PACE0001", f"P{n}") for n in range(3)])
    waits: list[float] = []
    elapsed = [100.0]  # a monotonic clock that moves only when the delivery sleeps

    async def record(seconds: float) -> None:
        waits.append(seconds)
        elapsed[0] += seconds

    d = delivery(db, slack, Clock())
    d.sleep = record
    d.monotonic = lambda: elapsed[0]
    asyncio.run(d.deliver_due())
    assert waits == [1.0, 1.0] and len(slack.top_level("C0PACE0001")) == 3


def test_end_to_end_feeds_to_fake_slack_with_hostile_titles_escaped(
    tmp_path: Path, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    # Double-escaped in the XML, so after parsing and HTML stripping the title still holds the markup as
    # text: the worst case for Slack, which must show it, not act on it.
    hostile = (
        (FIXTURES / "poll" / "wire.xml")
        .read_text()
        .replace(
            "Anchor-dragging ship suspected of cutting Baltic data cable",
            "&amp;lt;!channel&amp;gt; Anchor-dragging ship cut Baltic data cable "
            "&amp;lt;https://evil.example|click here&amp;gt; &amp;amp; more",
        )
    )
    (feeds / "wire.xml").write_text(hostile)
    shutil.copy(ROOT / "examples" / "background.jsonl", tmp_path / "background.jsonl")
    shutil.copy(ROOT / "examples" / "news_labelled.jsonl", tmp_path / "cables.jsonl")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_API_URL", slack.base_url)
    with FeedServer(feeds) as server:
        raw = (FIXTURES / "config" / "poll.toml").read_text()
        raw = raw.replace("http://127.0.0.1:1/wire.xml", server.url("wire.xml"))
        raw = raw.replace('destinations = ["console"]', 'destinations = ["slack:#infra-watch"]')
        path = tmp_path / "config.toml"
        path.write_text(raw)

        async def scenario() -> None:
            async with Service(path, load_config(path), clock=lambda: NOW) as service:
                assert service.slack is not None
                service.slack.sleep = lambda _s: asyncio.sleep(0)
                report = await service.poll_due()
                assert len(report.ingest.alerts) == 1
                assert await service.deliver() == 1

        asyncio.run(scenario())
    [message] = slack.top_level(slack.channel_id("#infra-watch"))
    body = json.dumps(message["blocks"]) + message["text"]
    assert "<!channel>" not in body and "<https://evil.example" not in body
    assert "&lt;!channel&gt;" in body and "&amp;" in body
    assert message["metadata"]["event_type"] == "watchfloor_alert"


def test_a_second_outlet_goes_into_the_thread_and_updates_the_sources_line(
    tmp_path: Path, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    shutil.copy(FIXTURES / "poll" / "wire.xml", feeds / "wire.xml")
    shutil.copy(ROOT / "examples" / "background.jsonl", tmp_path / "background.jsonl")
    shutil.copy(ROOT / "examples" / "news_labelled.jsonl", tmp_path / "cables.jsonl")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_API_URL", slack.base_url)
    clock = Clock()
    clock.now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    with FeedServer(feeds) as server:
        raw = (FIXTURES / "config" / "poll.toml").read_text()
        raw = raw.replace("http://127.0.0.1:1/wire.xml", server.url("wire.xml"))
        raw += f'\n[[sources]]\nname = "desk"\nurl = "{server.url("desk.atom")}"\n'
        raw = raw.replace('destinations = ["console"]', 'destinations = ["slack:#infra-watch"]')
        path = tmp_path / "config.toml"
        path.write_text(raw)

        async def scenario() -> None:
            async with Service(path, load_config(path), clock=clock) as service:
                assert service.slack is not None
                service.slack.sleep = lambda _s: asyncio.sleep(0)
                await service.poll_due()  # desk.atom is not there yet: 404, backs off
                await service.deliver()
                shutil.copy(FIXTURES / "poll" / "desk.atom", feeds / "desk.atom")
                clock.now += timedelta(hours=1)
                second = await service.poll_due()
                assert second.ingest.alerts == [] and len(second.ingest.followups) == 1
                await service.deliver()

        asyncio.run(scenario())
    channel = slack.channel_id("#infra-watch")
    [parent] = slack.top_level(channel)
    [reply] = slack.thread(channel, parent["ts"])
    assert "Finnish investigators board tanker" in json.dumps(reply["blocks"])
    assert reply["metadata"]["event_type"] == "watchfloor_followup"
    assert parent.get("edited") and "2 sources" in json.dumps(parent["blocks"])


def test_flood_control_caps_a_topic_per_channel_and_rolls_up_the_rest(db: Store, slack: FakeSlack) -> None:
    # Seven stories of one topic for one channel within the hour, cap 3.
    stories = [("C0FLOOD001", f"Story {n}") for n in range(7)]
    scored_ids = add_alerts(db, stories)
    with db.transaction() as conn:  # one topic for all (add_alerts gives each its own)
        conn.exec_driver_sql("UPDATE alerts SET topic = 'flood'")
    clock = Clock()
    d = delivery(db, slack, clock)
    d.hourly_cap = 3
    d.rollup_delay = timedelta(minutes=10)
    first = asyncio.run(d.deliver_due())
    assert (first.sent, first.held, first.rolled_up) == (3, 4, 0)
    assert len(slack.top_level("C0FLOOD001")) == 3
    clock.now += timedelta(minutes=11)  # the held stories have gathered: one roll-up
    second = asyncio.run(d.deliver_due())
    assert second.rolled_up == 4
    messages = slack.top_level("C0FLOOD001")
    assert len(messages) == 4 and messages[-1]["text"].startswith("4 more stories on")
    assert set(messages[-1]["metadata"]["event_payload"]["alert_ids"]) == set(scored_ids[3:])
    # More stories within the hour wait for the next hour's roll-up.
    more = add_alerts(db, [("C0FLOOD001", "Story late")], first=100)
    with db.transaction() as conn:
        conn.exec_driver_sql("UPDATE alerts SET topic = 'flood'")
    clock.now += timedelta(minutes=15)
    third = asyncio.run(d.deliver_due())
    assert third.held == 1 and third.rolled_up == 0
    clock.now += timedelta(hours=1)
    assert asyncio.run(d.deliver_due()).rolled_up == 1
    assert more[0] in {a.alert.id for a in db.alerts_for("sent")}
