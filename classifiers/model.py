"""Per-topic models stacked into one: one shared vectoriser, one weight matrix, one sigmoid per topic.

Scoring is the hot path (every item of every poll, for every topic), so it is one batch transform, one
sparse × dense product and a calibrated sigmoid per topic. Each topic's model is a class-balanced logistic
regression on the shared TF-IDF features; its raw decision value is calibrated with Platt scaling fitted
on out-of-fold decision values (folds grouped by event, so reports of one event never calibrate each
other), and the calibration is folded into the topic's (a, b) so ``score = sigmoid(a * (x·w) + b)``.

Training data per topic: its examples (positives and hard negatives), feedback (``extra``), the shared
background news (negatives) and the other topics' positives (negatives), plus its description and
keyword-rule phrases as pseudo-positive documents — the prior a cold-start topic leans on. A topic with
fewer than ``MIN_POSITIVES`` real positives gets a warning.

The model only matters where the topic's rules hold (an item is flagged when both agree), so training
leans on that region: negatives that pass the rules (the threat roundup naming every country, the cable
company's earnings) weigh ``HARD_NEGATIVE_WEIGHT`` times more, and the calibrated score is the probability
*at even odds among reports that pass the rules* — see ``_even_odds_shift`` for why the odds are fixed
rather than taken from the training set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from classifiers.features import NewsVectorizer
from classifiers.rules import term_alternatives
from classifiers.training import Example, TopicDefinition

log = logging.getLogger(__name__)

MODEL_VERSION = "watchfloor-topics-2"  # bump when features or training change: saved models then retrain
MIN_POSITIVES = 3
C = 20.0  # inverse L2 strength; chosen by event-grouped CV (see classifiers/README.md)
CALIBRATION_FOLDS = 5
# Body words after the first LEAD_TOKENS count TAIL_WEIGHT: many off-topic reports name a topic only in a
# closing background line ("...as Pyongyang's troops fight for Russia"). Chosen by event-grouped CV
# (0.1-0.4 within 0.01 F1 at all sizes; 0.2 was best for Red Sea with hard negatives weighted).
LEAD_TOKENS = 30
TAIL_WEIGHT = 0.2
MIN_DF = 2  # a word seen in one training report is more likely noise than signal (event-grouped CV)
CROSS_NEGATIVES = True  # other topics' positives are negatives for this one (see _cross_negatives)
# Negatives that pass the topic's rules are the only ones the model must reject at scoring time (the rest
# are vetoed by the rules); weighting them up sharpens the ranking there. Flat from 2 to 5 in event-grouped
# CV at 5, 10, 20 and all examples; 3 is the middle.
HARD_NEGATIVE_WEIGHT = 3.0


class ModelVersionError(RuntimeError):
    """A saved model file was written by another MODEL_VERSION: retrain instead of loading it."""


def background_digest(background: Sequence[Example]) -> str:
    """A short digest of the background set, part of every topic's fingerprint."""
    digest = hashlib.sha256()
    for example in background:
        digest.update(json.dumps([example.title, example.text, example.label], ensure_ascii=False).encode())
    return digest.hexdigest()[:16]


def _example_key(example: Example) -> str:
    return example.id or hashlib.sha1(f"{example.title}\n{example.text}".encode()).hexdigest()


PSEUDO_PREFIX = "pseudo:"


def _pseudo_positives(topic: TopicDefinition) -> list[Example]:
    """Documents made of the topic's own words: a prior every topic trains with, which matters most when it
    has few examples (a user's description names sub-themes their first examples may not cover yet)."""
    phrases = [alt for term in topic.rules.terms for alt in term_alternatives(term)]
    if not topic.description.strip() and not phrases:
        return []
    pseudo = f"{PSEUDO_PREFIX}{topic.id}"
    docs = [Example(title=topic.description, text=topic.description, label=1, id=f"{pseudo}:desc")]
    if phrases:
        docs.append(Example(title=" ".join(phrases), text=topic.description, label=1, id=f"{pseudo}:rules"))
    return docs


def _is_pseudo(example: Example) -> bool:
    return (example.id or "").startswith(PSEUDO_PREFIX)


