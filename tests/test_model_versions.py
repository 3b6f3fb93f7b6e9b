"""Versioned topic models: the swap rule, the held-out split, the registry and status, per-topic versions
from different training runs, a config change winning, and topics with too few examples on their rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from support import ROOT

from bot import model_registry as registry
from bot import queries
from bot.config import Config, load_config
from bot.decide import decide_alerts
from bot.dedup import item_keys, new_items
from bot.feedback import Verdict
from bot.items import Item, ScoredItem, TopicScore, Why
from bot.model_registry import VersionedModels, VersionRecord, decide
from bot.retrain import (
    HELDOUT_ONE_IN,
    example_warnings,
    heldout_split,
    is_heldout,
    load_active,
    prune_runs,
)
from bot.scoring import TopicScorer
from bot.store import Store
from bot.topic_models import topic_definition
from classifiers.rules import KeywordRules
from classifiers.training import Example, TopicDefinition

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CABLES = "undersea-cable-sabotage"
RED_SEA = "red-sea-shipping-attacks"
EXAMPLES = ROOT / "examples"

CABLES_TOPIC = f"""
[[topics]]
id = "{CABLES}"
description = "Damage to undersea telecom or power cables and subsea pipelines by ships, anchors or sabotage"
threshold = {{threshold}}
rules = {{{{ any = ["cable|cables|pipeline|balticconnector|estlink"] }}}}
examples = {{{{ files = ["{EXAMPLES}/news_labelled.jsonl", "{EXAMPLES}/undersea-cable-sabotage.jsonl"] }}}}
destinations = ["console"]
"""

RED_SEA_TOPIC = f"""
[[topics]]
id = "{RED_SEA}"
description = "Houthi missile, drone and boat attacks on merchant ships in the Red Sea and Gulf of Aden"
threshold = 0.5
rules = {{ any = ["red sea|gulf of aden|houthi|houthis|yemen|suez"] }}
examples = {{ files = ["{EXAMPLES}/news_labelled.jsonl", "{EXAMPLES}/red-sea-shipping-attacks.jsonl"] }}
destinations = ["console"]
"""


def write_config(tmp_path: Path, *, threshold: float = 0.5, red_sea: bool = False) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[classifier]\nbackground = ["{EXAMPLES}/background.jsonl"]\nmodel_dir = "models"\n'
        + CABLES_TOPIC.format(threshold=threshold)
        + (RED_SEA_TOPIC if red_sea else "")
    )
    return load_config(path)


def click(store: Store, topic: str, reports: Sequence[Example], verdict: Verdict, prefix: str) -> None:
    """Alert each report as a stored item on `topic` and record one analyst's verdict on it."""
    for n, report in enumerate(reports):
        item = Item(
            f"{prefix}{n}", f"https://news.example/{prefix}{n}", report.title, report.text, NOW, "wire"
        )
        scored = ScoredItem(item, item.id, (TopicScore(topic, 0.9, True, Why()),), "")
        _, keys = new_items([item], {}, [item_keys(item)])
        alerts = decide_alerts([scored], {topic: ["console"]}, set(), NOW)
        with store.transaction() as conn:
            store.save_scored(conn, [scored], keys, {topic: "v0"}, alerts)
        store.record_feedback(alerts[0].id, "U0ANA", verdict, NOW)


def training_side_positives(config: Config, topic_id: str) -> list[Example]:
    topic = next(t for t in config.active_topics if t.id == topic_id)
    return [e for e in topic_definition(config, topic).examples if e.label == 1 and not is_heldout(e)]


# -- the swap rule (pure) -----------------------------------------------------------------------------------


def test_a_candidate_not_worse_replaces_the_active_version() -> None:
    assert decide(0.9, 0.86, compared_on=40, active_version="a").activate
    equal = decide(0.86, 0.86, compared_on=40, active_version="a")
    assert equal.activate and equal.reason == "held-out F1 0.86 ≥ active 0.86 on the same 40 held-out reports"
    # F1s from the same counts may differ in the last bit; that is not "worse".
    assert decide(2 / 3, 1 - 1 / 3, compared_on=9, active_version="a").activate


def test_one_flipped_report_is_within_noise_but_two_are_worse() -> None:
    # 9 held-out positives: missing one of them takes F1 from 1.0 to 16/17 (what `replay` kept rejecting).
    one_missed = 16 / 17
    assert decide(one_missed, 1.0, compared_on=60, active_version="a", positives=9).activate
    two_missed = 2 * 7 / (2 * 7 + 2)
    assert not decide(two_missed, 1.0, compared_on=60, active_version="a", positives=9).activate
    # Without the count of positives, no slack at all.
    assert not decide(one_missed, 1.0, compared_on=60, active_version="a").activate


