"""Feedback and mutes: the pure rules (`bot.feedback`), the store on SQLite and PostgreSQL, and feedback
becoming training examples (`bot.topic_models`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import FIXTURES

from bot.config import load_config
from bot.decide import decide_alerts
from bot.dedup import item_keys, new_items
from bot.feedback import (
    ButtonValue,
    ButtonValueError,
    Tally,
    Vote,
    item_labels,
    latest_per_user,
    parse_button_value,
    verdict_of,
)
from bot.items import Item, ScoredItem, TopicScore, Why
from bot.store import FeedbackLabel, Mute, Store, UnknownAlert
from bot.topic_models import feedback_examples, load_or_train

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TOPIC = "cables"
OTHER = "ports"
CHANNEL = "slack:#infra-watch"


# -- pure rules -------------------------------------------------------------------------------------------


def test_button_value_is_parsed_and_every_bad_one_says_what_is_wrong() -> None:
    assert parse_button_value('{"alert_id":"a1","topic":"cables"}') == ButtonValue("a1", "cables")
    bad = {
        "": "carries no value",
        None: "carries no value",
        "not json": "not the JSON",
        "[1, 2]": "not a JSON object",
        '{"topic": "cables"}': "no valid alert",
        '{"alert_id": "' + "a" * 41 + '", "topic": "cables"}': "no valid alert",
        '{"alert_id": "a1", "topic": 7}': "no valid topic",
    }
    for raw, why in bad.items():
        with pytest.raises(ButtonValueError, match=why):
            parse_button_value(raw)


def test_verdict_of_action() -> None:
    assert verdict_of("feedback_relevant") == "relevant"
    assert verdict_of("feedback_not_relevant") == "not_relevant"
    with pytest.raises(ValueError, match="not a feedback button"):
        verdict_of("mute_topic_24h")


def _vote(item: str, user: str, verdict: str, minutes: int, alert: str = "a") -> Vote:
    return Vote(alert, item, user, verdict, NOW + timedelta(minutes=minutes))  # type: ignore[arg-type]


def test_latest_verdict_per_user_counts_across_alerts_of_one_item() -> None:
    # ana said relevant on the #a alert, then not relevant on the same item's #b alert: the latest counts.
    votes = [_vote("i1", "ana", "relevant", 1, "a"), _vote("i1", "ana", "not_relevant", 5, "b")]
    assert latest_per_user(votes) == {"ana": "not_relevant"}
    assert latest_per_user(reversed(votes)) == {"ana": "not_relevant"}


def test_majority_labels_and_ties_reported() -> None:
    votes = [
        _vote("i1", "ana", "relevant", 1),
        _vote("i1", "bo", "relevant", 2),
        _vote("i1", "cy", "not_relevant", 3),
        _vote("i2", "ana", "relevant", 1),
        _vote("i2", "bo", "not_relevant", 2),
        _vote("i3", "cy", "not_relevant", 1),
    ]
    labels = item_labels(votes)
    assert labels.labels == {"i1": 1, "i3": 0}
    assert labels.ties == {"i2": Tally(relevant=1, not_relevant=1)}
    assert Tally(2, 2).label is None and Tally(0, 1).label == 0


# -- the store, on both databases -------------------------------------------------------------------------


def _alerted(store: Store, item_id: str, title: str, topic: str, destinations: list[str]) -> list[str]:
    """Store an item flagged for `topic` and its alerts; return the alert ids."""
    item = Item(item_id, f"https://news.example/{item_id}", title, f"{title}. Reported by wire.", NOW, "wire")
    scored = ScoredItem(item, item.id, (TopicScore(topic, 0.9, True, Why()),), "")
    _, keys = new_items([item], {}, [item_keys(item)])
    alerts = decide_alerts([scored], {topic: destinations}, set(), NOW)
    with store.transaction() as conn:
        store.save_scored(conn, [scored], keys, {topic: "v1"}, alerts)
    return [a.id for a in alerts]


def test_one_verdict_per_user_the_latest(store: Store) -> None:
    [alert] = _alerted(store, "i1", "Anchor cuts cable", TOPIC, [CHANNEL])
    store.record_feedback(alert, "U0ANA", "relevant", NOW)
    store.record_feedback(alert, "U0ANA", "not_relevant", NOW + timedelta(minutes=1))
    store.record_feedback(alert, "U0BO", "relevant", NOW + timedelta(minutes=2))
    assert store.feedback_for_alert(alert) == {"U0ANA": "not_relevant", "U0BO": "relevant"}
    assert list(store.feedback_for_alert(alert)) == ["U0ANA", "U0BO"]  # in the order last given
    assert store.feedback_for_alert("no-such-alert") == {}
    with pytest.raises(UnknownAlert):
        store.record_feedback("no-such-alert", "U0ANA", "relevant", NOW)
    with pytest.raises(ValueError, match="verdict"):
        store.record_feedback(alert, "U0ANA", "maybe", NOW)  # type: ignore[arg-type]


def test_labels_are_majorities_and_ties_are_reported(store: Store) -> None:
    [agreed] = _alerted(store, "i1", "Anchor cuts cable", TOPIC, [CHANNEL])
    tied_a, tied_b = _alerted(store, "i2", "Cable TV prices rise", TOPIC, [CHANNEL, "slack:#desk"])
    [rejected] = _alerted(store, "i3", "Cable car reopens", TOPIC, [CHANNEL])
    [elsewhere] = _alerted(store, "i4", "Port strike", OTHER, [CHANNEL])
    store.record_feedback(agreed, "U0ANA", "relevant", NOW)
    store.record_feedback(agreed, "U0BO", "relevant", NOW)
    # The same item in two channels: ana's two clicks are one verdict (the later), against bo's.
    store.record_feedback(tied_a, "U0ANA", "not_relevant", NOW)
    store.record_feedback(tied_b, "U0ANA", "relevant", NOW + timedelta(minutes=1))
    store.record_feedback(tied_b, "U0BO", "not_relevant", NOW + timedelta(minutes=2))
    store.record_feedback(rejected, "U0CY", "not_relevant", NOW)
    store.record_feedback(elsewhere, "U0CY", "relevant", NOW)

    labels = sorted(store.feedback_labels(TOPIC))
    assert labels == [
        FeedbackLabel("i1", "Anchor cuts cable", "Anchor cuts cable. Reported by wire.", 1),
        FeedbackLabel("i3", "Cable car reopens", "Cable car reopens. Reported by wire.", 0),
    ]
    item_id, title, text, label = labels[0]  # unpacks as (item_id, title, text, label)
    assert (item_id, title, text[:6], label) == ("i1", "Anchor cuts cable", "Anchor", 1)
    [tie] = store.feedback_ties(TOPIC)
    assert (tie.item_id, tie.title, tie.tally) == ("i2", "Cable TV prices rise", Tally(1, 1))
    assert [x.item_id for x in store.feedback_labels(OTHER)] == ["i4"] and store.feedback_ties(OTHER) == []
    assert store.feedback_labels("no-such-topic") == []


def test_mutes_last_their_time_and_never_shorten(store: Store) -> None:
    until = NOW + timedelta(hours=24)
    assert store.mute(TOPIC, CHANNEL, until, "U0ANA") == until
    assert store.active_mutes(NOW) == [Mute(TOPIC, CHANNEL, until, "U0ANA")]
    assert store.active_mutes(until) == []  # ends at `until`
    # A shorter mute on top of a longer one keeps the longer; a longer one extends it.
    assert store.mute(TOPIC, CHANNEL, NOW + timedelta(hours=1), "U0BO") == until
    assert store.active_mutes(NOW)[0].by_user == "U0ANA"
    later = NOW + timedelta(days=7)
    assert store.mute(TOPIC, CHANNEL, later, "U0BO") == later
    assert store.active_mutes(NOW) == [Mute(TOPIC, CHANNEL, later, "U0BO")]
    assert store.unmute(TOPIC, CHANNEL) and not store.unmute(TOPIC, CHANNEL)
    assert store.active_mutes(NOW) == []


def test_pending_alerts_of_a_muted_topic_and_destination_are_set_aside(store: Store) -> None:
    muted_here, other_channel = _alerted(store, "i1", "Anchor cuts cable", TOPIC, [CHANNEL, "slack:#desk"])
    [other_topic] = _alerted(store, "i2", "Port strike", OTHER, [CHANNEL])
    store.mute(TOPIC, CHANNEL, NOW + timedelta(hours=24), "U0ANA")
    assert store.set_aside_muted(NOW) == 1
    status = {a.alert.id: a.status for a in store.alerts_for()}
    assert status == {muted_here: "muted", other_channel: "pending", other_topic: "pending"}
    assert [a.alert.id for a in store.pending_alerts("slack:")] == [other_channel, other_topic]
    # Once the mute has ended, new alerts flow again; what was muted stays muted.
    assert store.set_aside_muted(NOW + timedelta(hours=25)) == 0
    assert store.find_alert(muted_here).status == "muted"  # type: ignore[union-attr]
    assert store.find_alert("no-such-alert") is None


# -- feedback as training examples ------------------------------------------------------------------------


def test_feedback_becomes_training_examples(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text((FIXTURES / "config" / "minimal.toml").read_text())
    config = load_config(path)
    store = Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    try:
        [yes] = _alerted(store, "i1", "Trawler drags anchor over Baltic power cable", TOPIC, [CHANNEL])
        [no] = _alerted(store, "i2", "Cable car line reopens after storm", TOPIC, [CHANNEL])
        [tied] = _alerted(store, "i3", "Cable prices rise", TOPIC, [CHANNEL])
        store.record_feedback(yes, "U0ANA", "relevant", NOW)
        store.record_feedback(no, "U0ANA", "not_relevant", NOW)
        store.record_feedback(tied, "U0ANA", "relevant", NOW)
        store.record_feedback(tied, "U0BO", "not_relevant", NOW)

        extra = feedback_examples(store, [TOPIC, OTHER])
        assert list(extra) == [TOPIC]
        assert sorted((e.id, e.label, e.title) for e in extra[TOPIC]) == [
            ("feedback:i1", 1, "Trawler drags anchor over Baltic power cable"),
            ("feedback:i2", 0, "Cable car line reopens after storm"),
        ]

        plain = load_or_train(config)  # the existing signature still works, without feedback
        assert plain.info()[TOPIC]["n_extra"] == 0
        taught = load_or_train(config, store=store)
        assert taught.info()[TOPIC]["n_extra"] == 2
        # Feedback makes its own model file: the plain models are not mistaken for the taught ones.
        assert len(list((tmp_path / "var" / "models").glob("*.joblib"))) == 2
        assert load_or_train(config, store=store).info()[TOPIC] == taught.info()[TOPIC]  # reused
    finally:
        store.close()


def test_topics_reply_shows_precision_ties_and_subscriptions(store: Store) -> None:
    from bot.queries import topic_quality
    from bot.render.slack_replies import topics_reply

    config = load_config(FIXTURES / "config" / "minimal.toml")
    [good] = _alerted(store, "i-good", "Cable cut off Gotland", "cables", ["console"])
    [bad] = _alerted(store, "i-bad", "Cable TV prices rise", "cables", ["console"])
    [tied] = _alerted(store, "i-tied", "Cable fault, cause unknown", "cables", ["console"])
    store.record_feedback(good, "U0ANA", "relevant", NOW)
    store.record_feedback(bad, "U0ANA", "not_relevant", NOW)
    store.record_feedback(tied, "U0ANA", "relevant", NOW)
    store.record_feedback(tied, "U0BO", "not_relevant", NOW)
    store.subscribe("cables", "slack:C0SUBSCRIB", "U0ANA", NOW)
    quality = topic_quality(store, ["cables"])
    assert (
        quality["cables"].labelled == 2 and quality["cables"].precision == 0.5 and quality["cables"].ties == 1
    )
    reply = str(topics_reply(config.topics, {}, quality))
    assert "precision 50% from feedback on 2 items" in reply and "1 tie (users disagree)" in reply
    assert "slack:C0SUBSCRIB (subscribed)" in reply
