"""Scores every active topic for a batch of items: model probability, keyword rules, flag and why.

flagged = score ≥ the topic's threshold and its keyword rules hold. Explanations are computed only for
flagged items (they cost a per-item pass) and for `explain`, where they are asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np

from bot.config import TopicConfig
from bot.items import Item, TopicScore, Why
from classifiers.model import TopicModels
from classifiers.rules import KeywordRules


def rules_of(topic: TopicConfig) -> KeywordRules:
    return KeywordRules(all=tuple(topic.rules.all), any=tuple(topic.rules.any), none=tuple(topic.rules.none))


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
        if not batch:
            return []
        probs = self.models.score([(i.title, i.text) for i in batch])
        columns = [self._column[t.id] for t in self.topics]
        ids = [t.id for t in self.topics]
        probs = np.asarray(probs)[:, columns]
        thresholds = np.array([t.threshold for t in self.topics])
        over: np.ndarray = np.asarray(probs >= thresholds)
        hits = cast(list[bool], over.any(axis=1).tolist())
        rows = probs.tolist()
        out: list[tuple[TopicScore, ...]] = []
        # Most items clear no threshold: build their scores without the per-topic rule and explain work.
        for row, item, hit in zip(rows, batch, hits, strict=True):
            if not hit:
                out.append(tuple(TopicScore(tid, p, False) for tid, p in zip(ids, row, strict=True)))
                continue
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
            out.append(tuple(row_scores))
        return out

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
