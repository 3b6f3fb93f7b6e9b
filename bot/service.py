"""`watchfloor run` / `worker`: the scheduler and its jobs, with config.toml reloaded live.

Jobs are plain coroutines with explicit arguments, registered with APScheduler here and nowhere else:
one polling job per source at its interval (jittered, so a thousand feeds do not fire in the same
second), the outbox delivery, and the config check. Tests call the jobs directly with a frozen clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.config import Config, ConfigError
from bot.delivery.console import deliver_to_console
from bot.delivery.messages import deliver_messages
from bot.delivery.slack import SlackDelivery, slack_client
from bot.delivery.teams import TeamsDelivery, teams_client
from bot.digest import digest_job, digest_names, digest_trigger
from bot.pipeline import PollReport, Runtime, due_sources, fetch_limits, parse_pool, poll_sources
from bot.reload import ConfigWatcher
from bot.retrain import RetrainReport, nightly_retrain, retrain_if_due
from bot.runtime import build_runtime, story_index
from bot.scoring import TopicScorer
from bot.sources.fetch import Fetcher
from bot.surge import surge_job
from bot.topic_models import load_or_train

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


# How often the feedback count and the topics' story rates are looked at.
RETRAIN_CHECK = timedelta(minutes=5)
SURGE_CHECK = timedelta(minutes=10)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Service:
    def __init__(self, config_path: Path, config: Config, clock: Clock = utcnow) -> None:
        self.clock = clock
        self.watcher = ConfigWatcher.for_file(config_path)
        self.rt: Runtime = build_runtime(config, clock())
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.fetcher = Fetcher(fetch_limits(config))
        self.parse_pool = parse_pool(config)
        self.last_refusal: ConfigError | None = None
        token = os.environ.get("SLACK_BOT_TOKEN")
        self.slack: SlackDelivery | None = None
        if token:
            self.slack = SlackDelivery(
                client=slack_client(token),
                store=self.rt.store,
                topic_title=self._topic_title,
                clock=clock,
                hourly_cap=config.slack.hourly_cap,
                rollup_delay=config.slack.rollup_delay,
            )
        # Teams destinations post to Workflows webhooks (URLs from the env vars the config names). Built
        # even when none is configured yet, so a [[teams]] entry added by a live config edit just works.
        self.teams: TeamsDelivery | None = TeamsDelivery(
            client=teams_client(),
            store=self.rt.store,
            config=lambda: self.config,
            topic_title=self._topic_title,
            clock=clock,
        )

    def _topic_title(self, topic_id: str) -> str:
        topic = self.config.topic(topic_id)
        return topic.title if topic else topic_id

    @property
    def config(self) -> Config:
        return self.rt.config

    async def __aenter__(self) -> Service:
        await self.fetcher.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await self.fetcher.__aexit__(None, None, None)
        if self.parse_pool is not None:
            self.parse_pool.shutdown(wait=False, cancel_futures=True)
        if self.teams is not None:
            await self.teams.aclose()
        if self.slack is not None:
            await self.slack.aclose()
        self.rt.store.close()

    # -- jobs --------------------------------------------------------------------------------------------

    async def poll_source(self, name: str) -> PollReport | None:
        """Poll one source if its backoff allows, then deliver what it produced."""
        now = self.clock()
        if name not in due_sources(self.config, self.rt.store.source_health(), now):
            return None
        report = await poll_sources(self.rt, self.fetcher, [name], now, parse_pool=self.parse_pool)
        if report.ingest.alerts:
            await self.deliver()
        return report

    async def poll_due(self) -> PollReport:
        """Every due source at once: `--once`, and the first cycle after start-up."""
        now = self.clock()
        names = due_sources(self.config, self.rt.store.source_health(), now)
        report = await poll_sources(self.rt, self.fetcher, names, now, parse_pool=self.parse_pool)
        log.info(
            "cycle polled=%d not_modified=%d failed=%d new=%d flagged=%d alerts=%d",
            report.polled,
            report.not_modified,
            len(report.failed),
            report.ingest.new,
            report.ingest.flagged,
            len(report.ingest.alerts),
        )
        return report

    async def deliver(self) -> int:
        """Drain the outbox: Slack destinations to Slack (to the console without a token), console ones there,
        Teams ones to their Workflows webhooks."""
        rt = self.rt

        def accept(destination: str) -> bool:
            return destination == "console" or (rt.console_fallback and destination.startswith("slack:"))

        sent = await asyncio.to_thread(deliver_to_console, rt.store, rt.config, self.clock(), None, accept)
        if self.slack is not None:
            report = await self.slack.deliver_due()
            sent += report.sent + report.found_posted
        sent += await deliver_messages(rt.store, self.clock, self.slack, accept)  # digests, surges
        if self.teams is not None:  # alerts, follow-ups, digests and surges to Teams
            teams = await self.teams.deliver_due()
            sent += teams.sent + teams.messages
        return sent

    async def digest(self, name: str) -> bool:
        """Queue digest `name` (see `digest_names`) for its latest fire time, then send it; True when
        queued now. A re-run, or another worker at the same fire time, queues nothing more."""
        found = digest_names(self.config).get(name)
        if found is None:
            return False
        queued = await asyncio.to_thread(digest_job, self.rt.store, self.config, found, self.clock())
        if queued:
            await self.deliver()
        return queued

    async def surge(self) -> int:
        """Queue surge notices for topics far above their usual rate, then send them."""
        rt = self.rt
        queued = await asyncio.to_thread(surge_job, rt.store, rt.config, rt.destinations(), self.clock())
        if queued:
            await self.deliver()
        return queued

    async def retrain_due(self) -> RetrainReport | None:
        """Retrain topics with `learning.retrain_after` new feedback clicks (off the event loop)."""
        return await asyncio.to_thread(retrain_if_due, self.rt, self.clock())

    async def retrain_nightly(self) -> RetrainReport:
        return await asyncio.to_thread(nightly_retrain, self.rt, self.clock())

    async def check_config(self) -> Config | ConfigError | None:
        """Apply an edited config.toml, or refuse it with the reasons and keep the running one."""
        result = self.watcher.poll()
        if result is None:
            return None
        if isinstance(result, ConfigError):
            self.last_refusal = result
            log.error("config edit refused, the running config stays in force:\n%s", result.report())
            return result
        await self.apply(result)
        return result

    async def apply(self, new: Config) -> None:
        old = self.config
        # Training can take seconds: off the event loop, and the running topics keep scoring meanwhile.
        models = await asyncio.to_thread(load_or_train, new, self.rt.store)
        scorer = TopicScorer(models, new.active_topics)
        with self.rt.lock:
            self.rt.config = new
            self.rt.scorer = scorer
            if new.stories != old.stories:
                self.rt.stories = story_index(new)
        self.rt.store.ensure_sources([(s.name, s.url) for s in new.sources])
        if new.fetch != old.fetch:
            old_fetcher, self.fetcher = self.fetcher, Fetcher(fetch_limits(new))
            await self.fetcher.__aenter__()
            await old_fetcher.__aexit__(None, None, None)
        self.last_refusal = None
        if self.slack is not None:
            self.slack.hourly_cap = new.slack.hourly_cap
            self.slack.rollup_delay = new.slack.rollup_delay
        self.schedule()
        log.info(
            "config reloaded topics=%s sources=%d",
            ",".join(t.id for t in new.active_topics),
            len(new.sources),
        )

    # -- scheduling --------------------------------------------------------------------------------------

    def schedule(self) -> None:
        """Make the scheduler's jobs match the config: add, re-time and remove polling jobs."""
        config = self.config
        jitter = int(config.schedule.jitter.total_seconds())
        wanted = set()
        for source in config.sources:
            if not source.enabled:
                continue
            job_id = f"poll:{source.name}"
            wanted.add(job_id)
            seconds = max(1, int(config.interval(source).total_seconds()))
            existing = self.scheduler.get_job(job_id)
            trigger = IntervalTrigger(seconds=seconds, jitter=jitter or None, timezone=UTC)
            if existing is not None and getattr(existing.trigger, "interval", None) == timedelta(
                seconds=seconds
            ):
                continue
            self.scheduler.add_job(
                self.poll_source,
                trigger,
                args=[source.name],
                id=job_id,
                name=f"poll {source.name}",
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=seconds,
            )
        for job in self.scheduler.get_jobs():
            if job.id.startswith("poll:") and job.id not in wanted:
                job.remove()
        self._schedule_digests(config)
        self.scheduler.add_job(
            self.retrain_nightly,
            CronTrigger.from_crontab(config.learning.nightly, timezone=UTC),
            id="retrain:nightly",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=3600,
        )
        for job_id, func, every in (
            ("deliver", self.deliver, config.schedule.delivery_interval),
            ("config", self.check_config, config.schedule.config_check),
            # Cheap when nothing is due (counting queries): often enough that a few 👎 soon count.
            ("retrain:due", self.retrain_due, RETRAIN_CHECK),
            ("surge", self.surge, SURGE_CHECK),
        ):
            self.scheduler.add_job(
                func,
                IntervalTrigger(seconds=max(1, int(every.total_seconds())), timezone=UTC),
                id=job_id,
                replace_existing=True,
                coalesce=True,
                max_instances=1,
            )

    def _schedule_digests(self, config: Config) -> None:
        """One cron job per digest, `digest:<destination>`, in the digest's own time zone; re-made when
        its schedule changes, removed when it leaves the config."""
        digests = digest_names(config)
        for name, digest in digests.items():
            trigger = digest_trigger(digest)
            existing = self.scheduler.get_job(f"digest:{name}")
            if existing is not None and repr(existing.trigger) == repr(trigger):
                continue  # unchanged: keep its next run time
            self.scheduler.add_job(
                self.digest,
                trigger,
                args=[name],
                id=f"digest:{name}",
                name=f"digest {name}",
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=3600,  # late is fine: the digest is keyed by its fire time
            )
        for job in self.scheduler.get_jobs():
            if job.id.startswith("digest:") and job.id.removeprefix("digest:") not in digests:
                job.remove()

    def poll_jobs(self) -> dict[str, timedelta]:
        """Source name → polling interval, as scheduled (for tests and `status`)."""
        return {
            job.id.removeprefix("poll:"): job.trigger.interval
            for job in self.scheduler.get_jobs()
            if job.id.startswith("poll:")
        }


