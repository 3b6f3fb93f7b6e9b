"""bench/slack.py keeps working as the code under it changes: its store builder writes what it reports, its
LIKE baseline answers the same question as the full-text search, its outbox runs deliver every alert to
the fake Slack, and its report prints the tables with the right ratios. No timing is asserted: speed is
measured by running the benchmark itself."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fakes.slack_api import FakeSlack
from support import ROOT

from bot import queries
from bot.store import Store

DPRK = "dprk-russia-military"


def _load(name: str, path: Path) -> ModuleType:
    # By path: the file is bench/slack.py, and `slack` is also an old package installed with slack_sdk.
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = _load("bench_slack", ROOT / "bench" / "slack.py")
data = importlib.import_module("slack_data")  # bench/, put on the path by bench/slack.py


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    path = tmp_path_factory.mktemp("bench") / "store.sqlite"
    return path, data.build(path, 300, 0.1, seed=7)


def test_the_store_holds_what_the_builder_reports(built: tuple[Path, Any]) -> None:
    path, stats = built
    store = Store.open(f"sqlite:///{path}")
    try:
        assert store.count_items() == stats.items == 300
        assert stats.flagged > 0
        sent = store.alerts_for("sent")
        assert len(sent) == stats.alerts > 0
        assert store.alerts_for("pending") == []  # the outbox is empty: the delivery bench brings its own
        assert queries.latest_alerted(store, None, 5)
        assert queries.search_items(store, ["pyongyang"])  # the index was caught up at build time
    finally:
        store.close()


def test_the_generated_items_are_the_same_for_the_same_seed() -> None:
    rows = data.load_rows([DPRK])
    one = [s.item.id for s in data.generate(rows, 50, {DPRK: 0.6}, 0.2, seed=3)]
    again = [s.item.id for s in data.generate(rows, 50, {DPRK: 0.6}, 0.2, seed=3)]
    other = [s.item.id for s in data.generate(rows, 50, {DPRK: 0.6}, 0.2, seed=4)]
    assert one == again
    assert len(set(one)) == 50
    assert not set(one) & set(other)


@pytest.mark.parametrize(
    ("words", "topic"), [(["pyongyang"], None), (["north", "korean"], DPRK), (["cable"], None)]
)
def test_the_like_baseline_finds_what_full_text_search_finds(
    built: tuple[Path, Any], words: list[str], topic: str | None
) -> None:
    store = Store.open(f"sqlite:///{built[0]}")
    try:
        scan = bench.like_search_items(store, words, topic=topic, limit=50)
        indexed = queries.search_items(store, words, topic=topic, limit=50)
    finally:
        store.close()
    assert scan, "the query must match something, or the comparison proves nothing"
    assert len(scan) < 50
    assert {h.item_id for h in scan} == {h.item_id for h in indexed}


def test_an_outbox_run_delivers_every_alert_to_the_fake_slack(
    tmp_path: Path, built: tuple[Path, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    db = data.working_copy(built[0], tmp_path)
    plan = [
        bench.Scenario("outbox", "outbox", 3, 7, 0.0),
        bench.Scenario("bare client", "bare", 3, 7, 0.0),
        bench.Scenario("bare, one session", "bare-session", 2, 4, 0.0),
    ]
    with FakeSlack() as slack:
        bench.deliver(db, slack.base_url, plan)
        results = [
            json.loads(line[len("RESULT ") :])
            for line in capsys.readouterr().out.splitlines()
            if line.startswith("RESULT ")
        ]
        assert [(r["mode"], r["sent"], r["problems"]) for r in results] == [
            ("outbox", 7, 0),
            ("bare", 7, 0),
            ("bare-session", 4, 0),
        ]
        for r in results:
            channels = [ch for ch in slack.messages if ch.startswith(r["prefix"])]
            assert len(channels) == r["channels"]
            assert sum(len(slack.messages[ch]) for ch in channels) == r["alerts"]
    store = Store.open(f"sqlite:///{db}")
    try:
        assert store.alerts_for("pending") == []
    finally:
        store.close()


def _row(name: str, concurrency: int, p50: float) -> object:
    return bench.CommandRow(
        name, concurrency, 12, 1.0, 0.01, 0.02, p50, p50, p50 * 2, p50 * 3, 12, 0, 0, {"search x": p50}
    )


def test_the_report_prints_both_tables_with_ratios_to_the_baselines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench.print_commands(
        [_row("search (FTS5)", 1, 0.010), _row("search (LIKE scan, baseline)", 1, 0.250)], 1000, None
    )
    alerts = [
        bench.AlertRow("outbox", "outbox", 10, 100, 0.0, 0.1, 2.0, 100, 0),
        bench.AlertRow("bare client", "bare", 10, 100, 0.0, 0.1, 1.0, 100, 0),
    ]
    bench.print_alerts(alerts, 1000, None)
    out = capsys.readouterr().out
    fts = next(line for line in out.splitlines() if line.startswith("search (FTS5)"))
    assert re.search(r"\b25\.0\s+25\.0$", fts), fts  # the scan's p50 and p99 over ours
    outbox = next(line for line in out.splitlines() if line.startswith("outbox "))
    assert outbox.split()[-1] == "0.5"  # 50 alerts/s against the bare client's 100
    assert "search p50 by query" in out
    assert "alerts/s" in out
