"""Slack rendering: golden payloads, hostile feed text, Block Kit limits, and the real client posting them.

Golden files are `tests/fixtures/slack/<case>.json`; after an intended change to the rendering, rewrite
them with `WATCHFLOOR_UPDATE_GOLDEN=1 pytest tests/test_render_slack.py` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fakes.slack_api import FakeSlack, check_blocks
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient
from support import FIXTURES

from bot.items import Alert, Item
from bot.render.slack import (
    ACTION_MUTE_24H,
    ACTION_NOT_RELEVANT,
    ACTION_RELEVANT,
    alert_message,
    escape_mrkdwn,
    flood_rollup_message,
    followup_message,
    safe_link_url,
    sources_line_update,
    truncate_escaped,
)
from bot.store import StoredAlert

SLACK = FIXTURES / "slack"
UPDATE = os.environ.get("WATCHFLOOR_UPDATE_GOLDEN") == "1"
TOPIC_TITLE = "DPRK–Russia military cooperation"


def load_alerts() -> dict[str, StoredAlert]:
    raw = json.loads((SLACK / "alerts.json").read_text())
    out = {}
    for name, a in raw.items():
        if name.startswith("_"):
            continue
        alert = Alert(**{**a["alert"], "created": datetime.fromisoformat(a["alert"]["created"])})
        fields = {k: v for k, v in a.items() if k != "alert"}
        fields["published"] = datetime.fromisoformat(fields["published"])
        out[name] = StoredAlert(alert=alert, **fields)
    return out


ALERTS = load_alerts()


def later_reports() -> list[Item]:
    base = datetime(2025, 3, 4, 10, 30, tzinfo=UTC)
    return [
        Item(
            id="i-global",
            url="https://global-desk.example/2025/03/04/kursk",
            title="Pyongyang's soldiers drill in Kursk, images suggest",
            text="",
            published=base,
            source="Global Desk",
        ),
        Item(
            id="i-briefs",
            url="https://briefs.example/kursk?a=1&b=2",
            title="Kursk: <!here> satellite photos & analysis",
            text="",
            published=base + timedelta(minutes=7),
            source="World Briefs",
        ),
    ]


def golden(case: str, payload: dict[str, Any]) -> None:
    path = SLACK / f"{case}.json"
    rendered = json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if UPDATE or not path.exists():
        path.write_text(rendered)
        if not UPDATE:
            pytest.fail(f"{path} did not exist and was written: review it and run again")
    assert json.loads(rendered) == json.loads(path.read_text()), f"{case}: payload differs from {path}"


def mrkdwn_strings(payload: dict[str, Any]) -> Iterator[str]:
    """Every string Slack would parse as markup: the fallback text and each mrkdwn text object."""
    yield payload["text"]

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                yield node["text"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    yield from walk(payload["blocks"])


def assert_within_slack_limits(payload: dict[str, Any]) -> None:
    """slack_sdk's block models (they raise on a limit violation), plus what they leave unchecked."""
    blocks = payload["blocks"]
    assert 1 <= len(blocks) <= 50
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None, raw
        block.validate_json()
        block.to_dict()  # validates nested elements too
        if raw["type"] == "context":
            assert 1 <= len(raw["elements"]) <= 10
            assert all(1 <= len(e["text"]) <= 2000 for e in raw["elements"])
        if raw["type"] == "section":
            assert 1 <= len(raw["text"]["text"]) <= 3000
        if raw["type"] == "actions":
            for element in raw["elements"]:
                assert len(element["text"]["text"]) <= 75
                assert len(element["value"]) <= 2000
                assert len(element["action_id"]) <= 255
        assert len(raw.get("block_id", "")) <= 255
    check_blocks(blocks)  # the fake Slack's own check, the same one it answers `invalid_blocks` with
    assert 1 <= len(payload["text"]) <= 3000
    for text in mrkdwn_strings(payload):
        assert_well_formed(text)


def assert_well_formed(text: str) -> None:
    """No half entity, no unbalanced angle bracket, and only our own markup inside `<…>`: links, dates and
    the mentions of users who gave feedback."""
    assert not re.search(r"&(?!amp;|lt;|gt;)", text), text
    depth = 0
    for ch in text:
        depth += {"<": 1, ">": -1}.get(ch, 0)
        assert depth in (0, 1), text
    assert depth == 0, text
    for markup in re.findall(r"<([^>]*)>", text):
        ours = markup.startswith(("http://", "https://", "!date^")) or re.fullmatch(r"@[UW][A-Z0-9]+", markup)
        assert ours, markup
        assert "<" not in markup


# ---- golden files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["basic", "hostile", "script_url"])
def test_alert_message_matches_golden_file(case: str) -> None:
    payload = alert_message(ALERTS[case], TOPIC_TITLE)
    assert_within_slack_limits(payload)
    golden(f"alert_{case}", payload)


def test_alert_with_extra_sources_and_feedback_matches_golden_file() -> None:
    payload = alert_message(
        ALERTS["basic"],
        TOPIC_TITLE,
        extra_sources=["Global Desk", "World Briefs", "Wire Asia"],
        feedback={"U0ANA": "not_relevant", "U0BO": "relevant", "not-a-user-id": "relevant"},
    )
    assert_within_slack_limits(payload)
    golden("alert_extra_sources_feedback", payload)


