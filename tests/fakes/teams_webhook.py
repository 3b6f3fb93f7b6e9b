"""A local fake of Teams Workflows webhooks ("Post to a channel when a webhook request is received"): a real
HTTP server on 127.0.0.1 that the real httpx client posts to.

Why a server and not a mock: what the Teams delivery promises (429 `Retry-After` waited without counting,
5xx backed off, 4xx dead-lettered, a timeout after the request went out treated as "may have posted") lives
in how httpx and the outbox behave over HTTP.

What it promises:
- One webhook per destination name: `url(name)` is `http://127.0.0.1:<port>/workflows/<name>/triggers/
  manual/paths/invoke?api-version=1&sig=<secret-looking signature>`, as a Workflows URL carries its
  signature in the query. An unknown path or a wrong `sig` gets 404, as Workflows answers.
- A post is accepted (202 with an `x-ms-workflow-run-id` header) when it is what Workflows takes: JSON, a
  `{"type": "message", "attachments": [...]}` envelope whose attachments are Adaptive Cards, at most
  28 KB (Teams' message limit: 413 past it). Anything else gets 400 with a JSON error, and is not recorded.
- State is inspectable: `.posts[name]` (accepted envelopes, oldest first), `.calls` (every request,
  refused ones included, as (name, status)).
- Faults on demand: `fail_next(name, status=429, retry_after=…)`, `status=500`, `status=400`; or
  `hang_next(name, seconds)`: the post is recorded (the card *is* in the channel) but the answer comes
  late, so a client with a shorter timeout never learns it: the "sent but not recorded" case.

Runs in a background thread, so sync and async tests alike can use it:

    with FakeTeams() as teams:
        httpx.post(teams.url("ops"), json=envelope)
        assert teams.posts["ops"][0] == envelope
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MESSAGE_BYTES_MAX = 28 * 1024


@dataclass
class _Fault:
    status: int | None = None
    retry_after: str | None = None
    hang_seconds: float | None = None


def _sig(name: str) -> str:
    return f"sig-{name}-Zm9yLXRlc3RzLW9ubHk"


class FakeTeams:
    def __init__(self) -> None:
        self.posts: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[tuple[str, int]] = []
        self._faults: dict[str, deque[_Fault]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ----------------------------------------------------------------------------------------

    def __enter__(self) -> FakeTeams:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-teams", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, name: str) -> str:
        return (
            f"{self.base_url}/workflows/{name}/triggers/manual/paths/invoke"
            f"?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sig={_sig(name)}"
        )

    def fail_next(self, name: str, status: int, retry_after: int | str | None = None) -> None:
        with self._lock:
            self._faults.setdefault(name, deque()).append(
                _Fault(status=status, retry_after=None if retry_after is None else str(retry_after))
            )

    def hang_next(self, name: str, seconds: float) -> None:
        with self._lock:
            self._faults.setdefault(name, deque()).append(_Fault(hang_seconds=seconds))

    def reset(self) -> None:
        with self._lock:
            self.posts.clear()
            self.calls.clear()
            self._faults.clear()

    # -- the webhook --------------------------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        segments = parts.path.strip("/").split("/")
        name = segments[1] if len(segments) == 6 and segments[0] == "workflows" else ""
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length)
        if not name or segments[2:] != ["triggers", "manual", "paths", "invoke"]:
            self._answer(request, name, 404, {"error": {"code": "NotFound"}})
            return
        if parse_qs(parts.query).get("sig") != [_sig(name)]:
            self._answer(request, name, 404, {"error": {"code": "WorkflowTriggerNotFound"}})
            return
        with self._lock:
            queue = self._faults.get(name)
            fault = queue.popleft() if queue else None
        if fault is not None and fault.status is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self._answer(request, name, fault.status, {"error": {"code": f"Fault{fault.status}"}}, headers)
            return
        problem = self._check(request, raw)
        if problem:
            status, message = problem
            self._answer(request, name, status, {"error": {"code": "BadRequest", "message": message}})
            return
        with self._lock:
            self.posts.setdefault(name, []).append(json.loads(raw))
        if fault is not None and fault.hang_seconds:
            time.sleep(fault.hang_seconds)  # the card is posted; the answer is what comes late
        with self._lock:
            run = f"run-{name}-{len(self.posts[name])}"
        self._answer(request, name, 202, None, {"x-ms-workflow-run-id": run})

    @staticmethod
    def _check(request: BaseHTTPRequestHandler, raw: bytes) -> tuple[int, str] | None:
        if len(raw) > MESSAGE_BYTES_MAX:
            return 413, f"message is {len(raw)} bytes; the limit is {MESSAGE_BYTES_MAX}"
        if "application/json" not in (request.headers.get("Content-Type") or ""):
            return 400, "Content-Type must be application/json"
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return 400, f"body is not JSON: {exc}"
        if not isinstance(body, dict) or body.get("type") != "message":
            return 400, 'body must be {"type": "message", "attachments": [...]}'
        attachments = body.get("attachments")
        if not isinstance(attachments, list) or not attachments:
            return 400, "attachments must be a non-empty array"
        for attachment in attachments:
            content = attachment.get("content") if isinstance(attachment, dict) else None
            if attachment.get("contentType") != CARD_CONTENT_TYPE or not isinstance(content, dict):
                return 400, f"each attachment must be an Adaptive Card ({CARD_CONTENT_TYPE})"
            if content.get("type") != "AdaptiveCard":
                return 400, "attachment content must be an AdaptiveCard"
        return None

    def _answer(
        self,
        request: BaseHTTPRequestHandler,
        name: str,
        status: int,
        body: dict[str, Any] | None,
        headers: dict[str, str] | None = None,
    ) -> None:
        with self._lock:
            self.calls.append((name, status))
        data = json.dumps(body).encode() if body is not None else b""
        request.send_response(status)
        for key, value in (headers or {}).items():
            request.send_header(key, value)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        # The client may have given up waiting (the hang fault): that is the point of it.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            request.wfile.write(data)
