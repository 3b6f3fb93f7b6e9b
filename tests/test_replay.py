"""`watchfloor replay`: labelled reports through the real pipeline in time order, with and without a
simulated analyst's feedback, measured per window of alerts, with no training report leaking in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import FIXTURES, shared_path

from bot.cli import main
from bot.config import Config, load_config
from bot.replay import (
    UNDATED_STEP,
    Outcome,
    ReplayError,
    ReplayMarks,
    RunResult,
    analyst_verdict,
    leak_free_config,
    load_replay,
    purge_lines,
    replay_run,
    replay_times,
    window_spans,
    window_stats,
)

LEARNING = FIXTURES / "learning"
NEWS = LEARNING / "cables-news.jsonl"
EXAMPLES = LEARNING / "cables-examples.jsonl"


def write_config(folder: Path, retrain_after: int = 2) -> Path:
    """A one-topic config over the fixture examples, everything it writes kept in `folder`."""
    path = folder / "config.toml"
    path.write_text(
        f"""
[storage]
url = "sqlite:///{folder / "watchfloor.sqlite"}"

[classifier]
background = ["{LEARNING / "background.jsonl"}"]
model_dir = "{folder / "models"}"

[learning]
retrain_after = {retrain_after}
min_positives = 3

[[topics]]
id = "cables"
description = "Damage to undersea telecom and power cables and pipelines by ships, anchors or sabotage"
threshold = 0.5
rules = {{ any = ["cable|cables|pipeline"] }}
examples = {{ files = ["{EXAMPLES}"] }}
destinations = ["console"]
""",
        encoding="utf-8",
    )
    return path


# --- pure parts -----------------------------------------------------------------------------------------


def test_undated_reports_keep_their_place_a_minute_after_the_report_before() -> None:
    jan, feb = datetime(2024, 1, 5, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)
    assert replay_times([jan, None, None, feb, None]) == [
        jan,
        jan + UNDATED_STEP,
        jan + 2 * UNDATED_STEP,
        feb,
        feb + UNDATED_STEP,
    ]
    # undated before any dated report: they start at the first date, in file order
    assert replay_times([None, jan]) == [jan, jan]
    assert replay_times([None, None])[1] - replay_times([None, None])[0] == UNDATED_STEP


def test_windows_close_at_every_nth_alert_and_the_rest_is_the_last_window() -> None:
    assert window_spans([1, 3, 4, 8, 9], size=2, n_reports=12) == [(0, 4), (4, 9), (9, 12)]
    assert window_spans([1, 3], size=2, n_reports=4) == [(0, 4)]
    assert window_spans([1, 3], size=2, n_reports=5) == [(0, 4), (4, 5)]
    assert window_spans([], size=25, n_reports=7) == [(0, 7)]
    with pytest.raises(ValueError, match="at least 1"):
        window_spans([1], size=0, n_reports=3)


def test_window_precision_leaves_borderline_out_and_recall_counts_reports_of_alerted_stories() -> None:
    outcomes = [
        Outcome(label=2, alerted=True, covered=True),  # tp
        Outcome(label=2, alerted=False, covered=True),  # a later report of an alerted story: found
        Outcome(label=1, alerted=True, covered=True),  # borderline alert: in neither P nor R
        Outcome(label=0, alerted=True, covered=True),  # fp
        Outcome(label=2, alerted=False, covered=False),  # missed
        Outcome(label=None, alerted=False, covered=False),  # not labelled for this topic
    ]
    stats = window_stats(outcomes, 0, 6)
    assert (stats.alerts, stats.tp, stats.fp, stats.positives, stats.found) == (3, 1, 1, 3, 2)
    assert stats.precision == 0.5 and stats.recall == pytest.approx(2 / 3)
    empty = window_stats(outcomes, 5, 6)
    assert empty.precision is None and empty.recall is None


def test_the_analyst_clicks_by_label_and_leaves_borderline_alone() -> None:
    assert [analyst_verdict(label) for label in (2, 1, 0, None)] == ["relevant", None, "not_relevant", None]


def test_a_training_row_is_a_leak_by_id_url_title_or_event() -> None:
    reports = load_replay(NEWS)
    marks = ReplayMarks.of(reports)
    first = reports[0]
    lines = [
        json.dumps({"id": first.item.id, "title": "x", "text": "y", "label": 1}),
        json.dumps(
            {"id": "u", "url": first.item.url + "?utm_source=rss", "title": "x", "text": "y", "label": 1}
        ),
        json.dumps({"id": "t", "title": f"  {first.item.title.upper()} ", "text": "y", "label": 1}),
        json.dumps({"id": "e", "event": first.event, "title": "x", "text": "y", "label": 1}),
        json.dumps(
            {"id": "keep", "event": "other", "title": "Cable TV prices rise", "text": "y", "label": 0}
        ),
        "{not json",
    ]
    kept, purged = purge_lines(lines, marks)
    assert purged == 4
    assert kept == lines[4:]


def test_the_replay_config_trains_on_purged_copies_and_caches_models_aside(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    reports = load_replay(NEWS)
    clean, purge = leak_free_config(config, ReplayMarks.of(reports), tmp_path / "work")
    # cables-examples.jsonl holds the Shetland report (same title) and one of the NATO patrol event
    assert purge.files[str(EXAMPLES)] == (2, 10)
    copy = Path(clean.topics[0].examples.files[0])
    ids = [json.loads(line)["id"] for line in copy.read_text(encoding="utf-8").splitlines()]
    assert "ex-pos-6" not in ids and "ex-pos-5" not in ids and len(ids) == 8
    assert clean.classifier.model_dir == str(tmp_path / "work" / "models")
    assert len(EXAMPLES.read_text(encoding="utf-8").splitlines()) == 10  # the original is untouched


def test_reports_are_replayed_in_time_order_with_undated_ones_last(tmp_path: Path) -> None:
    lines = [
        {"id": "b", "published": "2024-02-01", "title": "B", "text": "b", "labels": {"t": 0}},
        {"id": "u", "published": None, "title": "U", "text": "u", "labels": {"t": 2}},
        {"id": "a", "published": "2024-01-01T10:00:00Z", "title": "A", "text": "a", "labels": {"t": 2}},
    ]
    path = tmp_path / "news.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n\n", encoding="utf-8")
    reports = load_replay(path)
    assert [r.item.id for r in reports] == ["a", "b", "u"]
    assert reports[2].item.published == datetime(2024, 2, 1, tzinfo=UTC) + timedelta(minutes=1)
    assert reports[0].labels == {"t": 2} and reports[0].event == "a"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", "line 2: not JSON"),
        ('{"id": "x", "title": "t", "text": "x"}', 'line 2: needs "labels"'),
        ('{"id": "x", "title": "t", "text": "x", "labels": {"t": 3}}', 'line 2: needs "labels"'),
        ('{"title": "t", "text": "x", "labels": {"t": 2}}', 'line 2: needs an "id"'),
        (
            '{"id": "x", "title": 5, "text": "x", "labels": {"t": 2}}',
            "line 2: missing or not a string: title",
        ),
        ('{"id": "a", "title": "t", "text": "x", "labels": {"t": 2}}', "id 'a' is used by more than one"),
    ],
)
def test_a_bad_replay_file_is_named_with_its_line(tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / "news.jsonl"
    path.write_text(
        '{"id": "a", "title": "t", "text": "x", "labels": {"t": 2}}\n' + line + "\n", encoding="utf-8"
    )
    with pytest.raises(ReplayError, match=expected.replace("(", r"\(")):
        load_replay(path)


# --- runs through the real pipeline ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, RunResult, RunResult]:
    folder = tmp_path_factory.mktemp("replay")
    config = load_config(write_config(folder, retrain_after=1))
    clean, _ = leak_free_config(config, ReplayMarks.of(load_replay(NEWS)), folder / "work")
    reports = load_replay(NEWS)
    control = replay_run(clean, reports, folder / "control.sqlite", feedback=False)
    learned = replay_run(clean, reports, folder / "feedback.sqlite", feedback=True)
    return clean, control, learned


def test_the_analyst_clicks_every_labelled_alert_and_nothing_else(
    runs: tuple[Config, RunResult, RunResult],
) -> None:
    _, control, learned = runs
    outcomes = learned.outcomes["cables"]
    alerted = [i for i, o in enumerate(outcomes) if o.alerted]
    assert alerted, "the fixture topic must alert on some reports"
    assert learned.clicks["cables"] == [i for i in alerted if outcomes[i].label in (0, 2)]
    assert control.clicks == {} and control.activated == {} and control.rejected == {}


def test_feedback_retrains_as_configured_and_the_first_run_is_identical_until_then(
    runs: tuple[Config, RunResult, RunResult],
) -> None:
    _, control, learned = runs
    tries = learned.activated.get("cables", []) + learned.rejected.get("cables", [])
    assert tries, "retrain_after = 1: every click makes the topic due"
    first = min(tries)
    # Until the first retrain both runs run the same models on the same reports.
    assert control.outcomes["cables"][: first + 1] == learned.outcomes["cables"][: first + 1]


def test_a_later_report_of_an_alerted_story_is_found_without_a_second_alert(
    runs: tuple[Config, RunResult, RunResult],
) -> None:
    _, control, _ = runs
    ids = [r.item.id for r in load_replay(NEWS)]
    first, second = ids.index("n-01"), ids.index("n-02")  # two outlets, one Baltic cable story
    outcomes = control.outcomes["cables"]
    assert outcomes[first].alerted and outcomes[first].covered
    assert not outcomes[second].alerted and outcomes[second].covered


# --- the command ----------------------------------------------------------------------------------------


def test_replay_command_prints_both_runs_per_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    code = main(
        [
            "replay",
            str(NEWS),
            "--config",
            str(config),
            "--feedback-from-labels",
            "--window",
            "3",
            "--retrain-after",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert f"{EXAMPLES} 2 of 10 rows left out" in out
    assert "retrained after 1 new click (--retrain-after)" in out
    assert "cables: 8 positives, 1 borderline in 17 reports" in out
    assert "no feedback: alerts" in out and "with feedback: alerts" in out
    rows = [line for line in out.splitlines() if line.strip().startswith(("1-", "all "))]
    assert len(rows) == 2 and all(line.count("|") == 3 for line in rows)
    assert "took" in out
    assert not (tmp_path / "watchfloor.sqlite").exists()  # the config's own store is never touched
    assert not (tmp_path / "models").exists()


def test_replay_without_feedback_prints_the_control_run_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(NEWS), "--config", str(write_config(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "no feedback: alerts" in out and "with feedback" not in out


def test_replay_command_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(write_config(tmp_path))
    assert main(["replay", str(tmp_path / "missing.jsonl"), "--config", config]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["replay", str(NEWS), "--config", config, "--window", "0"]) == 1
    assert "--window must be at least 1" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    assert main(["replay", str(empty), "--config", config]) == 1
    assert "holds no reports" in capsys.readouterr().err


def test_replay_of_the_dev_set_with_the_shipped_config_leaves_out_every_dev_report(
    tmp_path: Path, shipped_config: Config
) -> None:
    news = shared_path("data", "news_dev.jsonl")
    reports = load_replay(news)
    clean, purge = leak_free_config(shipped_config, ReplayMarks.of(reports), tmp_path)
    assert purge.files["examples/news_labelled.jsonl"] == (430, 430)
    marks = ReplayMarks.of(reports)
    for name in [*clean.classifier.background, *(f for t in clean.topics for f in t.examples.files)]:
        for line in Path(name).read_text(encoding="utf-8").splitlines():
            assert not marks.leaks(json.loads(line)), f"{name}: {line[:80]}"
