"""`watchfloor score`: one JSON line out per line in, in order; bad lines named, the rest scored."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support import FIXTURES

from bot.config import Config
from bot.score_lines import score_lines
from bot.summary import summarise

NOW = datetime(2026, 11, 27, tzinfo=UTC)
SEED = FIXTURES / "seed" / "000_ba412a54cf4b0082.txt"
TOPICS = {
    "dprk-russia-military",
    "undersea-cable-sabotage",
    "red-sea-shipping-attacks",
    "taiwan-strait-military",
}


@pytest.fixture(scope="module")
def config(shipped_config: Config, tmp_path_factory: pytest.TempPathFactory) -> Config:
    models = tmp_path_factory.mktemp("models")
    classifier = shipped_config.classifier.model_copy(update={"model_dir": str(models)})
    return shipped_config.model_copy(update={"classifier": classifier})


def seed() -> tuple[str, str]:
    title, _, body = SEED.read_text(encoding="utf-8").partition("\n")
    return title.strip(), body


def run(config: Config, lines: list[str], explain: bool = False) -> tuple[int, list[dict[str, object]]]:
    out = io.StringIO()
    code = score_lines(config, lines, out, explain=explain, now=NOW)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def test_the_seed_case_is_flagged_for_dprk_russia_only_with_its_point_summarised(config: Config) -> None:
    title, body = seed()
    code, [row] = run(config, [json.dumps({"id": "seed", "title": title, "text": body})])
    assert code == 0
    assert row["id"] == "seed" and row["story"] == "seed"
    assert row["flagged"] == ["dprk-russia-military"]
    assert set(row["scores"]) == TOPICS  # type: ignore[arg-type]
    summary = summarise(title, body)
    assert "North Korean soldiers" in summary and "Russia" in summary and "concern" in summary
    assert "Liz Friden" not in summary and "Reuters and" not in summary and len(summary) <= 300


def test_output_lines_up_with_input_and_bad_lines_are_named(config: Config) -> None:
    title, body = seed()
    lines = [
        json.dumps({"id": "a", "title": title, "text": body, "url": "https://x.example/a?utm_source=t"}),
        "{not json",
        json.dumps({"title": "no text"}),
        json.dumps(
            {
                "id": "b",
                "title": "Pyongyang sends more shells to Moscow, Seoul says",
                "text": "North Korea has shipped millions of artillery shells to Russia for its war in Ukraine, "
                "South Korea's intelligence service said, as US officials voiced concern about North "
                "Korean soldiers fighting for Russia.",
            }
        ),
        "",
        json.dumps(
            {"title": "City marathon draws record crowd", "text": "Forty thousand runners took part."}
        ),
    ]
    code, rows = run(config, lines)
    assert code == 1
    assert [r.get("id", r.get("line")) for r in rows] == ["a", 2, 3, "b", "line-6"]
    assert "not JSON" in rows[1]["error"] and "text" in rows[2]["error"]  # type: ignore[operator]
    assert rows[3]["flagged"] == ["dprk-russia-military"]
    assert rows[4]["flagged"] == [] and rows[4]["story"] == "line-6"


def test_explain_gives_terms_and_rules(config: Config) -> None:
    title, body = seed()
    _, [row] = run(config, [json.dumps({"id": "s", "title": title, "text": body})], explain=True)
    why = row["why"]["dprk-russia-military"]  # type: ignore[index]
    assert why["rules"] and why["terms"]
    assert any("korea" in term for term, weight in why["terms"] if weight > 0)


def test_score_command_reads_a_file(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import cmd_score

    title, body = seed()
    f = tmp_path / "in.jsonl"
    f.write_text(json.dumps({"id": "x", "title": title, "text": body}) + "\n")
    monkeypatch.setattr("bot.cli._load", lambda args: config)

    class Args:
        file = str(f)
        explain = False
        config = None

    assert cmd_score(Args()) == 0  # type: ignore[arg-type]
    assert json.loads(capsys.readouterr().out)["flagged"] == ["dprk-russia-military"]
