"""Slack benchmark: `/news search` and `/news latest` latency over a 200,000-item store, and alerts/s
through the outbox, all over real HTTP to the fake Slack Web API (tests/fakes/slack_api.py).

    python bench/slack.py [--items 200000] [--requests 300] [--concurrency 1,8] [--baseline like|none]
                          [--alerts 2000] [--channels 200] [--save run.json] [--compare old.json]

Three processes, as in production: this one sends the signed slash commands and runs the fake Slack (in a
thread); `watchfloor serve`'s ASGI app (`bot.web.create_asgi`, the real Bolt app, under uvicorn) runs in a
child with Bolt's Web API client at the fake through `SLACK_API_URL`; the outbox (`SlackDelivery`) drains
in another child, as `watchfloor worker` would. Runs against a copy of a cached store (bench/slack_data.py).

Commands: latency is from sending the signed request to the moment the fake Slack records the reply at
the command's `response_url` (the ack comes first; the answer goes through `respond()`); p50/p95/p99/max
over `--requests` commands per row, at each `--concurrency`. The baseline is the same app whose search is
a `LIKE` scan (`like_search_items` below: every word in the title or text, title hits counting double, as
`/news search` first worked) instead of the full-text index; `help` (no query) is the floor: HTTP, Bolt,
signature check and `respond()` alone. The `ack` columns time the HTTP answer itself: Bolt's asyncio
listener runner polls for `ack()` every 10 ms, so it takes 10 ms or more, often longer than the reply.

Alerts: `--alerts` alerts over `--channels` channels are enqueued (`Store.save_scored`, one transaction),
then `SlackDelivery.deliver_due` runs back to back until the outbox is empty; alerts/s is alerts over the
wall time of the draining. Side by side: a bare `AsyncWebClient` posting the same rendered messages with
the same pacing and no outbox bookkeeping, and once more with one shared aiohttp session. Pacing (1 message per second per channel) bounds what one
channel can do; the runs with pacing off show what the outbox itself costs.

Ratios travel between machines; absolute numbers do not. `--save` writes the figures as JSON and
`--compare` prints this run against a saved one.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from slack_data import (  # noqa: E402
    DATA_END,
    BuildStats,
    Row,
    bench_config,
    cached_store,
    generate,
    load_rows,
    working_copy,
)
from sqlalchemy import ColumnElement, and_, case, desc, exists, func, or_, select, true  # noqa: E402

from bot import queries  # noqa: E402
from bot.decide import alert_id  # noqa: E402
from bot.dedup import item_keys  # noqa: E402
from bot.items import Alert  # noqa: E402
from bot.store import Store, StoredAlert, items, scores  # noqa: E402

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench"

# What analysts type: words of the shipped topics and of ordinary news, with each filter.
SEARCHES = (
    "search missile",
    "search north korean artillery",
    "search cable anchor topic:undersea-cable-sabotage",
    "search houthi tanker since:30d",
    "search taiwan strait drills",
    "search pyongyang moscow since:7d",
    "search undersea cable source:submarine-networks",
    "search ammunition russia topic:dprk-russia-military since:14d",
    "search shipping red sea",
    "search election",
    "search kim putin",
    "search drone attack",
)
LATEST = (
    "latest",
    "latest dprk-russia-military",
    "latest undersea-cable-sabotage 20",
    "latest red-sea-shipping-attacks 5",
    "latest taiwan-strait-military",
    "latest 20",
)
FLOOR = ("help",)
WARM_UP = (*FLOOR, *SEARCHES, *LATEST)


# -- the baseline search ------------------------------------------------------------------------------------


def like_search_items(
    store: Store,
    words: Sequence[str],
    *,
    topic: str | None = None,
    source: str | None = None,
    since: datetime | None = None,
    limit: int = 10,
) -> list[queries.SearchHit]:
    """`queries.search_items` as a scan: every word in the title or the text (`lower(…) LIKE`), ranked
    by a score where a word in the title counts twice. Same signature, same filters, no index."""
    terms = [t for w in words for t in re.findall(r"\w+", w.lower())]
    if not terms:
        return []
    conditions: list[ColumnElement[bool]] = []
    rank: ColumnElement[Any] | None = None
    for term in terms:
        pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        in_title = func.lower(items.c.title).like(pattern, escape="\\")
        in_text = func.lower(items.c.text).like(pattern, escape="\\")
        conditions.append(or_(in_title, in_text))
        points = case((in_title, 2), else_=0) + case((in_text, 1), else_=0)
        rank = points if rank is None else rank + points
    if source is not None:
        conditions.append(func.lower(items.c.source) == source.lower())
    if since is not None:
        conditions.append(items.c.published >= since)
    if topic is not None:
        conditions.append(
            exists().where(scores.c.item_id == items.c.id, scores.c.topic == topic, scores.c.flagged)
        )
    assert rank is not None
    query = (
        select(items.c.id, items.c.title, items.c.url, items.c.source, items.c.published, rank.label("rank"))
        .where(and_(true(), *conditions))
        .order_by(desc("rank"), items.c.published.desc(), items.c.id)
        .limit(max(1, min(limit, queries.SEARCH_LIMIT_MAX)))
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        queries.SearchHit(r["id"], r["title"], r["url"], r["source"], r["published"], float(r["rank"]))
        for r in rows
    ]


# -- child: the served app --------------------------------------------------------------------------------


def serve(db: Path, search: str) -> None:
    """`watchfloor serve`'s app on this store, on a free port printed as `READY <port>`, until SIGTERM.

    Built as `bot.web.run_web` builds it, minus the config watcher and the background model loading
    (which would train models during the measurement; `explain` is not measured)."""
    import uvicorn

    from bot.app import Deps
    from bot.web import create_asgi

    logging.basicConfig(level=logging.WARNING, format="serve: %(levelname)s %(name)s %(message)s")
    config = bench_config(db)
    store = Store.open(f"sqlite:///{db}")
    if search == "like":
        queries.search_items = like_search_items  # the handler looks it up at each call
    deps = Deps(store=store, config=lambda: config, clock=lambda: DATA_END)
    app = create_asgi(config, deps, on_shutdown=store.close)

    async def run() -> None:
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
        )
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        print(f"READY {server.servers[0].sockets[0].getsockname()[1]}", flush=True)
        await task

    asyncio.run(run())


def start_child(argv: list[str], api_url: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": api_url,
    }
    env.pop("DATABASE_URL", None)
    return subprocess.Popen([sys.executable, __file__, *argv], stdout=subprocess.PIPE, text=True, env=env)


def start_server(db: Path, search: str, api_url: str) -> tuple[subprocess.Popen[str], str]:
    proc = start_child(["--role", "serve", "--work-db", str(db), "--search", search], api_url)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"the served app did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}"


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- commands: signed requests, replies timed at the fake Slack -------------------------------------------


def signed_headers(body: str, secret: str = SECRET) -> dict[str, str]:
    """Slack's v0 request signature over `v0:<timestamp>:<body>`."""
    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


