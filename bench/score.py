"""Scoring throughput: TopicModels.score against a naive per-topic TF-IDF + logistic regression baseline.

Prints items/s for batches of 10,000 items over 5 topics for both, and the ratio, from one run on the same
machine (ratios travel between machines; absolute numbers do not). Items are the shipped labelled news,
repeated. Run: ``python bench/score.py [--items 100000]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifiers.model import TopicModels  # noqa: E402
from classifiers.rules import KeywordRules  # noqa: E402
from classifiers.training import Example, TopicDefinition, load_background, load_examples  # noqa: E402

EXAMPLES = ROOT / "examples"
TOPIC_IDS = (
    "dprk-russia-military",
    "undersea-cable-sabotage",
    "red-sea-shipping-attacks",
    "taiwan-strait-military",
)
BATCH = 10_000


def five_topics() -> list[TopicDefinition]:
    """The four shipped topics plus a fifth (a copy of the first under another id), so 5 are scored."""
    topics = []
    for topic_id in TOPIC_IDS:
        examples = load_examples(EXAMPLES / "news_labelled.jsonl", topic_id)
        hand = EXAMPLES / f"{topic_id}.jsonl"
        if hand.exists():
            examples += load_examples(hand, topic_id)
        topics.append(TopicDefinition(topic_id, topic_id, KeywordRules(), 0.5, tuple(examples)))
    topics.append(replace(topics[0], id="fifth-topic"))
    return topics


def baseline(
    topics: Sequence[TopicDefinition], background: Sequence[Example]
) -> Callable[[list[str]], np.ndarray]:
    """Per topic: its own TfidfVectorizer (word 1–2-grams, sublinear tf) and LogisticRegression."""
    fitted = []
    for topic in topics:
        examples = [*topic.examples, *background]
        docs = [f"{e.title} {e.title} {e.text}" for e in examples]
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        model = LogisticRegression(C=20, class_weight="balanced", solver="liblinear")
        model.fit(vectorizer.fit_transform(docs), [e.label for e in examples])
        fitted.append((vectorizer, model))

    def score(docs: list[str]) -> np.ndarray:
        return np.column_stack([m.predict_proba(v.transform(docs))[:, 1] for v, m in fitted])

    return score


def rate(run: Callable[[], object], n_items: int, n_batches: int) -> float:
    start = time.perf_counter()
    for _ in range(n_batches):
        run()
    return n_items * n_batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=100_000, help="items to score with TopicModels")
    args = parser.parse_args()

    topics = five_topics()
    background = load_background(EXAMPLES / "background.jsonl")
    pool = [(e.title, e.text) for e in load_examples(EXAMPLES / "news_labelled.jsonl", TOPIC_IDS[0])]
    batch = (pool * (BATCH // len(pool) + 1))[:BATCH]

    start = time.perf_counter()
    models = TopicModels.train(topics, background)
    print(f"train TopicModels ({len(topics)} topics): {time.perf_counter() - start:.2f} s")
    naive = baseline(topics, background)
    strings = [f"{t} {t} {b}" for t, b in batch]

    models.score(batch)  # warm-up: first call sizes the hashing buffers
    ours = rate(lambda: models.score(batch), BATCH, max(1, args.items // BATCH))
    theirs = rate(lambda: naive(strings), BATCH, 1)
    print(f"TopicModels.score: {ours:,.0f} items/s   (batches of {BATCH:,}, {len(topics)} topics)")
    print(f"naive per-topic TF-IDF + LR: {theirs:,.0f} items/s")
    print(f"ratio: {ours / theirs:.1f}x")


if __name__ == "__main__":
    main()
