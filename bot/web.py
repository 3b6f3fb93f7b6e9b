"""`watchfloor serve`: the HTTP side of Watchfloor (the Slack app's endpoint, Teams feedback links, health
and metrics), an ASGI app for uvicorn on `$PORT` (default 3000).

Routes:
- `POST /slack/events`: slash commands, interactivity and Events API, all verified and dispatched by Bolt
  (`AsyncSlackRequestHandler`): a bad signature or a timestamp older than 5 minutes gets 401. Only when
  Slack is configured (`SLACK_BOT_TOKEN` and `SLACK_SIGNING_SECRET`); a Teams-only deployment sets neither,
  and serves the routes below alone (404 here).
- `GET /healthz`: 200 `{"status": "ok", "db": "ok"}` when the database answers, else 503.
- `GET /metrics`: Prometheus text: items, alerts by status, outbox depth per destination, sources failing.
- `GET|POST /feedback/<token>`: a Teams card's Relevant / Not relevant link (`bot.feedback_page`): GET shows
  a confirmation page, only its form's POST records (link previewers must not vote).

The scheduler does not run here (`watchfloor worker` does); this process only reads the store, so several
can run behind a load balancer. Entry point for the CLI: `run_web(config_path, port)`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from slack_bolt.adapter.asgi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp

from bot import feedback_page, queries
from bot.app import Deps, Explainer, SlackSetupError, build_app, slack_credentials, slack_missing, utcnow
from bot.config import Config, ConfigError, config_path, load_config
from bot.reload import ConfigWatcher
from bot.store import Store

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

SLACK_PATH = "/slack/events"
DEFAULT_PORT = 3000


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text(m: queries.Metrics) -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    lines = [
        "# HELP watchfloor_items Stored news items.",
        "# TYPE watchfloor_items gauge",
        f"watchfloor_items {m.items}",
        "# HELP watchfloor_alerts Alerts in the outbox by status (pending, sent, dead).",
        "# TYPE watchfloor_alerts gauge",
    ]
    for status in sorted({"pending", "sent", "dead", *m.alerts_by_status}):
        lines.append(f'watchfloor_alerts{{status="{_label(status)}"}} {m.alerts_by_status.get(status, 0)}')
    lines += [
        "# HELP watchfloor_outbox_depth Pending alerts per destination.",
        "# TYPE watchfloor_outbox_depth gauge",
    ]
    lines += [f'watchfloor_outbox_depth{{destination="{_label(d)}"}} {n}' for d, n in m.outbox.items()]
    lines += [
        "# HELP watchfloor_sources Known sources.",
        "# TYPE watchfloor_sources gauge",
        f"watchfloor_sources {m.sources}",
        "# HELP watchfloor_sources_failing Sources whose last fetch failed.",
        "# TYPE watchfloor_sources_failing gauge",
        f"watchfloor_sources_failing {m.sources_failing}",
    ]
    return "\n".join(lines) + "\n"


class WebApp:
    """The ASGI callable: health, metrics and Teams feedback pages here, everything else to Bolt's handler
    (or 404 when `bolt` is None: Slack is not configured)."""

    def __init__(
        self,
        bolt: AsyncApp | None,
        store: Store,
        on_shutdown: Callable[[], None] | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        config: Callable[[], Config] | None = None,
    ) -> None:
        self.bolt = bolt
        self.store = store
        self.slack = AsyncSlackRequestHandler(bolt, SLACK_PATH) if bolt is not None else None
        self.on_shutdown = on_shutdown
        self.clock = clock
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise TypeError(f"unsupported ASGI scope type {scope['type']!r}")
        path, method = scope["path"], scope["method"]
        if path == "/healthz" and method in ("GET", "HEAD"):
            await self._healthz(send)
        elif path == "/metrics" and method in ("GET", "HEAD"):
            await self._metrics(send)
        elif feedback_page.is_feedback_path(path) and method in feedback_page.METHODS:
            await self._feedback(path, method, send)
        elif self.slack is not None:
            await self.slack(scope, receive, send)  # type: ignore[arg-type]
        else:
            await _send(send, 404, b"not found\n", "text/plain; charset=utf-8")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.on_shutdown is not None:
                    self.on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _healthz(self, send: Send) -> None:
        try:
            await asyncio.to_thread(queries.database_ok, self.store)
        except Exception as exc:
            log.warning("healthz database unavailable error=%s", exc)
            body = {"status": "error", "db": f"unavailable: {type(exc).__name__}"}
            await _send(send, 503, json.dumps(body).encode(), "application/json")
            return
        await _send(send, 200, json.dumps({"status": "ok", "db": "ok"}).encode(), "application/json")

    async def _metrics(self, send: Send) -> None:
        try:
            m = await asyncio.to_thread(queries.metrics, self.store)
        except Exception as exc:
            log.warning("metrics unavailable error=%s", exc)
            await _send(send, 503, b"database unavailable\n", "text/plain; charset=utf-8")
            return
        await _send(send, 200, metrics_text(m).encode(), "text/plain; version=0.0.4; charset=utf-8")

    async def _feedback(self, path: str, method: str, send: Send) -> None:
        def topic_title(topic_id: str) -> str:
            topic = self.config().topic(topic_id) if self.config else None
            return topic.title if topic else topic_id

        try:
            page = await asyncio.to_thread(
                feedback_page.answer, self.store, path, method, self.clock(), topic_title
            )
        except Exception:
            log.exception("feedback link failed method=%s", method)
            page = feedback_page.PageAnswer(
                500, "<!doctype html><p>Something went wrong; nothing was recorded."
            )
        await _send(send, page.status, page.html.encode(), "text/html; charset=utf-8", feedback_page.HEADERS)


async def _send(
    send: Send, status: int, body: bytes, content_type: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def teams_destinations(config: Config) -> list[str]:
    """The `teams:<name>` destinations config.toml routes to, topics then digests, each once. Disabled
    topics count: the cards they already posted carry feedback links that stay valid for days."""
    found = [d for t in config.topics for d in t.destinations] + [d.destination for d in config.digests]
    return list(dict.fromkeys(d for d in found if d.startswith("teams:")))


def create_asgi(config: Config, deps: Deps, on_shutdown: Callable[[], None] | None = None) -> WebApp:
    """The ASGI app for `config` and `deps`: with the Slack endpoint when Slack is configured, without it
    when neither Slack variable is set but config.toml routes to Teams (whose feedback links this server
    answers). SlackSetupError when one Slack variable is set without the other, or when neither Slack nor
    Teams is configured (the message then names `SLACK_BOT_TOKEN`, as it always has)."""
    credentials = slack_credentials()
    bolt = None
    if credentials is not None:
        bolt = build_app(config, deps, credentials)
    else:
        teams = teams_destinations(config)
        if not teams:
            raise slack_missing("SLACK_BOT_TOKEN")
        log.info(
            "slack not configured (SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET unset): serving Teams feedback "
            "links, /healthz and /metrics without %s teams=%s",
            SLACK_PATH,
            ",".join(teams),
        )
    return WebApp(bolt, deps.store, on_shutdown, clock=deps.clock, config=deps.config)


# -- the production wiring: live config, models loaded in the background ----------------------------------


class LiveConfig:
    """config.toml re-read when it changes (checked at most every `schedule.config_check`); a broken edit
    is logged and the last good config kept, as the worker does."""

    def __init__(self, path: Path, config: Config) -> None:
        self.watcher = ConfigWatcher.for_file(path)
        self.current = config
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self) -> Config:
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= self.current.schedule.config_check.total_seconds():
                self._checked = now
                found = self.watcher.poll()
                if isinstance(found, ConfigError):
                    log.warning("config edit refused, keeping the last good one: %s", found)
                elif found is not None:
                    log.info("config reloaded path=%s", self.watcher.path)
                    self.current = found
            return self.current


class BackgroundScorer:
    """The topic models for `explain`, loaded (or trained) in a thread so no request waits for them:
    until they are ready `explain` shows the stored scores."""

    def __init__(self, config: Callable[[], Config], store: Store | None = None) -> None:
        self.config = config
        self.store = store  # its feedback labels train the models, as in the worker
        self._loaded_for: Config | None = None
        self._scorer: Any = None
        self._loading: Config | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Explainer | None:
        config = self.config()
        with self._lock:
            if self._loaded_for is not config and self._loading is not config:
                self._loading = config
                threading.Thread(target=self._load, args=(config,), name="models", daemon=True).start()
            return self._scorer

    def _load(self, config: Config) -> None:
        from bot.scoring import TopicScorer
        from bot.topic_models import load_or_train

        try:
            scorer = TopicScorer(load_or_train(config, self.store), config.active_topics)
        except Exception:
            log.exception("models could not be loaded for explain; stored scores are shown")
            return
        with self._lock:
            self._scorer, self._loaded_for = scorer, config

    def versions(self) -> dict[str, str]:
        scorer = self._scorer
        if scorer is None:
            return {}
        return {tid: scorer.models.fingerprint(tid)[:12] for tid in scorer.topic_ids}


def web_deps(path: Path, config: Config, store: Store) -> Deps:
    live = LiveConfig(path, config)
    scorer = BackgroundScorer(live, store)
    return Deps(store=store, config=live, scorer=scorer, model_versions=scorer.versions)


def run_web(config_file: str | Path | None = None, port: int | None = None, host: str = "0.0.0.0") -> int:
    """`watchfloor serve`: load the config, open the store, serve until interrupted. Returns an exit code.

    `port` defaults to `$PORT`, else 3000 (Heroku-style platforms set `PORT`)."""
    import uvicorn

    path = config_path(config_file)
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return 2
    port = port or int(os.environ.get("PORT") or DEFAULT_PORT)
    store = Store.open(config.database_url())
    deps = web_deps(path, config, store)
    try:
        app = create_asgi(config, deps, on_shutdown=store.close)
    except SlackSetupError as exc:
        store.close()
        print(f"watchfloor serve: {exc}", file=sys.stderr)
        return 2
    if app.bolt is not None:
        deps.scorer()  # start loading the models now, in the background, so `status` can name them early
        log.info("serving Slack endpoint host=%s port=%s path=%s", host, port, SLACK_PATH)
    else:  # no Slack: nothing here explains scores or shows status, so the models are not loaded
        log.info("serving Teams feedback links host=%s port=%s", host, port)
    uvicorn.run(app, host=host, port=port, lifespan="on", log_level="info", proxy_headers=True)
    return 0
