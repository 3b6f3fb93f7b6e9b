"""`watchfloor manifest`: the Slack app manifest that matches the config, ready to paste.

A user creates the Slack app at api.slack.com/apps → Create New App → From a manifest, and pastes what
this prints. The manifest carries exactly what the code needs:

- the slash command named in `[slack].command` (default `/news`), with its subcommands as the usage hint;
- the bot scopes in `BOT_SCOPES`, each one there because a Web API method or event the code uses needs it
  (`METHOD_SCOPES` says which; a test scans `bot/` and `handlers/` for Web API calls and fails on a method
  this module does not know, so the manifest cannot silently fall behind the code);
- interactivity (the alert buttons), the `app_home_opened` and `app_mention` events, the Home tab;
- Socket Mode on or off. In Socket Mode Slack needs no URL at all; in HTTP mode every request URL is
  `<base>/slack/events`, the one path `watchfloor serve` answers (Bolt routes commands, events and
  interactions from it).

Slack reads YAML or JSON. PyYAML is not a dependency, so `render_manifest` writes the small YAML subset a
manifest needs itself: block mappings and sequences, plain scalars only where they cannot be read as
anything but the same string, double-quoted (JSON-style escapes, which YAML shares) everywhere else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from bot.config import Config

# Where `watchfloor serve` (Bolt's default path) receives slash commands, events and interactions.
EVENTS_PATH = "/slack/events"

APP_NAME = "Watchfloor"
DESCRIPTION = "News alerts on your watch topics, each with the reason it fired."
LONG_DESCRIPTION = (
    "Watchfloor polls the news feeds you choose, scores every item against your watch topics and posts "
    "one alert per story to the channels each topic is routed to: the title as a link, the source, a "
    "short summary and why it fired. Later reports of the same story go into the alert's thread. Mark "
    "alerts Relevant or Not relevant to teach each topic, mute a noisy topic for a while, and ask "
    "questions with the slash command: latest, search, topics, digest, status and explain."
)
COMMAND_DESCRIPTION = "Watchfloor news alerts: latest, search, topics, digest, status, mute, subscribe"
COMMAND_USAGE_HINT = (
    "help | latest [topic] [n] | search <words> | topics | digest [topic] | status | explain <id|url> | "
    "mute <topic> [duration] | unmute <topic> | subscribe <topic> | unsubscribe <topic>"
)

# The bot token scopes, least privilege: each names the code that needs it. Not requested, on purpose:
# chat:write.public (the bot posts only where it was invited, and reading history needs membership anyway),
# im:*/mpim:* (alerts go to channels, not DMs), metadata.message:read (only for *events* about metadata;
# posting metadata needs nothing extra and reading it back in conversations.history needs only *:history).
BOT_SCOPES: tuple[str, ...] = (
    # chat.postMessage: alerts and thread follow-ups (bot/delivery/slack.py), @mention answers in thread;
    # chat.update: the alert's "N sources" line and the feedback shown on it;
    # chat.postEphemeral: private replies and refusals to one user in a channel.
    "chat:write",
    # The slash command itself (`[slack].command`, /news by default); replies go through its response_url.
    "commands",
    # The app_mention event: "@Watchfloor latest on <topic>" answered in thread.
    "app_mentions:read",
    # conversations.history with include_all_metadata: after an uncertain send, find the message carrying
    # the alert id before posting again (bot/delivery/slack.py); conversations.replies: a story's thread.
    # channels:* for public channels, groups:* for private ones.
    "channels:history",
    "groups:history",
    # conversations.list: resolve a destination written "slack:#name" to its channel id for the history
    # check (bot/delivery/slack.py).
    "channels:read",
    "groups:read",
    # users.info: names for feedback lines ("Not relevant — @ana") and for matching `[slack].admins`.
    "users:read",
)

# Every Web API method the code calls (slack_sdk's snake_case name) and the bot scopes it needs: one of
# a group suffices when Slack accepts any of them (public vs private channels); every group must be in
# BOT_SCOPES. auth.test and views.publish (the Home tab) need no scope.
METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "auth_test": (),
    "chat_postMessage": ("chat:write",),
    "chat_update": ("chat:write",),
    "chat_postEphemeral": ("chat:write",),
    "conversations_history": ("channels:history", "groups:history"),
    "conversations_replies": ("channels:history", "groups:history"),
    "conversations_list": ("channels:read", "groups:read"),
    "conversations_info": ("channels:read", "groups:read"),
    "views_publish": (),
    "users_info": ("users:read",),
    # Socket Mode: called with the app-level token (scope connections:write), not a bot scope.
    "apps_connections_open": (),
}

# Events the app subscribes to. app_home_opened needs no scope; app_mention needs app_mentions:read.
BOT_EVENTS: tuple[str, ...] = ("app_home_opened", "app_mention")
EVENT_SCOPES: dict[str, tuple[str, ...]] = {"app_home_opened": (), "app_mention": ("app_mentions:read",)}


class ManifestError(ValueError):
    """A mode or URL that cannot make a working manifest; the message says what to pass instead."""


def events_url(base_url: str) -> str:
    """`https://host[/prefix]` → `https://host[/prefix]/slack/events`; the events URL itself is accepted too.

    Slack only calls https URLs, so anything else is refused rather than printed into a manifest Slack
    would reject on paste.
    """
    raw = base_url.strip()
    parts = urlsplit(raw)
    if parts.scheme != "https" or not parts.hostname:
        raise ManifestError(
            f"--url {base_url!r}: give the public https address Slack will call, e.g. https://watchfloor.example.com"
        )
    if parts.query or parts.fragment or any(c.isspace() for c in raw):
        raise ManifestError(
            f"--url {base_url!r}: give the base address only, without ?query, #fragment or spaces"
        )
    path = parts.path.rstrip("/")
    if path.endswith(EVENTS_PATH):
        path = path[: -len(EVENTS_PATH)]
    return f"https://{parts.netloc}{path}{EVENTS_PATH}"


def build_manifest(config: Config, *, socket_mode: bool, request_url: str | None) -> dict[str, Any]:
    """The manifest as plain data. `request_url` is the full events URL (see `events_url`), HTTP mode only."""
    if socket_mode and request_url:
        raise ManifestError("Socket Mode takes no request URL: pass either --socket or --url, not both")
    if not socket_mode and not request_url:
        raise ManifestError(
            "HTTP mode needs the public address Slack will call: --url https://your-host (or use --socket)"
        )
    url_field: dict[str, str] = {} if socket_mode or request_url is None else {"request_url": request_url}
    command: dict[str, Any] = {
        "command": config.slack.command,
        "description": COMMAND_DESCRIPTION,
        "usage_hint": COMMAND_USAGE_HINT,
        "should_escape": False,
    }
    if not socket_mode:
        command["url"] = request_url
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": APP_NAME,
            "description": DESCRIPTION,
            "long_description": LONG_DESCRIPTION,
            "background_color": "#1b2a3a",
        },
        "features": {
            "app_home": {"home_tab_enabled": True, "messages_tab_enabled": False},
            "bot_user": {"display_name": APP_NAME, "always_online": True},
            "slash_commands": [command],
        },
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES)}},
        "settings": {
            "event_subscriptions": {**url_field, "bot_events": list(BOT_EVENTS)},
            "interactivity": {"is_enabled": True, **url_field},
            "org_deploy_enabled": False,
            "socket_mode_enabled": socket_mode,
            "token_rotation_enabled": False,
        },
    }


# --- rendering -------------------------------------------------------------------------------------------

# A plain (unquoted) scalar is written only when YAML cannot read it as anything else: it starts with a
# letter, `/` or `_`, holds no indicator that could start a comment, a mapping, a flow collection, an alias
# or a tag, and is not one of the words YAML 1.1 or 1.2 read as booleans or null.
_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./:@,'()+ -]*")
# YAML 1.1 booleans and both versions' null.
_RESERVED = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"})
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _plain_ok(text: str) -> bool:
    return (
        bool(_PLAIN.fullmatch(text))
        and not text.endswith((" ", ":"))
        and ": " not in text
        and " #" not in text
        and text.lower() not in _RESERVED
    )


def _yaml_printable(code: int) -> bool:
    """YAML's c-printable, minus what it reads as a line break (NEL, LS, PS) or a byte order mark."""
    if code in (0x85, 0x2028, 0x2029, 0xFEFF):
        return False
    return (
        code in (0x09, 0x0A, 0x0D)
        or 0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def _quoted(text: str) -> str:
    """A double-quoted scalar: JSON's escapes (a subset of YAML's), plus \\u / \\U for what YAML may not hold raw."""
    out = json.dumps(text, ensure_ascii=False)
    if all(_yaml_printable(ord(c)) for c in out):
        return out
    pieces = []
    for c in out:
        code = ord(c)
        if _yaml_printable(code):
            pieces.append(c)
        elif code <= 0xFFFF:
            pieces.append(f"\\u{code:04x}")
        else:  # pragma: no cover - astral characters are all printable; kept for completeness
            pieces.append(f"\\U{code:08x}")
    return "".join(pieces)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value if _plain_ok(value) else _quoted(value)
    raise TypeError(f"cannot write {type(value).__name__} into a manifest")


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"manifest keys are strings, not {type(key).__name__}")
    return key if _KEY.fullmatch(key) and key.lower() not in _RESERVED else _quoted(key)


