"""`/news` through real HTTP: signed slash commands to `watchfloor serve`'s ASGI app under uvicorn on
127.0.0.1, Bolt's Web API client and `respond()` pointed at the fake Slack, replies read from the fake.

One store and one server for the module (the tests only read); each command gets its own `response_url`
so replies are told apart.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fakes.slack_api import FakeSlack
from news_store import CABLES, DPRK, NOW, REQUESTS, fill, news_config
from slack_http import serving, signed_headers

from bot.app import Deps, Explainer
from bot.items import Item, TopicScore, Why
from bot.store import Store

# -- the server ---------------------------------------------------------------------------------------------


@dataclass
class FakeScorer:
    """Stands in for TopicScorer.explain_all: fixed scores, so explain's recompute path is visible."""

    calls: list[str] = field(default_factory=list)

    @property
    def topic_ids(self) -> list[str]:
        return [DPRK, CABLES]

    def explain_all(self, item: Item, k: int = 8) -> list[TopicScore]:
        self.calls.append(item.id)
        return [
            TopicScore(DPRK, 0.88, True, Why((("artillery", 1.25), ("russian", 0.5)), ("korea",))),
            TopicScore(CABLES, 0.03, False, Why((("front", -0.2),), (), "needs any of: cable")),
        ]


@dataclass
class Server:
    url: str
    slack: FakeSlack
    store: Store
    scorer: dict[str, Explainer | None]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = news_config()
    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('news') / 'news.sqlite'}")
    fill(store, config)
    scorer: dict[str, Explainer | None] = {"now": None}
    deps = Deps(
        store=store,
        config=lambda: config,
        clock=lambda: NOW,
        scorer=lambda: scorer["now"],
        model_versions=lambda: {DPRK: "dprk0123abcd"},
    )
    with FakeSlack() as slack, serving(config, deps, slack) as url:
        yield Server(url, slack, store, scorer)
    store.close()


# -- requests -----------------------------------------------------------------------------------------------


def command_body(srv: Server, text: str, ident: str) -> str:
    form = json.loads((REQUESTS / "slash_command.json").read_text())
    form.update(text=text, response_url=srv.slack.response_url(ident))
    return urlencode(form)


