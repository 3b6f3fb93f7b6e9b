"""The composition root of the Slack side: `build_app(config, deps)` makes the Bolt `AsyncApp`.

Nothing is created at import time. Tokens come from the environment (`SLACK_BOT_TOKEN`,
`SLACK_SIGNING_SECRET`), never from config.toml; `SLACK_API_URL` points the Web API client elsewhere (a
proxy, or the fake Slack in tests). Listeners are attached in one place, `handlers.register`.
`slack_credentials` tells "Slack not configured" (neither variable set: a Teams-only `watchfloor serve`)
from "Slack half configured" (one of them set: an error naming the other).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
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


def slack_missing(name: str) -> SlackSetupError:
    """The error for an unset Slack variable: which one, and where in the Slack app's settings to find it."""
    where = {
        "SLACK_BOT_TOKEN": "the Bot User OAuth Token (xoxb-…) under OAuth & Permissions",
        "SLACK_SIGNING_SECRET": "the Signing Secret under Basic Information → App Credentials",
    }.get(name, "your Slack app's settings")
    return SlackSetupError(f"{name} is not set: export it with {where} of your Slack app")


def slack_env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise slack_missing(name)
    return value


@dataclass(frozen=True)
class SlackCredentials:
    """What the Bolt app needs to talk to Slack and check its requests; kept out of `repr` so that no log
    line or traceback can show them."""

    token: str = field(repr=False)
    signing_secret: str = field(repr=False)


def slack_credentials(environ: Mapping[str, str] = os.environ) -> SlackCredentials | None:
    """The token and signing secret from the environment; None when neither is set (Slack is not
    configured). Only one of them set is `SlackSetupError` naming the other: a half-configured Slack is a
    mistake, and serving without Slack would hide it."""
    token = environ.get("SLACK_BOT_TOKEN", "").strip()
    secret = environ.get("SLACK_SIGNING_SECRET", "").strip()
    if not token and not secret:
        return None
    if not token:
        raise slack_missing("SLACK_BOT_TOKEN")
    if not secret:
        raise slack_missing("SLACK_SIGNING_SECRET")
    return SlackCredentials(token, secret)


def build_app(config: Config, deps: Deps, credentials: SlackCredentials | None = None) -> AsyncApp:
    """The Bolt app with every listener registered, its Web API client at `SLACK_API_URL` when set.
    Without `credentials`, they are read from the environment (`SlackSetupError` when one is missing).

    Bolt's AsyncApp checks the token with `auth.test` on the first request (not here, at build time), at
    the same base URL: the fake Slack in tests answers it.
    """
    from handlers import register

    if credentials is None:
        credentials = SlackCredentials(slack_env("SLACK_BOT_TOKEN"), slack_env("SLACK_SIGNING_SECRET"))
    token, signing_secret = credentials.token, credentials.signing_secret
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
