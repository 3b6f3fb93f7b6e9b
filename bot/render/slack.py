"""Alerts as Slack Block Kit: the one place that knows Slack's limits and its escaping.

Every function returns the keyword arguments of a Web API call (`chat.postMessage`, `chat.update`) minus
`channel`, so the delivery code adds the destination and sends; nothing else builds Slack JSON by hand.

What this module promises:
- Feed text is hostile. Every feed string (title, source, summary, terms) is escaped exactly once, on its
  way in, by `escape_mrkdwn`: `&`, `<`, `>` become entities, so a title holding `<!channel>`, `<@U123>` or
  `<https://evil.example|click here>` shows as that text and pings nobody, links nowhere. Mrkdwn text objects
  that carry feed text are `verbatim`, so Slack does not auto-link names or URLs inside them either.
- Links are built only from validated http(s) URLs, with the characters that would end Slack's `<url|label>`
  markup percent-encoded; anything else (`javascript:`, `data:`, relative, malformed) is shown unlinked.
- Every Block Kit limit holds whatever the input: text is cut on a character boundary that never splits an
  entity such as `&amp;`, and never inside link markup (a link whose label does not fit is shortened as a
  whole). A message Slack rejects is a lost alert, so nothing here is left to luck.

Pure functions on plain data: no I/O, no clock (times come from the alert).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

from bot.render.why import NO_REASON, positive_terms, rules_held
from bot.store import StoredAlert

# Block Kit limits (https://docs.slack.dev/reference/block-kit/blocks). slack_sdk's block models check the
# same numbers; the tests run every rendered payload through them.
SECTION_TEXT_MAX = 3000
HEADER_TEXT_MAX = 150
CONTEXT_ELEMENTS_MAX = 10
CONTEXT_TEXT_MAX = 2000
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
ACTION_ID_MAX = 255
BLOCK_ID_MAX = 255
BLOCKS_MAX = 50
# Slack truncates a message's top-level `text` past 40,000 characters; notifications show far less, and
# the brief for this layer keeps the fallback to 3,000.
FALLBACK_TEXT_MAX = 3000
CONFIRM_TITLE_MAX = 100
CONFIRM_TEXT_MAX = 300

# Shown lengths, well inside the limits, so one hostile field cannot crowd out the rest of the message.
TITLE_SHOWN_MAX = 500
SOURCE_SHOWN_MAX = 200
TERM_SHOWN_MAX = 60
TERMS_SHOWN = 5
URL_LINK_MAX = 2000  # longer URLs are shown unlinked rather than eating the section's 3,000 characters

ACTION_RELEVANT = "feedback_relevant"
ACTION_NOT_RELEVANT = "feedback_not_relevant"
ACTION_MUTE_24H = "mute_topic_24h"

EVENT_ALERT = "watchfloor_alert"
EVENT_FOLLOWUP = "watchfloor_followup"
EVENT_ROLLUP = "watchfloor_rollup"

VERDICT_LABELS = {"relevant": "Relevant", "not_relevant": "Not relevant"}

ELLIPSIS = "…"

# C0/C1 controls except tab and newline, plus the invisible characters that can make text lie about
# itself: bidi marks, overrides and isolates (a right-to-left override can disguise a domain) and
# zero-width spaces. ZWNJ/ZWJ (U+200C/D) stay: Persian, Indic scripts and emoji sequences need them.
_UNSAFE_CHARS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]"
)
# Mrkdwn markers that could restyle feed text (strike a "not", bold a claim, hide text in code spans) are
# swapped for look-alikes. `_` is kept: it is common in URLs and identifiers and italics mislead little.
_FORMATTING = str.maketrans({"*": "∗", "~": "∼", "`": "ˋ"})
_WHITESPACE = re.compile(r"\s+")
_ENTITY_TAIL = re.compile(r"&[a-z]{0,3}$")
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")
_URL_SAFE = "!$%&'()*+,-./:;=@[]_~"
_BAD_NETLOC = re.compile(r"[\s<>|\"\\^`{}]")


class Report(Protocol):
    """A news report as a thread reply or a roll-up line needs it: `StoredAlert` and `Item` both fit."""

    @property
    def title(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def published(self) -> datetime: ...


def escape_mrkdwn(text: str, *, neutralise_formatting: bool = True) -> str:
    """Untrusted text made safe for a Slack mrkdwn (or fallback `text`) field.

    Removes control and invisible direction characters, escapes `&`, `<`, `>` (Slack's only special
    characters: with them escaped no mention, broadcast, date or link markup can be formed) and, unless
    told otherwise, swaps `*`, `~` and backticks for look-alikes. Call it once per string: the result is
    markup, and escaping it again would show `&amp;amp;`.
    """
    text = _UNSAFE_CHARS.sub("", unicodedata.normalize("NFC", text))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if neutralise_formatting:
        text = text.translate(_FORMATTING)
    return text


def _one_line(text: str) -> str:
    """Whitespace folded to single spaces: feed fields are one paragraph, and a line starting with `>`
    (escaped or not) would render as a quote."""
    return _WHITESPACE.sub(" ", text).strip()


def truncate_escaped(text: str, limit: int) -> str:
    """`text` (already escaped) cut to at most `limit` characters, ending in `…` when cut.

    Never splits an entity (`&amp;`, `&lt;`, `&gt;`): a cut that would land inside one drops the whole
    entity. Only for text without link markup; links are shortened through their label.
    """
    if len(text) <= limit:
        return text
    if limit <= len(ELLIPSIS):
        return ""
    head = text[: limit - len(ELLIPSIS)]
    head = _ENTITY_TAIL.sub("", head)
    return head.rstrip() + ELLIPSIS


def _fit(raw: str, limit: int) -> str:
    """Feed text escaped once, on one line, within `limit` characters."""
    return truncate_escaped(escape_mrkdwn(_one_line(raw)), limit)


def _plain(raw: str, limit: int) -> str:
    """Text for `plain_text` objects (buttons, confirm dialogs): no markup at all, so no escaping; Slack
    shows it literally. Controls are still removed."""
    text = _one_line(_UNSAFE_CHARS.sub("", raw))
    if len(text) <= limit:
        return text
    return text[: limit - len(ELLIPSIS)].rstrip() + ELLIPSIS


def safe_link_url(url: str) -> str | None:
    """The URL ready to sit inside `<…|…>`, or None when it must not be linked.

    Only absolute http(s) URLs with a host are linked. `&` becomes `&amp;` (Slack unescapes it in links);
    `<`, `>`, `|`, spaces and quotes are percent-encoded so they cannot close the markup or start a label.
    """
    url = url.strip()
    if not url or len(url) > URL_LINK_MAX or _UNSAFE_CHARS.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    if _BAD_NETLOC.search(parts.netloc):
        return None
    # Only path, query and fragment are percent-encoded: encoding the host would break IDN hosts.
    encoded = urlunsplit(
        (
            parts.scheme,
            parts.netloc,
            quote(parts.path, safe=_URL_SAFE),
            quote(parts.query, safe=_URL_SAFE + "?"),
            quote(parts.fragment, safe=_URL_SAFE + "?#"),
        )
    )
    return encoded.replace("&", "&amp;")


def _link(url: str, label_escaped: str, budget: int) -> str:
    """`<url|label>` within `budget` characters, the label shortened if need be; the bare label when the
    URL is unsafe or even a one-character label would not fit."""
    safe = safe_link_url(url)
    if safe is None:
        return truncate_escaped(label_escaped, budget)
    room = budget - len(safe) - 3  # "<", "|", ">"
    if room < 2:
        return truncate_escaped(label_escaped, budget)
    # Slack's parser splits `<url|label>` at a `|`; one inside the label could shift where the URL ends,
    # so the label's own bars become a look-alike.
    label = truncate_escaped(label_escaped.replace("|", "∣"), room)
    return f"<{safe}|{label}>"


def slack_date(when: datetime) -> str:
    """A `<!date>` token: Slack shows it in each reader's own time zone; the fallback is UTC."""
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    fallback = when.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _plain_text(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(truncate_escaped(text, SECTION_TEXT_MAX))}


