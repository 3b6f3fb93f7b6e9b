"""Adaptive Cards for Teams: every card validates against the official Adaptive Card 1.5 JSON schema
(tests/data/adaptive-card-1.5.json, Draft 6, MIT licence beside it), stays under 20 KB whatever the feed
sends, and no feed text can form a link, a mention or markup."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bot.feedback_links import FeedbackLinks
from bot.items import Alert
from bot.notices import Digest, DigestTopic, StoryLine, Surge
from bot.render.teams import (
    CARD_BYTES_MAX,
    alert_card,
    card_text,
    card_url,
    digest_card,
    encode_message,
    followup_card,
    rollup_card,
    surge_card,
)
from bot.store import Report, StoredAlert

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LINKS = FeedbackLinks(
    relevant="https://watchfloor.example/feedback/YWJj.cmVs",
    not_relevant="https://watchfloor.example/feedback/YWJj.bm90",
)
HOSTILE_TITLE = (
    '[click here](https://evil.example/phish) <at>General</at> <at id="0">Ana</at> **URGENT** _now_ '
    "![img](https://evil.example/x.png) &lt;at&gt;Everyone&lt;/at&gt; {{DATE(2017-02-14T06:00:00Z)}} \\]"
)


@cache
def validator() -> jsonschema.Draft6Validator:
    schema = json.loads((DATA / "adaptive-card-1.5.json").read_text(encoding="utf-8"))
    jsonschema.Draft6Validator.check_schema(schema)
    return jsonschema.Draft6Validator(schema)


def card_of(envelope: dict[str, Any]) -> dict[str, Any]:
    """The AdaptiveCard inside a message envelope, after checking the envelope's shape."""
    assert envelope["type"] == "message"
    [attachment] = envelope["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["contentUrl"] is None
    return dict(attachment["content"])


def check(envelope: dict[str, Any]) -> dict[str, Any]:
    """Schema-valid, version 1.5 and under 20 KB, or the test fails saying which."""
    card = card_of(envelope)
    errors = sorted(validator().iter_errors(card), key=lambda e: list(e.absolute_path))
    assert not errors, "; ".join(f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors[:5])
    assert card["version"] == "1.5"
    size = len(encode_message(envelope))
    assert size < CARD_BYTES_MAX, f"card is {size} bytes"
    assert size == len(json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode())
    return card


def texts(card: dict[str, Any]) -> list[str]:
    """Every string Teams renders as Markdown: TextBlock texts and Fact titles/values, nested included."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "TextBlock":
                found.append(node["text"])
            if "title" in node and "value" in node:
                found.extend((node["title"], node["value"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(card.get("body"))
    found.append(card.get("fallbackText", ""))
    return found


def actions(card: dict[str, Any]) -> dict[str, str]:
    return {a["title"]: a["url"] for a in card.get("actions", [])}


def stored(**overrides: Any) -> StoredAlert:
    values: dict[str, Any] = {
        "alert": Alert("a1b2c3d4e5f6a7b8c9d0e1f2", "dprk-russia-military", "teams:ops", "s1", "i1", NOW),
        "status": "pending",
        "attempts": 0,
        "title": "North Korean artillery shells reach Russian front",
        "url": "https://news.example/shells?id=1&src=rss",
        "source": "Wire",
        "published": NOW - timedelta(minutes=30),
        "summary": "Shells made in North Korea were seen at the front, officials said.",
        "score": 0.91,
        "why": {"terms": [["north korean", 0.91], ["shells", 0.4], ["weather", -0.2]], "rules": ["korea"]},
        "n_sources": 3,
    }
    values.update(overrides)
    return StoredAlert(**values)


def story(n: int, **overrides: Any) -> StoryLine:
    values: dict[str, Any] = {
        "story_id": f"s{n}",
        "item_id": f"i{n}",
        "topic": "dprk-russia-military",
        "title": f"Story {n} about shells",
        "url": f"https://news.example/{n}",
        "source": "Wire",
        "published": NOW - timedelta(hours=n),
        "summary": f"Summary of story {n}.",
        "score": 0.9 - n / 100,
        "n_sources": 2,
        "sources": ("Wire", "Gazette"),
    }
    values.update(overrides)
    return StoryLine(**values)


# -- alert cards ------------------------------------------------------------------------------------------


def test_alert_card_golden() -> None:
    """The whole card, as the issue note shows it: a change to the layout is a deliberate one."""
    envelope = alert_card(
        stored(), "DPRK–Russia military cooperation", feedback=LINKS, extra_sources=["Gazette", "Desk"]
    )
    check(envelope)
    golden = DATA / "teams-alert-card.json"
    assert envelope == json.loads(golden.read_text(encoding="utf-8"))


def test_alert_card_shows_every_fact() -> None:
    card = check(alert_card(stored(), "DPRK–Russia", feedback=LINKS, extra_sources=["Gazette", "Desk"]))
    shown = texts(card)
    title = card["body"][0]
    assert title["text"] == (
        "[North Korean artillery shells reach Russian front](https://news.example/shells?id=1&src=rss)"
    )
    assert "Wire · {{DATE(2026-11-27T11:30:00Z, SHORT)}} {{TIME(2026-11-27T11:30:00Z)}}" in shown
    assert "Shells made in North Korea were seen at the front, officials said." in shown
    assert [
        t
        for f in card["body"]
        if f["type"] == "FactSet"
        for fact in f["facts"]
        for t in (fact["title"], fact["value"])
    ] == [
        "Topic",
        "DPRK–Russia",
        "Score",
        "0.91",
        "Why",
        "north korean +0.91, shells +0.40; rules: korea",
    ]
    assert "Reported by 3 outlets: Wire, Gazette, Desk" in shown
    assert actions(card) == {
        "Open": "https://news.example/shells?id=1&src=rss",
        "Relevant": LINKS.relevant,
        "Not relevant": LINKS.not_relevant,
    }


def test_without_feedback_links_only_open_remains_and_one_outlet_has_no_outlets_line() -> None:
    card = check(alert_card(stored(n_sources=1), "DPRK", feedback=None))
    assert list(actions(card)) == ["Open"]
    assert not any(t.startswith("Reported by") for t in texts(card))
    counted = check(alert_card(stored(n_sources=4), "DPRK", feedback=None))
    assert "Reported by 4 outlets: Wire and 3 more" in texts(counted)


def test_hostile_title_forges_no_link_mention_or_markup_and_a_huge_item_stays_under_20_kb() -> None:
    """The issue's case: 10,000-character text, Markdown link syntax and <at> mention markup in the title."""
    big = stored(
        title=HOSTILE_TITLE + " " + "x" * 10_000,
        summary=("Ten thousand characters of body [y](https://evil.example) <at>Bo</at> " * 200)[:10_000],
        source="<at>Wire</at> [w](https://evil.example)",
        why={
            "terms": [[f"[t{n}](https://evil.example) <at>x</at>", 0.5] for n in range(50)],
            "rules": ["<at>r</at>"] * 50,
        },
    )
    envelope = alert_card(
        big,
        "**Topic** <at>all</at>",
        feedback=LINKS,
        extra_sources=[f"<at>o{n}</at>" * 30 for n in range(100)],
    )
    card = check(envelope)
    shown = texts(card)
    raw = json.dumps(card, ensure_ascii=False)
    for text in shown:
        assert "<" not in text and ">" not in text, text  # no <at>, no HTML, no autolink
        assert "**" not in text and "{{DATE(2017" not in text
        assert "&lt;" not in text and "&gt;" not in text  # no entity an HTML path could turn back into <at>
    # Exactly one Markdown link in the whole card: the title, to the item's own URL.
    links = re.findall(r"\]\((https?://[^)\s]*)\)", "\n".join(shown))
    assert links == ["https://news.example/shells?id=1&src=rss"]
    assert "evil.example" not in json.dumps(card.get("actions"))
    assert "‹at›General‹/at›" in raw and "［click here］(https://evil.example/phish)" in raw
    assert card["body"][0]["text"].endswith("…](https://news.example/shells?id=1&src=rss)")


def test_multibyte_and_escape_heavy_text_stays_under_20_kb() -> None:
    # Characters that cost the most bytes: 4-byte emoji, 3-byte CJK, and quotes/backslashes JSON doubles.
    for filler in ("😀", "漢", '"', "\\", "\u0301"):
        big = stored(
            title=filler * 10_000,
            summary=filler * 10_000,
            source=filler * 500,
            url="https://news.example/" + "a" * 1990,
        )
        check(alert_card(big, filler * 5000, feedback=LINKS, extra_sources=[filler * 500] * 50))


def test_unsafe_urls_are_not_linked() -> None:
    for url in (
        "javascript:alert(1)",
        "data:text/html,x",
        "/relative",
        "https://",
        "ftp://x.example/a",
        "https://ex ample.com/",
    ):
        card = check(alert_card(stored(url=url), "DPRK", feedback=None))
        assert "Open" not in actions(card)
        assert card["body"][0]["text"] == "North Korean artillery shells reach Russian front"


def test_urls_that_could_end_link_syntax_are_percent_encoded() -> None:
    assert card_url("https://en.example/wiki/Cable_(sabotage)?q=[1] 2") == (
        "https://en.example/wiki/Cable_%28sabotage%29?q=%5B1%5D%202"
    )
    assert card_url("https://news.example/a?x=1&y=2") == "https://news.example/a?x=1&y=2"
    card = check(alert_card(stored(url="https://en.example/wiki/Cable_(sabotage)"), "T", feedback=None))
    assert card["body"][0]["text"].endswith("(https://en.example/wiki/Cable_%28sabotage%29)")


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("[a](https://x.example)", "［a］(https://x.example)"),
        ("<at>Ana</at> hi", "‹at›Ana‹/at› hi"),
        ("**bold** _it_ ~~s~~ `code`", "∗∗bold∗∗ ˍitˍ ∼∼s∼∼ ˋcodeˋ"),
        ("# Heading", "＃ Heading"),
        ("- item", "‐ item"),
        ("--- rule", "‐-- rule"),
        ("+ item", "＋ item"),
        ("1. First", "1․ First"),
        ("2) Second", "2） Second"),
        ("2026 budget. Next", "2026 budget. Next"),
        ("AT&T and Q&A", "AT&T and Q&A"),
        ("&lt;at&gt; &#60;", "＆lt;at＆gt; ＆#60;"),
        ("{{DATE(2017-02-14T06:00:00Z)}}", "｛｛DATE(2017-02-14T06:00:00Z)}}"),
        ("a\\]b", "a∖］b"),
        ("line one\n\n- two\r\n# three", "line one - two # three"),
        ("bidi \u202egnp.exe\u202c zero\u200bwidth", "bidi gnp.exe zerowidth"),
    ],
)
def test_card_text_neutralises_markup(raw: str, shown: str) -> None:
    assert card_text(raw) == shown