class Replies:
    """Futures for the replies awaited at the fake Slack's response_urls, resolved from its thread with
    the time the reply was recorded there."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiting: dict[str, asyncio.Future[tuple[float, dict[str, Any]]]] = {}

    def expect(self, ident: str) -> asyncio.Future[tuple[float, dict[str, Any]]]:
        future = self.loop.create_future()
        self.waiting[ident] = future
        return future

    def arrived(self, ident: str, payload: dict[str, Any]) -> None:
        """Called on the fake Slack's thread."""
        now = time.perf_counter()
        self.loop.call_soon_threadsafe(self._resolve, ident, now, payload)

    def _resolve(self, ident: str, when: float, payload: dict[str, Any]) -> None:
        future = self.waiting.pop(ident, None)
        if future is not None and not future.done():
            future.set_result((when, payload))


@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    ack_s: float
    reply_s: float
    outcome: str  # "results" | "empty" | "problem"


def outcome(reply: dict[str, Any]) -> str:
    text = str(reply.get("text") or "")
    if text.startswith((":warning:", ":x:")):
        return "problem"
    if text.startswith(("Nothing stored matches", "No alerts yet")):
        return "empty"
    return "results"


@dataclass
class Commander:
    client: httpx.AsyncClient
    url: str
    response_url: Any  # FakeSlack.response_url
    replies: Replies
    sent: int = 0

    async def send(self, text: str) -> Sample:
        self.sent += 1
        ident = f"q{self.sent}"
        body = urlencode(
            {
                "token": "deprecated-verification-token",
                "team_id": "T0WATCHTEAM",
                "team_domain": "watchfloor-bench",
                "channel_id": "C0ANALYSTS",
                "channel_name": "analysts",
                "user_id": "U0ANA00001",
                "user_name": "ana",
                "command": "/news",
                "text": text,
                "api_app_id": "A0WATCHAPP",
                "is_enterprise_install": "false",
                "response_url": self.response_url(ident),
                "trigger_id": f"1337.42.{ident}",
            }
        )
        headers = signed_headers(body)
        future = self.replies.expect(ident)
        t0 = time.perf_counter()
        answer = await self.client.post(f"{self.url}/slack/events", content=body, headers=headers)
        acked = time.perf_counter()
        if answer.status_code != 200:
            raise RuntimeError(f"/news {text}: HTTP {answer.status_code} {answer.text[:200]}")
        replied, payload = await asyncio.wait_for(future, timeout=120)
        return Sample(text, acked - t0, replied - t0, outcome(payload))