def test_a_worse_candidate_is_rejected_with_the_figures() -> None:
    worse = decide(0.81, 0.86, compared_on=40, active_version="a")
    assert not worse.activate
    assert worse.reason == "held-out F1 0.81 < active 0.86 on the same 40 held-out reports"
    recorded = decide(0.81, 0.86, compared_on=None, active_version="a")
    assert not recorded.activate and recorded.reason.endswith("(recorded figures)")


def test_first_version_new_definition_and_unmeasured_cases() -> None:
    assert decide(None, None, compared_on=None).activate  # nothing runs yet
    changed = decide(0.5, 0.9, compared_on=None, new_definition=True, active_version="a")
    assert changed.activate and "definition changed in config" in changed.reason
    assert decide(None, None, compared_on=0, active_version="a").activate  # the newer data runs
    assert decide(0.7, None, compared_on=0, active_version="a").activate
    assert not decide(None, 0.9, compared_on=0, active_version="a").activate


# -- the held-out split -------------------------------------------------------------------------------------


def test_heldout_split_is_stable_grouped_by_event_and_purged() -> None:
    reports = [
        Example(f"title {n}", f"text {n}", n % 2, event=f"event-{n // 3}", id=f"r{n}") for n in range(300)
    ]
    held = [r for r in reports if is_heldout(r)]
    assert 0.1 < len(held) / len(reports) < 0.3  # about one group in HELDOUT_ONE_IN
    assert HELDOUT_ONE_IN == 5
    for event in {r.event for r in reports}:  # reports of one event are on one side
        assert len({is_heldout(r) for r in reports if r.event == event}) == 1
    assert [is_heldout(r) for r in reports] == [is_heldout(replace(r)) for r in reports]  # stable

    topic = TopicDefinition("t", "a topic", KeywordRules(), 0.5, tuple(reports[:200]))
    feedback = {"t": [replace(r, id=f"feedback:{r.id}") for r in reports[200:]]}
    # Background shares reports and events with the held-out side: it must not train the held-out model.
    background = [replace(r, label=0) for r in reports[:50]]
    split = heldout_split([topic], background, feedback)
    held_ids = {r.id for r in split.reports["t"]}
    held_events = {r.event for r in split.reports["t"]}
    assert held_ids and all(r in held for r in reports if r.id in held_ids)
    training = [*split.definitions[0].examples, *split.background, *split.feedback["t"]]
    assert not [e for e in training if e.id in held_ids or e.event in held_events]
    assert len(split.definitions[0].examples) + len([r for r in reports[:200] if is_heldout(r)]) == 200


# -- the registry and status (SQLite and PostgreSQL) ----------------------------------------------------------


def record(version: str, status: str, at: datetime, f1: float | None, reason: str = "") -> VersionRecord:
    return VersionRecord(CABLES, version, at, 400, 20, 3, f1, f1, f1, status, reason)


def test_registry_keeps_one_active_version_and_status_shows_the_rejected_one(store: Store) -> None:
    registry.record_active(store, record("v1", "active", NOW, 0.86, "first version"))
    registry.record_active(store, record("v2", "active", NOW + timedelta(hours=1), 0.9, "better"))
    registry.record_rejected(
        store, record("v3", "rejected", NOW + timedelta(hours=2), 0.81, "held-out F1 0.81 < active 0.90")
    )
    assert {t: r.version for t, r in registry.active_versions(store).items()} == {CABLES: "v2"}
    assert [(r.version, r.status) for r in registry.history(store, CABLES)] == [
        ("v3", "rejected"),
        ("v2", "active"),
        ("v1", "retired"),
    ]
    assert registry.latest_rejected(store)[CABLES].reason == "held-out F1 0.81 < active 0.90"
    # Re-activating an older version keeps the time it was first trained.
    registry.record_active(store, record("v1", "active", NOW + timedelta(hours=3), 0.86, "config undone"))
    v1 = registry.version_record(store, CABLES, "v1")
    assert v1 is not None and v1.trained_at == NOW and v1.status == "active" and v1.reason == "config undone"
    registry.record_active(store, record("v2", "active", NOW + timedelta(hours=4), 0.9, "better"))

    registry.mark_feedback_seen(store, CABLES, "v3", 7)
    registry.mark_feedback_seen(store, CABLES, "v3", 5)  # never goes back
    assert registry.feedback_seen(store) == {CABLES: 7}

    status = {m.version: m for m in queries.status_report(store).model_versions if m.topic == CABLES}
    assert set(status) == {"v2", "v3"}  # the retired v1 made no stored scores: not shown
    assert (status["v2"].status, status["v2"].f1, status["v2"].n_examples) == ("active", 0.9, 400)
    assert (status["v3"].status, status["v3"].reason) == ("rejected", "held-out F1 0.81 < active 0.90")
    assert status["v2"].trained_at == NOW + timedelta(hours=1)


