"""`watchfloor status`: the facts of `/news status` on the command line: sources, outbox depth per
destination (alerts, digests, surge notices), dead letters of every kind, last digest per destination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import FIXTURES

from bot import queries
from bot.cli import main
from bot.outbox_messages import (
    enqueue_message,
    mark_message_failed,
    mark_message_sent,
    pending_messages,
)
from bot.store import Store

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _config(tmp_path: Path) -> Path:
    base = (FIXTURES / "config" / "minimal.toml").read_text()
    base = base.replace("sqlite:///var/test.sqlite", f"sqlite:///{tmp_path / 'wf.sqlite'}")
    path = tmp_path / "config.toml"
    path.write_text(
        base
        + '\n[[teams]]\nname = "ops"\nwebhook_env = "TEAMS_WEBHOOK_OPS"\n'
        + '\n[[digests]]\ndestination = "slack:#watch"\ncron = "0 8 * * *"\n'
        + '\n[[digests]]\ndestination = "teams:ops"\ncron = "0 8 * * mon-fri"\ntimezone = "Europe/London"\n'
    )
    return path


def _seed(store: Store) -> None:
    # A digest sent to Slack yesterday, one waiting for Teams, and a surge notice Teams refused for good.
    enqueue_message(store, "digest", "slack:#watch", "2026-11-26T08:00", {"x": 1}, NOW - timedelta(days=1))
    [sent] = pending_messages(store, "slack:")
    mark_message_sent(store, sent.id, NOW - timedelta(days=1), "1700000000.000100")
    enqueue_message(store, "digest", "teams:ops", "2026-11-27T08:00", {"x": 2}, NOW - timedelta(hours=1))
    enqueue_message(store, "surge", "teams:ops", "cables:2026-11-27T06", {"x": 3}, NOW, topic="cables")
    surge = next(m for m in pending_messages(store, "teams:") if m.kind == "surge")
    mark_message_failed(store, surge.id, "HTTP 400: card rejected", None)


def test_status_report_counts_messages_and_digests(store: Store) -> None:
    _seed(store)
    report = queries.with_configured_digests(queries.status_report(store), ["console", "teams:ops"])
    assert report.outbox == {"teams:ops": 1}
    assert report.dead_count == 1
    [dead] = report.dead_latest
    assert (dead.kind, dead.topic, dead.destination) == ("surge", "cables", "teams:ops")
    digests = {g.destination: g for g in report.digests}
    assert digests["slack:#watch"].last_sent == NOW - timedelta(days=1)
    assert digests["teams:ops"].last_sent is None and digests["teams:ops"].pending == 1
    assert digests["console"].last_sent is None and digests["console"].pending == 0


def test_watchfloor_status_prints_the_same_facts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path)
    store = Store.open(f"sqlite:///{tmp_path / 'wf.sqlite'}")
    try:
        _seed(store)
    finally:
        store.close()
    assert main(["status", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "outbox: 1 pending\n  teams:ops: 1" in out
    assert "dead letters: 1\n  [surge] cables → teams:ops:" in out and "HTTP 400: card rejected" in out
    assert "digests:\n  slack:#watch: last sent " in out
    assert "slack:#watch: last sent never" not in out
    assert "teams:ops: last sent never, 1 waiting" in out
    assert "local: not polled yet" in out
