"""fetch_all + parse_and_normalise against a local feed server, and the CPU budget of the parse path."""

from __future__ import annotations

import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from bot.sources.fetch import Fetcher, FetchLimits, FetchResult
from bot.sources.poll import FetchRequest, fetch_all, parse_and_normalise

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 1, 8, 12, 0, tzinfo=UTC)
RSS = (ROOT / "tests" / "fixtures" / "feeds" / "rss20.xml").read_bytes()


async def test_fetch_all_one_failure_does_not_stop_the_others() -> None:
    async def feed(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"1"':
            return web.Response(status=304)
        return web.Response(body=RSS, content_type="application/rss+xml", headers={"ETag": '"1"'})

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html><body>Service unavailable</body></html>", content_type="text/html")

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/feed", feed)
    app.router.add_get("/html", html)
    app.router.add_get("/broken", broken)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    try:
        requests = [
            FetchRequest(f"http://127.0.0.1:{port}/feed"),
            FetchRequest(f"http://127.0.0.1:{dead}/feed"),
            FetchRequest(f"http://127.0.0.1:{port}/broken"),
            FetchRequest(f"http://127.0.0.1:{port}/html"),
            FetchRequest("garbage"),
            FetchRequest(f"http://127.0.0.1:{port}/feed", etag='"1"'),
        ]
        async with Fetcher(FetchLimits(total_timeout=5)) as fetcher:
            results = await fetch_all(fetcher, requests)
    finally:
        await runner.cleanup()
    assert [r.url for r in results] == [r.url for r in requests]
    assert [r.status for r in results[:3]] == [200, 0, 503]
    items, error = parse_and_normalise(results[0], "wire", NOW)
    assert error is None and len(items) == 3
    assert items[1].url == f"http://127.0.0.1:{port}/2025/01/relative-story"  # against the feed's URL
    for failed in results[1:3]:
        assert parse_and_normalise(failed, "wire", NOW) == ([], None)
    html_items, html_error = parse_and_normalise(results[3], "wire", NOW)
    assert html_items == [] and html_error is not None
    assert results[4].error is not None
    assert results[5].not_modified and parse_and_normalise(results[5], "wire", NOW) == ([], None)


def test_relative_links_resolve_against_the_final_url() -> None:
    result = FetchResult(
        "http://a.example/f", "https://b.example/feeds/x.xml", 200, RSS, None, None, None, 0.0
    )
    items, _ = parse_and_normalise(result, "wire", NOW)
    assert items[1].url == "https://b.example/2025/01/relative-story"


def test_bench_feeds_parse_and_normalise_whole() -> None:
    """The benchmark's synthetic feeds parse completely (speed itself is measured in bench/poll.py)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from feedserver import build_feed  # type: ignore[import-not-found]

    bodies = [build_feed(n, NOW) for n in range(100)]
    results = [
        FetchResult(f"http://x/{n}", f"http://x/{n}", 200, b, None, None, None, 0.0)
        for n, b in enumerate(bodies)
    ]
    total = sum(len(parse_and_normalise(r, "bench", NOW)[0]) for r in results)
    assert total == 100 * 50
