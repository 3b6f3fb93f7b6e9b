"""Scheduled digests and mutes: a topic muted at the digest's destination when it fires is left out and
named in one line, its stories never come back when the mute ends, and the other topics' periods stay
exactly-once. The job runs on a real store (SQLite file and PostgreSQL) with a frozen clock; the line is
checked in the Slack, Teams and console renderings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fakes.slack_api import check_blocks
from test_digest import CABLES, DPRK, config, report, save

from bot.config import Config, DigestConfig
from bot.digest import MUTED, digest_job, digest_period, muted_topics
from bot.notices import Digest, DigestTopic, StoryLine
from bot.outbox_messages import last_message, message_outbox_depth, messages_with_status, pending_messages
from bot.render.console_digest import render_digest
from bot.render.slack_digest import digest_message
from bot.render.teams import digest_card
from bot.store import Mute, Store

HERE = "slack:#dprk-watch"
F1 = datetime(2026, 10, 20, 8, 0, tzinfo=UTC)  # daily at 08:00 UTC
F2, F3, F4 = F1 + timedelta(days=1), F1 + timedelta(days=2), F1 + timedelta(days=3)
DAILY_BOTH = f"""
[[digests]]
destination = "{HERE}"
cron = "0 8 * * *"
topics = ["{DPRK}", "{CABLES}"]
"""


def setup() -> tuple[Config, DigestConfig]:
    cfg = config(DAILY_BOTH)
    return cfg, cfg.digests[0]


def queued(store: Store) -> list[Digest]:
    return [Digest.from_payload(m.payload) for m in pending_messages(store, "slack:")]


# -- which topics are muted here (pure) -------------------------------------------------------------------------


def test_muted_topics_are_those_muted_at_this_destination_at_that_time() -> None:
    mutes = [
        Mute(DPRK, "slack:#DPRK-Watch", F2 + timedelta(hours=1), "U0ANA"),  # case does not matter
        Mute(CABLES, "slack:#infra-watch", F3, "U0ANA"),  # another channel
        Mute("red-sea", HERE, F2, "U0ANA"),  # ends exactly at the fire: no longer in force
    ]
    assert muted_topics(mutes, HERE, F2) == {DPRK}
    assert muted_topics(mutes, HERE, F2 - timedelta(seconds=1)) == {DPRK, "red-sea"}
    assert muted_topics(mutes, HERE, F2 + timedelta(hours=1)) == set()
    assert muted_topics(mutes, "slack:#infra-watch", F2) == {CABLES}


def test_a_mute_made_by_channel_id_holds_for_a_digest_named_by_channel() -> None:
    """`/news mute` records `slack:<id>`; config.toml names the channel: the name seen in slash commands
    joins them."""
    mutes = [Mute(DPRK, "slack:C0DPRKW", F3, "U0ANA"), Mute(CABLES, "slack:C0ELSE", F3, "U0ANA")]
    assert muted_topics(mutes, HERE, F2) == set()  # the channel's name was never seen
    names = {"C0DPRKW": "dprk-watch", "C0ELSE": "infra-watch"}
    assert muted_topics(mutes, HERE, F2, names) == {DPRK}
    assert muted_topics(mutes, "slack:C0DPRKW", F2, names) == {DPRK}


# -- the scheduled job -------------------------------------------------------------------------------------------


def test_a_muted_topic_is_left_out_named_and_never_comes_back(store: Store) -> None:
    cfg, digest_cfg = setup()
    save(
        store,
        [
            report("d-old", "D-OLD", "wire", F2 - timedelta(hours=3), {DPRK: 0.9}),
            report("c-old", "C-OLD", "wire", F2 - timedelta(hours=2), {CABLES: 0.8}),
        ],
    )
    store.mute(DPRK, HERE, F2 + timedelta(hours=12), "U0ANA")
    assert digest_job(store, cfg, digest_cfg, F2) is True
    [first] = queued(store)
    assert {t.topic: [s.story_id for s in t.stories] for t in first.topics} == {CABLES: ["C-OLD"]}
    assert first.muted == ("DPRK–Russia military cooperation",)

    # The mute ends; a new DPRK story arrives, and a later report of the old one (it was first flagged
    # while muted: it belongs to the muted period and stays out).
    save(
        store,
        [
            report("d-new", "D-NEW", "desk", F3 - timedelta(hours=2), {DPRK: 0.7}),
            report("d-old-2", "D-OLD", "gazette", F3 - timedelta(hours=1), {DPRK: 0.95}),
            report("c-new", "C-NEW", "desk", F3 - timedelta(hours=1), {CABLES: 0.9}),
        ],
    )
    assert digest_job(store, cfg, digest_cfg, F3) is True
    second = queued(store)[1]
    assert (second.since, second.until) == (F2, F3) and second.muted == ()
    assert {t.topic: [s.story_id for s in t.stories] for t in second.topics} == {
        DPRK: ["D-NEW"],
        CABLES: ["C-NEW"],
    }


def test_every_topic_muted_sends_nothing_yet_closes_the_period(store: Store) -> None:
    cfg, digest_cfg = setup()
    save(store, [report("d-old", "D-OLD", "wire", F2 - timedelta(hours=3), {DPRK: 0.9})])
    store.mute(DPRK, HERE, F2 + timedelta(hours=12), "U0ANA")
    # Run late, as after a restart: the fire time still keys it and bounds its period.
    late = F2 + timedelta(minutes=20)
    assert digest_job(store, cfg, digest_cfg, late) is False
    assert queued(store) == [] and message_outbox_depth(store) == {}
    assert messages_with_status(store, "dead") == []
    recorded = last_message(store, "digest", HERE)
    assert recorded is not None and recorded.status == MUTED and recorded.key == F2.isoformat()
    assert Digest.from_payload(recorded.payload).muted == ("DPRK–Russia military cooperation",)
    # A second worker, or a re-run at the same fire once the mute is lifted: nothing more.
    store.unmute(DPRK, HERE)
    assert digest_job(store, cfg, digest_cfg, late + timedelta(minutes=1)) is False
    assert queued(store) == []
    assert digest_period(store, HERE, F3) == (F2, F3)

    # Stories fetched after the fire (one while the late job was still to run): the next digest has
    # them, the muted period's story stays out, and the cables topic loses nothing.
    save(
        store,
        [
            report("c-early", "C-EARLY", "desk", F2 + timedelta(minutes=5), {CABLES: 0.8}),
            report("d-new", "D-NEW", "desk", F3 - timedelta(hours=2), {DPRK: 0.7}),
        ],
    )
    assert digest_job(store, cfg, digest_cfg, F3) is True
    [digest] = queued(store)
    assert (digest.since, digest.until) == (F2, F3)
    assert {t.topic: [s.story_id for s in t.stories] for t in digest.topics} == {
        DPRK: ["D-NEW"],
        CABLES: ["C-EARLY"],
    }


def test_a_muted_topic_without_news_changes_nothing(store: Store) -> None:
    cfg, digest_cfg = setup()
    store.mute(DPRK, HERE, F3, "U0ANA")
    assert digest_job(store, cfg, digest_cfg, F2) is False
    assert last_message(store, "digest", HERE) is None  # nothing held back: the period stays open
    save(store, [report("c", "C", "wire", F2 - timedelta(hours=1), {CABLES: 0.8})])
    assert digest_job(store, cfg, digest_cfg, F2 + timedelta(hours=1)) is True
    [digest] = queued(store)
    assert [t.topic for t in digest.topics] == [CABLES] and digest.muted == ()


def test_mutes_elsewhere_or_ended_leave_the_digest_whole(store: Store) -> None:
    cfg, digest_cfg = setup()
    save(
        store,
        [
            report("d", "D", "wire", F2 - timedelta(hours=3), {DPRK: 0.9}),
            report("c", "C", "wire", F2 - timedelta(hours=2), {CABLES: 0.8}),
        ],
    )
    store.mute(DPRK, "slack:#other-channel", F3, "U0ANA")
    store.mute(CABLES, HERE, F2, "U0ANA")  # ends as the digest fires
    assert digest_job(store, cfg, digest_cfg, F2) is True
    [digest] = queued(store)
    assert [t.topic for t in digest.topics] == [DPRK, CABLES] and digest.muted == ()


def test_routed_topics_are_muted_too(store: Store) -> None:
    # No `topics` list: the digest takes the topics routed here, and a mute here takes one back out.
    cfg = config(f'\n[[digests]]\ndestination = "{HERE}"\ncron = "0 8 * * *"\n')
    [digest_cfg] = cfg.digests
    save(store, [report("d", "D", "wire", F2 - timedelta(hours=3), {DPRK: 0.9})])
    store.mute(DPRK, HERE, F4, "U0ANA")
    assert digest_job(store, cfg, digest_cfg, F2) is False
    assert queued(store) == []
    recorded = last_message(store, "digest", HERE)
    assert recorded is not None and recorded.status == MUTED


# -- the line in each rendering ----------------------------------------------------------------------------------


def _digest(muted: tuple[str, ...]) -> Digest:
    line = StoryLine("S", "i1", CABLES, "Cable cut", "https://news.example/s", "wire", F1, "Summary.", 0.9, 1)
    return Digest(HERE, F1, F2, (DigestTopic(CABLES, "Undersea cable sabotage", (line,)),), muted)


def test_renderings_name_the_muted_topics_in_one_line() -> None:
    hostile = "DPRK <!channel> *bold*"
    slack = digest_message(_digest((hostile,)))
    check_blocks(slack["blocks"])
    [line] = [
        e["text"]
        for b in slack["blocks"]
        if b["type"] == "context"
        for e in b["elements"]
        if "Muted" in e["text"]
    ]
    assert line.startswith(":mute: Muted here, left out: *DPRK &lt;!channel&gt;")
    assert "<!channel>" not in line
    assert not any("Muted" in str(b) for b in digest_message(_digest(()))["blocks"])

    card = str(digest_card(_digest((hostile,))))
    assert "Muted here, left out: DPRK" in card and "<!channel>" not in card
    assert "Muted here" not in str(digest_card(_digest(())))

    text = render_digest(_digest(("DPRK–Russia military cooperation", "Red Sea")))
    assert text.splitlines()[1] == "Muted here, left out: DPRK–Russia military cooperation, Red Sea"
    assert "Muted" not in render_digest(_digest(()))
