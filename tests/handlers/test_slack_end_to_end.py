"""The whole Slack path once, as a team would live it: local feeds → `worker` polls → an alert at the
(fake) Slack → a second outlet's report goes into the alert's thread → an analyst clicks *Not relevant*
→ `/news search` through `serve` finds the item. Real HTTP throughout, one SQLite file shared by the
worker and the web process as in production."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fakes.slack_api import FakeSlack
from slack_http import serving
from support import FIXTURES, ROOT
from test_feedback_buttons import ANA, click
from test_feedback_buttons import Server as ClickServer
from test_news_command import Server as CommandServer
from test_news_command import news, shown

from bot.app import Deps
from bot.config import load_config
from bot.feed_server import FeedServer
from bot.render.slack import ACTION_NOT_RELEVANT
from bot.service import Service


def test_feeds_to_alert_thread_feedback_and_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    shutil.copy(FIXTURES / "poll" / "wire.xml", feeds / "wire.xml")
    shutil.copy(ROOT / "examples" / "background.jsonl", tmp_path / "background.jsonl")
    shutil.copy(ROOT / "examples" / "news_labelled.jsonl", tmp_path / "cables.jsonl")
    now = [datetime(2026, 11, 25, 12, 0, tzinfo=UTC)]
    with FakeSlack() as slack, FeedServer(feeds) as server:
        raw = (FIXTURES / "config" / "poll.toml").read_text()
        raw = raw.replace("http://127.0.0.1:1/wire.xml", server.url("wire.xml"))
        raw += f'\n[[sources]]\nname = "desk"\nurl = "{server.url("desk.atom")}"\n'
        raw = raw.replace('destinations = ["console"]', 'destinations = ["slack:#infra-watch"]')
        path = tmp_path / "config.toml"
        path.write_text(raw)
        config = load_config(path)
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
        monkeypatch.setenv("SLACK_API_URL", slack.base_url)

        async def worker() -> Service:
            service = Service(path, config, clock=lambda: now[0])
            await service.__aenter__()
            assert service.slack is not None
            service.slack.sleep = lambda _s: asyncio.sleep(0)
            return service

        async def cycle(service: Service) -> None:
            await service.poll_due()
            await service.deliver()

        loop = asyncio.new_event_loop()
        service = loop.run_until_complete(worker())
        try:
            loop.run_until_complete(cycle(service))  # desk.atom missing yet: 404, the wire alert goes out
            shutil.copy(FIXTURES / "poll" / "desk.atom", feeds / "desk.atom")
            now[0] += timedelta(hours=1)
            loop.run_until_complete(cycle(service))  # the second outlet: a thread reply
            store = service.rt.store
            channel = slack.channel_id("#infra-watch")
            [parent] = slack.top_level(channel)
            [reply] = slack.thread(channel, parent["ts"])
            assert "Finnish investigators board tanker" in json.dumps(reply["blocks"])

            deps = Deps(store=store, config=lambda: config, clock=lambda: now[0])
            with serving(config, deps, slack) as url:
                [stored] = store.alerts_for("sent")
                answer = click(ClickServer(url, slack, store), stored, ACTION_NOT_RELEVANT, ANA)
                assert "not relevant" in json.dumps(answer).lower()
                assert store.feedback_for_alert(stored.alert.id) == {ANA: "not_relevant"}
                assert "Not relevant" in json.dumps(slack.top_level(channel)[0]["blocks"])

                found = shown(news(CommandServer(url, slack, store, {"now": None}), "search anchor tanker"))
                assert "Anchor-dragging ship suspected of cutting Baltic data cable" in found
        finally:
            loop.run_until_complete(service.__aexit__(None, None, None))
            loop.close()
