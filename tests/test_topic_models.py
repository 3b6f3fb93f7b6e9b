"""Models are trained at start-up when missing or changed, and reused (with their version) otherwise."""

from __future__ import annotations

from pathlib import Path

from support import FIXTURES

from bot.config import load_config
from bot.topic_models import load_or_train


def test_trained_once_reused_then_retrained_when_a_topic_changes(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    raw = (FIXTURES / "config" / "minimal.toml").read_text()
    path.write_text(raw)
    config = load_config(path)
    first = load_or_train(config)
    files = list((tmp_path / "var" / "models").glob("*.joblib"))
    assert len(files) == 1
    version = first.info()["cables"]
    again = load_or_train(config)
    assert again.info()["cables"] == version  # loaded from the file, not retrained
    assert list((tmp_path / "var" / "models").glob("*.joblib")) == files

    path.write_text(
        raw.replace(
            'negative = ["Cable TV prices rise"]', 'negative = ["Cable TV prices rise", "Cable car reopens"]'
        )
    )
    changed = load_or_train(load_config(path))
    assert changed.fingerprint("cables") != first.fingerprint("cables")
    assert len(list((tmp_path / "var" / "models").glob("*.joblib"))) == 2

    # A corrupt model file is not fatal: it is retrained.
    for f in (tmp_path / "var" / "models").glob("*.joblib"):
        f.write_bytes(b"not a model")
    assert load_or_train(load_config(path)).fingerprint("cables") == changed.fingerprint("cables")
