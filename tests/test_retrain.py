"""Retrain triggers: after `learning.retrain_after` feedback clicks, nightly, and what a swap (or a
refusal) does to the running scorer. Jobs are called directly with a frozen clock, on a real store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import ROOT

from bot import model_registry as registry
from bot import queries
from bot.config import Config, load_config
from bot.decide import decide_alerts
from bot.dedup import item_keys, new_items
from bot.items import Item, ScoredItem, TopicScore, Why
from bot.pipeline import Runtime
from bot.retrain import is_heldout, load_active, nightly_retrain, retrain_if_due, topics_due
from bot.runtime import story_index
from bot.scoring import TopicScorer
from bot.store import FeedbackLabel, Store, open_engine
from bot.topic_models import topic_definition
from classifiers.training import Example

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
CABLES = "undersea-cable-sabotage"
EXAMPLES = ROOT / "examples"


def write_config(tmp_path: Path, retrain_after: int) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[classifier]
background = ["{EXAMPLES}/background.jsonl"]
model_dir = "models"

[learning]
retrain_after = {retrain_after}

[[topics]]
id = "{CABLES}"
description = "Damage to undersea telecom or power cables and subsea pipelines by ships, anchors or sabotage"
threshold = 0.5
rules = {{ any = ["cable|cables|pipeline|balticconnector|estlink"] }}
examples = {{ files = ["{EXAMPLES}/news_labelled.jsonl", "{EXAMPLES}/undersea-cable-sabotage.jsonl"] }}
destinations = ["console"]
"""
    )
    return load_config(path)


def runtime(config: Config, store: Store) -> Runtime:
    scorer = TopicScorer(load_active(config, store, NOW), config.active_topics)
    return Runtime(config=config, store=store, scorer=scorer, stories=story_index(config))


def alerted(store: Store, reports: Sequence[Example], prefix: str) -> list[str]:
    """Each report stored as an item alerted on the topic; the alert ids."""
    ids = []
    for n, report in enumerate(reports):
        item = Item(
            f"{prefix}{n}", f"https://news.example/{prefix}{n}", report.title, report.text, NOW, "wire"
        )
        scored = ScoredItem(item, item.id, (TopicScore(CABLES, 0.9, True, Why()),), "")
        _, keys = new_items([item], {}, [item_keys(item)])
        alerts = decide_alerts([scored], {CABLES: ["console"]}, set(), NOW)
        with store.transaction() as conn:
            store.save_scored(conn, [scored], keys, {CABLES: "v0"}, alerts)
        ids.append(alerts[0].id)
    return ids


def training_side(config: Config, label: int) -> list[Example]:
    """The topic's reports of one label that train (not held out): feedback on them changes the model,
    not the held-out reports it is judged on."""
    [topic] = config.active_topics
    return [e for e in topic_definition(config, topic).examples if e.label == label and not is_heldout(e)]


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Store:
    return Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}")


def test_retrains_after_n_new_feedback_clicks_and_swaps_a_not_worse_model(
    tmp_path: Path, sqlite_store: Store
) -> None:
    config = write_config(tmp_path, retrain_after=5)
    rt = runtime(config, sqlite_store)
    running, first = rt.scorer, rt.scorer.models.fingerprint(CABLES)
    # Five more of the topic's own reports, alerted and confirmed relevant.
    alerts = alerted(sqlite_store, training_side(config, 1)[:5], "fb")
    for alert in alerts[:4]:
        sqlite_store.record_feedback(alert, "U0ANA", "relevant", NOW)
    assert retrain_if_due(rt, LATER) is None  # 4 clicks < retrain_after
    assert rt.scorer is running

    sqlite_store.record_feedback(alerts[4], "U0ANA", "relevant", NOW)
    assert topics_due(sqlite_store, config) == {CABLES: 5}
    report = retrain_if_due(rt, LATER)
    assert report is not None and report.trigger == "feedback" and report.swapped
    [outcome] = report.outcomes
    assert outcome.status == "activated" and " ≥ active " in outcome.reason
    assert rt.scorer is not running and rt.scorer.models.fingerprint(CABLES) == outcome.version != first
    active = registry.active_versions(sqlite_store)[CABLES]
    assert (active.version, active.n_feedback, active.trained_at) == (outcome.version, 5, LATER)
    assert [r.status for r in registry.history(sqlite_store, CABLES)] == ["active", "retired"]
    assert retrain_if_due(rt, LATER) is None  # counted from the new version: nothing new

    # A second analyst agreeing changes no label: due again after 5 clicks, same version, nothing swapped.
    for alert in alerts:
        sqlite_store.record_feedback(alert, "U0BO", "relevant", LATER)
    same = retrain_if_due(rt, LATER + timedelta(hours=1))
    assert same is not None and [o.status for o in same.outcomes] == ["unchanged"] and not same.swapped
    assert retrain_if_due(rt, LATER + timedelta(hours=1)) is None