@dataclass(frozen=True, slots=True)
class CommandRow:
    name: str
    concurrency: int
    n: int
    wall_s: float
    ack_p50: float
    ack_p99: float
    p50: float
    p95: float
    p99: float
    max: float
    results: int
    empty: int
    problems: int
    p50_by_text: dict[str, float]

    @property
    def per_s(self) -> float:
        return self.n / self.wall_s if self.wall_s else 0.0


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


async def run_row(
    commander: Commander, name: str, texts: Sequence[str], n: int, concurrency: int
) -> CommandRow:
    samples: list[Sample] = []
    n = math.ceil(n / len(texts)) * len(texts)  # whole rounds of the mix, so rows compare like with like
    turns = iter(range(n))

    async def worker() -> None:
        for i in turns:  # one iterator shared by the workers: each takes the next command
            samples.append(await commander.send(texts[i % len(texts)]))

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    acks = [s.ack_s for s in samples]
    lat = [s.reply_s for s in samples]
    return CommandRow(
        name,
        concurrency,
        len(samples),
        wall,
        percentile(acks, 50),
        percentile(acks, 99),
        percentile(lat, 50),
        percentile(lat, 95),
        percentile(lat, 99),
        max(lat),
        sum(s.outcome == "results" for s in samples),
        sum(s.outcome == "empty" for s in samples),
        sum(s.outcome == "problem" for s in samples),
        {t: percentile([s.reply_s for s in samples if s.text == t], 50) for t in texts},
    )


async def run_commands(
    slack: Any, db: Path, args: argparse.Namespace, concurrencies: Sequence[int]
) -> list[CommandRow]:
    replies = Replies(asyncio.get_running_loop())
    slack.on_response = replies.arrived
    rows: list[CommandRow] = []
    modes = ["fts", "like"] if args.baseline == "like" else ["fts"]
    limits = httpx.Limits(
        max_connections=max(concurrencies) * 2, max_keepalive_connections=max(concurrencies)
    )
    try:
        for mode in modes:
            proc, url = start_server(db, mode, slack.base_url)
            try:
                async with httpx.AsyncClient(timeout=120, limits=limits) as client:
                    commander = Commander(client, url, slack.response_url, replies)
                    for text in WARM_UP if mode == "fts" else SEARCHES[:3]:
                        await commander.send(text)  # auth.test, imports, the page cache
                    for c in concurrencies:
                        if mode == "fts":
                            plan = [
                                ("help (floor: no query)", FLOOR, args.requests),
                                ("search (FTS5)", SEARCHES, args.requests),
                                ("latest", LATEST, args.requests),
                            ]
                        else:
                            plan = [("search (LIKE scan, baseline)", SEARCHES, args.baseline_requests)]
                        for name, texts, n in plan:
                            print(f"  {name} × {n} at concurrency {c} ...", flush=True)
                            rows.append(await run_row(commander, name, texts, n, c))
            finally:
                stop(proc)
    finally:
        slack.on_response = None
    return rows


