"""The console notifier: the destination of last resort and of the demo."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from bot.config import Config
from bot.render.console import clean, render_alert
from bot.store import Store


def deliver_to_console(
    store: Store,
    config: Config,
    now: datetime,
    out: TextIO | None = None,
    accept: Callable[[str], bool] | None = None,
) -> int:
    """Print every due alert whose destination `accept`s console delivery, each with the later reports of
    its story beneath it, and mark them sent; return how many alerts were printed."""
    stream = out or sys.stdout

    def wanted(destination: str) -> bool:
        return accept is None or accept(destination)

    due = [a for a in store.pending_alerts("") if wanted(a.alert.destination)]
    for stored in due:
        store.mark_sent(stored.alert.id, now, remote_ref="console")
    later: dict[str, list[str]] = {}
    for followup in store.pending_followups(""):
        if not wanted(followup.parent.alert.destination):
            continue
        later.setdefault(followup.parent.alert.id, []).extend(
            f"  ↳ also reported by {clean(r.source)}: {clean(r.title)}" for r in followup.reports
        )
        store.settle_followup(followup.id, sent_at=now, remote_ref="console")
    printed = {a.alert.id for a in due}
    for stored in due:
        topic = config.topic(stored.alert.topic)
        print(render_alert(stored, topic.title if topic else stored.alert.topic), file=stream)
        for line in later.get(stored.alert.id, []):
            print(line, file=stream)
        print(file=stream)
    for alert_id, lines in later.items():  # replies to alerts printed in an earlier cycle
        if alert_id not in printed:
            print("\n".join(lines), file=stream)
    return len(due)
