"""Alerts as terminal text: what the demo prints and what `watchfloor run` shows without Slack.

Feed text may carry terminal control sequences; they are removed so a hostile title cannot rewrite the
operator's screen.
"""

from __future__ import annotations

import re
import textwrap
from datetime import datetime

from bot.queries import ModelVersion, StatusReport
from bot.render.why import NO_REASON, positive_terms, rules_held
from bot.store import StoredAlert, Tally

# C0/C1 controls (escape sequences), and bidi overrides/isolates: a right-to-left override can make a
# hostile title or URL read as something else on the operator's terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean(text: str) -> str:
    return _CONTROL.sub("", text)


def why_line(why: dict[str, object]) -> str:
    parts = []
    terms = positive_terms(why, 5)
    if terms:
        parts.append(", ".join(f"{clean(term)} {weight:+.2f}" for term, weight in terms))
    rules = rules_held(why, 20)
    if rules:
        parts.append("rules: " + ", ".join(clean(r) for r in rules))
    return "; ".join(parts) or NO_REASON


def when(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M UTC")


def render_alert(alert: StoredAlert, topic_title: str) -> str:
    head = f"── {topic_title} ({alert.alert.topic}) → {alert.alert.destination} "
    lines = [head + "─" * max(3, 78 - len(head))]
    lines.append(clean(alert.title))
    outlets = f" · {alert.n_sources} sources" if alert.n_sources > 1 else ""
    lines.append(f"{clean(alert.source)} · {when(alert.published)} · score {alert.score:.2f}{outlets}")
    if alert.summary:
        lines += textwrap.wrap(clean(alert.summary), 78, initial_indent="  ", subsequent_indent="  ")
    lines.append(f"  why: {why_line(alert.why)}")
    lines.append(f"  {clean(alert.url)}")
    return "\n".join(lines)


def render_tally(tally: Tally, topic_ids: list[str]) -> str:
    lines = [
        f"sources {tally.sources} · items {tally.items} · stories {tally.stories} · "
        f"alerts {sum(tally.alerts_per_topic.values())}"
    ]
    width = max((len(t) for t in topic_ids), default=10)
    for tid in topic_ids:
        lines.append(f"  {tid.ljust(width)}  {tally.alerts_per_topic.get(tid, 0)} alert(s)")
    return "\n".join(lines)


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    seconds = int((now - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{max(seconds, 0)}s ago"


def model_line(m: ModelVersion) -> str:
    """`topic: version v (active), held-out F1 0.91 on 120 examples (8 from feedback); reason`."""
    state = f" ({m.status})" if m.status else ""
    parts = [f"{m.topic}: version {m.version}{state}"]
    if m.f1 is not None:
        parts.append(f"held-out F1 {m.f1:.2f} (P {m.precision or 0:.2f} / R {m.recall or 0:.2f})")
    if m.n_examples is not None:
        parts.append(f"trained on {m.n_examples} examples ({m.n_feedback or 0} from feedback)")
    if m.scores:
        parts.append(f"{m.scores} stored scores")
    line = ", ".join(parts)
    if m.status == "rejected" and m.reason:
        line += f" — kept aside: {m.reason}"
    return line


def render_status(report: StatusReport, now: datetime) -> str:
    """The facts of `/news status`, for the terminal: sources' health, outbox, dead letters, models."""
    failing = [s for s in report.sources if s.consecutive_failures]
    lines = [
        f"sources: {len(report.sources)} ({len(failing)} failing) · last poll {_ago(report.last_poll, now)}",
    ]
    for s in report.sources:
        if s.consecutive_failures:
            lines.append(
                f"  ✗ {clean(s.name)}: {s.consecutive_failures} failure(s) in a row, last success "
                f"{_ago(s.last_success, now)}; {clean(s.last_error or 'unknown error')[:200]}"
            )
        elif s.last_polled is None:
            lines.append(f"  · {clean(s.name)}: not polled yet")
        else:
            lines.append(f"  ✓ {clean(s.name)}: last success {_ago(s.last_success, now)}")
    depth = sum(report.outbox.values())
    lines.append(
        f"outbox: {depth} pending" + "".join(f"\n  {d}: {n}" for d, n in sorted(report.outbox.items()))
    )
    lines.append(f"dead letters: {report.dead_count}")
    for d in report.dead_latest:
        what = clean(d.title)[:80] if d.kind == "alert" else d.title
        topic = f"{d.topic} → " if d.topic else ""
        lines.append(
            f"  [{d.kind}] {topic}{d.destination}: {what} ({d.attempts} attempts; {clean(d.last_error or '')[:120]})"
        )
    if report.digests:
        lines.append("digests:")
    for g in report.digests:
        waiting = f", {g.pending} waiting" if g.pending else ""
        lines.append(f"  {g.destination}: last sent {_ago(g.last_sent, now)}{waiting}")
    lines.append("models:" if report.model_versions else "models: none used yet")
    for m in report.model_versions:
        lines.append("  " + model_line(m))
    return "\n".join(lines)
