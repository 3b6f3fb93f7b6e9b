"""Outbox delivery to Teams through the real httpx client and a local fake Workflows webhook (127.0.0.1).

Success, 429 then success (not counted), 5xx backoff, 4xx dead letter, a missing webhook variable (kept,
never lost), order per destination, a timeout after the request went out (at least once), feedback links
on the cards, follow-ups, digests and surge notices from the messages outbox, flood control (the hourly cap,
one roll-up card an hour, mutes); and once through the `Service`, from a local feed to a card.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes.teams_webhook import FakeTeams
from support import FIXTURES, ROOT
from test_teams_cards import check, story, texts

from bot.config import Config, load_config
from bot.decide import decide_alerts
from bot.dedup import item_keys, new_items
from bot.delivery.slack import RetryPolicy
from bot.delivery.teams import TeamsDelivery, TeamsReport, classify_response, teams_client
from bot.feed_server import FeedServer
from bot.feedback_links import read_token, token_of_path
from bot.items import Followup, Item, ScoredItem, TopicScore, Why
from bot.notices import Digest, DigestTopic, Surge
from bot.outbox_messages import enqueue_message, get_message
from bot.service import Service
from bot.store import Store

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SECRET = "delivery-link-secret-0123456789"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTeams]:
    with FakeTeams() as server:
        yield server


@pytest.fixture
def teams(fake: FakeTeams) -> FakeTeams:
    fake.reset()
    return fake


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path / 'teams.sqlite'}")
    yield store
    store.close()


def config(public_url: str | None = None, hourly_cap: int = 10, rollup_delay: str = "10m") -> Config:
    return Config.model_validate(
        {
            "web": {"public_url": public_url},
            "slack": {"hourly_cap": hourly_cap, "rollup_delay": rollup_delay},
            "teams": [
                {"name": "ops", "webhook_env": "TEAMS_WEBHOOK_OPS"},
                {"name": "desk", "webhook_env": "TEAMS_WEBHOOK_DESK"},
            ],
        }
    )


class Clock:
    def __init__(self) -> None:
        self.now = NOW + timedelta(minutes=5)

    def __call__(self) -> datetime:
        return self.now


def add_alerts(store: Store, destination_titles: list[tuple[str, str]], first: int = 0) -> list[str]:
    """One flagged item per (destination, title) and its alert, each a minute after the last; the ids."""
    ids = []
    for k, (destination, title) in enumerate(destination_titles):
        n = first + k
        item = Item(
            f"i{n}", f"https://news.example/{n}", title, f"Text {n}.", NOW + timedelta(minutes=n), "wire"
        )
        why = Why(terms=(("north korean", 0.9),), rules_matched=("korea",))
        scored = ScoredItem(item, item.id, (TopicScore(f"t{n}", 0.9, True, why),), f"Summary {n}.")
        _, keys = new_items([item], {}, [item_keys(item)])
        with store.transaction() as conn:
            alerts = decide_alerts([scored], {f"t{n}": [destination]}, set(), NOW + timedelta(seconds=n))
            store.save_scored(conn, [scored], keys, {}, alerts)
        ids += [a.id for a in alerts]
    return ids


def delivery(
    store: Store,
    teams: FakeTeams,
    clock: Clock,
    environ: dict[str, str] | None = None,
    cfg: Config | None = None,
) -> TeamsDelivery:
    async def no_sleep(_: float) -> None:
        return None

    env = {"TEAMS_WEBHOOK_OPS": teams.url("ops"), "TEAMS_WEBHOOK_DESK": teams.url("desk")}
    settled = cfg or config()
    return TeamsDelivery(
        client=teams_client(),
        store=store,
        config=lambda: settled,
        topic_title=lambda t: f"Topic {t}",
        clock=clock,
        policy=RetryPolicy(base=timedelta(seconds=10), cap=timedelta(minutes=5), max_attempts=4),
        environ=env if environ is None else environ,
        rng=random.Random(7),
        sleep=no_sleep,
    )


def drain(d: TeamsDelivery, timeout: float = 5.0) -> TeamsReport:
    """One delivery run in a fresh event loop, with a fresh client (as the service's loop owns its own)."""

    async def run() -> TeamsReport:
        d.client = teams_client(timeout)
        try:
            return await d.deliver_due()
        finally:
            await d.aclose()

    return asyncio.run(run())


def titles(posts: list[dict[str, Any]]) -> list[str]:
    return [check(p)["body"][0]["text"].split("](")[0].lstrip("[") for p in posts]


def test_alerts_are_posted_in_order_recorded_and_valid(db: Store, teams: FakeTeams) -> None:
    ids = add_alerts(db, [("teams:ops", "First"), ("teams:ops", "Second"), ("teams:desk", "Third")])
    clock = Clock()
    d = delivery(db, teams, clock)
    report = drain(d)
    assert report.sent == 3 and report.retrying == report.dead == 0
    assert titles(teams.posts["ops"]) == ["First", "Second"] and titles(teams.posts["desk"]) == ["Third"]
    sent = {a.alert.id: a for a in db.alerts_for("sent")}
    assert set(sent) == set(ids)
    assert [sent[i].remote_ref for i in ids] == [
        "teams:ops:run-ops-1",
        "teams:ops:run-ops-2",
        "teams:desk:run-desk-1",
    ]
    assert drain(d).sent == 0 and len(teams.calls) == 3  # nothing twice


def test_429_waits_its_retry_after_without_counting_an_attempt(db: Store, teams: FakeTeams) -> None:
    [alert_id] = add_alerts(db, [("teams:ops", "Rate limited")])
    clock = Clock()
    d = delivery(db, teams, clock)
    teams.fail_next("ops", 429, retry_after=30)
    first = drain(d)
    assert (first.sent, first.retrying) == (0, 1)
    [pending] = db.alerts_for("pending")
    assert pending.attempts == 0 and pending.last_error == "rate limited (429)"
    assert pending.next_attempt == clock.now + timedelta(seconds=30)
    clock.now += timedelta(seconds=29)
    assert drain(d).sent == 0 and len(teams.calls) == 1  # not before Retry-After
    clock.now += timedelta(seconds=2)
    assert drain(d).sent == 1
    assert [a.alert.id for a in db.alerts_for("sent")] == [alert_id] and len(teams.posts["ops"]) == 1


def test_5xx_backs_off_then_delivers_and_4xx_is_a_dead_letter_at_once(db: Store, teams: FakeTeams) -> None:
    flaky, refused, after = add_alerts(
        db, [("teams:ops", "Flaky"), ("teams:desk", "Refused"), ("teams:desk", "After the refused one")]
    )
    clock = Clock()
    d = delivery(db, teams, clock)
    teams.fail_next("ops", 500)
    teams.fail_next("desk", 400)
    report = drain(d)
    assert (report.sent, report.retrying, report.dead) == (1, 1, 1)
    [dead] = db.alerts_for("dead")
    assert dead.alert.id == refused and dead.last_error is not None and "HTTP 400" in dead.last_error
    assert titles(teams.posts["desk"]) == ["After the refused one"]  # a dead letter holds nothing back
    [waiting] = db.alerts_for("pending")
    assert waiting.alert.id == flaky and waiting.attempts == 1 and waiting.uncertain  # a 5xx may have posted
    assert waiting.next_attempt is not None
    assert clock.now + timedelta(seconds=10) <= waiting.next_attempt <= clock.now + timedelta(seconds=20)
    clock.now = waiting.next_attempt
    assert drain(d).sent == 1
    assert {a.alert.id for a in db.alerts_for("sent")} == {flaky, after}


def test_repeated_5xx_become_a_dead_letter_after_max_attempts(db: Store, teams: FakeTeams) -> None:
    add_alerts(db, [("teams:ops", "Always failing")])
    clock = Clock()
    d = delivery(db, teams, clock)
    for _ in range(4):
        teams.fail_next("ops", 503)
        drain(d)
        clock.now += timedelta(minutes=10)
    [dead] = db.alerts_for("dead")
    assert dead.attempts == 4 and "gave up after 4 attempts" in (dead.last_error or "")


def test_order_per_destination_is_kept_while_one_waits(db: Store, teams: FakeTeams) -> None:
    add_alerts(db, [("teams:ops", "A"), ("teams:ops", "B"), ("teams:desk", "C")])
    clock = Clock()
    d = delivery(db, teams, clock)
    teams.fail_next("ops", 502)
    drain(d)
    assert "ops" not in teams.posts and titles(teams.posts["desk"]) == ["C"]
    assert [c for c in teams.calls if c[0] == "ops"] == [("ops", 502)]  # B was not tried behind A
    clock.now += timedelta(seconds=5)
    drain(d)  # A's retry is not due yet: B still waits
    assert "ops" not in teams.posts
    clock.now += timedelta(minutes=1)
    drain(d)
    assert titles(teams.posts["ops"]) == ["A", "B"]


def test_a_missing_webhook_variable_keeps_everything_pending_and_says_why(
    db: Store, teams: FakeTeams, caplog: pytest.LogCaptureFixture
) -> None:
    [alert_id] = add_alerts(db, [("teams:ops", "Waiting for its webhook")])
    ghost = add_alerts(db, [("teams:ghost", "Routed to a destination no longer configured")], first=1)
    digest = Digest("teams:ops", NOW - timedelta(days=1), NOW, (DigestTopic("t", "Topic", (story(1),)),))
    enqueue_message(db, "digest", "teams:ops", "2026-11-27T08:00", digest.to_payload(), NOW)
    clock = Clock()
    d = delivery(db, teams, clock, environ={"TEAMS_WEBHOOK_DESK": teams.url("desk")})
    with caplog.at_level(logging.WARNING, logger="bot.delivery.teams"):
        first = drain(d)
        clock.now += timedelta(minutes=2)
        drain(d)
    assert first.waiting == 3 and first.sent == 0 and teams.calls == []
    pending = {a.alert.id: a for a in db.alerts_for("pending")}
    assert pending[alert_id].last_error == "TEAMS_WEBHOOK_OPS is not set" and pending[alert_id].attempts == 0
    assert pending[ghost[0]].last_error == 'no [[teams]] destination named "ghost" in config.toml'
    [message] = [m for m in [get_message(db, mid) for mid in _message_ids(db)] if m is not None]
    assert message.status == "pending" and message.last_error == "TEAMS_WEBHOOK_OPS is not set"
    warnings = [r.getMessage() for r in caplog.records if "TEAMS_WEBHOOK_OPS is not set" in r.getMessage()]
    assert len(warnings) == 1 and "destination=ops" in warnings[0]  # once, naming the destination

    d.environ = {"TEAMS_WEBHOOK_OPS": teams.url("ops")}  # set it: nothing was lost
    clock.now += timedelta(minutes=2)
    report = drain(d)
    assert (report.sent, report.messages) == (1, 1)
    assert titles(teams.posts["ops"])[0] == "Waiting for its webhook"
    assert teams.url("ops") not in caplog.text


def _message_ids(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql("SELECT id FROM messages")]


def test_a_timeout_after_the_request_went_out_is_uncertain_and_resent(db: Store, teams: FakeTeams) -> None:
    """Teams has no history to look in: the card may already be in the channel, and goes again (at least
    once); the uncertain flag says so meanwhile."""
    add_alerts(db, [("teams:ops", "Slow webhook")])
    clock = Clock()
    d = delivery(db, teams, clock)
    teams.hang_next("ops", 3.0)
    report = drain(d, timeout=0.5)
    assert report.retrying == 1 and len(teams.posts["ops"]) == 1  # it did reach the channel
    [pending] = db.alerts_for("pending")
    assert pending.uncertain and pending.attempts == 1 and "ReadTimeout" in (pending.last_error or "")
    assert pending.next_attempt is not None
    clock.now = pending.next_attempt
    assert drain(d).sent == 1
    assert len(teams.posts["ops"]) == 2  # the documented duplicate
    [sent] = db.alerts_for("sent")
    assert not sent.uncertain


def test_cards_carry_signed_feedback_links_when_configured(
    db: Store, teams: FakeTeams, caplog: pytest.LogCaptureFixture
) -> None:
    [alert_id] = add_alerts(db, [("teams:ops", "With links")])
    add_alerts(db, [("teams:ops", "Without links")], first=1)
    clock = Clock()
    env = {"TEAMS_WEBHOOK_OPS": teams.url("ops"), "WATCHFLOOR_LINK_SECRET": SECRET}
    d = delivery(db, teams, clock, environ=env, cfg=config("https://wf.example"))
    d.store.mark_failed(db.alerts_for("pending")[1].alert.id, "later", clock.now + timedelta(hours=1))
    drain(d)
    actions = {a["title"]: a["url"] for a in check(teams.posts["ops"][0])["actions"]}
    assert set(actions) == {"Open", "Relevant", "Not relevant"}
    for title, verdict in (("Relevant", "relevant"), ("Not relevant", "not_relevant")):
        assert actions[title].startswith("https://wf.example/feedback/")
        token = token_of_path(actions[title].removeprefix("https://wf.example"))
        assert token is not None
        claim = read_token(SECRET.encode(), token, clock.now)
        assert (claim.alert_id, claim.verdict, claim.destination) == (alert_id, verdict, "ops")
        assert claim.expires == clock.now + timedelta(days=7)

    d.config = lambda: config(None)  # no public_url: no links, one warning
    clock.now += timedelta(hours=2)
    with caplog.at_level(logging.WARNING, logger="bot.delivery.teams"):
        drain(d)
    assert set(a["title"] for a in check(teams.posts["ops"][1])["actions"]) == {"Open"}
    assert [r for r in caplog.records if "no Relevant / Not relevant links" in r.getMessage()]


def test_followups_digests_and_surges_go_out_as_cards(db: Store, teams: FakeTeams) -> None:
    [alert_id] = add_alerts(db, [("teams:ops", "Tanker seized")])
    clock = Clock()
    d = delivery(db, teams, clock)
    drain(d)
    later = Item(
        "i9", "https://gazette.example/9", "Finnish investigators board tanker", "T.", NOW, "gazette"
    )
    with db.transaction() as conn:
        db.save_scored(
            conn,
            [ScoredItem(later, db.alerts_for("sent")[0].alert.story, (), "")],
            {"i9": item_keys(later)},
            {},
            [],
            [Followup("f1", alert_id, ("i9",), clock.now)],
        )
    digest = Digest(
        "teams:ops", NOW - timedelta(days=1), NOW, (DigestTopic("t", "Topic <at>x</at>", (story(1),)),)
    )
    surge = Surge("t", "Topic", NOW - timedelta(hours=6), NOW, 9, 2.0, 4.5, (story(2),))
    second = timedelta(seconds=1)
    enqueue_message(db, "digest", "teams:ops", "d1", digest.to_payload(), clock.now - 3 * second)
    enqueue_message(db, "surge", "teams:ops", "s1", surge.to_payload(), clock.now - 2 * second)
    enqueue_message(db, "unknown", "teams:ops", "u1", {}, clock.now - second)
    report = drain(d)
    assert (report.followups, report.messages, report.dead) == (1, 2, 1)
    cards = [check(p) for p in teams.posts["ops"][1:]]
    heads = [c["body"][0]["text"] for c in cards]
    assert heads == ["Watchfloor digest", "Surge: Topic", "More reports: Tanker seized"]
    assert "[Finnish investigators board tanker](https://gazette.example/9)" in json.dumps(
        cards[2], ensure_ascii=False
    )
    assert "‹at›x‹/at›" in json.dumps(cards[0], ensure_ascii=False)
    assert drain(d).messages == 0  # each went once


# -- flood control ------------------------------------------------------------------------------------------


def one_topic(store: Store, ids: list[str], topic: str = "flood") -> None:
    """Put these alerts on one topic (add_alerts gives each its own)."""
    with store.transaction() as conn:
        conn.exec_driver_sql("UPDATE alerts SET topic = ? WHERE id = ?", [(topic, i) for i in ids])


def test_a_burst_past_the_hourly_cap_becomes_one_rollup_card_an_hour(db: Store, teams: FakeTeams) -> None:
    """12 stories of one topic in an hour with cap 10: 10 cards, then one card listing the other 2 once the
    delay has passed; later stories that hour wait for the next hour's roll-up."""
    ids = add_alerts(db, [("teams:ops", f"Story {n}") for n in range(12)])
    ids += add_alerts(db, [("teams:desk", "Desk 1"), ("teams:desk", "Desk 2")], first=12)
    one_topic(db, ids)
    clock = Clock()  # the alerts were created at NOW + n seconds; this is NOW + 5 min
    d = delivery(db, teams, clock, cfg=config(hourly_cap=10, rollup_delay="10m"))
    first = drain(d)
    assert (first.sent, first.held, first.rolled_up) == (12, 2, 0)
    assert titles(teams.posts["ops"]) == [f"Story {n}" for n in range(10)]
    assert titles(teams.posts["desk"]) == ["Desk 1", "Desk 2"]  # the cap is per destination
    assert {a.alert.id for a in db.alerts_for("held")} == set(ids[10:12])

    clock.now = NOW + timedelta(minutes=9)  # the held stories are still gathering
    assert drain(d).rolled_up == 0 and len(teams.posts["ops"]) == 10
    clock.now = NOW + timedelta(minutes=11)
    second = drain(d)
    assert (second.rolled_up, second.sent) == (2, 0)
    card = check(teams.posts["ops"][-1])  # schema-valid, 1.5, under 20 KB
    shown = texts(card)
    assert shown[0] == "2 more stories on Topic flood"
    assert "[Story 10](https://news.example/10)" in shown and "[Story 11](https://news.example/11)" in shown
    rolled = {a.alert.id: a for a in db.alerts_for("sent")}
    assert [rolled[i].remote_ref for i in ids[10:12]] == ["teams:ops:run-ops-11"] * 2
    assert db.sent_since("flood", "teams:ops", NOW, rolled_up=True) == 2

    late = add_alerts(db, [("teams:ops", "Late 1"), ("teams:ops", "Late 2")], first=100)
    one_topic(db, late)
    clock.now = NOW + timedelta(minutes=15)
    third = drain(d)
    assert (third.held, third.sent, third.rolled_up) == (2, 0, 0)
    clock.now = NOW + timedelta(minutes=40)  # gathered, but the last roll-up went out 29 minutes ago
    assert drain(d).rolled_up == 0
    clock.now = NOW + timedelta(minutes=72)
    assert drain(d).rolled_up == 2
    assert texts(check(teams.posts["ops"][-1]))[0] == "2 more stories on Topic flood"
    assert len(teams.posts["ops"]) == 12 and len(teams.calls) == 14  # 10 + 2 roll-ups, and desk's 2
    assert drain(d) == TeamsReport()  # nothing left, nothing twice


def test_a_muted_topic_gets_neither_its_cards_nor_its_rollup(db: Store, teams: FakeTeams) -> None:
    ids = add_alerts(db, [("teams:ops", f"Story {n}") for n in range(4)])
    one_topic(db, ids)
    clock = Clock()
    d = delivery(db, teams, clock, cfg=config(hourly_cap=2))
    assert (drain(d).sent, len(db.alerts_for("held"))) == (2, 2)
    db.mute("flood", "teams:ops", NOW + timedelta(days=1), "teams:ops")
    later = add_alerts(db, [("teams:ops", "After the mute"), ("teams:desk", "Elsewhere")], first=10)
    one_topic(db, later)
    clock.now = NOW + timedelta(minutes=30)  # the held ones have gathered: a roll-up would be due
    report = drain(d)
    assert (report.sent, report.rolled_up) == (1, 0)
    assert len(teams.posts["ops"]) == 2 and titles(teams.posts["desk"]) == ["Elsewhere"]
    assert {a.alert.id for a in db.alerts_for("muted")} == {*ids[2:], later[0]}


def test_a_rollup_waits_for_retries_and_a_refused_one_becomes_dead_letters(
    db: Store, teams: FakeTeams
) -> None:
    ops = add_alerts(db, [("teams:ops", f"Ops {n}") for n in range(3)])
    desk = add_alerts(db, [("teams:desk", f"Desk {n}") for n in range(2)], first=3)
    one_topic(db, ops + desk)
    clock = Clock()
    d = delivery(db, teams, clock, cfg=config(hourly_cap=1))
    assert drain(d).held == 3
    clock.now = NOW + timedelta(minutes=11)
    teams.fail_next("ops", 429, retry_after=120)
    teams.fail_next("desk", 404)
    report = drain(d)
    assert (report.rolled_up, report.dead) == (0, 1)
    [dead] = db.alerts_for("dead")
    assert dead.alert.id == desk[1] and "Teams refused the roll-up: Teams answered HTTP 404" in (
        dead.last_error or ""
    )
    assert {a.alert.id for a in db.alerts_for("held")} == set(ops[1:])  # kept, nothing lost
    calls = len(teams.calls)
    clock.now += timedelta(seconds=60)
    assert drain(d).rolled_up == 0 and len(teams.calls) == calls  # not before its Retry-After

    # An alert of another topic waiting for its retry holds the destination's roll-up back too.
    [other] = add_alerts(db, [("teams:ops", "Another topic")], first=20)
    clock.now += timedelta(seconds=61)
    teams.fail_next("ops", 502)
    report = drain(d)
    assert (report.retrying, report.rolled_up) == (1, 0) and len(teams.calls) == calls + 1
    [waiting] = db.alerts_for("pending")
    assert waiting.alert.id == other and waiting.next_attempt is not None
    clock.now = waiting.next_attempt
    report = drain(d)
    assert (report.sent, report.rolled_up) == (1, 2)
    assert texts(check(teams.posts["ops"][-1]))[0] == "2 more stories on Topic flood"


def test_classify_response() -> None:
    assert classify_response(202, {}, "", NOW).ok
    assert classify_response(200, {"x-ms-workflow-run-id": "r1"}, "", NOW).remote_ref == "r1"
    limited = classify_response(429, {"retry-after": "Fri, 27 Nov 2026 12:01:00 GMT"}, "", NOW)
    assert limited.retry_after == 60.0 and not limited.permanent
    assert classify_response(429, {}, "", NOW).retry_after == 30.0
    assert classify_response(500, {}, "", NOW).uncertain
    assert not classify_response(408, {}, "", NOW).permanent
    for status in (301, 400, 401, 403, 404, 413):
        assert classify_response(status, {}, "x" * 500, NOW).permanent
    assert len(classify_response(400, {}, "x" * 500, NOW).error) < 250


# -- through the service ------------------------------------------------------------------------------------


def test_service_delivers_a_polled_alert_to_teams(
    tmp_path: Path, teams: FakeTeams, monkeypatch: pytest.MonkeyPatch
) -> None:
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    shutil.copy(FIXTURES / "poll" / "wire.xml", feeds / "wire.xml")
    shutil.copy(ROOT / "examples" / "background.jsonl", tmp_path / "background.jsonl")
    shutil.copy(ROOT / "examples" / "news_labelled.jsonl", tmp_path / "cables.jsonl")
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.setenv("TEAMS_WEBHOOK_OPS", teams.url("ops"))
    with FeedServer(feeds) as server:
        raw = (FIXTURES / "config" / "poll.toml").read_text()
        raw = raw.replace("http://127.0.0.1:1/wire.xml", server.url("wire.xml"))
        raw = raw.replace('destinations = ["console"]', 'destinations = ["teams:ops"]')
        raw += '\n[[teams]]\nname = "ops"\nwebhook_env = "TEAMS_WEBHOOK_OPS"\n'
        path = tmp_path / "config.toml"
        path.write_text(raw)

        async def scenario() -> None:
            async with Service(path, load_config(path), clock=lambda: NOW) as service:
                assert service.teams is not None
                service.teams.sleep = lambda _s: asyncio.sleep(0)
                report = await service.poll_due()
                assert len(report.ingest.alerts) == 1
                assert await service.deliver() == 1
                await service.teams.aclose()

        asyncio.run(scenario())
    [card] = [check(p) for p in teams.posts["ops"]]
    assert "Anchor-dragging ship suspected of cutting Baltic data cable" in card["body"][0]["text"]
    [facts] = [block["facts"] for block in card["body"] if block["type"] == "FactSet"]
    assert facts[0] == {"title": "Topic", "value": "Undersea cable sabotage"}