async def start_socket_mode(service: Service) -> Any | None:
    """With `SLACK_APP_TOKEN` set, the Slack app joins the scheduler in this process over Socket Mode
    (a WebSocket Slack opens no port for): `watchfloor run` on a laptop or behind a firewall."""
    app_token = os.environ.get("SLACK_APP_TOKEN")
    if not app_token:
        return None
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from bot.app import Deps, build_app

    def versions() -> dict[str, str]:
        scorer = service.rt.scorer
        return {tid: scorer.models.fingerprint(tid)[:12] for tid in scorer.topic_ids}

    deps = Deps(
        store=service.rt.store,
        config=lambda: service.config,
        clock=service.clock,
        scorer=lambda: service.rt.scorer,
        model_versions=versions,
    )
    handler = AsyncSocketModeHandler(build_app(service.config, deps), app_token)
    await handler.connect_async()
    log.info("slack socket mode connected")
    return handler


async def _serve_forever(service: Service) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # non-Unix loops lack signal handlers
            loop.add_signal_handler(sig, stop.set)
    socket = await start_socket_mode(service)
    service.schedule()
    service.scheduler.start()
    await service.poll_due()
    await service.deliver()
    log.info(
        "watchfloor running: %d sources, %d topics; Ctrl-C stops",
        len(service.config.sources),
        len(service.config.active_topics),
    )
    await stop.wait()
    if socket is not None:
        await socket.close_async()


def run_service(config_path: Path, once: bool = False) -> int:
    from bot.config import load_config

    config = load_config(config_path)

    async def main() -> None:
        async with Service(config_path, config) as service:
            if once:
                await service.poll_due()
                await service.deliver()
            else:
                await _serve_forever(service)

    asyncio.run(main())
    return 0
