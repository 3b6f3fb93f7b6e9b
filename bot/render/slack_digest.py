"""Digests as Slack Block Kit: the scheduled message (`digest_message`) and the `/news digest` reply.

The same promises as `bot/render/slack.py`, whose escaping and link helpers this module uses (nothing here
escapes or builds a link by itself): feed text escaped once and shown `verbatim`, links only from safe
http(s) URLs, and every Block Kit limit held whatever the digest holds, since a refused digest is a lost
one. A digest of many topics is cut to fit 50 blocks, saying what was left out ("…and 2 more topics").

Layout: a header and the period (and which topics were left out because they are muted in the channel);
per topic a title line with its count, then its stories packed into sections (each story: linked title,
summary, source · time · score · outlets); "…and N more" when the period held more than the digest lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.notices import Digest, DigestTopic, StoryLine
from bot.render.slack import (
    BLOCKS_MAX,
    FALLBACK_TEXT_MAX,
    HEADER_TEXT_MAX,
    SECTION_TEXT_MAX,
    SOURCE_SHOWN_MAX,
    _context,
    _fit,
    _link,
    _plain,
    _section,
    slack_date,
    truncate_escaped,
)

EVENT_DIGEST = "watchfloor_digest"

TITLE_SHOWN = 300
SUMMARY_SHOWN = 500
OUTLETS_NAMED = 5
# Kept free at the end of the message for "…and N more topics".
_CLOSING_BLOCKS = 1


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _outlets(line: StoryLine) -> str:
    others = [s for s in dict.fromkeys(line.sources) if s and s != line.source]
    n = max(line.n_sources, 1 + len(others))
    if n <= 1:
        return ""
    if not others:
        return f"{n} sources"
    names = ", ".join(_fit(s, 60) for s in others[:OUTLETS_NAMED])
    more = f" and {len(others) - OUTLETS_NAMED} more" if len(others) > OUTLETS_NAMED else ""
    return f"{n} sources (also {names}{more})"


def story_text(line: StoryLine) -> str:
    """One story as mrkdwn, within a section's 3,000 characters: the title linked (shortened, or shown
    unlinked, before anything else is cut), the summary, and the facts line."""
    facts = " · ".join(
        p
        for p in (
            _fit(line.source, SOURCE_SHOWN_MAX),
            slack_date(line.published),
            f"score {line.score:.2f}",
            _outlets(line),
        )
        if p
    )
    summary = _fit(line.summary, SUMMARY_SHOWN)
    tail = (f"\n{summary}" if summary else "") + f"\n{facts}"
    title = _fit(line.title, TITLE_SHOWN) or "(untitled)"
    head = "*" + _link(line.url, title, SECTION_TEXT_MAX - len(tail) - 2) + "*"
    return head + tail


def _pack(texts: Sequence[str]) -> list[tuple[str, int]]:
    """Story texts joined into as few sections as fit 3,000 characters: (text, stories in it)."""
    packed: list[tuple[str, int]] = []
    current: list[str] = []
    for text in texts:
        if current and sum(len(c) + 2 for c in current) + len(text) > SECTION_TEXT_MAX:
            packed.append(("\n\n".join(current), len(current)))
            current = []
        current.append(text)
    if current:
        packed.append(("\n\n".join(current), len(current)))
    return packed


def _topic_blocks(topic: DigestTopic, room: int) -> list[dict[str, Any]]:
    """A topic's title line, its stories and its "…and N more", in at most `room` (≥ 3) blocks."""
    total = len(topic.stories) + topic.more
    blocks = [
        _section(f"*{_fit(topic.title, SOURCE_SHOWN_MAX)}* · {_count(total, 'new story', 'new stories')}")
    ]
    packed = _pack([story_text(s) for s in topic.stories])
    keep = len(packed)
    if 1 + keep + (1 if topic.more else 0) > room:
        keep = max(1, room - 2)  # the title, what fits, and the line saying what did not
    shown = 0
    for text, n in packed[:keep]:
        blocks.append(_section(text))
        shown += n
    left = total - shown
    if left > 0:
        blocks.append(_context([f"…and {_count(left, 'more story', 'more stories')} on this topic"]))
    return blocks


