"""How good a topic definition is: precision, recall and F1 by event-grouped cross-validation.

Reports of one event share words, so a random split would score a model on near-copies of its training
data. Folds are grouped by ``event``, and every training source (the topic's examples, background, the other
folds) is purged of the test fold's ids and events — the shipped example files contain the same labelled
reports, so without the purge the model would be tested on what it was trained on.

Each topic is reported twice: the model as the bot uses it (score ≥ threshold AND rules hold) and the
keyword rules alone, the baseline a model must beat to be worth having.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupKFold

from classifiers.model import TopicModels
from classifiers.training import Example, ExamplesError, TopicDefinition


@dataclass(frozen=True)
class Metrics:
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    n: int


def metrics(y_true: Sequence[int], y_pred: Sequence[bool]) -> Metrics:
    """P/R/F1 of binary predictions; 0.0 where undefined (no predictions or no positives)."""
    truth = np.asarray(y_true, dtype=bool)
    pred = np.asarray(y_pred, dtype=bool)
    if truth.shape != pred.shape:
        raise ValueError(f"y_true has {truth.shape[0]} labels but y_pred has {pred.shape[0]} predictions")
    tp = int((truth & pred).sum())
    fp = int((~truth & pred).sum())
    fn = int((truth & ~pred).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Metrics(precision, recall, f1, tp, fp, fn, int(truth.shape[0]))


@dataclass(frozen=True)
class LabelledReport:
    """A report labelled for several topics: 2 on topic, 1 borderline (not scored), 0 off topic."""

    id: str
    event: str
    title: str
    text: str
    labels: Mapping[str, int] = field(default_factory=dict)
    url: str = ""


def load_labelled(path: Path) -> list[LabelledReport]:
    """Load a labelled-news JSONL file (the news_dev.jsonl format)."""
    reports = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                reports.append(
                    LabelledReport(
                        id=str(record["id"]),
                        event=str(record.get("event") or record["id"]),
                        title=record["title"],
                        text=record["text"],
                        labels=dict(record.get("labels", {})),
                        url=record.get("url") or "",
                    )
                )
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ExamplesError(path, line_no, f"not a labelled report ({exc!r})") from exc
    return reports


def _as_example(report: LabelledReport, topic_id: str) -> Example | None:
    value = report.labels.get(topic_id)
    if value not in (0, 2):
        return None
    return Example(report.title, report.text, 1 if value == 2 else 0, event=report.event, id=report.id)


def cross_validate(
    topics: Sequence[TopicDefinition],
    background: Sequence[Example],
    reports: Sequence[LabelledReport],
    folds: int = 5,
    seed: int = 0,
) -> dict[str, tuple[Metrics, Metrics]]:
    """Per topic: (model metrics, rules-only metrics) over event-grouped folds of ``reports``.

    ``seed`` shuffles which events go to which fold (GroupKFold itself is deterministic).
    """
    events = np.array([r.event for r in reports])
    unique_events = np.unique(events)
    shuffled = np.random.default_rng(seed).permutation(len(unique_events))
    group_of = dict(zip(unique_events.tolist(), shuffled.tolist(), strict=True))
    groups = np.array([group_of[e] for e in events])

    model_pred = {t.id: np.zeros(len(reports), dtype=bool) for t in topics}
    for train_idx, test_idx in GroupKFold(n_splits=folds).split(np.zeros(len(reports)), groups=groups):
        test_ids = {reports[i].id for i in test_idx}
        test_events = {reports[i].event for i in test_idx}

        def clean(
            example: Example, test_ids: set[str] = test_ids, test_events: set[str] = test_events
        ) -> bool:
            return example.id not in test_ids and example.event not in test_events

        fold_topics = []
        for topic in topics:
            train_reports = [e for i in train_idx if (e := _as_example(reports[i], topic.id)) is not None]
            kept = [e for e in topic.examples if clean(e)]
            fold_topics.append(replace(topic, examples=(*kept, *train_reports)))
        fold_background = [e for e in background if clean(e)]
        models = TopicModels.train(fold_topics, fold_background)
        docs = [(reports[i].title, reports[i].text) for i in test_idx]
        scores = models.score(docs)
        for j, topic in enumerate(topics):
            holds = np.array([topic.rules.holds(title, text) for title, text in docs], dtype=bool)
            model_pred[topic.id][test_idx] = (scores[:, j] >= topic.threshold) & holds

    results: dict[str, tuple[Metrics, Metrics]] = {}
    for topic in topics:
        scored = [i for i, r in enumerate(reports) if r.labels.get(topic.id) in (0, 2)]
        truth = [int(reports[i].labels[topic.id] == 2) for i in scored]
        rules_pred = [
            (not topic.rules.empty) and topic.rules.holds(reports[i].title, reports[i].text) for i in scored
        ]
        results[topic.id] = (
            metrics(truth, model_pred[topic.id][scored].tolist()),
            metrics(truth, rules_pred),
        )
    return results
