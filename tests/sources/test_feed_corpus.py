"""The feedparser project's test corpus through parse_feed and normalise_entry.

Every file (well-formed, ill-formed, odd encodings, entity soup) must go through without an exception;
for the well-formed files where feedparser itself finds entry titles or links, ours must match its
titles (as plain text) and links, whichever of our two parsers produced them.
"""

from __future__ import annotations

import io
import warnings
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest

from bot.normalise import normalise_entry
from bot.sources.feeds import parse_feed
from bot.text import html_to_text

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "feedparser-tests" / "tests"
BASE = "http://example.org/feed/"
NOW = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)

# feedparser's sanitizer keeps the text of a <script> in this title; we drop script contents on purpose.
TITLE_DIFFERS_BY_DESIGN = {"wellformed/sanitize/entry_title_crazy.xml"}


def _files(under: str = "") -> list[Path]:
    if not CORPUS.is_dir():
        pytest.skip(f"../shared/corpora not present (fresh clone): {CORPUS}")
    return sorted(p for p in (CORPUS / under).rglob("*") if p.is_file())


def _groups() -> list[str]:
    """One test per corpus directory that holds files (wellformed/atom, illformed, encoding, ...)."""
    if not CORPUS.is_dir():
        return ["(missing)"]
    return sorted({str(p.parent.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file()})


@pytest.mark.parametrize("group", _groups())
def test_every_file_parses_and_normalises(group: str) -> None:
    files = [p for p in _files(group) if p.parent == CORPUS / group]
    assert files
    for path in files:
        parsed = parse_feed(path.read_bytes(), BASE)
        assert isinstance(parsed.entries, list)
        for entry in parsed.entries:
            normalise_entry(entry, "corpus", NOW)


def _feedparser(body: bytes) -> feedparser.FeedParserDict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return feedparser.parse(io.BytesIO(body), response_headers={"content-location": BASE})


def _expected_link(entry: dict) -> str:
    link = entry.get("link") or ""
    guid = entry.get("id") or ""
    # We, like feedparser for RSS permalinks, use an entry's URL-shaped id when it has no link.
    return link or (guid if guid.startswith(("http://", "https://")) else "")


def test_wellformed_titles_and_links_match_feedparser() -> None:
    compared = 0
    parsers: Counter[str] = Counter()
    mismatches = []
    for path in _files("wellformed"):
        rel = str(path.relative_to(CORPUS))
        body = path.read_bytes()
        reference = _feedparser(body)
        if not any(e.get("title") or e.get("link") for e in reference.entries):
            continue
        compared += 1
        parsed = parse_feed(body, BASE)
        parsers[parsed.parser] += 1
        expected = [(html_to_text(e.get("title")), _expected_link(e)) for e in reference.entries]
        got = [(html_to_text(e.title), e.link) for e in parsed.entries]
        if rel in TITLE_DIFFERS_BY_DESIGN:
            expected, got = [x[1] for x in expected], [x[1] for x in got]  # type: ignore[misc]
        if expected != got:
            mismatches.append((rel, expected[:2], got[:2]))
    print(f"\ncompared {compared} well-formed files with entries; parser used: {dict(parsers)}")
    assert compared > 200
    assert not mismatches, mismatches[:10]


def test_fallback_rate_is_recorded() -> None:
    """Not a threshold, a measurement: how often the fast parser was not enough, and why."""
    reasons: Counter[str] = Counter()
    for path in _files():
        body = path.read_bytes()
        parsed = parse_feed(body, BASE)
        if parsed.parser == "fastfeedparser":
            reasons["fast path"] += 1
        elif b"xml:base" in body:
            reasons["xml:base"] += 1
        else:
            reasons["fallback (raised, no entries, or entry without title/link)"] += 1
    print(f"\ncorpus parser use: {dict(reasons)}")
    assert sum(reasons.values()) > 2000
