"""Digests (and surge notices) through the messages outbox to the fake Slack Web API, with the real
slack_sdk client: posted once with their outbox id in the metadata, retried after a 500 or a 429, found in
the history after an uncertain send instead of posted twice, dead when Slack refuses them for good.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fakes.slack_api import FakeSlack
from support import FIXTURES
from test_digest import DPRK, report, save

from bot.config import load_config
from bot.delivery.messages import MessageReport, deliver_console_messages, deliver_slack_messages
from bot.delivery.slack import RetryPolicy, slack_client
from bot.notices import StoryLine, Surge
from bot.outbox_messages import enqueue_message, get_message, messages_with_status
from bot.service import Service
from bot.store import Store

NOW = datetime(2026, 10, 26, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def slack(clock: Clock) -> Iterator[FakeSlack]:
    # Message timestamps follow the frozen clock, so the history look-up's `oldest` matches them.
    with FakeSlack(clock=lambda: clock.now.timestamp()) as server:
        yield server


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'messages.sqlite'}")
    yield store
    store.close()


def digest_payload(destination: str = "slack:#dprk-watch") -> dict[str, object]:
    raw = json.loads((FIXTURES / "digest" / "digest.json").read_text())
    return {**raw, "destination": destination}


def queue_digest(db: Store, destination: str = "slack:#dprk-watch", key: str = NOW.isoformat()) -> str:
    assert enqueue_message(db, "digest", destination, key, digest_payload(destination), NOW)
    [message] = [m for m in messages_with_status(db, "pending") if m.key == key]
    return message.id


def send(db: Store, slack: FakeSlack, clock: Clock, timeout: int = 5) -> MessageReport:
    return asyncio.run(
        deliver_slack_messages(
            db,
            slack_client("xoxb-test", slack.base_url, timeout=timeout),
            clock,
            RetryPolicy(base=timedelta(seconds=10), cap=timedelta(minutes=5), max_attempts=4),
            rng=random.Random(7),
        )
    )


def test_a_digest_is_posted_once_with_its_outbox_id(db: Store, slack: FakeSlack, clock: Clock) -> None:
    message_id = queue_digest(db)
    report_ = send(db, slack, clock)
    assert (report_.sent, report_.retrying, report_.dead) == (1, 0, 0)
    channel = slack.channel_id("#dprk-watch")
    [posted] = slack.top_level(channel)
    assert posted["metadata"]["event_type"] == "watchfloor_digest"
    assert posted["metadata"]["event_payload"]["message_id"] == message_id
    assert posted["text"].startswith("Watchfloor digest: 7 new stories")
    stored = get_message(db, message_id)
    assert stored is not None and stored.status == "sent" and stored.remote_ref == f"{channel}:{posted['ts']}"
    assert send(db, slack, clock).sent == 0 and len(slack.top_level(channel)) == 1


def test_a_500_is_retried_after_looking_in_the_history_and_posted_once(
    db: Store, slack: FakeSlack, clock: Clock
) -> None:
    message_id = queue_digest(db, "slack:C0RETRY001")
    slack.fail_next("chat.postMessage", 500)
    first = send(db, slack, clock)
    assert (first.sent, first.retrying) == (0, 1)
    stored = get_message(db, message_id)
    assert stored is not None and stored.uncertain and stored.attempts == 1 and stored.status == "pending"
    assert send(db, slack, clock).sent == 0  # backoff: 10–20 s for the first retry, not yet
    clock.now += timedelta(seconds=30)
    second = send(db, slack, clock)
    assert second.sent == 1 and slack.calls_to("conversations.history")  # looked before posting
    assert len(slack.top_level("C0RETRY001")) == 1


def test_a_429_waits_its_retry_after_without_counting(db: Store, slack: FakeSlack, clock: Clock) -> None:
    message_id = queue_digest(db, "slack:C0DIGEST01")
    slack.fail_next("chat.postMessage", 429, retry_after=30)
    assert send(db, slack, clock).retrying == 1
    stored = get_message(db, message_id)
    assert stored is not None and stored.attempts == 0 and stored.last_error == "rate limited (429)"
    clock.now += timedelta(seconds=29)
    assert send(db, slack, clock).sent == 0
    clock.now += timedelta(seconds=2)
    assert send(db, slack, clock).sent == 1 and len(slack.top_level("C0DIGEST01")) == 1


def test_a_send_that_reached_slack_unheard_is_found_not_reposted(
    db: Store, slack: FakeSlack, clock: Clock
) -> None:
    message_id = queue_digest(db, "slack:#ops")
    slack.fail_next("chat.postMessage", hang_seconds=5)  # carried out; the answer comes too late
    first = send(db, slack, clock, timeout=1)
    assert first.retrying == 1
    clock.now += timedelta(minutes=1)
    second = send(db, slack, clock)
    assert (second.sent, second.found_posted) == (0, 1)
    [posted] = slack.top_level(slack.channel_id("#ops"))
    stored = get_message(db, message_id)
    assert stored is not None and stored.status == "sent"
    assert stored.remote_ref == f"{slack.channel_id('#ops')}:{posted['ts']}"


def test_a_crash_between_send_and_record_is_recovered_from_the_history(
    db: Store, slack: FakeSlack, clock: Clock
) -> None:
    message_id = queue_digest(db, "slack:C0CRASH001")
    assert send(db, slack, clock).sent == 1
    with db.transaction() as conn:  # as a crash after chat.postMessage would leave the row
        conn.exec_driver_sql("UPDATE messages SET status = 'pending', uncertain = 1, sent_at = NULL")
    again = send(db, slack, clock)
    assert (again.sent, again.found_posted) == (0, 1) and len(slack.top_level("C0CRASH001")) == 1
    stored = get_message(db, message_id)
    assert stored is not None and stored.status == "sent"


def test_refused_for_good_is_a_dead_letter_and_order_per_destination_holds(
    db: Store, slack: FakeSlack, clock: Clock
) -> None:
    dead_id = queue_digest(db, "slack:C0ARCHIVED", key="k1")
    first_id = queue_digest(db, "slack:C0ORDER001", key="k2")
    second_id = queue_digest(db, "slack:C0ORDER001", key="k3")
    slack.fail_next("chat.postMessage", error="is_archived")
    slack.fail_next("chat.postMessage", 503)
    report_ = send(db, slack, clock)
    assert report_.dead == 1 and report_.retrying == 1 and report_.sent == 0
    [dead] = messages_with_status(db, "dead")
    assert dead.id == dead_id and "is_archived" in (dead.last_error or "")
    # The 503'd digest holds back the one behind it until its retry.
    assert {get_message(db, i).status for i in (first_id, second_id)} == {"pending"}  # type: ignore[union-attr]
    clock.now += timedelta(minutes=1)
    assert send(db, slack, clock).sent == 2
    keys = [m["metadata"]["event_payload"]["message_id"] for m in slack.top_level("C0ORDER001")]
    assert keys == [first_id, second_id]


def surge_payload() -> dict[str, object]:
    story = StoryLine(
        "s1",
        "i1",
        DPRK,
        "Shells reach the front",
        "https://news.example/s1",
        "wire",
        NOW,
        "",
        0.9,
        2,
        ("wire",),
    )
    surge = Surge(DPRK, "DPRK–Russia", NOW - timedelta(hours=6), NOW, 12, 2.0, 6.0, (story,))
    return surge.to_payload()


def test_surges_and_unknown_kinds(db: Store, slack: FakeSlack, clock: Clock) -> None:
    enqueue_message(db, "surge", "slack:C0SURGE001", "w1", surge_payload(), NOW, topic=DPRK)
    enqueue_message(db, "bulletin", "slack:C0OTHER001", "b1", {"text": "?"}, NOW)
    report_ = send(db, slack, clock)
    assert (report_.sent, report_.dead) == (1, 1)
    [posted] = slack.top_level("C0SURGE001")
    assert posted["metadata"]["event_payload"]["kind"] == "surge"
    assert "message_id" in posted["metadata"]["event_payload"]
    [dead] = messages_with_status(db, "dead")
    assert "no Slack rendering for messages of kind 'bulletin'" in (dead.last_error or "")


def test_console_prints_what_it_accepts(db: Store) -> None:
    queue_digest(db, "console", key="c1")
    enqueue_message(db, "surge", "console", "w1", surge_payload(), NOW, topic=DPRK)
    slack_id = queue_digest(db, "slack:#dprk-watch", key="s1")
    out = io.StringIO()
    assert deliver_console_messages(db, NOW, out, accept=lambda d: d == "console") == 2
    assert "══ Digest → console" in out.getvalue() and "SURGE" in out.getvalue()
    assert get_message(db, slack_id).status == "pending"  # type: ignore[union-attr]


def test_the_service_runs_the_digest_job_and_delivers_it_to_slack(
    tmp_path: Path, slack: FakeSlack, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        (FIXTURES / "config" / "minimal.toml").read_text()
        + '\n[[digests]]\ndestination = "slack:#ops"\ncron = "0 8 * * mon-fri"\n'
        + 'timezone = "Europe/London"\ntopics = ["cables"]\n'
    )
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_API_URL", slack.base_url)

    async def scenario() -> None:
        async with Service(path, load_config(path), clock=clock) as service:
            assert service.slack is not None
            service.slack.sleep = lambda _s: asyncio.sleep(0)
            save(service.rt.store, [report("c1", "C1", "wire", NOW - timedelta(hours=3), {"cables": 0.9})])
            assert await service.digest("slack:#ops") is True
            assert await service.digest("slack:#ops") is False  # the same fire time: nothing more
            assert await service.deliver() == 0

    asyncio.run(scenario())
    [posted] = slack.top_level(slack.channel_id("#ops"))
    assert "Title of c1" in json.dumps(posted["blocks"])
