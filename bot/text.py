"""Turn the HTML-ish strings that feeds send into plain text.

Everything downstream (classifiers, summaries, Slack rendering) works on plain text, so feed text passes
through `html_to_text` once, at normalisation. It promises: no tags, no script/style contents, entities
decoded (also the double-encoded `&amp;amp;` many feeds send), whitespace folded to single spaces, and no
exception for any input.

Why regular expressions and not lxml: this is the hot path (2,000 feeds × 50 items per poll cycle). On a
typical 300-character news summary with a few tags, lxml's HTML parser (plus strip_elements/itertext) took
~110 µs, the scanner below ~12 µs, with the same text out on the feedparser corpus. We need no tree,
only "text between tags", and a tokenizer that cannot raise: a `<` that does not start a tag (`a < b`) is
kept as text, an unclosed tag or comment at the end is dropped, quoted `>` inside attributes is skipped.
Plain strings (no `<`, no `&`) skip everything but the whitespace fold.

Measured on bench/feedserver.py's items (bench/parse.py): a character-class scan in `re` costs ~10 ns per
character, while `str` searches (`in`, `find`, `replace`) run at memchr speed. So every step below looks
for a rare character with `str` methods first and runs a regex over the whole text only when it is there.
"""

from __future__ import annotations

import html
import re

# html.unescape's own pattern: the same matches, so the same text out (see _unescape).
_CHARREF = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)")
# The references news feeds actually send, decoded once here: a dict hit instead of html's per-match
# parsing of the number or the name (bench: ~40% of the decode step).
_COMMON_REFS: dict[str, str] = {
    ref: html.unescape(ref)
    for ref in (
        "&amp;",
        "&lt;",
        "&gt;",
        "&quot;",
        "&apos;",
        "&#39;",
        "&#039;",
        "&#x27;",
        "&#038;",
        "&nbsp;",
        "&#160;",
        "&mdash;",
        "&ndash;",
        "&hellip;",
        "&rsquo;",
        "&lsquo;",
        "&rdquo;",
        "&ldquo;",
        "&#8211;",
        "&#8212;",
        "&#8216;",
        "&#8217;",
        "&#8220;",
        "&#8221;",
        "&#8230;",
    )
}

# An entity that survived one round of decoding: the mark of a double-encoded string, e.g. WordPress and
# Google News titles that arrive as `Q&amp;amp;A` inside XML, i.e. `Q&amp;A` after the XML parser.
_LEFTOVER_ENTITY = re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")

# A tag or comment in text that is already decoded: double-escaped HTML, e.g. feeds whose CDATA
# description holds `&lt;p&gt;` (feedparser corpus: encoding/bozo_double-encoded-html.xml).
_LEFTOVER_TAG = re.compile(r"<(?:[A-Za-z][A-Za-z0-9]*[\s/>]|/[A-Za-z]|!--)")

# Where _NON_TEXT can match something other than a stray `]]>` (see _strip_tags). Its literal `<` prefix
# lets `re` skip to each `<` at memchr speed; seven `"<s" in s` scans cost ~5x more.
_NON_TEXT_START = re.compile(r"<[!sSnNtT]")

# Content that is never text: script/style bodies (feeds that paste ad or embed code into descriptions,
# e.g. Blogger and Tumblr embeds), comments, and an unterminated one of those running to the end.
_NON_TEXT = re.compile(
    r"<(script|style|noscript|template)\b[^>]*>.*?(?:</\1\s*>|$)|<!--.*?(?:-->|$)|<!\[CDATA\[|\]\]>",
    re.IGNORECASE | re.DOTALL,
)

# One tag (attribute values may hold `>`), or an unclosed tag at the very end (truncated summaries,
# e.g. feeds that cut descriptions at N characters mid-tag: `... <a href="http://exa`).
# Possessive quantifiers (`*+`, `++`): a tag can be read only one way (an element never starts with `>`,
# a quote either closes or runs to the end), so backtracking could never find another match; without it
# runs of attribute text are consumed in one step instead of one alternation per character.
_TAG = re.compile(
    r"""<(?:/?([A-Za-z][A-Za-z0-9:-]*+)(?:[^>"']++|"[^"]*+"|'[^']*+'|["'][^>]*+$)*+(?:>|$)|[!?][^>]*+(?:>|$))"""
)

