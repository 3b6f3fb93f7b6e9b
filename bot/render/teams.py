"""Alerts, follow-ups, digests and surge notices as Adaptive Cards for Teams Workflows webhooks.

Every card function returns the message envelope a Workflows webhook ("Post to a channel when a webhook
request is received") expects:

    {"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                          "contentUrl": null, "content": <AdaptiveCard 1.5>}]}

and `encode_message` turns it into the exact bytes the delivery code posts, so the size checked here is the
size sent. The feedback pages `watchfloor serve` shows for Teams links are rendered here too.

What this module promises:
- Feed text is hostile. Every feed string goes through `card_text` exactly once, on its way in (see its
  docstring for what Teams renders and why look-alike characters rather than escapes). No feed can form a
  link, a mention, emphasis, a list, a heading or a date function; only this module writes markup.
- Links (the title, "Open", the feedback actions) are built only from absolute http(s) URLs, with the
  characters that could end Markdown link syntax percent-encoded; anything else is shown unlinked.
- Every card's JSON, envelope included, stays under `CARD_BYTES_MAX` (20,000 bytes of UTF-8; Teams refuses
  about 28 KB). Text is cut on a character boundary, before it is composed into markup, so no cut lands
  inside a link or a date function; if a card is still too big, the lower-value parts go (long summaries,
  then the why and outlet lists, then stories from the end of a digest), down to a card that always fits.
- Cards validate against the Adaptive Card 1.5 JSON schema (the tests check every one).

Pure functions on plain data: no I/O, no clock (times come from the data).
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bot.durations import format_duration
from bot.feedback import Verdict
from bot.feedback_links import FeedbackLinks
from bot.notices import Digest, StoryLine, Surge
from bot.render.slack import VERDICT_LABELS, Report, safe_link_url
from bot.render.why import NO_REASON, positive_terms, rules_held
from bot.store import StoredAlert

CARD_VERSION = "1.5"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
# Teams refuses a webhook message past about 28 KB; the issue asks for 20 KB, which leaves room for what
# Workflows adds around the card.
CARD_BYTES_MAX = 20_000

ELLIPSIS = "…"
TOPIC_SHOWN_MAX = 120  # topic names come from config.toml, which sets no length limit
SOURCE_SHOWN_MAX = 120
TERM_SHOWN_MAX = 60
RULES_SHOWN = 10
OUTLETS_NAMED = 5

# Control characters and the invisible ones that can make text lie about itself (bidi overrides, zero-width
# spaces): the same set `bot.render.slack` removes. ZWNJ/ZWJ stay, scripts and emoji need them.
_UNSAFE_CHARS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]"
)
_WHITESPACE = re.compile(r"\s+")

# What Teams renders in a TextBlock (and Fact title/value): a CommonMark subset, **bold**, _italic_,
# "- " and "1. " lists, [label](url) links (https://learn.microsoft.com/adaptive-cards/authoring-cards/
# text-features; Teams: .../microsoftteams/platform/task-modules-and-cards/cards/cards-format), plus
# {{DATE(…)}} / {{TIME(…)}} functions, and `<at>name</at>` mentions resolved against the card's
# msteams.entities. HTML is not rendered, but iOS switches to an HTML text path when `<`, `>`, `&` appear
# (microsoft/AdaptiveCards#5428).
#
# Why look-alikes and not backslash escapes: Teams clients disagree about escapes. Backslashes show on
# iOS/Android where desktop hides them (AdaptiveCards#5590, #7474, #4677; msteams-docs#5793), and the
# shared emphasis parser ignores them in places (AdaptiveCards#5758). A character that is not markup on any
# client is the only neutralisation that holds everywhere; readers see nearly the same glyph. Swapped:
#   [ ]  → ［ ］  no link, image or reference syntax can open or close
#   < >  → ‹ ›   no <at> mention, HTML, autolink or blockquote
#   * _ ~ `  → ∗ ˍ ∼ ˋ   no emphasis, strikethrough or code span
#   \  → ∖       no escape that could swallow the `]` of the link we build around a title
#   &  → ＆ only where it would start an entity (`&lt;`, `&#60;`): "AT&T" stays as it is
#   {{ → ｛｛     no date/time function
# and at the start of a text "#", "-", "+" (lists, headings, "---" rules) and "1. ", "1) " lose their meaning. Feed text is
# folded onto one line first, so "start of a text" is the only line start there is.
_LOOKALIKES = (
    ("[", "［"), ("]", "］"), ("<", "‹"), (">", "›"), ("*", "∗"), ("_", "ˍ"), ("~", "∼"), ("`", "ˋ"), ("\\", "∖"),
)  # fmt: skip
_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")
_LINE_START = re.compile(r"^(?:(#)|([-+])|(\d{1,9})([.)])(?=\s))")
_TAIL_JOINERS = "\u200c\u200d\ufe0e\ufe0f"


def _line_start(match: re.Match[str]) -> str:
    heading, bullet, number, mark = match.groups()
    if heading:
        return "＃"
    if bullet:
        return {"-": "‐", "+": "＋"}[bullet]
    return f"{number}{'․' if mark == '.' else '）'}"


def card_text(raw: str, limit: int | None = None) -> str:
    """Untrusted text made inert for a TextBlock or Fact: one line, no markup, at most `limit` characters.

    The result contains no escape sequences at all (see the table above), so it can be cut anywhere on a
    character boundary; the cut is made here, before the text is put into any markup. Call it once per
    string: it is idempotent in meaning, but the look-alikes are already in place.

    With a `limit`, only the start of `raw` is looked at (a generous multiple of the limit, to allow for
    whitespace folded away): a 100,000-character feed field costs no more than a short one."""
    if limit is not None:
        raw = raw[: limit * 4 + 256]
    text = _UNSAFE_CHARS.sub("", unicodedata.normalize("NFC", raw))
    text = _WHITESPACE.sub(" ", text).strip()
    for markup, lookalike in _LOOKALIKES:  # str.replace runs in C; a translate table is ~10x slower
        text = text.replace(markup, lookalike)
    text = _ENTITY.sub("＆", text).replace("{{", "｛｛")
    text = _LINE_START.sub(_line_start, text, count=1)
    return _cut(text, limit) if limit is not None else text


def _cut(text: str, limit: int) -> str:
    """`text` within `limit` characters, ending in `…` when cut; a cut never leaves a combining mark or a
    joiner hanging off the end (they would attach to the ellipsis)."""
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return ""
    head = text[: limit - len(ELLIPSIS)]
    while head and (unicodedata.combining(head[-1]) or head[-1] in _TAIL_JOINERS):
        head = head[:-1]
    return head.rstrip() + ELLIPSIS


def card_url(url: str) -> str | None:
    """The URL ready for `[label](url)` and `Action.OpenUrl`, or None when it must not be linked.

    `bot.render.slack.safe_link_url` does the checking (absolute http(s) with a host, no controls, at most
    2,000 characters) and percent-encodes spaces, quotes and `<`/`>`; here its Slack-only `&amp;` is undone
    and the brackets and parentheses that could end Markdown link syntax are percent-encoded too (path,
    query and fragment only: the host is left alone, and one holding them is refused)."""
    safe = safe_link_url(url)
    if safe is None:
        return None
    parts = urlsplit(safe.replace("&amp;", "&"))
    if re.search(r"[()]", parts.netloc):
        return None
    table = str.maketrans({"(": "%28", ")": "%29", "[": "%5B", "]": "%5D"})
    return urlunsplit(
        (
            parts.scheme,
            parts.netloc,
            parts.path.translate(table),
            parts.query.translate(table),
            parts.fragment.translate(table),
        )
    )


def _link(url: str, label: str) -> str:
    """`[label](url)` for an already neutralised label, or the bare label when the URL is unsafe."""
    target = card_url(url)
    return f"[{label}]({target})" if target else label


def card_time(when: datetime) -> str:
    """Date and time as Adaptive Card functions: each reader's Teams shows them in their own time zone."""
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{{{{DATE({stamp}, SHORT)}}}} {{{{TIME({stamp})}}}}"


