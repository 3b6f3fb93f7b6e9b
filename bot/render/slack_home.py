"""The App Home tab and the short help an @-mention gets: the one place that shapes them.

`home_view` lists every active topic (name, id, threshold, destinations, alerts in 24 h / 7 d) with its
latest alerts, then how to use the slash command and mentions. `mention_help_reply` is what a mention we
could not read gets, in the shape of `bot/render/slack_replies.py`'s replies (`{"text", "blocks"}`), so
`chat.postMessage` takes it as keyword arguments.

What this module promises, as `bot/render/slack_replies.py` does:
- Feed text (titles, sources) and anything the user typed is escaped exactly once with `escape_mrkdwn`;
  mrkdwn objects are `verbatim`. A stored title holding `<!channel>` pings nobody.
- Links only from validated http(s) URLs (`safe_link_url`); a link that would not fit its section is shown
  as its bare title instead.
- Home view limits hold whatever the input: at most 100 blocks, sections within 3,000 characters; topics
  that do not fit end in "…and N more topics".

Pure functions on plain data: no I/O; `now` is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.config import TopicConfig
from bot.queries import AlertedItem, TopicActivity
from bot.render.slack import (
    CONTEXT_TEXT_MAX,
    FALLBACK_TEXT_MAX,
    SECTION_TEXT_MAX,
    escape_mrkdwn,
    safe_link_url,
    slack_date,
    truncate_escaped,
)
from bot.render.slack_replies import FIELD_SHOWN, SUBCOMMANDS, TITLE_SHOWN, Reply, fit

View = dict[str, Any]

VIEW_BLOCKS_MAX = 100
HOME_CALLBACK_ID = "watchfloor_home"
MENTION = "@Watchfloor"

# What a mention understands, as (usage, what it does); `handlers/mentions.py` parses these forms.
MENTION_FORMS: tuple[tuple[str, str], ...] = (
    ("latest on <topic>", "the topic's latest alerts (also `latest <topic>`, `latest <topic> 5`)"),
    ("latest", "the latest alerts on every topic"),
    ("search <words>", "stored items holding every word, best first (filters as in the slash command)"),
)


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(truncate_escaped(text or " ", SECTION_TEXT_MAX))}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [_mrkdwn(truncate_escaped(text or " ", CONTEXT_TEXT_MAX))]}


def _divider() -> dict[str, Any]:
    return {"type": "divider"}


def _code(text: str) -> str:
    """Our own text in a code span: `<topic>` must not read as link markup."""
    return escape_mrkdwn(text, neutralise_formatting=False)


def _alert_line(a: AlertedItem) -> str:
    """`• <url|title> — source · date`, within a section; unlinked when the link would not fit."""
    label = (fit(a.title, TITLE_SHOWN) or "(untitled)").replace("|", "∣")
    tail = f" — {fit(a.source, FIELD_SHOWN)} · {slack_date(a.published)}"
    safe = safe_link_url(a.url)
    if safe is not None:
        linked = f"• <{safe}|{label}>{tail}"
        if len(linked) <= SECTION_TEXT_MAX:
            return linked
    return truncate_escaped(f"• {label}{tail}", SECTION_TEXT_MAX)


def _topic_line(t: TopicConfig, a: TopicActivity) -> str:
    dests = ", ".join(fit(d, FIELD_SHOWN) for d in t.destinations) or "none"
    return (
        f"*{fit(t.title, FIELD_SHOWN)}* `{t.id}`\nthreshold {t.threshold:.2f} · to {dests} · "
        f"alerts {a.last_day} in 24 h, {a.last_week} in 7 d"
    )


def _sections(lines: Sequence[str]) -> list[dict[str, Any]]:
    """Lines (each within 3,000 characters) packed into as few sections as the 3,000 limit allows."""
    blocks: list[dict[str, Any]] = []
    current: list[str] = []
    for line in lines:
        line = truncate_escaped(line, SECTION_TEXT_MAX)
        if current and sum(len(c) + 1 for c in current) + len(line) > SECTION_TEXT_MAX:
            blocks.append(_section("\n".join(current)))
            current = []
        current.append(line)
    if current:
        blocks.append(_section("\n".join(current)))
    return blocks


def _mention_lines() -> list[str]:
    return [f"• `{MENTION} {_code(usage)}` — {_code(what)}" for usage, what in MENTION_FORMS]


def _how_to(command: str) -> list[dict[str, Any]]:
    lines = [f"*How to use `{_code(command)}`* (answers only you unless you add `share`)"]
    for sub, (usage, what) in SUBCOMMANDS.items():
        what = "what each subcommand does, in full" if sub == "help" else what
        lines.append(f"• `{_code(command)} {_code(usage)}` — {what}")
    lines.append("*Mention me* in a channel and I answer in the thread:")
    lines += _mention_lines()
    return _sections(lines)


def home_view(
    topics: Sequence[TopicConfig],
    activity: Mapping[str, TopicActivity],
    latest: Mapping[str, Sequence[AlertedItem]],
    command: str,
    now: datetime,
) -> View:
    """The Home tab: each topic with its counts and latest alerts, then how to ask for more."""
    head: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Watchfloor"}},
        _context(f"{len(topics)} active topic{'s' if len(topics) != 1 else ''} · updated {slack_date(now)}"),
        _divider(),
    ]
    tail = _how_to(command)  # after a divider: each topic's group ends in one
    budget = VIEW_BLOCKS_MAX - len(head) - len(tail) - 2  # room for "…and N more topics" and a divider
    body: list[dict[str, Any]] = []
    shown = 0
    for t in topics:
        alerted = latest.get(t.id, ())
        lines = [_topic_line(t, activity.get(t.id, TopicActivity()))]
        lines += [_alert_line(a) for a in alerted] or ["_No alerts yet._"]
        group = [*_sections(lines), _divider()]
        if len(body) + len(group) > budget:
            break
        body += group
        shown += 1
    if not topics:
        body += [_section("No active topics: add `[[topics]]` to config.toml."), _divider()]
    elif shown < len(topics):
        more = f"…and {len(topics) - shown} more topics: `{_code(command)} topics` lists them all."
        body += [_context(more), _divider()]
    return {"type": "home", "callback_id": HOME_CALLBACK_ID, "blocks": [*head, *body, *tail]}


def home_error_view(incident: str) -> View:
    """What the Home tab shows when it could not be built: an incident id, never a trace."""
    text = (
        f":x: The Home tab could not be loaded, logged as `{fit(incident, 40)}`. "
        "Please tell the Watchfloor admins."
    )
    return {"type": "home", "callback_id": HOME_CALLBACK_ID, "blocks": [_section(text)]}


def mention_help_reply(command: str, topics: Sequence[TopicConfig], said: str = "") -> Reply:
    """A mention we could not read (or a bare one): what it understands, and the topics to ask about.

    `said` is the raw text after the mention; it is escaped here."""
    lines = []
    if said.strip():
        lines.append(f"I did not understand _{fit(said, FIELD_SHOWN)}_.")
    lines.append("Ask me:")
    lines += _mention_lines()
    ids = ", ".join(f"`{t.id}`" for t in topics) or "none configured"
    lines.append(f"Topics: {ids}. `{_code(command)} help` lists everything else.")
    fallback = f"Ask me: {MENTION} latest on <topic> | latest | search <words>"
    return {"text": truncate_escaped(escape_mrkdwn(fallback), FALLBACK_TEXT_MAX), "blocks": _sections(lines)}
