"""The alert buttons: **Relevant** / **Not relevant** (feedback) and **Mute topic here 24 h**.

Thin, as every listener: `ack()` at once, then parse the button (`bot.feedback`), record (the store, in a
thread: it is synchronous), re-render (`bot.render.slack`) and answer the clicker ephemerally through the
action's `response_url`.

- Feedback: one verdict per user per alert, the latest counts; the alert message is updated with
  `chat.update` to show who said what ("Not relevant — @ana"), and the verdict becomes a training label for
  the topic (`bot.topic_models.feedback_examples`).
- Mute: anyone in the channel may mute from the button (the button sits on the very message that is
  noise to them, it asks for confirmation, and it lasts 24 h); the `/news mute` subcommand, which takes any
  duration, is for `slack.admins`. Who muted is recorded and named in the confirmation.

A button whose value is not what Watchfloor put there, or whose alert is gone, gets a plain ephemeral
explanation; an unexpected failure is logged with an incident id, and the reply names that id, never a
stack trace.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import Deps
from bot.feedback import ButtonValueError, Verdict, parse_button_value, verdict_of
from bot.render.slack import (
    ACTION_MUTE_24H,
    ACTION_NOT_RELEVANT,
    ACTION_RELEVANT,
    VERDICT_LABELS,
    escape_mrkdwn,
    slack_date,
    sources_line_update,
)
from bot.render.slack_replies import error_reply
from bot.store import StoredAlert

log = logging.getLogger(__name__)

MUTE_BUTTON_FOR = timedelta(hours=24)


class ButtonProblem(Exception):
    """A click that cannot be carried out; the message (mrkdwn, escaped) tells the user why."""


@dataclass(frozen=True)
class Click:
    """What the listeners need of a `block_actions` payload."""

    action_id: str
    value: Any
    user: str
    channel: str
    message_ts: str


def click_of(body: dict[str, Any]) -> Click:
    """The clicked button, its user, and the message it sits on (`container`, else `channel`/`message`)."""
    actions = body.get("actions") or [{}]
    action = actions[0] if isinstance(actions[0], dict) else {}
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id") or ""
    ts = container.get("message_ts") or (body.get("message") or {}).get("ts") or ""
    return Click(
        action_id=str(action.get("action_id") or ""),
        value=action.get("value"),
        user=str((body.get("user") or {}).get("id") or ""),
        channel=str(channel),
        message_ts=str(ts),
    )


def _topic_title(deps: Deps, topic: str) -> str:
    for t in deps.config().topics:
        if t.id == topic:
            return t.title
    return topic


async def _alert_of(deps: Deps, click: Click) -> StoredAlert:
    """The stored alert the button names, checked against the message it was clicked on."""
    if not click.user:
        raise ButtonProblem("Slack did not say who clicked, so the click was not recorded.")
    try:
        value = parse_button_value(click.value)
    except ButtonValueError as exc:
        raise ButtonProblem(
            f"This button could not be read: {escape_mrkdwn(str(exc))}. "
            "Use the buttons on an alert Watchfloor posted, or `/news latest` to find the alert."
        ) from None
    stored = await asyncio.to_thread(deps.store.find_alert, value.alert_id)
    if stored is None:
        raise ButtonProblem(
            "This alert is no longer stored (the database was reset or the alert expired), so the click "
            "was not recorded."
        )
    # A value edited to name another alert must not update (or be counted on) the wrong message.
    if stored.alert.topic != value.topic or (
        stored.remote_ref and click.channel and stored.remote_ref != f"{click.channel}:{click.message_ts}"
    ):
        raise ButtonProblem(
            "This button does not belong to the alert it is on, so the click was not recorded."
        )
    return stored


async def record_verdict(deps: Deps, client: AsyncWebClient, click: Click) -> str:
    """Record the click's verdict, update the alert message, and return the confirmation (mrkdwn)."""
    verdict: Verdict = verdict_of(click.action_id)
    stored = await _alert_of(deps, click)
    await asyncio.to_thread(deps.store.record_feedback, stored.alert.id, click.user, verdict, deps.clock())
    verdicts = await asyncio.to_thread(deps.store.feedback_for_alert, stored.alert.id)
    title = _topic_title(deps, stored.alert.topic)
    if click.channel and click.message_ts:
        await _update_message(deps, client, stored, title, verdicts, click)
    label = VERDICT_LABELS[verdict].lower()
    return (
        f"Marked {label}: this teaches *{escape_mrkdwn(title)}*. Click the other button to change your mind."
    )


