"""html_to_text / fold_whitespace: what feed strings look like after normalisation."""

import html
import random
import re

import pytest

from bot.text import _TAG, _unescape, fold_whitespace, html_to_text


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


# Every character str.split() splits on, incl. NEL, NBSP, the Unicode spaces and line/paragraph separators.
_WHITESPACE = [chr(c) for c in range(0x3001) if chr(c).isspace()]


@pytest.mark.parametrize("space", _WHITESPACE, ids=lambda c: f"U+{ord(c):04X}")
def test_fold_whitespace_knows_every_space(space: str) -> None:
    for s in (f"a{space}b", f"é{space}b", f"{space}a  b{space}", f"—{space}{space} x", f"a {space} b"):
        assert fold_whitespace(s) == " ".join(s.split()), repr(s)


def test_fold_whitespace_runs_of_spaces() -> None:
    for n in range(1, 40):
        assert fold_whitespace(" " * n + "a" + " " * n + "é" + " " * n) == "a é"


# Random strings from the pieces that matter to the tokenizer: quotes, `>` inside and outside attributes,
# unclosed tags and quotes at the end, comments, entities (named, numeric, without `;`, invalid).
_PIECES = [
    "<p>", "</p>", "<br/>", "<a href='x>y'>", '<a href="u">', "</a>", "<b", "<!--", "-->", "<?x?>", "<!x>",
    '"', "'", ">", "<", "=", " ", "\n", "word", "é", "<div\n class=x>", "</DIV >", "<Br>",
    "&amp;", "&amp;amp;", "&lt;", "&gt;", "&#8212;", "&#x2014;", "&nbsp;", "&eacute", "&ampx", "&#99999999;",
    "&#0;", "&#128;", "&", ";",
]  # fmt: skip
_FUZZ = ["".join(random.Random(i).choices(_PIECES, k=1 + i % 12)) for i in range(3000)]
# The tag pattern as first written, with ordinary backtracking: the possessive one must split alike.
_TAG_BACKTRACKING = re.compile(
    r"""</?([A-Za-z][A-Za-z0-9:-]*)(?:[^>"']|"[^"]*"|'[^']*'|["'][^>]*$)*(?:>|$)|<[!?][^>]*(?:>|$)"""
)


def test_possessive_tag_pattern_splits_like_backtracking_one() -> None:
    for s in _FUZZ:
        assert _TAG.split(s) == _TAG_BACKTRACKING.split(s), repr(s)


def test_unescape_is_html_unescape() -> None:
    for s in _FUZZ:
        assert _unescape(s) == html.unescape(s), repr(s)


def test_block_tags_in_any_case_separate_words() -> None:
    assert html_to_text("one<BR>two<Br/>three<DIV>four</dIv>five<B>six</b>") == "one two three four fivesix"
