"""The composition root of the Slack side: `build_app(config, deps)` makes the Bolt `AsyncApp`.

Nothing is created at import time. Tokens come from the environment (`SLACK_BOT_TOKEN`,
`SLACK_SIGNING_SECRET`), never from config.toml; `SLACK_API_URL` points the Web API client elsewhere (a
proxy, or the fake Slack in tests). Listeners are attached in one place, `handlers.register`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Config
from bot.items import Item, TopicScore
from bot.store import Store

log = logging.getLogger(__name__)


class Explainer(Protocol):
    """What `explain` needs of the scorer (`bot.scoring.TopicScorer` fits)."""

    def explain_all(self, item: Item, k: int = 8) -> list[TopicScore]: ...

    @property
    def topic_ids(self) -> list[str]: ...


def utcnow() -> datetime:
    return datetime.now(UTC)


def _no_scorer() -> Explainer | None:
    return None


@dataclass(frozen=True)
class Deps:
    """What the listeners need, and nothing more.

    `config` is a getter so a reloaded config.toml is seen without rebuilding the app (the command's name
    is read once, at registration). `scorer` may return None (the web process has not loaded the models):
    `explain` then shows the stored scores. `model_versions` gives topic → running model version.
    """

    store: Store
    config: Callable[[], Config]
    clock: Callable[[], datetime] = utcnow
    scorer: Callable[[], Explainer | None] = _no_scorer
    model_versions: Callable[[], dict[str, str]] = field(default=dict)


class SlackSetupError(Exception):
    """The environment lacks what the Slack app needs; the message says which variable and where to find it."""


def slack_env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        where = {
            "SLACK_BOT_TOKEN": "the Bot User OAuth Token (xoxb-…) under OAuth & Permissions",
            "SLACK_SIGNING_SECRET": "the Signing Secret under Basic Information → App Credentials",
        }.get(name, "your Slack app's settings")
        raise SlackSetupError(f"{name} is not set: export it with {where} of your Slack app")
    return value


def build_app(config: Config, deps: Deps) -> AsyncApp:
    """The Bolt app with every listener registered, its Web API client at `SLACK_API_URL` when set.

    Bolt's AsyncApp checks the token with `auth.test` on the first request (not here, at build time), at
    the same base URL: the fake Slack in tests answers it.
    """
    from handlers import register

    token = slack_env("SLACK_BOT_TOKEN")
    signing_secret = slack_env("SLACK_SIGNING_SECRET")
    base_url = os.environ.get("SLACK_API_URL", "").strip() or AsyncWebClient.BASE_URL
    if not base_url.endswith("/"):
        base_url += "/"
    app = AsyncApp(
        client=AsyncWebClient(token=token, base_url=base_url),
        signing_secret=signing_secret,
        # ack() answers Slack at once; the listener's slow work (queries, respond) continues after it.
        process_before_response=False,
        name="watchfloor",
    )
    register(app, deps)
    log.info("slack app built command=%s api=%s", config.slack.command, base_url)
    return app
