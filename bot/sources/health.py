"""Per-source health: when to poll next, and what validators to send. Pure functions, no clock, no I/O.

A failing source is polled less and less often (interval × 2^failures, capped), so a dead feed costs a
request every few hours instead of every cycle, and comes back at its normal pace on its first success.
A 304 Not Modified is a success. Jitter spreads sources that failed together (one publisher's outage)
so they do not all come back in the same second; it is derived from a seed so tests are deterministic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.sources.fetch import FetchResult

MAX_BACKOFF = timedelta(hours=6)
JITTER = 0.1  # ± fraction of the delay


@dataclass(frozen=True, slots=True)
class SourceHealth:
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    etag: str | None = None
    last_modified: str | None = None
    next_due: datetime | None = None  # None: due now


def backoff_delay(
    interval: timedelta, failures: int, max_backoff: timedelta = MAX_BACKOFF, jitter: float = 0.0
) -> timedelta:
    """interval × 2^failures, capped at max_backoff (but never below interval), times (1 + jitter)."""
    # Cap the exponent before computing: 2**failures for a source dead for a year would be enormous.
    factor = 2 ** min(max(failures, 0), 30)
    delay = min(interval * factor, max(max_backoff, interval))
    return delay * (1.0 + jitter)


def after_fetch(
    health: SourceHealth,
    result: FetchResult,
    now: datetime,
    interval: timedelta,
    *,
    max_backoff: timedelta = MAX_BACKOFF,
    rng: random.Random | None = None,
) -> SourceHealth:
    """The source's health after `result`. Pass `rng=random.Random(seed)` for reproducible jitter;
    without one there is no jitter."""
    jitter = rng.uniform(-JITTER, JITTER) if rng is not None else 0.0
    if result.error is None:  # 200 or 304
        return replace(
            health,
            last_success=now,
            consecutive_failures=0,
            # A 304 usually repeats no validators; keep the ones we sent so the next GET stays conditional.
            etag=result.etag or health.etag,
            last_modified=result.last_modified or health.last_modified,
            next_due=now + interval * (1.0 + jitter),
        )
    failures = health.consecutive_failures + 1
    return replace(
        health,
        last_error=result.error,
        last_error_at=now,
        consecutive_failures=failures,
        next_due=now + backoff_delay(interval, failures, max_backoff, jitter),
    )


def record_parse_error(health: SourceHealth, error: str, now: datetime, interval: timedelta) -> SourceHealth:
    """A 200 whose body is not a feed counts as a failure (an HTML error page served with 200 is the
    common case), and drops the validators so the next fetch is a full GET, not a 304 of the bad body."""
    failures = health.consecutive_failures + 1
    return replace(
        health,
        last_error=error,
        last_error_at=now,
        consecutive_failures=failures,
        etag=None,
        last_modified=None,
        next_due=now + backoff_delay(interval, failures),
    )
