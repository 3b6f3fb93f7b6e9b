"""Extractive summaries: golden files for boilerplate cases, the seed article, sentence splitting."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.summary import split_sentences, summarise

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted((FIXTURES / "summary").glob("*.txt"))


def _read(path: Path) -> tuple[str, str]:
    title, _, body = path.read_text(encoding="utf-8").partition("\n")
    return title, body


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden(case: Path) -> None:
    title, body = _read(case)
    expected = case.with_suffix(".expected").read_text(encoding="utf-8").rstrip("\n")
    assert summarise(title, body) == expected


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_limits(case: Path) -> None:
    title, body = _read(case)
    summary = summarise(title, body)
    assert 0 < len(summary) <= 300
    assert len(split_sentences(summary)) <= 3


def test_seed_carries_the_point_without_the_broken_credit() -> None:
    title, body = _read(FIXTURES / "seed" / "000_ba412a54cf4b0082.txt")
    summary = summarise(title, body)
    assert summary.startswith("U.S. officials expressed concern")
    for needle in ("North Korean soldiers", "Russia", "Ukraine"):
        assert needle in summary
    assert "Liz Friden" not in summary
    assert "Reuters and" not in summary


def test_empty_text_falls_back_to_the_title() -> None:
    assert summarise("Cable cut near Matsu", "") == "Cable cut near Matsu"
    assert summarise("Cable cut near Matsu", "  \n By Jane Doe \n Read more") == "Cable cut near Matsu"


def test_long_first_sentence_is_cut_at_a_word_boundary() -> None:
    text = "The " + "very " * 80 + "long sentence ends here."
    summary = summarise("Title", text, max_chars=120)
    assert len(summary) <= 120
    assert summary.endswith("…")
    assert summary[:-1].split()[-1] in {"very", "The"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "U.S. officials met Lt. Col. Dietz on Jan. 6 in Washington. Dr. Kim said No. 3 was fine.",
            ["U.S. officials met Lt. Col. Dietz on Jan. 6 in Washington.", "Dr. Kim said No. 3 was fine."],
        ),
        ("Growth was 3.5 per cent. Prices rose 0.2%.", ["Growth was 3.5 per cent.", "Prices rose 0.2%."]),
        (
            "“We are concerned,” Miller said. “It would mark an increase.” He left.",
            ["“We are concerned,” Miller said.", "“It would mark an increase.”", "He left."],
        ),
        (
            "Talks were held in the U.S. The next round is in Seoul.",
            ["Talks were held in the U.S.", "The next round is in Seoul."],
        ),
        ("J. Smith reported it. e.g. this stays.", ["J. Smith reported it. e.g. this stays."]),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected
