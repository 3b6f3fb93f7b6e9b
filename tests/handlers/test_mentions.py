"""`@Watchfloor …` through real HTTP: signed `app_mention` events to `watchfloor serve`'s ASGI app under
uvicorn on 127.0.0.1; the answer read from the mention's thread at the fake Slack.

The analyst's message is first posted to the fake, so a threaded reply has a real parent (the fake, like
a strict Slack, refuses a reply to a message it does not know).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fakes.slack_api import BOT_USER_ID, FakeSlack
from news_store import CABLES, DPRK, NOW, REQUESTS, fill, news_config
from slack_http import serving
from slack_sdk import WebClient
from test_app_home import Server, post_event
from test_news_command import section_texts, shown

from bot.app import Deps
from bot.store import Store
from handlers.mentions import mention_request
from handlers.news_command import cmd_latest

CHANNEL = "C0ANALYSTS"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = news_config()
    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('mentions') / 'mentions.sqlite'}")
    fill(store, config)
    deps = Deps(store=store, config=lambda: config, clock=lambda: NOW)
    with FakeSlack() as slack, serving(config, deps, slack) as url:
        yield Server(url, slack, store)
    store.close()


def post_in_channel(srv: Server, text: str, thread_ts: str | None = None) -> str:
    """The analyst's message as it now exists in Slack; its ts."""
    client = WebClient(token="xoxb-test", base_url=srv.slack.base_url)
    sent = client.chat_postMessage(channel=CHANNEL, text=text, thread_ts=thread_ts)
    return str(sent["ts"])


def mention(srv: Server, text: str, *, in_thread: str | None = None) -> dict[str, Any]:
    """Post `text` (holding the bot's mention) in the channel, send Slack's app_mention event for it,
    and return the bot's reply in the thread."""
    ts = post_in_channel(srv, text, in_thread)
    body = json.loads((REQUESTS / "event_app_mention.json").read_text())
    body["event"].update(text=text, ts=ts, event_ts=ts)
    if in_thread:
        body["event"]["thread_ts"] = in_thread
    body["event_id"] = f"Ev{ts.replace('.', '')}"
    answer = post_event(srv, body)
    assert answer.status_code == 200, answer.text
    root = in_thread or ts
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        replies = [m for m in srv.slack.thread(CHANNEL, root) if m["ts"] != ts]
        if replies:
            assert len(replies) == 1
            return replies[0]
        time.sleep(0.01)
    raise AssertionError(f"no reply in thread {root} within 5 s")


# -- over HTTP ------------------------------------------------------------------------------------------


def test_latest_on_a_topic_is_answered_in_thread(server: Server) -> None:
    reply = mention(server, f"<@{BOT_USER_ID}> latest on {DPRK}")
    text = section_texts(reply)
    assert "i-hostile" in text and "i-dprk-shells" in text and "i-dprk-old" in text
    assert "i-cable" not in text
    assert text.index("`i-hostile`") < text.index("`i-dprk-shells`")
    # The very rendering of `/news latest <topic>`.
    deps = Deps(store=server.store, config=news_config, clock=lambda: NOW)
    assert reply["blocks"] == asyncio.run(cmd_latest(deps, "/news", [DPRK]))["blocks"]
    call = [c for c in server.slack.calls_to("chat.postMessage") if c.get("thread_ts") == reply["thread_ts"]]
    assert call and str(call[-1]["unfurl_links"]).lower() == "false"


def test_short_forms_and_a_mention_inside_a_thread(server: Server) -> None:
    parent = post_in_channel(server, "Anyone seen the cable story?")
    reply = mention(server, f"<@{BOT_USER_ID}|watchfloor> latest {CABLES} 1", in_thread=parent)
    assert reply["thread_ts"] == parent  # answered in the thread it was asked in, not a new one
    text = section_texts(reply)
    assert "i-cable" in text and "i-dprk" not in text
    everything = section_texts(mention(server, f"hey <@{BOT_USER_ID}> latest"))
    assert "on all topics" in everything and "i-cable" in everything and "i-hostile" in everything


