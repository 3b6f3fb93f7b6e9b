"""Loading example files: both formats, borderline skipping, and errors with file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from classifier_topics import EXAMPLES

from classifiers.training import ExamplesError, load_background, load_examples

TOPIC = "dprk-russia-military"


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "examples.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_label_and_labels_formats(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"id": "a", "event": "e1", "title": "t", "text": "x", "label": 1}',
        json.dumps({"id": "b", "title": "t", "text": "x", "labels": {TOPIC: 2}}),
        json.dumps({"id": "c", "title": "t", "text": "x", "labels": {TOPIC: 1}}),  # borderline: skipped
        json.dumps({"id": "d", "title": "t", "text": "x", "labels": {TOPIC: 0}}),
        '{"id": "e", "title": "t", "text": "x", "labels": {"other-topic": 2}}',  # topic absent: skipped
        "",
    )
    examples = load_examples(path, TOPIC)
    assert [(e.id, e.label) for e in examples] == [("a", 1), ("b", 1), ("d", 0)]
    assert examples[0].event == "e1"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"title": "t", "text": ', "not valid JSON"),
        ('{"text": "x", "label": 1}', 'missing "title"'),
        ('{"title": "t", "label": 1}', 'missing "text"'),
        ('{"title": "t", "text": "x", "label": 2}', "use 1 (on topic) or 0"),
        ('{"title": "t", "text": "x"}', 'needs "label"'),
        ('["a list"]', "JSON object"),
    ],
)
def test_malformed_line_reports_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, '{"title": "ok", "text": "ok", "label": 0}', line)
    with pytest.raises(ExamplesError) as caught:
        load_examples(path, TOPIC)
    assert caught.value.line_no == 2
    assert str(caught.value).startswith(f"examples file {path} line 2: ")
    assert message in str(caught.value)


def test_missing_file_is_an_examples_error(tmp_path: Path) -> None:
    with pytest.raises(ExamplesError, match="cannot be read"):
        load_examples(tmp_path / "nope.jsonl", TOPIC)


def test_background_keeps_only_off_topic_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"id": "plain", "title": "t", "text": "x"}',
        '{"id": "all-zero", "title": "t", "text": "x", "labels": {"a": 0, "b": 0}}',
        '{"id": "on-topic", "title": "t", "text": "x", "labels": {"a": 0, "b": 2}}',
        '{"id": "neg", "title": "t", "text": "x", "label": 0}',
        '{"id": "pos", "title": "t", "text": "x", "label": 1}',
    )
    assert [(e.id, e.label) for e in load_background(path)] == [("plain", 0), ("all-zero", 0), ("neg", 0)]


def test_shipped_example_files_load() -> None:
    for topic in (
        "dprk-russia-military",
        "undersea-cable-sabotage",
        "red-sea-shipping-attacks",
        "taiwan-strait-military",
    ):
        hand = load_examples(EXAMPLES / f"{topic}.jsonl", topic)
        assert 15 <= len(hand) <= 50
        assert {e.label for e in hand} == {0, 1}
        assert all(e.event and e.event.startswith("hand-") for e in hand)
        assert len({e.id for e in hand}) == len(hand)
        assert any(e.label == 1 for e in load_examples(EXAMPLES / "news_labelled.jsonl", topic))
    background = load_background(EXAMPLES / "background.jsonl")
    assert len(background) > 200 and all(e.label == 0 for e in background)