@dataclass(frozen=True, slots=True)
class _TrainingSet:
    examples: list[Example]  # real examples, then the pseudo-positives
    warnings: list[str]
    fallback: bool  # too few real positives to calibrate: the raw class-balanced probability is used


def _cross_negatives(topic: TopicDefinition, topics: Sequence[TopicDefinition]) -> list[Example]:
    """Other topics' positives, as negatives for this one: the nearest neighbours a topic must not claim
    (a Red Sea cable cut is not a Red Sea shipping attack; a Matsu cable cut is not a PLA drill)."""
    if not CROSS_NEGATIVES:
        return []
    return [
        Example(e.title, e.text, 0, e.event, e.id)
        for other in topics
        if other.id != topic.id
        for e in other.examples
        if e.label == 1
    ]


def _training_set(
    topic: TopicDefinition,
    background: Sequence[Example],
    extra: Sequence[Example],
    cross_negatives: Sequence[Example] = (),
) -> _TrainingSet:
    """Examples, then feedback, then background, then the pseudo-positives; the first label seen for a report
    wins (dedup by id)."""
    seen: dict[str, Example] = {}
    for example in (*topic.examples, *extra, *background, *cross_negatives):
        seen.setdefault(_example_key(example), example)
    examples = list(seen.values())
    notes = []
    n_pos = sum(e.label == 1 for e in examples)
    if n_pos < MIN_POSITIVES:
        notes.append(
            f"topic {topic.id}: only {n_pos} positive example(s); it leans on its description and rule terms "
            f"— add at least {MIN_POSITIVES} real examples for a useful model"
        )
    examples.extend(_pseudo_positives(topic))
    if not any(e.label == 0 for e in examples):
        notes.append(f"topic {topic.id}: no negative examples and no background news; scores will be high")
        examples.append(Example(title="", text="", label=0, id=f"pseudo:{topic.id}:empty"))
    return _TrainingSet(examples, notes, fallback=n_pos < MIN_POSITIVES)


def _fit_linear(x: sp.csr_matrix, y: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, float]:
    model = LogisticRegression(C=C, class_weight="balanced", solver="liblinear", max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y, sample_weight=weight)
    return model.coef_.ravel().astype(np.float64), float(model.intercept_[0])