def test_status_joins_stored_scores_with_the_registry(store: Store) -> None:
    click(store, CABLES, [Example("Cable cut", "An anchor cut a cable.", 1)], "relevant", "s")  # scores by v0
    registry.record_active(store, record("v0", "active", NOW, None, "first version"))
    [only] = [m for m in queries.status_report(store).model_versions if m.topic == CABLES]
    assert (only.version, only.scores, only.status, only.f1) == ("v0", 1, "active", None)
    assert registry.feedback_clicks(store) == {CABLES: 1}


# -- training, measuring, deciding (real models, SQLite) -----------------------------------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}")


def test_first_start_records_measured_versions_and_reuses_them(tmp_path: Path, sqlite_store: Store) -> None:
    config = write_config(tmp_path)
    models = load_active(config, sqlite_store, NOW)
    [active] = registry.active_versions(sqlite_store).values()
    assert isinstance(models, VersionedModels) and models.fingerprint(CABLES) == active.version
    assert len(active.version) == 12
    assert active.f1 is not None and active.f1 > 0.8 and active.precision is not None
    assert active.n_positive == 25 and active.n_examples > 400 and active.n_feedback == 0
    assert active.reason is not None and active.reason.startswith("first version")
    # The same inputs again: the same version, no new row, the saved run reused.
    again = load_active(config, sqlite_store, NOW + timedelta(hours=1))
    assert again.fingerprint(CABLES) == active.version
    assert [r.version for r in registry.history(sqlite_store, CABLES)] == [active.version]
    assert len(list((tmp_path / "models").glob("topics-*.joblib"))) == 1


def test_a_config_change_wins_even_when_its_heldout_f1_is_worse(tmp_path: Path, sqlite_store: Store) -> None:
    first = load_active(write_config(tmp_path), sqlite_store, NOW)
    strict = load_active(write_config(tmp_path, threshold=0.97), sqlite_store, NOW + timedelta(hours=1))
    old, new = registry.history(sqlite_store, CABLES)[::-1]
    assert old.version == first.fingerprint(CABLES) and old.status == "retired"
    assert new.version == strict.fingerprint(CABLES) != old.version and new.status == "active"
    assert new.f1 is not None and old.f1 is not None and new.f1 < old.f1  # worse, and still it runs
    assert new.reason is not None and new.reason.startswith("topic definition changed in config")


def test_topics_run_different_versions_from_different_runs(tmp_path: Path, sqlite_store: Store) -> None:
    config = write_config(tmp_path, red_sea=True)
    before = load_active(config, sqlite_store, NOW)
    # Cables gets wrong verdicts (its own reports marked not relevant), Red Sea gets a right one.
    click(sqlite_store, CABLES, training_side_positives(config, CABLES)[:10], "not_relevant", "c")
    click(sqlite_store, RED_SEA, training_side_positives(config, RED_SEA)[:2], "relevant", "r")
    after = load_active(config, sqlite_store, NOW + timedelta(hours=1))

    assert after.fingerprint(CABLES) == before.fingerprint(CABLES)  # candidate rejected, old one runs
    assert after.fingerprint(RED_SEA) != before.fingerprint(RED_SEA)
    rejected = registry.latest_rejected(sqlite_store)[CABLES]
    assert (
        rejected.reason is not None
        and "held-out reports" in rejected.reason
        and " < active " in rejected.reason
    )
    assert after.parts[CABLES].models is not after.parts[RED_SEA].models  # two training runs

    docs = [
        ("Anchor drags across the Baltic and cuts a data cable", "Investigators boarded the ship."),
        ("Houthis fire missiles at a tanker in the Red Sea", "The ship was hit off Yemen."),
        ("Local bakery wins award", "Bread."),
    ]
    scores = after.score(docs)
    old_run, new_run = after.parts[CABLES].models, after.parts[RED_SEA].models
    np.testing.assert_allclose(scores[:, 0], old_run.score(docs)[:, old_run.topic_ids.index(CABLES)])
    np.testing.assert_allclose(scores[:, 1], new_run.score(docs)[:, new_run.topic_ids.index(RED_SEA)])
    assert after.explain(*docs[0], CABLES) == old_run.explain(*docs[0], CABLES)
    flagged = [
        [s.topic for s in row if s.flagged]
        for row in TopicScorer(after, config.active_topics).score(
            [Item(f"d{n}", f"https://x/{n}", t, x, NOW, "wire") for n, (t, x) in enumerate(docs)]
        )
    ]
    assert flagged == [[CABLES], [RED_SEA], []]
    with pytest.raises(TypeError, match="not saved itself"):
        after.save(tmp_path / "x.joblib")
    with pytest.raises(KeyError, match="unknown topic"):
        after.fingerprint("no-such-topic")


