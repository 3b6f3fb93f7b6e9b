"""`/news mute | unmute | subscribe | unsubscribe`: the subcommands that change muting and routing, for
`slack.admins` only. Signed slash commands to `watchfloor serve` under uvicorn, replies read from the fake
Slack; the store methods behind them on SQLite and PostgreSQL; subscriptions followed into the pipeline.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import cast
from urllib.parse import urlencode

import httpx
import pytest
from fakes.slack_api import FakeSlack
from news_store import CABLES, DPRK, NOW, REQUESTS, news_config
from slack_http import serving, signed_headers

from bot.app import Deps
from bot.config import Config
from bot.digest import routed_topics
from bot.items import Item, TopicScore, Why
from bot.pipeline import Runtime, ingest
from bot.scoring import TopicScorer
from bot.store import Mute, Store, Subscription
from bot.stories import StoryIndex

ADMIN = "U0ADMIN001"
ANA = "U0ANA00001"  # in the slash command fixture, not an admin
CHANNEL = "C0ANALYSTS"
HERE = f"slack:{CHANNEL}"


@dataclass
class Server:
    url: str
    slack: FakeSlack
    store: Store
    config: dict[str, Config]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = {"now": news_config()}
    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('admin') / 'admin.sqlite'}")
    deps = Deps(store=store, config=lambda: config["now"], clock=lambda: NOW)
    with FakeSlack() as slack, serving(config["now"], deps, slack) as url:
        yield Server(url, slack, store, config)
    store.close()


def news(
    srv: Server, text: str, user: str = ADMIN, channel: str = CHANNEL, channel_name: str = "analysts"
) -> str:
    """Send `/news <text>` signed, as `user` in `channel`; return the reply's section text (and check the
    reply is ephemeral)."""
    ident = uuid.uuid4().hex[:12]
    form = json.loads((REQUESTS / "slash_command.json").read_text())
    form.update(
        text=text,
        user_id=user,
        channel_id=channel,
        channel_name=channel_name,
        response_url=srv.slack.response_url(ident),
    )
    body = urlencode(form)
    answer = httpx.post(f"{srv.url}/slack/events", content=body, headers=signed_headers(body), timeout=30)
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for got, payload in list(srv.slack.responses):
            if got == ident:
                assert payload["response_type"] == "ephemeral"
                text_shown = "\n".join(b["text"]["text"] for b in payload["blocks"] if b["type"] == "section")
                assert "Traceback" not in text_shown
                return text_shown
        time.sleep(0.01)
    raise AssertionError(f"no reply to {text!r}")


def mutes_here(srv: Server) -> list[Mute]:
    return [m for m in srv.store.active_mutes(NOW) if m.destination == HERE]


# -- mute / unmute ------------------------------------------------------------------------------------------


def test_admin_mutes_a_topic_here_for_24_hours_by_default_then_unmutes(server: Server) -> None:
    text = news(server, f"mute {DPRK}")
    assert text.startswith(":mute: Muted *DPRK–Russia military cooperation*")
    assert f"by <@{ADMIN}>" in text and f"`/news unmute {DPRK}`" in text
    [mute] = mutes_here(server)
    assert mute == Mute(DPRK, HERE, NOW + timedelta(hours=24), ADMIN)

    text = news(server, f"unmute {DPRK}")
    assert text.startswith(":loud_sound: Unmuted") and mutes_here(server) == []
    assert "was not muted in this channel" in news(server, f"unmute {DPRK}")


def test_mute_takes_a_duration(server: Server) -> None:
    news(server, f"mute {CABLES} 90m")
    [mute] = mutes_here(server)
    assert mute.until == NOW + timedelta(minutes=90)
    # A longer mute extends it; written in two words is fine too.
    text = news(server, f"mute {CABLES} 1h 40m")
    [mute] = mutes_here(server)
    assert mute.until == NOW + timedelta(minutes=100) and "already in force" not in text
    assert "A longer mute was already in force" in news(server, f"mute {CABLES} 5m")
    news(server, f"unmute {CABLES}")


def test_a_bad_duration_says_how_to_write_one(server: Server) -> None:
    text = news(server, f"mute {DPRK} 3 parsecs")
    assert "'3 parsecs' is not a duration: write a number and a unit, like 90s, 15m, 6h or 7d" in text
    assert text.splitlines()[-1] == "Usage: `/news mute &lt;topic&gt; [duration]`"
    assert "takes a topic and a duration, not 6 words" in news(server, f"mute {DPRK} 1 h 30 m now")
    assert "longer than a mute may last" in news(server, f"mute {DPRK} 400d")
    assert mutes_here(server) == []


def test_an_unknown_topic_gets_did_you_mean(server: Server) -> None:
    text = news(server, "mute dprk-russia-militray")
    assert "There is no topic `dprk-russia-militray`" in text
    assert f"Did you mean `{DPRK}`?" in text
    text = news(server, "subscribe undersea-cable")
    assert f"Did you mean `{CABLES}`?" in text
    assert "`mute` needs a topic" in news(server, "mute")
    assert mutes_here(server) == [] and server.store.subscriptions() == []


def test_non_admins_are_refused_and_told_who_can(server: Server) -> None:
    for sub in (f"mute {DPRK}", f"unmute {DPRK}", f"subscribe {DPRK}", f"unsubscribe {DPRK}"):
        text = news(server, sub, user=ANA)
        assert text.startswith(":no_entry:"), sub
        assert f"only the Watchfloor admins listed in `slack.admins` may run it: <@{ADMIN}>" in text
    assert mutes_here(server) == [] and server.store.subscriptions() == []


def test_with_no_admins_configured_everyone_is_refused_and_told_how_to_add_one(server: Server) -> None:
    before = server.config["now"]
    server.config["now"] = before.model_copy(update={"slack": before.slack.model_copy(update={"admins": []})})
    try:
        text = news(server, f"subscribe {DPRK}")
    finally:
        server.config["now"] = before
    assert "none is configured" in text and "`admins` under `[slack]` in config.toml" in text
    assert server.store.subscriptions() == []


# -- subscribe / unsubscribe --------------------------------------------------------------------------------


def test_subscribe_routes_the_topic_here_and_unsubscribe_stops_it(server: Server) -> None:
    text = news(server, f"subscribe {CABLES}")
    assert text.startswith(":bell: Subscribed this channel to *Undersea cable sabotage*")
    [sub] = server.store.subscriptions()
    assert (sub.topic, sub.destination, sub.by_user, sub.at) == (CABLES, HERE, ADMIN, NOW)
    rt = runtime(server.config["now"], server.store)
    assert rt.destinations()[CABLES] == ["slack:#infra-watch", HERE]
    assert "already subscribed" in news(server, f"subscribe {CABLES}")

    text = news(server, f"unsubscribe {CABLES}")
    assert text.startswith(":no_bell: Unsubscribed") and "no longer come here" in text
    assert server.store.subscriptions() == []
    assert rt.destinations()[CABLES] == ["slack:#infra-watch"]
    assert "had no subscription" in news(server, f"unsubscribe {CABLES}")


def test_a_digest_by_channel_name_takes_in_what_was_subscribed_there_by_id(server: Server) -> None:
    """Slash commands record the channel's name beside its id, so a `slack:#watch-room` digest in
    config.toml finds the subscription made in that channel (stored as `slack:C0WATCHRM`)."""
    assert routed_topics(server.config["now"], server.store, ["slack:#watch-room"]) == []
    news(server, f"subscribe {CABLES}", channel="C0WATCHRM", channel_name="watch-room")
    news(server, "help", channel="D0DIRECT01", channel_name="directmessage")  # a DM: no name to route by
    names = server.store.slack_channel_names()
    assert names["C0WATCHRM"] == "watch-room" and "D0DIRECT01" not in names
    assert routed_topics(server.config["now"], server.store, ["slack:#Watch-Room"]) == [CABLES]
    news(server, f"unsubscribe {CABLES}", channel="C0WATCHRM", channel_name="watch-room")
    assert routed_topics(server.config["now"], server.store, ["slack:#watch-room"]) == []


def test_a_command_is_answered_even_when_the_channel_name_cannot_be_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = {"now": news_config()}
    store = Store.open(f"sqlite:///{tmp_path / 'names.sqlite'}")
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE slack_channels")  # every note_channel now fails
    deps = Deps(store=store, config=lambda: config["now"], clock=lambda: NOW)
    with FakeSlack() as slack, serving(config["now"], deps, slack) as url:
        text = news(Server(url, slack, store, config), f"subscribe {CABLES}")
    assert text.startswith(":bell: Subscribed this channel")
    assert [s.topic for s in store.subscriptions()] == [CABLES]
    assert "channel name not recorded channel=C0ANALYSTS" in caplog.text
    store.close()


def test_a_channel_routed_by_config_is_told_to_change_config(server: Server) -> None:
    text = news(server, f"unsubscribe {CABLES}", channel="C0INFRA", channel_name="infra-watch")
    assert "config.toml routes this topic here" in text and "`destinations` in config.toml" in text
    text = news(server, f"subscribe {CABLES}", channel="C0INFRA", channel_name="infra-watch")
    assert "config.toml routes it here" in text
    assert server.store.subscriptions() == []


# -- the pipeline -------------------------------------------------------------------------------------------


@dataclass
class StubModels:
    def fingerprint(self, topic: str) -> str:
        return f"{topic}-model-v1"


@dataclass
class StubScorer:
    """Flags every item for CABLES, none for DPRK."""

    topic_ids: list[str] = field(default_factory=lambda: [DPRK, CABLES])
    models: StubModels = field(default_factory=StubModels)

    def score(self, items: Sequence[Item]) -> list[tuple[TopicScore, ...]]:
        return [
            (
                TopicScore(DPRK, 0.1, False, Why()),
                TopicScore(CABLES, 0.9, True, Why((("anchor", 1.0),), ())),
            )
            for _ in items
        ]


@dataclass
class StubStories:
    def assign(self, items: Sequence[Item]) -> list[str]:
        return [f"story-{i.id}" for i in items]


def runtime(config: Config, store: Store) -> Runtime:
    return Runtime(
        config=config,
        store=store,
        scorer=cast(TopicScorer, StubScorer()),
        stories=cast(StoryIndex, StubStories()),
        console_fallback=False,
    )


def test_store_subscriptions_on_both_databases(store: Store) -> None:
    assert store.subscriptions() == []
    assert store.subscribe(CABLES, HERE, ADMIN, NOW) is True
    assert store.subscribe(CABLES, HERE, "U0OTHER", NOW + timedelta(hours=1)) is False
    assert store.subscribe(DPRK, HERE, ADMIN, NOW) is True
    assert store.subscriptions() == [
        Subscription(DPRK, HERE, ADMIN, NOW),
        Subscription(CABLES, HERE, ADMIN, NOW),
    ]
    assert store.unsubscribe(CABLES, HERE) is True
    assert store.unsubscribe(CABLES, HERE) is False
    assert store.subscriptions() == [Subscription(DPRK, HERE, ADMIN, NOW)]


def test_a_subscribed_channel_gets_alerts_from_ingest(store: Store) -> None:
    config = news_config()
    rt = runtime(config, store)
    # Subscribing a config destination again, or a topic no scorer knows, adds nothing.
    store.subscribe(CABLES, HERE, ADMIN, NOW)
    store.subscribe(CABLES, "slack:#infra-watch", ADMIN, NOW)
    store.subscribe("no-such-topic", HERE, ADMIN, NOW)
    assert rt.destinations() == {
        DPRK: ["slack:#dprk-watch", "console"],
        CABLES: ["slack:#infra-watch", HERE],
    }
    item = Item("i-anchor", "https://news.example/anchor", "Anchor cuts cable", "A ship.", NOW, "wire")
    report = ingest(rt, [item], NOW)
    assert {(a.topic, a.destination) for a in report.alerts} == {
        (CABLES, "slack:#infra-watch"),
        (CABLES, HERE),
    }
    assert {a.alert.destination for a in store.alerts_for("pending")} == {"slack:#infra-watch", HERE}

    store.unsubscribe(CABLES, HERE)
    later = Item("i-anchor-2", "https://news.example/anchor-2", "Second cable cut", "Another.", NOW, "wire")
    report = ingest(rt, [later], NOW)
    assert {(a.topic, a.destination) for a in report.alerts} == {(CABLES, "slack:#infra-watch")}
