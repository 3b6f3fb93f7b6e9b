"""A local fake of the Slack Web API: a real aiohttp server on 127.0.0.1 that the real slack_sdk talks to.

Why a server and not a mock: the delivery code's guarantees (429 `Retry-After`, retries after a 5xx, a
request that hangs, metadata found again in the history after a crash) live in how slack_sdk behaves over
HTTP. Pointing the real `WebClient`/`AsyncWebClient` (or Bolt, through `SLACK_API_URL`) at this server tests
exactly that, with no patching.

What it promises:
- The methods Watchfloor calls: `auth.test`, `chat.postMessage`, `chat.update`, `chat.postEphemeral`,
  `conversations.history`, `conversations.replies`, `views.publish`, `users.info`; plus `POST
  /response/<id>` standing in for interaction `response_url`s.
- Payloads are checked as Slack documents them, and rejected with Slack's error names: blocks must parse
  with slack_sdk's block models and pass their limit validators (plus the limits those models do not check,
  such as 2,000 characters per context element), at most 50 blocks in a message and 100 in a view, `text`
  at most 40,000 characters, metadata shaped `{"event_type": str, "event_payload": object}`.
- Every request needs a Bearer token (any non-empty token is valid): none gives `not_authed`.
- JSON bodies, form-encoded bodies and query strings are all accepted, as slack_sdk uses each.
- State is inspectable: `.calls` (every request, in order, including refused and failed ones),
  `.messages[channel]` (oldest first, thread replies included, each with `ts`, `thread_ts`, `metadata`),
  `.ephemeral`, `.home_views`, `.responses`.
- Faults on demand: `.fail_next(method, status=429, retry_after=1)`, `status=500`, `error="…"` (HTTP 200 with
  `ok: false`), or `hang_seconds=…` (the answer comes late; without a status the call has already taken
  effect, which is the "sent but never recorded" case the outbox must survive).

Use from sync or async tests alike: the server runs its own event loop in a background thread.

    with FakeSlack() as slack:
        WebClient(token="xoxb-test", base_url=slack.base_url).chat_postMessage(channel="C1", text="hi")
        assert slack.messages["C1"][0]["text"] == "hi"
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

BOT_USER_ID = "U0WATCHBOT"
BOT_ID = "B0WATCHBOT"
TEAM_ID = "T0WATCHTEAM"
APP_ID = "A0WATCHAPP"

MESSAGE_BLOCKS_MAX = 50
VIEW_BLOCKS_MAX = 100
TEXT_MAX = 40_000
CONTEXT_TEXT_MAX = 2000
SECTION_TEXT_MAX = 3000
HISTORY_LIMIT_MAX = 999

Payload = dict[str, Any]
Handler = Callable[[Payload], Awaitable[Payload]]


class SlackError(Exception):
    """A Slack `ok: false` answer, raised inside a method handler."""

    def __init__(self, error: str, detail: str = "") -> None:
        super().__init__(error)
        self.error = error
        self.detail = detail


@dataclass
class _Fault:
    status: int | None
    retry_after: int | None
    hang_seconds: float | None
    error: str | None

    @property
    def takes_effect(self) -> bool:
        """A bare hang: the call is carried out, only its answer is held back."""
        return self.status is None and self.error is None


def _flag(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes")


def _decode_json_field(args: Payload, name: str) -> None:
    """Form-encoded calls carry objects as JSON strings; decode them so both encodings look alike."""
    value = args.get(name)
    if isinstance(value, str):
        try:
            args[name] = json.loads(value)
        except json.JSONDecodeError as exc:
            raise SlackError(f"invalid_{name}", f"{name} is not JSON: {exc}") from exc


def check_blocks(blocks: Any, *, max_blocks: int = MESSAGE_BLOCKS_MAX) -> None:
    """Raise `SlackError("invalid_blocks")` unless `blocks` is what Slack would accept."""
    if not isinstance(blocks, list):
        raise SlackError("invalid_blocks", "blocks must be an array")
    if len(blocks) > max_blocks:
        raise SlackError("invalid_blocks", f"{len(blocks)} blocks; the limit is {max_blocks}")
    block_ids: set[str] = set()
    for i, raw in enumerate(blocks):
        if not isinstance(raw, dict):
            raise SlackError("invalid_blocks", f"blocks[{i}] is not an object")
        try:
            block = Block.parse(raw)
            if block is None:
                raise SlackError("invalid_blocks", f"blocks[{i}] has unknown type {raw.get('type')!r}")
            block.to_dict()  # runs slack_sdk's validators, nested objects included
        except SlackError:
            raise
        except Exception as exc:  # slack_sdk raises SlackObjectFormationError, TypeError, KeyError...
            raise SlackError("invalid_blocks", f"blocks[{i}]: {type(exc).__name__}: {exc}") from exc
        _check_unmodelled_limits(raw, i)
        block_id = raw.get("block_id")
        if block_id is not None:
            if block_id in block_ids:
                raise SlackError("invalid_blocks", f"blocks[{i}]: duplicate block_id {block_id!r}")
            block_ids.add(block_id)


def _check_unmodelled_limits(raw: Payload, i: int) -> None:
    """Documented limits that slack_sdk's models do not validate."""
    kind = raw.get("type")
    if kind == "section":
        text = raw.get("text")
        if text is None and not raw.get("fields"):
            raise SlackError("invalid_blocks", f"blocks[{i}]: a section needs text or fields")
        if text is not None and not (text.get("text") or ""):
            raise SlackError("invalid_blocks", f"blocks[{i}]: section text must not be empty")
        for j, field in enumerate(raw.get("fields") or []):
            if len(field.get("text", "")) > CONTEXT_TEXT_MAX:
                raise SlackError("invalid_blocks", f"blocks[{i}].fields[{j}] exceeds {CONTEXT_TEXT_MAX}")
    elif kind == "context":
        elements = raw.get("elements") or []
        if not elements:
            raise SlackError("invalid_blocks", f"blocks[{i}]: a context needs elements")
        for j, element in enumerate(elements):
            text = element.get("text")
            if isinstance(text, str) and not 1 <= len(text) <= CONTEXT_TEXT_MAX:
                raise SlackError(
                    "invalid_blocks", f"blocks[{i}].elements[{j}].text must be 1 to {CONTEXT_TEXT_MAX}"
                )
    elif kind == "actions":
        action_ids = [e.get("action_id") for e in raw.get("elements") or [] if e.get("action_id")]
        if len(action_ids) != len(set(action_ids)):
            raise SlackError("invalid_blocks", f"blocks[{i}]: duplicate action_id in one block")


