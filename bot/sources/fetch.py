"""HTTP for news sources: one shared httpx client, conditional GET, hard limits, no exceptions.

A poll cycle fetches thousands of feeds from servers we do not control. This module promises that each
`Fetcher.fetch` call:

- ends by `total_timeout` seconds, whatever the server does (never answers, trickles a byte a second,
  redirects forever): the whole exchange runs under `asyncio.timeout`, the connect/read timeouts only
  make the common failures fail sooner;
- reads at most `max_bytes` of (decoded) body: a 1 GB response, or a gzip bomb, is cut off while
  streaming, never buffered; a Content-Length above the cap is refused before the first body byte;
- sends If-None-Match / If-Modified-Since when it has validators, so unchanged feeds cost a 304;
- runs at most `per_host` requests to one host at a time (politeness: 200 feeds from one publisher must
  not hit it 200-wide) and at most `max_concurrency` overall;
- returns a FetchResult with `error` text instead of raising for any network or HTTP failure.

Transport choice, by measurement (python bench/poll.py --transport both: 2,000 feeds of 50 items from
bench/feedserver.py on 50 loopback hosts, 200 ms server delay, per-host 4 / global 200, 2 shared CPU
cores; CPU = this process's process_time):

                                    cold 200s (fetch+parse)      conditional 304s (fetch only)
    httpx default (httpcore)        110 s wall, 39.1 ms CPU/feed  13.5 s wall, 3.7 ms CPU/feed
    httpx over httpx_aiohttp         28 s wall,  9.2 ms CPU/feed   6.0 s wall, 1.4 ms CPU/feed

httpcore's pool does O(connections) work per request under high concurrency (encode/httpx#3215);
aiohttp's connector does not. We keep httpx's API (Response, Timeout, Limits, redirects, decoding) and
swap only the transport; `transport="httpcore"` remains for comparison and as a fallback.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self
from urllib.parse import urlsplit

import httpx

USER_AGENT = "Watchfloor/0.1 (+https://github.com/watchfloor)"
ACCEPT = "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, */*;q=0.8"


URL_CACHE_MAX = 50_000


class _CookiesWhenSet(httpx.Cookies):
    """The client's cookie jar, consulted only for responses that set a cookie.

    httpx hands every response to http.cookiejar, which first rebuilds all its headers as an
    email.message: 0.17 ms of the ~1 ms CPU a 304 costs in bench/poll.py, for responses that almost never
    carry Set-Cookie. Responses that do (cookie-wall redirects) still fill the jar as before."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if any(name.lower() == b"set-cookie" for name, _ in response.headers.raw):
            super().extract_cookies(response)


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of one GET: a body, a 304, or an error. `status` is 0 when no HTTP response came."""

    url: str
    final_url: str
    status: int
    body: bytes | None
    etag: str | None
    last_modified: str | None
    error: str | None
    elapsed_s: float
    content_type: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """Every limit in one place, so config can own them and tests can shrink them."""

    connect_timeout: float = 10.0
    read_timeout: float = 20.0  # between two reads; a trickling server resets it, hence total_timeout
    total_timeout: float = 45.0
    max_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    per_host: int = 4
    max_concurrency: int = 200
    keepalive_expiry: float = 30.0
    headers: dict[str, str] = field(default_factory=dict)  # extra request headers


def _error_text(exc: BaseException) -> str:
    # httpx_aiohttp maps every aiohttp.ClientConnectionError to httpx.ConnectTimeout, so "connection
    # refused" would read as a timeout; the aiohttp exception it chains from names the real cause.
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    msg = str(exc) or str(cause)
    return f"{type(cause).__name__}: {msg}" if msg else type(cause).__name__


def _build_transport(kind: str, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    if kind == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return AiohttpTransport(limits=limits)
    return httpx.AsyncHTTPTransport(limits=limits)


class Fetcher:
    """Async context manager owning one httpx.AsyncClient shared by every fetch of a poll cycle."""

    def __init__(
        self,
        limits: FetchLimits | None = None,
        *,
        transport: Literal["aiohttp", "httpcore"] = "aiohttp",
        user_agent: str = USER_AGENT,
    ) -> None:
        self.limits = limits or FetchLimits()
        self._transport_kind = transport
        self._user_agent = user_agent
        self._client: httpx.AsyncClient | None = None
        self._global = asyncio.Semaphore(self.limits.max_concurrency)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._urls: dict[str, httpx.URL] = {}

    async def __aenter__(self) -> Self:
        lim = self.limits
        pool = httpx.Limits(
            max_connections=lim.max_concurrency,
            max_keepalive_connections=lim.max_concurrency,
            keepalive_expiry=lim.keepalive_expiry,
        )
        self._client = httpx.AsyncClient(
            transport=_build_transport(self._transport_kind, pool),
            timeout=httpx.Timeout(
                connect=lim.connect_timeout, read=lim.read_timeout, write=lim.read_timeout, pool=None
            ),
            follow_redirects=True,
            max_redirects=lim.max_redirects,
            headers={"User-Agent": self._user_agent, "Accept": ACCEPT, **lim.headers},
            trust_env=False,
        )
        # httpx has no public way to give a client a Cookies subclass (its setter copies into a plain one).
        self._client._cookies = _CookiesWhenSet()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _parsed_url(self, url: str) -> httpx.URL:
        """httpx.URL per feed URL, kept across polls: parsing a URL cost ~0.2 ms per request in the 304
        benchmark profile, a sixth of a conditional poll's CPU, and a source's URL rarely changes."""
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= URL_CACHE_MAX:
                self._urls.clear()
            parsed = self._urls[url] = httpx.URL(url)
        return parsed

    def _host_limit(self, host: str) -> asyncio.Semaphore:
        sem = self._hosts.get(host)
        if sem is None:
            sem = self._hosts[host] = asyncio.Semaphore(self.limits.per_host)
        return sem

    async def fetch(self, url: str, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
        """GET `url`, conditionally when validators are given. Never raises for network/HTTP errors."""
        if self._client is None:
            raise RuntimeError("Fetcher.fetch called outside `async with Fetcher() as fetcher:`")
        # urlsplit, not httpx.URL: httpx's URL parser cost ~0.3 ms per call in the 304 benchmark, and the
        # client parses the URL again anyway (raising InvalidURL there, which is caught below).
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError as exc:
            return FetchResult(url, url, 0, None, None, None, f"invalid URL: {exc}", 0.0)
        if not host or parts.scheme not in ("http", "https"):
            return FetchResult(url, url, 0, None, None, None, "invalid URL: need http(s)://host/...", 0.0)
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        async with self._global, self._host_limit(host):
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.limits.total_timeout):
                    return await self._get(self._client, url, headers, started)
            except TimeoutError:
                error = f"total deadline of {self.limits.total_timeout:g} s exceeded"
            except httpx.TooManyRedirects as exc:
                error = f"too many redirects (> {self.limits.max_redirects}): {exc}"
            except httpx.TimeoutException as exc:
                # Only a real timeout reads as one (see _error_text: httpx_aiohttp calls a refused
                # connection a ConnectTimeout).
                cause = exc.__cause__
                real = cause is None or isinstance(cause, TimeoutError) or "Timeout" in type(cause).__name__
                error = f"timeout: {_error_text(exc)}" if real else _error_text(exc)
            except Exception as exc:  # transport errors (httpx or aiohttp), decoding errors, invalid URLs
                error = _error_text(exc)
            return FetchResult(url, url, 0, None, etag, last_modified, error, time.perf_counter() - started)

    async def _get(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str], started: float
    ) -> FetchResult:
        max_bytes = self.limits.max_bytes
        async with client.stream("GET", self._parsed_url(url), headers=headers) as resp:
            final_url = str(resp.url)
            # One pass over the raw headers: each httpx Headers.get re-derives the header encoding, which
            # showed up as the largest httpx cost per 304 in the benchmark profile.
            etag = last_modified = content_type = None
            declared = ""
            for raw_name, raw_value in resp.headers.raw:
                name = raw_name.lower()
                if name == b"etag":
                    etag = raw_value.decode("latin-1")
                elif name == b"last-modified":
                    last_modified = raw_value.decode("latin-1")
                elif name == b"content-type":
                    content_type = raw_value.decode("latin-1")
                elif name == b"content-length":
                    declared = raw_value.decode("latin-1").strip()

            def result(body: bytes | None, error: str | None) -> FetchResult:
                return FetchResult(
                    url=url,
                    final_url=final_url,
                    status=resp.status_code,
                    body=body,
                    etag=etag,
                    last_modified=last_modified,
                    error=error,
                    elapsed_s=time.perf_counter() - started,
                    content_type=content_type,
                )

            if resp.status_code == 304:
                return result(None, None)
            if resp.status_code >= 400 or resp.status_code < 200:
                return result(None, f"HTTP {resp.status_code} {resp.reason_phrase}".rstrip())
            if declared.isdigit() and int(declared) > max_bytes:
                return result(None, f"body too large: Content-Length {declared} > {max_bytes} bytes")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():  # decoded bytes: a gzip bomb is capped too
                size += len(chunk)
                if size > max_bytes:
                    return result(None, f"body too large: over {max_bytes} bytes, stopped reading")
                chunks.append(chunk)
            return result(b"".join(chunks), None)
