"""Turns the config's topics into trained models, reusing the saved ones while nothing changed.

A model file is keyed by the fingerprint of every topic's definition and examples plus the background
news, so editing a topic's keywords or examples retrains at the next start or reload, and an unchanged
config starts in milliseconds.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import Config, TopicConfig
from bot.scoring import rules_of
from classifiers.model import TopicModels, background_digest
from classifiers.training import Example, TopicDefinition, load_background, load_examples

if TYPE_CHECKING:
    from bot.store import Store

log = logging.getLogger(__name__)


def topic_definition(config: Config, topic: TopicConfig) -> TopicDefinition:
    examples: list[Example] = []
    for name in topic.examples.files:
        examples.extend(load_examples(config.path(name), topic.id))
    examples.extend(Example(title="", text=t, label=1) for t in topic.examples.positive)
    examples.extend(Example(title="", text=t, label=0) for t in topic.examples.negative)
    return TopicDefinition(
        id=topic.id,
        description=topic.description,
        rules=rules_of(topic),
        threshold=topic.threshold,
        examples=tuple(examples),
    )


def background_examples(config: Config) -> list[Example]:
    out: list[Example] = []
    for name in config.classifier.background:
        out.extend(load_background(config.path(name)))
    return out


def model_file(config: Config, definitions: Sequence[TopicDefinition], background_digest: str) -> Path:
    combined = hashlib.sha256(
        "".join(TopicModels.fingerprint_of(d, background_digest) for d in definitions).encode()
    ).hexdigest()[:16]
    return config.path(config.classifier.model_dir) / f"topics-{combined}.joblib"


# Older model files stay for a while so that undoing a config edit reloads instead of retraining.
KEEP_MODEL_FILES = 5


def _prune_old(folder: Path, keep: int) -> None:
    files = sorted(folder.glob("topics-*.joblib"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        old.unlink(missing_ok=True)


def feedback_examples(store: Store, topic_ids: Iterable[str]) -> dict[str, list[Example]]:
    """Per topic, the Slack feedback as training examples: the majority of each user's latest verdict per
    item, tied items left out (`Store.feedback_labels`). Topics without feedback are absent."""
    out: dict[str, list[Example]] = {}
    for topic_id in topic_ids:
        labels = store.feedback_labels(topic_id)
        if labels:
            # The id keeps one item one example, however many alerts and clicks it had.
            out[topic_id] = [
                Example(title=f.title, text=f.text, label=f.label, id=f"feedback:{f.item_id}") for f in labels
            ]
    return out


def _feedback_digest(extra: dict[str, list[Example]]) -> str:
    rows = sorted((topic, e.id or "", e.label) for topic, examples in extra.items() for e in examples)
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def load_or_train(config: Config, store: Store | None = None) -> TopicModels:
    """The saved models when they match the config (and, given a store, its feedback labels), else freshly
    trained ones (saved for next time). With `store`, each topic also learns from its Slack feedback."""
    definitions = [topic_definition(config, t) for t in config.active_topics]
    background = background_examples(config)
    extra = feedback_examples(store, [d.id for d in definitions]) if store is not None else {}
    digest = background_digest(background)
    if extra:
        # New feedback labels make a new model file; without feedback the file name is as before.
        digest = f"{digest}+feedback:{_feedback_digest(extra)}"
    path = model_file(config, definitions, digest)
    if path.is_file():
        try:
            return TopicModels.load(path)
        except Exception as exc:  # a stale or corrupt file is not fatal: we can always retrain
            log.warning("model file unusable, retraining path=%s error=%s", path, exc)
    log.info("training topic models topics=%s", ",".join(d.id for d in definitions))
    models = TopicModels.train(definitions, background, extra=extra)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        models.save(tmp)
        tmp.replace(path)  # atomic: a reader never sees half a file
        _prune_old(path.parent, keep=KEEP_MODEL_FILES)
    except OSError as exc:
        log.warning("could not save models path=%s error=%s", path, exc)
    return models
