"""Bolt listeners (the `/news` command, buttons, App Home). Thin: parse → call `bot/` → render.

`register(app, deps)` is the one place listeners are attached; the Slack work fills it in.
"""

from __future__ import annotations

from typing import Any


def register(app: Any, deps: Any) -> None:
    """Attach every listener module's listeners to `app`. No listeners exist before the Slack work."""
    return None
