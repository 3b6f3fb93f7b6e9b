"""canonical_url: one spelling per article."""

import pytest

from bot.urls import _PLAIN_URL, _canonical_general, _canonical_plain, canonical_url


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


# The plain-URL fast path must give exactly what the urllib path gives. Parts are combined exhaustively
# (scheme case, hosts incl. wrapper hosts and a trailing dot, paths, queries with tracking and encoded
# names, fragments); every combination the fast path accepts is compared with _canonical_general.
_SCHEMES = ["http://", "HTTPS://", "hTTps://"]
_HOSTS = [
    "e.com",
    "Example.COM",
    "www.google.com",
    "l.facebook.com",
    "news.google.com",
    "a_b.example",
    "ex.com.",
    "...",
]
_PATHS = ["", "/", "/A/b", "/url", "/l.php", "/news/url", "/%C3%A9", "/a:b@c", "/!$&'()*+,;=~._-", "//x/"]
_QUERIES = [
    "",
    "?",
    "?b=2&a=1",
    "?utm_source=rss&id=7",
    "?UTM_Campaign=x&fbclid=1",
    "?utm%5Fsource=1&x",
    "?a+b=1&=&&",
    "?url=https://t.com/z?id=1&ct=1",
    "?u=https%3A%2F%2Fy.com%2Fb%3Ffbclid%3D1",
    "?q=notaurl",
]
_FRAGMENTS = ["", "#", "#top", "#a?b#c"]


@pytest.mark.parametrize("scheme", _SCHEMES)
@pytest.mark.parametrize("host", _HOSTS)
def test_plain_url_path_matches_general_path(scheme: str, host: str) -> None:
    compared = 0
    for path in _PATHS:
        for query in _QUERIES:
            for fragment in _FRAGMENTS:
                url = scheme + host + path + query + fragment
                m = _PLAIN_URL.match(url)
                if m is None:
                    continue
                compared += 1
                assert _canonical_plain(url, m) == _canonical_general(url), url
    assert compared == len(_PATHS) * len(_QUERIES) * len(_FRAGMENTS)


@pytest.mark.parametrize(
    "url",
    [
        "https://e.com:8443/a",  # port
        "https://user@e.com/a",  # userinfo
        "https://[::1]/a",  # IPv6
        "https://e.com/a b",  # needs quoting
        "https://e.com/café",
        "https://bücher.example/",
        "https://e.com/a?x=<y>",
        "https://e.com/a\tb",
        "ftp://e.com/a",
    ],
)
def test_urls_the_fast_path_leaves_to_urllib(url: str) -> None:
    assert _PLAIN_URL.match(url) is None
