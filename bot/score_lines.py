"""`watchfloor score`: JSON lines in, one JSON line out per input line, in order.

Bad lines become `{"line": N, "error": …}` in their place so the output still lines up with the input and
the good lines are scored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TextIO

from bot.config import Config
from bot.items import Item, TopicScore
from bot.jsonl_items import LineError, item_from_line
from bot.scoring import TopicScorer
from bot.stories import StoryIndex
from bot.topic_models import load_or_train

BATCH = 5000


def _why(ts: TopicScore) -> dict[str, Any]:
    return {
        "terms": [[t, round(w, 4)] for t, w in ts.why.terms],
        "rules": list(ts.why.rules_matched),
        "rules_failed": ts.why.rules_failed,
    }


def score_lines(config: Config, lines: Iterable[str], out: TextIO, explain: bool, now: datetime) -> int:
    """Score every line; return 0, or 1 when some line was bad (after scoring the rest)."""
    scorer = TopicScorer(load_or_train(config), config.active_topics)
    stories = StoryIndex(window=config.stories.window, **_similarity(config))
    bad = False
    pending: list[Item | LineError] = []

    def flush() -> None:
        batch = [p for p in pending if isinstance(p, Item)]
        story_ids = iter(stories.assign(batch))
        scores = iter(scorer.score(batch, explain=False))
        for entry in pending:
            if isinstance(entry, LineError):
                out.write(json.dumps({"line": entry.line, "error": entry.error}) + "\n")
                continue
            row = next(scores)
            record: dict[str, Any] = {
                "id": entry.id,
                "scores": {ts.topic: round(ts.score, 6) for ts in row},
                "flagged": [ts.topic for ts in row if ts.flagged],
                "story": next(story_ids),
            }
            if explain:
                record["why"] = {ts.topic: _why(ts) for ts in scorer.explain_all(entry)}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        pending.clear()

    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        entry = item_from_line(raw, n, now)
        bad = bad or isinstance(entry, LineError)
        pending.append(entry)
        if len(pending) >= BATCH:
            flush()
    flush()
    out.flush()
    return 1 if bad else 0


def _similarity(config: Config) -> dict[str, float]:
    return {"threshold": config.stories.similarity} if config.stories.similarity is not None else {}
