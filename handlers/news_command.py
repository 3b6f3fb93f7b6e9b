"""The `/news` slash command (its name comes from `slack.command` in config.toml).

Thin, as every listener: `ack()` at once (Slack wants an answer within 3 s), then parse the text, ask
`bot.queries` (in a thread: the store is synchronous), render with `bot.render.slack_replies`, and
`respond()` to the command's `response_url`. Ephemeral unless the user ends with `share` / `--share`.

Whatever goes wrong, the user gets an answer: a mistyped subcommand, topic, filter or duration gets what
was wrong, a "did you mean", and the usage line; an unexpected failure is logged with an incident id and
the reply names that id, never a stack trace.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot import queries
from bot.app import Deps
from bot.channels import is_channel_name
from bot.config import TopicConfig
from bot.digest import build_digest, routed_topics
from bot.durations import DurationError, format_duration, parse_duration
from bot.items import Item, TopicScore
from bot.render import slack_replies as render
from bot.render.slack_digest import digest_reply
from bot.render.slack_replies import PLANNED, SUBCOMMANDS, Reply, fit

log = logging.getLogger(__name__)

LATEST_DEFAULT = 10
LATEST_MAX = 20
SEARCH_RESULTS = 10
SEARCH_WORDS_MAX = 12
SEARCH_FILTERS = ("topic", "source", "since")
SHARE_WORDS = ("share", "--share")
MUTE_DEFAULT = timedelta(hours=24)
MUTE_MAX = timedelta(days=365)
DIGEST_DEFAULT = timedelta(hours=24)
DIGEST_MAX = timedelta(days=90)
DIGEST_PER_TOPIC = 5  # stories per topic, unless a [[digests]] entry for the channel says otherwise
DIGEST_ONE_TOPIC = 10  # stories listed when one topic is asked for

# Slack sends `&`, `<`, `>` typed by the user as entities, and links it recognised as `<url>` or
# `<url|label>`; what the user meant is the URL and the plain characters.
_SLACK_LINK = re.compile(r"<((?:https?|mailto):[^<>|]+)(?:\|[^<>]*)?>")
_FILTER = re.compile(r"^([A-Za-z]+):(.*)$")


class CommandProblem(Exception):
    """Bad input: `problem` (escaped mrkdwn) is shown with `suggestions` and the subcommand's usage."""

    def __init__(self, problem: str, suggestions: Sequence[str] = (), usage: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.suggestions = list(suggestions)
        self.usage = usage


@dataclass(frozen=True)
class Request:
    sub: str
    args: list[str]
    share: bool


def slack_text(raw: str) -> str:
    """The command text as the user typed it: Slack's link markup and entities undone."""
    text = _SLACK_LINK.sub(lambda m: m.group(1), raw)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def parse_request(raw: str) -> Request:
    tokens = slack_text(raw).split()
    share = False
    if "--share" in tokens:
        tokens = [t for t in tokens if t != "--share"]
        share = True
    if tokens and tokens[-1].lower() == "share":
        tokens.pop()
        share = True
    if not tokens:
        return Request("help", [], share)
    return Request(tokens[0].lower(), tokens[1:], share)


def close_matches(word: str, choices: Sequence[str], n: int = 2) -> list[str]:
    return difflib.get_close_matches(word.lower(), list(choices), n=n, cutoff=0.6)


def resolve_topic(topics: Sequence[TopicConfig], raw: str, usage: str) -> TopicConfig:
    wanted = raw.lower()
    for t in topics:
        if t.id == wanted:
            return t
    ids = [t.id for t in topics]
    known = ", ".join(f"`{i}`" for i in ids) or "none configured"
    raise CommandProblem(
        f"There is no topic `{fit(raw, 80)}`. Topics: {known}.", close_matches(wanted, ids), usage
    )


# -- subcommands: each parses its arguments, queries, renders ------------------------------------------


async def cmd_help(deps: Deps, name: str, args: list[str]) -> Reply:
    return render.help_reply(name)


async def cmd_latest(deps: Deps, name: str, args: list[str]) -> Reply:
    usage = SUBCOMMANDS["latest"][0]
    config = deps.config()
    if len(args) > 2:
        raise CommandProblem(f"`latest` takes a topic and a number, not {len(args)} words.", usage=usage)
    topic: TopicConfig | None = None
    n = LATEST_DEFAULT
    for arg in args:
        if arg.isdigit():
            n = int(arg)
            if not 1 <= n <= LATEST_MAX:
                raise CommandProblem(f"n is {n}: use a number from 1 to {LATEST_MAX}.", usage=usage)
        elif topic is None:
            topic = resolve_topic(config.topics, arg, usage)
        else:
            raise CommandProblem(f"`{fit(arg, 80)}` is not a number of items.", usage=usage)
    found = await asyncio.to_thread(queries.latest_alerted, deps.store, topic.id if topic else None, n)
    return render.latest_reply(found, topic, {t.id: t.title for t in config.topics})


async def cmd_topics(deps: Deps, name: str, args: list[str]) -> Reply:
    if args:
        raise CommandProblem("`topics` takes no arguments.", usage=SUBCOMMANDS["topics"][0])
    config = deps.config()
    activity = await asyncio.to_thread(queries.topic_activity, deps.store, deps.clock())
    quality = await asyncio.to_thread(queries.topic_quality, deps.store, [t.id for t in config.topics])
    return render.topics_reply(config.topics, activity, quality)


async def cmd_status(deps: Deps, name: str, args: list[str]) -> Reply:
    if args:
        raise CommandProblem("`status` takes no arguments.", usage=SUBCOMMANDS["status"][0])
    report = await asyncio.to_thread(queries.status_report, deps.store)
    report = queries.with_configured_digests(report, [d.destination for d in deps.config().digests])
    return render.status_reply(report, deps.model_versions(), deps.clock())


async def cmd_search(deps: Deps, name: str, args: list[str]) -> Reply:
    usage = SUBCOMMANDS["search"][0]
    config = deps.config()
    words: list[str] = []
    filters: dict[str, str] = {}
    for arg in args:
        m = _FILTER.match(arg)
        key = m.group(1).lower() if m else ""
        if m and key in SEARCH_FILTERS:
            if not m.group(2):
                raise CommandProblem(f"`{key}:` needs a value, like `{key}:…`.", usage=usage)
            filters[key] = m.group(2)
        elif m and not m.group(2).startswith("//") and close_matches(key, SEARCH_FILTERS, 1):
            raise CommandProblem(
                f"`{fit(key, 40)}:` is not a search filter.",
                [f"{s}:" for s in close_matches(key, SEARCH_FILTERS, 1)],
                usage,
            )
        else:
            words.append(arg)
    if not words:
        raise CommandProblem("`search` needs at least one word to look for.", usage=usage)
    if len(words) > SEARCH_WORDS_MAX:
        raise CommandProblem(f"{len(words)} words: search takes at most {SEARCH_WORDS_MAX}.", usage=usage)
    topic = resolve_topic(config.topics, filters["topic"], usage) if "topic" in filters else None
    since = None
    if "since" in filters:
        try:
            since = deps.clock() - parse_duration(filters["since"])
        except DurationError as exc:
            raise CommandProblem(f"`since:` {fit(str(exc), 300)}.", usage=usage) from None
    source = filters.get("source")
    if source is not None:
        known = await asyncio.to_thread(queries.source_names, deps.store)
        names = sorted({s.name for s in config.sources} | set(known))
        if source.lower() not in {n.lower() for n in names}:
            listed = ", ".join(f"`{fit(n, 80)}`" for n in names[:20]) or "none yet"
            raise CommandProblem(
                f"There is no source `{fit(source, 80)}`. Sources: {listed}.",
                difflib.get_close_matches(source, names, n=2, cutoff=0.6),
                usage,
            )
    hits = await asyncio.to_thread(
        queries.search_items,
        deps.store,
        words,
        topic=topic.id if topic else None,
        source=source,
        since=since,
        limit=SEARCH_RESULTS,
    )
    shown = " ".join([*words, *(f"{k}:{v}" for k, v in filters.items())])
    return render.search_reply(shown, hits)


async def cmd_explain(deps: Deps, name: str, args: list[str]) -> Reply:
    usage = SUBCOMMANDS["explain"][0]
    if len(args) != 1:
        raise CommandProblem("`explain` takes one item id or URL.", usage=usage)
    item = await asyncio.to_thread(queries.find_item, deps.store, args[0])
    if item is None:
        raise CommandProblem(
            f"No stored item has the id or URL `{fit(args[0], 200)}`. Ids are shown by `latest` and `search`.",
            usage=usage,
        )
    recomputed: list[TopicScore] | None = None
    scorer = deps.scorer()
    if scorer is not None:
        plain = Item(item.id, item.url, item.title, item.text, item.published, item.source)
        try:
            recomputed = await asyncio.to_thread(scorer.explain_all, plain)
        except Exception:  # the stored scores still answer the question
            log.exception("explain recompute failed item=%s", item.id)
    return render.explain_reply(item, deps.config().topics, recomputed)


@dataclass(frozen=True)
class Caller:
    """Who ran the command, and where: routing and muting subcommands act on this channel."""

    user: str
    channel_id: str
    channel_name: str = ""

    @property
    def destination(self) -> str:
        return f"slack:{self.channel_id}"

    def routed_by_config(self, topic: TopicConfig) -> bool:
        """Whether config.toml sends `topic` here: by channel id or by `#name`."""
        here = {self.destination.lower()}
        if self.channel_name:
            here.add(f"slack:#{self.channel_name}".lower())
        return any(d.lower() in here for d in topic.destinations)


def _one_topic(deps: Deps, sub: str, args: list[str], extra: str = "") -> TopicConfig:
    usage = SUBCOMMANDS[sub][0]
    if not args:
        raise CommandProblem(f"`{sub}` needs a topic{extra}.", usage=usage)
    limit = 4 if sub == "mute" else 1  # a duration may be written `1h 30m` or `3 parsecs`
    if len(args) > limit:
        raise CommandProblem(f"`{sub}` takes a topic{extra}, not {len(args)} words.", usage=usage)
    return resolve_topic(deps.config().topics, args[0], usage)


async def cmd_mute(deps: Deps, name: str, args: list[str], caller: Caller) -> Reply:
    topic = _one_topic(deps, "mute", args, " and a duration")
    length = MUTE_DEFAULT
    if len(args) > 1:
        try:
            length = parse_duration(" ".join(args[1:]))
        except DurationError as exc:
            raise CommandProblem(fit(str(exc), 300) + ".", usage=SUBCOMMANDS["mute"][0]) from None
        if length > MUTE_MAX:
            raise CommandProblem(
                f"{format_duration(length)} is longer than a mute may last: at most 365d "
                f"(`{name} unmute` ends one sooner).",
                usage=SUBCOMMANDS["mute"][0],
            )
    asked = deps.clock() + length
    ends = await asyncio.to_thread(deps.store.mute, topic.id, caller.destination, asked, caller.user)
    await asyncio.to_thread(deps.store.set_aside_muted, deps.clock())
    return render.mute_reply(name, topic, ends, asked, caller.user)


async def cmd_unmute(deps: Deps, name: str, args: list[str], caller: Caller) -> Reply:
    topic = _one_topic(deps, "unmute", args)
    ended = await asyncio.to_thread(deps.store.unmute, topic.id, caller.destination)
    return render.unmute_reply(name, topic, ended)


async def cmd_subscribe(deps: Deps, name: str, args: list[str], caller: Caller) -> Reply:
    topic = _one_topic(deps, "subscribe", args)
    by_config = caller.routed_by_config(topic)
    added = False
    if not by_config:
        added = await asyncio.to_thread(
            deps.store.subscribe, topic.id, caller.destination, caller.user, deps.clock()
        )
    return render.subscribe_reply(name, topic, added, by_config)


async def cmd_unsubscribe(deps: Deps, name: str, args: list[str], caller: Caller) -> Reply:
    topic = _one_topic(deps, "unsubscribe", args)
    removed = await asyncio.to_thread(deps.store.unsubscribe, topic.id, caller.destination)
    return render.unsubscribe_reply(name, topic, removed, caller.routed_by_config(topic))


async def cmd_digest(deps: Deps, name: str, args: list[str], caller: Caller | None) -> Reply:
    """The digest on demand: the topics routed to this channel (all topics when none is), or the one
    topic given, since a time ago (default 24h). Nothing is queued or sent: the reply only shows it."""
    usage = SUBCOMMANDS["digest"][0]
    config = deps.config()
    topic: TopicConfig | None = None
    rest = args
    if args and not args[0][:1].isdigit():
        topic = resolve_topic(config.topics, args[0], usage)
        rest = args[1:]
    length = DIGEST_DEFAULT
    if rest:
        try:
            length = parse_duration(" ".join(rest))
        except DurationError as exc:
            raise CommandProblem(f"`since`: {fit(str(exc), 300)}.", usage=usage) from None
        if length > DIGEST_MAX:
            raise CommandProblem(
                f"{format_duration(length)} is further back than a digest looks: at most 90d.", usage=usage
            )
    here = [caller.destination, f"slack:#{caller.channel_name}"] if caller and caller.channel_id else []
    per_topic = next(
        (d.per_topic for d in config.digests if d.destination.lower() in {h.lower() for h in here}),
        DIGEST_PER_TOPIC,
    )
    if topic is not None:
        topic_ids = [topic.id]
        per_topic = max(per_topic, DIGEST_ONE_TOPIC)
    else:
        routed = await asyncio.to_thread(routed_topics, config, deps.store, here)
        topic_ids = routed or [t.id for t in config.active_topics]
    now, where = deps.clock(), here[0] if here else "slack"
    # Muted topics are shown, unlike in the scheduled digest: a mute silences what Watchfloor posts to the
    # channel unasked, while this reply was asked for by name, goes only to the one who asked (unless they
    # add `share`), and changes no period, so a topic muted here stays reachable on demand.
    digest = await asyncio.to_thread(
        build_digest, deps.store, config, where, topic_ids, now - length, now, per_topic
    )
    titles = [t.title for t in config.topics if t.id in topic_ids]
    return digest_reply(digest, titles, f"last {format_duration(length)}")


Subcommand = Callable[[Deps, str, list[str]], Awaitable[Reply]]
AdminSubcommand = Callable[[Deps, str, list[str], Caller], Awaitable[Reply]]
ChannelSubcommand = Callable[[Deps, str, list[str], Caller | None], Awaitable[Reply]]

HANDLERS: dict[str, Subcommand] = {
    "help": cmd_help,
    "latest": cmd_latest,
    "topics": cmd_topics,
    "status": cmd_status,
    "search": cmd_search,
    "explain": cmd_explain,
}

# Subcommands that change routing or muting: run only for `slack.admins`.
ADMIN_HANDLERS: dict[str, AdminSubcommand] = {
    "mute": cmd_mute,
    "unmute": cmd_unmute,
    "subscribe": cmd_subscribe,
    "unsubscribe": cmd_unsubscribe,
}

# Subcommands about the channel they are asked in, open to everyone.
CHANNEL_HANDLERS: dict[str, ChannelSubcommand] = {
    "digest": cmd_digest,
}


def _in_channel(sub: ChannelSubcommand, caller: Caller | None) -> Subcommand:
    async def run(deps: Deps, name: str, args: list[str]) -> Reply:
        return await sub(deps, name, args, caller)

    return run


async def answer(deps: Deps, name: str, text: str, caller: Caller | None = None) -> tuple[Reply, bool]:
    """The reply to `/news <text>` and whether to share it. Raises only on unexpected failures.

    `caller` (who ran it, in which channel) is needed by the admin subcommands; without one they refuse."""
    request = parse_request(text)
    if request.sub in ADMIN_HANDLERS:
        admins = deps.config().slack.admins
        if caller is None or not caller.channel_id or caller.user not in admins:
            return render.admin_refusal(name, request.sub, caller.user if caller else "", admins), False
        try:
            # Routing and muting answers are about this channel's set-up: never shared.
            return await ADMIN_HANDLERS[request.sub](deps, name, request.args, caller), False
        except CommandProblem as exc:
            return render.problem_reply(name, exc.problem, exc.suggestions, exc.usage), False
    handler = HANDLERS.get(request.sub)
    if handler is None and request.sub in CHANNEL_HANDLERS:
        handler = _in_channel(CHANNEL_HANDLERS[request.sub], caller)
    if handler is None:
        if request.sub in PLANNED:
            return render.planned_reply(name, request.sub), request.share
        suggestions = close_matches(request.sub, [*HANDLERS, *CHANNEL_HANDLERS, *ADMIN_HANDLERS, *PLANNED])
        problem = f"`{fit(request.sub, 80)}` is not a `{name}` subcommand."
        return render.problem_reply(name, problem, suggestions), False
    try:
        return await handler(deps, name, request.args), request.share
    except CommandProblem as exc:
        return render.problem_reply(name, exc.problem, exc.suggestions, exc.usage), False


async def _note_channel(deps: Deps, caller: Caller) -> None:
    """Remember the channel's name, so that `slack:#name` in config.toml and this channel's id-keyed
    subscriptions and mutes are known to be one channel (bot/channels.py). The command is answered even if
    this fails: the name is seen again at the next command."""
    if not caller.channel_id or not is_channel_name(caller.channel_name):
        return
    try:
        await asyncio.to_thread(deps.store.note_channel, caller.channel_id, caller.channel_name, deps.clock())
    except Exception as exc:
        log.warning("channel name not recorded channel=%s error=%s", caller.channel_id, type(exc).__name__)


def register(app: AsyncApp, deps: Deps) -> None:
    name = deps.config().slack.command

    async def on_news(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        try:
            caller = Caller(
                str(command.get("user_id") or ""),
                str(command.get("channel_id") or ""),
                str(command.get("channel_name") or ""),
            )
            await _note_channel(deps, caller)
            reply, share = await answer(deps, name, command.get("text") or "", caller)
        except Exception:
            incident = uuid.uuid4().hex[:10]
            log.exception(
                "command failed incident=%s command=%s user=%s text=%r",
                incident,
                name,
                command.get("user_id"),
                (command.get("text") or "")[:200],
            )
            reply, share = render.error_reply(incident), False
        try:
            sent = await respond(**reply, response_type="in_channel" if share else "ephemeral")
        except Exception:  # nothing more can reach the user; the log must say what was lost
            log.exception("respond failed command=%s user=%s", name, command.get("user_id"))
            return
        if sent.status_code != 200:
            log.error(
                "respond refused command=%s user=%s status=%s body=%s",
                name,
                command.get("user_id"),
                sent.status_code,
                sent.body[:300],
            )

    app.command(name)(on_news)