def _context(elements: Sequence[str]) -> dict[str, Any]:
    kept = [e for e in elements if e][:CONTEXT_ELEMENTS_MAX]
    return {"type": "context", "elements": [_mrkdwn(truncate_escaped(e, CONTEXT_TEXT_MAX)) for e in kept]}


def why_text(why: Mapping[str, Any]) -> str:
    """The reason a topic fired, escaped: the strongest positive terms and the keyword rules that held."""
    parts: list[str] = []
    terms = positive_terms(why, TERMS_SHOWN)
    if terms:
        parts.append(", ".join(f"{_fit(term, TERM_SHOWN_MAX)} {weight:+.2f}" for term, weight in terms))
    rules = rules_held(why, 10)
    if rules:
        parts.append("rules: " + ", ".join(_fit(r, TERM_SHOWN_MAX) for r in rules))
    return "; ".join(parts) or NO_REASON


def _button_value(alert: StoredAlert) -> str:
    value = json.dumps({"alert_id": alert.alert.id, "topic": alert.alert.topic}, separators=(",", ":"))
    if len(value) > BUTTON_VALUE_MAX:
        # Ids come from the store (alert ids are 40 characters, topic slugs 80), never from a feed.
        raise ValueError(
            f"alert {alert.alert.id[:40]!r}: button value is {len(value)} characters, Slack allows "
            f"{BUTTON_VALUE_MAX}; topic ids and alert ids must stay short"
        )
    return value