async def _update_message(
    deps: Deps,
    client: AsyncWebClient,
    stored: StoredAlert,
    title: str,
    verdicts: dict[str, Verdict],
    click: Click,
) -> None:
    # Best effort: the verdict is stored either way; a stale feedback line is not worth failing the click.
    sources = await asyncio.to_thread(deps.store.story_sources, stored.alert.story)
    fresh = replace(stored, n_sources=max(stored.n_sources, len(sources)))
    message = sources_line_update(
        fresh,
        title,
        ts=click.message_ts,
        extra_sources=[s for s in sources if s != stored.source],
        feedback=verdicts,
    )
    try:
        await client.chat_update(channel=click.channel, **message)
    except Exception as exc:
        log.warning(
            "feedback message not updated alert=%s channel=%s error=%s", stored.alert.id, click.channel, exc
        )


async def mute_here(deps: Deps, click: Click) -> str:
    """Mute the alert's topic at the alert's destination for 24 h; return the confirmation (mrkdwn)."""
    stored = await _alert_of(deps, click)
    until = deps.clock() + MUTE_BUTTON_FOR
    # The alert's own destination (`slack:#name`), not the channel id of the click: it is what delivery
    # and routing know the channel by.
    ends = await asyncio.to_thread(
        deps.store.mute, stored.alert.topic, stored.alert.destination, until, click.user
    )
    title = escape_mrkdwn(_topic_title(deps, stored.alert.topic))
    return (
        f":mute: Muted *{title}* in this channel until {slack_date(ends)}, by <@{click.user}>. "
        f"`/news unmute {escape_mrkdwn(stored.alert.topic)}` ends it sooner."
    )


async def _answer(respond: AsyncRespond | None, client: AsyncWebClient, click: Click, text: str) -> None:
    """An ephemeral reply to the clicker: through the response_url, else `chat.postEphemeral`."""
    try:
        if respond is not None:
            await respond(text=text, response_type="ephemeral", replace_original=False)
        elif click.channel and click.user:
            await client.chat_postEphemeral(channel=click.channel, user=click.user, text=text)
    except Exception:  # nothing more can reach the user; the log must say what was lost
        log.exception("button answer failed action=%s user=%s", click.action_id, click.user)


def register(app: AsyncApp, deps: Deps) -> None:
    async def on_feedback(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond | None
    ) -> None:
        await ack()
        click = click_of(body)
        await _answer(respond, client, click, await _run(click, record_verdict(deps, client, click)))

    async def on_mute(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond | None
    ) -> None:
        await ack()
        click = click_of(body)
        await _answer(respond, client, click, await _run(click, mute_here(deps, click)))

    app.action(ACTION_RELEVANT)(on_feedback)
    app.action(ACTION_NOT_RELEVANT)(on_feedback)
    app.action(ACTION_MUTE_24H)(on_mute)


async def _run(click: Click, work: Awaitable[str]) -> str:
    """The confirmation, or what went wrong: a problem as is, anything else as an incident id."""
    try:
        return await work
    except ButtonProblem as exc:
        return f":warning: {exc}"
    except Exception:
        incident = uuid.uuid4().hex[:10]
        log.exception(
            "button failed incident=%s action=%s user=%s value=%r",
            incident,
            click.action_id,
            click.user,
            str(click.value)[:200],
        )
        return str(error_reply(incident)["text"])
