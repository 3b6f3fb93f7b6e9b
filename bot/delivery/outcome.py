"""What one attempt to send a message came to, the same for every channel (Slack, Teams, console)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    remote_ref: str | None = None  # Slack's ts, or whatever the channel gives back
    retry_after: float | None = None  # 429: wait this many seconds; not the message's fault, not counted
    permanent: bool = False  # will never succeed as it is (bad payload, gone channel): dead letter now
    uncertain: bool = False  # the request may have reached the channel: look (or accept) before resending
    error: str = ""