def encode_message(envelope: Mapping[str, Any]) -> bytes:
    """The bytes posted to the webhook: compact UTF-8 JSON (what `CARD_BYTES_MAX` is measured on)."""
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _envelope(card: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }


def _card(body: list[dict[str, Any]], actions: list[dict[str, Any]], fallback: str) -> dict[str, Any]:
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": CARD_SCHEMA,
        "version": CARD_VERSION,
        "fallbackText": fallback,
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return _envelope(card)


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _open(title: str, url: str) -> dict[str, Any] | None:
    target = card_url(url)
    return {"type": "Action.OpenUrl", "title": title, "url": target} if target else None


def _fits(envelope: Mapping[str, Any]) -> bool:
    return len(encode_message(envelope)) < CARD_BYTES_MAX


# -- shared facts -------------------------------------------------------------------------------------


def why_line(why: Mapping[str, Any], terms_shown: int = 5, rules_shown: int = RULES_SHOWN) -> str:
    """Why a topic fired, as plain card text: the strongest positive terms and the keyword rules that
    held (the facts `bot.render.slack.why_text` shows, neutralised for cards instead of mrkdwn)."""
    parts: list[str] = []
    terms = positive_terms(why, terms_shown)
    if terms:
        parts.append(", ".join(f"{card_text(term, TERM_SHOWN_MAX)} {weight:+.2f}" for term, weight in terms))
    rules = rules_held(why, rules_shown)
    if rules:
        parts.append("rules: " + ", ".join(card_text(r, TERM_SHOWN_MAX) for r in rules))
    return "; ".join(parts) or NO_REASON


