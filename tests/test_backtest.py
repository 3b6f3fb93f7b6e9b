"""`watchfloor backtest`: the alerts a config change would add and remove on the stored news, decided per
story as the pipeline decides, without changing anything in the store."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support import FIXTURES

from bot.backtest import Change, decide_stories, diff_alerts, existing_store, render_diff, run_backtest
from bot.cli import main
from bot.config import load_config
from bot.items import Item, ScoredItem, TopicScore
from bot.pipeline import ingest
from bot.replay import load_replay
from bot.runtime import build_runtime
from bot.store import Store, model_versions

LEARNING = FIXTURES / "learning"
NOW = datetime(2024, 3, 10, tzinfo=UTC)  # a few days after the fixture's last dated report


def write_config(folder: Path, name: str, threshold: float, db: Path) -> Path:
    path = folder / name
    path.write_text(
        f"""
[storage]
url = "sqlite:///{db}"

[classifier]
background = ["{LEARNING / "background.jsonl"}"]
model_dir = "{folder / "models"}"

[learning]
min_positives = 3

[[topics]]
id = "cables"
description = "Damage to undersea telecom and power cables and pipelines by ships, anchors or sabotage"
threshold = {threshold}
rules = {{ any = ["cable|cables|pipeline"] }}
examples = {{ files = ["{LEARNING / "cables-examples.jsonl"}"] }}
destinations = ["console", "slack:#cables"]