def muted_text(digest: Digest) -> str:
    """ "Muted here, left out: *A*, *B*", or "" when the digest left no muted topic out."""
    if not digest.muted:
        return ""
    names = ", ".join(f"*{_fit(t, 80)}*" for t in digest.muted[:10])
    more = f" and {len(digest.muted) - 10} others" if len(digest.muted) > 10 else ""
    return f":mute: Muted here, left out: {names}{more}"


def digest_blocks(digest: Digest, heading: str, period: str) -> list[dict[str, Any]]:
    """Header, period line, then each topic while blocks remain; topics that do not fit are named last.
    `heading` is plain text (our words); `period` is mrkdwn built by the caller."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _plain(heading, HEADER_TEXT_MAX), "emoji": True},
        },
        _context([period]),
    ]
    muted = muted_text(digest)
    if muted:
        blocks.append(_context([muted]))
    left_out: list[DigestTopic] = []
    for topic in digest.topics:
        room = BLOCKS_MAX - len(blocks) - _CLOSING_BLOCKS
        if left_out or room < 3:  # a title, one section, and the line saying what did not fit
            left_out.append(topic)
            continue
        blocks += _topic_blocks(topic, room)
    if left_out:
        names = ", ".join(_fit(t.title, 80) for t in left_out[:10])
        more = f" and {len(left_out) - 10} others" if len(left_out) > 10 else ""
        blocks.append(_context([f"…and {_count(len(left_out), 'more topic', 'more topics')}: {names}{more}"]))
    return blocks


def digest_fallback(digest: Digest, heading: str) -> str:
    """The notification text: how many stories on which topics."""
    n = sum(len(t.stories) + t.more for t in digest.topics)
    parts = ", ".join(f"{_fit(t.title, 80)} ({len(t.stories) + t.more})" for t in digest.topics)
    text = f"{_fit(heading, HEADER_TEXT_MAX)}: {_count(n, 'new story', 'new stories')}"
    return truncate_escaped(text + (f" — {parts}" if parts else ""), FALLBACK_TEXT_MAX)


def period_text(digest: Digest) -> str:
    return f"{slack_date(digest.since)} – {slack_date(digest.until)}"


def digest_metadata(digest: Digest) -> dict[str, Any]:
    """Names the digest; the delivery adds the outbox message id, which a retry after an uncertain send
    looks for in the channel history."""
    return {
        "event_type": EVENT_DIGEST,
        "event_payload": {
            "destination": digest.destination,
            "since": digest.since.isoformat(),
            "until": digest.until.isoformat(),
        },
    }


def digest_message(digest: Digest, heading: str = "Watchfloor digest") -> dict[str, Any]:
    """`chat.postMessage` arguments (minus `channel`) for a scheduled digest."""
    return {
        "text": digest_fallback(digest, heading),
        "blocks": digest_blocks(digest, heading, period_text(digest)),
        "unfurl_links": False,
        "unfurl_media": False,
        "metadata": digest_metadata(digest),
    }


def digest_reply(digest: Digest, checked: Sequence[str], period: str) -> dict[str, Any]:
    """The `/news digest` reply (`respond()` arguments minus `response_type`). `checked`: the titles of
    the topics looked at, named when nothing was new; `period` our words, e.g. "last 24h"."""
    heading = f"Digest: {period}"
    if digest.empty:
        names = ", ".join(f"*{_fit(t, 80)}*" for t in checked[:20]) or "no topic"
        more = f" and {len(checked) - 20} more" if len(checked) > 20 else ""
        text = f"Nothing new on {names}{more} in the {_fit(period, 40)} ({period_text(digest)})."
        return {"text": truncate_escaped(text, FALLBACK_TEXT_MAX), "blocks": [_section(text)]}
    return {
        "text": digest_fallback(digest, heading),
        "blocks": digest_blocks(digest, heading, period_text(digest)),
    }
