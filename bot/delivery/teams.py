"""Outbox delivery to Teams Workflows webhooks: alerts, their later reports, digests and surge notices.

    pending alerts + follow-ups + messages for "teams:" | one queue per destination, oldest first
        | webhook URL from the destination's env var | render the card | POST | record the outcome

- Retries mirror `bot.delivery.slack` and share its `RetryPolicy`: network errors, 408 and 5xx back off
  exponentially with jitter; 429 waits its `Retry-After` without counting against the entry; any other
  answer outside 2xx (400 bad card, 404 deleted workflow, 3xx) will not change by asking again and makes a
  dead letter at once, as does failing `RetryPolicy.max_attempts` times. Dead letters are kept and shown by
  status, like Slack's.
- Order per destination: alerts, follow-ups and digests to one destination go out oldest first, and an
  entry waiting for its retry holds back everything behind it.
- Pacing: at most one post per `pace_seconds` per destination (Teams throttles a webhook past a few
  requests a second).
- Flood control, as for Slack channels and by the same rules (`bot.delivery.flood`, with
  `[slack].hourly_cap` and `rollup_delay`, read at each run so a config reload applies): past the cap of
  alerts per topic per destination in an hour, further alerts are held and, once gathered, go out as one
  "N more stories on <topic>" card, at most one an hour. A roll-up that fails for the moment (429, 5xx,
  network) stays held for a later run (after a 429's `Retry-After`); one Teams refuses for good makes its
  alerts dead letters. A roll-up waits while its destination's queue waits for a retry. Muted topics get
  nothing: mutes set aside pending and held alerts alike before each run.
- At least once, not exactly once. Slack lets us read the channel back after a send whose outcome is
  unknown (a timeout after the request went out, a crash before recording); a Workflows webhook offers no
  history to look in. So the entry is marked *uncertain* before the call, and a retry simply posts again:
  a rare duplicate card is the price of never losing one. The uncertain flag is kept (also on a later
  failure) so status can say the card may already be in the channel.
- A destination that cannot be reached as configured (its `[[teams]]` entry is gone, or the environment
  variable it names is unset or not an http(s) URL) loses nothing: its entries stay pending with that
  reason as their last error, without counting attempts, and a warning is logged once per reason.
- The webhook URL is a secret (it carries a signature): it is never logged nor stored in an error; logs
  and errors name the destination.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from bot.config import Config
from bot.delivery.flood import HourlyCap, Rollup, due_rollups, hourly_cap
from bot.delivery.outcome import SendResult
from bot.delivery.slack import RetryPolicy
from bot.feedback_links import FeedbackLinks, LinkSetupError, feedback_links, link_secret
from bot.notices import Digest, Surge
from bot.outbox_messages import (
    StoredMessage,
    mark_message_failed,
    mark_message_sent,
    mark_message_uncertain,
    pending_messages,
)
from bot.render.teams import (
    alert_card,
    digest_card,
    encode_message,
    followup_card,
    rollup_card,
    surge_card,
)
from bot.store import Store, StoredAlert, StoredFollowup

log = logging.getLogger(__name__)

PREFIX = "teams:"
# A destination waiting for its configuration is looked at again this often (no attempt is counted).
CONFIG_RECHECK = timedelta(minutes=1)
_HTTP_URL = re.compile(r"^https?://[^\s/?#]+", re.IGNORECASE)


@dataclass
class TeamsReport:
    sent: int = 0  # alerts
    followups: int = 0
    messages: int = 0  # digests and surge notices
    retrying: int = 0
    dead: int = 0
    waiting: int = 0  # held for configuration (destination or env var missing)
    held: int = 0  # alerts past the hourly cap, kept for their topic's roll-up
    rolled_up: int = 0  # held alerts sent in a roll-up card


def teams_client(timeout: float = 15.0) -> httpx.AsyncClient:
    """The one HTTP client for every webhook: bounded waits, no redirects (a webhook that redirects has
    moved, and the outbox should say so rather than follow it)."""
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=5.0), follow_redirects=False)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One outbox row bound for a Teams destination, whatever its table."""

    kind: str  # alert | followup | the message's kind (digest, surge)
    id: str
    destination: str  # the [[teams]] name
    created: datetime
    next_attempt: datetime | None
    attempts: int
    uncertain: bool
    alert: StoredAlert | None = None
    followup: StoredFollowup | None = None
    message: StoredMessage | None = None


