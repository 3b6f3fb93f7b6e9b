"""Reports written for this test, not in news_dev.jsonl nor in the training examples: rephrasings that
avoid the obvious keywords, and look-alikes built to fool keyword rules (threat roundups naming every
country, a DPRK missile test with no Russia link, cable-business news, Red Sea tourism, TSMC profits)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
from support import FIXTURES

from bot.config import Config
from bot.score_lines import score_lines

REPORTS = FIXTURES / "heldout" / "reports.jsonl"


@pytest.fixture(scope="module")
def config(shipped_config: Config, tmp_path_factory: pytest.TempPathFactory) -> Config:
    classifier = shipped_config.classifier.model_copy(update={"model_dir": str(tmp_path_factory.mktemp("m"))})
    return shipped_config.model_copy(update={"classifier": classifier})


def test_heldout_reports_are_flagged_as_an_analyst_would(config: Config) -> None:
    lines = REPORTS.read_text(encoding="utf-8").splitlines()
    out = io.StringIO()
    assert score_lines(config, lines, out, explain=False, now=datetime(2026, 11, 27, tzinfo=UTC)) == 0
    got = {r["id"]: r["flagged"] for r in map(json.loads, out.getvalue().splitlines())}
    expected = {r["id"]: r["expect_flagged"] for r in map(json.loads, lines)}
    wrong = {i: (got[i], expected[i]) for i in expected if got[i] != expected[i]}
    assert not wrong, f"(got, expected) per report: {wrong}"
