"""`@Watchfloor …` in a channel (`app_mention`), answered in the mention's thread.

Understood: `latest on <topic>`, `latest <topic> [n]`, `latest`, and `search <words> [topic:… source:…
since:7d]`. They run the very subcommands of the slash command (`handlers.news_command.cmd_latest` /
`cmd_search`: same parsing, queries and rendering), so a mention and `/news` always agree. Anything else
gets a short help; a mistyped topic gets the slash command's "did you mean".

Thin, as every listener: ack, parse, answer with `chat.postMessage` in the thread (the mention's own, or
the one it was written in). An unexpected failure is logged with an incident id and the reply names that
id, never a stack trace.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import Deps
from bot.render import slack_home
from bot.render import slack_replies as render
from bot.render.slack_replies import Reply
from handlers.news_command import CommandProblem, cmd_latest, cmd_search, slack_text

log = logging.getLogger(__name__)

# `<@U123>` or `<@U123|name>`: how Slack writes a user mention in the event text.
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def mention_request(text: str, bot_user_id: str | None) -> list[str]:
    """The words addressed to us: what follows the bot's first mention (or what precedes it, when it
    ends the message), its other mentions removed, Slack's link markup and entities undone. Without the
    bot's id, the first mention stands for it."""
    ours = [m for m in _MENTION.finditer(text) if bot_user_id is None or m.group(1) == bot_user_id]
    if ours:
        first = ours[0]
        after, before = text[first.end() :], text[: first.start()]
        text = after if after.strip() else before
        if bot_user_id:
            text = _MENTION.sub(lambda m: " " if m.group(1) == bot_user_id else m.group(0), text)
    return slack_text(text).split()


async def answer(deps: Deps, words: list[str]) -> Reply:
    """The reply to a mention's words. Raises only on unexpected failures."""
    config = deps.config()
    command = config.slack.command
    verb = words[0].lower() if words else ""
    args = words[1:]
    try:
        if verb == "latest":
            if args and args[0].lower() == "on":
                args = args[1:]
            return await cmd_latest(deps, command, args)
        if verb == "search":
            return await cmd_search(deps, command, args)
    except CommandProblem as exc:
        return render.problem_reply(slack_home.MENTION, exc.problem, exc.suggestions, exc.usage)
    return slack_home.mention_help_reply(command, config.active_topics, " ".join(words))


def register(app: AsyncApp, deps: Deps) -> None:
    async def on_mention(
        ack: AsyncAck, event: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        channel, ts = event.get("channel"), event.get("ts")
        if not channel or not ts:
            log.warning("app_mention without channel or ts keys=%s", sorted(event))
            return
        thread_ts = event.get("thread_ts") or ts
        try:
            reply = await answer(deps, mention_request(event.get("text") or "", context.bot_user_id))
        except Exception:
            incident = uuid.uuid4().hex[:10]
            log.exception(
                "mention failed incident=%s channel=%s user=%s text=%r",
                incident,
                channel,
                event.get("user"),
                (event.get("text") or "")[:200],
            )
            reply = render.error_reply(incident)
        try:
            await client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, unfurl_links=False, unfurl_media=False, **reply
            )
        except Exception:  # nothing more can reach the user; the log must say what was lost
            log.exception("mention reply failed channel=%s thread_ts=%s", channel, thread_ts)

    app.event("app_mention")(on_mention)
