"""The facts behind an alert's "why" line, read from the stored `why` JSON once for every renderer
(Slack mrkdwn, Adaptive Cards, the console), which each escape and lay them out their own way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NO_REASON = "model score above threshold"


def positive_terms(why: Mapping[str, Any], limit: int) -> list[tuple[str, float]]:
    """The first `limit` terms that pushed the score up, with their weights, strongest first (as stored).
    A malformed row in the stored JSON costs one term, not the alert."""
    shown: list[tuple[str, float]] = []
    terms = why.get("terms") or []
    if not isinstance(terms, list):
        return shown
    for entry in terms:
        if len(shown) >= limit:
            break
        try:
            term, weight = str(entry[0]), float(entry[1])
        except (TypeError, ValueError, IndexError):
            continue
        if weight > 0:
            shown.append((term, weight))
    return shown


def rules_held(why: Mapping[str, Any], limit: int) -> list[str]:
    """The keyword rules that held, at most `limit` of them."""
    rules = why.get("rules") or []
    if not isinstance(rules, list) or limit <= 0:
        return []
    return [str(r) for r in rules[:limit]]
