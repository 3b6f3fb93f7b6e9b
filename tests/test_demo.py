"""`watchfloor demo`, run as a user runs it: a subprocess, real local HTTP, exit 0, alerts and a tally."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from support import ROOT

from bot.demo import demo_feed_files

TOPICS = (
    "dprk-russia-military",
    "undersea-cable-sabotage",
    "red-sea-shipping-attacks",
    "taiwan-strait-military",
)


def test_bundled_feeds_are_several_outlets_in_rss_and_atom() -> None:
    files = demo_feed_files()
    assert len(files) >= 4
    heads = [f.read_text(encoding="utf-8")[:400] for f in files]
    assert any("<rss" in h for h in heads) and any("<feed" in h for h in heads)


def test_demo_runs_the_whole_pipeline(tmp_path: Path) -> None:
    env = {**os.environ, "WATCHFLOOR_CONFIG": str(ROOT / "config.toml")}
    env.pop("SLACK_BOT_TOKEN", None)
    env.pop("DATABASE_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # Every alert prints its topic, title, source, time, score and why.
    blocks = [b for b in out.split("\n\n") if b.startswith("── ")]
    assert blocks, out
    for block in blocks:
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC · score [01]\.\d\d", block), block
        assert "why: " in block
    for topic in TOPICS:
        assert f"({topic})" in out, f"no alert for {topic}"
    tally = re.search(r"sources (\d+) · items (\d+) · stories (\d+) · alerts (\d+)", out)
    assert tally, out
    sources, items, stories, alerts = map(int, tally.groups())
    assert sources >= 4 and stories < items  # duplicates across outlets joined into stories
    assert alerts == len(blocks)
    # The seed article is in the bundled feeds and alerts for its topic.
    assert "North Korean Soldiers Fighting in Ukraine" in out
    # The demo never touches the user's working folder.
    assert not (tmp_path / "var").exists()
