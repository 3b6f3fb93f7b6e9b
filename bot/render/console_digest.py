"""Digests as terminal text: what a `console` destination (or a Slack one without a token) prints.

Feed text goes through `clean` like alerts do, so a hostile title cannot rewrite the operator's screen.
"""

from __future__ import annotations

import textwrap

from bot.notices import Digest, StoryLine
from bot.render.console import clean, when

WIDTH = 78


def _story(n: int, line: StoryLine) -> list[str]:
    outlets = f" · {line.n_sources} sources" if line.n_sources > 1 else ""
    out = [f"  {n}. {clean(line.title)}"]
    out.append(f"     {clean(line.source)} · {when(line.published)} · score {line.score:.2f}{outlets}")
    if line.summary:
        out += textwrap.wrap(clean(line.summary), WIDTH, initial_indent="     ", subsequent_indent="     ")
    out.append(f"     {clean(line.url)}")
    return out


def render_digest(digest: Digest) -> str:
    head = f"══ Digest → {digest.destination} · {when(digest.since)} – {when(digest.until)} "
    lines = [head + "═" * max(3, WIDTH - len(head))]
    if digest.muted:
        lines.append("Muted here, left out: " + ", ".join(clean(t) for t in digest.muted))
    for topic in digest.topics:
        total = len(topic.stories) + topic.more
        lines.append(f"{clean(topic.title)} ({topic.topic}): {total} new stor{'y' if total == 1 else 'ies'}")
        for n, story in enumerate(topic.stories, start=1):
            lines += _story(n, story)
        if topic.more:
            lines.append(f"  …and {topic.more} more")
    if not digest.topics:
        lines.append("Nothing new.")
    return "\n".join(lines)
