"""Build the sample feeds that `watchfloor demo` serves on 127.0.0.1, from the labelled news_dev.jsonl.

Five outlets in the three feed dialects the bot must read (RSS 2.0, RSS 1.0/RDF, Atom 1.0). The mix is
chosen to exercise the whole pipeline: every watch topic appears; reports of one event by several outlets
sit in different feeds (near-duplicate stories); one report appears twice with a tracking parameter on
its URL (an exact duplicate for canonical-URL dedup); most items are about nothing watched; descriptions
carry HTML and entities; and the seed article arrives with its full body in content:encoded.

Deterministic: a fixed random seed and no clock, so re-running gives byte-identical files.

    python scripts/build_demo_feeds.py [--data /work/shared/data/news_dev.jsonl] [--seed-article PATH]
"""

from __future__ import annotations

import argparse
import html
import json
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from lxml import etree

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "bot" / "data" / "demo_feeds"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "news_dev.jsonl"
DEFAULT_SEED = REPO / "tests" / "fixtures" / "seed" / "000_ba412a54cf4b0082.txt"
SEED = 20241022
TOPICS = (
    "dprk-russia-military",
    "undersea-cable-sabotage",
    "red-sea-shipping-attacks",
    "taiwan-strait-military",
)
ON_TOPIC_PER_TOPIC = 13
OFF_TOPIC = 95

SEED_URL = "https://www.foxnews.com/world/us-concerned-reports-north-korean-soldiers-fighting-russia-ukraine"
SEED_PUBLISHED = datetime(2024, 10, 22, 21, 15, tzinfo=UTC)

NS_ATOM = "http://www.w3.org/2005/Atom"
NS_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_RSS1 = "http://purl.org/rss/1.0/"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_CONTENT = "http://purl.org/rss/1.0/modules/content/"


@dataclass(frozen=True)
class Outlet:
    file: str
    kind: str  # rss2 | atom | rdf
    title: str
    home: str


OUTLETS = (
    Outlet("wire-asia.xml", "rss2", "Wire Asia", "https://wire-asia.example"),
    Outlet("global-desk.atom", "atom", "Global Desk", "https://global-desk.example"),
    Outlet("maritime-daily.xml", "rss2", "Maritime Daily", "https://maritime-daily.example"),
    Outlet("region-review.rdf", "rdf", "Region Review", "https://region-review.example"),
    Outlet("world-briefs.atom", "atom", "World Briefs", "https://world-briefs.example"),
)


@dataclass
class Entry:
    id: str
    url: str
    title: str
    description_html: str
    published: datetime
    event: str
    topics: tuple[str, ...]
    content_html: str = ""


def _on_topics(row: dict) -> tuple[str, ...]:
    return tuple(t for t in TOPICS if row["labels"].get(t) == 2)


