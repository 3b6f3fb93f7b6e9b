"""SourceHealth.after_fetch: backoff doubling, cap, reset, 304 as success."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot.sources.fetch import FetchResult
from bot.sources.health import MAX_BACKOFF, SourceHealth, after_fetch, backoff_delay, record_parse_error

NOW = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=10)
OK = FetchResult("u", "u", 200, b"<rss/>", '"e1"', "Mon, 06 Jan 2025 11:00:00 GMT", None, 0.1)
NOT_MODIFIED = FetchResult("u", "u", 304, None, None, None, None, 0.1)
FAIL = FetchResult("u", "u", 0, None, None, None, "ClientConnectorError: refused", 0.1)


def test_backoff_doubles_while_failing() -> None:
    health = SourceHealth()
    delays = []
    for _ in range(4):
        health = after_fetch(health, FAIL, NOW, INTERVAL)
        assert health.next_due is not None
        delays.append(health.next_due - NOW)
    assert delays == [INTERVAL * 2, INTERVAL * 4, INTERVAL * 8, INTERVAL * 16]
    assert health.consecutive_failures == 4
    assert health.last_error == FAIL.error and health.last_error_at == NOW


def test_backoff_is_capped() -> None:
    health = SourceHealth(consecutive_failures=500)  # a feed dead for weeks: no overflow, just the cap
    health = after_fetch(health, FAIL, NOW, INTERVAL)
    assert health.next_due == NOW + MAX_BACKOFF
    assert backoff_delay(INTERVAL, 10**6) == MAX_BACKOFF
    assert backoff_delay(timedelta(hours=12), 3) == timedelta(hours=12)  # never faster than the interval


def test_success_resets_and_keeps_validators() -> None:
    failing = SourceHealth(consecutive_failures=5, last_error="x", last_error_at=NOW)
    health = after_fetch(failing, OK, NOW, INTERVAL)
    assert health.consecutive_failures == 0
    assert health.last_success == NOW and health.next_due == NOW + INTERVAL
    assert (health.etag, health.last_modified) == (OK.etag, OK.last_modified)
    assert health.last_error == "x"  # history stays for the operator


def test_304_is_success_and_keeps_previous_validators() -> None:
    health = replace(SourceHealth(), etag='"e1"', last_modified="L", consecutive_failures=2)
    health = after_fetch(health, NOT_MODIFIED, NOW, INTERVAL)
    assert health.consecutive_failures == 0 and health.last_success == NOW
    assert (health.etag, health.last_modified) == ('"e1"', "L")


def test_jitter_is_deterministic_with_a_seed_and_bounded() -> None:
    a = after_fetch(SourceHealth(), FAIL, NOW, INTERVAL, rng=random.Random(7))
    b = after_fetch(SourceHealth(), FAIL, NOW, INTERVAL, rng=random.Random(7))
    assert a.next_due == b.next_due
    assert a.next_due is not None
    assert INTERVAL * 2 * 0.9 <= a.next_due - NOW <= INTERVAL * 2 * 1.1


def test_parse_error_counts_as_failure_and_drops_validators() -> None:
    health = after_fetch(SourceHealth(), OK, NOW, INTERVAL)
    health = record_parse_error(health, "not a feed", NOW, INTERVAL)
    assert health.consecutive_failures == 1 and health.etag is None and health.last_modified is None
    assert health.next_due == NOW + INTERVAL * 2
