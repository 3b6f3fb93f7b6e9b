"""App Home through real HTTP: signed `app_home_opened` events to `watchfloor serve`'s ASGI app under
uvicorn on 127.0.0.1, Bolt's Web API client pointed at the fake Slack, the published view read from it.

Also Slack's URL-verification handshake (the first request Slack sends to `/slack/events`), and the Home
view's limits for a config far larger than the test store's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fakes.slack_api import FakeSlack
from news_store import CABLES, DPRK, NOW, REQUESTS, fill, news_config
from slack_http import serving, signed_headers
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.app import Deps
from bot.config import TopicConfig
from bot.queries import AlertedItem, TopicActivity
from bot.render.slack import SECTION_TEXT_MAX
from bot.render.slack_home import VIEW_BLOCKS_MAX, home_view
from bot.store import Store


@dataclass
class Server:
    url: str
    slack: FakeSlack
    store: Store


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = news_config()
    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('home') / 'home.sqlite'}")
    fill(store, config)
    deps = Deps(store=store, config=lambda: config, clock=lambda: NOW)
    with FakeSlack() as slack, serving(config, deps, slack) as url:
        yield Server(url, slack, store)
    store.close()


def post_event(srv: Server, body: dict[str, Any], *, signed: bool = True) -> httpx.Response:
    raw = json.dumps(body)
    headers = signed_headers(raw) if signed else {}
    headers["Content-Type"] = "application/json"
    return httpx.post(f"{srv.url}/slack/events", content=raw, headers=headers, timeout=30)


def home_opened(user: str, tab: str = "home") -> dict[str, Any]:
    body = json.loads((REQUESTS / "event_app_home_opened.json").read_text())
    body["event"].update(user=user, tab=tab)
    body["event_id"] = f"Ev{user}{tab}"
    return body


def open_home(srv: Server, user: str) -> dict[str, Any]:
    answer = post_event(srv, home_opened(user))
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if user in srv.slack.home_views:
            return srv.slack.home_views[user]
        time.sleep(0.01)
    raise AssertionError(f"no Home view published for {user} within 5 s")


def texts(view: dict[str, Any]) -> str:
    parts = []
    for block in view["blocks"]:
        if block["type"] in ("section", "header"):
            parts.append(block["text"]["text"])
        elif block["type"] == "context":
            parts += [e["text"] for e in block["elements"]]
    return "\n".join(parts)


def assert_valid_home(view: dict[str, Any]) -> None:
    """What Slack would accept: slack_sdk's models (with their limit validators) and the view limits."""
    assert view["type"] == "home"
    View(**view).to_dict()
    assert len(view["blocks"]) <= VIEW_BLOCKS_MAX
    for raw in view["blocks"]:
        block = Block.parse(raw)
        assert block is not None
        block.to_dict()
        if raw["type"] == "section":
            assert 1 <= len(raw["text"]["text"]) <= SECTION_TEXT_MAX


# -- over HTTP ------------------------------------------------------------------------------------------


def test_url_verification_answers_the_challenge(server: Server) -> None:
    body = json.loads((REQUESTS / "event_url_verification.json").read_text())
    answer = post_event(server, body)
    assert answer.status_code == 200
    assert answer.json() == {"challenge": body["challenge"]}
    assert post_event(server, body, signed=False).status_code == 401


def test_home_lists_topics_with_counts_and_latest_alerts(server: Server) -> None:
    view = open_home(server, "U0HOME0001")
    assert_valid_home(view)
    text = texts(view)
    dprk = text[text.index(f"`{DPRK}`") : text.index(f"`{CABLES}`")]
    assert "DPRK–Russia military cooperation" in text and "Undersea cable sabotage" in text
    assert "threshold 0.60" in dprk and "to slack:#dprk-watch, console" in dprk
    assert "alerts 2 in 24 h, 3 in 7 d" in dprk
    # The topic's latest alerts, newest first, linked; the other topic's alert is under its own topic.
    shells = "<https://news.example/i-dprk-shells|North Korean artillery shells reach Russian front> — wire"
    assert shells in dprk and "Anchor drags" not in dprk
    assert dprk.index("i-hostile") < dprk.index("i-dprk-shells") < dprk.index("i-dprk-old")
    cables = text[text.index(f"`{CABLES}`") :]
    assert "alerts 1 in 24 h, 1 in 7 d" in cables and "Anchor drags across Baltic data cable" in cables
    assert "Cable repair ship" not in text  # stored but never alerted
    assert "/news latest [topic] [n]" in text and "@Watchfloor latest on &lt;topic&gt;" in text


def test_hostile_title_is_escaped_on_home(server: Server) -> None:
    body = json.dumps(open_home(server, "U0HOME0002"), ensure_ascii=False)
    assert "<!channel>" not in body and "<https://evil.example" not in body
    assert "&lt;!channel&gt; Pyongyang ships missiles" in body and "&amp; more" in body


def test_messages_tab_and_unsigned_events_publish_nothing(server: Server) -> None:
    assert post_event(server, home_opened("U0HOME0003", tab="messages")).status_code == 200
    assert post_event(server, home_opened("U0HOME0004"), signed=False).status_code == 401
    time.sleep(0.3)
    assert "U0HOME0003" not in server.slack.home_views and "U0HOME0004" not in server.slack.home_views


def test_a_failure_shows_an_incident_id_not_a_trace(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from bot import queries

    def broken(*_: object) -> None:
        raise RuntimeError("database exploded at /secret/path")

    monkeypatch.setattr(queries, "topic_activity", broken)
    view = open_home(server, "U0HOME0005")
    assert_valid_home(view)
    text = texts(view)
    assert "could not be loaded, logged as `" in text and "secret" not in text and "Traceback" not in text
    incident = text.split("logged as `")[1].split("`")[0]
    assert any(incident in r.getMessage() for r in caplog.records)


# -- the view's limits, without HTTP --------------------------------------------------------------------


def test_home_view_stays_within_limits_for_many_long_topics() -> None:
    topics = [
        TopicConfig(
            id=f"topic-{i}",
            name="<!here> " + "very long name " * 30,
            description="d",
            destinations=[f"slack:#channel-{j}" for j in range(10)],
        )
        for i in range(60)
    ]
    long_url = "https://news.example/" + "a" * 1900
    latest = {
        t.id: [
            AlertedItem(
                topic=t.id,
                item_id=f"{t.id}-{k}",
                alerted=NOW,
                title="<!channel> " + "headline & more " * 40,
                url=long_url if k % 2 else "javascript:alert(1)",
                source="wire",
                published=NOW - timedelta(hours=k),
                score=0.9,
                statuses=("sent",),
            )
            for k in range(3)
        ]
        for t in topics
    }
    view = home_view(topics, {t.id: TopicActivity(1, 2) for t in topics}, latest, "/news", NOW)
    assert_valid_home(view)
    text = texts(view)
    assert "more topics: `/news topics` lists them all" in text
    assert "<!here>" not in text and "<!channel>" not in text and "javascript:" not in text
    assert f"<{long_url}|" in text  # a long but safe URL is still linked


def test_home_view_without_topics_says_how_to_add_them() -> None:
    view = home_view([], {}, {}, "/news", NOW)
    assert_valid_home(view)
    assert "No active topics: add `[[topics]]` to config.toml." in texts(view)