# -- child: the outbox ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    mode: str  # "outbox" | "bare"
    channels: int
    alerts: int
    pace: float


@dataclass(frozen=True, slots=True)
class AlertRow:
    name: str
    mode: str
    channels: int
    alerts: int
    pace: float
    enqueue_s: float
    wall_s: float
    sent: int
    problems: int
    at_fake: int = 0  # filled in by the parent: messages the fake Slack recorded in these channels
    prefix: str = ""

    @property
    def per_s(self) -> float:
        return self.sent / self.wall_s if self.wall_s else 0.0

    @property
    def bound(self) -> float | None:
        """The most pacing allows: a channel's first message goes at once, each next one a pace later."""
        per_channel = math.ceil(self.alerts / self.channels)
        if not self.pace or per_channel <= 1:
            return None
        return self.alerts / ((per_channel - 1) * self.pace)


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    many, k, pace = args.channels, args.alerts, args.pace
    return [
        Scenario("outbox", "outbox", many, k, pace),
        Scenario("bare client", "bare", many, k, pace),
        Scenario("outbox", "outbox", many, k, 0.0),
        Scenario("bare client", "bare", many, k, 0.0),
        Scenario("bare, one session", "bare-session", many, k, 0.0),
        Scenario("outbox, one channel", "outbox", 1, args.one_channel, pace),
        Scenario("outbox, one channel", "outbox", 1, args.one_channel_unpaced, 0.0),
    ]


def enqueue(
    store: Store, rows: Sequence[Row], thresholds: dict[str, float], number: int, sc: Scenario, now: datetime
) -> tuple[str, float]:
    """`sc.alerts` new flagged items and one alert each, round robin over `sc.channels` channels, stored
    as the pipeline stores them. Returns the channels' id prefix and the seconds it took."""
    prefix = f"C{number:02d}BENCH"
    made = generate(rows, sc.alerts, thresholds, 1.0, seed=1000 + number)
    scored = [replace(s, story=s.item.id) for s in made]  # a story each: one alert each, none merged
    t0 = time.perf_counter()
    new_alerts = []
    for i, s in enumerate(scored):
        destination = f"slack:{prefix}{i % sc.channels:04d}"
        topic = s.flagged[0]
        new_alerts.append(
            Alert(alert_id(topic, destination, s.story), topic, destination, s.story, s.item.id, now)
        )
    with store.transaction() as conn:
        store.save_scored(conn, scored, {s.item.id: item_keys(s.item) for s in scored}, {}, new_alerts)
    return prefix, time.perf_counter() - t0


async def drain_outbox(
    store: Store, sc: Scenario, titles: dict[str, str], api_url: str
) -> tuple[float, int, int]:
    from bot.delivery.slack import SlackDelivery, slack_client

    delivery = SlackDelivery(
        client=slack_client(TOKEN, api_url),
        store=store,
        topic_title=lambda t: titles.get(t, t),
        clock=lambda: datetime.now(UTC),
        pace_seconds=sc.pace,
        hourly_cap=max(sc.alerts, 1),  # flood control would roll most of them up: measured elsewhere
    )
    sent = problems = 0
    t0 = time.perf_counter()
    while sent < sc.alerts:
        report = await delivery.deliver_due()
        sent += report.sent
        problems += report.retrying + report.dead + report.held
        if report.sent == 0:
            break  # nothing moved: something refused them (reported as problems)
    return time.perf_counter() - t0, sent, problems