def outlets_line(source: str, n_sources: int, others: Sequence[str], shown: int = 8) -> str:
    """ "Reported by 3 outlets: Wire, Gazette, Desk" (the story's "N sources" line); "" for one outlet.

    `shown` names at most that many (the rest are "and N more"); 0 gives the count alone."""
    names = [n for n in dict.fromkeys(_WHITESPACE.sub(" ", s).strip() for s in (source, *others)) if n]
    n = max(n_sources, len(names))
    if n <= 1:
        return ""
    listed = names[:shown]
    if not listed:
        return f"Reported by {n} outlets"
    more = n - len(listed)
    tail = f" and {more} more" if more > 0 else ""
    return f"Reported by {n} outlets: " + ", ".join(card_text(s, SOURCE_SHOWN_MAX) for s in listed) + tail


# -- alerts -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Budget:
    """How much of each part a card may show; the levels below shrink it until the card fits."""

    title: int
    summary: int
    terms: int
    rules: int
    outlets: int
    links: bool = True


_ALERT_LEVELS = (
    _Budget(title=300, summary=1500, terms=5, rules=RULES_SHOWN, outlets=8),
    _Budget(title=200, summary=600, terms=5, rules=5, outlets=5),
    _Budget(title=150, summary=200, terms=3, rules=2, outlets=3),
    _Budget(title=100, summary=0, terms=0, rules=0, outlets=0),
    # Only a pathological config (a public_url thousands of characters long) gets here: no links at all.
    _Budget(title=80, summary=0, terms=0, rules=0, outlets=0, links=False),
)


