"""The service's learning and surge jobs: registered with APScheduler from the config, re-timed on reload,
and callable directly (they do nothing on an empty store)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from support import FIXTURES

from bot.config import Config, load_config
from bot.service import RETRAIN_CHECK, SURGE_CHECK, Service


def test_retrain_and_surge_jobs_follow_the_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    base = (FIXTURES / "config" / "minimal.toml").read_text()
    path.write_text(base + '\n[learning]\nnightly = "15 2 * * *"\n')
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

    async def scenario() -> None:
        async with Service(path, load_config(path), clock=lambda: now) as service:
            service.schedule()
            service.scheduler.start(paused=True)  # next run times computed, nothing fires
            jobs = {j.id: j for j in service.scheduler.get_jobs()}
            nightly = jobs["retrain:nightly"].next_run_time
            assert nightly is not None and (nightly.astimezone(UTC).hour, nightly.minute) == (2, 15)
            assert jobs["retrain:due"].trigger.interval == RETRAIN_CHECK
            assert jobs["surge"].trigger.interval == SURGE_CHECK

            path.write_text(base + '\n[learning]\nnightly = "45 4 * * *"\n')
            assert isinstance(await service.check_config(), Config)
            moved = service.scheduler.get_job("retrain:nightly").next_run_time
            assert (moved.astimezone(UTC).hour, moved.minute) == (4, 45)

            # Nothing stored: no feedback to learn from, no surge to tell.
            assert await service.retrain_due() is None
            assert await service.surge() == 0

    asyncio.run(scenario())
