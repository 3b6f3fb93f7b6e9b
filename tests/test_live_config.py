"""Editing config.toml while Watchfloor runs: good edits apply within a check, bad ones are refused.

A real file is edited; the clock is frozen; the scheduler's jobs are inspected without starting it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import FIXTURES

from bot.config import Config, ConfigError, load_config
from bot.service import Service

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

NEW_TOPIC = """
[[topics]]
id = "red-sea"
description = "Houthi attacks on merchant ships in the Red Sea"
threshold = 0.6
examples = { positive = ["Houthi missile strikes a tanker in the Red Sea"], negative = ["Red Sea resorts report a record tourist season"] }
destinations = ["slack:#maritime"]
"""


def test_edits_apply_live_and_bad_edits_are_refused(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.toml"
    path.write_text((FIXTURES / "config" / "minimal.toml").read_text())

    async def scenario() -> None:
        async with Service(path, load_config(path), clock=lambda: NOW) as service:
            service.schedule()
            assert service.poll_jobs() == {"local": timedelta(minutes=15)}
            assert await service.check_config() is None  # unchanged file: nothing to do

            # A good edit: new topic, new threshold, a second source with its own interval.
            raw = path.read_text().replace("threshold = 0.4", "threshold = 0.7")
            raw += '\n[[sources]]\nname = "second"\nurl = "http://127.0.0.1:9/2.xml"\ninterval = "5m"\n'
            path.write_text(raw + NEW_TOPIC)
            applied = await service.check_config()
            assert isinstance(applied, Config)
            assert service.config.topic("cables").threshold == 0.7  # type: ignore[union-attr]
            assert service.rt.scorer.topic_ids == ["cables", "red-sea"]
            assert service.rt.destinations()["red-sea"] == ["slack:#maritime"]
            assert service.poll_jobs() == {"local": timedelta(minutes=15), "second": timedelta(minutes=5)}

            # A bad edit: refused with check's messages, logged, the running config stays.
            with caplog.at_level(logging.ERROR):
                path.write_text(path.read_text().replace("threshold = 0.7", "threshold = 7"))
                refused = await service.check_config()
            assert isinstance(refused, ConfigError)
            assert refused.problems == ["topics[0].threshold (line 14): must be between 0 and 1 (got 7)"]
            assert "config edit refused" in caplog.text and "topics[0].threshold (line 14)" in caplog.text
            assert service.config.topic("cables").threshold == 0.7  # type: ignore[union-attr]
            assert await service.check_config() is None  # reported once, not on every check

            # Removing a source removes its job; fixing the file applies again.
            raw = path.read_text().replace("threshold = 7", "threshold = 0.3")
            raw = raw[: raw.index('\n[[sources]]\nname = "second"')] + raw[raw.index(NEW_TOPIC.strip()) - 1 :]
            path.write_text(raw)
            assert isinstance(await service.check_config(), Config)
            assert service.poll_jobs() == {"local": timedelta(minutes=15)}
            assert service.config.topic("cables").threshold == 0.3  # type: ignore[union-attr]

    asyncio.run(scenario())
