"""The console notifier: the destination of last resort and of the demo."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from bot.config import Config
from bot.render.console import render_alert
from bot.store import Store


def deliver_to_console(
    store: Store,
    config: Config,
    now: datetime,
    out: TextIO | None = None,
    accept: Callable[[str], bool] | None = None,
) -> int:
    """Print every due alert whose destination `accept`s console delivery, mark it sent; return how many."""
    stream = out or sys.stdout
    sent = 0
    while True:
        due = [a for a in store.due_alerts(now, limit=200) if accept is None or accept(a.alert.destination)]
        if not due:
            return sent
        for stored in due:
            topic = config.topic(stored.alert.topic)
            print(render_alert(stored, topic.title if topic else stored.alert.topic), file=stream)
            print(file=stream)
            store.mark_sent(stored.alert.id, now, remote_ref="console")
            sent += 1