def check_metadata(metadata: Any) -> None:
    if not isinstance(metadata, dict):
        raise SlackError("invalid_metadata_format", "metadata must be an object")
    event_type = metadata.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise SlackError("invalid_metadata_format", "metadata.event_type must be a non-empty string")
    if not isinstance(metadata.get("event_payload"), dict):
        raise SlackError("invalid_metadata_format", "metadata.event_payload must be an object")


def _check_content(args: Payload) -> None:
    """text / blocks / metadata of a message, as chat.postMessage and chat.update check them."""
    _decode_json_field(args, "blocks")
    _decode_json_field(args, "attachments")
    _decode_json_field(args, "metadata")
    text = args.get("text")
    if text is not None and not isinstance(text, str):
        raise SlackError("invalid_arguments", "text must be a string")
    if not text and not args.get("blocks") and not args.get("attachments"):
        raise SlackError("no_text")
    if text and len(text) > TEXT_MAX:
        raise SlackError("msg_too_long", f"text is {len(text)} characters; the limit is {TEXT_MAX}")
    if "blocks" in args and args["blocks"] is not None:
        check_blocks(args["blocks"])
    if args.get("metadata") is not None:
        check_metadata(args["metadata"])


class FakeSlack:
    """The fake Web API server. `start()`/`stop()` or use it as a context manager."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._release: asyncio.Event | None = None
        self.port = 0
        self.users: dict[str, Payload] = {}
        # Called (on the server's thread) as each response_url post is recorded: bench/slack.py
        # timestamps replies here instead of polling `.responses`.
        self.on_response: Callable[[str, Payload], None] | None = None
        self._methods: dict[str, Handler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "views.publish": self._views_publish,
            "users.info": self._users_info,
            "conversations.list": self._conversations_list,
            "apps.connections.open": self._apps_connections_open,
        }
        self.reset()

    # ---- lifecycle -------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def base_url(self) -> str:
        """What `WebClient(base_url=…)` and `SLACK_API_URL` take."""
        return f"{self.url}api/"

    def response_url(self, ident: str) -> str:
        """A `response_url` for an interaction payload; posts to it land in `.responses`."""
        return f"{self.url}response/{ident}"

    def start(self) -> FakeSlack:
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="fake-slack", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), loop).result(timeout=10)
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._release_hangs()
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{ident}", self._response_url)
        app.router.add_get("/socket", self._socket)
        self._release = asyncio.Event()
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _release_hangs(self) -> None:
        """End any hanging request now (on reset and stop), so nothing waits out its hang."""
        loop, release = self._loop, self._release
        if loop is None or release is None:
            return

        def swap() -> None:
            release.set()
            self._release = asyncio.Event()

        loop.call_soon_threadsafe(swap)

    # ---- state for tests -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget calls, messages, views and pending faults (the server keeps running)."""
        self._release_hangs()
        with self._lock:
            self.calls: list[tuple[str, Payload]] = []
            self.messages: dict[str, list[Payload]] = {}
            self.ephemeral: list[Payload] = []
            self.home_views: dict[str, Payload] = {}
            self.responses: list[tuple[str, Payload]] = []
            self._faults: dict[str, list[_Fault]] = {}
            self._last_ts = 0.0
            self.channels: dict[str, str] = {}  # name → id, made on first post by name
            self.socket_acks: list[Payload] = []
            self._sockets: list[web.WebSocketResponse] = getattr(self, "_sockets", [])

    def channel_id(self, name: str) -> str:
        """The id a channel name stands for (as Slack resolves `#name` on chat.postMessage)."""
        name = name.lstrip("#")
        with self._lock:
            if name not in self.channels:
                self.channels[name] = "C" + hashlib.sha1(name.encode()).hexdigest()[:9].upper()
            return self.channels[name]

    def _resolve(self, channel: str) -> str:
        # Like Slack: chat.postMessage takes `#name` and answers with the id; the id is what everything
        # else (history, update) needs.
        return (
            channel
            if re.fullmatch(r"[CGD][A-Z0-9]{6,}", channel) or channel[:1] == "C"
            else self.channel_id(channel)
        )

    async def _conversations_list(self, args: Payload) -> Payload:
        with self._lock:
            channels = [
                {"id": cid, "name": name, "is_channel": True} for name, cid in sorted(self.channels.items())
            ]
        return _page(channels, args, key="channels")

    def fail_next(
        self,
        method: str,
        status: int | None = None,
        *,
        retry_after: int | None = None,
        hang_seconds: float | None = None,
        error: str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls of `method` fail: `status=429` (with `Retry-After`, default 1 s),
        `status=500` (or any status), `error="channel_not_found"` (HTTP 200, `ok: false`), or
        `hang_seconds=…`: the answer is held that long (or until `reset`/`stop`). A hang with no status
        or error carries the call out first and only holds back its answer: the message exists even though
        the client timed out. With a status or error, the hang comes before the failure and nothing
        happens. `method` "response_url" targets
        `/response/…`."""
        if status is None and hang_seconds is None and error is None:
            raise ValueError("fail_next needs status=, error= or hang_seconds=")
        if status == 429 and retry_after is None:
            retry_after = 1
        with self._lock:
            queue = self._faults.setdefault(method, [])
            queue.extend(_Fault(status, retry_after, hang_seconds, error) for _ in range(times))

    def calls_to(self, method: str) -> list[Payload]:
        return [payload for name, payload in list(self.calls) if name == method]

    def top_level(self, channel: str) -> list[Payload]:
        """A channel's top-level messages, oldest first (thread replies left out)."""
        return [m for m in self.messages.get(channel, []) if m.get("thread_ts", m["ts"]) == m["ts"]]

    def thread(self, channel: str, ts: str) -> list[Payload]:
        """The replies under `ts`, oldest first (the parent left out)."""
        return [m for m in self.messages.get(channel, []) if m.get("thread_ts") == ts and m["ts"] != ts]

    # ---- HTTP ------------------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: Payload = dict(request.query)
        body = await request.read()
        token: str | None = None
        if body:
            if request.content_type == "application/json":
                try:
                    parsed = json.loads(body)
                except json.JSONDecodeError:
                    return _answer({"ok": False, "error": "invalid_json"})
                if not isinstance(parsed, dict):
                    return _answer({"ok": False, "error": "invalid_json"})
                args.update(parsed)
            else:
                form = await request.post()
                args.update({k: v for k, v in form.items() if isinstance(v, str)})
        token = args.pop("token", None)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth[len("Bearer ") :].strip()
        with self._lock:
            self.calls.append((method, args))
            queue = self._faults.get(method)
            fault = queue.pop(0) if queue else None
        if fault is not None and not fault.takes_effect:
            return await self._fail(fault)
        if token is None:
            return _answer({"ok": False, "error": "not_authed"})
        if not token:
            return _answer({"ok": False, "error": "invalid_auth"})
        handler = self._methods.get(method)
        if handler is None:
            return _answer({"ok": False, "error": "unknown_method"}, status=404)
        try:
            result = await handler(dict(args))
        except SlackError as exc:
            answer: Payload = {"ok": False, "error": exc.error}
            if exc.detail:
                answer["response_metadata"] = {"messages": [f"[ERROR] {exc.detail}"]}
            return _answer(answer)
        if fault is not None:
            await self._hang(fault)  # done, but the caller hears of it late (or never, if it gives up)
        return _answer({"ok": True, **result})

    async def _hang(self, fault: _Fault) -> None:
        if fault.hang_seconds is not None and self._release is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), fault.hang_seconds)

    async def _fail(self, fault: _Fault) -> web.Response:
        await self._hang(fault)
        if fault.status == 429:
            return _answer(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(fault.retry_after)},
            )
        if fault.status is not None and fault.status >= 400:
            return _answer({"ok": False, "error": "fatal_error"}, status=fault.status)
        return _answer({"ok": False, "error": fault.error or "fatal_error"})

    async def _response_url(self, request: web.Request) -> web.Response:
        ident = request.match_info["ident"]
        try:
            payload = json.loads(await request.read() or b"{}")
        except json.JSONDecodeError:
            return web.Response(status=400, text="invalid_payload")
        with self._lock:
            self.calls.append(("response_url", {"id": ident, **payload}))
            queue = self._faults.get("response_url")
            fault = queue.pop(0) if queue else None
        if fault is not None and not fault.takes_effect:
            return await self._fail(fault)
        if payload.get("blocks") is not None:
            try:
                check_blocks(payload["blocks"])
            except SlackError as exc:
                return web.Response(status=400, text=f"invalid_blocks: {exc.detail}")
        with self._lock:
            self.responses.append((ident, payload))
        if self.on_response is not None:
            self.on_response(ident, payload)
        if fault is not None:
            await self._hang(fault)
        return web.Response(text="ok")

    # ---- methods ---------------------------------------------------------------------------------------

    def _next_ts(self) -> str:
        """Message timestamps: strictly increasing, unique, and close to the clock (callers may pass
        `oldest` computed from real time)."""
        with self._lock:
            now = max(self._clock(), self._last_ts + 0.000001)
            self._last_ts = now
        return f"{now:.6f}"

    def _find(self, channel: str, ts: str) -> Payload:
        for message in self.messages.get(channel, []):
            if message["ts"] == ts:
                return message
        raise SlackError("message_not_found")

    # ---- Socket Mode -----------------------------------------------------------------------------------

    async def _apps_connections_open(self, args: Payload) -> Payload:
        return {"url": f"ws://127.0.0.1:{self.port}/socket"}

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        """Slack's side of a Socket Mode connection: `hello`, then envelopes the test sends; acks recorded."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1, "debug_info": {"host": "fake"}})
        async for message in ws:
            if message.type == web.WSMsgType.TEXT:
                with self._lock:
                    self.socket_acks.append(json.loads(message.data))
        return ws

    def socket_send(self, envelope_type: str, payload: Payload, envelope_id: str) -> None:
        """Push an envelope (`slash_commands`, `interactive`, `events_api`) to every connected client."""
        if self._loop is None:
            raise RuntimeError("FakeSlack is not running")
        envelope = {
            "envelope_id": envelope_id,
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": envelope_type != "events_api",
        }

        async def send() -> None:
            for ws in list(self._sockets):
                if not ws.closed:
                    await ws.send_json(envelope)

        asyncio.run_coroutine_threadsafe(send(), self._loop).result(timeout=10)

    async def _auth_test(self, args: Payload) -> Payload:
        return {
            "url": "https://watchfloor-test.slack.com/",
            "team": "Watchfloor Test",
            "user": "watchfloor",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    async def _chat_post_message(self, args: Payload) -> Payload:
        channel = args.get("channel")
        if not channel:
            raise SlackError("channel_not_found")
        channel = self._resolve(str(channel))
        _check_content(args)
        thread_ts = args.get("thread_ts") or None
        if thread_ts is not None:
            # Slack would post a reply to an unknown ts as a lone reply; strict here, so bugs show.
            self._find(channel, thread_ts)
        message = self._message(args, self._next_ts())
        if thread_ts is not None:
            message["thread_ts"] = thread_ts
            if _flag(args.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
        with self._lock:
            self.messages.setdefault(channel, []).append(message)
            if thread_ts is not None:
                parent = self._find(channel, thread_ts)
                parent["thread_ts"] = thread_ts
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent["latest_reply"] = message["ts"]
                parent["reply_users"] = [BOT_USER_ID]
        return {"channel": channel, "ts": message["ts"], "message": _public(message, metadata=True)}

    def _message(self, args: Payload, ts: str) -> Payload:
        message: Payload = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "text": args.get("text") or "",
            "ts": ts,
        }
        for key in ("blocks", "attachments", "metadata"):
            if args.get(key) is not None:
                message[key] = args[key]
        return message

    async def _chat_update(self, args: Payload) -> Payload:
        channel, ts = args.get("channel"), args.get("ts")
        if not channel:
            raise SlackError("channel_not_found")
        if not ts:
            raise SlackError("message_not_found")
        message = self._find(channel, ts)
        _check_content(args)
        edited_ts = self._next_ts()
        with self._lock:
            if args.get("text") is not None:
                message["text"] = args["text"]
            for key in ("blocks", "attachments", "metadata"):
                if args.get(key) is not None:
                    message[key] = args[key]
            message["edited"] = {"user": BOT_USER_ID, "ts": edited_ts}
        return {
            "channel": channel,
            "ts": ts,
            "text": message["text"],
            "message": _public(message, metadata=True),
        }

    async def _chat_post_ephemeral(self, args: Payload) -> Payload:
        if not args.get("channel"):
            raise SlackError("channel_not_found")
        if not args.get("user"):
            raise SlackError("user_not_in_channel")
        _check_content(args)
        ts = self._next_ts()
        with self._lock:
            self.ephemeral.append({**args, "message_ts": ts})
        return {"message_ts": ts}

    async def _conversations_history(self, args: Payload) -> Payload:
        channel = args.get("channel")
        if not channel:
            raise SlackError("channel_not_found")
        with self._lock:
            top = [
                m
                for m in self.messages.get(channel, [])
                if m.get("thread_ts", m["ts"]) == m["ts"] or m.get("subtype") == "thread_broadcast"
            ]
        newest_first = list(reversed(_window(top, args)))
        return _page(newest_first, args, key="messages")

    async def _conversations_replies(self, args: Payload) -> Payload:
        channel, ts = args.get("channel"), args.get("ts")
        if not channel:
            raise SlackError("channel_not_found")
        if not ts:
            raise SlackError("invalid_arguments", "ts is required")
        try:
            parent = self._find(channel, ts)
        except SlackError:
            raise SlackError("thread_not_found") from None
        with self._lock:
            replies = [
                m for m in self.messages.get(channel, []) if m.get("thread_ts") == ts and m is not parent
            ]
        # Slack always returns the parent first, then the replies in the window, oldest first.
        return _page([parent, *_window(replies, args)], args, key="messages")

    async def _views_publish(self, args: Payload) -> Payload:
        user_id = args.get("user_id")
        if not user_id:
            raise SlackError("invalid_arguments", "user_id is required")
        _decode_json_field(args, "view")
        view = args.get("view")
        if not isinstance(view, dict):
            raise SlackError("invalid_arguments", "view is required")
        if view.get("type") != "home":
            raise SlackError("invalid_arguments", "views.publish takes a view of type home")
        check_blocks(view.get("blocks") or [], max_blocks=VIEW_BLOCKS_MAX)
        try:
            View(**view).to_dict()
        except Exception as exc:
            raise SlackError("invalid_arguments", f"view: {type(exc).__name__}: {exc}") from exc
        with self._lock:
            self.home_views[user_id] = view
        return {"view": {"id": f"V{len(self.calls):08d}", "team_id": TEAM_ID, **view}}

    async def _users_info(self, args: Payload) -> Payload:
        user = args.get("user")
        if not user:
            raise SlackError("user_not_found")
        name = str(user).lower()
        default: Payload = {
            "id": user,
            "team_id": TEAM_ID,
            "name": name,
            "real_name": f"User {user}",
            "tz": "UTC",
            "is_bot": False,
            "profile": {"display_name": name, "real_name": f"User {user}"},
        }
        return {"user": {**default, **self.users.get(user, {})}}


def _answer(body: Payload, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def _public(message: Payload, *, metadata: bool) -> Payload:
    """A stored message as an API answer shows it: a copy, with metadata only when asked for."""
    shown = json.loads(json.dumps(message))
    if not metadata:
        shown.pop("metadata", None)
    return shown


def _window(messages: list[Payload], args: Payload) -> list[Payload]:
    """`oldest` / `latest` (exclusive unless `inclusive`) over messages kept oldest first."""
    inclusive = _flag(args.get("inclusive"))
    oldest = float(args["oldest"]) if args.get("oldest") else None
    latest = float(args["latest"]) if args.get("latest") else None
    out = []
    for m in messages:
        ts = float(m["ts"])
        if oldest is not None and (ts < oldest or (ts == oldest and not inclusive)):
            continue
        if latest is not None and (ts > latest or (ts == latest and not inclusive)):
            continue
        out.append(m)
    return out


def _page(messages: list[Payload], args: Payload, *, key: str) -> Payload:
    """`limit` and `cursor` paging (the cursor is an offset), metadata kept only with
    `include_all_metadata`, as Slack does."""
    try:
        limit = int(args.get("limit") or 100)
        offset = int(args.get("cursor") or 0)
    except ValueError as exc:
        raise SlackError("invalid_arguments", str(exc)) from exc
    limit = max(1, min(limit, HISTORY_LIMIT_MAX))
    chunk = messages[offset : offset + limit]
    has_more = offset + limit < len(messages)
    with_metadata = _flag(args.get("include_all_metadata"))
    return {
        key: [_public(m, metadata=with_metadata) for m in chunk],
        "has_more": has_more,
        "pin_count": 0,
        "response_metadata": {"next_cursor": str(offset + limit) if has_more else ""},
    }