def _button(text: str, action_id: str, value: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "button",
        "text": _plain_text(_plain(text, BUTTON_TEXT_MAX)),
        "action_id": action_id[:ACTION_ID_MAX],
        "value": value,
        **extra,
    }


def _feedback_text(feedback: Mapping[str, str]) -> str:
    """`Relevant — @ana, @bo · Not relevant — @cy`; user ids that are not Slack ids are dropped, as they
    would be placed inside `<@…>` markup."""
    by_verdict: dict[str, list[str]] = {}
    for user, verdict in feedback.items():
        if verdict in VERDICT_LABELS and _SLACK_USER_ID.match(user):
            by_verdict.setdefault(verdict, []).append(user)
    parts = []
    for verdict, label in VERDICT_LABELS.items():
        users = by_verdict.get(verdict, [])
        if not users:
            continue
        # Mentions are whole tokens: keep as many as fit, then say how many more.
        budget = CONTEXT_TEXT_MAX // len(VERDICT_LABELS) - 40
        shown: list[str] = []
        for u in users:
            if sum(len(s) + 2 for s in shown) + len(u) + 3 > budget:
                break
            shown.append(f"<@{u}>")
        more = f" and {len(users) - len(shown)} more" if len(shown) < len(users) else ""
        parts.append(f"{label} — {', '.join(shown)}{more}")
    return " · ".join(parts)


def _sources_text(alert: StoredAlert, extra_sources: Sequence[str]) -> str:
    others = [s for s in dict.fromkeys(_one_line(s) for s in extra_sources) if s and s != alert.source]
    n = max(alert.n_sources, 1 + len(others))
    if n <= 1:
        return ""
    if not others:
        return f"{n} sources"
    names = ", ".join(_fit(s, SOURCE_SHOWN_MAX) for s in others[:8])
    more = f" and {len(others) - 8} more" if len(others) > 8 else ""
    return f"{n} sources (also {names}{more})"


def _alert_blocks(
    alert: StoredAlert, topic_title: str, extra_sources: Sequence[str], feedback: Mapping[str, str]
) -> list[dict[str, Any]]:
    title = _fit(alert.title, TITLE_SHOWN_MAX) or "(untitled)"
    blocks: list[dict[str, Any]] = [
        _section("*" + _link(alert.url, title, SECTION_TEXT_MAX - 2) + "*"),
        _context([f"*{_fit(alert.source, SOURCE_SHOWN_MAX)}* · {slack_date(alert.published)}"]),
    ]
    summary = _fit(alert.summary, SECTION_TEXT_MAX)
    if summary:
        blocks.append(_section(summary))
    blocks.append(
        _context(
            [
                f"*{_fit(topic_title, SOURCE_SHOWN_MAX)}*",
                f"score {alert.score:.2f}",
                "why: " + why_text(alert.why),
                _sources_text(alert, extra_sources),
            ]
        )
    )
    value = _button_value(alert)
    topic_plain = _plain(topic_title, 60)
    blocks.append(
        {
            "type": "actions",
            "elements": [
                _button("Relevant", ACTION_RELEVANT, value),
                _button("Not relevant", ACTION_NOT_RELEVANT, value),
                _button(
                    "Mute topic here 24 h",
                    ACTION_MUTE_24H,
                    value,
                    confirm={
                        "title": _plain_text(_plain(f"Mute {topic_plain}?", CONFIRM_TITLE_MAX)),
                        "text": _plain_text(
                            _plain(
                                f"No alerts on {topic_plain} in this channel for 24 hours. "
                                "/news unmute ends it sooner.",
                                CONFIRM_TEXT_MAX,
                            )
                        ),
                        "confirm": _plain_text("Mute"),
                        "deny": _plain_text("Cancel"),
                    },
                ),
            ],
        }
    )
    verdicts = _feedback_text(feedback)
    if verdicts:
        blocks.append(_context([verdicts]))
    return blocks


def _alert_fallback(alert: StoredAlert, topic_title: str) -> str:
    return truncate_escaped(
        f"{_fit(topic_title, SOURCE_SHOWN_MAX)}: {_fit(alert.title, TITLE_SHOWN_MAX)} — "
        f"{_fit(alert.source, SOURCE_SHOWN_MAX)}",
        FALLBACK_TEXT_MAX,
    )


def alert_metadata(alert: StoredAlert) -> dict[str, Any]:
    """Slack message metadata naming the alert: after an uncertain send, the delivery code finds the
    message in `conversations.history` (with `include_all_metadata`) instead of posting it twice."""
    return {
        "event_type": EVENT_ALERT,
        "event_payload": {"alert_id": alert.alert.id, "topic": alert.alert.topic, "story": alert.alert.story},
    }