def _name(destination: str) -> str:
    return destination.removeprefix(PREFIX)


@dataclass
class _Queue:
    """One destination's work: alerts and messages oldest first, then the follow-ups, in the store's order.

    Follow-ups come last because they report on alerts already sent, and they carry no creation time of
    their own to interleave by."""

    entries: list[_Entry] = field(default_factory=list)
    followups: list[_Entry] = field(default_factory=list)


def _queues(
    alerts: list[StoredAlert], followups: list[StoredFollowup], messages: list[StoredMessage]
) -> dict[str, _Queue]:
    main = [
        *(
            _Entry("alert", a.alert.id, _name(a.alert.destination), a.alert.created, a.next_attempt,
                   a.attempts, a.uncertain, alert=a)
            for a in alerts
        ),
        *(
            _Entry(m.kind, m.id, _name(m.destination), m.created, m.next_attempt, m.attempts,
                   m.uncertain, message=m)
            for m in messages
        ),
    ]  # fmt: skip
    queues: dict[str, _Queue] = {}
    for entry in sorted(main, key=lambda e: e.created):  # stable: each table's own order survives
        queues.setdefault(entry.destination, _Queue()).entries.append(entry)
    for f in followups:
        name = _name(f.parent.alert.destination)
        queues.setdefault(name, _Queue()).followups.append(
            _Entry(
                "followup", f.id, name, f.next_attempt, f.next_attempt, f.attempts, f.uncertain, followup=f
            )
        )
    return queues


def classify_response(status: int, headers: Mapping[str, str], body: str, now: datetime) -> SendResult:
    """What a webhook's HTTP answer means for the outbox (pure: the tests feed it answers directly too)."""
    if 200 <= status < 300:
        run = headers.get("x-ms-workflow-run-id")
        return SendResult(ok=True, remote_ref=run or None)
    if status == 429:
        return SendResult(ok=False, retry_after=retry_after(headers, now), error="rate limited (429)")
    detail = re.sub(r"\s+", " ", body).strip()[:200]
    error = f"Teams answered HTTP {status}" + (f": {detail}" if detail else "")
    if status == 408 or status >= 500:
        # A 5xx may come after the flow already posted the card.
        return SendResult(ok=False, error=error, uncertain=status >= 500)
    return SendResult(ok=False, permanent=True, error=error)


def retry_after(headers: Mapping[str, str], now: datetime) -> float:
    """Seconds to wait from a `Retry-After` header (seconds or an HTTP date); 30 when absent or unreadable."""
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return 30.0
    try:
        return max(1.0, float(int(value)))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return 30.0
    return max(1.0, (when - now).total_seconds())


def _describe(exc: BaseException, secret: str) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text.replace(secret, "<webhook URL>") if secret else text