async def post_bare(
    store: Store, sc: Scenario, titles: dict[str, str], api_url: str
) -> tuple[float, int, int]:
    """The same messages straight through slack_sdk: one task per channel, paced alike, no store writes.

    Mode `bare-session` gives the client one aiohttp session: without one (as `slack_client` makes it),
    slack_sdk opens a session, and so a connection, per call."""
    import aiohttp
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.delivery.slack import channel_of, slack_client
    from bot.render.slack import alert_message

    session = aiohttp.ClientSession() if sc.mode == "bare-session" else None
    client = (
        AsyncWebClient(token=TOKEN, base_url=api_url, timeout=15, retry_handlers=[], session=session)
        if session is not None
        else slack_client(TOKEN, api_url)
    )
    by_channel: dict[str, list[StoredAlert]] = {}
    for stored in store.pending_alerts("slack:", sc.alerts):
        by_channel.setdefault(channel_of(stored.alert.destination), []).append(stored)
    sent = problems = 0

    async def post(channel: str, queue: list[StoredAlert]) -> None:
        nonlocal sent, problems
        last: float | None = None
        for stored in queue:
            if last is not None and (wait := last + sc.pace - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            last = time.monotonic()
            try:
                await client.chat_postMessage(
                    channel=channel, **alert_message(stored, titles.get(stored.alert.topic, ""))
                )
                sent += 1
            except SlackApiError:
                problems += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(post(ch, q) for ch, q in by_channel.items()))
    wall = time.perf_counter() - t0
    if session is not None:
        await session.close()
    with store.transaction() as conn:  # out of the way of the next run
        conn.exec_driver_sql("UPDATE alerts SET status = 'sent' WHERE status = 'pending'")
    return wall, sent, problems


def deliver(db: Path, api_url: str, plan: list[Scenario]) -> None:
    """Each scenario in turn: enqueue, then drain; one `RESULT <json>` line per scenario."""
    logging.basicConfig(level=logging.ERROR, format="deliver: %(levelname)s %(name)s %(message)s")
    store = Store.open(f"sqlite:///{db}")
    topics = bench_config(db).active_topics
    titles = {t.id: t.title for t in topics}
    thresholds = {t.id: t.threshold for t in topics}
    rows = load_rows(list(thresholds))
    for number, sc in enumerate(plan):
        now = datetime.now(UTC) - timedelta(seconds=1)
        prefix, enqueue_s = enqueue(store, rows, thresholds, number, sc, now)
        run = drain_outbox if sc.mode == "outbox" else post_bare
        wall, sent, problems = asyncio.run(run(store, sc, titles, api_url))
        row = AlertRow(
            sc.name, sc.mode, sc.channels, sc.alerts, sc.pace, enqueue_s, wall, sent, problems, 0, prefix
        )
        print("RESULT " + json.dumps(asdict(row)), flush=True)
    store.close()


def run_alerts(slack: Any, db: Path, args: argparse.Namespace) -> list[AlertRow]:
    plan = scenarios(args)
    proc = start_child(
        ["--role", "deliver", "--work-db", str(db), "--plan", json.dumps([asdict(s) for s in plan])],
        slack.base_url,
    )
    assert proc.stdout is not None
    rows = []
    for line in proc.stdout:
        if line.startswith("RESULT "):
            row = AlertRow(**json.loads(line[len("RESULT ") :]))
            got = sum(len(m) for ch, m in list(slack.messages.items()) if ch.startswith(row.prefix))
            rows.append(AlertRow(**{**asdict(row), "at_fake": got}))
            print(
                f"  {row.name} ({row.channels} ch, {row.alerts} alerts, pace {row.pace:g} s): "
                f"{row.wall_s:.1f} s",
                flush=True,
            )
    if proc.wait() != 0:
        raise RuntimeError(f"the delivery child failed with exit code {proc.returncode}")
    return rows


# -- report -----------------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _ratio(before: float | None, now: float) -> str:
    return f"{before / now:.1f}" if before and now else "—"


