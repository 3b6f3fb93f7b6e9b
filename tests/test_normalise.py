"""normalise_entry / item_id."""

from datetime import UTC, datetime, timedelta, timezone

from bot.items import RawEntry
from bot.normalise import item_id, normalise_entry

FETCHED = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)


def test_full_entry() -> None:
    entry = RawEntry(
        title="Q&amp;A: <b>talks</b>",
        link="https://E.com/a?utm_source=rss#top",
        guid="g1",
        summary="<p>short</p>",
        content="<p>The <em>longer</em> article &amp; more</p>",
        published=datetime(2025, 1, 6, 9, 0, tzinfo=timezone(timedelta(hours=2))),
    )
    item = normalise_entry(entry, "wire", FETCHED)
    assert item is not None
    assert item.title == "Q&A: talks"
    assert item.url == "https://e.com/a"
    assert item.text == "The longer article & more"
    assert item.published == datetime(2025, 1, 6, 7, 0, tzinfo=UTC)
    assert item.published.tzinfo is UTC
    assert item.source == "wire"
    assert item.guid == "g1"
    assert item.fetched == FETCHED
    assert item.id == item_id("https://e.com/a", "g1")


def test_summary_used_when_longer_than_content() -> None:
    item = normalise_entry(
        RawEntry(title="t", link="", summary="a longer summary", content="c"), "s", FETCHED
    )
    assert item is not None and item.text == "a longer summary"


def test_no_title_no_link_is_dropped() -> None:
    assert normalise_entry(RawEntry(title="  ", link="", summary="x"), "s", FETCHED) is None
    assert normalise_entry(RawEntry(title="<b></b>", link=""), "s", FETCHED) is None


def test_missing_future_and_ancient_dates_become_fetch_time() -> None:
    def published(p: datetime | None) -> datetime:
        item = normalise_entry(RawEntry(title="t", link="https://e.com/", published=p), "s", FETCHED)
        assert item is not None
        return item.published

    assert published(None) == FETCHED
    assert published(datetime(2099, 1, 1, tzinfo=UTC)) == FETCHED
    assert published(FETCHED + timedelta(hours=20)) == FETCHED + timedelta(hours=20)  # a zone slip
    assert published(datetime(1970, 1, 1, tzinfo=UTC)) == FETCHED
    assert published(datetime(2025, 1, 5, 8, 0)) == datetime(2025, 1, 5, 8, 0, tzinfo=UTC)  # naive → UTC


def test_naive_fetch_time_is_taken_as_utc() -> None:
    item = normalise_entry(RawEntry(title="t", link="https://e.com/"), "s", datetime(2025, 1, 6, 12))
    assert item is not None and item.published == FETCHED


def test_item_id_stable_and_from_url_first() -> None:
    a = item_id("https://e.com/a", "g1")
    assert a == item_id("https://e.com/a", "other-guid")
    assert a != item_id("https://e.com/b", "g1")
    assert item_id(None, "g1") == item_id("", "g1") != item_id(None, "g2")
    assert len(a) == 16 and int(a, 16) >= 0


def test_same_article_two_spellings_same_id() -> None:
    one = normalise_entry(RawEntry(title="t", link="https://e.com/a?utm_source=x"), "s1", FETCHED)
    two = normalise_entry(RawEntry(title="t", link="HTTPS://E.COM:443/a#c"), "s2", FETCHED)
    assert one is not None and two is not None and one.id == two.id


def test_title_only_entries_get_distinct_ids() -> None:
    one = normalise_entry(RawEntry(title="first", link=""), "s", FETCHED)
    two = normalise_entry(RawEntry(title="second", link=""), "s", FETCHED)
    assert one is not None and two is not None and one.id != two.id
