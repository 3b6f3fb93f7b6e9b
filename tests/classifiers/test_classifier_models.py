"""Training and scoring: shapes, determinism, calibration range, persistence, explanations, fallbacks."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import joblib
import numpy as np
import pytest
from classifier_topics import SEED, load_proposed_topics, load_shipped_background

from classifiers import model as model_module
from classifiers.model import (
    MODEL_VERSION,
    ModelVersionError,
    TopicModels,
    _even_odds_shift,
    background_digest,
)
from classifiers.rules import KeywordRules
from classifiers.training import Example, TopicDefinition

DOCS = [
    (
        "North Korean troops join Russian assault in Kursk",
        "Pyongyang's soldiers fought alongside Russian units.",
    ),
    (
        "Houthis hit bulk carrier in Red Sea",
        "The missile struck the ship off Hodeidah; the crew was evacuated.",
    ),
    ("Local bakery wins bread award", "The judges praised the sourdough."),
]


@pytest.fixture(scope="module")
def topics() -> list[TopicDefinition]:
    return load_proposed_topics()


@pytest.fixture(scope="module")
def background() -> list[Example]:
    return load_shipped_background()


@pytest.fixture(scope="module")
def models(topics: list[TopicDefinition], background: list[Example]) -> TopicModels:
    return TopicModels.train(topics, background)


def test_score_shape_and_range(models: TopicModels, topics: list[TopicDefinition]) -> None:
    scores = models.score(DOCS)
    assert scores.shape == (3, len(topics))
    assert models.topic_ids == tuple(t.id for t in topics)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert models.score([]).shape == (0, len(topics))


def test_obvious_reports_land_on_their_topic(models: TopicModels) -> None:
    scores = models.score(DOCS)
    dprk = models.topic_ids.index("dprk-russia-military")
    red_sea = models.topic_ids.index("red-sea-shipping-attacks")
    assert scores[0].argmax() == dprk and scores[0, dprk] > 0.5
    assert scores[1].argmax() == red_sea and scores[1, red_sea] > 0.5
    assert scores[2].max() < 0.2


def test_training_is_deterministic(
    models: TopicModels, topics: list[TopicDefinition], background: list[Example]
) -> None:
    again = TopicModels.train(topics, background)
    np.testing.assert_array_equal(models.score(DOCS), again.score(DOCS))


def test_batch_scores_equal_single_scores(models: TopicModels) -> None:
    batch = models.score(DOCS * 700)  # large enough to be split into chunks and threads
    single = np.vstack([models.score([doc]) for doc in DOCS])
    np.testing.assert_allclose(batch[:3], single, rtol=1e-5)
    np.testing.assert_allclose(batch[-3:], single, rtol=1e-5)


def test_seed_article_flags_only_dprk(models: TopicModels, topics: list[TopicDefinition]) -> None:
    if not SEED.exists():
        pytest.skip(f"seed article not found at {SEED} (shared data absent)")
    title, _, body = SEED.read_text(encoding="utf-8").partition("\n")
    scores = models.score([(title, body)])[0]
    flagged = {
        t.id for t, s in zip(topics, scores, strict=True) if s >= t.threshold and t.rules.holds(title, body)
    }
    assert flagged == {"dprk-russia-military"}
    terms = dict(models.explain(title, body, "dprk-russia-military", k=10))
    assert terms.get("north korean", 0) > 0 or terms.get("korean", 0) > 0
    assert all(weight > 0 for weight in list(terms.values())[:3])


def test_explain_is_signed_and_sorted(models: TopicModels) -> None:
    title, text = DOCS[0]
    terms = models.explain(title, text, "dprk-russia-military", k=5)
    assert 0 < len(terms) <= 5
    magnitudes = [abs(w) for _, w in terms]
    assert magnitudes == sorted(magnitudes, reverse=True)
    with pytest.raises(KeyError, match="unknown topic"):
        models.explain(title, text, "no-such-topic")


def test_save_load_round_trip(models: TopicModels, tmp_path: Path) -> None:
    path = tmp_path / "models" / "topics.joblib"
    models.save(path)
    loaded = TopicModels.load(path)
    np.testing.assert_array_equal(loaded.score(DOCS), models.score(DOCS))
    assert loaded.topic_ids == models.topic_ids
    assert loaded.info() == models.info()
    for topic_id in models.topic_ids:
        assert loaded.fingerprint(topic_id) == models.fingerprint(topic_id)


def test_load_refuses_other_model_version(models: TopicModels, tmp_path: Path) -> None:
    path = tmp_path / "topics.joblib"
    models.save(path)
    state = joblib.load(path)
    state["model_version"] = "watchfloor-topics-0"
    joblib.dump(state, path)
    with pytest.raises(ModelVersionError, match="retrain"):
        TopicModels.load(path)


def test_info_reports_sizes_and_version(models: TopicModels) -> None:
    info = models.info()["dprk-russia-military"]
    assert info["version"] == MODEL_VERSION
    assert info["n_pos"] >= 50 and info["n_neg"] >= 300
    assert info["trained_at"]


def test_fingerprint_tracks_definition_not_threshold(
    models: TopicModels, topics: list[TopicDefinition], background: list[Example]
) -> None:
    topic = topics[0]
    digest = background_digest(background)
    assert models.fingerprint(topic.id) == TopicModels.fingerprint_of(topic, digest)
    assert TopicModels.fingerprint_of(replace(topic, threshold=0.9), digest) == models.fingerprint(topic.id)
    changed = replace(topic, examples=topic.examples[:-1])
    assert TopicModels.fingerprint_of(changed, digest) != models.fingerprint(topic.id)
    assert TopicModels.fingerprint_of(topic, "other-background") != models.fingerprint(topic.id)


def test_topic_with_few_examples_falls_back_to_description_and_rules(
    background: list[Example], caplog: pytest.LogCaptureFixture
) -> None:
    volcano = TopicDefinition(
        id="volcano-eruptions",
        description="Volcanic eruptions, lava flows, ash clouds and evacuations near volcanoes",
        rules=KeywordRules(any=("volcano|volcanic|eruption|lava|ash cloud",)),
        threshold=0.5,
        examples=(Example("Etna erupts again, spewing lava and ash", "Catania airport closed.", 1),),
    )
    with caplog.at_level(logging.WARNING, logger="classifiers.model"):
        models = TopicModels.train([volcano], background)
    assert any("volcano-eruptions" in w and "positive" in w for w in models.warnings)
    assert "volcano-eruptions" in caplog.text
    scores = models.score(
        [("Volcano eruption forces evacuations as lava flows", "Ash cloud grounds flights."), DOCS[2]]
    )[:, 0]
    assert scores[0] > 0.5 > scores[1]


def test_extra_feedback_is_used(topics: list[TopicDefinition], background: list[Example]) -> None:
    report = ("Local bakery wins bread award", "North Korean troops Russia Kursk bread")
    extra = {"dprk-russia-military": [Example(*report, label=0, id="feedback-1")] * 1}
    base = TopicModels.train(topics, background)
    tuned = TopicModels.train(topics, background, extra=extra)
    assert tuned.info()["dprk-russia-military"]["n_extra"] == 1
    column = base.topic_ids.index("dprk-russia-military")
    assert tuned.score([report])[0, column] < base.score([report])[0, column]


def test_duplicate_topic_ids_are_rejected(topics: list[TopicDefinition], background: list[Example]) -> None:
    with pytest.raises(ValueError, match="unique"):
        TopicModels.train([topics[0], topics[0]], background)


def test_even_odds_shift_cancels_the_share_of_positives_among_rule_passers() -> None:
    y = np.array([1] * 10 + [0] * 30 + [0] * 100)
    passes = np.array([True] * 40 + [False] * 100)  # only the first 40 pass the rules
    assert _even_odds_shift(y, passes) == pytest.approx(np.log(31 / 11))
    assert _even_odds_shift(y, np.zeros(len(y), dtype=bool)) == 0.0  # no passer: no shift, still finite


def test_negatives_that_pass_the_rules_weigh_more(
    topics: list[TopicDefinition], background: list[Example], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A report that passes the DPRK rules but is about something else: weighting such negatives up must
    # push its own score down (it is in training, so this checks the weight reaches the fit).
    roundup = Example(
        "Threat report lists North Korea and Russia among rivals",
        "The annual report names China, Russia, Iran and North Korea as the main state threats.",
        0,
        id="hard-negative",
    )
    dprk = replace(topics[0], examples=(*topics[0].examples, roundup))
    column = 0
    weighted = TopicModels.train([dprk], background).decision([(roundup.title, roundup.text)])[0, column]
    monkeypatch.setattr(model_module, "HARD_NEGATIVE_WEIGHT", 1.0)
    plain = TopicModels.train([dprk], background).decision([(roundup.title, roundup.text)])[0, column]
    assert weighted < plain


def test_description_is_a_prior_even_with_many_examples(
    topics: list[TopicDefinition], background: list[Example]
) -> None:
    # A word only the description uses still pushes the score up, and info counts real examples only.
    topic = replace(topics[2], description=topics[2].description + " Zzyzxattack raids on tankers.")
    models = TopicModels.train([topic], background)
    assert dict(models.explain("Zzyzxattack", "", topic.id)).get("zzyzxattack", 0) > 0
    assert models.info()[topic.id]["n_pos"] == sum(e.label == 1 for e in topic.examples)