def print_commands(rows: Sequence[CommandRow], n_items: int, saved: dict[str, Any] | None) -> None:
    like = {r.concurrency: r for r in rows if "LIKE" in r.name}
    old = {(r["name"], r["concurrency"]): r for r in (saved or {}).get("commands", [])}
    print(
        f"\n/news over HTTP, {n_items:,} stored items: signed request → reply recorded at the fake Slack's "
        "response_url (ms)"
    )
    head = (
        f"{'command':<30} {'conc':>4} {'n':>5} {'ack p50':>8} {'ack p99':>8} {'p50':>8} {'p95':>8} "
        f"{'p99':>8} {'max':>8} {'cmd/s':>7} {'results':>8} {'p50 ×LIKE':>9} {'p99 ×LIKE':>9}"
    )
    if saved is not None:
        head += f" {'p50 ×saved':>10} {'p99 ×saved':>10}"
    print(head)
    for r in rows:
        base = like.get(r.concurrency) if r.name.startswith("search (FTS5)") else None
        line = (
            f"{r.name:<30} {r.concurrency:>4} {r.n:>5} {_ms(r.ack_p50):>8} {_ms(r.ack_p99):>8} {_ms(r.p50):>8} "
            f"{_ms(r.p95):>8} {_ms(r.p99):>8} {_ms(r.max):>8} {r.per_s:>7.1f} {f'{r.results}/{r.n}':>8} "
            f"{_ratio(base.p50 if base else None, r.p50):>9} {_ratio(base.p99 if base else None, r.p99):>9}"
        )
        if saved is not None:
            prev = old.get((r.name, r.concurrency))
            line += (
                f" {_ratio(prev['p50'] if prev else None, r.p50):>10}"
                f" {_ratio(prev['p99'] if prev else None, r.p99):>10}"
            )
        print(line)
    fts = [r for r in rows if r.name.startswith("search (FTS5)")]
    if fts:
        first = min(fts, key=lambda r: r.concurrency)
        base = like.get(first.concurrency)
        print(f"\nsearch p50 by query at concurrency {first.concurrency} (ms)")
        print(f"{'/news':<62} {'FTS5':>8} {'LIKE':>8} {'×LIKE':>6}")
        for text, p50 in first.p50_by_text.items():
            slow = base.p50_by_text.get(text) if base else None
            print(f"{text:<62} {_ms(p50):>8} {_ms(slow) if slow else '—':>8} {_ratio(slow, p50):>6}")
    problems = sum(r.problems for r in rows)
    if problems:
        print(f"  warning: {problems} replies were problem or error messages, not answers")
    print(
        "results: replies with at least one item (the rest: 'nothing matches' / 'no alerts yet'); "
        "×LIKE: the LIKE scan's latency over ours (higher is better)."
    )