def _alert_envelope(
    alert: StoredAlert,
    topic_title: str,
    feedback: FeedbackLinks | None,
    extra_sources: Sequence[str],
    budget: _Budget,
) -> dict[str, Any]:
    title = card_text(alert.title, budget.title) or "(untitled)"
    source = card_text(alert.source, SOURCE_SHOWN_MAX)
    topic = card_text(topic_title, TOPIC_SHOWN_MAX)
    body = [
        _text(_link(alert.url, title) if budget.links else title, weight="Bolder", size="Medium"),
        _text(f"{source} · {card_time(alert.published)}", isSubtle=True, spacing="None"),
    ]
    summary = card_text(alert.summary, budget.summary) if budget.summary else ""
    if summary:
        body.append(_text(summary))
    facts = [{"title": "Topic", "value": topic}, {"title": "Score", "value": f"{alert.score:.2f}"}]
    if budget.terms or budget.rules:
        facts.append({"title": "Why", "value": why_line(alert.why, budget.terms, budget.rules)})
    body.append({"type": "FactSet", "facts": facts})
    outlets = outlets_line(alert.source, alert.n_sources, extra_sources, budget.outlets)
    if outlets:
        body.append(_text(outlets, isSubtle=True))
    actions: list[dict[str, Any]] = []
    if budget.links:
        opened = _open("Open", alert.url)
        if opened:
            actions.append(opened)
        if feedback is not None:
            for label, url in ((VERDICT_LABELS["relevant"], feedback.relevant),
                               (VERDICT_LABELS["not_relevant"], feedback.not_relevant)):  # fmt: skip
                action = _open(label, url)
                if action:
                    actions.append(action)
    return _card(body, actions, fallback=f"{topic}: {title} — {source}")


def _first_fitting(build: Callable[[_Budget], dict[str, Any]], levels: Sequence[_Budget]) -> dict[str, Any]:
    envelope: dict[str, Any] = {}
    for budget in levels:
        envelope = build(budget)
        if _fits(envelope):
            return envelope
    return envelope  # the last level is built to fit whatever the input; tests hold it to that


def alert_card(
    alert: StoredAlert,
    topic_title: str,
    *,
    feedback: FeedbackLinks | None,
    extra_sources: Sequence[str] = (),
) -> dict[str, Any]:
    """The message envelope for one alert: title linked, source and time, summary, topic, score and why,
    the story's outlets, and the Open / Relevant / Not relevant actions (feedback ones when `feedback`).

    `extra_sources`: other outlets known for the story, named on the "Reported by N outlets" line."""
    return _first_fitting(
        lambda b: _alert_envelope(alert, topic_title, feedback, extra_sources, b), _ALERT_LEVELS
    )


# -- later reports --------------------------------------------------------------------------------------


_REPORT_LEVELS = (
    _Budget(title=300, summary=0, terms=0, rules=0, outlets=20),  # outlets: here, reports listed
    _Budget(title=200, summary=0, terms=0, rules=0, outlets=10),
    _Budget(title=120, summary=0, terms=0, rules=0, outlets=4),
    _Budget(title=80, summary=0, terms=0, rules=0, outlets=0, links=False),
)


def _report_blocks(report: Report, budget: _Budget) -> list[dict[str, Any]]:
    title = card_text(report.title, budget.title) or "(untitled)"
    source = card_text(report.source, SOURCE_SHOWN_MAX)
    return [
        _text(_link(report.url, title) if budget.links else title, spacing="Medium"),
        _text(f"{source} · {card_time(report.published)}", isSubtle=True, spacing="None"),
    ]


def followup_card(
    parent: StoredAlert,
    reports: Sequence[Report],
    topic_title: str,
    *,
    extra_sources: Sequence[str] = (),
) -> dict[str, Any]:
    """A small card for later reports of an already-alerted story: "More reports: <story title>", the
    outlets and their links. (A webhook cannot edit the card it posted, so the news goes out as a new one.)

    `extra_sources`: every outlet now known for the story, for the "Reported by N outlets" line."""

    def build(budget: _Budget) -> dict[str, Any]:
        story = card_text(parent.title, budget.title) or "(untitled)"
        topic = card_text(topic_title, TOPIC_SHOWN_MAX)
        body = [
            _text(f"More reports: {story}", weight="Bolder", size="Medium"),
            _text(topic, isSubtle=True, spacing="None"),
        ]
        for report in reports[: budget.outlets]:
            body += _report_blocks(report, budget)
        hidden = len(reports) - min(len(reports), budget.outlets)
        if hidden:
            body.append(_text(f"…and {hidden} more report{'s' if hidden != 1 else ''}", isSubtle=True))
        n_sources = max(parent.n_sources, len({parent.source, *extra_sources}))
        others = [*extra_sources, *(r.source for r in reports)]
        outlets = outlets_line(parent.source, n_sources, others, min(budget.outlets, 8))
        if outlets:
            body.append(_text(outlets, isSubtle=True))
        names = ", ".join(dict.fromkeys(card_text(r.source, SOURCE_SHOWN_MAX) for r in reports[:8]))
        return _card(body, [], fallback=f"More reports: {story}" + (f" — {names}" if names else ""))

    return _first_fitting(build, _REPORT_LEVELS)