# Elements that break words apart when rendered: without a space, `<p>one</p><p>two</p>` reads "onetwo".
_BLOCK = frozenset(
    {
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "tr",
        "td",
        "th",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "section",
        "article",
        "header",
        "footer",
        "table",
        "dd",
        "dt",
        "dl",
        "figcaption",
        "figure",
        "pre",
        "hr",
        "img",
        "iframe",
        "video",
        "audio",
        "caption",
        "aside",
        "nav",
        "main",
        "address",
    }
)


def _has_odd_space(s: str) -> bool:
    """Whether `s` holds whitespace other than U+0020, i.e. anything `str.split()` splits on: the ASCII
    controls, and for non-ASCII text NEL, NBSP and the Unicode spaces and separators."""
    return (
        "\n" in s
        or "\t" in s
        or "\r" in s
        or "\x0b" in s
        or "\x0c" in s
        or "\x1c" in s
        or "\x1d" in s
        or "\x1e" in s
        or "\x1f" in s
        or (
            not s.isascii()
            and (
                "\xa0" in s
                or "\x85" in s
                or "\u2009" in s
                or "\u200a" in s
                or "\u202f" in s
                or "\u2002" in s
                or "\u2003" in s
                or "\u2000" in s
                or "\u2001" in s
                or "\u2004" in s
                or "\u2005" in s
                or "\u2006" in s
                or "\u2007" in s
                or "\u2008" in s
                or "\u2028" in s
                or "\u2029" in s
                or "\u205f" in s
                or "\u3000" in s
                or "\u1680" in s
            )
        )
    )


class _TagSeparator(dict[str | None, str]):
    """What a tag leaves in the text, by the tag name _TAG captured: " " for block elements and for
    `<!...>`/`<?...>` (name None), "" for the rest. A dict so that _strip_tags can map it over the names
    at C speed; a name seen for the first time is decided by __missing__ and remembered, up to a bound (tag
    names are attacker-chosen text)."""

    def __missing__(self, name: str | None) -> str:
        sep = " " if name is None or name.lower() in _BLOCK else ""
        if len(self) < 4096:
            self[name] = sep
        return sep


_TAG_SEPARATOR = _TagSeparator()


def fold_whitespace(s: str) -> str:
    """Collapse every run of whitespace (incl. newlines, tabs, NBSP) to one space and trim the ends."""
    # The same as " ".join(s.split()), which is ~5x slower on a 700-character summary: it makes one
    # string per word. When the only whitespace is U+0020, halving runs of spaces is enough.
    if _has_odd_space(s):
        return " ".join(s.split())
    while "  " in s:
        s = s.replace("  ", " ")
    return s.strip(" ")


def _strip_tags(s: str) -> str:
    if _NON_TEXT_START.search(s):
        s = _NON_TEXT.sub(" ", s)
    # split() rather than sub() with a callback: a Python call per tag cost ~4x the whole scan.
    parts = _TAG.split(s)
    if len(parts) == 1:
        return s
    parts[1::2] = map(_TAG_SEPARATOR.__getitem__, parts[1::2])
    return "".join(parts)


def _replace_ref(m: re.Match[str]) -> str:
    ref = m.group()
    # html.unescape of the match alone is what it would have put there: the pattern matched it greedily
    # in context, so it matches the whole of it again.
    return _COMMON_REFS.get(ref) or html.unescape(ref)


def _unescape(s: str) -> str:
    """html.unescape, faster on the common references."""
    return _CHARREF.sub(_replace_ref, s) if "&" in s else s


def _decode_entities(s: str) -> str:
    s = _unescape(s)
    # One more round only when something still looks like an entity: decoding blindly twice would be
    # wrong for text that quotes an entity on purpose, but news text essentially never does.
    if "&" in s and _LEFTOVER_ENTITY.search(s):
        s = _unescape(s)
    return s


def html_to_text(s: str | None) -> str:
    """Plain text of a feed string that may hold HTML, entities, or both; '' for None. Never raises."""
    if not s:
        return ""
    if "<" in s:
        s = _strip_tags(s)
    if "&" in s:
        s = _decode_entities(s)
        if "<" in s and _LEFTOVER_TAG.search(s):
            # Double-escaped HTML: decoding only revealed the tags; strip them, decode what they held.
            s = _strip_tags(s)
            s = _unescape(s)
    return fold_whitespace(s)