def _is_block(value: Any) -> bool:
    return isinstance(value, Mapping | list | tuple) and len(value) > 0


def _empty(value: Any) -> str:
    return "{}" if isinstance(value, Mapping) else "[]"


def _lines(value: Any, indent: int) -> list[str]:
    """Block-style lines for a non-empty mapping or sequence, each starting at `indent` spaces."""
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            if _is_block(v):
                out.append(f"{pad}{_key(k)}:")
                out.extend(_lines(v, indent + 2))
            elif isinstance(v, Mapping | list | tuple):
                out.append(f"{pad}{_key(k)}: {_empty(v)}")
            else:
                out.append(f"{pad}{_key(k)}: {_scalar(v)}")
        return out
    for item in value:
        if _is_block(item):
            # The item's first line shares the dash's line; the rest line up under it.
            inner = _lines(item, indent + 2)
            out.append(f"{pad}- {inner[0][indent + 2 :]}")
            out.extend(inner[1:])
        elif isinstance(item, Mapping | list | tuple):
            out.append(f"{pad}- {_empty(item)}")
        else:
            out.append(f"{pad}- {_scalar(item)}")
    return out


def to_yaml(data: Mapping[str, Any]) -> str:
    """Block-style YAML for plain data (str-keyed mappings, lists, str, int, bool, None)."""
    if not data:
        return "{}\n"
    return "\n".join(_lines(data, 0)) + "\n"