def print_alerts(rows: Sequence[AlertRow], n_items: int, saved: dict[str, Any] | None) -> None:
    bare = {(r.channels, r.pace): r for r in rows if r.mode == "bare"}
    old = {(r["name"], r["channels"], r["alerts"], r["pace"]): r for r in (saved or {}).get("alerts", [])}
    print(f"\nAlerts through the outbox to the fake Slack (chat.postMessage), {n_items:,}-item store")
    head = (
        f"{'run':<22} {'channels':>8} {'alerts':>7} {'pacing':>7} {'enqueue s':>9} {'wall s':>7} "
        f"{'alerts/s':>9} {'pace bound/s':>12} {'at fake':>8} {'× bare':>7}"
    )
    if saved is not None:
        head += f" {'× saved':>8}"
    print(head)
    for r in rows:
        base = bare.get((r.channels, r.pace)) if r.mode == "outbox" else None
        bound = r.bound
        line = (
            f"{r.name:<22} {r.channels:>8} {r.alerts:>7} {(f'{r.pace:g} s' if r.pace else 'off'):>7} "
            f"{r.enqueue_s:>9.2f} {r.wall_s:>7.2f} {r.per_s:>9.1f} {(f'{bound:.1f}' if bound else '—'):>12} "
            f"{r.at_fake:>8} {_ratio(r.per_s, base.per_s) if base else '—':>7}"
        )
        if saved is not None:
            prev = old.get((r.name, r.channels, r.alerts, r.pace))
            line += f" {_ratio(r.per_s, prev['per_s']) if prev else '—':>8}"
        print(line)
        if r.problems or r.sent != r.alerts:
            print(f"  warning: {r.name}: {r.sent} of {r.alerts} sent, {r.problems} retried, held or dead")
    print(
        "pace bound: the most 1 message per second per channel allows (a channel's first message goes at "
        "once); × bare: our alerts/s over a bare AsyncWebClient's posting the same messages with the same "
        "pacing and no outbox; bare, one session: the same client given one aiohttp session (slack_client "
        "gives none, so slack_sdk opens a session and a connection per call). Flood control is lifted "
        "(hourly_cap = alerts) so every alert is a message of its own."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--items", type=int, default=200_000, help="stored items (default 200,000)")
    ap.add_argument("--flagged", type=float, default=0.02, help="share of items alerted (default 0.02)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "watchfloor-bench")
    ap.add_argument("--db", type=Path, default=None, help="the store file to use (built there if missing)")
    ap.add_argument("--rebuild", action="store_true", help="build the store again even if cached")
    ap.add_argument("--requests", type=int, default=300, help="commands per row (default 300)")
    ap.add_argument("--concurrency", default="1,8", help="concurrent commands, comma separated")
    ap.add_argument("--baseline", choices=["like", "none"], default="like")
    ap.add_argument("--baseline-requests", type=int, default=24, help="commands per LIKE row")
    ap.add_argument("--alerts", type=int, default=2000)
    ap.add_argument("--channels", type=int, default=200)
    ap.add_argument("--pace", type=float, default=1.0, help="seconds between messages to one channel")
    ap.add_argument("--one-channel", type=int, default=5, help="alerts for the paced one-channel run")
    ap.add_argument("--one-channel-unpaced", type=int, default=200)
    ap.add_argument("--only", choices=["commands", "alerts"], default=None)
    ap.add_argument("--save", type=Path, default=None, help="write the figures to this JSON file")
    ap.add_argument("--compare", type=Path, default=None, help="a JSON file from an earlier --save")
    ap.add_argument("--role", choices=["serve", "deliver"], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--work-db", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--search", choices=["fts", "like"], default="fts", help=argparse.SUPPRESS)
    ap.add_argument("--plan", default="[]", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.role == "serve":
        serve(args.work_db, args.search)
        return
    if args.role == "deliver":
        deliver(args.work_db, os.environ["SLACK_API_URL"], [Scenario(**s) for s in json.loads(args.plan)])
        return

    from fakes.slack_api import FakeSlack

    saved = json.loads(args.compare.read_text()) if args.compare else None
    if saved is not None and saved.get("items") != args.items:
        print(f"note: {args.compare} was run with {saved.get('items')} items, this run with {args.items}")
    concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
    t_build = time.perf_counter()
    cached, built = cached_store(
        args.items, args.flagged, args.seed, cache_dir=args.cache_dir, db=args.db, rebuild=args.rebuild
    )
    if built is not None:
        print_build(built, time.perf_counter() - t_build)
    print(f"store: {cached}", flush=True)
    command_rows: list[CommandRow] = []
    alert_rows: list[AlertRow] = []
    with tempfile.TemporaryDirectory(prefix="watchfloor-bench-") as tmp, FakeSlack() as slack:
        db = working_copy(cached, Path(tmp))
        if args.only != "alerts":
            print("commands ...", flush=True)
            command_rows = asyncio.run(run_commands(slack, db, args, concurrencies))
        if args.only != "commands":
            print("alerts ...", flush=True)
            alert_rows = run_alerts(slack, db, args)
    if command_rows:
        print_commands(command_rows, args.items, saved)
    if alert_rows:
        print_alerts(alert_rows, args.items, saved)
    print(
        f"\nSQLite store with FTS5, {os.cpu_count()} CPUs; the app, the outbox and this process each in "
        "their own process; the fake Slack in a thread of this one."
    )
    if args.save:
        figures = {
            "items": args.items,
            "commands": [{**asdict(r), "per_s": r.per_s} for r in command_rows],
            "alerts": [{**asdict(r), "per_s": r.per_s} for r in alert_rows],
        }
        args.save.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures saved to {args.save}")


def print_build(b: BuildStats, total_s: float) -> None:
    print(
        f"built the store: {b.items:,} items ({b.flagged:,} flagged, {b.alerts:,} alerts, {b.stories:,} "
        f"stories) in {total_s:.1f} s: save_scored {b.write_s:.1f} s ({b.items / b.write_s:,.0f} items/s), "
        f"search index {b.index_s:.1f} s; {b.megabytes:.0f} MB",
        flush=True,
    )


if __name__ == "__main__":
    main()
