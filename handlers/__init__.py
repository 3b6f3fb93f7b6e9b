"""Bolt listeners: the `/news` command, the alert buttons, App Home, mentions. Thin: parse → call `bot/` → render.

`register(app, deps)` is the one place listeners are attached; `bot.app.build_app` calls it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from handlers import app_home, feedback, mentions, news_command

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from bot.app import Deps


def register(app: AsyncApp, deps: Deps) -> None:
    """Attach every listener module's listeners to `app`."""
    news_command.register(app, deps)
    feedback.register(app, deps)
    app_home.register(app, deps)
    mentions.register(app, deps)
