"""`watchfloor demo`: the whole pipeline once, on bundled feeds served from 127.0.0.1, into a fresh SQLite.

The configured topics are used as they are; the sources are swapped for the bundled sample feeds and the
storage for a temporary file, so the demo never touches the user's database or the internet.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from bot.config import Config, SourceConfig, StorageConfig
from bot.delivery.console import deliver_to_console
from bot.feed_server import FeedServer
from bot.pipeline import fetch_limits, poll_sources
from bot.render.console import render_tally
from bot.runtime import build_runtime
from bot.sources.fetch import Fetcher

DEMO_FEEDS = Path(__file__).parent / "data" / "demo_feeds"
FEED_SUFFIXES = {".xml", ".rss", ".rdf", ".atom"}


def demo_feed_files() -> list[Path]:
    return sorted(p for p in DEMO_FEEDS.iterdir() if p.suffix in FEED_SUFFIXES)


def demo_config(config: Config, server: FeedServer, db_path: Path) -> Config:
    sources = [SourceConfig(name=p.stem, url=server.url(p.name)) for p in demo_feed_files()]
    return config.model_copy(
        update={"sources": sources, "storage": StorageConfig(url=f"sqlite:///{db_path}")}
    )


def run_demo(config: Config, out: TextIO) -> int:
    with tempfile.TemporaryDirectory(prefix="watchfloor-demo-") as tmp, FeedServer(DEMO_FEEDS) as server:
        cfg = demo_config(config, server, Path(tmp) / "demo.sqlite")
        now = datetime.now(UTC)
        out.write(
            f"Serving {len(cfg.sources)} sample feeds on {server.base_url}; "
            f"topics: {', '.join(t.id for t in cfg.active_topics)}\n"
        )
        out.flush()
        rt = build_runtime(cfg, now)

        async def cycle() -> None:
            async with Fetcher(fetch_limits(cfg)) as fetcher:
                report = await poll_sources(rt, fetcher, [s.name for s in cfg.sources], now)
            for name, error in report.failed.items():
                out.write(f"source {name} failed: {error}\n")
            out.write(
                f"Polled {report.polled} sources: {report.ingest.new} new items, "
                f"{report.ingest.flagged} flagged, {len(report.ingest.alerts)} alerts\n\n"
            )

        asyncio.run(cycle())
        deliver_to_console(rt.store, cfg, now, out)
        out.write(render_tally(rt.store.tally(), [t.id for t in cfg.active_topics]) + "\n")
        rt.store.close()
    return 0