def test_card_text_cuts_on_a_character_boundary_with_an_ellipsis() -> None:
    assert card_text("abcdef", 4) == "abc…"
    assert card_text("abc", 3) == "abc"
    assert card_text("e\u0301e\u0301e\u0301e\u0301", 3) == "é" * 2 + "…"  # NFC first: no mark left hanging
    assert card_text("ab\u0301\u0302cd", 4) == "ab…"  # a mark NFC cannot combine is not left hanging
    assert card_text("x👩\u200d👩xyz", 4) == "x👩…"  # nor a joiner


# -- follow-ups, digests, surges ------------------------------------------------------------------------


def test_followup_card_lists_later_reports_with_links() -> None:
    reports = [
        Report("i2", "Finnish investigators board tanker", "https://gazette.example/t", "Gazette", NOW),
        Report("i3", "<at>All</at> [x](https://evil.example)", "javascript:alert(1)", "Desk", NOW),
    ]
    card = check(followup_card(stored(), reports, "Cables", extra_sources=["Wire", "Gazette", "Desk"]))
    shown = texts(card)
    assert shown[0] == "More reports: North Korean artillery shells reach Russian front"
    assert "[Finnish investigators board tanker](https://gazette.example/t)" in shown
    assert "‹at›All‹/at› ［x］(https://evil.example)" in shown  # unlinked: its URL is not http(s)
    assert "Reported by 3 outlets: Wire, Gazette, Desk" in shown
    many = [Report(f"i{n}", "t" * 10_000, f"https://x.example/{n}", "s" * 1000, NOW) for n in range(300)]
    big = check(followup_card(stored(), many, "Cables"))
    assert any(t.startswith("…and ") and t.endswith("more reports") for t in texts(big))


