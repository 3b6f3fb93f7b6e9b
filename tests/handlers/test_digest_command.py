"""`/news digest [topic] [since]` through real HTTP: signed slash commands to `watchfloor serve` under
uvicorn on 127.0.0.1, replies read at the fake Slack's response_url. The store is the `/news` tests' one
(news_store.fill): DPRK stories 3 days, 2 hours and 30 minutes old, a cable story an hour old."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fakes.slack_api import FakeSlack, check_blocks
from news_store import CABLES, DPRK, NOW, REQUESTS, fill, news_config
from slack_http import serving, signed_headers
from test_news_command import Server, section_texts, shown, wait_for_response

from bot.app import Deps
from bot.store import Store


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = news_config()
    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('digest') / 'news.sqlite'}")
    fill(store, config)
    store.subscribe(CABLES, "slack:C0SUBSCRIB", "U0ADMIN001", NOW - timedelta(days=1))
    deps = Deps(store=store, config=lambda: config, clock=lambda: NOW)
    with FakeSlack() as slack, serving(config, deps, slack) as url:
        yield Server(url, slack, store, {})
    store.close()


def ask(
    srv: Server, text: str, channel_id: str = "C0ANALYSTS", channel_name: str = "analysts"
) -> dict[str, Any]:
    """`/news <text>` signed, from a channel; the reply that arrives at its response_url."""
    ident = uuid.uuid4().hex[:12]
    form = json.loads((REQUESTS / "slash_command.json").read_text())
    form.update(
        text=text,
        channel_id=channel_id,
        channel_name=channel_name,
        response_url=srv.slack.response_url(ident),
    )
    body = urlencode(form)
    answer = httpx.post(f"{srv.url}/slack/events", content=body, headers=signed_headers(body), timeout=30)
    assert answer.status_code == 200 and not answer.content.strip()
    return wait_for_response(srv, ident)


def test_digest_in_a_channel_with_no_routing_covers_every_topic(server: Server) -> None:
    reply = ask(server, "digest")
    check_blocks(reply["blocks"])
    assert reply["response_type"] == "ephemeral"
    text = section_texts(reply)
    assert reply["text"].startswith("Digest: last 1d: 3 new stories")
    assert "*DPRK–Russia military cooperation* · 2 new stories" in text
    assert "*Undersea cable sabotage* · 1 new story" in text
    assert "North Korean artillery shells reach Russian front" in text
    assert "Russia receives North Korean rockets" not in text  # three days old
    # The best-scored story first: shells (0.91) before the hostile one (0.75).
    assert text.index("artillery shells") < text.index("Pyongyang ships missiles")
    body = shown(reply)
    assert "<!channel>" not in body and "<https://evil.example" not in body
    assert "&lt;!channel&gt;" in body


def test_digest_follows_the_channels_routing_and_subscriptions(server: Server) -> None:
    routed = section_texts(ask(server, "digest", "C0DPRKWATC", "dprk-watch"))  # config: slack:#dprk-watch
    assert "DPRK–Russia military cooperation" in routed and "Undersea cable sabotage" not in routed
    subscribed = section_texts(ask(server, "digest", "C0SUBSCRIB", "subscribed"))
    assert "Undersea cable sabotage" in subscribed and "DPRK–Russia" not in subscribed


def test_asked_for_it_shows_a_topic_muted_in_the_channel(server: Server) -> None:
    # Muted here both ways a mute is recorded (`/news mute` by channel id, the button by the alert's
    # destination): the scheduled digest leaves the topic out, the one asked for still shows it.
    for where in ("slack:C0DPRKWATC", "slack:#dprk-watch"):
        server.store.mute(DPRK, where, NOW + timedelta(hours=24), "U0ADMIN001")
    try:
        text = section_texts(ask(server, "digest", "C0DPRKWATC", "dprk-watch"))
        assert "*DPRK–Russia military cooperation* · 2 new stories" in text and "Muted" not in text
    finally:
        for where in ("slack:C0DPRKWATC", "slack:#dprk-watch"):
            server.store.unmute(DPRK, where)


def test_one_topic_and_a_longer_period(server: Server) -> None:
    text = section_texts(ask(server, f"digest {DPRK} 7d"))
    assert "*DPRK–Russia military cooperation* · 3 new stories" in text
    assert "Russia receives North Korean rockets" in text and "Undersea cable" not in text
    assert ask(server, "digest 7d share")["response_type"] == "in_channel"


def test_nothing_new_says_so(server: Server) -> None:
    text = section_texts(ask(server, f"digest {CABLES} 30m"))
    assert text.startswith("Nothing new on *Undersea cable sabotage* in the last 30m")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("digest 3 parsecs", "`since`: '3 parsecs' is not a duration: write a number and a unit, like 90s"),
        ("digest dprk", "There is no topic `dprk`."),
        (f"digest {DPRK} soon", "`since`: 'soon' is not a duration"),
        ("digest 400d", "400d is further back than a digest looks: at most 90d."),
    ],
)
def test_bad_arguments_get_what_was_wrong_and_the_usage(server: Server, command: str, expected: str) -> None:
    text = section_texts(ask(server, command))
    assert expected in text
    assert text.splitlines()[-1] == "Usage: `/news digest [topic] [since]`"


def test_help_lists_digest_and_nothing_is_planned_any_more(server: Server) -> None:
    text = section_texts(ask(server, "help"))
    assert "`/news digest [topic] [since]`" in text and "Coming later" not in text
    assert "Did you mean `digest`?" in section_texts(ask(server, "digets"))