def test_followup_matches_golden_file() -> None:
    payload = followup_message(
        ALERTS["basic"], later_reports(), thread_ts="1741082280.000100", batch_id="batch-1"
    )
    assert_within_slack_limits(payload)
    golden("followup", payload)


def test_sources_line_update_matches_golden_file() -> None:
    parent = replace(ALERTS["basic"], n_sources=5)
    payload = sources_line_update(parent, TOPIC_TITLE, ts="1741082280.000100")
    assert_within_slack_limits(payload)
    golden("sources_update", payload)
    assert "5 sources" in json.dumps(payload)
    assert "unfurl_links" not in payload  # chat.update takes no unfurl arguments


def test_flood_rollup_matches_golden_file() -> None:
    stories = [ALERTS["basic"], ALERTS["hostile"], ALERTS["script_url"]]
    payload = flood_rollup_message(TOPIC_TITLE, stories)
    assert_within_slack_limits(payload)
    golden("rollup", payload)


# ---- the alert's parts -------------------------------------------------------------------------------


def test_alert_carries_buttons_metadata_and_no_unfurls() -> None:
    alert = ALERTS["basic"]
    payload = alert_message(alert, TOPIC_TITLE)
    assert payload["unfurl_links"] is False and payload["unfurl_media"] is False
    assert payload["metadata"] == {
        "event_type": "watchfloor_alert",
        "event_payload": {"alert_id": alert.alert.id, "topic": alert.alert.topic, "story": alert.alert.story},
    }
    (actions,) = [b for b in payload["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in actions["elements"]] == [
        ACTION_RELEVANT,
        ACTION_NOT_RELEVANT,
        ACTION_MUTE_24H,
    ]
    assert [e["text"]["text"] for e in actions["elements"]] == [
        "Relevant",
        "Not relevant",
        "Mute topic here 24 h",
    ]
    for element in actions["elements"]:
        assert json.loads(element["value"]) == {"alert_id": alert.alert.id, "topic": alert.alert.topic}
    text = json.dumps(payload)
    assert "<!date^1741082280^{date_short_pretty} {time}|2025-03-04 09:58 UTC>" in text
    assert "3 sources" in text
    assert "north korean +1.84" in text and "weather" not in text  # positive terms only
    assert "rules: north korea, russia" in text
    assert "score 0.91" in text


def test_one_source_shows_no_sources_line() -> None:
    assert "sources" not in json.dumps(alert_message(ALERTS["script_url"], "Maritime incidents")["blocks"])


# ---- hostile text --------------------------------------------------------------------------------------


def test_hostile_title_pings_nobody_and_forges_no_link() -> None:
    payload = alert_message(ALERTS["hostile"], TOPIC_TITLE)
    strings = list(mrkdwn_strings(payload))
    joined = "\n".join(strings)
    assert "&lt;!channel&gt;" in joined
    assert "&lt;https://evil.example|click here&gt;" in joined
    assert "&lt;@U123&gt;" in joined
    assert "&lt;!here&gt;" in joined and "&lt;!everyone&gt;" in joined
    for text in strings:
        assert "<!" not in text.replace("<!date^", "")
        assert "<@" not in text
        assert "<https://evil.example" not in text
    assert "\u202e" not in joined and "\x07" not in joined
    # Formatting markers from the feed do not restyle the message.
    assert "*urgent*" not in joined and "~not~" not in joined and "`code`" not in joined
    # Feed text sits in verbatim text objects: no auto-linking of names or URLs inside it.
    assert all(
        e.get("verbatim") is True
        for b in payload["blocks"]
        for e in ([b["text"]] if "text" in b else b.get("elements", []))
        if e.get("type") == "mrkdwn"
    )


def test_escaping_happens_exactly_once() -> None:
    assert escape_mrkdwn("AT&T <b> x>y") == "AT&amp;T &lt;b&gt; x&gt;y"
    alert = replace(ALERTS["basic"], title="AT&T & Verizon", summary="Q&A: 1 < 2")
    text = json.dumps(alert_message(alert, "Telecoms & cables"))
    assert "AT&amp;T &amp; Verizon" in text and "Q&amp;A: 1 &lt; 2" in text
    assert "Telecoms &amp; cables" in text
    assert "&amp;amp;" not in text and "&amp;lt;" not in text


def test_link_url_is_validated_and_cannot_break_the_markup() -> None:
    assert safe_link_url("javascript:alert(1)") is None
    assert safe_link_url("data:text/html,<script>") is None
    assert safe_link_url("/relative/path") is None
    assert safe_link_url("ftp://files.example/x") is None
    assert safe_link_url("https://") is None
    assert safe_link_url("https://ok.example/a|b>c<d e?x=1&y=2") == (
        "https://ok.example/a%7Cb%3Ec%3Cd%20e?x=1&amp;y=2"
    )
    assert safe_link_url("https://evil.example|x@ok.example/") is None  # a bar in the host part
    assert safe_link_url("https://例え.jp/記事?q=ü#top") == "https://例え.jp/%E8%A8%98%E4%BA%8B?q=%C3%BC#top"
    assert safe_link_url("https://ok.example/already%20encoded") == "https://ok.example/already%20encoded"
    payload = alert_message(ALERTS["script_url"], "Maritime incidents")
    title = payload["blocks"][0]["text"]["text"]
    assert title == "*Tanker reports drone sighting in the Red Sea*"  # shown, not linked
    assert "javascript" not in json.dumps(payload)


def test_hostile_url_is_linked_safely() -> None:
    title = alert_message(ALERTS["hostile"], TOPIC_TITLE)["blocks"][0]["text"]["text"]
    assert title.startswith("*<https://news.example/a%7Cb%3Ec%3Cd%20e?x=1&amp;y=2|")
    assert title.count("<") == 1 and title.count(">") == 1 and title.count("|") == 1
    assert "evil.example∣click here" in title  # the title's own bar cannot split the link markup


# ---- limits -------------------------------------------------------------------------------------------


def test_huge_fields_stay_within_limits() -> None:
    alert = replace(
        ALERTS["basic"],
        title="Troops & <tanks> " * 18,  # ~300 characters, growing when escaped
        summary=("Officials said & <confirmed> the movement. " * 250)[:10_000],
        source="S&" * 400,
        url="https://long.example/" + "a" * 1500,
        why={"terms": [[f"term&{i}" * 20, 1.0] for i in range(50)], "rules": ["r<" * 100] * 40},
        n_sources=12,
    )
    payload = alert_message(alert, "T&" * 300, extra_sources=[f"Outlet {i} & co" * 20 for i in range(40)])
    assert_within_slack_limits(payload)
    summary = payload["blocks"][2]["text"]["text"]
    assert len(summary) <= 3000 and summary.endswith("…")
    assert payload["blocks"][0]["text"]["text"].startswith("*<https://long.example/")


def test_truncation_never_cuts_an_entity() -> None:
    escaped = escape_mrkdwn("&<>a&&b<<c>>" * 50)
    for limit in range(1, 200):
        cut = truncate_escaped(escaped, limit)
        assert len(cut) <= limit
        assert not re.search(r"&(?!amp;|lt;|gt;)", cut), (limit, cut)


def test_long_lists_fit_in_50_blocks() -> None:
    base = ALERTS["hostile"]
    stories = [
        replace(base, title=f"Story {i} " + "<x> & " * 300, alert=replace(base.alert, id=f"a{i:05d}"))
        for i in range(400)
    ]
    rollup = flood_rollup_message(TOPIC_TITLE, stories)
    assert_within_slack_limits(rollup)
    assert rollup["blocks"][0]["text"]["text"] == f"*400 more stories on {escape_mrkdwn(TOPIC_TITLE)}*"
    assert rollup["blocks"][-1]["type"] == "context" and "more" in rollup["blocks"][-1]["elements"][0]["text"]
    assert len(rollup["metadata"]["event_payload"]["alert_ids"]) == 400

    followup = followup_message(base, stories, thread_ts="1.000001")
    assert_within_slack_limits(followup)


# ---- through the real client to the fake Slack ---------------------------------------------------------


@pytest.fixture(scope="module")
def slack_server() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        yield slack


@pytest.fixture
def slack(slack_server: FakeSlack) -> FakeSlack:
    slack_server.reset()
    return slack_server


async def test_rendered_messages_post_to_slack(slack: FakeSlack) -> None:
    client = AsyncWebClient(token="xoxb-test", base_url=slack.base_url)
    topic = TOPIC_TITLE
    parent = await client.chat_postMessage(channel="C0ALERTS", **alert_message(ALERTS["basic"], topic))
    assert parent["ok"]
    hostile = await client.chat_postMessage(channel="C0ALERTS", **alert_message(ALERTS["hostile"], topic))
    assert hostile["ok"]
    reply = await client.chat_postMessage(
        channel="C0ALERTS", **followup_message(ALERTS["basic"], later_reports(), thread_ts=parent["ts"])
    )
    assert reply["ok"]
    updated = await client.chat_update(
        channel="C0ALERTS",
        **sources_line_update(replace(ALERTS["basic"], n_sources=4), topic, ts=parent["ts"]),
    )
    assert updated["ok"]
    rollup = await client.chat_postMessage(
        channel="C0ALERTS", **flood_rollup_message(topic, [ALERTS["script_url"]] * 3)
    )
    assert rollup["ok"]

    history = await client.conversations_history(channel="C0ALERTS", include_all_metadata=True)
    kinds = [m["metadata"]["event_type"] for m in history["messages"]]
    assert kinds == ["watchfloor_rollup", "watchfloor_alert", "watchfloor_alert"]  # newest first
    assert history["messages"][2]["metadata"]["event_payload"]["alert_id"] == ALERTS["basic"].alert.id
    assert "4 sources" in json.dumps(history["messages"][2]["blocks"])
    assert [m["ts"] for m in slack.thread("C0ALERTS", parent["ts"])] == [reply["ts"]]
    assert slack.calls_to("chat.postMessage")[0]["unfurl_links"] is False