def held_story(n: int, **overrides: Any) -> StoredAlert:
    alert = Alert(f"a{n:02d}", "dprk-russia-military", "teams:ops", f"s{n}", f"i{n}", NOW)
    values: dict[str, Any] = {
        "alert": alert,
        "status": "held",
        "title": f"Story {n}",
        "url": f"https://news.example/{n}",
        "source": "Gazette",
    }
    values.update(overrides)
    return stored(**values)


def test_rollup_card_lists_the_held_stories_linked_with_their_source() -> None:
    card = check(rollup_card("DPRK–Russia", [held_story(1), held_story(2, url="javascript:alert(1)")]))
    shown = texts(card)
    assert shown[0] == "2 more stories on DPRK–Russia"
    assert "[Story 1](https://news.example/1)" in shown
    assert "Story 2" in shown  # listed, but its URL is not http(s): unlinked
    assert shown.count("Gazette · {{DATE(2026-11-27T11:30:00Z, SHORT)}} {{TIME(2026-11-27T11:30:00Z)}}") == 2
    assert not any(t.startswith("+") for t in shown)
    assert card["fallbackText"] == "2 more stories on DPRK–Russia" and "actions" not in card
    assert texts(check(rollup_card("T", [held_story(1)])))[0] == "1 more story on T"


