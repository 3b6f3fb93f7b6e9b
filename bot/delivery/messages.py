"""Delivery of the messages outbox (digests, surge notices) to Slack and the console.

    pending messages of slack: destinations | per destination, in order | uncertain? look in the history
        | render by kind | post | record ts

The same guarantees as alerts (`bot/delivery/slack.py`, whose client, `RetryPolicy`, channel lookup and
error sets this module uses): at least once on the wire, exactly once in the channel.
- A message is marked *uncertain* before the call and *sent* after; each carries its outbox id in Slack
  message `metadata` (`event_payload.message_id`). After a timeout, a 5xx or a crash in between, the next
  attempt reads the channel's history for that id before posting again.
- 429 waits its `Retry-After` without counting against the message; 5xx and network errors back off
  exponentially with jitter; an error that will not go away (bad blocks, archived channel, a kind with no
  renderer) or too many attempts make it a dead letter, kept and shown by status.
- A destination's messages go out in order: when one must wait, the ones behind it wait too.

Console destinations (and Slack ones when there is no Slack token) print and are marked sent at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TextIO

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery.slack import (
    PERMANENT_ERRORS,
    RetryPolicy,
    SlackDelivery,
    _describe,
    _retry_after,
    channel_of,
    find_in_history,
)
from bot.notices import Digest, Surge
from bot.outbox_messages import (
    StoredMessage,
    mark_message_failed,
    mark_message_sent,
    mark_message_uncertain,
    pending_messages,
)
from bot.store import Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Pace = Callable[[str], Awaitable[None]]


class Unrenderable(ValueError):
    """A queued message no renderer can show (an unknown kind, a payload that does not parse): retrying
    cannot help, so it becomes a dead letter with this reason."""


@dataclass
class MessageReport:
    sent: int = 0
    found_posted: int = 0
    retrying: int = 0
    dead: int = 0


# -- rendering by kind ----------------------------------------------------------------------------------------


def slack_message(message: StoredMessage) -> dict[str, Any]:
    """`chat.postMessage` arguments (minus `channel`) for a queued message, its outbox id in the metadata."""
    try:
        if message.kind == "digest":
            from bot.render.slack_digest import digest_message

            rendered = digest_message(Digest.from_payload(message.payload))
        elif message.kind == "surge":
            # Imported here: surge rendering is its own module and a digest must not depend on it.
            from bot.render.slack_surge import surge_message

            rendered = surge_message(Surge.from_payload(message.payload))
        else:
            raise Unrenderable(f"no Slack rendering for messages of kind {message.kind!r}")
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, Unrenderable):
            raise
        raise Unrenderable(f"payload of {message.kind} message unreadable: {_describe(exc)}") from exc
    metadata = rendered.get("metadata") or {"event_type": f"watchfloor_{message.kind}", "event_payload": {}}
    payload = {**(metadata.get("event_payload") or {}), "message_id": message.id, "kind": message.kind}
    return {**rendered, "metadata": {"event_type": metadata["event_type"], "event_payload": payload}}


def console_text(message: StoredMessage) -> str:
    try:
        if message.kind == "digest":
            from bot.render.console_digest import render_digest

            return render_digest(Digest.from_payload(message.payload))
        if message.kind == "surge":
            from bot.render.console_surge import render_surge

            return render_surge(Surge.from_payload(message.payload), message.destination)
    except (KeyError, TypeError, ValueError) as exc:
        raise Unrenderable(f"payload of {message.kind} message unreadable: {_describe(exc)}") from exc
    raise Unrenderable(f"no console rendering for messages of kind {message.kind!r}")


# -- console ------------------------------------------------------------------------------------------------


def deliver_console_messages(
    store: Store,
    now: datetime,
    out: TextIO | None = None,
    accept: Callable[[str], bool] | None = None,
) -> int:
    """Print every pending message whose destination `accept`s console delivery and mark it sent; return
    how many were printed."""
    stream = out or sys.stdout
    printed = 0
    for message in pending_messages(store, ""):
        if accept is not None and not accept(message.destination):
            continue
        try:
            text = console_text(message)
        except Unrenderable as exc:
            mark_message_failed(store, message.id, str(exc), None)
            continue
        print(text, file=stream)
        print(file=stream)
        mark_message_sent(store, message.id, now, remote_ref="console")
        printed += 1
    return printed


# -- Slack --------------------------------------------------------------------------------------------------


@dataclass
class _SlackSender:
    store: Store
    client: AsyncWebClient
    clock: Clock
    policy: RetryPolicy
    rng: random.Random
    channel_ids: dict[str, str]
    pace: Pace | None
    report: MessageReport

    async def destination(self, queue: list[StoredMessage]) -> None:
        for message in queue:
            if not await self.one(message):
                return  # it waits, so the messages behind it wait: order per destination is kept

    async def one(self, message: StoredMessage) -> bool:
        """True when the message is settled (sent, found, or dead); False when it must wait for a retry."""
        channel = channel_of(message.destination)
        if message.uncertain:
            try:
                ref = await self.find_posted(channel, message)
            except (SlackApiError, aiohttp.ClientError, TimeoutError, OSError) as exc:
                return self.retry(message, f"history check failed: {_describe(exc)}", uncertain=True)
            if ref is not None:
                mark_message_sent(self.store, message.id, self.clock(), ref)
                self.report.found_posted += 1
                log.info(
                    "message=%s kind=%s channel=%s already posted ref=%s",
                    message.id,
                    message.kind,
                    channel,
                    ref,
                )
                return True
        try:
            body = slack_message(message)
        except Unrenderable as exc:
            return self.dead(message, str(exc))
        if self.pace is not None:
            await self.pace(channel)
        mark_message_uncertain(self.store, message.id)
        try:
            response = await self.client.chat_postMessage(channel=channel, **body)
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error") or f"HTTP {status}")
            if status == 429:
                wait = _retry_after(exc.response.headers)
                retry_at = self.clock() + timedelta(seconds=wait)
                mark_message_failed(self.store, message.id, "rate limited (429)", retry_at, count=False)
                self.report.retrying += 1
                log.warning("message=%s channel=%s status=429 retry_after=%ss", message.id, channel, wait)
                return False
            if error in PERMANENT_ERRORS:
                return self.dead(message, f"Slack refused: {error}")
            # A 5xx may have posted before failing; anything else did not.
            return self.retry(message, f"Slack error: {error}", uncertain=status >= 500)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return self.retry(message, f"network: {_describe(exc)}", uncertain=True)
        if response.get("channel"):
            self.channel_ids[channel] = str(response["channel"])
        ref = f"{response.get('channel') or channel}:{response.get('ts')}"
        mark_message_sent(self.store, message.id, self.clock(), ref)
        self.report.sent += 1
        return True

    def dead(self, message: StoredMessage, error: str) -> bool:
        mark_message_failed(self.store, message.id, error, None)
        self.report.dead += 1
        log.error(
            "message=%s kind=%s destination=%s dead error=%s",
            message.id,
            message.kind,
            message.destination,
            error,
        )
        return True

    def retry(self, message: StoredMessage, error: str, *, uncertain: bool) -> bool:
        attempts = message.attempts + 1
        if attempts >= self.policy.max_attempts:
            return self.dead(message, f"{error} (gave up after {attempts} attempts)")
        retry_at = self.clock() + self.policy.delay(attempts, self.rng)
        mark_message_failed(self.store, message.id, error, retry_at, uncertain=uncertain)
        self.report.retrying += 1
        log.warning(
            "message=%s kind=%s retry_at=%s attempts=%d error=%s",
            message.id,
            message.kind,
            retry_at.isoformat(),
            attempts,
            error,
        )
        return False

    async def find_posted(self, channel: str, message: StoredMessage) -> str | None:
        """The `channel:ts` of a message already carrying this outbox id, if the last send got through."""

        def ours(meta: dict[str, Any]) -> bool:
            return bool((meta.get("event_payload") or {}).get("message_id") == message.id)

        return await find_in_history(self.client, channel, self.channel_ids, message.created, ours)


async def deliver_slack_messages(
    store: Store,
    client: AsyncWebClient,
    clock: Clock,
    policy: RetryPolicy | None = None,
    *,
    rng: random.Random | None = None,
    channel_ids: dict[str, str] | None = None,
    pace: Pace | None = None,
    limit: int = 200,
) -> MessageReport:
    """Send the due messages of `slack:` destinations, each destination's in order, its queue waiting
    whole while its oldest message waits for a retry. `channel_ids` and `pace` may be shared with the
    alert delivery (one name lookup, one message per second per channel across both)."""
    report = MessageReport()
    now = clock()
    queues: dict[str, list[StoredMessage]] = {}
    for message in pending_messages(store, "slack:", limit):
        queues.setdefault(message.destination, []).append(message)
    sender = _SlackSender(
        store,
        client,
        clock,
        policy or RetryPolicy(),
        rng or random.Random(),
        channel_ids if channel_ids is not None else {},
        pace,
        report,
    )
    due = [queue for queue in queues.values() if queue[0].next_attempt <= now]
    await asyncio.gather(*(sender.destination(queue) for queue in due))
    return report


async def deliver_messages(
    store: Store, clock: Clock, slack: SlackDelivery | None, accept: Callable[[str], bool]
) -> int:
    """The service's one call: console messages (and Slack ones `accept` sends to the console) printed,
    then Slack's sent with the alert delivery's client, policy, channel ids and pacing. Returns how many
    went out."""
    sent = await asyncio.to_thread(deliver_console_messages, store, clock(), None, accept)
    if slack is not None:
        slack.keep_alive()
        report = await deliver_slack_messages(
            store,
            slack.client,
            clock,
            slack.policy,
            rng=slack.rng,
            channel_ids=slack._channel_ids,
            pace=slack._pace,
        )
        sent += report.sent + report.found_posted
    return sent