def alert_message(
    alert: StoredAlert,
    topic_title: str,
    *,
    extra_sources: Sequence[str] = (),
    feedback: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`chat.postMessage` arguments (minus `channel`) for one alert.

    `extra_sources`: other outlets' names known for the story, listed on the "N sources" line.
    `feedback`: Slack user id → "relevant" | "not_relevant", shown under the buttons.
    """
    return {
        "text": _alert_fallback(alert, topic_title),
        "blocks": _alert_blocks(alert, topic_title, extra_sources, feedback or {}),
        "unfurl_links": False,
        "unfurl_media": False,
        "metadata": alert_metadata(alert),
    }


def sources_line_update(
    alert: StoredAlert,
    topic_title: str,
    *,
    ts: str,
    extra_sources: Sequence[str] = (),
    feedback: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`chat.update` arguments (minus `channel`): the parent alert re-rendered, e.g. with the story's new
    "N sources" count (`alert.n_sources`) or new feedback. Metadata is sent again so the message keeps it."""
    return {
        "ts": ts,
        "text": _alert_fallback(alert, topic_title),
        "blocks": _alert_blocks(alert, topic_title, extra_sources, feedback or {}),
        "metadata": alert_metadata(alert),
    }


def _report_line(report: Report) -> str:
    title = _fit(report.title, TITLE_SHOWN_MAX) or "(untitled)"
    source = _fit(report.source, SOURCE_SHOWN_MAX)
    tail = f" — {source} · {slack_date(report.published)}"
    return "• " + _link(report.url, title, SECTION_TEXT_MAX - len(tail) - 2) + tail


def _listing(header: str, lines: Sequence[str], blocks_left: int) -> list[dict[str, Any]]:
    """`header` then the lines packed into as few sections as fit 3,000 characters each, using at most
    `blocks_left` blocks; lines that do not fit become "…and N more"."""
    blocks: list[dict[str, Any]] = [_section(header)]
    current: list[str] = []
    shown = 0

    def flush() -> None:
        if current:
            blocks.append(_section("\n".join(current)))
            current.clear()

    for line in lines:
        if sum(len(c) + 1 for c in current) + len(line) > SECTION_TEXT_MAX:
            # Room must stay for the section being flushed, the next one and a closing "…and N more".
            if len(blocks) + 3 > blocks_left:
                break
            flush()
        current.append(line)
        shown += 1
    flush()
    if shown < len(lines):
        blocks.append(_context([f"…and {len(lines) - shown} more"]))
    return blocks


def followup_message(
    parent: StoredAlert,
    reports: Sequence[Report],
    *,
    thread_ts: str,
    batch_id: str | None = None,
) -> dict[str, Any]:
    """`chat.postMessage` arguments (minus `channel`) for one thread reply under `parent`'s message,
    listing later reports of the same story from other outlets (one reply per batch).

    The metadata names the parent alert and, when given, `batch_id`, so a retry can find a reply that was
    posted before a crash.
    """
    n = len(reports)
    header = f"*{n} more report{'s' if n != 1 else ''} of this story*"
    lines = [_report_line(r) for r in reports]
    outlets = ", ".join(dict.fromkeys(_fit(r.source, SOURCE_SHOWN_MAX) for r in reports))
    payload: dict[str, Any] = {"alert_id": parent.alert.id, "story": parent.alert.story}
    if batch_id is not None:
        payload["batch"] = batch_id
    return {
        "thread_ts": thread_ts,
        "text": truncate_escaped(
            f"Also reported by {outlets}" if outlets else "More reports", FALLBACK_TEXT_MAX
        ),
        "blocks": _listing(header, lines, BLOCKS_MAX),
        "unfurl_links": False,
        "unfurl_media": False,
        "metadata": {"event_type": EVENT_FOLLOWUP, "event_payload": payload},
    }


def flood_rollup_message(topic_title: str, stories: Sequence[StoredAlert]) -> dict[str, Any]:
    """`chat.postMessage` arguments (minus `channel`): "N more stories on <topic>", past the hourly cap,
    with each story's title linked. The metadata lists the alert ids it covers, for crash recovery."""
    n = len(stories)
    topic = _fit(topic_title, SOURCE_SHOWN_MAX)
    header = f"*{n} more stor{'ies' if n != 1 else 'y'} on {topic}*"
    lines = [_report_line(s) for s in stories]
    return {
        "text": truncate_escaped(f"{n} more stor{'ies' if n != 1 else 'y'} on {topic}", FALLBACK_TEXT_MAX),
        "blocks": _listing(header, lines, BLOCKS_MAX),
        "unfurl_links": False,
        "unfurl_media": False,
        "metadata": {
            "event_type": EVENT_ROLLUP,
            "event_payload": {
                "topic": stories[0].alert.topic if stories else "",
                "alert_ids": [s.alert.id for s in stories],
            },
        },
    }