# -- flood roll-ups -------------------------------------------------------------------------------------


def rollup_card(topic_title: str, stories: Sequence[StoredAlert]) -> dict[str, Any]:
    """ "N more stories on <topic>": the stories flood control held back past the hourly cap (see
    `bot.delivery.flood`), each title linked with its source and time, as the follow-up card lists reports;
    "+N more stories" for those the card has no room for (at most 20 are listed, fewer if they are long).

    The Teams counterpart of `bot.render.slack.flood_rollup_message`."""
    n = len(stories)
    topic = card_text(topic_title, TOPIC_SHOWN_MAX)
    head = f"{_count(n, 'more story', 'more stories')} on {topic}"

    def build(budget: _Budget) -> dict[str, Any]:
        body = [
            _text(head, weight="Bolder", size="Medium"),
            _text("Past this topic's hourly limit here, so sent together.", isSubtle=True, spacing="None"),
        ]
        for story in stories[: budget.outlets]:
            body += _report_blocks(story, budget)
        hidden = n - min(n, budget.outlets)
        if hidden:
            body.append(_text(f"+{_count(hidden, 'more story', 'more stories')}", isSubtle=True))
        return _card(body, [], fallback=head)

    return _first_fitting(build, _REPORT_LEVELS)


# -- digests and surges ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ListBudget:
    title: int
    summary: int
    stories: int  # per section
    links: bool = True


_LIST_LEVELS = (
    _ListBudget(title=300, summary=600, stories=20),
    _ListBudget(title=200, summary=300, stories=10),
    _ListBudget(title=150, summary=150, stories=5),
    _ListBudget(title=120, summary=0, stories=3),
    _ListBudget(title=100, summary=0, stories=1),
    _ListBudget(title=80, summary=0, stories=0, links=False),
)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _story_outlets(story: StoryLine) -> str:
    """ "3 sources (also Gazette, Desk)", as a Slack digest says it; "" for one outlet."""
    others = [s for s in dict.fromkeys(story.sources) if s and s != story.source]
    n = max(story.n_sources, 1 + len(others))
    if n <= 1:
        return ""
    if not others:
        return f"{n} sources"
    names = ", ".join(card_text(s, 60) for s in others[:OUTLETS_NAMED])
    more = f" and {len(others) - OUTLETS_NAMED} more" if len(others) > OUTLETS_NAMED else ""
    return f"{n} sources (also {names}{more})"


def _story_blocks(story: StoryLine, budget: _ListBudget) -> list[dict[str, Any]]:
    title = card_text(story.title, budget.title) or "(untitled)"
    facts = [
        card_text(story.source, SOURCE_SHOWN_MAX),
        card_time(story.published),
        f"score {story.score:.2f}",
        _story_outlets(story) if budget.summary else "",
    ]
    blocks = [_text(_link(story.url, title) if budget.links else title, weight="Bolder", spacing="Medium")]
    summary = card_text(story.summary, budget.summary) if budget.summary else ""
    if summary:
        blocks.append(_text(summary, spacing="Small"))
    blocks.append(_text(" · ".join(f for f in facts if f), isSubtle=True, spacing="Small"))
    return blocks


