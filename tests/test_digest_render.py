"""Digest rendering: the Slack golden payload, hostile text escaped, Block Kit limits held at any size
(slack_sdk's block models through the fake Slack's validator), and the console text.

Rewrite the golden file after an intended change with `WATCHFLOOR_UPDATE_GOLDEN=1 pytest
tests/test_digest_render.py` and review the diff.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fakes.slack_api import check_blocks, check_metadata
from support import FIXTURES

from bot.notices import Digest, DigestTopic, StoryLine
from bot.render.console_digest import render_digest
from bot.render.slack_digest import digest_message, digest_reply

UPDATE = os.environ.get("WATCHFLOOR_UPDATE_GOLDEN") == "1"
HOSTILE = "<!channel> & <https://evil.example|click here> <@U123>"


def sample() -> Digest:
    return Digest.from_payload(json.loads((FIXTURES / "digest" / "digest.json").read_text()))


def mrkdwn(payload: dict[str, Any]) -> list[str]:
    found = [payload["text"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(payload["blocks"])
    return found


def test_digest_message_matches_golden_file() -> None:
    payload = digest_message(sample())
    path = FIXTURES / "slack" / "digest.json"
    rendered = json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if UPDATE or not path.exists():
        path.write_text(rendered)
        if not UPDATE:
            pytest.fail(f"{path} did not exist and was written: review it and run again")
    assert json.loads(rendered) == json.loads(path.read_text())
    check_blocks(payload["blocks"])
    check_metadata(payload["metadata"])


def test_sample_reads_as_intended() -> None:
    payload = digest_message(sample())
    text = "\n".join(mrkdwn(payload))
    assert payload["text"].startswith(
        "Watchfloor digest: 7 new stories — DPRK–Russia military cooperation (6)"
    )
    assert "<https://gazette.example/world/2026/10/24/dprk-troops-kursk?utm_source=rss&amp;ref=feed|" in text
    assert "3 sources (also Wire Asia, Global Desk)" in text
    assert "…and 4 more stories on this topic" in text
    assert payload["unfurl_links"] is False and payload["metadata"]["event_type"] == "watchfloor_digest"


def test_hostile_text_pings_and_links_nothing() -> None:
    for part in mrkdwn(digest_message(sample())):
        assert "<!channel>" not in part and "<!here>" not in part
        assert "<https://evil.example" not in part and "javascript:" not in part
    text = "\n".join(mrkdwn(digest_message(sample())))
    assert (
        "&lt;!channel&gt; Pyongyang ships shells &lt;https://evil.example|click here&gt; &amp; ∗more∗" in text
    )


def _story(n: int, title: str, url: str, summary: str) -> StoryLine:
    return StoryLine(
        story_id=f"s{n}",
        item_id=f"i{n}",
        topic="t",
        title=title,
        url=url,
        source=HOSTILE * 20,
        published=datetime(2026, 10, 26, 8, tzinfo=UTC),
        summary=summary,
        score=0.9,
        n_sources=40,
        sources=tuple(f"{HOSTILE} outlet {k}" for k in range(40)),
    )


@pytest.mark.parametrize("n_topics", [1, 4, 30])
def test_any_size_fits_block_kit(n_topics: int) -> None:
    """20 stories per topic with 10,000-character titles and summaries and 1,900-character URLs."""
    long_url = "https://news.example/" + "p" * 1900
    stories = tuple(_story(n, HOSTILE + "x" * 10_000, long_url, HOSTILE + "y" * 10_000) for n in range(20))
    digest = Digest(
        "slack:#c",
        datetime(2026, 10, 25, tzinfo=UTC),
        datetime(2026, 10, 26, tzinfo=UTC),
        tuple(DigestTopic(f"t{k}", HOSTILE * 50, stories, more=100) for k in range(n_topics)),
    )
    for payload in (digest_message(digest), digest_reply(digest, ["T"], "last 24h")):
        check_blocks(payload["blocks"])
        assert len(payload["blocks"]) <= 50 and len(payload["text"]) <= 3000
        for part in mrkdwn(payload):
            assert "<!channel>" not in part and "<@U123>" not in part
    blocks = digest_message(digest)["blocks"]
    last = blocks[-1]["elements"][0]["text"] if blocks[-1]["type"] == "context" else ""
    if n_topics == 30:
        assert "more topics" in last
    else:
        assert "more topics" not in json.dumps(blocks, ensure_ascii=False)
    # Each topic says how many stories it did not show (100 more, plus any cut for room).
    assert "…and" in json.dumps(blocks, ensure_ascii=False)


def test_a_long_url_is_shown_unlinked_rather_than_cut() -> None:
    story = _story(1, "Title", "https://news.example/" + "q" * 2500, "Summary")
    digest = Digest("slack:#c", datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC), ())
    digest = replace(digest, topics=(DigestTopic("t", "Topic", (story,)),))
    text = "\n".join(mrkdwn(digest_message(digest)))
    assert "*Title*" in text and "qqqq" not in text


def test_empty_reply_names_the_topics_looked_at() -> None:
    now = datetime(2026, 10, 26, 8, tzinfo=UTC)
    empty = Digest("slack:C0ANALYSTS", now - timedelta(hours=12), now, ())
    reply = digest_reply(empty, ["DPRK–Russia military cooperation", HOSTILE], "last 12h")
    check_blocks(reply["blocks"])
    assert reply["text"].startswith("Nothing new on *DPRK–Russia military cooperation*, *&lt;!channel&gt;")
    assert "in the last 12h" in reply["text"]


def test_console_text_is_readable_and_cleaned() -> None:
    digest = sample()
    evil = replace(digest.topics[1].stories[0], title="Cable cut\x1b[2J\x1b[31m red")
    digest = replace(digest, topics=(digest.topics[0], replace(digest.topics[1], stories=(evil,))))
    text = render_digest(digest)
    assert "\x1b" not in text
    lines = text.splitlines()
    assert lines[0].startswith("══ Digest → slack:#dprk-watch · 2026-10-23 07:00 UTC – 2026-10-26 08:00 UTC")
    assert "DPRK–Russia military cooperation (dprk-russia-military): 6 new stories" in lines
    assert "  1. North Korean troops seen at Russian training ground near Kursk" in lines
    assert "     Gazette · 2026-10-24 09:58 UTC · score 0.97 · 3 sources" in lines
    assert "  …and 4 more" in lines
