"""Scores every active topic for a batch of items: model probability, keyword rules, flag and why.

flagged = score ≥ the topic's threshold and its keyword rules hold. Explanations are computed only for
flagged items (they cost a per-item pass) and for `explain`, where they are asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from bot.config import TopicConfig
from bot.items import Item, TopicScore, Why
from classifiers.model import TopicModels
from classifiers.rules import KeywordRules


def rules_of(topic: TopicConfig) -> KeywordRules:
    return KeywordRules(all=tuple(topic.rules.all), any=tuple(topic.rules.any), none=tuple(topic.rules.none))


@dataclass(frozen=True, slots=True)
class ScoreRows:
    """A batch's topic scores, compact: one probability row per item, TopicScores made only on demand.

    Feeds are scored in worker processes, and pickling a cycle's 400,000 TopicScore tuples back cost more
    than scoring them; a float array pickles as one buffer. `detailed` holds the rows where a topic cleared
    its threshold, already checked against the keyword rules and explained."""

    topic_ids: tuple[str, ...]
    probs: np.ndarray  # (items, topics), columns in topic_ids order
    detailed: dict[int, tuple[TopicScore, ...]]

    def __len__(self) -> int:
        return len(self.probs)

    def take(self, rows: Iterable[int]) -> list[tuple[TopicScore, ...]]:
        """The TopicScores of these rows, in the order given."""
        rows = list(rows)
        ids, detailed = self.topic_ids, self.detailed
        values = cast(list[list[float]], self.probs[rows].tolist()) if rows else []
        return [
            detailed[n]
            if n in detailed
            else tuple(TopicScore(t, p, False) for t, p in zip(ids, row, strict=True))
            for n, row in zip(rows, values, strict=True)
        ]

    @classmethod
    def concat(cls, parts: Sequence[ScoreRows]) -> ScoreRows:
        """One ScoreRows for the parts' items, in order (all scored by the same scorer)."""
        if not parts:
            return cls((), np.zeros((0, 0), dtype=np.float32), {})
        detailed: dict[int, tuple[TopicScore, ...]] = {}
        offset = 0
        for part in parts:
            detailed.update((offset + n, scores) for n, scores in part.detailed.items())
            offset += len(part)
        return cls(parts[0].topic_ids, np.concatenate([part.probs for part in parts]), detailed)


class TopicScorer:
    """The running topics and their models; swapped whole on a config reload or retrain."""

    def __init__(self, models: TopicModels, topics: Sequence[TopicConfig]) -> None:
        self.models = models
        self.topics = [t for t in topics if t.id in models.topic_ids]
        self._rules = {t.id: rules_of(t) for t in self.topics}
        self._column = {tid: i for i, tid in enumerate(models.topic_ids)}

    @property
    def topic_ids(self) -> list[str]:
        return [t.id for t in self.topics]

    def score(self, batch: Sequence[Item], explain: bool = True, k: int = 5) -> list[tuple[TopicScore, ...]]:
        return self.score_rows(batch, explain, k).take(range(len(batch)))

    def score_rows(self, batch: Sequence[Item], explain: bool = True, k: int = 5) -> ScoreRows:
        """The scores of `batch` in compact form: what a worker process sends back (`score` = all rows)."""
        ids = tuple(t.id for t in self.topics)
        if not batch:
            return ScoreRows(ids, np.zeros((0, len(ids)), dtype=np.float32), {})
        probs = self.models.score([(i.title, i.text) for i in batch])
        columns = [self._column[t.id] for t in self.topics]
        probs = np.asarray(probs)[:, columns]
        thresholds = np.array([t.threshold for t in self.topics])
        over: np.ndarray = np.asarray(probs >= thresholds)
        detailed: dict[int, tuple[TopicScore, ...]] = {}
        # Most items clear no threshold: only the few that do get the per-topic rule and explain work.
        for n in cast(list[int], np.flatnonzero(over.any(axis=1)).tolist()):
            item, row = batch[n], cast(list[float], probs[n].tolist())
            row_scores = []
            for topic, p in zip(self.topics, row, strict=True):
                if p < topic.threshold:
                    row_scores.append(TopicScore(topic.id, p, False))
                    continue
                rule = self._rules[topic.id].check(item.title, item.text)
                why = Why(
                    terms=tuple(self.models.explain(item.title, item.text, topic.id, k)) if explain else (),
                    rules_matched=rule.matched,
                    rules_failed=rule.failed,
                )
                row_scores.append(TopicScore(topic.id, p, rule.holds, why))
            detailed[n] = tuple(row_scores)
        return ScoreRows(ids, probs, detailed)

    def explain_all(self, item: Item, k: int = 8) -> list[TopicScore]:
        """Every topic's score with its terms and rules, flagged or not: for `explain` and `score --explain`."""
        probs = self.models.score([(item.title, item.text)])
        out = []
        for topic in self.topics:
            p = float(np.asarray(probs)[0, self._column[topic.id]])
            rule = self._rules[topic.id].check(item.title, item.text)
            why = Why(
                tuple(self.models.explain(item.title, item.text, topic.id, k)), rule.matched, rule.failed
            )
            out.append(TopicScore(topic.id, p, p >= topic.threshold and rule.holds, why))
        return out
