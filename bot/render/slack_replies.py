"""Replies to `/news` as Block Kit: the one place that shapes what the command shows.

Every function returns `{"text": fallback, "blocks": [...]}`, the keyword arguments of Bolt's `respond()`
minus `response_type`, which the handler chooses (ephemeral unless the user asked to share).

What this module promises, as `bot/render/slack.py` does for alerts:
- Feed text (titles, sources, errors from feeds, terms) and anything the user typed is escaped exactly once
  with `escape_mrkdwn`; mrkdwn objects are `verbatim`. A stored title holding `<!channel>` pings nobody.
- Links only from validated http(s) URLs (`safe_link_url`).
- Block Kit limits hold whatever the input: sections within 3,000 characters, context elements within
  2,000, at most 50 blocks; long listings end in "…and N more".

Pure functions on plain data: no I/O; `now` is passed in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.config import TopicConfig
from bot.items import TopicScore
from bot.queries import (
    AlertedItem,
    ItemRecord,
    ModelVersion,
    SearchHit,
    StatusReport,
    TopicActivity,
    TopicQuality,
)
from bot.render.slack import (
    BLOCKS_MAX,
    CONTEXT_ELEMENTS_MAX,
    CONTEXT_TEXT_MAX,
    FALLBACK_TEXT_MAX,
    SECTION_TEXT_MAX,
    escape_mrkdwn,
    safe_link_url,
    slack_date,
    truncate_escaped,
    why_text,
)

Reply = dict[str, Any]

TITLE_SHOWN = 300
FIELD_SHOWN = 120
ERROR_SHOWN = 300
_WHITESPACE = re.compile(r"\s+")

# (usage, what it does) per subcommand, in the order help lists them.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "help": ("help", "this message"),
    "latest": ("latest [topic] [n]", "the latest alerted items, newest first (n up to 20)"),
    "search": (
        "search <words> [topic:… source:… since:7d]",
        "stored items holding every word, best matches first",
    ),
    "topics": ("topics", "each topic: threshold, destinations, alerts in 24 h / 7 d"),
    "digest": (
        "digest [topic] [since]",
        "the top stories per topic routed here (or of one topic) since a time ago, default 24h",
    ),
    "status": ("status", "sources and their health, outbox, dead letters, model versions"),
    "explain": ("explain <item id or URL>", "every topic's score for an item and the terms behind it"),
    "mute": ("mute <topic> [duration]", "silence a topic in this channel (default 24h; admins)"),
    "unmute": ("unmute <topic>", "end a topic's mute in this channel (admins)"),
    "subscribe": ("subscribe <topic>", "send a topic's alerts to this channel too (admins)"),
    "unsubscribe": ("unsubscribe <topic>", "stop a subscription made with subscribe (admins)"),
}
# Named in the design but not in this version: they get a clear "not yet" rather than "unknown".
PLANNED: tuple[str, ...] = ()
# Subcommands that change routing or muting: only `slack.admins` may run them.
ADMIN_ONLY = ("mute", "unmute", "subscribe", "unsubscribe")


def fit(raw: str, limit: int) -> str:
    """Untrusted text on one line, escaped once, within `limit` characters."""
    return truncate_escaped(escape_mrkdwn(_WHITESPACE.sub(" ", raw).strip()), limit)


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(truncate_escaped(text or " ", SECTION_TEXT_MAX))}


def _context(elements: Sequence[str]) -> dict[str, Any]:
    kept = [e for e in elements if e][:CONTEXT_ELEMENTS_MAX] or [" "]
    return {"type": "context", "elements": [_mrkdwn(truncate_escaped(e, CONTEXT_TEXT_MAX)) for e in kept]}


def _link(url: str, label_escaped: str) -> str:
    """`<url|label>` when the URL is a safe http(s) one, else the label alone."""
    safe = safe_link_url(url)
    if safe is None:
        return label_escaped
    # A `|` in the label could move where Slack thinks the URL ends.
    return f"<{safe}|{label_escaped.replace('|', '∣')}>"


def _pack(header: str, lines: Sequence[str], footer: Sequence[str] = ()) -> list[dict[str, Any]]:
    """A header section, then the lines packed into sections of at most 3,000 characters, then footer
    context; lines that do not fit in the block budget become "…and N more"."""
    blocks: list[dict[str, Any]] = [_section(header)]
    budget = BLOCKS_MAX - 1 - len(footer) - 1  # header, footer, and room for "…and N more"
    current: list[str] = []
    shown = 0
    for line in lines:
        line = truncate_escaped(line, SECTION_TEXT_MAX)
        if current and sum(len(c) + 1 for c in current) + len(line) > SECTION_TEXT_MAX:
            if len(blocks) >= budget:
                break
            blocks.append(_section("\n".join(current)))
            current = []
        current.append(line)
        shown += 1
    if current:
        blocks.append(_section("\n".join(current)))
    if shown < len(lines):
        blocks.append(_context([f"…and {len(lines) - shown} more"]))
    blocks += [_context([f]) for f in footer]
    return blocks


def _reply(fallback: str, blocks: list[dict[str, Any]]) -> Reply:
    return {"text": truncate_escaped(fallback, FALLBACK_TEXT_MAX), "blocks": blocks[:BLOCKS_MAX]}


def ago(when: datetime | None, now: datetime) -> str:
    """`3h ago`, `2d4h ago`, `12m ago`: coarse on purpose, a status line is read at a glance."""
    if when is None:
        return "never"
    seconds = int((now - when.astimezone(UTC)).total_seconds())
    if seconds < 60:
        return "just now"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d{hours}h ago" if hours else f"{days}d ago"
    if hours:
        return f"{hours}h{minutes}m ago" if minutes else f"{hours}h ago"
    return f"{minutes}m ago"


# -- help and errors --------------------------------------------------------------------------------------


def _code(text: str) -> str:
    """Our own text shown in a code span: `<words>` must not read as link markup."""
    return escape_mrkdwn(text, neutralise_formatting=False)


def usage_line(command: str) -> str:
    return (
        f"Usage: `{command} "
        + " | ".join(_code(u) for u, _ in SUBCOMMANDS.values())
        + "` (add `share` to post it)"
    )


def help_reply(command: str) -> Reply:
    lines = [f"• `{command} {_code(usage)}` — {what}" for usage, what in SUBCOMMANDS.values()]
    lines.append(
        f"Add `share` (or `--share`) at the end to post the answer in the channel; `{command}` "
        "answers only you otherwise."
    )
    lines.append(", ".join(f"`{a}`" for a in ADMIN_ONLY) + " are for the admins listed in `slack.admins`.")
    if PLANNED:
        lines.append("Coming later: " + ", ".join(f"`{p}`" for p in PLANNED) + ".")
    return _reply(f"{command}: " + ", ".join(SUBCOMMANDS), _pack(f"*{command}* — Watchfloor news", lines))


def problem_reply(
    command: str, problem: str, suggestions: Sequence[str] = (), usage: str | None = None
) -> Reply:
    """A mistyped subcommand, topic or argument: what was wrong, the likely fix, and how to write it.

    `problem` is already escaped by the caller (it mixes our words with echoed input); `suggestions` are
    raw and are escaped here."""
    text = f":warning: {problem}"
    if suggestions:
        text += "\nDid you mean " + " or ".join(f"`{fit(s, FIELD_SHOWN)}`" for s in suggestions) + "?"
    text += "\n" + (f"Usage: `{command} {_code(usage)}`" if usage else usage_line(command))
    return _reply(text, [_section(text)])


def planned_reply(command: str, sub: str) -> Reply:
    text = (
        f"`{command} {fit(sub, FIELD_SHOWN)}` is not available in this version of Watchfloor yet. "
        f"`{command} help` lists what is."
    )
    return _reply(text, [_section(text)])


def admin_refusal(command: str, sub: str, user: str, admins: Sequence[str]) -> Reply:
    """A non-admin tried to change routing or muting: say no, and who can (or how to make someone able)."""
    if admins:
        who = ", ".join(f"<@{fit(a, 40)}>" for a in admins[:20])
        more = f" and {len(admins) - 20} more" if len(admins) > 20 else ""
        text = (
            f":no_entry: `{command} {fit(sub, FIELD_SHOWN)}` changes where alerts go, so only the Watchfloor "
            f"admins listed in `slack.admins` may run it: {who}{more}. Ask one of them."
        )
    else:
        text = (
            f":no_entry: `{command} {fit(sub, FIELD_SHOWN)}` changes where alerts go, so only the Watchfloor "
            "admins may run it, and none is configured. Add Slack user ids to `admins` under `[slack]` in "
            f'config.toml, e.g. `admins = ["{fit(user, 40) or "U0123ABCD"}"]`, then reload.'
        )
    return _reply(text, [_section(text)])


def _topic_name(topic: TopicConfig) -> str:
    return f"*{fit(topic.title, TITLE_SHOWN)}* (`{fit(topic.id, FIELD_SHOWN)}`)"


def mute_reply(command: str, topic: TopicConfig, ends: datetime, asked: datetime, user: str) -> Reply:
    """`ends` is when the mute in force ends: later than asked when a longer mute was already there."""
    text = (
        f":mute: Muted {_topic_name(topic)} in this channel until {slack_date(ends)}, by <@{fit(user, 40)}>."
    )
    if ends > asked:
        text += " A longer mute was already in force and is kept."
    text += f" `{command} unmute {fit(topic.id, FIELD_SHOWN)}` ends it sooner."
    return _reply(text, [_section(text)])


def unmute_reply(command: str, topic: TopicConfig, ended: bool) -> Reply:
    if ended:
        text = f":loud_sound: Unmuted {_topic_name(topic)} in this channel: its alerts come here again."
    else:
        text = f"{_topic_name(topic)} was not muted in this channel: nothing to do."
    return _reply(text, [_section(text)])


def subscribe_reply(command: str, topic: TopicConfig, added: bool, by_config: bool) -> Reply:
    if by_config:
        text = f"{_topic_name(topic)} already comes to this channel: config.toml routes it here." + (
            " A subscription was stored as well." if added else ""
        )
    elif added:
        text = (
            f":bell: Subscribed this channel to {_topic_name(topic)}: its new alerts come here too. "
            f"`{command} unsubscribe {fit(topic.id, FIELD_SHOWN)}` stops them."
        )
    else:
        text = f"This channel is already subscribed to {_topic_name(topic)}: nothing to do."
    return _reply(text, [_section(text)])


def unsubscribe_reply(command: str, topic: TopicConfig, removed: bool, by_config: bool) -> Reply:
    if removed:
        text = f":no_bell: Unsubscribed this channel from {_topic_name(topic)}."
    else:
        text = f"This channel had no subscription to {_topic_name(topic)}."
    if by_config:
        text += (
            " config.toml routes this topic here as well, so its alerts keep coming: remove this channel "
            "from the topic's `destinations` in config.toml to stop them."
        )
    elif removed:
        text += " Its new alerts no longer come here."
    return _reply(text, [_section(text)])


def error_reply(incident: str) -> Reply:
    text = f":x: Something went wrong, logged as `{fit(incident, 40)}`. Please tell the Watchfloor admins."
    return _reply(text, [_section(text)])


# -- latest -----------------------------------------------------------------------------------------------


def _item_line(title: str, url: str, source: str, published: datetime, tail: str = "") -> str:
    label = fit(title, TITLE_SHOWN) or "(untitled)"
    return f"• {_link(url, label)} — {fit(source, FIELD_SHOWN)} · {slack_date(published)}{tail}"


def latest_reply(found: Sequence[AlertedItem], topic: TopicConfig | None, titles: Mapping[str, str]) -> Reply:
    scope = f"on *{fit(topic.title, FIELD_SHOWN)}*" if topic else "on all topics"
    if not found:
        text = f"No alerts yet {scope}."
        return _reply(text, [_section(text)])
    lines = []
    for a in found:
        topic_part = "" if topic else f" · _{fit(titles.get(a.topic, a.topic), FIELD_SHOWN)}_"
        score = f" · {a.score:.2f}" if a.score is not None else ""
        pending = [s for s in a.statuses if s != "sent"]
        state = f" · {', '.join(sorted(set(pending)))}" if pending else ""
        lines.append(_item_line(a.title, a.url, a.source, a.published, f"{topic_part}{score}{state}"))
        lines[-1] += f" · `{a.item_id}`"
    header = f"*Latest {len(found)} alert{'s' if len(found) != 1 else ''} {scope}*"
    return _reply(header.replace("*", ""), _pack(header, lines))


# -- topics -----------------------------------------------------------------------------------------------


def _quality_text(q: TopicQuality) -> str:
    if q.precision is None:
        text = "no feedback yet"
    else:
        text = (
            f"precision {q.precision:.0%} from feedback on {q.labelled} item{'s' if q.labelled != 1 else ''}"
        )
    if q.ties:
        text += f" · {q.ties} tie{'s' if q.ties != 1 else ''} (users disagree)"
    return text


def topics_reply(
    topics: Sequence[TopicConfig],
    activity: Mapping[str, TopicActivity],
    quality: Mapping[str, TopicQuality] | None = None,
) -> Reply:
    if not topics:
        text = "No topics are configured: add `[[topics]]` to config.toml."
        return _reply(text, [_section(text)])
    lines = []
    for t in topics:
        a = activity.get(t.id, TopicActivity())
        q = (quality or {}).get(t.id, TopicQuality())
        shown_dests = [fit(d, FIELD_SHOWN) for d in t.destinations]
        shown_dests += [
            f"{fit(d, FIELD_SHOWN)} (subscribed)" for d in q.subscribed if d not in t.destinations
        ]
        dests = ", ".join(shown_dests) or "none"
        off = " _(disabled)_" if not t.enabled else ""
        lines.append(
            f"• *{fit(t.title, FIELD_SHOWN)}* `{t.id}`{off} — threshold {t.threshold:.2f} · to {dests} · "
            f"alerts {a.last_day} in 24 h, {a.last_week} in 7 d · {_quality_text(q)}"
        )
    header = f"*{len(topics)} topic{'s' if len(topics) != 1 else ''}*"
    return _reply(f"{len(topics)} topics", _pack(header, lines, []))


# -- status -----------------------------------------------------------------------------------------------


def _version_text(v: ModelVersion) -> str:
    parts = []
    if v.f1 is not None:
        parts.append(f"held-out F1 {v.f1:.2f}")
    if v.n_examples is not None:
        parts.append(f"{v.n_examples} examples, {v.n_feedback or 0} from feedback")
    if v.scores:
        parts.append(f"{v.scores} scores")
    text = f"`{fit(v.version, 40)}`" + (f" {v.status}" if v.status else "")
    if parts:
        text += f" ({', '.join(parts)})"
    if v.status == "rejected" and v.reason:
        text += f" — kept aside: {fit(v.reason, ERROR_SHOWN)}"
    return text


def status_reply(report: StatusReport, running: Mapping[str, str], now: datetime) -> Reply:
    """`running`: topic → model version of the scorer loaded now (empty when none is loaded here)."""
    failing = [s for s in report.sources if s.consecutive_failures > 0]
    lines = []
    for s in report.sources:
        if s.consecutive_failures:
            err = fit(s.last_error or "unknown error", ERROR_SHOWN)
            lines.append(
                f":red_circle: *{fit(s.name, FIELD_SHOWN)}* — {s.consecutive_failures} failure"
                f"{'s' if s.consecutive_failures != 1 else ''} in a row, last success "
                f"{ago(s.last_success, now)}; last error {ago(s.last_error_at, now)}: {err}"
            )
        else:
            lines.append(
                f":large_green_circle: *{fit(s.name, FIELD_SHOWN)}* — last success {ago(s.last_success, now)}"
            )
    header = (
        f"*Sources:* {len(report.sources)}, {len(failing)} failing · last poll {ago(report.last_poll, now)}"
    )
    blocks = _pack(header, lines or ["No sources polled yet."])
    outbox = (
        ", ".join(f"{fit(d, FIELD_SHOWN)}: {n}" for d, n in report.outbox.items())
        if report.outbox
        else "empty"
    )
    dead_lines = [
        f"• {'' if d.kind == 'alert' else f'[{d.kind}] '}{fit(d.title, TITLE_SHOWN)} — "
        f"{fit(d.topic, FIELD_SHOWN) + ' → ' if d.topic else ''}{fit(d.destination, FIELD_SHOWN)}, "
        f"{d.attempts} attempt{'s' if d.attempts != 1 else ''}: {fit(d.last_error or 'no error recorded', ERROR_SHOWN)}"
        for d in report.dead_latest
    ]
    tail = [f"*Outbox:* {outbox}", f"*Dead letters:* {report.dead_count}"]
    if dead_lines:
        tail[-1] += f" (latest {len(dead_lines)})\n" + "\n".join(dead_lines)
    if report.digests:
        tail.append(
            "*Digests:* "
            + ", ".join(
                f"{fit(g.destination, FIELD_SHOWN)} last sent {ago(g.last_sent, now)}"
                + (f" ({g.pending} waiting)" if g.pending else "")
                for g in report.digests
            )
        )
    stored: dict[str, list[str]] = {}
    for v in report.model_versions:
        stored.setdefault(v.topic, []).append(_version_text(v))
    model_lines = []
    for topic in sorted(set(stored) | set(running)):
        now_running = f"running `{fit(running[topic], 40)}`" if topic in running else ""
        seen = "; ".join(stored[topic][:4]) if topic in stored else ""
        model_lines.append(
            f"• `{fit(topic, FIELD_SHOWN)}`: " + "; ".join(p for p in (now_running, seen) if p)
        )
    tail.append("*Models:* " + ("\n" + "\n".join(model_lines) if model_lines else "no scores stored yet"))
    room = BLOCKS_MAX - len(blocks)
    blocks += [_section(t) for t in tail[:room]]
    fallback = f"{len(report.sources)} sources, {len(failing)} failing; {report.dead_count} dead letters"
    return _reply(fallback, blocks)


# -- search -----------------------------------------------------------------------------------------------


def search_reply(query: str, hits: Sequence[SearchHit]) -> Reply:
    shown = fit(query, FIELD_SHOWN)
    if not hits:
        text = f"Nothing stored matches _{shown}_."
        return _reply(text, [_section(text)])
    lines = [_item_line(h.title, h.url, h.source, h.published, f" · `{h.item_id}`") for h in hits]
    header = f"*{len(hits)} match{'es' if len(hits) != 1 else ''} for* _{shown}_, best first"
    return _reply(
        f"{len(hits)} matches",
        _pack(header, lines, ["Narrow it with `topic:…`, `source:…` or `since:7d`."]),
    )


# -- explain ----------------------------------------------------------------------------------------------


def _terms(terms: Sequence[Any]) -> str:
    shown = []
    for entry in terms[:8]:
        try:
            term, weight = str(entry[0]), float(entry[1])
        except (TypeError, ValueError, IndexError):
            continue
        shown.append(f"{fit(term, 60)} {weight:+.2f}")
    return ", ".join(shown)


def explain_reply(
    item: ItemRecord, topics: Sequence[TopicConfig], recomputed: Sequence[TopicScore] | None
) -> Reply:
    """Every configured topic's score for `item`: recomputed by the running scorer when there is one,
    else the stored rows (the store keeps scores of 0.05 and above, and terms only for flagged ones)."""
    title = fit(item.title, TITLE_SHOWN) or "(untitled)"
    head = (
        f"*{_link(item.url, title)}*\n{fit(item.source, FIELD_SHOWN)} · {slack_date(item.published)} · "
        f"`{item.id}`"
    )
    stored = {s.topic: s for s in item.scores}
    fresh = {s.topic: s for s in recomputed or ()}
    names = {t.id: t for t in topics}
    order = [t.id for t in topics] + [s.topic for s in item.scores if s.topic not in names]
    lines = []
    for tid in order:
        t = names.get(tid)
        label = f"*{fit(t.title if t else tid, FIELD_SHOWN)}*"
        threshold = f" (threshold {t.threshold:.2f})" if t else " (topic no longer configured)"
        if tid in fresh:
            s = fresh[tid]
            mark = ":white_check_mark: flagged" if s.flagged else "not flagged"
            reason = f"; rules failed: {fit(s.why.rules_failed, 200)}" if s.why.rules_failed else ""
            terms = _terms(s.why.terms) or "no terms"
            rules = (
                f"; rules: {', '.join(fit(r, 60) for r in s.why.rules_matched)}"
                if s.why.rules_matched
                else ""
            )
            lines.append(f"{label}{threshold}: {s.score:.2f} {mark} — terms: {terms}{rules}{reason}")
        elif tid in stored:
            s2 = stored[tid]
            mark = ":white_check_mark: flagged" if s2.flagged else "not flagged"
            why = f" — why: {why_text(s2.why)}" if s2.why else ""
            lines.append(f"{label}{threshold}: {s2.score:.2f} {mark}{why}")
        else:
            lines.append(f"{label}{threshold}: below 0.05 (not stored)")
    source = "scores recomputed by the running models" if recomputed is not None else "stored scores"
    return _reply(f"Explain: {title}", _pack(head, lines, [source]))