# -- too few examples: keyword rules alone --------------------------------------------------------------------


def test_a_topic_with_too_few_positives_runs_on_its_rules_alone(
    tmp_path: Path, sqlite_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[classifier]\nbackground = []\nmodel_dir = "models"\n[learning]\nmin_positives = 3\n'
        '[[topics]]\nid = "cables"\ndescription = "Damage to undersea cables"\nthreshold = 0.5\n'
        'rules = { any = ["cable|cables"], none = ["cable tv"] }\n'
        'examples = { positive = ["Anchor cuts a Baltic data cable", "Ship drags anchor over power cable"], '
        'negative = ["Cable TV prices rise", "Harbour crane repaired"] }\n'
        '[[topics]]\nid = "bare"\ndescription = "Anything about harbours"\n'
        'examples = { positive = ["Harbour crane repaired"] }\n'
    )
    config = load_config(path)
    with caplog.at_level("WARNING", logger="bot.retrain"):
        models = load_active(config, sqlite_store, NOW)
    assert models.rules_only == frozenset({"cables"})  # "bare" has no rules to fall back on: its model runs
    assert "topic cables: 2 positive example(s), fewer than learning.min_positives = 3" in caplog.text
    assert "runs on its keyword rules alone until it has 3" in caplog.text
    assert (
        "topic bare: 1 positive example(s)" in caplog.text
        and "no keyword rules to fall back on" in caplog.text
    )
    assert [w.split(":")[0] for w in models.warnings] == ["topic cables", "topic bare"]
    assert example_warnings(config) == list(models.warnings)

    docs = [
        ("Trawler snags a telecom cable", "Nothing about anchors here."),
        ("Cable TV bundle", "Cable TV."),
    ]
    assert models.score(docs)[:, 0].tolist() == [1.0, 0.0]  # the rules' verdict, whatever a model would say
    assert models.explain(*docs[0], "cables") == []
    [row, tv] = TopicScorer(models, config.active_topics).score(
        [Item(f"i{n}", f"https://x/{n}", t, x, NOW, "wire") for n, (t, x) in enumerate(docs)]
    )
    assert row[0].flagged and row[0].why.rules_matched == ("cable",) and not tv[0].flagged
    [active] = [r for r in registry.active_versions(sqlite_store).values() if r.topic == "cables"]
    assert active.n_positive == 2 and active.f1 is None  # no held-out positive among four examples

    # Feedback brings it to min_positives: the next candidate is a model, and it runs.
    click(
        sqlite_store,
        "cables",
        [Example("Cable cut off Gotland", "A cable was cut by an anchor.", 1)],
        "relevant",
        "f",
    )
    taught = load_active(config, sqlite_store, NOW + timedelta(hours=1))
    assert taught.rules_only == frozenset() and taught.fingerprint("cables") != models.fingerprint("cables")
    # Its first model went through the swap rule too: no worse than the rules on the held-out reports.
    reason = registry.active_versions(sqlite_store)["cables"].reason
    assert reason == "held-out F1 1.00 ≥ active 1.00 on the same 2 held-out reports"
    assert taught.score(docs)[0, 0] not in (0.0, 1.0)


def test_check_prints_the_too_few_examples_warning(capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    assert main(["check", "--config", str(ROOT / "tests" / "fixtures" / "config" / "minimal.toml")]) == 0
    out = capsys.readouterr().out
    assert "warning: topic cables: 1 positive example(s), fewer than learning.min_positives = 5" in out
    assert main(["check", "--config", str(ROOT / "config.toml")]) == 0
    assert "warning:" not in capsys.readouterr().out


# -- saved runs ---------------------------------------------------------------------------------------------


def test_pruning_keeps_the_newest_runs_and_every_run_an_active_version_needs(tmp_path: Path) -> None:
    import json
    import os

    for n in range(8):
        run = tmp_path / f"topics-{n}.joblib"
        run.write_bytes(b"model")
        run.with_suffix(".json").write_text(json.dumps({"topics": {CABLES: {f"v{n}": {}}}}))
        (tmp_path / "heldout").mkdir(exist_ok=True)
        (tmp_path / "heldout" / run.name).write_bytes(b"held-out model")
        os.utime(run, (1_000_000 + n, 1_000_000 + n))
    prune_runs(tmp_path, keep=3, protect=[(CABLES, "v1")])
    assert sorted(p.name for p in tmp_path.glob("topics-*.joblib")) == [
        "topics-1.joblib",
        "topics-5.joblib",
        "topics-6.joblib",
        "topics-7.joblib",
    ]
    assert sorted(p.name for p in (tmp_path / "heldout").iterdir()) == sorted(
        p.name for p in tmp_path.glob("topics-*.joblib")
    )
    assert not (tmp_path / "topics-0.json").exists()
