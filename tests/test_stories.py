"""Near-duplicate stories: hand-made cases from fixture files, and pairwise P/R on the labelled dev set."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.items import Item
from bot.stories import DEFAULT_THRESHOLD, StoryIndex, pairwise_scores

FIXTURES = Path(__file__).parent / "fixtures" / "stories"
SHARED = Path(__file__).resolve().parents[2] / "shared"
NEWS_DEV = SHARED / "data" / "news_dev.jsonl"

# Measured with the defaults (threshold 0.25, bot.stories.DEFAULT_WEIGHTING) on news_dev.jsonl; the floors
# sit a little below. No window: similarity alone. 3-day window: the config default. 7-day window: what CV
# preferred (recall is capped by the window, since many "same event" reports in the set are days or weeks
# apart). Before the name/number emphasis: no window P 0.433 R 0.840, 3 days P 0.731 R 0.380.
FLOORS = {
    "no_window": {"precision": 0.31, "recall": 0.80},  # measured P 0.335, R 0.840, F1 0.479
    "window_3d": {"precision": 0.66, "recall": 0.40},  # measured P 0.700, R 0.420, F1 0.525
    "window_7d": {"precision": 0.68, "recall": 0.44},  # measured P 0.719, R 0.460, F1 0.561
}


def _item(row: dict, published: datetime | None = None) -> Item:
    return Item(
        id=row["id"],
        url=row.get("url", f"https://example.test/{row['id']}"),
        title=row["title"],
        text=row["text"],
        published=published or datetime.fromisoformat(row["published"].replace("Z", "+00:00")),
        source=row.get("source", "test"),
    )


CASES = json.loads((FIXTURES / "cases.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_made_case(name: str) -> None:
    case = CASES[name]
    index = StoryIndex()
    got = [index.assign([_item(row) for row in batch]) for batch in case["batches"]]
    assert got == case["expected"], case["note"]


def test_story_id_is_first_item_id_and_repeats_keep_their_story() -> None:
    case = CASES["same_event_different_wording_joins_within_batch"]
    items = [_item(row) for row in case["batches"][0]]
    index = StoryIndex()
    assert index.assign(items) == ["a1", "a1", "a1"]
    # The same item again (a re-poll), alone or repeated within a batch, keeps its story.
    assert index.assign([items[1], items[1]]) == ["a1", "a1"]
    assert len(index) == 3


def test_add_known_warms_the_index_and_prune_forgets() -> None:
    rows = CASES["later_batch_joins_existing_story"]["batches"]
    first, later = rows[0][0], rows[1][0]
    index = StoryIndex()
    published = datetime.fromisoformat(first["published"].replace("Z", "+00:00"))
    index.add_known("stored-1", "story-from-store", first["title"], first["text"], published)
    assert index.assign([_item(later)]) == ["story-from-store"]

    index = StoryIndex()
    index.add_known("stored-1", "story-from-store", first["title"], first["text"], published)
    index.prune(now=published + timedelta(days=4))
    assert len(index) == 0
    assert index.assign([_item(later)]) == [later["id"]]


def test_prune_keeps_items_inside_the_window() -> None:
    batch = CASES["same_event_different_wording_joins_within_batch"]["batches"][0]
    index = StoryIndex()
    index.assign([_item(row) for row in batch])
    index.prune(now=datetime(2024, 8, 24, 9, 0, tzinfo=UTC))  # a1 (21 Aug 08:00) is older than 3 days
    assert len(index) == 2
    follow_up = {
        "id": "d1",
        "published": "2024-08-24T08:00:00Z",
        "title": "Sounion tanker still adrift off Hodeidah after Houthi attack, Aspides says",
        "text": "The Greek-flagged Sounion, carrying 150,000 tonnes of crude, remains adrift off Hodeidah "
        "after the Houthi attack, the EU Aspides mission said; its 25 crew were evacuated to Djibouti.",
    }
    assert index.assign([_item(follow_up)]) == ["a1"]  # joins through b1/c1, whose story is a1


def test_threshold_must_be_a_similarity() -> None:
    with pytest.raises(ValueError, match="threshold"):
        StoryIndex(threshold=1.5)


def _dev_rows() -> list[dict]:
    if not NEWS_DEV.exists():
        pytest.skip(f"{NEWS_DEV} is absent: the shared dev set is needed for the precision/recall check")
    rows = [json.loads(line) for line in NEWS_DEV.read_text(encoding="utf-8").splitlines() if line.strip()]
    previous = rows[0]["published"] or "2017-01-01"
    for row in rows:  # undated reports: the date of the row before (the file is oldest first)
        row["date"] = row["published"] or previous
        previous = row["date"]
    return rows


@pytest.mark.parametrize(
    ("setting", "window"),
    [
        ("no_window", timedelta(days=36500)),
        ("window_3d", timedelta(days=3)),
        ("window_7d", timedelta(days=7)),
    ],
)
def test_pairwise_precision_recall_on_news_dev(setting: str, window: timedelta) -> None:
    rows = _dev_rows()
    items = [_item(row, datetime.fromisoformat(row["date"]).replace(tzinfo=UTC)) for row in rows]
    stories = StoryIndex(window=window, threshold=DEFAULT_THRESHOLD).assign(items)
    precision, recall, _ = pairwise_scores(stories, [row["event"] for row in rows])
    floor = FLOORS[setting]
    assert precision >= floor["precision"], f"{setting}: pairwise precision {precision:.3f}"
    assert recall >= floor["recall"], f"{setting}: pairwise recall {recall:.3f}"


def test_pairwise_scores() -> None:
    assert pairwise_scores(["a", "a", "b"], ["x", "x", "y"]) == (1.0, 1.0, 1.0)
    precision, recall, _ = pairwise_scores(["a", "a", "a"], ["x", "x", "y"])
    assert (precision, recall) == (1 / 3, 1.0)


@pytest.mark.parametrize("part", [1, 10, 50])
def test_stories_decided_poll_by_poll_are_as_good_as_all_at_once(part: int) -> None:
    """The scheduler brings reports a source at a time, and a big cycle is ingested in parts: each part
    is weighed by the idf of what the index holds so far, not of the whole set. On real reports that
    must not cost grouping quality. Measured (3-day window, P / R / F1): all at once 0.700 / 0.420 /
    0.525; parts of 1: 0.625 / 0.450 / 0.523; of 10: 0.678 / 0.400 / 0.503; of 50: 0.729 / 0.430 /
    0.541. A big cycle's parts are far bigger (500 sources)."""
    rows = _dev_rows()
    items = [_item(row, datetime.fromisoformat(row["date"]).replace(tzinfo=UTC)) for row in rows]
    truth = [row["event"] for row in rows]
    whole = pairwise_scores(StoryIndex(window=timedelta(days=3)).assign(items), truth)
    index = StoryIndex(window=timedelta(days=3))
    stories = [s for lo in range(0, len(items), part) for s in index.assign(items[lo : lo + part])]
    precision, recall, f1 = pairwise_scores(stories, truth)
    assert f1 >= whole[2] - 0.03, (f1, whole)
    assert precision >= whole[0] - 0.08 and recall >= whole[1] - 0.08, (precision, recall, whole)