@dataclass
class TeamsDelivery:
    client: httpx.AsyncClient
    store: Store
    config: Callable[[], Config]  # a getter: a reloaded config.toml (new destinations, public_url) is seen
    topic_title: Callable[[str], str]
    clock: Callable[[], datetime]
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    pace_seconds: float = 1.0
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    monotonic: Callable[[], float] = time.monotonic
    _last_post: dict[str, float] = field(default_factory=dict)
    _warned: set[str] = field(default_factory=set)
    _rollup_not_before: dict[str, datetime] = field(default_factory=dict)  # a 429's Retry-After, per name

    async def aclose(self) -> None:
        await self.client.aclose()

    async def deliver_due(self, limit: int = 500) -> TeamsReport:
        report = TeamsReport()
        now = self.clock()
        flood = self.config().slack  # the cap and delay are named under [slack]; they apply here too
        self.store.set_aside_muted(now)  # a muted topic/destination gets nothing, roll-ups included
        queues = _queues(
            self.store.pending_alerts(PREFIX, limit),
            self.store.pending_followups(PREFIX, limit),
            pending_messages(self.store, PREFIX, limit),
        )
        cap = hourly_cap(self.store, now, flood.hourly_cap)
        clear = await asyncio.gather(
            *(self._deliver_destination(n, q, now, cap, report) for n, q in queues.items())
        )
        waiting = {name for name, ok in zip(queues, clear, strict=True) if not ok}
        for rollup in due_rollups(self.store, PREFIX, now, flood.rollup_delay):
            if _name(rollup.destination) not in waiting:
                await self._send_rollup(rollup, now, report)
        return report

    def webhook_url(self, name: str) -> tuple[str | None, str]:
        """The destination's webhook URL, or None and why it cannot be used (safe to store and log)."""
        destination = self.config().teams_destination(name)
        if destination is None:
            return None, f'no [[teams]] destination named "{name}" in config.toml'
        url = self.environ.get(destination.webhook_env, "").strip()
        if not url:
            return None, f"{destination.webhook_env} is not set"
        if not _HTTP_URL.match(url):
            return None, f"{destination.webhook_env} is not an http(s) URL"
        return url, ""

    async def _deliver_destination(
        self, name: str, queue: _Queue, now: datetime, cap: HourlyCap, report: TeamsReport
    ) -> bool:
        """Send the destination's queue in order; False when it stopped to wait (for a retry or for its
        configuration), so that the destination's roll-ups wait too."""
        url, problem = self.webhook_url(name)
        if url is None:
            self._hold_for_config(name, [*queue.entries, *queue.followups], problem, now, report)
            return False
        self._warned = {w for w in self._warned if not w.startswith(f"{name}\x00")}
        for entries in (queue.entries, queue.followups):
            for entry in entries:
                if entry.next_attempt is not None and entry.next_attempt > now:
                    return False  # it waits for its retry, so everything behind it waits: order is kept
                if entry.alert is not None and cap.holds(entry.alert.alert):
                    self.store.hold_alert(entry.id)
                    report.held += 1
                    continue
                if not await self._deliver_one(name, url, entry, report):
                    return False
                if entry.alert is not None:
                    cap.count(entry.alert.alert)
        return True

    async def _send_rollup(self, rollup: Rollup, now: datetime, report: TeamsReport) -> None:
        """Post one roll-up card; its alerts are marked sent and rolled up, kept held for a later run when
        the failure may pass, or made dead letters when Teams refuses the card for good."""
        name = _name(rollup.destination)
        not_before = self._rollup_not_before.get(name)
        if not_before is not None and not_before > now:
            return
        url, problem = self.webhook_url(name)
        if url is None:
            self._warn_unreachable(name, problem, len(rollup.held))
            return
        topic = self.topic_title(rollup.topic)
        try:
            body = encode_message(rollup_card(topic, rollup.held))
        except Exception as exc:  # as for an alert card: a dead letter, not a roll-up retried forever
            log.exception("teams destination=%s rollup topic=%s cannot be rendered", name, rollup.topic)
            self._rollup_dead(rollup, f"cannot render the roll-up: {type(exc).__name__}: {exc}", report)
            return
        await self._pace(name)
        result = await self._post(url, body)
        if result.ok:
            ref = f"{PREFIX}{name}" + (f":{result.remote_ref}" if result.remote_ref else "")
            self.store.mark_rolled_up(rollup.alert_ids, self.clock(), ref)
            report.rolled_up += len(rollup.held)
            log.info(
                "teams destination=%s rollup topic=%s stories=%d sent bytes=%d",
                name,
                rollup.topic,
                len(rollup.held),
                len(body),
            )
            return
        if result.permanent:
            self._rollup_dead(rollup, f"Teams refused the roll-up: {result.error}", report)
            return
        if result.retry_after is not None:
            self._rollup_not_before[name] = self.clock() + timedelta(seconds=result.retry_after)
        # A timeout after the request went out may have posted it: like an alert, it goes again (at least
        # once), and the held alerts stay held until a post is confirmed.
        log.warning(
            "teams destination=%s rollup topic=%s failed, kept for the next run: %s",
            name,
            rollup.topic,
            result.error,
        )

    def _rollup_dead(self, rollup: Rollup, error: str, report: TeamsReport) -> None:
        for alert_id in rollup.alert_ids:
            self.store.mark_failed(alert_id, error, None)
        report.dead += len(rollup.held)
        log.error(
            "teams destination=%s rollup topic=%s dead stories=%d error=%s",
            _name(rollup.destination),
            rollup.topic,
            len(rollup.held),
            error,
        )

    def _warn_unreachable(self, name: str, problem: str, waiting: int) -> None:
        key = f"{name}\x00{problem}"
        if key not in self._warned:
            self._warned.add(key)
            log.warning("teams destination=%s cannot be delivered to: %s; %d waiting", name, problem, waiting)

    def _hold_for_config(
        self, name: str, entries: list[_Entry], problem: str, now: datetime, report: TeamsReport
    ) -> None:
        self._warn_unreachable(name, problem, len(entries))
        retry = now + CONFIG_RECHECK
        for entry in entries:
            if entry.next_attempt is not None and entry.next_attempt > now:
                continue
            report.waiting += 1
            # Follow-ups have no uncounted failure; they simply stay pending until their destination
            # works (the alerts and messages carry the reason).
            if entry.alert is not None:
                self.store.mark_failed(entry.id, problem, retry, uncertain=entry.uncertain, count=False)
            elif entry.message is not None:
                mark_message_failed(
                    self.store, entry.id, problem, retry, uncertain=entry.uncertain, count=False
                )

    def _links(self, name: str, stored: StoredAlert, now: datetime) -> FeedbackLinks | None:
        config = self.config()
        problem = ""
        secret = b""
        if not config.web.public_url:
            problem = "[web].public_url is not set"
        else:
            try:
                secret = link_secret(self.environ)
            except LinkSetupError as exc:
                problem = str(exc)
        if problem or config.web.public_url is None:
            if "links" not in self._warned:
                self._warned.add("links")
                log.warning("teams cards carry no Relevant / Not relevant links: %s", problem)
            return None
        return feedback_links(
            config.web.public_url, secret, stored.alert.id, name, now, config.web.feedback_link_ttl
        )

    def _card(self, name: str, entry: _Entry, now: datetime) -> dict[str, Any]:
        if entry.alert is not None:
            stored = entry.alert
            others = [s for s in self.store.story_sources(stored.alert.story) if s != stored.source]
            return alert_card(
                stored,
                self.topic_title(stored.alert.topic),
                feedback=self._links(name, stored, now),
                extra_sources=others,
            )
        if entry.followup is not None:
            parent = entry.followup.parent
            return followup_card(
                parent,
                entry.followup.reports,
                self.topic_title(parent.alert.topic),
                extra_sources=self.store.story_sources(parent.alert.story),
            )
        assert entry.message is not None
        if entry.kind == "digest":
            return digest_card(Digest.from_payload(entry.message.payload))
        if entry.kind == "surge":
            return surge_card(Surge.from_payload(entry.message.payload))
        raise ValueError(f"message kind {entry.kind!r} has no Teams card")

    async def _pace(self, name: str) -> None:
        last = self._last_post.get(name)
        if last is not None:
            wait = last + self.pace_seconds - self.monotonic()
            if wait > 0:
                await self.sleep(wait)
        self._last_post[name] = self.monotonic()

    async def _post(self, url: str, body: bytes) -> SendResult:
        try:
            response = await self.client.post(url, content=body, headers={"Content-Type": "application/json"})
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The request never left: certainly not posted.
            return SendResult(ok=False, error=f"network: {_describe(exc, url)}")
        except httpx.TransportError as exc:
            # A read timeout or a dropped connection after the request went out: it may have posted.
            return SendResult(ok=False, error=f"network: {_describe(exc, url)}", uncertain=True)
        body_text = response.text.replace(url, "<webhook URL>")  # an error page might echo the request
        return classify_response(response.status_code, response.headers, body_text, self.clock())

    async def _deliver_one(self, name: str, url: str, entry: _Entry, report: TeamsReport) -> bool:
        """True when the entry is settled (sent or dead); False when it must wait for a retry."""
        now = self.clock()
        try:
            body = encode_message(self._card(name, entry, now))
        except Exception as exc:  # a payload that cannot render never will: a dead letter, not a stuck queue
            log.exception("teams destination=%s %s=%s cannot be rendered", name, entry.kind, entry.id)
            self._settle_failed(
                entry, f"cannot render the card: {type(exc).__name__}: {exc}", None, count=True
            )
            report.dead += 1
            return True
        await self._pace(name)
        self._mark_uncertain(entry)
        result = await self._post(url, body)
        uncertain = result.uncertain or entry.uncertain
        if result.ok:
            self._settle_sent(entry, name, result.remote_ref)
            if entry.alert is not None:
                report.sent += 1
            elif entry.followup is not None:
                report.followups += 1
            else:
                report.messages += 1
            log.info("teams destination=%s %s=%s sent bytes=%d", name, entry.kind, entry.id, len(body))
            return True
        if result.retry_after is not None:
            retry = self.clock() + timedelta(seconds=result.retry_after)
            self._settle_failed(entry, result.error, retry, uncertain=uncertain, count=False)
            report.retrying += 1
            log.warning(
                "teams destination=%s %s=%s status=429 retry_after=%ss",
                name,
                entry.kind,
                entry.id,
                result.retry_after,
            )
            return False
        if result.permanent:
            self._settle_failed(entry, f"Teams refused: {result.error}", None, uncertain=uncertain)
            report.dead += 1
            log.error("teams destination=%s %s=%s dead error=%s", name, entry.kind, entry.id, result.error)
            return True
        attempts = entry.attempts + 1
        if attempts >= self.policy.max_attempts:
            error = f"{result.error} (gave up after {attempts} attempts)"
            self._settle_failed(entry, error, None, uncertain=uncertain)
            report.dead += 1
            log.error("teams destination=%s %s=%s dead error=%s", name, entry.kind, entry.id, error)
            return True
        retry = self.clock() + self.policy.delay(attempts, self.rng)
        self._settle_failed(entry, result.error, retry, uncertain=uncertain)
        report.retrying += 1
        log.warning(
            "teams destination=%s %s=%s retry_at=%s attempts=%d error=%s",
            name,
            entry.kind,
            entry.id,
            retry.isoformat(),
            attempts,
            result.error,
        )
        return False

    # -- the three tables, one vocabulary ---------------------------------------------------------------

    def _mark_uncertain(self, entry: _Entry) -> None:
        if entry.alert is not None:
            self.store.mark_uncertain(entry.id)
        elif entry.followup is not None:
            self.store.mark_followup_uncertain(entry.id)
        else:
            mark_message_uncertain(self.store, entry.id)

    def _settle_sent(self, entry: _Entry, name: str, run_id: str | None) -> None:
        # Teams gives back no message id; the workflow run id, when Workflows sends one, is the best ref.
        ref = f"{PREFIX}{name}" + (f":{run_id}" if run_id else "")
        now = self.clock()
        if entry.alert is not None:
            self.store.mark_sent(entry.id, now, ref)
        elif entry.followup is not None:
            self.store.settle_followup(entry.id, sent_at=now, remote_ref=ref)
        else:
            mark_message_sent(self.store, entry.id, now, ref)

    def _settle_failed(
        self,
        entry: _Entry,
        error: str,
        retry_at: datetime | None,
        *,
        uncertain: bool = False,
        count: bool = True,
    ) -> None:
        if entry.alert is not None:
            self.store.mark_failed(entry.id, error, retry_at, uncertain=uncertain, count=count)
        elif entry.followup is not None:
            # Follow-ups count every failure (the store has no uncounted one); a 429 is rare enough.
            self.store.settle_followup(entry.id, error=error, retry_at=retry_at, uncertain=uncertain)
        else:
            mark_message_failed(self.store, entry.id, error, retry_at, uncertain=uncertain, count=count)
