"""html_to_text / fold_whitespace: what feed strings look like after normalisation."""

import pytest

from bot.text import fold_whitespace, html_to_text


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("", ""),
        ("Plain title", "Plain title"),
        ("Tom &amp; Jerry", "Tom & Jerry"),
        ("Q&amp;amp;A session", "Q&A session"),  # double-encoded, as WordPress feeds send titles
        ("<p>Tom &amp;amp; Jerry</p>", "Tom & Jerry"),
        ("caf&eacute; &#8212; &#x2014;", "café — —"),
        ("<p>one</p><p>two</p>", "one two"),
        ("line<br>break", "line break"),
        ("wor<b>ld</b>, yes", "world, yes"),
        ("<script>alert(1)</script>Hi <b>there</b>", "Hi there"),
        ("<style>p {color: red}</style>styled", "styled"),
        ("<SCRIPT type='x'>a()</SCRIPT >after", "after"),
        ("before<script>never closed", "before"),
        ("<!-- a comment -->text<!-- unclosed", "text"),
        ('<a title="a>b" href="/x">link</a>', "link"),
        ('truncated summary <a href="http://exa', "truncated summary"),
        ("a < b and c > d", "a < b and c > d"),
        ("5 &lt; 6", "5 < 6"),
        ("&lt;p&gt;double &lt;b&gt;escaped&lt;/b&gt;&lt;/p&gt;", "double escaped"),
        ("&lt;script&gt;evil()&lt;/script&gt;ok", "ok"),
        ("  lots \n\t of\u00a0 space  ", "lots of space"),
        ("<![CDATA[inside]]>", "inside"),
        ("<?xml version='1.0'?><div>x</div>", "x"),
    ],
)
def test_html_to_text(raw: str, text: str) -> None:
    assert html_to_text(raw) == text


def test_none_is_empty() -> None:
    assert html_to_text(None) == ""


@pytest.mark.parametrize("junk", ["<", ">", "&", "<<<>>>", "&#99999999;", "<a", "\x00<b>\x00", "<" * 10000])
def test_never_raises(junk: str) -> None:
    assert isinstance(html_to_text(junk), str)


def test_fold_whitespace() -> None:
    assert fold_whitespace("  a \r\n b\u2003c ") == "a b c"