def test_search_finds_a_stored_item(server: Server) -> None:
    text = section_texts(mention(server, f"<@{BOT_USER_ID}> search artillery"))
    assert text.index("`i-dprk-shells`") < text.index("`i-repair`")
    filtered = section_texts(mention(server, f"<@{BOT_USER_ID}> search cable topic:{CABLES}"))
    assert "i-cable" in filtered and "i-repair" not in filtered
    nothing = section_texts(mention(server, f"<@{BOT_USER_ID}> search zeppelin"))
    assert "Nothing stored matches _zeppelin_" in nothing


def test_gibberish_gets_a_short_help(server: Server) -> None:
    text = section_texts(mention(server, f"<@{BOT_USER_ID}> what's the *weather* <!channel>"))
    assert "I did not understand" in text and "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert "@Watchfloor latest on &lt;topic&gt;" in text and "@Watchfloor search &lt;words&gt;" in text
    assert f"`{DPRK}`" in text and f"`{CABLES}`" in text
    bare = section_texts(mention(server, f"<@{BOT_USER_ID}>"))
    assert "I did not understand" not in bare and "Ask me:" in bare


def test_unknown_topic_gets_did_you_mean(server: Server) -> None:
    text = section_texts(mention(server, f"<@{BOT_USER_ID}> latest on dprk-rusia-military"))
    assert "There is no topic `dprk-rusia-military`" in text
    assert f"Did you mean `{DPRK}`?" in text
    assert "Usage: `@Watchfloor latest [topic] [n]`" in text
    empty = section_texts(mention(server, f"<@{BOT_USER_ID}> search"))
    assert "`search` needs at least one word" in empty


def test_hostile_title_is_escaped_in_the_reply(server: Server) -> None:
    for text in (f"latest on {DPRK}", "search pyongyang"):
        body = shown(mention(server, f"<@{BOT_USER_ID}> {text}"))
        assert "<!channel>" not in body and "<https://evil.example" not in body, text
        assert "&lt;!channel&gt;" in body and "&amp; more" in body, text


def test_a_failure_is_logged_with_an_id_not_a_trace(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from bot import queries

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("database exploded at /secret/path")

    monkeypatch.setattr(queries, "search_items", broken)
    text = section_texts(mention(server, f"<@{BOT_USER_ID}> search cable"))
    assert "Something went wrong, logged as `" in text
    assert "Traceback" not in text and "secret" not in text
    incident = text.split("logged as `")[1].split("`")[0]
    assert any(incident in r.getMessage() for r in caplog.records)


def test_unsigned_mentions_are_refused(server: Server) -> None:
    body = json.loads((REQUESTS / "event_app_mention.json").read_text())
    assert post_event(server, body, signed=False).status_code == 401


# -- parsing, without HTTP ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (f"<@{BOT_USER_ID}> latest on {DPRK}", ["latest", "on", DPRK]),
        (f"<@{BOT_USER_ID}|watchfloor>   search  cable ", ["search", "cable"]),
        (f"hey <@{BOT_USER_ID}> search <https://x.example/a|x.example/a> &amp; more",
         ["search", "https://x.example/a", "&", "more"]),
        (f"<@U0ANA00001> <@{BOT_USER_ID}> latest", ["latest"]),
        (f"latest on {DPRK} <@{BOT_USER_ID}>", ["latest", "on", DPRK]),
        (f"<@{BOT_USER_ID}> search <@{BOT_USER_ID}> cable", ["search", "cable"]),
    ],
)  # fmt: skip
def test_mention_request_keeps_the_words_addressed_to_the_bot(text: str, words: list[str]) -> None:
    assert mention_request(text, BOT_USER_ID) == words


def test_mention_request_without_the_bot_id_drops_the_first_mention() -> None:
    assert mention_request("<@U0OTHERBOT> latest", None) == ["latest"]
