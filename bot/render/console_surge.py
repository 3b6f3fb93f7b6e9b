"""A surge notice as terminal text, for console destinations and `watchfloor run` without Slack.

Feed text goes through `bot.render.console.clean`, so a hostile title cannot rewrite the operator's screen
(control sequences) or read as something else (bidi overrides).
"""

from __future__ import annotations

from bot.durations import format_duration
from bot.notices import Surge
from bot.render.console import clean, when


def render_surge(surge: Surge, destination: str = "console") -> str:
    span = format_duration(surge.window_end - surge.window_start)
    usual = f"usually {surge.usual:g} per {span}" if surge.usual else f"usually none in {span}"
    head = f"── SURGE {clean(surge.title)} ({surge.topic}) → {destination} "
    lines = [head + "─" * max(3, 78 - len(head))]
    lines.append(
        f"{surge.count} stories in the last {span} ({when(surge.window_start)} to {when(surge.window_end)}), "
        f"{usual}: {surge.factor:.1f}× the usual rate"
    )
    for story in surge.stories:
        outlets = f" · {story.n_sources} sources" if story.n_sources > 1 else ""
        lines.append(f"  • {clean(story.title)}")
        lines.append(
            f"    {clean(story.source)} · {when(story.published)} · score {story.score:.2f}{outlets}"
        )
        lines.append(f"    {clean(story.url)}")
    if surge.count > len(surge.stories):
        lines.append(f"  …and {surge.count - len(surge.stories)} more")
    return "\n".join(lines)
