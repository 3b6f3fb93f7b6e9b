"""Outbox delivery to Slack: at least once on the wire, exactly once in the channel.

    due alerts | group by channel (order kept) | look first if a send was uncertain | post | record ts

- Retries: network errors and 5xx back off exponentially with jitter; 429 waits its `Retry-After`
  without counting against the alert. slack_sdk's own retry handlers are switched off: they sleep inside
  the call, and the outbox already knows when to come back, without holding anything up meanwhile.
- Order per channel: a channel's alerts go out in order; when one must wait, the ones behind it wait too.
- Pacing: at most one message per second per channel (Slack's posting guidance).
- Exactly once: the alert is marked *uncertain* before the call and *sent* after; each message carries its
  alert id in Slack message `metadata`. If the process dies or the call times out in between, the next
  attempt reads the channel's history for that id before posting again.
- Dead letters: an alert Slack refuses for good (bad blocks, archived channel) or that keeps failing past
  `RetryPolicy.max_attempts` is marked dead, kept, and shown by status.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.flood import due_rollups, hourly_cap
from bot.render.slack import (
    EVENT_ALERT,
    alert_message,
    flood_rollup_message,
    followup_message,
    sources_line_update,
)
from bot.store import Store, StoredAlert

log = logging.getLogger(__name__)

# Errors that will not go away by asking again: the message or the channel is wrong.
PERMANENT_ERRORS = frozenset(
    {
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "invalid_arguments",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "metadata_too_large",
        "channel_not_found",
        "is_archived",
        "too_many_attachments",
    }
)
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base: timedelta = timedelta(seconds=15)
    cap: timedelta = timedelta(minutes=30)
    # ~12 attempts reach the cap after about an hour and keep trying for several more: an hour-long Slack
    # outage must not turn alerts into dead letters.
    max_attempts: int = 20

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        """Exponential backoff with jitter (half to full of the exponential delay)."""
        exp = min(self.cap, self.base * (2 ** min(attempts, 20)))
        return exp * rng.uniform(0.5, 1.0)


@dataclass
class DeliveryReport:
    followups: int = 0
    held: int = 0
    rolled_up: int = 0
    sent: int = 0
    found_posted: int = 0
    retrying: int = 0
    dead: int = 0


def slack_client(token: str, base_url: str | None = None, timeout: int = 15) -> AsyncWebClient:
    """The Web API client: `SLACK_API_URL` (proxies, tests) overrides Slack's address."""
    url = base_url or os.environ.get("SLACK_API_URL") or AsyncWebClient.BASE_URL
    if not url.endswith("/"):
        url += "/"
    return AsyncWebClient(token=token, base_url=url, timeout=timeout, retry_handlers=[])


def channel_of(destination: str) -> str:
    """`slack:#dprk-watch` → `#dprk-watch`; `slack:C0123ABCD` → `C0123ABCD`."""
    return destination.split(":", 1)[1]