def test_a_worse_candidate_is_kept_aside_and_the_old_model_keeps_scoring(
    tmp_path: Path, store: Store
) -> None:
    config = write_config(tmp_path, retrain_after=10)
    rt = runtime(config, store)
    running, first = rt.scorer, registry.active_versions(store)[CABLES]
    # An analyst marks ten of the topic's own reports "not relevant": a model taught that is worse.
    for alert in alerted(store, training_side(config, 1)[:10], "bad"):
        store.record_feedback(alert, "U0ANA", "not_relevant", NOW)
    report = retrain_if_due(rt, LATER)
    assert report is not None and not report.swapped
    [outcome] = report.outcomes
    assert outcome.status == "rejected"
    assert first.f1 is not None and outcome.f1 is not None and outcome.f1 < first.f1
    assert outcome.reason.startswith(f"held-out F1 {outcome.f1:.2f} < active ")
    assert outcome.reason.endswith("held-out reports")
    assert rt.scorer is running and rt.scorer.models.fingerprint(CABLES) == first.version

    status = [m for m in queries.status_report(store).model_versions if m.topic == CABLES and m.status]
    assert [(m.version, m.status) for m in status] == [
        (first.version, "active"),
        (outcome.version, "rejected"),
    ]
    assert (
        status[0].f1 == first.f1 and status[0].n_examples == first.n_examples and status[0].trained_at == NOW
    )
    assert status[1].reason == outcome.reason and status[1].n_feedback == 10

    # Judged once: no new clicks, not due; the nightly run finds the same candidate and does not re-judge it.
    assert retrain_if_due(rt, LATER) is None
    nightly = nightly_retrain(rt, LATER + timedelta(hours=12))
    assert [o.status for o in nightly.outcomes] == ["kept"] and not nightly.swapped
    assert rt.scorer is running
    assert [r.status for r in registry.history(store, CABLES)] == ["rejected", "active"]


def test_nightly_retrain_folds_in_corrected_verdicts(tmp_path: Path, sqlite_store: Store) -> None:
    config = write_config(tmp_path, retrain_after=100)
    reports = training_side(config, 1)[:10]
    alerts = alerted(sqlite_store, reports, "fix")
    for alert in alerts:  # wrong verdicts before the first start: the first version learns them
        sqlite_store.record_feedback(alert, "U0ANA", "not_relevant", NOW)
    rt = runtime(config, sqlite_store)
    misled = registry.active_versions(sqlite_store)[CABLES]
    for alert in alerts:  # the analyst corrects them: the latest verdict counts, no new clicks
        sqlite_store.record_feedback(alert, "U0ANA", "relevant", LATER)
    assert retrain_if_due(rt, LATER) is None

    report = nightly_retrain(rt, LATER + timedelta(hours=12))
    [outcome] = report.outcomes
    assert report.trigger == "nightly" and report.swapped and outcome.status == "activated"
    assert misled.f1 is not None and outcome.f1 is not None and outcome.f1 > misled.f1
    assert rt.scorer.models.fingerprint(CABLES) == outcome.version != misled.version
    # Nothing changed since: the next night keeps everything as it is.
    again = nightly_retrain(rt, LATER + timedelta(days=1))
    assert [o.status for o in again.outcomes] == ["unchanged"] and not again.swapped


class ReloadingStore(Store):
    """A store during whose feedback read a config reload lands (as `Service.apply` would, from another
    thread): the retrain that was reading must neither swap nor record its older config's verdicts."""

    reload: tuple[Runtime, Config] | None = None

    def feedback_labels(self, topic: str) -> list[FeedbackLabel]:
        if self.reload is not None:
            rt, config = self.reload
            rt.config = config
        return super().feedback_labels(topic)


def test_a_reload_during_a_retrain_wins(tmp_path: Path) -> None:
    store = ReloadingStore(open_engine(f"sqlite:///{tmp_path / 'store.sqlite'}"))
    store.create()
    config = write_config(tmp_path, retrain_after=1)
    rt = runtime(config, store)
    running = rt.scorer
    for alert in alerted(store, training_side(config, 1)[:10], "bad"):
        store.record_feedback(alert, "U0ANA", "not_relevant", NOW)
    store.reload = (rt, write_config(tmp_path, retrain_after=1))
    report = retrain_if_due(rt, LATER)
    assert report is not None and report.outcomes == [] and not report.swapped
    assert rt.scorer is running
    assert len(registry.history(store, CABLES)) == 1  # the candidate was not judged