def _platt(decision: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt's sigmoid fit p = 1 / (1 + exp(-(a·d + b))) with his smoothed targets, by Newton's method."""
    n_pos = float(y.sum())
    n_neg = float(len(y) - n_pos)
    target = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    a, b = 1.0, 0.0
    for _ in range(100):
        z = np.clip(a * decision + b, -35, 35)
        p = 1 / (1 + np.exp(-z))
        residual = p - target
        weight = np.maximum(p * (1 - p), 1e-12)
        grad = np.array([residual @ decision, residual.sum()])
        hess = np.array(
            [[weight @ (decision**2), weight @ decision], [weight @ decision, weight.sum()]]
        ) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-8:
            break
    if not np.isfinite(a) or a <= 0:  # degenerate folds: keep the raw logistic output, it is ordered right
        return 1.0, 0.0
    return float(a), float(b)


def _calibrate(
    x: sp.csr_matrix, y: np.ndarray, weight: np.ndarray, groups: np.ndarray
) -> tuple[float, float]:
    """Platt (a, b) from out-of-fold decision values, folds grouped by event."""
    n_folds = min(CALIBRATION_FOLDS, len(np.unique(groups[y == 1])), len(np.unique(groups[y == 0])))
    if n_folds < 2:
        return 1.0, 0.0
    decision = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=n_folds).split(x, y, groups):
        if len(np.unique(y[train])) < 2:
            return 1.0, 0.0
        w, b = _fit_linear(x[train], y[train], weight[train])
        decision[test] = x[test] @ w + b
    return _platt(decision, y)


def _even_odds_shift(y: np.ndarray, gated: np.ndarray) -> float:
    """Log-odds to add so the score reads as the probability at even odds among reports passing the rules.

    Platt's fit bakes in the training set's share of positives, and that share is an accident of how many
    examples the user has written against a fixed background: 10 examples make every score about 1.5 in
    log-odds lower than 60 would, so a threshold that works on day one would flag far too much later (and
    one chosen later misses most of day one's reports). The share that matters is among reports the rules
    let through, where the model decides; fixing it at even odds makes the score mean the same at 5
    examples and at 500, and a threshold chosen once keeps working as examples and feedback grow.
    Add-one smoothed, so a topic whose rules no negative passes gets a finite shift.
    """
    n_pos = float(y[gated].sum())
    n_neg = float(gated.sum() - n_pos)
    return float(np.log((n_neg + 1) / (n_pos + 1)))


class TopicModels:
    """All topic models of a configuration, trained together and scored together."""

    def __init__(
        self,
        vectorizer: NewsVectorizer,
        topic_ids: tuple[str, ...],
        weights: np.ndarray,
        intercepts: np.ndarray,
        fingerprints: Mapping[str, str],
        topic_info: Mapping[str, dict[str, Any]],
        warnings: Sequence[str] = (),
    ) -> None:
        self._vectorizer = vectorizer
        self.topic_ids = topic_ids
        self._weights = weights.astype(np.float32)  # (n_features, n_topics), calibration slope folded in
        self._intercepts = intercepts.astype(np.float32)  # (n_topics,), calibration folded in
        self._fingerprints = dict(fingerprints)
        self._info = {k: dict(v) for k, v in topic_info.items()}
        self.warnings = tuple(warnings)

    @classmethod
    def train(
        cls,
        topics: Sequence[TopicDefinition],
        background: Sequence[Example],
        extra: Mapping[str, Sequence[Example]] | None = None,
    ) -> TopicModels:
        """Train every topic: one shared vocabulary, then one calibrated linear model per topic."""
        extra = extra or {}
        ids = [t.id for t in topics]
        if len(set(ids)) != len(ids):
            raise ValueError(f"topic ids must be unique, got {ids}")
        sets = {
            t.id: _training_set(t, background, extra.get(t.id, ()), _cross_negatives(t, topics))
            for t in topics
        }
        notes = [note for s in sets.values() for note in s.warnings]
        for note in notes:
            log.warning("%s", note)

        # one vocabulary over every distinct training document, so scoring is a single transform
        corpus: dict[str, Example] = {}
        for training in sets.values():
            for example in training.examples:
                corpus.setdefault(_example_key(example), example)
        keys = list(corpus)
        vectorizer = NewsVectorizer(min_df=MIN_DF, lead_tokens=LEAD_TOKENS, tail_weight=TAIL_WEIGHT).fit(
            [(e.title, e.text) for e in corpus.values()]
        )
        matrix = vectorizer.transform([(e.title, e.text) for e in corpus.values()])
        row_of = {key: i for i, key in enumerate(keys)}

        digest = background_digest(background)
        trained_at = datetime.now(UTC).isoformat(timespec="seconds")
        weights = np.zeros((vectorizer.n_features, len(topics)))
        intercepts = np.zeros(len(topics))
        info: dict[str, dict[str, Any]] = {}
        for j, topic in enumerate(topics):
            examples = sets[topic.id].examples
            x = matrix[[row_of[_example_key(e)] for e in examples]]
            y = np.array([e.label for e in examples])
            groups = np.array([e.event or _example_key(e) for e in examples])
            real = np.array([not _is_pseudo(e) for e in examples])
            passes = np.array([topic.rules.holds(e.title, e.text) for e in examples])
            weight = np.where(passes & (y == 0), HARD_NEGATIVE_WEIGHT, 1.0)
            w, b = _fit_linear(x, y, weight)
            if sets[topic.id].fallback:
                # Out-of-fold calibration would be fitted on one or two real positives and squash every
                # score; the class-balanced model's own probability is the better guess then.
                a, c = 1.0, 0.0
            else:
                a, c = _calibrate(x, y, weight, groups)
                if not topic.rules.empty:
                    # Without rules nothing gates the model, and even odds over all news would flood a
                    # channel: such a topic keeps the training set's odds (it errs towards missing).
                    c += _even_odds_shift(y, passes & real)
            weights[:, j] = a * w
            intercepts[j] = a * b + c
            info[topic.id] = {
                "version": MODEL_VERSION,
                "n_pos": int(y[real].sum()),
                "n_neg": int(real.sum() - y[real].sum()),
                "n_extra": len(extra.get(topic.id, ())),
                "trained_at": trained_at,
            }
        fingerprints = {t.id: cls.fingerprint_of(t, digest) for t in topics}
        return cls(vectorizer, tuple(ids), weights, intercepts, fingerprints, info, notes)

    def decision(self, docs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Calibrated log-odds, (n_docs, n_topics)."""
        x = self._vectorizer.transform(docs)
        return np.asarray(x @ self._weights) + self._intercepts

    def score(self, docs: Sequence[tuple[str, str]]) -> np.ndarray:
        """(title, text) pairs → calibrated probabilities, shape (n_docs, n_topics), columns in topic_ids order."""
        if not docs:
            return np.zeros((0, len(self.topic_ids)), dtype=np.float32)
        z = np.clip(self.decision(docs), -35, 35)
        return 1 / (1 + np.exp(-z))

    def explain(self, title: str, text: str, topic_id: str, k: int = 5) -> list[tuple[str, float]]:
        """The k terms that moved this report's score most: (term, contribution to the log-odds), signed."""
        column = self._column(topic_id)
        x = self._vectorizer.transform([(title, text)])
        contributions = x.data * self._weights[x.indices, column]
        order = np.argsort(-np.abs(contributions), kind="stable")[:k]
        names = self._vectorizer.feature_names
        return [
            (names[x.indices[i]], round(float(contributions[i]), 4)) for i in order if contributions[i] != 0
        ]

    def fingerprint(self, topic_id: str) -> str:
        """The fingerprint the topic was trained with (compare with ``fingerprint_of`` to decide a retrain)."""
        self._column(topic_id)
        return self._fingerprints[topic_id]

    @staticmethod
    def fingerprint_of(topic: TopicDefinition, background_digest: str) -> str:
        """sha256 of MODEL_VERSION, the topic's definition and examples, and the background digest.

        The threshold is left out on purpose: it is applied at scoring time, so changing it needs no retrain.
        """
        payload = {
            "version": MODEL_VERSION,
            "id": topic.id,
            "description": topic.description,
            "rules": [list(topic.rules.all), list(topic.rules.any), list(topic.rules.none)],
            "examples": [[e.title, e.text, e.label, e.event, e.id] for e in topic.examples],
            "background": background_digest,
        }
        return hashlib.sha256(json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()).hexdigest()

    def info(self) -> dict[str, dict[str, Any]]:
        """Per topic: model version, positives and negatives trained on, feedback count, when trained."""
        return {k: dict(v) for k, v in self._info.items()}

    def save(self, path: Path) -> None:
        """Write the models to one joblib file (with MODEL_VERSION, so a stale file is refused on load)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "model_version": MODEL_VERSION,
            "vectorizer": self._vectorizer,
            "topic_ids": self.topic_ids,
            "weights": self._weights,
            "intercepts": self._intercepts,
            "fingerprints": self._fingerprints,
            "info": self._info,
            "warnings": self.warnings,
        }
        tmp = path.with_name(path.name + ".tmp")
        joblib.dump(state, tmp, compress=3)
        tmp.replace(path)  # atomic: a crash mid-write never leaves a half model for the next start

    @classmethod
    def load(cls, path: Path) -> TopicModels:
        """Read a file written by ``save``; raise ModelVersionError if it was written by another version."""
        state = joblib.load(path)
        version = state.get("model_version") if isinstance(state, dict) else None
        if version != MODEL_VERSION:
            raise ModelVersionError(
                f"model file {path} was written by model version {version!r}, this code is {MODEL_VERSION!r}: "
                "retrain the topics (delete the file, or run the retrain job) instead of loading it"
            )
        return cls(
            state["vectorizer"],
            tuple(state["topic_ids"]),
            state["weights"],
            state["intercepts"],
            state["fingerprints"],
            state["info"],
            state.get("warnings", ()),
        )

    def _column(self, topic_id: str) -> int:
        try:
            return self.topic_ids.index(topic_id)
        except ValueError:
            raise KeyError(
                f"unknown topic {topic_id!r}; trained topics: {', '.join(self.topic_ids)}"
            ) from None
