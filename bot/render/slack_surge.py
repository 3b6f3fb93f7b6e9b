"""A surge notice as Slack Block Kit: "12 stories on <topic> in the last 6h, usually 2", then the stories.

Built on `bot.render.slack`'s escaping, links, dates and listing, so the promises made there hold here too:
feed text (titles, outlets) is escaped once and never pings or forges a link, links come only from
validated http(s) URLs, and every Block Kit limit holds however long the titles.

Pure: a `Surge` in, `chat.postMessage` arguments (minus `channel`) out.
"""

from __future__ import annotations

from typing import Any

from bot.durations import format_duration
from bot.notices import StoryLine, Surge
from bot.render.slack import (
    BLOCKS_MAX,
    FALLBACK_TEXT_MAX,
    HEADER_TEXT_MAX,
    SECTION_TEXT_MAX,
    SOURCE_SHOWN_MAX,
    TITLE_SHOWN_MAX,
    _context,
    _fit,
    _link,
    _listing,
    _plain,
    _plain_text,
    slack_date,
    truncate_escaped,
)

EVENT_SURGE = "watchfloor_surge"


def _stories(n: int) -> str:
    return f"{n} stor{'ies' if n != 1 else 'y'}"


def _usual(surge: Surge, span: str) -> str:
    usual = f"{surge.usual:g}"
    return f"usually {usual} per {span}" if surge.usual else f"usually none in {span}"


def _story_line(story: StoryLine) -> str:
    title = _fit(story.title, TITLE_SHOWN_MAX) or "(untitled)"
    extra = f" · {story.n_sources} sources" if story.n_sources > 1 else ""
    tail = (
        f" — {_fit(story.source, SOURCE_SHOWN_MAX)} · {slack_date(story.published)}{extra}"
        f" · score {story.score:.2f}"
    )
    return "• " + _link(story.url, title, SECTION_TEXT_MAX - len(tail) - 2) + tail


def surge_metadata(surge: Surge) -> dict[str, Any]:
    """Names the surge (topic and window) so a retry after an uncertain send can find the message."""
    return {
        "event_type": EVENT_SURGE,
        "event_payload": {
            "topic": surge.topic,
            "window_start": surge.window_start.isoformat(),
            "window_end": surge.window_end.isoformat(),
        },
    }


def surge_message(surge: Surge) -> dict[str, Any]:
    """`chat.postMessage` arguments (minus `channel`) for one surge notice."""
    topic = _fit(surge.title, SOURCE_SHOWN_MAX)
    span = format_duration(surge.window_end - surge.window_start)
    headline = (
        f"*{_stories(surge.count)} on {topic} in the last {span}*, {_usual(surge, span)} "
        f"({surge.factor:.1f}× the usual rate)"
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain_text(_plain(f"Surge: {surge.title}", HEADER_TEXT_MAX))},
    ]
    closing = [
        _context(
            [
                f"{slack_date(surge.window_start)} to {slack_date(surge.window_end)}",
                f"{surge.count - len(surge.stories)} more not listed here"
                if surge.count > len(surge.stories)
                else "",
            ]
        )
    ]
    lines = [_story_line(s) for s in surge.stories]
    blocks += _listing(headline, lines, BLOCKS_MAX - len(blocks) - len(closing))
    blocks += closing
    return {
        "text": truncate_escaped(
            f"Surge on {topic}: {_stories(surge.count)} in {span}, {_usual(surge, span)}", FALLBACK_TEXT_MAX
        ),
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
        "metadata": surge_metadata(surge),
    }