def _section(heading: str, stories: Sequence[StoryLine], hidden: int, budget: _ListBudget) -> dict[str, Any]:
    """A heading, the stories the budget allows, and a closing line for `hidden` plus those it cut."""
    items = [_text(heading, weight="Bolder", size="Medium")]
    for story in stories[: budget.stories]:
        items += _story_blocks(story, budget)
    hidden += len(stories) - min(len(stories), budget.stories)
    if hidden:
        items.append(_text(f"…and {_count(hidden, 'more story', 'more stories')}", isSubtle=True))
    return {"type": "Container", "separator": True, "spacing": "Medium", "items": items}


def _period(start: datetime, end: datetime) -> str:
    return f"{card_time(start)} – {card_time(end)}"


def digest_card(digest: Digest, heading: str = "Watchfloor digest") -> dict[str, Any]:
    """A digest, with the facts a Slack digest shows: the period (and the topics left out because they are
    muted here), then per topic its count of new stories and its top stories (title linked, summary,
    source · time · score · outlets), and "…and N more" for the period's other stories. Too big a digest
    loses summaries, then stories from each topic's end (counted in "…and N more"), then whole topics from
    the end ("…and N more topics: …")."""
    topics = [t for t in digest.topics if t.stories or t.more]
    n_stories = sum(len(t.stories) + t.more for t in topics)
    title = card_text(heading, TOPIC_SHOWN_MAX)
    counts = ", ".join(f"{card_text(t.title, 80)} ({len(t.stories) + t.more})" for t in topics[:20])
    fallback = f"{title}: {_count(n_stories, 'new story', 'new stories')}" + (
        f" — {counts}" if counts else ""
    )
    muted = "Muted here, left out: " + ", ".join(card_text(t, 80) for t in digest.muted[:10])
    if len(digest.muted) > 10:
        muted += f" and {len(digest.muted) - 10} others"

    @cache
    def section(index: int, budget: _ListBudget) -> dict[str, Any]:
        t = topics[index]
        total = len(t.stories) + t.more
        head = f"{card_text(t.title, TOPIC_SHOWN_MAX)} · {_count(total, 'new story', 'new stories')}"
        return _section(head, t.stories, t.more, budget)

    @cache
    def section_bytes(index: int, budget: _ListBudget) -> int:
        return len(encode_message(section(index, budget)))

    def build(budget: _ListBudget, kept: int) -> dict[str, Any]:
        body = [
            _text(title, weight="Bolder", size="Large"),
            _text(_period(digest.since, digest.until), isSubtle=True, spacing="None"),
        ]
        if digest.muted:
            body.append(_text(muted, isSubtle=True, spacing="None"))
        if not topics:
            body.append(_text("Nothing new on your topics in this period."))
        size = 0
        for i in range(min(kept, len(topics))):
            body.append(section(i, budget))
            size += section_bytes(i, budget)
            if size >= CARD_BYTES_MAX:
                break  # this card cannot fit: no need to render the topics after it
        left_out = topics[kept:]
        if left_out:
            names = ", ".join(card_text(t.title, 80) for t in left_out[:10])
            more = f" and {len(left_out) - 10} others" if len(left_out) > 10 else ""
            line = f"…and {_count(len(left_out), 'more topic', 'more topics')}: {names}{more}"
            body.append(_text(line, isSubtle=True))
        return _card(body, [], fallback=fallback)

    return _fit_listing(build, len(topics))


def _fit_listing(build: Callable[[_ListBudget, int], dict[str, Any]], sections: int) -> dict[str, Any]:
    """The first level at which all `sections` fit; failing that, the most sections that fit at the last
    level (the size grows with the sections kept, so a binary search finds it in a few builds)."""
    for budget in _LIST_LEVELS:
        envelope = build(budget, sections)
        if _fits(envelope):
            return envelope
    last = _LIST_LEVELS[-1]
    low, high = 0, sections - 1
    while low < high:
        middle = (low + high + 1) // 2
        if _fits(build(last, middle)):
            low = middle
        else:
            high = middle - 1
    return build(last, low)