def render_manifest(manifest: Mapping[str, Any], fmt: Literal["yaml", "json"] = "yaml") -> str:
    """The manifest as Slack's editor takes it: YAML (the default) or JSON."""
    if fmt == "json":
        return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    if fmt == "yaml":
        return to_yaml(manifest)
    raise ValueError(f"unknown manifest format {fmt!r}: use 'yaml' or 'json'")


# --- the command -----------------------------------------------------------------------------------------


def resolve_socket_mode(socket_flag: bool, base_url: str | None) -> bool:
    """Which mode `watchfloor manifest` describes: `--socket` → Socket Mode, `--url` → HTTP, both → error.

    Neither → Socket Mode. That is the mode `watchfloor run` uses when `SLACK_APP_TOKEN` is set, and the
    only one that needs no public address, so it is also right for a first setup: the app-level token
    cannot be set yet, since it is created in the app this manifest makes.
    """
    if socket_flag and base_url:
        raise ManifestError("pass either --socket (Socket Mode) or --url https://host (HTTP mode), not both")
    return not base_url


def manifest_command(
    config: Config, socket_mode: bool, base_url: str | None, *, fmt: Literal["yaml", "json"] = "yaml"
) -> str:
    """The text `watchfloor manifest` prints. Raises ManifestError (a ValueError) with a usable message."""
    request_url = events_url(base_url) if base_url else None
    manifest = build_manifest(config, socket_mode=socket_mode, request_url=request_url)
    text = render_manifest(manifest, fmt)
    if fmt == "json":
        return text
    mode = "Socket Mode" if socket_mode else f"HTTP mode, requests to {request_url}"
    header = (
        f"# Watchfloor Slack app manifest ({mode}).\n"
        "# Paste it at https://api.slack.com/apps → Create New App → From a manifest.\n"
    )
    return header + text
