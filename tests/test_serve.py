"""`watchfloor serve` and the Slack variables, run as a user runs it: the real CLI in a subprocess, real
HTTP on 127.0.0.1.

A Teams-only deployment (config.toml routes to `teams:…`, no Slack variable set) serves the Teams feedback
links, `/healthz` and `/metrics` without `/slack/events`, and says once that Slack is not configured. With
neither Slack nor Teams it refuses to start, naming `SLACK_BOT_TOKEN`; one Slack variable without the other
is an error naming the missing one, Teams or not. No secret ever reaches the output.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from test_teams_feedback import SECRET, TOPIC, add_alert

from bot.feedback_links import feedback_links
from bot.store import Store

TOKEN = "xoxb-serve-test-token-4f1c"
SIGNING = "serve-test-signing-secret-9a7e"

TEAMS_ONLY = f"""
[storage]
url = "sqlite:///{{db}}"

[web]
public_url = "https://watchfloor.example"

[classifier]
background = []

[[teams]]
name = "ops"
webhook_env = "TEAMS_WEBHOOK_OPS"

[[topics]]
id = "{TOPIC}"
name = "DPRK–Russia military ties"
description = "North Korean arms or troops going to Russia"
destinations = ["teams:ops"]
"""


def write_config(tmp_path: Path, teams: bool) -> Path:
    text = TEAMS_ONLY.format(db=tmp_path / "serve.sqlite")
    if not teams:
        text = text.replace('destinations = ["teams:ops"]', 'destinations = ["slack:#dprk-watch"]')
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def environment(**slack: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_") and k != "DATABASE_URL"}
    env.update(slack, WATCHFLOOR_LINK_SECRET=SECRET.decode(), PYTHONUNBUFFERED="1")
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_args(config: Path, port: int) -> list[str]:
    cli = [sys.executable, "-m", "bot", "serve", "--config", str(config)]
    return [*cli, "--host", "127.0.0.1", "--port", str(port)]


@contextmanager
def serving(config: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    """`watchfloor serve` in a subprocess until it answers `/healthz`; stopped (by its own pid) after."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as err:
        proc = subprocess.Popen(
            serve_args(config, port), cwd=config.parent, env=env, stdout=err, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, f"serve exited {proc.returncode}: {log.read_text()}"
                assert time.monotonic() < deadline, f"serve did not answer: {log.read_text()}"
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def test_teams_only_serves_feedback_links_and_health_without_slack(tmp_path: Path) -> None:
    config = write_config(tmp_path, teams=True)
    store = Store.open(f"sqlite:///{tmp_path / 'serve.sqlite'}")
    try:
        alert_id = add_alert(store)
        log = tmp_path / "serve.log"
        with serving(config, environment(), log) as url:
            assert httpx.get(f"{url}/healthz").json() == {"status": "ok", "db": "ok"}
            assert "watchfloor_alerts" in httpx.get(f"{url}/metrics").text
            # No Slack routes: nothing behind /slack/events, nor any other path Bolt would have answered.
            assert httpx.post(f"{url}/slack/events", content="token=x&command=/news").status_code == 404
            assert httpx.get(f"{url}/slack/install").status_code == 404

            links = feedback_links(
                "https://watchfloor.example", SECRET, alert_id, "ops", datetime.now(UTC), timedelta(days=7)
            )
            link = links.not_relevant.replace("https://watchfloor.example", url)
            shown = httpx.get(link)
            assert shown.status_code == 200 and '<form method="post">' in shown.text
            done = httpx.post(link)
            assert done.status_code == 200 and "Recorded: not relevant" in done.text
            assert store.feedback_for_alert(alert_id) == {"teams:ops": "not_relevant"}
    finally:
        store.close()
    said = log.read_text()
    told = [line for line in said.splitlines() if "slack not configured" in line]
    assert len(told) == 1, said
    assert "SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET unset" in told[0] and "teams=teams:ops" in told[0]
    assert SECRET.decode() not in said


def run_serve(tmp_path: Path, teams: bool, **slack: str) -> subprocess.CompletedProcess[str]:
    """`watchfloor serve` expected to refuse to start: it must exit by itself, well before the timeout."""
    config = write_config(tmp_path, teams)
    return subprocess.run(
        serve_args(config, free_port()),
        cwd=tmp_path,
        env=environment(**slack),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_neither_slack_nor_teams_keeps_the_not_configured_error(tmp_path: Path) -> None:
    proc = run_serve(tmp_path, teams=False)
    assert proc.returncode == 2, proc.stderr
    assert (
        "watchfloor serve: SLACK_BOT_TOKEN is not set: export it with the Bot User OAuth Token (xoxb-…) "
        "under OAuth & Permissions of your Slack app"
    ) in proc.stderr


@pytest.mark.parametrize("teams", [True, False], ids=["teams", "slack-only"])
@pytest.mark.parametrize(
    ("slack", "missing"),
    [
        ({"SLACK_BOT_TOKEN": TOKEN}, "SLACK_SIGNING_SECRET is not set: export it with the Signing Secret"),
        ({"SLACK_SIGNING_SECRET": SIGNING}, "SLACK_BOT_TOKEN is not set: export it with the Bot User"),
    ],
    ids=["token-only", "secret-only"],
)
def test_half_a_slack_config_is_an_error_naming_the_missing_variable(
    tmp_path: Path, teams: bool, slack: dict[str, str], missing: str
) -> None:
    proc = run_serve(tmp_path, teams, **slack)
    assert proc.returncode == 2, proc.stderr
    assert f"watchfloor serve: {missing}" in proc.stderr
    output = proc.stdout + proc.stderr
    assert TOKEN not in output and SIGNING not in output and "slack not configured" not in output