def surge_card(surge: Surge) -> dict[str, Any]:
    """A surge notice, with the facts Slack's shows: "12 stories on <topic> in the last 6h, usually 2 per
    6h (6.0× the usual rate)", the window, and the top stories as a digest lists them."""
    topic = card_text(surge.title, TOPIC_SHOWN_MAX)
    span = format_duration(surge.window_end - surge.window_start)
    usual = f"usually {surge.usual:g} per {span}" if surge.usual else f"usually none in {span}"
    stories = _count(surge.count, "story", "stories")
    line = f"{stories} on {topic} in the last {span}, {usual} ({surge.factor:.1f}× the usual rate)"

    def build(budget: _ListBudget, kept: int) -> dict[str, Any]:
        body = [
            _text(f"Surge: {topic}", weight="Bolder", size="Large", color="Attention"),
            _text(line, spacing="Small"),
            _text(_period(surge.window_start, surge.window_end), isSubtle=True, spacing="None"),
        ]
        if kept and surge.stories:
            hidden = max(0, surge.count - len(surge.stories))
            body.append(_section("Top stories", surge.stories, hidden, budget))
        return _card(body, [], fallback=f"Surge on {topic}: {stories} in {span}, {usual}")

    return _fit_listing(build, 1)


# -- the feedback pages of `watchfloor serve` ------------------------------------------------------------


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em}}
button{{font:inherit;padding:.4em 1.2em}}.quiet{{color:#555}}</style>
</head><body>
{body}
</body></html>
"""


def _page(title: str, body: str) -> str:
    return _PAGE.format(title=html.escape(title), body=body)


@dataclass(frozen=True, slots=True)
class FeedbackView:
    """What a feedback page says about the alert a link names."""

    title: str
    topic_title: str
    verdict: Verdict
    destination: str
    already: bool


def _describe(view: FeedbackView) -> str:
    title = html.escape(_WHITESPACE.sub(" ", view.title).strip()[:300] or "(untitled)")
    topic = html.escape(_WHITESPACE.sub(" ", view.topic_title).strip()[:TOPIC_SHOWN_MAX])
    return f"<p>“{title}”</p>\n<p class=quiet>Topic: {topic} · from Teams channel {html.escape(view.destination)}</p>"


def feedback_confirm_page(view: FeedbackView) -> str:
    """The answer to GET: what the link would record and a button that POSTs it.

    Nothing is recorded on GET: link previewers and mail scanners fetch URLs without anyone clicking."""
    label = VERDICT_LABELS[view.verdict]
    note = (
        f"<p class=quiet>This channel has already marked it {html.escape(label.lower())}.</p>\n"
        if view.already
        else ""
    )
    body = (
        f"<h1>Mark as {html.escape(label.lower())}?</h1>\n{_describe(view)}\n{note}"
        '<form method="post"><button type="submit">'
        f"Mark {html.escape(label.lower())}</button></form>"
    )
    return _page(f"Watchfloor: mark {label.lower()}?", body)


def feedback_done_page(view: FeedbackView) -> str:
    """The answer to POST: the verdict is recorded (or was already)."""
    label = VERDICT_LABELS[view.verdict].lower()
    if view.already:
        head = f"Already recorded: {html.escape(label)}"
        line = "<p>This channel had already given this verdict; it is recorded once.</p>"
    else:
        head = f"Recorded: {html.escape(label)}"
        line = "<p>Thank you. This teaches the topic's model; open the other link to change your mind.</p>"
    return _page(f"Watchfloor: {label}", f"<h1>{head}</h1>\n{_describe(view)}\n{line}")


def feedback_problem_page(message: str) -> str:
    """A refused or failed link, with its reason (already safe to show; escaped here anyway)."""
    return _page(
        "Watchfloor: feedback link", f"<h1>Feedback not recorded</h1>\n<p>{html.escape(message)}</p>"
    )
