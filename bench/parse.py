"""Parse + normalise cost per item: the CPU half of a poll cycle, without the network.

    python bench/parse.py [--feeds 200] [--repeat 7] [--profile]

Builds --feeds of bench/feedserver.py's 50-item RSS feeds in memory, then times, per item:
  parse_feed            feed bytes → RawEntry (fastfeedparser, plus our conversion)
  normalise_entry       RawEntry → Item (of which, separately: html_to_text on the title and on the
                        description, canonical_url on the link)
  parse_and_normalise   both, as bot/sources/poll.py runs them per fetched feed
Each figure is the best of --repeat runs: on a shared machine the minimum is the least noisy estimate of
what the code costs. The budget for the whole path is ~60 µs per item (2,000 feeds × 50 items in a ~15 s
poll cycle on 2 cores, beside fetch, dedup, scoring and storage). --profile prints a cProfile of one
parse_and_normalise pass over all feeds.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from feedserver import build_feed  # noqa: E402

from bot.normalise import normalise_entry  # noqa: E402
from bot.sources.feeds import parse_feed  # noqa: E402
from bot.sources.fetch import FetchResult  # noqa: E402
from bot.sources.poll import parse_and_normalise  # noqa: E402
from bot.text import html_to_text  # noqa: E402
from bot.urls import canonical_url  # noqa: E402

NOW = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)


def _best_us_per_item(run: Callable[[], object], items: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / items * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=7, help="runs per measurement; the best is shown")
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of parse_and_normalise")
    args = ap.parse_args()

    results = [
        FetchResult(
            url=f"http://127.0.0.1:8000/feed/{k}.xml",
            final_url=f"http://127.0.0.1:8000/feed/{k}.xml",
            status=200,
            body=build_feed(k, NOW),
            etag=None,
            last_modified=None,
            error=None,
            elapsed_s=0.0,
            content_type="application/rss+xml",
        )
        for k in range(args.feeds)
    ]
    bodies = [(r.body or b"", r.final_url) for r in results]
    entries = [e for body, url in bodies for e in parse_feed(body, url).entries]
    n = len(entries)
    titles = [e.title for e in entries]
    texts = [e.content if len(e.content) > len(e.summary) else e.summary for e in entries]
    links = [e.link for e in entries]
    print(f"{args.feeds} feeds, {n} items, best of {args.repeat} runs, µs per item:")

    rows: list[tuple[str, Callable[[], object]]] = [
        ("parse_feed", lambda: [parse_feed(body, url) for body, url in bodies]),
        ("normalise_entry", lambda: [normalise_entry(e, "bench", NOW) for e in entries]),
        ("  html_to_text(title)", lambda: [html_to_text(t) for t in titles]),
        ("  html_to_text(description)", lambda: [html_to_text(t) for t in texts]),
        ("  canonical_url(link)", lambda: [canonical_url(u) for u in links]),
        ("parse_and_normalise", lambda: [parse_and_normalise(r, "bench", NOW) for r in results]),
    ]
    for name, run in rows:
        print(f"  {name:30s} {_best_us_per_item(run, n, args.repeat):7.1f}")

    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(lambda: [parse_and_normalise(r, "bench", NOW) for r in results])
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
