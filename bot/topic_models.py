"""Turns the config's topics into trained models, reusing the saved ones while nothing changed.

A model file is keyed by the fingerprint of every topic's definition and examples plus the background
news, so editing a topic's keywords or examples retrains at the next start or reload, and an unchanged
config starts in milliseconds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
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


# Older model files stay for a while so that undoing a config edit reloads instead of retraining
# (`bot.retrain.prune_runs` keeps the runs holding an active version too).
KEEP_MODEL_FILES = 5


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


def run_file(
    config: Config,
    definitions: Sequence[TopicDefinition],
    background: Sequence[Example],
    extra: dict[str, list[Example]],
) -> Path:
    """Where the models trained on exactly these definitions, background and feedback are saved."""
    digest = background_digest(background)
    if extra:
        # New feedback labels make a new model file; without feedback the file name is as before.
        digest = f"{digest}+feedback:{_feedback_digest(extra)}"
    return model_file(config, definitions, digest)


def cached_models(path: Path, train: Callable[[], TopicModels]) -> TopicModels:
    """The models saved at `path`, else `train()`'s, saved there (atomically) for next time."""
    if path.is_file():
        try:
            return TopicModels.load(path)
        except Exception as exc:  # a stale or corrupt file is not fatal: we can always retrain
            log.warning("model file unusable, retraining path=%s error=%s", path, exc)
    models = train()
    # A file of this writer's own, renamed into place: a reader never sees half a file, and two processes
    # training the same run at once never write into one file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        models.save(tmp)
        tmp.replace(path)
    except OSError as exc:
        log.warning("could not save models path=%s error=%s", path, exc)
    return models


def load_or_train(config: Config, store: Store | None = None) -> TopicModels:
    """The models for the config's active topics, trained or loaded from their saved file.

    With `store`, each topic also learns from its Slack feedback, and the versions registry decides which
    version of each topic runs: a new candidate is measured on held-out reports and replaces the active
    version only if it is not worse (`bot.retrain.load_active`). Without it, the freshly trained models run.
    Either way a topic with too few positive examples runs on its keyword rules alone.
    """
    from bot.retrain import load_active  # the registry sits on top of this module

    return load_active(config, store)
