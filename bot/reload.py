"""Live config: notice an edited config.toml, validate it, and hand over the new one or the reasons not to.

Content is compared by hash, not mtime: editors that write in place within the same second, and clocks
that are frozen in tests, both defeat mtime checks.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from bot.config import Config, ConfigError, parse_config

log = logging.getLogger(__name__)


@dataclass
class ConfigWatcher:
    path: Path
    digest: str = ""

    @classmethod
    def for_file(cls, path: Path) -> ConfigWatcher:
        watcher = cls(path)
        watcher.digest = watcher._read_digest() or ""
        return watcher

    def _read_digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None

    def poll(self) -> Config | ConfigError | None:
        """None when unchanged (or unreadable mid-save); the new Config; or the ConfigError refusing it."""
        try:
            raw = self.path.read_bytes()
        except OSError:
            return None
        digest = hashlib.sha256(raw).hexdigest()
        if digest == self.digest:
            return None
        self.digest = digest  # a refused edit is reported once, not on every check
        try:
            return parse_config(raw.decode("utf-8"), self.path)
        except UnicodeDecodeError as exc:
            return ConfigError(self.path, [f"cannot read: {exc}"])
        except ConfigError as exc:
            return exc