def test_a_rollup_of_many_hostile_stories_says_how_many_more_and_stays_under_20_kb() -> None:
    stories = [
        held_story(n, title=HOSTILE_TITLE + " " + "漢" * 10_000, source="<at>Wire</at> " * 200)
        for n in range(60)
    ]
    card = check(rollup_card("<at>all</at> **Topic**", stories))
    shown = texts(card)
    assert shown[0] == "60 more stories on ‹at›all‹/at› ∗∗Topic∗∗"
    for text in shown:
        assert "<" not in text and ">" not in text and "**" not in text, text
    links = re.findall(r"\]\((https?://[^)\s]*)\)", "\n".join(shown))
    assert links and all(re.fullmatch(r"https://news\.example/\d+", link) for link in links)
    assert card["body"][-1]["text"] == f"+{60 - len(links)} more stories"  # texts() ends in the fallback


def test_digest_card_has_the_facts_of_a_slack_digest() -> None:
    digest = Digest(
        destination="teams:ops",
        since=NOW - timedelta(days=1),
        until=NOW,
        topics=(
            DigestTopic("dprk-russia-military", "DPRK–Russia", (story(1), story(2)), more=3),
            DigestTopic("undersea-cable-sabotage", "Cables", (story(3, sources=("Wire",), n_sources=1),)),
            DigestTopic("empty", "Empty", ()),
        ),
    )
    card = check(digest_card(Digest.from_payload(digest.to_payload())))
    shown = texts(card)
    assert shown[0] == "Watchfloor digest"
    assert "DPRK–Russia · 5 new stories" in shown and "Cables · 1 new story" in shown
    assert not any("Empty" in t for t in shown[:-1])
    assert "[Story 1 about shells](https://news.example/1)" in shown
    assert "Summary of story 1." in shown
    assert any(t.startswith("Wire · {{DATE(") and "score 0.89 · 2 sources (also Gazette)" in t for t in shown)
    assert "…and 3 more stories" in shown
    assert card["fallbackText"] == "Watchfloor digest: 6 new stories — DPRK–Russia (5), Cables (1)"


def test_a_huge_digest_drops_summaries_then_stories_then_topics_and_still_fits() -> None:
    hostile = story(0, title=HOSTILE_TITLE * 40, summary="<at>x</at> " * 2000, sources=("<at>s</at>",) * 50)
    topics = tuple(
        DigestTopic(f"t{n}", f"Topic {n} " + "z" * 500, tuple(hostile for _ in range(20)), more=7)
        for n in range(60)
    )
    card = check(digest_card(Digest("teams:ops", NOW - timedelta(days=1), NOW, topics)))
    shown = texts(card)
    assert any(t.startswith("…and ") and "more topics" in t for t in shown)
    assert all("<" not in t for t in shown)


def test_empty_digest_card_says_nothing_new() -> None:
    card = check(digest_card(Digest("teams:ops", NOW - timedelta(days=1), NOW, ())))
    assert "Nothing new on your topics in this period." in texts(card)


def test_surge_card() -> None:
    surge = Surge(
        topic="dprk-russia-military",
        title="DPRK–Russia",
        window_start=NOW - timedelta(hours=6),
        window_end=NOW,
        count=12,
        usual=2.0,
        factor=6.0,
        stories=(story(1), story(2)),
    )
    card = check(surge_card(Surge.from_payload(surge.to_payload())))
    shown = texts(card)
    assert shown[0] == "Surge: DPRK–Russia"
    assert "12 stories on DPRK–Russia in the last 6h, usually 2 per 6h (6.0× the usual rate)" in shown
    assert "Top stories" in shown and "…and 10 more stories" in shown
    huge = Surge(
        "t",
        "<at>T</at>" * 1000,
        NOW - timedelta(hours=6),
        NOW,
        500,
        0.0,
        500.0,
        tuple(story(n, title="漢" * 10_000) for n in range(200)),
    )
    check(surge_card(huge))
