"""`watchfloor manifest`: the Slack app manifest follows the config and the code, and parses back.

PyYAML is not a dependency, so the YAML is read back by a small reader for exactly the subset the emitter
writes (below); where PyYAML is installed, it reads the same text too. Plain scalars are the one place a
lenient reader could hide a bug (YAML 1.1 reads `yes` as true), so the emitter's choice to quote ambiguous
strings is checked on its own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fakes.slack_api import FakeSlack
from support import ROOT

from bot.config import Config
from bot.manifest import (
    BOT_EVENTS,
    BOT_SCOPES,
    EVENT_SCOPES,
    METHOD_SCOPES,
    ManifestError,
    build_manifest,
    events_url,
    manifest_command,
    render_manifest,
    resolve_socket_mode,
    to_yaml,
)

# ---- a reader for the emitter's YAML subset ---------------------------------------------------------------

_ENTRY = re.compile(r'([A-Za-z_][A-Za-z0-9_]*|"(?:[^"\\]|\\.)*"):(?: (.*))?$')


def _scalar(text: str) -> Any:
    if text.startswith('"'):
        return json.loads(text)  # the emitter's escapes are JSON's plus \uXXXX, which JSON also reads
    if text == "{}":
        return {}
    if text == "[]":
        return []
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    return text


def read_yaml(text: str) -> Any:
    lines = [
        (len(raw) - len(raw.lstrip(" ")), raw.strip(" "))
        for raw in text.splitlines()
        if raw.strip() and not raw.lstrip().startswith("#")
    ]

    def block(i: int, indent: int) -> tuple[Any, int]:
        if lines[i][1].startswith("- ") or lines[i][1] == "-":
            out_list: list[Any] = []
            while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
                rest = lines[i][1][2:]
                if rest.startswith("- ") or _ENTRY.match(rest):
                    lines[i] = (indent + 2, rest)  # the item's first line, moved under the dash
                    value, i = block(i, indent + 2)
                else:
                    value, i = _scalar(rest), i + 1
                out_list.append(value)
            return out_list, i
        out: dict[str, Any] = {}
        while i < len(lines) and lines[i][0] == indent:
            match = _ENTRY.match(lines[i][1])
            assert match, f"not a mapping entry: {lines[i][1]!r}"
            key = _scalar(match.group(1)) if match.group(1).startswith('"') else match.group(1)
            if match.group(2) is not None:
                out[key], i = _scalar(match.group(2)), i + 1
            else:
                assert i + 1 < len(lines) and lines[i + 1][0] > indent, f"{key}: has no value"
                out[key], i = block(i + 1, lines[i + 1][0])
        return out, i

    value, end = block(0, 0)
    assert end == len(lines), f"unread line: {lines[end][1]!r}"
    return value


# ---- fixtures ----------------------------------------------------------------------------------------------


def _config(command: str = "/news") -> Config:
    return Config.model_validate({"slack": {"command": command, "admins": ["U0ANA"]}})


URL = "https://watchfloor.example.com/slack/events"


@pytest.fixture(params=["socket", "http"])
def manifest(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "socket":
        return build_manifest(_config(), socket_mode=True, request_url=None)
    return build_manifest(_config(), socket_mode=False, request_url=URL)


# ---- parsing back ------------------------------------------------------------------------------------------


def test_yaml_reads_back_as_the_manifest(manifest: dict[str, Any]) -> None:
    assert read_yaml(render_manifest(manifest)) == manifest


def test_json_reads_back_as_the_manifest(manifest: dict[str, Any]) -> None:
    assert json.loads(render_manifest(manifest, fmt="json")) == manifest


def test_pyyaml_reads_the_same_manifest_when_installed(manifest: dict[str, Any]) -> None:
    yaml = pytest.importorskip("yaml")
    assert yaml.safe_load(render_manifest(manifest)) == manifest
    assert yaml.safe_load(manifest_command(_config(), True, None)) == build_manifest(
        _config(), socket_mode=True, request_url=None
    )


AMBIGUOUS = [
    "",
    "yes",
    "No",
    "ON",
    "off",
    "y",
    "N",
    "~",
    "null",
    "Null",
    "true",
    "1",
    "-1",
    "1.5",
    ".inf",
    "0x1f",
    "2024-01-01",
    "-x",
    "- x",
    "? x",
    "a: b",
    "a #b",
    "#c",
    "x:",
    " lead",
    "trail ",
    "[x]",
    "{y}",
    "*a",
    "&b",
    "!t",
    "%p",
    "@a",
    "`b",
    "|c",
    ">d",
    "'s",
    '"q"',
    "=",
    "<<",
    "a\nb",
]
ODD = [
    "tab\there",
    "nel\x85",
    "ls\u2028ps\u2029",
    "bom\ufeff",
    "del\x7f",
    "nul\x00",
    "é ü 😀",
    'back\\slash "q"',
]


def test_ambiguous_strings_are_quoted_and_read_back() -> None:
    data = {"values": AMBIGUOUS + ODD}
    text = to_yaml(data)
    for line in text.splitlines()[1:]:
        assert line.startswith('  - "'), f"not quoted: {line!r}"
    for char in "\x85\u2028\u2029\ufeff\x7f\x00":
        assert char not in text, f"{char!r} written raw"
    assert read_yaml(text) == data


def test_safe_strings_stay_plain_for_readability() -> None:
    text = to_yaml(
        {"a": ["chat:write", "/news", "https://h.example/slack/events", "Watchfloor", "app_mention"]}
    )
    assert "- chat:write\n" in text and "- /news\n" in text and "- https://h.example/slack/events\n" in text


def test_nested_and_empty_collections_read_back() -> None:
    data: dict[str, Any] = {
        "a": {},
        "b": [],
        "c": [[1, 2], [{"k": "v", "m": {"n": [], "o": [{"p": True, "q": None}]}}]],
        "d": [{"x": {"y": "z"}, "w": [1]}],
        "key with space": "v",
        "yes": 0,
    }
    assert read_yaml(to_yaml(data)) == data
    yaml = pytest.importorskip("yaml")
    assert yaml.safe_load(to_yaml(data)) == data


def test_unsupported_values_are_refused() -> None:
    with pytest.raises(TypeError):
        to_yaml({"a": 1.5})
    with pytest.raises(ValueError, match="format"):
        render_manifest({}, fmt="toml")  # type: ignore[arg-type]


# ---- what the manifest says --------------------------------------------------------------------------------


def test_command_follows_the_config() -> None:
    text = manifest_command(_config("/watch"), True, None)
    data = read_yaml(text)
    [command] = data["features"]["slash_commands"]
    assert command["command"] == "/watch"
    assert command["should_escape"] is False
    for sub in ("help", "latest", "search", "topics", "digest", "status", "explain", "mute", "subscribe"):
        assert sub in command["usage_hint"]
    assert "/news" not in text


def test_socket_mode_has_no_request_urls() -> None:
    data = read_yaml(manifest_command(_config(), True, None))
    settings = data["settings"]
    assert settings["socket_mode_enabled"] is True
    assert "request_url" not in settings["event_subscriptions"]
    assert settings["interactivity"] == {"is_enabled": True}
    assert "url" not in data["features"]["slash_commands"][0]
    assert "http" not in json.dumps(data["settings"]) + json.dumps(data["features"])


def test_http_mode_sends_everything_to_slack_events() -> None:
    data = read_yaml(manifest_command(_config(), False, "https://watchfloor.example.com"))
    settings = data["settings"]
    assert settings["socket_mode_enabled"] is False
    assert settings["event_subscriptions"]["request_url"] == URL
    assert settings["interactivity"] == {"is_enabled": True, "request_url": URL}
    assert data["features"]["slash_commands"][0]["url"] == URL


def test_the_rest_of_the_settings() -> None:
    data = build_manifest(_config(), socket_mode=True, request_url=None)
    assert data["display_information"]["name"] == "Watchfloor"
    assert len(data["display_information"]["description"]) <= 140
    assert 174 <= len(data["display_information"]["long_description"]) <= 4000  # Slack's bounds
    assert data["features"]["bot_user"] == {"display_name": "Watchfloor", "always_online": True}
    assert data["features"]["app_home"] == {"home_tab_enabled": True, "messages_tab_enabled": False}
    assert data["settings"]["event_subscriptions"]["bot_events"] == ["app_home_opened", "app_mention"]
    assert data["settings"]["org_deploy_enabled"] is False
    assert data["settings"]["token_rotation_enabled"] is False
    assert data["oauth_config"]["scopes"]["bot"] == list(BOT_SCOPES)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://wf.example.com", URL.replace("watchfloor", "wf")),
        ("https://wf.example.com/", URL.replace("watchfloor", "wf")),
        ("https://wf.example.com/slack/events", URL.replace("watchfloor", "wf")),
        ("https://wf.example.com:8443/team-a/", "https://wf.example.com:8443/team-a/slack/events"),
        ("  https://wf.example.com  ", URL.replace("watchfloor", "wf")),
    ],
)
def test_events_url(given: str, expected: str) -> None:
    assert events_url(given) == expected


@pytest.mark.parametrize(
    "bad",
    ["http://wf.example.com", "wf.example.com", "https://", "https://wf.example.com/?a=1", "https://a b.com"],
)
def test_bad_urls_are_refused_with_a_hint(bad: str) -> None:
    with pytest.raises(ManifestError, match="--url"):
        manifest_command(_config(), False, bad)


def test_mode_choice() -> None:
    assert resolve_socket_mode(True, None) is True
    assert resolve_socket_mode(False, "https://h.example") is False
    assert resolve_socket_mode(False, None) is True  # nothing given: Socket Mode, no public address needed
    with pytest.raises(ManifestError, match="not both"):
        resolve_socket_mode(True, "https://h.example")
    with pytest.raises(ManifestError, match="not both"):
        manifest_command(_config(), True, "https://h.example")
    with pytest.raises(ManifestError, match="--url"):
        manifest_command(_config(), False, None)


def test_yaml_header_says_the_mode_and_json_has_none() -> None:
    assert manifest_command(_config(), True, None).startswith("# Watchfloor Slack app manifest (Socket Mode)")
    assert URL in manifest_command(_config(), False, "https://watchfloor.example.com").splitlines()[0]
    assert manifest_command(_config(), True, None, fmt="json").startswith("{")


# ---- the scopes follow the code -----------------------------------------------------------------------------

_FAMILIES = (
    "admin|api|apps|assistant|auth|bookmarks|bots|calls|canvases|chat|conversations|dialog|dnd|emoji|files"
    "|functions|pins|reactions|reminders|search|stars|team|usergroups|users|views|workflows"
)
_CLIENT_CALL = re.compile(rf"client\s*\.\s*((?:{_FAMILIES})_[a-z][A-Za-z]*)\s*\(")
_API_CALL = re.compile(r"api_call\(\s*[\"']([a-z]+(?:\.[A-Za-z]+)+)[\"']")
_SAY = re.compile(r"\bsay\(")  # Bolt's say() is chat.postMessage


def _web_api_methods(folders: list[Path]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in folder.rglob("*.py"):
            source = path.read_text(encoding="utf-8")
            names = set(_CLIENT_CALL.findall(source))
            names |= {m.replace(".", "_") for m in _API_CALL.findall(source)}
            if _SAY.search(source):
                names.add("chat_postMessage")
            for name in names:
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_web_api_method_the_code_calls_has_its_scopes() -> None:
    used = _web_api_methods([ROOT / "bot", ROOT / "handlers"])
    # What delivery calls today, so a scan that silently finds nothing cannot pass.
    assert {"chat_postMessage", "conversations_history", "conversations_list"} <= used.keys()
    unknown = {m: sorted(where) for m, where in used.items() if m not in METHOD_SCOPES}
    assert not unknown, (
        f"add these Web API methods to METHOD_SCOPES (and their scopes to BOT_SCOPES): {unknown}"
    )
    for method in used:
        missing = [s for s in METHOD_SCOPES[method] if s not in BOT_SCOPES]
        assert not missing, f"{method} needs {missing}, missing from BOT_SCOPES"


def test_the_fake_slacks_methods_are_all_known() -> None:
    # The fake implements "the methods Watchfloor calls"; each must be accounted for here.
    fake_methods = {name.replace(".", "_") for name in FakeSlack()._methods}
    assert fake_methods <= METHOD_SCOPES.keys()


def test_every_scope_is_justified() -> None:
    needed = {"commands"}  # the slash command
    needed |= {s for scopes in METHOD_SCOPES.values() for s in scopes}
    needed |= {s for event in BOT_EVENTS for s in EVENT_SCOPES[event]}
    assert set(BOT_SCOPES) == needed
    assert len(BOT_SCOPES) == len(set(BOT_SCOPES))
    for broad in ("chat:write.public", "channels:join", "im:history", "admin", "metadata.message:read"):
        assert broad not in BOT_SCOPES
