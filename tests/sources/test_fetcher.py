"""Fetcher against real HTTP servers on 127.0.0.1 (aiohttp.web), with short limits."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from bot.sources.fetch import USER_AGENT, Fetcher, FetchLimits

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
ETAG = '"v1"'
LAST_MODIFIED = "Mon, 06 Jan 2025 12:00:00 GMT"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Server:
    port: int
    seen: list[web.Request] = field(default_factory=list)
    state: dict[str, int] = field(default_factory=dict)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


async def _serve(
    routes: dict[str, Handler], hosts: tuple[str, ...] = ("127.0.0.1",)
) -> AsyncIterator[Server]:
    server = Server(port=0)

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        server.seen.append(request)
        return await handler(request)

    app = web.Application(middlewares=[record])
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, hosts[0], 0)
    await site.start()
    server.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    for host in hosts[1:]:
        await web.TCPSite(runner, host, server.port).start()
    try:
        yield server
    finally:
        await runner.cleanup()


LIMITS = FetchLimits(connect_timeout=1, read_timeout=0.5, total_timeout=1.5, max_bytes=1024 * 1024)


async def conditional(request: web.Request) -> web.Response:
    headers = {"ETag": ETAG, "Last-Modified": LAST_MODIFIED}
    if (
        request.headers.get("If-None-Match") == ETAG
        or request.headers.get("If-Modified-Since") == LAST_MODIFIED
    ):
        return web.Response(status=304, headers=headers)
    return web.Response(body=FEED, headers=headers, content_type="application/rss+xml")


async def only_last_modified(request: web.Request) -> web.Response:
    if request.headers.get("If-Modified-Since") == LAST_MODIFIED:
        return web.Response(status=304)
    return web.Response(body=FEED, headers={"Last-Modified": LAST_MODIFIED})


async def gzipped(request: web.Request) -> web.Response:
    assert "gzip" in request.headers.get("Accept-Encoding", "")
    return web.Response(body=gzip.compress(FEED), headers={"Content-Encoding": "gzip"})


async def never_answers(request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response(body=FEED)


async def trickles(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    await resp.prepare(request)
    for _ in range(300):  # a byte every 0.1 s: each read is fast, the whole never ends
        await resp.write(b"<")
        await asyncio.sleep(0.1)
    return resp


async def loop(request: web.Request) -> web.Response:
    raise web.HTTPFound("/loop")


async def error500(request: web.Request) -> web.Response:
    return web.Response(status=500, text="boom")


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async for s in _serve(
        {
            "/feed": conditional,
            "/lm": only_last_modified,
            "/gz": gzipped,
            "/hang": never_answers,
            "/trickle": trickles,
            "/loop": loop,
            "/500": error500,
        }
    ):
        yield s


async def test_200_then_304_with_etag(server: Server) -> None:
    async with Fetcher(LIMITS) as fetcher:
        first = await fetcher.fetch(server.url("/feed"))
        assert (first.status, first.body, first.error) == (200, FEED, None)
        assert first.etag == ETAG and first.last_modified == LAST_MODIFIED
        assert first.content_type is not None and first.content_type.startswith("application/rss+xml")
        second = await fetcher.fetch(server.url("/feed"), etag=first.etag)
    assert second.not_modified and second.body is None and second.error is None
    assert server.seen[1].headers["If-None-Match"] == ETAG
    assert server.seen[0].headers["User-Agent"] == USER_AGENT


async def test_200_then_304_with_last_modified_only(server: Server) -> None:
    async with Fetcher(LIMITS) as fetcher:
        first = await fetcher.fetch(server.url("/lm"))
        assert first.etag is None and first.last_modified == LAST_MODIFIED
        second = await fetcher.fetch(server.url("/lm"), last_modified=first.last_modified)
    assert second.status == 304 and second.not_modified


async def test_gzip_is_decoded(server: Server) -> None:
    async with Fetcher(LIMITS) as fetcher:
        result = await fetcher.fetch(server.url("/gz"))
    assert result.body == FEED and result.error is None


async def test_server_that_never_answers_times_out(server: Server) -> None:
    async with Fetcher(LIMITS) as fetcher:
        result = await fetcher.fetch(server.url("/hang"))
    assert result.status == 0 and result.body is None
    assert result.error is not None
    assert result.elapsed_s < LIMITS.total_timeout + 5  # ended by the deadline, not by the server


async def test_trickling_server_hits_total_deadline(server: Server) -> None:
    async with Fetcher(LIMITS) as fetcher:
        result = await fetcher.fetch(server.url("/trickle"))
    assert result.error is not None and "total deadline" in result.error
    assert LIMITS.total_timeout <= result.elapsed_s < LIMITS.total_timeout + 5


async def test_redirect_loop_is_an_error(server: Server) -> None:
    async with Fetcher(LIMITS) as fetcher:
        result = await fetcher.fetch(server.url("/loop"))
    assert result.error is not None and "redirect" in result.error
    assert len(server.seen) == LIMITS.max_redirects + 1


async def test_http_500_is_an_error_with_status(server: Server) -> None:
    async with Fetcher(LIMITS) as fetcher:
        result = await fetcher.fetch(server.url("/500"))
    assert result.status == 500 and result.body is None and result.error == "HTTP 500 Internal Server Error"


@pytest.mark.parametrize("transport", ["aiohttp", "httpcore"])
async def test_connection_refused(transport: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    async with Fetcher(LIMITS, transport=transport) as fetcher:  # type: ignore[arg-type]
        result = await fetcher.fetch(f"http://127.0.0.1:{port}/feed")
    assert result.status == 0 and result.body is None
    assert result.error is not None and "timeout" not in result.error.lower()


@pytest.mark.parametrize("url", ["not a url", "ftp://127.0.0.1/x", "http:///nohost", ""])
async def test_invalid_urls_are_errors(url: str) -> None:
    async with Fetcher(LIMITS) as fetcher:
        result = await fetcher.fetch(url)
    assert result.status == 0 and result.error is not None and result.error.startswith("invalid URL")


async def test_huge_body_hits_size_cap_without_being_read() -> None:
    sent = {"bytes": 0}
    chunk = b"x" * 65536

    async def gigabyte(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()  # no Content-Length: the cap must work while streaming
        await resp.prepare(request)
        try:
            while sent["bytes"] < 1024**3:
                await resp.write(chunk)
                sent["bytes"] += len(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return resp

    async def declared(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": str(1024**3)})
        await resp.prepare(request)
        with pytest.raises((ConnectionError, RuntimeError)):
            while True:
                await resp.write(chunk)
        return resp

    async for srv in _serve({"/huge": gigabyte, "/declared": declared}):
        async with Fetcher(FetchLimits(max_bytes=1024 * 1024, total_timeout=10)) as fetcher:
            result = await fetcher.fetch(srv.url("/huge"))
            assert result.body is None and result.error is not None and "too large" in result.error
            refused = await fetcher.fetch(srv.url("/declared"))
            assert refused.error is not None and "Content-Length" in refused.error
        await asyncio.sleep(0.2)
        assert sent["bytes"] < 64 * 1024 * 1024  # stopped long before a gigabyte


async def test_per_host_limit_is_honoured() -> None:
    active = {"now": 0, "max": 0}
    by_host: dict[str, int] = {}
    max_by_host: dict[str, int] = {}

    async def slow(request: web.Request) -> web.Response:
        host = request.host.split(":")[0]
        active["now"] += 1
        by_host[host] = by_host.get(host, 0) + 1
        active["max"] = max(active["max"], active["now"])
        max_by_host[host] = max(max_by_host.get(host, 0), by_host[host])
        await asyncio.sleep(0.1)
        active["now"] -= 1
        by_host[host] -= 1
        return web.Response(body=FEED)

    async for srv in _serve({"/slow": slow}, hosts=("127.0.0.1", "127.0.0.2")):
        async with Fetcher(FetchLimits(per_host=3, max_concurrency=100)) as fetcher:
            urls = [srv.url("/slow", host) for host in ("127.0.0.1", "127.0.0.2") for _ in range(12)]
            results = await asyncio.gather(*(fetcher.fetch(u) for u in urls))
    assert all(r.status == 200 for r in results)
    assert max_by_host == {"127.0.0.1": 3, "127.0.0.2": 3}
    assert active["max"] == 6  # the two hosts do run in parallel


async def test_global_limit_is_honoured() -> None:
    active = {"now": 0, "max": 0}

    async def slow(request: web.Request) -> web.Response:
        active["now"] += 1
        active["max"] = max(active["max"], active["now"])
        await asyncio.sleep(0.05)
        active["now"] -= 1
        return web.Response(body=FEED)

    async for srv in _serve({"/slow": slow}):
        async with Fetcher(FetchLimits(per_host=50, max_concurrency=5)) as fetcher:
            await asyncio.gather(*(fetcher.fetch(srv.url("/slow")) for _ in range(20)))
    assert active["max"] == 5


async def test_fetch_outside_context_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        await Fetcher().fetch("http://127.0.0.1/")


async def test_a_cookie_wall_redirect_still_works() -> None:
    """The jar skips responses without Set-Cookie (cheaper 304s) but still serves sites that need it."""

    async def wall(request: web.Request) -> web.StreamResponse:
        redirect = web.HTTPFound("/feed.xml")
        redirect.set_cookie("consent", "yes")
        raise redirect

    async def feed(request: web.Request) -> web.StreamResponse:
        if request.cookies.get("consent") != "yes":
            raise web.HTTPFound("/wall")
        return web.Response(body=b"<rss version='2.0'><channel><title>ok</title></channel></rss>")

    async for srv in _serve({"/wall": wall, "/feed.xml": feed}):
        async with Fetcher(LIMITS) as fetcher:
            result = await fetcher.fetch(srv.url("/wall"))
        assert result.error is None and result.body is not None and b"<title>ok</title>" in result.body
