"""`watchfloor tune`: a threshold for a target precision from cross-validated scores of the topic's
labelled data (examples, feedback, --file), with the precision/recall table around it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support import FIXTURES

from bot.cli import main
from bot.config import load_config
from bot.pipeline import ingest
from bot.replay import load_replay
from bot.runtime import build_runtime
from bot.tune import GRID, Cut, choose_threshold, labelled_data, pr_table, rows_around
from classifiers.rules import KeywordRules
from classifiers.training import Example, TopicDefinition

LEARNING = FIXTURES / "learning"
NEWS = LEARNING / "cables-news.jsonl"


def write_config(folder: Path, threshold: float = 0.5) -> Path:
    path = folder / "config.toml"
    path.write_text(
        f"""
[storage]
url = "sqlite:///{folder / "watchfloor.sqlite"}"

[classifier]
background = ["{LEARNING / "background.jsonl"}"]
model_dir = "{folder / "models"}"

[[topics]]
id = "cables"
description = "Damage to undersea telecom and power cables and pipelines by ships, anchors or sabotage"
threshold = {threshold}
rules = {{ any = ["cable|cables|pipeline"] }}
examples = {{ files = ["{LEARNING / "cables-examples.jsonl"}"] }}
destinations = ["console"]

[[topics]]
id = "sparse"
description = "Volcanic eruptions"
examples = {{ positive = ["Volcano erupts in Iceland"], negative = ["Central bank holds rates"] }}
""",
        encoding="utf-8",
    )
    return path


# --- pure parts -----------------------------------------------------------------------------------------


def test_the_table_flags_as_the_bot_does_score_over_threshold_and_rules_holding() -> None:
    scores = [0.9, 0.8, 0.6, 0.4, 0.95]
    truth = [True, False, True, False, True]
    holds = [True, True, True, True, False]  # the last one's rules fail: never flagged
    table = pr_table(scores, truth, holds, [0.7, 0.3, 0.5])
    assert [c.threshold for c in table] == [0.3, 0.5, 0.7]
    assert [(c.tp, c.fp, c.fn) for c in table] == [(2, 2, 1), (2, 1, 1), (1, 1, 2)]
    assert table[1].precision == pytest.approx(2 / 3) and table[1].recall == pytest.approx(2 / 3)
    assert pr_table([0.1], [True], [True], [0.5])[0].precision is None
    with pytest.raises(ValueError, match="differ in length"):
        pr_table([0.1, 0.2], [True], [True])


def cut(threshold: float, tp: int, fp: int, fn: int) -> Cut:
    return Cut(threshold, tp, fp, fn)


def test_the_choice_is_the_best_recall_at_the_target_precision() -> None:
    table = [cut(0.3, 9, 3, 1), cut(0.4, 8, 1, 2), cut(0.5, 7, 0, 3), cut(0.6, 5, 0, 5)]
    choice = choose_threshold(table, 0.85)
    assert choice is not None and choice.reached and choice.cut.threshold == 0.4
    assert choose_threshold(table, 0.95).cut.threshold == 0.5  # type: ignore[union-attr]
    assert choose_threshold(table, 0.5).cut.threshold == 0.3  # type: ignore[union-attr]


def test_ties_keep_the_current_threshold_else_take_the_middle() -> None:
    table = [cut(0.3, 5, 1, 0), cut(0.4, 5, 0, 0), cut(0.5, 5, 0, 0), cut(0.6, 5, 0, 0), cut(0.7, 4, 0, 1)]
    assert choose_threshold(table, 0.9).cut.threshold == 0.5  # type: ignore[union-attr]
    assert choose_threshold(table, 0.9, prefer=0.6).cut.threshold == 0.6  # type: ignore[union-attr]
    assert choose_threshold(table, 0.9, prefer=0.3).cut.threshold == 0.5  # type: ignore[union-attr]


def test_an_unreachable_target_gives_the_most_precise_threshold_marked_not_reached() -> None:
    table = [cut(0.3, 9, 5, 1), cut(0.5, 6, 2, 4), cut(0.7, 3, 1, 7), cut(0.9, 0, 0, 10)]
    choice = choose_threshold(table, 0.9)
    assert choice is not None and not choice.reached
    assert choice.cut.threshold == 0.5  # 0.75 precision at both 0.5 and 0.7: the better recall wins
    assert choose_threshold([cut(0.5, 0, 0, 3)], 0.9) is None  # nothing flagged at any threshold


def test_the_rows_shown_reach_from_the_current_threshold_to_the_chosen_one() -> None:
    table = pr_table([0.5], [True], [True], GRID)
    chosen = next(c for c in table if c.threshold == 0.8)
    shown = [c.threshold for c in rows_around(table, chosen, k=2, keep=0.3)]
    assert shown == [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]
    assert [c.threshold for c in rows_around(table, table[0], k=2)] == [0.05, 0.1, 0.15]


def test_labelled_data_counts_each_report_once_examples_first() -> None:
    definition = TopicDefinition(
        "t",
        "d",
        KeywordRules(),
        0.5,
        (Example("A", "a", 1, "e1", "r1"), Example("B", "b", 0, "e2", "r2")),
    )
    feedback = [Example("C", "c", 1, None, "feedback:x"), Example("A", "a", 0, None, "r1")]
    from_file = [Example("A", "a", 0, "e1", "r1"), Example("D", "d", 0, "e3", "r4")]
    data = labelled_data(definition, feedback, from_file)
    assert [e.id for e in data.examples] == ["r1", "r2", "feedback:x", "r4"]
    assert data.examples[0].label == 1
    assert (data.from_examples, data.from_feedback, data.from_file) == (2, 1, 1)


# --- the command ----------------------------------------------------------------------------------------


def test_tune_prints_the_table_the_choice_and_the_config_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    code = main(
        ["tune", "--config", str(config), "--topic", "cables", "--precision", "0.8", "--file", str(NEWS)]
    )
    out = capsys.readouterr().out
    assert code in (0, 1)
    # 10 examples, 16 labelled reports in the file (one borderline left out), all distinct
    assert "labelled reports: 26 (14 positive, 12 negative): 10 from its examples, 0 feedback labels" in out
    assert "16 more from" in out and "grouped by event" in out
    rows = [line for line in out.splitlines() if re.match(r"^[ →]\s+0\.\d\d\s", line)]
    assert len(rows) >= 5 and sum(line.startswith("→") for line in rows) == 1
    assert sum("← " in r and "current" in r.split("← ")[1] for r in rows) == 1
    line = re.search(r'under \[\[topics\]\] id = "cables":\nthreshold = (0\.\d\d)   # watchfloor tune', out)
    assert line is not None
    chosen = next(r for r in rows if r.startswith("→")).split()
    assert chosen[1] == line.group(1)
    if code == 0:
        assert float(chosen[6]) >= 0.8  # precision column
    assert not (tmp_path / "watchfloor.sqlite").exists()  # no database is created to look for feedback


def test_tune_learns_from_the_feedback_in_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = write_config(tmp_path)
    config = load_config(config_path)
    report = next(r for r in load_replay(NEWS) if r.item.id == "n-08")
    rt = build_runtime(config, report.item.published)
    done = ingest(rt, [report.item], report.item.published)
    assert done.alerts, "the Vietnam cables report must alert"
    rt.store.record_feedback(done.alerts[0].id, "U1", "relevant", report.item.published)
    rt.store.close()
    main(["tune", "--config", str(config_path), "--topic", "cables", "--precision", "0.9"])
    assert "10 from its examples, 1 feedback label\n" in capsys.readouterr().out


def test_an_unreachable_precision_is_said_with_the_best_there_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every event has the same report twice, once on topic and once off: no threshold can tell them
    # apart, so precision stays at most 0.5 on these reports whatever the model.
    rows = []
    for r in load_replay(NEWS):
        for label, suffix in ((2, "on"), (0, "off")):
            rows.append(
                {"id": f"{r.item.id}-{suffix}", "event": r.event, "title": r.item.title, "text": r.item.text}
                | {"labels": {"cables": label}}
            )
    twins = tmp_path / "twins.jsonl"
    twins.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    config = write_config(tmp_path)
    code = main(
        ["tune", "--config", str(config), "--topic", "cables", "--precision", "0.9", "--file", str(twins)]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "precision 0.9 is not reachable on this data: the best is threshold" in out
    assert "threshold = 0." in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--topic", "cabels", "--precision", "0.9"], "no topic 'cabels'; topics: cables, sparse"),
        (["--topic", "cables", "--precision", "1.5"], "--precision 1.5: use a number above 0 and at most 1"),
        (["--topic", "sparse", "--precision", "0.9"], "too few labelled reports to cross-validate"),
        (["--topic", "cables", "--precision", "0.9", "--file", "nope.jsonl"], "cannot read nope.jsonl"),
    ],
)
def test_tune_refuses_what_it_cannot_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["tune", "--config", str(write_config(tmp_path)), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_malformed_labelled_file_is_named_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "title": "t", "text": "x", "labels": {}}\n{oops\n', encoding="utf-8")
    code = main(
        [
            "tune",
            "--config",
            str(write_config(tmp_path)),
            "--topic",
            "cables",
            "--precision",
            "0.9",
            "--file",
            str(bad),
        ]
    )
    assert code == 2
    assert f"{bad} line 2" in capsys.readouterr().err