def _load(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    # Undated reports take the date of another report of their event, else of the row before (oldest first).
    by_event = {r["event"]: r["published"] for r in rows if r["published"]}
    previous = "2017-01-01"
    for row in rows:
        row["date"] = row["published"] or by_event.get(row["event"]) or previous
        previous = row["date"]
    return rows


def _select(rows: list[dict], rng: random.Random) -> list[dict]:
    """On-topic reports (multi-report events first, so stories span outlets) plus a majority of others."""
    chosen: list[dict] = []
    for topic in TOPICS:
        on = [r for r in rows if _on_topics(r) == (topic,)]
        sizes: defaultdict[str, int] = defaultdict(int)
        for r in on:
            sizes[r["event"]] += 1
        multi = [r for r in on if sizes[r["event"]] > 1]
        single = [r for r in on if sizes[r["event"]] == 1]
        rng.shuffle(single)
        chosen += multi + single[: max(0, ON_TOPIC_PER_TOPIC - len(multi))]
    off = [r for r in rows if all(v == 0 for v in r["labels"].values())]
    sizes = defaultdict(int)
    for r in off:
        sizes[r["event"]] += 1
    multi_off = [r for r in off if sizes[r["event"]] > 1]
    single_off = [r for r in off if sizes[r["event"]] == 1]
    rng.shuffle(single_off)
    chosen += (multi_off + single_off)[:OFF_TOPIC]
    return chosen


def _html_description(row: dict, rng: random.Random) -> str:
    text = html.escape(row["text"], quote=False)
    parts = [f"<p>{text}</p>"]
    if rng.random() < 0.4:
        parts.append(f'<p><a href="{html.escape(row["url"])}">Read more</a> &amp; follow our coverage.</p>')
    return "".join(parts)


def _seed_entry(path: Path) -> Entry:
    title, _, body = path.read_text(encoding="utf-8").partition("\n")
    paragraphs = [line.strip() for line in body.splitlines() if line.strip()]
    content = "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs)
    return Entry(
        id="seed-000",
        url=SEED_URL,
        title=title.strip(),
        description_html=f"<p>{html.escape(paragraphs[0], quote=False)}</p>",
        published=SEED_PUBLISHED,
        event="seed-dprk-soldiers-ukraine-oct2024",
        topics=("dprk-russia-military",),
        content_html=content,
    )


def _distribute(rows: list[dict], rng: random.Random) -> dict[str, list[Entry]]:
    feeds: dict[str, list[Entry]] = {o.file: [] for o in OUTLETS}
    by_event: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_event[row["event"]].append(row)
    events = sorted(by_event, key=lambda e: (-len(by_event[e]), e))
    for event in events:
        group = by_event[event]
        # Reports of one event go to different outlets, starting with the least loaded ones.
        outlets = sorted(feeds, key=lambda f: (len(feeds[f]), rng.random()))
        for row, outlet in zip(group, outlets, strict=False):
            hour, minute = rng.randrange(5, 23), rng.randrange(60)
            published = datetime.fromisoformat(row["date"]).replace(tzinfo=UTC, hour=hour, minute=minute)
            feeds[outlet].append(
                Entry(
                    id=row["id"],
                    url=row["url"],
                    title=row["title"],
                    description_html=_html_description(row, rng),
                    published=published,
                    event=row["event"],
                    topics=_on_topics(row),
                )
            )
    return feeds


def _add_exact_duplicate(feeds: dict[str, list[Entry]]) -> tuple[str, str, str]:
    """The same report in a second feed, its URL carrying a tracking parameter (canonical-URL dedup)."""
    source_feed = "wire-asia.xml"
    original = next(e for e in feeds[source_feed] if "red-sea-shipping-attacks" in e.topics)
    target_feed = "maritime-daily.xml"
    sep = "&" if "?" in original.url else "?"
    duplicate = Entry(
        id=original.id + "-dup",
        url=f"{original.url}{sep}utm_source=rss",
        title=original.title,
        description_html=original.description_html,
        published=original.published + timedelta(minutes=7),
        event=original.event,
        topics=original.topics,
    )
    feeds[target_feed].append(duplicate)
    return original.id, source_feed, target_feed


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    el = etree.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = text
    return el


def _rss2(outlet: Outlet, entries: list[Entry]) -> bytes:
    rss = etree.Element("rss", nsmap={"content": NS_CONTENT, "dc": NS_DC}, version="2.0")
    channel = _sub(rss, "channel")
    _sub(channel, "title", outlet.title)
    _sub(channel, "link", outlet.home + "/")
    _sub(channel, "description", f"{outlet.title}: demo feed bundled with Watchfloor")
    _sub(channel, "language", "en")
    _sub(channel, "lastBuildDate", format_datetime(entries[0].published))
    for e in entries:
        item = _sub(channel, "item")
        _sub(item, "title", e.title)
        _sub(item, "link", e.url)
        _sub(item, "guid", f"{outlet.home}/item/{e.id}", isPermaLink="false")
        _sub(item, "pubDate", format_datetime(e.published))
        _sub(item, "description", e.description_html)
        if e.content_html:
            _sub(item, f"{{{NS_CONTENT}}}encoded").text = etree.CDATA(e.content_html)
    return etree.tostring(rss, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _atom(outlet: Outlet, entries: list[Entry]) -> bytes:
    feed = etree.Element(f"{{{NS_ATOM}}}feed", nsmap={None: NS_ATOM})
    _sub(feed, f"{{{NS_ATOM}}}title", outlet.title)
    _sub(feed, f"{{{NS_ATOM}}}id", f"tag:{outlet.home.removeprefix('https://')},2024:feed")
    _sub(feed, f"{{{NS_ATOM}}}updated", _iso(entries[0].published))
    _sub(feed, f"{{{NS_ATOM}}}link", href=outlet.home + "/", rel="alternate")
    author = _sub(feed, f"{{{NS_ATOM}}}author")
    _sub(author, f"{{{NS_ATOM}}}name", f"{outlet.title} newsroom")
    for e in entries:
        entry = _sub(feed, f"{{{NS_ATOM}}}entry")
        _sub(entry, f"{{{NS_ATOM}}}title", e.title)
        _sub(entry, f"{{{NS_ATOM}}}link", href=e.url, rel="alternate")
        _sub(entry, f"{{{NS_ATOM}}}id", f"tag:{outlet.home.removeprefix('https://')},2024:{e.id}")
        _sub(entry, f"{{{NS_ATOM}}}published", _iso(e.published))
        _sub(entry, f"{{{NS_ATOM}}}updated", _iso(e.published))
        _sub(entry, f"{{{NS_ATOM}}}summary", e.description_html, type="html")
    return etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _rdf(outlet: Outlet, entries: list[Entry]) -> bytes:
    root = etree.Element(f"{{{NS_RDF}}}RDF", nsmap={"rdf": NS_RDF, None: NS_RSS1, "dc": NS_DC})
    channel = _sub(root, f"{{{NS_RSS1}}}channel", **{f"{{{NS_RDF}}}about": outlet.home + "/rss"})
    _sub(channel, f"{{{NS_RSS1}}}title", outlet.title)
    _sub(channel, f"{{{NS_RSS1}}}link", outlet.home + "/")
    _sub(channel, f"{{{NS_RSS1}}}description", f"{outlet.title}: demo feed bundled with Watchfloor")
    _sub(channel, f"{{{NS_DC}}}date", _iso(entries[0].published))
    seq = _sub(_sub(channel, f"{{{NS_RSS1}}}items"), f"{{{NS_RDF}}}Seq")
    for e in entries:
        _sub(seq, f"{{{NS_RDF}}}li", **{f"{{{NS_RDF}}}resource": e.url})
    for e in entries:
        item = _sub(root, f"{{{NS_RSS1}}}item", **{f"{{{NS_RDF}}}about": e.url})
        _sub(item, f"{{{NS_RSS1}}}title", e.title)
        _sub(item, f"{{{NS_RSS1}}}link", e.url)
        _sub(item, f"{{{NS_RSS1}}}description", e.description_html)
        _sub(item, f"{{{NS_DC}}}date", _iso(e.published))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def build(data: Path, seed_article: Path, out_dir: Path = OUT_DIR) -> dict[str, dict[str, int]]:
    rng = random.Random(SEED)
    rows = _select(_load(data), rng)
    feeds = _distribute(rows, rng)
    feeds["wire-asia.xml"].append(_seed_entry(seed_article))
    dup_id, dup_from, dup_to = _add_exact_duplicate(feeds)
    out_dir.mkdir(parents=True, exist_ok=True)
    writers = {"rss2": _rss2, "atom": _atom, "rdf": _rdf}
    stats: dict[str, dict[str, int]] = {}
    for outlet in OUTLETS:
        entries = sorted(feeds[outlet.file], key=lambda e: (e.published, e.id), reverse=True)
        (out_dir / outlet.file).write_bytes(writers[outlet.kind](outlet, entries))
        counts = {"items": len(entries), "off_topic": sum(1 for e in entries if not e.topics)}
        for topic in TOPICS:
            counts[topic] = sum(1 for e in entries if topic in e.topics)
        stats[outlet.file] = counts
    multi: defaultdict[str, set[str]] = defaultdict(set)
    for file, entries in feeds.items():
        for e in entries:
            multi[e.event].add(file)
    cross = sorted(e for e, files in multi.items() if len(files) > 1)
    _write_readme(out_dir, stats, cross, (dup_id, dup_from, dup_to))
    return stats


def _write_readme(
    out_dir: Path, stats: dict[str, dict[str, int]], cross: list[str], dup: tuple[str, str, str]
) -> None:
    total = {k: sum(s[k] for s in stats.values()) for k in next(iter(stats.values()))}
    lines = [
        "# Demo feeds",
        "",
        "Sample feeds served on 127.0.0.1 by `watchfloor demo`. Generated — do not edit by hand; re-run",
        "`python scripts/build_demo_feeds.py` (deterministic: a fixed seed, no clock).",
        "",
        "## Where the data comes from",
        "",
        "- Items: `news_dev.jsonl` (the project's labelled development set). Each row is a real report whose",
        "  page URL and source domain are kept, with headline and lead rewritten in plain words. The outlets",
        "  below are invented names; an item's `<link>` is the original report's URL.",
        "- The seed article (`tests/fixtures/seed/000_ba412a54cf4b0082.txt`, the report the product was",
        "  conceived from) is in `wire-asia.xml` with its full body in `content:encoded`; its URL is",
        "  illustrative.",
        "- Undated rows take the date of another report of the same event (else of the row before); the",
        "  hour of day is drawn from the fixed seed.",
        "",
        "## What is in them",
        "",
        "| file | format | items | off-topic | " + " | ".join(TOPICS) + " |",
        "|---|---|---|---|" + "---|" * len(TOPICS),
    ]
    kinds = {o.file: {"rss2": "RSS 2.0", "atom": "Atom 1.0", "rdf": "RSS 1.0 (RDF)"}[o.kind] for o in OUTLETS}
    for file, s in stats.items():
        lines.append(
            f"| `{file}` | {kinds[file]} | {s['items']} | {s['off_topic']} | "
            + " | ".join(str(s[t]) for t in TOPICS)
            + " |"
        )
    lines.append(
        f"| total | | {total['items']} | {total['off_topic']} | "
        + " | ".join(str(total[t]) for t in TOPICS)
        + " |"
    )
    lines += [
        "",
        "Counts are of items labelled 2 (on topic) for each topic; borderline rows are not included.",
        "",
        f"- Near-duplicate stories: {len(cross)} events have reports in more than one feed "
        "(each report in a different outlet).",
        f"- Exact duplicate: item `{dup[0]}` from `{dup[1]}` appears again in `{dup[2]}` with `utm_source=rss`",
        "  appended to its URL (canonical-URL dedup must drop it).",
        "- Descriptions are HTML (`<p>`, links, `&amp;`); RSS 2.0 items carry `guid` and `pubDate`, Atom",
        "  entries `id`, `published` and `updated`, RDF items `rdf:about` and `dc:date`.",
        "",
    ]
    (out_dir / "README.md").write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed-article", type=Path, default=DEFAULT_SEED)
    args = parser.parse_args()
    stats = build(args.data, args.seed_article)
    for file, counts in stats.items():
        print(file, counts)


if __name__ == "__main__":
    main()
