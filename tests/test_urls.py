"""canonical_url: one spelling per article."""

import pytest

from bot.urls import canonical_url


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTP://Example.COM:80/Path/Case?b=2&a=1#comments", "http://example.com/Path/Case?a=1&b=2"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://example.com", "https://example.com/"),
        (
            "https://example.com/story?utm_source=rss&utm_medium=feed&UTM_Campaign=x&id=7&fbclid=abc",
            "https://example.com/story?id=7",
        ),
        ("https://e.com/a?gclid=1&mc_cid=2&mc_eid=3&igshid=4&ncid=5&cmpid=6&ocid=7", "https://e.com/a"),
        ("https://e.com/a?ref=home&ref_src=twsrc&page=2", "https://e.com/a?page=2"),
        ("https://e.com/a?", "https://e.com/a"),
        ("https://e.com/a b/café", "https://e.com/a%20b/caf%C3%A9"),
        ("https://e.com/caf%C3%A9", "https://e.com/caf%C3%A9"),
        ("  https://e.com/padded  ", "https://e.com/padded"),
    ],
)
def test_canonical(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


def test_google_alerts_wrapper_is_unwrapped() -> None:
    alert = (
        "https://www.google.com/url?rct=j&sa=t&url=https://www.reuters.com/world/asia-pacific/"
        "story-2024-05-01/%3Futm_source%3Dgoogle&ct=ga&cd=CAIyGmE4&usg=AOvVaw0"
    )
    assert canonical_url(alert) == "https://www.reuters.com/world/asia-pacific/story-2024-05-01/"


def test_facebook_link_shim_is_unwrapped() -> None:
    shim = "https://l.facebook.com/l.php?u=https%3A%2F%2Fwww.bbc.co.uk%2Fnews%2F123%3Ffbclid%3DIw&h=AT0x"
    assert canonical_url(shim) == "https://www.bbc.co.uk/news/123"


def test_news_google_url_wrapper() -> None:
    wrapped = "https://news.google.com/url?url=https://apnews.com/article/abc#x&ct=1"
    assert canonical_url(wrapped) == "https://apnews.com/article/abc"


def test_google_url_without_target_is_kept() -> None:
    assert canonical_url("https://www.google.com/url?q=notaurl") == "https://www.google.com/url?q=notaurl"


@pytest.mark.parametrize(
    "junk", ["", "not a url", "http://[::1", "mailto:a@b.c", "//e.com/x", "http://e.com:99x/"]
)
def test_garbage_never_raises(junk: str) -> None:
    assert isinstance(canonical_url(junk), str)


def test_none_is_empty() -> None:
    assert canonical_url(None) == ""
