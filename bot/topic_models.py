"""Turns the config's topics into trained models, reusing the saved ones while nothing changed.

A model file is keyed by the fingerprint of every topic's definition and examples plus the background
news, so editing a topic's keywords or examples retrains at the next start or reload, and an unchanged
config starts in milliseconds.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

from bot.config import Config, TopicConfig
from bot.scoring import rules_of
from classifiers.model import TopicModels, background_digest
from classifiers.training import Example, TopicDefinition, load_background, load_examples

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


def load_or_train(config: Config) -> TopicModels:
    """The saved models when they match the config, else freshly trained ones (saved for next time)."""
    definitions = [topic_definition(config, t) for t in config.active_topics]
    background = background_examples(config)
    path = model_file(config, definitions, background_digest(background))
    if path.is_file():
        try:
            return TopicModels.load(path)
        except Exception as exc:  # a stale or corrupt file is not fatal: we can always retrain
            log.warning("model file unusable, retraining path=%s error=%s", path, exc)
    log.info("training topic models topics=%s", ",".join(d.id for d in definitions))
    models = TopicModels.train(definitions, background)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        models.save(tmp)
        tmp.replace(path)  # atomic: a reader never sees half a file
        _prune_old(path.parent, keep=KEEP_MODEL_FILES)
    except OSError as exc:
        log.warning("could not save models path=%s error=%s", path, exc)
    return models