def wait_for_response(srv: Server, ident: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for got, payload in list(srv.slack.responses):
            if got == ident:
                return payload
        time.sleep(0.01)
    raise AssertionError(f"no reply at response_url {ident} within {timeout} s")


def news(srv: Server, text: str) -> dict[str, Any]:
    """Send `/news <text>` signed; the HTTP answer is the bare ack (the reply comes by response_url, after
    the work), so Slack's 3-second limit does not depend on how slow a query is. Return the reply."""
    ident = uuid.uuid4().hex[:12]
    body = command_body(srv, text, ident)
    answer = httpx.post(f"{srv.url}/slack/events", content=body, headers=signed_headers(body), timeout=30)
    assert answer.status_code == 200, answer.text
    assert not answer.content.strip(), "the ack carries no reply: replies go through response_url"
    return wait_for_response(srv, ident)


def shown(reply: dict[str, Any]) -> str:
    """Everything a user sees in the reply: the fallback text and every block's text."""
    return reply.get("text", "") + "\n" + json.dumps(reply.get("blocks", []), ensure_ascii=False)


def section_texts(reply: dict[str, Any]) -> str:
    parts = []
    for block in reply.get("blocks", []):
        if block["type"] == "section":
            parts.append(block["text"]["text"])
        elif block["type"] == "context":
            parts += [e["text"] for e in block["elements"]]
    return "\n".join(parts)


# -- tests --------------------------------------------------------------------------------------------------


def test_unsigned_and_stale_requests_are_refused(server: Server) -> None:
    body = command_body(server, "help", "refused")
    unsigned = httpx.post(
        f"{server.url}/slack/events",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    stale = httpx.post(
        f"{server.url}/slack/events", content=body, headers=signed_headers(body, int(time.time()) - 6 * 60)
    )
    forged = httpx.post(
        f"{server.url}/slack/events", content=body, headers=signed_headers(body, secret="not-the-secret")
    )
    assert (unsigned.status_code, stale.status_code, forged.status_code) == (401, 401, 401)
    time.sleep(0.2)
    assert not [r for r in server.slack.responses if r[0] == "refused"]


def test_help_lists_the_subcommands_ephemerally(server: Server) -> None:
    reply = news(server, "help")
    text = section_texts(reply)
    assert reply["response_type"] == "ephemeral"
    for sub in ("latest [topic] [n]", "search <words>", "topics", "status", "explain <item id or URL>"):
        assert sub.replace("<", "&lt;").replace(">", "&gt;") in text
    assert "<words>" not in text
    assert news(server, "")["text"] == reply["text"]  # a bare /news is help


def test_latest_lists_alerted_items_newest_first_once_each(server: Server) -> None:
    reply = news(server, "latest")
    text = section_texts(reply)
    # i-dprk-shells went to two destinations: listed once. The unflagged item is not listed.
    assert text.count("`i-dprk-shells`") == 1 and "i-repair" not in text
    order = [text.index(f"`{i}`") for i in ("i-hostile", "i-cable", "i-dprk-shells", "i-dprk-old")]
    assert order == sorted(order)
    assert "dead" in text  # the cable alert's state is shown

    per_topic = section_texts(news(server, f"latest {DPRK} 2"))
    assert "i-hostile" in per_topic and "i-dprk-shells" in per_topic
    assert "i-dprk-old" not in per_topic and "i-cable" not in per_topic


def test_latest_with_a_bad_count_or_topic_says_how(server: Server) -> None:
    too_many = section_texts(news(server, "latest 50"))
    assert (
        "n is 50: use a number from 1 to 20" in too_many and "Usage: `/news latest [topic] [n]`" in too_many
    )
    typo = section_texts(news(server, "latest dprk-rusia-military"))
    assert "no topic `dprk-rusia-military`" in typo and f"Did you mean `{DPRK}`?" in typo


def test_topics_show_threshold_destinations_and_counts(server: Server) -> None:
    text = section_texts(news(server, "topics"))
    dprk_line = next(line for line in text.splitlines() if DPRK in line)
    assert "threshold 0.60" in dprk_line and "slack:#dprk-watch, console" in dprk_line
    assert "alerts 2 in 24 h, 3 in 7 d" in dprk_line
    cable_line = next(line for line in text.splitlines() if CABLES in line)
    assert "alerts 1 in 24 h, 1 in 7 d" in cable_line


def test_status_shows_the_failing_source_outbox_dead_letter_and_models(server: Server) -> None:
    text = section_texts(news(server, "status"))
    broken = next(line for line in text.splitlines() if "broken-feed" in line)
    assert "3 failures in a row" in broken and "last success 2d ago" in broken
    assert "HTTP 503 &lt;b&gt;Service Unavailable&lt;/b&gt;" in broken  # feed error text escaped
    assert "*Sources:* 3, 1 failing" in text and "last poll 10m ago" in text
    assert "slack:#dprk-watch: 3" in text and "console: 3" in text  # pending per destination
    assert "*Dead letters:* 1" in text and "Anchor drags across Baltic data cable" in text
    assert "channel_not_found" in text
    assert "running `dprk0123abcd`" in text and "`cable456efab` (2 scores)" in text


def test_search_finds_by_word_best_first_and_honours_filters(server: Server) -> None:
    text = section_texts(news(server, "search artillery"))
    # In the title (and text) of both: equal scores, newest first.
    assert text.index("`i-dprk-shells`") < text.index("`i-repair`")

    by_text = section_texts(news(server, "search reported"))  # only in the text: every item matches
    assert by_text.count("`i-") == 5

    only_wire = section_texts(news(server, "search artillery source:wire"))
    assert "i-dprk-shells" in only_wire and "i-repair" not in only_wire
    recent = section_texts(news(server, "search cable since:7d"))
    assert "i-cable" in recent and "i-repair" not in recent
    flagged = section_texts(news(server, f"search cable topic:{CABLES}"))
    assert "i-cable" in flagged and "i-repair" not in flagged
    nothing = section_texts(news(server, "search zeppelin"))
    assert "Nothing stored matches _zeppelin_" in nothing


def test_search_ranks_title_hits_above_text_hits(server: Server) -> None:
    text = section_texts(news(server, "search russian"))
    # "Russian" is in i-dprk-shells' title (and text); only in i-cable's text, though i-cable is newer.
    assert text.index("`i-dprk-shells`") < text.index("`i-cable`")
    assert "`i-dprk-old`" not in text  # "Russia receives …": every word must match


def test_bad_duration_and_filters_get_helpful_messages(server: Server) -> None:
    text = section_texts(news(server, "search cable since:3parsecs"))
    assert "'3parsecs' is not a duration" in text and "like 90s, 15m, 6h or 7d" in text
    assert "Usage: `/news search &lt;words&gt; [topic:… source:… since:7d]`" in text
    source = section_texts(news(server, "search cable source:wyre"))
    assert "no source `wyre`" in source and "Did you mean `wire`?" in source
    key = section_texts(news(server, "search cable sorce:wire"))
    assert "`sorce:` is not a search filter" in key and "Did you mean `source:`?" in key


def test_explain_by_id_and_by_url_from_stored_scores(server: Server) -> None:
    by_id = section_texts(news(server, "explain i-dprk-shells"))
    assert "0.91 :white_check_mark: flagged" in by_id and "north korean +0.91" in by_id
    assert "rules: korea" in by_id
    assert "Undersea cable sabotage* (threshold 0.50): below 0.05" in by_id
    assert "stored scores" in by_id
    # Slack sends links it recognised wrapped in <…>.
    by_url = section_texts(news(server, "explain <https://news.example/i-dprk-shells>"))
    assert by_url == by_id
    missing = section_texts(news(server, "explain i-nope"))
    assert "No stored item has the id or URL `i-nope`" in missing


def test_explain_recomputes_with_the_running_scorer(server: Server) -> None:
    scorer = FakeScorer()
    server.scorer["now"] = scorer
    try:
        text = section_texts(news(server, "explain i-cable"))
    finally:
        server.scorer["now"] = None
    assert scorer.calls == ["i-cable"]
    assert "0.88 :white_check_mark: flagged — terms: artillery +1.25, russian +0.50; rules: korea" in text
    assert "0.03 not flagged — terms: front -0.20; rules failed: needs any of: cable" in text
    assert "recomputed by the running models" in text


def test_unknown_subcommand_gets_usage_and_did_you_mean(server: Server) -> None:
    text = section_texts(news(server, "lates dprk"))
    assert "`lates` is not a `/news` subcommand" in text and "Did you mean `latest`?" in text
    assert text.splitlines()[-1].startswith("Usage: `/news help | latest [topic] [n]")
    assert "Did you mean `digest`?" in section_texts(news(server, "digets"))


def test_hostile_stored_title_is_escaped_in_every_reply(server: Server) -> None:
    for text in ("latest", "search pyongyang", "explain i-hostile"):
        reply = news(server, text)
        body = shown(reply)
        assert "<!channel>" not in body and "<https://evil.example" not in body, text
        assert "&lt;!channel&gt;" in body and "&amp; more" in body, text


def test_share_posts_in_channel(server: Server) -> None:
    assert news(server, "topics share")["response_type"] == "in_channel"
    assert news(server, "latest --share")["response_type"] == "in_channel"
    assert news(server, "topics")["response_type"] == "ephemeral"


def test_an_unexpected_failure_is_logged_with_an_id_not_a_trace(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from bot import queries

    def broken(*_: object) -> None:
        raise RuntimeError("database exploded at /secret/path")

    monkeypatch.setattr(queries, "topic_activity", broken)
    text = section_texts(news(server, "topics"))
    assert "Something went wrong, logged as `" in text
    assert "Traceback" not in text and "secret" not in text
    incident = text.split("logged as `")[1].split("`")[0]
    assert any(incident in r.getMessage() for r in caplog.records)


def test_healthz_and_metrics(server: Server) -> None:
    health = httpx.get(f"{server.url}/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok", "db": "ok"}
    metrics = httpx.get(f"{server.url}/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    lines = set(metrics.text.splitlines())
    assert "watchfloor_items 5" in lines
    assert 'watchfloor_alerts{status="dead"} 1' in lines and 'watchfloor_alerts{status="pending"} 6' in lines
    assert 'watchfloor_outbox_depth{destination="slack:#dprk-watch"} 3' in lines
    assert "watchfloor_sources_failing 1" in lines and "watchfloor_sources 3" in lines
    assert httpx.get(f"{server.url}/nowhere").status_code == 404