[[topics]]
id = "cable-cars"
description = "Cable cars and ski lifts"
threshold = 0.5
rules = {{ any = ["cable car|chairlift"] }}
examples = {{ positive = ["New cable car line opens over the city river", "Ski resort cable car stalls, stranding tourists", "Alpine village votes for a new cable car"], negative = ["Cable TV prices rise again"] }}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store filled by the real pipeline with the fixture news, at threshold 0.3 for cables."""
    folder = tmp_path_factory.mktemp("backtest")
    config = load_config(write_config(folder, "stored.toml", 0.3, folder / "watchfloor.sqlite"))
    reports = load_replay(LEARNING / "cables-news.jsonl")
    rt = build_runtime(config, reports[0].item.published)
    for report in reports:
        ingest(rt, [report.item], report.item.published)
    rt.store.close()
    return folder


def run(
    current: Path, proposed: Path | None, since: timedelta = timedelta(days=365), topic: str | None = None
) -> str:
    out = io.StringIO()
    assert (
        run_backtest(
            load_config(current),
            load_config(proposed) if proposed else None,
            out,
            NOW,
            since,
            topic=topic,
        )
        == 0
    )
    return out.getvalue()


# --- pure parts -----------------------------------------------------------------------------------------


def scored(item_id: str, story: str, score: float, flagged: bool, topic: str = "t") -> ScoredItem:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    item = Item(item_id, f"https://x.example/{item_id}", f"title {item_id}", "text", at, "src")
    return ScoredItem(item, story, (TopicScore(topic, score, flagged),), "")


def test_a_story_alerts_once_per_topic_for_its_best_flagged_report() -> None:
    batch = [
        scored("a1", "s1", 0.6, True),
        scored("a2", "s1", 0.9, True),
        scored("a3", "s1", 0.95, False),  # over the threshold but vetoed by the rules: not flagged
        scored("b1", "s2", 0.4, False),
        scored("c1", "s3", 0.8, True, topic="other"),
    ]
    assert decide_stories(batch, ["t"]) == {("t", "s1"): "a2"}
    assert decide_stories(batch, ["t", "other"]) == {("t", "s1"): "a2", ("other", "s3"): "c1"}


def test_the_diff_lists_added_and_removed_stories_with_both_scores() -> None:
    before = {("t", "s1"): "a", ("t", "s2"): "b", ("gone", "s9"): "z"}
    after = {("t", "s2"): "b", ("t", "s3"): "c", ("new", "s8"): "y"}
    old = {("a", "t"): 0.7, ("b", "t"): 0.8, ("z", "gone"): 0.9}
    new = {("a", "t"): 0.2, ("b", "t"): 0.85, ("c", "t"): 0.6, ("y", "new"): 0.7}
    diffs = diff_alerts(before, after, old, new, topics=["t", "quiet"])
    t = diffs["t"]
    assert (t.before, t.after) == (2, 2)
    assert t.added == [Change("t", "s3", "c", None, 0.6)]
    assert t.removed == [Change("t", "s1", "a", 0.7, 0.2)]
    assert diffs["gone"].removed == [Change("gone", "s9", "z", 0.9, None)] and diffs["gone"].after == 0
    assert diffs["new"].added == [Change("new", "s8", "y", None, 0.7)]
    assert diffs["quiet"].before == diffs["quiet"].after == 0 and not diffs["quiet"].added
    assert list(diffs)[:2] == ["t", "quiet"]  # the topics asked for come first, in order


def test_rendered_titles_carry_no_terminal_control_characters() -> None:
    item = Item("a", "https://x.example/a", "Cable cut \x1b[31mRED\x1b[0m\nnext", "t", NOW, "wire\x07")
    diffs = diff_alerts({}, {("t", "s"): "a"}, {}, {("a", "t"): 0.9})
    text = render_diff(diffs, {"a": item})
    assert "\x1b" not in text and "\x07" not in text and "\nnext" not in text
    assert "t: 0 alerts → 1: 1 added, 0 removed" in text
    assert "  + 2024-03-10    —   → 0.900  wire" in text


# --- on a store filled by the pipeline -----------------------------------------------------------------


def test_a_higher_threshold_removes_the_alerts_scored_below_it(stored: Path) -> None:
    current = stored / "stored.toml"
    proposed = write_config(stored, "strict.toml", 0.9, stored / "watchfloor.sqlite")
    out = run(current, proposed)
    assert "before: " in out and "after: " in out
    line = next(line for line in out.splitlines() if line.startswith("cables:"))
    assert "0 added" in line and "0 removed" not in line
    removed = [line for line in out.splitlines() if line.startswith("  - ")]
    assert removed
    for row in removed:
        _, _, old, _, new = row.split()[:5]
        assert float(old) >= 0.3 and float(new) < 0.9
    assert "cable-cars: " in out and "unchanged" in out.split("cable-cars: ")[1].splitlines()[0]


def test_a_lower_threshold_only_adds(stored: Path) -> None:
    current = write_config(stored, "strict.toml", 0.9, stored / "watchfloor.sqlite")
    proposed = stored / "stored.toml"
    out = run(current, proposed, topic="cables")
    assert "cables:" in out and "cable-cars" not in out
    assert not [line for line in out.splitlines() if line.startswith("  - ")]
    assert [line for line in out.splitlines() if line.startswith("  + ")]


def test_without_a_proposed_config_the_stored_alerts_meet_a_fresh_scoring(stored: Path) -> None:
    same = run(stored / "stored.toml", None)
    assert "the alerts stored when the reports arrived" in same
    assert "cables: " in same and "unchanged" in same.split("cables: ")[1].splitlines()[0]
    # The stored alerts were decided at 0.3; the current config now says 0.9.
    stricter = write_config(stored, "strict.toml", 0.9, stored / "watchfloor.sqlite")
    out = run(stricter, None)
    removed = [line for line in out.splitlines() if line.startswith("  - ")]
    assert removed and all(float(r.split()[2]) >= 0.3 for r in removed)


def test_only_stories_first_seen_since_the_cut_off_count(stored: Path) -> None:
    out = run(stored / "stored.toml", None, since=timedelta(days=20))
    first = out.splitlines()[0]
    assert first.startswith("backtest: ") and "first seen since 2024-02-19" in first
    assert int(first.split()[1]) < 17  # fewer than all the stored reports


def test_a_backtest_writes_nothing_to_the_store(stored: Path) -> None:
    store = Store.open(f"sqlite:///{stored / 'watchfloor.sqlite'}")
    with store.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(model_versions)).scalar_one()
    run(stored / "stored.toml", write_config(stored, "strict.toml", 0.9, stored / "watchfloor.sqlite"))
    with store.engine.connect() as conn:
        after = conn.execute(select(func.count()).select_from(model_versions)).scalar_one()
    store.close()
    assert before == after > 0


def test_no_database_yet_is_said_and_not_created(tmp_path: Path) -> None:
    db = tmp_path / "never.sqlite"
    out = run(write_config(tmp_path, "c.toml", 0.5, db), None)
    assert "no database yet" in out and not db.exists()
    assert existing_store(f"sqlite:///{db}") is None


# --- the command ----------------------------------------------------------------------------------------


def test_backtest_command_compares_two_configs(stored: Path, capsys: pytest.CaptureFixture[str]) -> None:
    current = stored / "stored.toml"
    proposed = write_config(stored, "strict.toml", 0.9, stored / "watchfloor.sqlite")
    code = main(["backtest", "--current", str(current), "--config", str(proposed), "--since", "100000d"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"before: {current}; after: {proposed}" in out and "removed" in out


def test_a_bad_proposed_config_is_reported_with_its_problems(
    stored: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = stored / "bad.toml"
    bad.write_text('[[topics]]\nid = "Cables"\ntreshold = 0.4\n', encoding="utf-8")
    code = main(["backtest", "--current", str(stored / "stored.toml"), "--config", str(bad)])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{bad}: 3 problems" in err
    assert "topics[0].treshold (line 3): unknown key" in err and "topics[0].id (line 2)" in err


def test_backtest_command_refuses_an_unknown_topic_or_duration(
    stored: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = str(stored / "stored.toml")
    assert main(["backtest", "--current", current, "--topic", "cabels"]) == 2
    assert "no topic 'cabels'; topics: cable-cars, cables" in capsys.readouterr().err
    assert main(["backtest", "--current", current, "--since", "soon"]) == 2
    assert "--since 'soon' is not a duration" in capsys.readouterr().err
