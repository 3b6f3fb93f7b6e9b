"""Shared fixtures: the shipped config and the databases (a SQLite file and the local PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from support import PG_URL, ROOT

from bot.config import Config, load_config
from bot.store import Store, open_engine


@pytest.fixture(scope="session")
def shipped_config() -> Config:
    return load_config(ROOT / "config.toml")


def _postgres_available() -> str | None:
    try:
        engine = create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure to reach it is a reason to skip, reported as such
        return f"PostgreSQL not reachable at {PG_URL}: {type(exc).__name__}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store on a real SQLite file, and on the real PostgreSQL in a schema of its own."""
    if request.param == "sqlite":
        s = Store.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
        yield s
        s.close()
        return
    reason = _postgres_available()
    if reason:
        pytest.skip(reason)
    schema = f"wf_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    # A schema per test via search_path, so raw driver SQL and Core SQL both land in it.
    s = Store(open_engine(PG_URL, {"options": f"-csearch_path={schema}"}))
    s.create()
    try:
        yield s
    finally:
        s.close()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
