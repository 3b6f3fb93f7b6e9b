"""A local feed farm for benchmarks: N synthetic RSS 2.0 feeds of 50 news-like items each.

Run it as its own process (bench/poll.py does) so its CPU is not charged to the poller:

    python bench/feedserver.py --feeds 2000 --delay 0.2 --hosts 50

It prints `READY <port>` on stdout once listening. Feed k is served at
`http://127.0.0.<1 + k % hosts>:<port>/feed/<k>.xml`: the same server listens on several loopback
addresses so the poller's per-host limit sees `hosts` publishers, as in a real source list, rather than
one host serialising 2,000 feeds. Every response waits `--delay` seconds first (a distant server's latency),
304s included, and honours If-None-Match / If-Modified-Since.

Items are unique per feed (2,000 × 50 = 100,000 distinct titles, links and texts), 60–100 words of
news-like prose from a varied vocabulary, with light HTML in the description (paragraphs, a link, an
entity) as real feeds have. Everything is generated from a seed, so every run serves the same bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from xml.sax.saxutils import escape

from aiohttp import web

ITEMS_PER_FEED = 50
LAST_MODIFIED = "Mon, 06 Jan 2025 12:00:00 GMT"

ACTORS = [
    "the defence ministry",
    "the foreign minister",
    "the prime minister",
    "opposition leaders",
    "the central bank",
    "coast guard officials",
    "a senior diplomat",
    "the interior ministry",
    "United Nations monitors",
    "the army chief",
    "regional governors",
    "the energy regulator",
    "port authorities",
    "the election commission",
    "trade negotiators",
    "police investigators",
    "the finance minister",
    "health officials",
    "the supreme court",
    "rebel commanders",
    "customs officers",
    "a government spokesperson",
    "military analysts",
    "the parliament speaker",
    "union leaders",
]
VERBS = [
    "announced",
    "confirmed",
    "denied",
    "warned of",
    "condemned",
    "welcomed",
    "postponed",
    "approved",
    "rejected",
    "investigated",
    "suspended",
    "expanded",
    "criticised",
    "defended",
    "proposed",
    "negotiated",
    "reported",
    "disclosed",
    "ordered",
    "questioned",
]
OBJECTS = [
    "new sanctions",
    "a ceasefire proposal",
    "joint naval exercises",
    "an arms shipment",
    "the fuel subsidy plan",
    "a cyber attack on ministries",
    "grain export quotas",
    "the border closure",
    "emergency credit lines",
    "a drone strike near the capital",
    "missile launches",
    "a prisoner exchange",
    "the pipeline agreement",
    "troop movements along the frontier",
    "a corruption inquiry",
    "the budget amendment",
    "shipping insurance rules",
    "an outbreak of cholera",
    "flood relief funding",
    "satellite imagery of the airfield",
    "a data breach",
    "semiconductor export controls",
    "the mining licence review",
    "refugee arrivals",
    "a hostage negotiation",
]
PLACES = [
    "Pyongyang",
    "Vladivostok",
    "Kyiv",
    "Odesa",
    "Taipei",
    "Manila",
    "Hanoi",
    "Jakarta",
    "Nairobi",
    "Addis Ababa",
    "Khartoum",
    "Lagos",
    "Caracas",
    "Bogotá",
    "Lima",
    "Santiago",
    "Ankara",
    "Tbilisi",
    "Yerevan",
    "Baku",
    "Almaty",
    "Tashkent",
    "Islamabad",
    "Dhaka",
    "Colombo",
    "Kathmandu",
    "Yangon",
    "Bangkok",
    "Seoul",
    "Tokyo",
    "Beijing",
    "Tehran",
    "Baghdad",
    "Beirut",
    "Amman",
    "Cairo",
    "Tunis",
    "Algiers",
    "Rabat",
    "Warsaw",
    "Vilnius",
    "Riga",
    "Tallinn",
    "Helsinki",
    "Oslo",
    "Brussels",
    "Geneva",
    "Vienna",
    "Belgrade",
]
CLAUSES = [
    "according to people familiar with the matter",
    "citing documents seen by reporters",
    "in a statement released late on Tuesday",
    "after hours of closed-door talks",
    "despite objections from neighbouring states",
    "as markets reacted nervously",
    "amid growing pressure from allies",
    "in a move analysts called unexpected",
    "following weeks of speculation",
    "while officials declined to comment further",
    "as satellite operators tracked vessels offshore",
    "two days before a scheduled summit",
]
FILLER = [
    "Officials said the measures would remain in place until further notice",
    "Independent experts cautioned that the figures could not be verified",
    "The decision is expected to affect shipping routes and insurance premiums across the region",
    "Residents described long queues at fuel stations and checkpoints",
    "A parliamentary committee will review the proposal next month",
    "Previous rounds of negotiations collapsed over verification and timing",
    "Exporters warned that delays would raise prices for consumers",
    "Observers noted an increase in activity at the northern base",
    "The ministry published a list of affected companies and individuals",
    "Analysts said the timing suggested a response to recent military drills",
]


def _sentence(rng: random.Random) -> str:
    return (
        f"{rng.choice(ACTORS).capitalize()} in {rng.choice(PLACES)} {rng.choice(VERBS)} "
        f"{rng.choice(OBJECTS)}, {rng.choice(CLAUSES)}."
    )


def _text(rng: random.Random, feed: int, item: int) -> tuple[str, str]:
    """(title, html description) of 60–100 words; the reference number makes every item unique."""
    title = f"{rng.choice(PLACES)}: {_sentence(rng)[:-1]} (ref {feed}-{item})"
    target = rng.randint(52, 88)  # plus the ~10-word trailer below: 60-100 words
    sentences = [_sentence(rng)]
    words = len(sentences[0].split())
    while words < target:
        s = _sentence(rng) if rng.random() < 0.6 else rng.choice(FILLER) + "."
        sentences.append(s)
        words += len(s.split())
    mid = len(sentences) // 2
    html = (
        f"<p>{' '.join(sentences[:mid])}</p>"
        f'<p>{" ".join(sentences[mid:])} <a href="https://news.example/{feed}/{item}">Read more</a> '
        f"&amp; share &#8212; case {feed}.{item}.</p>"
    )
    return title, html


def build_feed(feed: int, now: datetime) -> bytes:
    """The RSS 2.0 document for feed number `feed` (deterministic)."""
    rng = random.Random(feed)
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>',
        f"<title>Synthetic Wire {feed}</title><link>https://wire{feed}.example/</link>",
        "<description>Bench feed</description>",
    ]
    for i in range(ITEMS_PER_FEED):
        title, html = _text(rng, feed, i)
        published = now - timedelta(minutes=7 * i + feed % 60)
        parts.append(
            f"<item><title>{escape(title)}</title>"
            f"<link>https://wire{feed}.example/{published:%Y/%m/%d}/story-{i}?utm_source=rss&amp;id={i}</link>"
            f'<guid isPermaLink="false">wire{feed}-{i}</guid>'
            f"<pubDate>{format_datetime(published)}</pubDate>"
            f"<description>{escape(html)}</description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode()


def make_app(feeds: int, delay: float) -> web.Application:
    now = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
    cache: dict[int, bytes] = {}

    async def feed(request: web.Request) -> web.StreamResponse:
        try:
            n = int(request.match_info["n"])
        except ValueError:
            raise web.HTTPNotFound() from None
        if not 0 <= n < feeds:
            raise web.HTTPNotFound()
        if delay:
            await asyncio.sleep(delay)
        etag = f'"wire-{n}-v1"'
        headers = {"ETag": etag, "Last-Modified": LAST_MODIFIED}
        if request.headers.get("If-None-Match") == etag or (
            "If-None-Match" not in request.headers
            and request.headers.get("If-Modified-Since") == LAST_MODIFIED
        ):
            return web.Response(status=304, headers=headers)
        body = cache.get(n)
        if body is None:
            body = cache[n] = build_feed(n, now)
        return web.Response(body=body, headers=headers, content_type="application/rss+xml")

    app = web.Application()
    app.router.add_get("/feed/{n}.xml", feed)
    return app


def feed_url(port: int, n: int, hosts: int) -> str:
    return f"http://127.0.0.{1 + n % hosts}:{port}/feed/{n}.xml"


async def serve(feeds: int, delay: float, hosts: int, port: int) -> None:
    runner = web.AppRunner(make_app(feeds, delay), access_log=None)
    await runner.setup()
    first = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await first.start()
    port = first._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    for h in range(2, hosts + 1):
        await web.TCPSite(runner, f"127.0.0.{h}", port, backlog=4096).start()
    print(f"READY {port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=2000)
    ap.add_argument("--delay", type=float, default=0.2, help="seconds before each response (default 0.2)")
    ap.add_argument("--hosts", type=int, default=50, help="loopback addresses 127.0.0.1..N (default 50)")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.feeds, args.delay, args.hosts, args.port))


if __name__ == "__main__":
    main()
