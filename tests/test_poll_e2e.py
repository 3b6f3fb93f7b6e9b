"""End to end over real HTTP on 127.0.0.1: feeds → poll → items, stories, alerts, source health.

Hostile neighbours (a server that never answers, an HTML page served as a feed, a 404) must cost only
their own source a logged error and a backoff; the good sources' items arrive regardless.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import FIXTURES, ROOT

from bot.config import load_config
from bot.feed_server import FeedServer
from bot.service import Service

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers: the fetch deadline must end the wait."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                held.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/feed.xml"
    stop.set()
    t.join()
    for c in held:
        c.close()
    sock.close()


def write_config(tmp: Path, model_dir: Path, sources: dict[str, str]) -> Path:
    shutil.copy(ROOT / "examples" / "background.jsonl", tmp / "background.jsonl")
    shutil.copy(ROOT / "examples" / "news_labelled.jsonl", tmp / "cables.jsonl")
    raw = (FIXTURES / "config" / "poll.toml").read_text().replace('"var/models"', f'"{model_dir}"')
    head = raw[: raw.index("[[sources]]")]
    tail = raw[raw.index("[[topics]]") :]
    blocks = "".join(f'[[sources]]\nname = "{n}"\nurl = "{u}"\n\n' for n, u in sources.items())
    path = tmp / "config.toml"
    path.write_text(head + blocks + tail)
    return path


def test_poll_cycle_end_to_end_with_hostile_neighbours(
    tmp_path: Path, model_dir: Path, silent_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    for name in ("wire.xml", "desk.atom", "not-a-feed.xml"):
        shutil.copy(FIXTURES / "poll" / name, feeds / name)
    clock = [NOW]
    with FeedServer(feeds) as server:
        path = write_config(
            tmp_path,
            model_dir,
            {
                "wire": server.url("wire.xml"),
                "desk": server.url("desk.atom"),
                "moved": server.url("not-a-feed.xml"),
                "gone": server.url("missing.xml"),
                "silent": silent_server,
                "refused": "http://127.0.0.1:1/feed.xml",
            },
        )

        async def scenario() -> None:
            async with Service(path, load_config(path), clock=lambda: clock[0]) as service:
                first = await service.poll_due()
                assert first.polled == 6
                assert set(first.failed) == {"moved", "gone", "silent", "refused"}
                # The wire item, its syndicated copy (same canonical URL) and the cycling item: 3 new items
                # in 2 feeds' 4 entries; the two cable reports form one story and alert once.
                assert first.ingest.new == 3
                assert [a.topic for a in first.ingest.alerts] == ["undersea-cable-sabotage"]
                assert await service.deliver() == 1

                health = service.rt.store.source_health()
                assert health["wire"].consecutive_failures == 0 and health["wire"].etag
                assert health["silent"].consecutive_failures == 1
                assert "deadline" in (health["silent"].last_error or "")
                assert health["gone"].last_error and "404" in health["gone"].last_error
                assert health["moved"].last_error

                # Nothing is due again before its interval.
                assert (await service.poll_due()).polled == 0
                # After the interval the good feeds answer 304 and nothing new is stored; the failing ones
                # back off: interval x 2 after their first failure.
                clock[0] = NOW + timedelta(minutes=10)
                second = await service.poll_due()
                assert second.polled == 2 and second.not_modified == 2 and second.ingest.new == 0
                assert service.rt.store.tally().items == 3
                clock[0] = NOW + timedelta(minutes=20)
                third = await service.poll_due()
                assert third.polled == 6 and len(third.failed) == 4
                assert service.rt.store.source_health()["refused"].consecutive_failures == 2
                assert (service.rt.store.source_health()["refused"].next_due or NOW) - clock[0] == timedelta(
                    minutes=40
                )

        asyncio.run(scenario())
    out = capsys.readouterr().out
    assert "Undersea cable sabotage" in out and "why:" in out


def test_run_once_prints_alerts_to_the_console_without_a_slack_token(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    feeds = tmp_path / "feeds"
    feeds.mkdir()
    shutil.copy(FIXTURES / "poll" / "wire.xml", feeds / "wire.xml")
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with FeedServer(feeds) as server:
        path = write_config(tmp_path, model_dir, {"wire": server.url("wire.xml")})
        assert main(["run", "--once", "--config", str(path)]) == 0
        out = capsys.readouterr().out
        assert "Anchor-dragging ship suspected of cutting Baltic data cable" in out
        assert (tmp_path / "var" / "poll.sqlite").is_file()
        # A second run finds the same item stored: no new alert.
        assert main(["run", "--once", "--config", str(path)]) == 0
        assert "Anchor-dragging" not in capsys.readouterr().out


def test_status_command_shows_health_outbox_and_dead_letters(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main
    from bot.store import Store

    feeds = tmp_path / "feeds"
    feeds.mkdir()
    shutil.copy(FIXTURES / "poll" / "wire.xml", feeds / "wire.xml")
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with FeedServer(feeds) as server:
        path = write_config(
            tmp_path, model_dir, {"wire": server.url("wire.xml"), "gone": server.url("missing.xml")}
        )
        assert main(["run", "--once", "--config", str(path)]) == 0
    store = Store.open(f"sqlite:///{tmp_path / 'var' / 'poll.sqlite'}")
    [sent] = store.alerts_for("sent")
    store.mark_failed(sent.alert.id, "Slack refused: is_archived", None)
    store.close()
    capsys.readouterr()
    assert main(["status", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sources: 2 (1 failing)" in out and "✗ gone: 1 failure(s)" in out and "404" in out
    assert "✓ wire" in out and "dead letters: 1" in out and "is_archived" in out
    assert "undersea-cable-sabotage: version" in out
