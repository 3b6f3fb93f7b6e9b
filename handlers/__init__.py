"""Bolt listeners (the `/news` command; buttons and App Home later). Thin: parse → call `bot/` → render.

`register(app, deps)` is the one place listeners are attached; `bot.app.build_app` calls it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from handlers import news_command

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from bot.app import Deps


def register(app: AsyncApp, deps: Deps) -> None:
    """Attach every listener module's listeners to `app`."""
    news_command.register(app, deps)
    # Next: feedback.register(app, deps) (alert buttons), app_home.register(app, deps) (App Home and
    # app_mention), each a module of its own here.
