"""What every handler test needs to talk to `watchfloor serve` over real HTTP: the signing secret, Slack's
v0 request signature, and the ASGI app under uvicorn on 127.0.0.1 with Bolt pointed at a fake Slack."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from fakes.slack_api import FakeSlack
from slack_sdk.signature import SignatureVerifier

from bot.app import Deps
from bot.config import Config
from bot.web import create_asgi

SECRET = "test-signing-secret"


def signed_headers(
    body: str,
    timestamp: int | None = None,
    secret: str = SECRET,
    content_type: str = "application/x-www-form-urlencoded",
) -> dict[str, str]:
    """Slack's v0 signature, computed by hand (and checked against slack_sdk's) so the test does not trust
    the very code it exercises."""
    ts = str(timestamp if timestamp is not None else int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    signature = f"v0={digest}"
    assert signature == SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


def _run_uvicorn(app: Any) -> tuple[uvicorn.Server, threading.Thread, int]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, port


@contextmanager
def serving(config: Config, deps: Deps, slack: FakeSlack) -> Iterator[str]:
    """The app's base URL while it runs, with its tokens and Web API address from the environment."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SLACK_BOT_TOKEN", "xoxb-test")
        env.setenv("SLACK_SIGNING_SECRET", SECRET)
        env.setenv("SLACK_API_URL", slack.base_url)
        uv, thread, port = _run_uvicorn(create_asgi(config, deps))
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            uv.should_exit = True
            thread.join(timeout=10)