@dataclass
class SlackDelivery:
    client: AsyncWebClient
    store: Store
    topic_title: Callable[[str], str]
    clock: Callable[[], datetime]
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    pace_seconds: float = 1.0
    hourly_cap: int = 10
    rollup_delay: timedelta = timedelta(minutes=10)
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    monotonic: Callable[[], float] = time.monotonic
    _last_post: dict[str, float] = field(default_factory=dict)
    _channel_ids: dict[str, str] = field(default_factory=dict)
    _session: aiohttp.ClientSession | None = None
    _session_loop: asyncio.AbstractEventLoop | None = None

    def keep_alive(self) -> None:
        """One HTTP session for every call: slack_sdk opens a connection (and a TLS handshake) per request
        when it has none (bench/slack.py: 1.4x the messages per second with one). Made on first use in the
        running event loop, since a session belongs to its loop."""
        loop = asyncio.get_running_loop()
        if self._session is not None and self._session_loop is loop and not self._session.closed:
            return
        if self.client.session is not None and self._session is None:
            return  # the caller gave the client a session of its own
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.client.timeout))
        self._session_loop = loop
        self.client.session = self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self.client.session = None
            self._session = None

    async def deliver_due(self, limit: int = 500) -> DeliveryReport:
        self.keep_alive()
        report = DeliveryReport()
        now = self.clock()
        self.store.set_aside_muted(now)  # alerts to a muted topic/destination are never sent
        by_channel: dict[str, list[StoredAlert]] = {}
        for stored in self.store.pending_alerts("slack:", limit):
            by_channel.setdefault(channel_of(stored.alert.destination), []).append(stored)
        # A channel whose oldest alert waits for its retry waits whole: order per channel is kept.
        by_channel = {
            ch: queue
            for ch, queue in by_channel.items()
            if queue[0].next_attempt is None or queue[0].next_attempt <= now
        }
        await asyncio.gather(
            *(self._deliver_channel(ch, alerts, report) for ch, alerts in by_channel.items())
        )
        await self._send_rollups(now, report)
        await self._deliver_followups(now, report)
        return report

    async def _deliver_followups(self, now: datetime, report: DeliveryReport) -> None:
        """Later reports of an alerted story: a reply in the alert's thread, then the parent's
        "N sources" line brought up to date with chat.update."""
        for followup in self.store.pending_followups("slack:"):
            if followup.next_attempt > now or not followup.parent.remote_ref:
                continue
            channel_id, _, thread_ts = followup.parent.remote_ref.partition(":")
            try:
                if followup.uncertain and await self._reply_posted(channel_id, thread_ts, followup.id):
                    self.store.settle_followup(
                        followup.id, sent_at=self.clock(), remote_ref=followup.parent.remote_ref
                    )
                    report.followups += 1
                    continue
                await self._pace(channel_id)
                self.store.mark_followup_uncertain(followup.id)
                message = followup_message(
                    followup.parent, followup.reports, thread_ts=thread_ts, batch_id=followup.id
                )
                response = await self.client.chat_postMessage(channel=channel_id, **message)
            except SlackApiError as exc:
                status = exc.response.status_code
                error = str(exc.response.get("error") or f"HTTP {status}")
                if status == 429:
                    retry: datetime | None = self.clock() + timedelta(
                        seconds=_retry_after(exc.response.headers)
                    )
                elif error in PERMANENT_ERRORS or followup.attempts + 1 >= self.policy.max_attempts:
                    retry = None
                else:
                    retry = self.clock() + self.policy.delay(followup.attempts + 1, self.rng)
                self.store.settle_followup(
                    followup.id, error=f"Slack error: {error}", retry_at=retry, uncertain=status >= 500
                )
                continue
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                retry = self.clock() + self.policy.delay(followup.attempts + 1, self.rng)
                self.store.settle_followup(
                    followup.id, error=f"network: {_describe(exc)}", retry_at=retry, uncertain=True
                )
                continue
            self.store.settle_followup(
                followup.id, sent_at=self.clock(), remote_ref=f"{channel_id}:{response.get('ts')}"
            )
            report.followups += 1
            await self._update_sources_line(followup.parent, channel_id, thread_ts)

    async def _update_sources_line(self, parent: StoredAlert, channel_id: str, ts: str) -> None:
        # Best effort: the thread already carries the news; a stale count is not worth a retry loop.
        sources = self.store.story_sources(parent.alert.story)
        fresh = replace(parent, n_sources=max(parent.n_sources, len(sources)))
        others = [s for s in sources if s != parent.source]
        try:
            await self.client.chat_update(
                channel=channel_id,
                **sources_line_update(
                    fresh, self.topic_title(parent.alert.topic), ts=ts, extra_sources=others
                ),
            )
        except (SlackApiError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("alert=%s sources line not updated: %s", parent.alert.id, _describe(exc))

    async def _reply_posted(self, channel_id: str, thread_ts: str, batch_id: str) -> bool:
        page = await self.client.conversations_replies(
            channel=channel_id, ts=thread_ts, include_all_metadata=True, limit=200
        )
        for message in page.get("messages") or []:
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("batch") == batch_id:
                return True
        return False

    async def _deliver_channel(self, channel: str, queue: list[StoredAlert], report: DeliveryReport) -> None:
        cap = hourly_cap(self.store, self.clock(), self.hourly_cap)
        for stored in queue:
            if cap.holds(stored.alert):
                self.store.hold_alert(stored.alert.id)
                report.held += 1
                continue
            if not await self._deliver_one(channel, stored, report):
                return  # it waits, so the alerts behind it wait: order per channel is kept
            cap.count(stored.alert)

    async def _send_rollups(self, now: datetime, report: DeliveryReport) -> None:
        """One "N more stories on <topic>" per topic and channel, once its held stories have gathered for
        `rollup_delay`, and at most one an hour (the rules live in `bot.delivery.flood`)."""
        for rollup in due_rollups(self.store, "slack:", now, self.rollup_delay):
            topic, held = rollup.topic, rollup.held
            channel = channel_of(rollup.destination)
            await self._pace(channel)
            try:
                response = await self.client.chat_postMessage(
                    channel=channel, **flood_rollup_message(self.topic_title(topic), held)
                )
            except (SlackApiError, aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.warning(
                    "rollup topic=%s channel=%s failed, kept for the next run: %s",
                    topic,
                    channel,
                    _describe(exc),
                )
                continue
            self.store.mark_rolled_up(
                [h.alert.id for h in held],
                self.clock(),
                f"{response.get('channel') or channel}:{response.get('ts')}",
            )
            report.rolled_up += len(held)

    async def _pace(self, channel: str) -> None:
        last = self._last_post.get(channel)
        if last is not None:
            wait = last + self.pace_seconds - self.monotonic()
            if wait > 0:
                await self.sleep(wait)
        self._last_post[channel] = self.monotonic()

    async def _deliver_one(self, channel: str, stored: StoredAlert, report: DeliveryReport) -> bool:
        """True when the alert is settled (sent, found, or dead); False when it must wait for a retry."""
        alert_id = stored.alert.id
        if stored.uncertain:
            try:
                ref = await self._find_posted(channel, stored)
            except (SlackApiError, aiohttp.ClientError, TimeoutError, OSError) as exc:
                return self._retry(stored, f"history check failed: {_describe(exc)}", report, uncertain=True)
            if ref is not None:
                self.store.mark_sent(alert_id, self.clock(), ref)
                report.found_posted += 1
                log.info("alert=%s channel=%s already posted ref=%s", alert_id, channel, ref)
                return True
        await self._pace(channel)
        message = alert_message(stored, self.topic_title(stored.alert.topic))
        self.store.mark_uncertain(alert_id)
        try:
            response = await self.client.chat_postMessage(channel=channel, **message)
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error") or f"HTTP {status}")
            if status == 429:
                retry_after = _retry_after(exc.response.headers)
                self.store.mark_failed(
                    alert_id, "rate limited (429)", self.clock() + timedelta(seconds=retry_after), count=False
                )
                report.retrying += 1
                log.warning("alert=%s channel=%s status=429 retry_after=%ss", alert_id, channel, retry_after)
                return False
            if error in PERMANENT_ERRORS:
                self.store.mark_failed(alert_id, f"Slack refused: {error}", None)
                report.dead += 1
                log.error("alert=%s channel=%s dead error=%s", alert_id, channel, error)
                return True
            # A 5xx may have posted before failing; anything else did not.
            return self._retry(stored, f"Slack error: {error}", report, uncertain=status >= 500)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return self._retry(stored, f"network: {_describe(exc)}", report, uncertain=True)
        ref = f"{response.get('channel') or channel}:{response.get('ts')}"
        if response.get("channel"):
            self._channel_ids[channel] = str(response["channel"])
        self.store.mark_sent(alert_id, self.clock(), ref)
        report.sent += 1
        return True

    def _retry(self, stored: StoredAlert, error: str, report: DeliveryReport, *, uncertain: bool) -> bool:
        attempts = stored.attempts + 1
        if attempts >= self.policy.max_attempts:
            self.store.mark_failed(stored.alert.id, f"{error} (gave up after {attempts} attempts)", None)
            report.dead += 1
            log.error("alert=%s dead after attempts=%d error=%s", stored.alert.id, attempts, error)
            return True
        retry_at = self.clock() + self.policy.delay(attempts, self.rng)
        self.store.mark_failed(stored.alert.id, error, retry_at, uncertain=uncertain)
        report.retrying += 1
        log.warning(
            "alert=%s retry_at=%s attempts=%d error=%s",
            stored.alert.id,
            retry_at.isoformat(),
            attempts,
            error,
        )
        return False

    async def _channel_id(self, channel: str) -> str | None:
        return await resolve_channel_id(self.client, channel, self._channel_ids)

    async def _find_posted(self, channel: str, stored: StoredAlert) -> str | None:
        """The `channel:ts` of a message already carrying this alert's id, if the last send got through."""

        def ours(meta: dict[str, Any]) -> bool:
            payload = meta.get("event_payload") or {}
            return meta.get("event_type") == EVENT_ALERT and payload.get("alert_id") == stored.alert.id

        return await find_in_history(self.client, channel, self._channel_ids, stored.alert.created, ours)


async def find_in_history(
    client: AsyncWebClient,
    channel: str,
    channel_ids: dict[str, str],
    created: datetime,
    ours: Callable[[dict[str, Any]], bool],
) -> str | None:
    """The `channel:ts` of a message posted since shortly before `created` whose Slack message metadata
    `ours` recognises: how a send of uncertain outcome is looked for before posting again."""
    channel_id = await resolve_channel_id(client, channel, channel_ids)
    if channel_id is None:
        return None
    oldest = (created - timedelta(minutes=5)).timestamp()
    cursor = None
    for _ in range(10):
        page = await client.conversations_history(
            channel=channel_id,
            oldest=f"{oldest:.6f}",
            limit=200,
            include_all_metadata=True,
            cursor=cursor,
        )
        for message in page.get("messages") or []:
            if ours(message.get("metadata") or {}):
                return f"{channel_id}:{message.get('ts')}"
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            break
    return None


async def resolve_channel_id(client: AsyncWebClient, channel: str, cache: dict[str, str]) -> str | None:
    """The id of `#name` (history needs ids; chat.postMessage takes either), from `cache` or by listing
    the channels; None when no channel has that name."""
    if CHANNEL_ID.match(channel):
        return channel
    if channel in cache:
        return cache[channel]
    name = channel.lstrip("#")
    cursor = None
    for _ in range(50):  # pages of 200: 10,000 channels is plenty
        page = await client.conversations_list(
            limit=200, cursor=cursor, exclude_archived=True, types="public_channel,private_channel"
        )
        for ch in page.get("channels") or []:
            if ch.get("name") == name:
                cache[channel] = str(ch["id"])
                return str(ch["id"])
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            break
    return None


def _retry_after(headers: Any) -> int:
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
        return max(1, int(value))
    except (TypeError, ValueError):
        return 30


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
