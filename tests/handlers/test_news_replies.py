"""`/news` replies stay inside Slack's Block Kit limits whatever the stored text (checked with the fake
Slack's validator, which runs slack_sdk's block models)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fakes.slack_api import check_blocks
from news_store import DPRK, NOW, news_config

from bot.queries import AlertedItem, DeadLetter, SearchHit, SourceState, StatusReport
from bot.render import slack_replies as render

LONG = "<!here> & " + "x" * 6000


def _texts(blocks: list[dict]) -> list[str]:
    out = []
    for b in blocks:
        if b["type"] == "section":
            out.append(b["text"]["text"])
        elif b["type"] == "context":
            out += [e["text"] for e in b["elements"]]
    return out


def test_latest_and_search_with_huge_hostile_titles_fit() -> None:
    found = [
        AlertedItem(DPRK, f"i{n}", NOW, LONG, f"https://x.example/{'p' * 3000}", LONG, NOW, 0.9, ("pending",))
        for n in range(20)
    ]
    reply = render.latest_reply(found, None, {DPRK: LONG})
    check_blocks(reply["blocks"])
    hits = [SearchHit(f"i{n}", LONG, "javascript:alert(1)", LONG, NOW, 3) for n in range(50)]
    search = render.search_reply(LONG, hits)
    check_blocks(search["blocks"])
    for r in (reply, search):
        assert len(r["text"]) <= 3000
        assert all("<!here>" not in t and "javascript:" not in t for t in _texts(r["blocks"]))


@pytest.mark.parametrize("n_sources", [0, 3, 400])
def test_status_with_many_failing_sources_fits(n_sources: int) -> None:
    sources = [
        SourceState(f"s{n}-{LONG}", "http://x", None, NOW, 5, LONG, NOW - timedelta(hours=1), 500)
        for n in range(n_sources)
    ]
    dead = [DeadLetter(f"a{n}", LONG, LONG, NOW, 4, LONG, LONG) for n in range(5)]
    report = StatusReport(sources, NOW, {f"slack:#c{n}": n for n in range(300)}, 5, dead, [])
    reply = render.status_reply(report, {DPRK: "abc"}, NOW)
    check_blocks(reply["blocks"])


def test_topics_and_help_fit() -> None:
    check_blocks(render.topics_reply(news_config().topics, {})["blocks"])
    check_blocks(render.help_reply("/news")["blocks"])
