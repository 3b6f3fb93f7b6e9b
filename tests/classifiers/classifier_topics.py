"""Test helpers: where the shipped examples and the shared data live, and the shipped topics.

Not a conftest.py: tests/ already has one, and two top-level ``conftest`` modules would collide.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from classifiers.rules import KeywordRules
from classifiers.training import Example, TopicDefinition, load_background, load_examples

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
SHARED = REPO.parent / "shared"
SEED = REPO / "tests" / "fixtures" / "seed" / "000_ba412a54cf4b0082.txt"
NEWS_DEV = SHARED / "data" / "news_dev.jsonl"


def load_proposed_topics(root: Path = REPO) -> list[TopicDefinition]:
    """TopicDefinitions from the shipped config.toml's [[topics]]: the tests measure what users run."""
    config = tomllib.loads((root / "config.toml").read_text(encoding="utf-8"))
    topics = []
    for entry in config["topics"]:
        examples: list[Example] = []
        for name in entry["examples"]["files"]:
            path = root / name
            if path.exists():
                examples.extend(load_examples(path, entry["id"]))
        rules = KeywordRules(**{k: tuple(v) for k, v in entry.get("rules", {}).items()})
        topics.append(
            TopicDefinition(entry["id"], entry["description"], rules, entry["threshold"], tuple(examples))
        )
    return topics


def load_shipped_background() -> list[Example]:
    return load_background(EXAMPLES / "background.jsonl")
