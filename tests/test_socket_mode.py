"""`watchfloor run` with SLACK_APP_TOKEN: the Slack app joins the scheduler's process over Socket Mode.

The fake Slack opens the WebSocket (`apps.connections.open`), says hello, pushes a slash command envelope;
the app must ack the envelope and answer through the response_url, as Slack expects."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fakes.slack_api import FakeSlack
from support import FIXTURES

from bot.config import load_config
from bot.service import Service, start_socket_mode


async def _wait(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


def test_socket_mode_receives_a_command_acks_it_and_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_text((FIXTURES / "config" / "minimal.toml").read_text())
    with FakeSlack() as slack:
        monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
        monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-test")
        monkeypatch.setenv("SLACK_SIGNING_SECRET", "unused-in-socket-mode")
        monkeypatch.setenv("SLACK_API_URL", slack.base_url)

        async def scenario() -> None:
            async with Service(path, load_config(path)) as service:
                handler = await start_socket_mode(service)
                assert handler is not None
                try:
                    await _wait(lambda: slack.calls_to("apps.connections.open"))
                    payload = {
                        "command": "/news",
                        "text": "help",
                        "user_id": "U0ANA00001",
                        "user_name": "ana",
                        "channel_id": "C0ANALYSTS",
                        "team_id": "T0WATCH01",
                        "response_url": slack.response_url("socket-help"),
                        "trigger_id": "1.2.3",
                    }
                    await asyncio.sleep(0.2)  # let the client finish its hello
                    await asyncio.to_thread(slack.socket_send, "slash_commands", payload, "env-1")
                    await _wait(lambda: any(a.get("envelope_id") == "env-1" for a in slack.socket_acks))
                    await _wait(lambda: any(ident == "socket-help" for ident, _ in slack.responses))
                finally:
                    await handler.close_async()

        asyncio.run(scenario())
    [(_, reply)] = [r for r in slack.responses if r[0] == "socket-help"]
    assert "latest" in str(reply) and "search" in str(reply)
