"""The App Home tab: published afresh for the user each time they open it (`app_home_opened`).

Thin, as every listener: ack, ask `bot.queries` (in a thread: the store is synchronous) for the active
topics' counts and latest alerts, render with `bot.render.slack_home`, `views.publish` for that user.
An unexpected failure is logged with an incident id and the tab shows that id, never a stack trace.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import queries
from bot.app import Deps
from bot.render import slack_home

log = logging.getLogger(__name__)

ALERTS_PER_TOPIC = 3


def _overview(deps: Deps) -> slack_home.View:
    """The Home view as of now (synchronous: run it in a thread)."""
    config = deps.config()
    now = deps.clock()
    topics = config.active_topics
    activity = queries.topic_activity(deps.store, now)
    latest = queries.latest_per_topic(deps.store, [t.id for t in topics], ALERTS_PER_TOPIC)
    return slack_home.home_view(topics, activity, latest, config.slack.command, now)


def register(app: AsyncApp, deps: Deps) -> None:
    async def on_home_opened(ack: AsyncAck, event: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        # The Messages tab fires the same event; only the Home tab shows a view.
        if event.get("tab", "home") != "home":
            return
        user = event.get("user")
        if not user:
            log.warning(
                "app_home_opened without a user event=%r", {k: event.get(k) for k in ("tab", "channel")}
            )
            return
        try:
            view = await asyncio.to_thread(_overview, deps)
        except Exception:
            incident = uuid.uuid4().hex[:10]
            log.exception("home view failed incident=%s user=%s", incident, user)
            view = slack_home.home_error_view(incident)
        try:
            await client.views_publish(user_id=user, view=view)
        except Exception:  # nothing more can reach the user; the log must say what was lost
            log.exception("views.publish failed user=%s", user)

    app.event("app_home_opened")(on_home_opened)
