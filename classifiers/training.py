"""Training data for topic models: examples, topic definitions, and the JSONL files they come from.

Examples come from three places: the topic's example files (hand-written positives and hard negatives, and
labelled news), background news (everyday reports on no topic, shared by every topic so a brand-new topic
gets negatives for free), and analyst feedback (passed to ``TopicModels.train`` as ``extra``).

File format, one JSON object a line:
- ``{"id", "event", "title", "text", "label": 1|0}`` — an example for the one topic the file is listed under;
- ``{"id", "event", "title", "text", "labels": {topic_id: 2|1|0}}`` — a labelled report for several topics:
  2 → positive, 0 → negative, 1 (borderline) and absent topics are skipped, so a borderline report never
  teaches the model either way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifiers.rules import KeywordRules


@dataclass(frozen=True, slots=True)
class Example:
    """One training report: 1 positive, 0 negative. ``event`` groups reports of one event for CV."""

    title: str
    text: str
    label: int
    event: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class TopicDefinition:
    """What the user configured for a topic; everything the model needs to train it."""

    id: str
    description: str
    rules: KeywordRules
    threshold: float
    examples: tuple[Example, ...]


class ExamplesError(ValueError):
    """A malformed line in an examples file; says which file and line, so the user can fix it."""

    def __init__(self, path: Path, line_no: int, message: str) -> None:
        super().__init__(f"examples file {path} line {line_no}: {message}")
        self.path = path
        self.line_no = line_no
        self.message = message


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for every non-blank line, checking the fields every format shares."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ExamplesError(path, 0, f"cannot be read ({exc.strerror or exc})") from exc
    with handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ExamplesError(
                    path, line_no, f"not valid JSON ({exc.msg} at column {exc.colno})"
                ) from exc
            if not isinstance(record, dict):
                raise ExamplesError(path, line_no, "expected a JSON object {...}")
            for key in ("title", "text"):
                if not isinstance(record.get(key), str):
                    raise ExamplesError(path, line_no, f'missing "{key}" (a string)')
            if not record["title"].strip() and not record["text"].strip():
                raise ExamplesError(path, line_no, '"title" and "text" are both empty')
            for key in ("id", "event"):
                if record.get(key) is not None and not isinstance(record[key], str):
                    raise ExamplesError(path, line_no, f'"{key}" must be a string')
            yield line_no, record


def _binary_label(path: Path, line_no: int, record: dict[str, Any]) -> int:
    label = record["label"]
    if isinstance(label, bool) or label not in (0, 1):
        raise ExamplesError(path, line_no, f'"label" is {label!r}: use 1 (on topic) or 0 (off topic)')
    return int(label)


def _labels(path: Path, line_no: int, record: dict[str, Any]) -> dict[str, int]:
    labels = record["labels"]
    if not isinstance(labels, dict):
        raise ExamplesError(path, line_no, '"labels" must be an object {topic_id: 2, 1 or 0}')
    for topic, value in labels.items():
        if isinstance(value, bool) or value not in (0, 1, 2):
            raise ExamplesError(
                path, line_no, f'"labels"."{topic}" is {value!r}: use 2 (on), 1 (borderline) or 0 (off)'
            )
    return labels


def _example(record: dict[str, Any], label: int) -> Example:
    return Example(
        title=record["title"],
        text=record["text"],
        label=label,
        event=record.get("event"),
        id=record.get("id"),
    )


def load_examples(path: Path, topic_id: str) -> list[Example]:
    """Load the examples for one topic from a JSONL file (either format, see the module docstring)."""
    examples = []
    for line_no, record in _records(path):
        if "label" in record:
            examples.append(_example(record, _binary_label(path, line_no, record)))
        elif "labels" in record:
            value = _labels(path, line_no, record).get(topic_id)
            if value == 2:
                examples.append(_example(record, 1))
            elif value == 0:
                examples.append(_example(record, 0))
        else:
            raise ExamplesError(path, line_no, 'needs "label" (1 or 0) or "labels" {topic_id: 2, 1 or 0}')
    return examples


def load_background(path: Path) -> list[Example]:
    """Load background news: negatives for every topic.

    A line without labels is a negative. A line with ``labels`` counts only if they are all 0 (a report that
    is on or near some topic is not background); a line with ``"label": 0`` is a negative, ``1`` is skipped.
    This lets the labelled news file itself serve as background.
    """
    background = []
    for line_no, record in _records(path):
        if "label" in record:
            if _binary_label(path, line_no, record) != 0:
                continue
        elif "labels" in record and any(value != 0 for value in _labels(path, line_no, record).values()):
            continue
        background.append(_example(record, 0))
    return background
