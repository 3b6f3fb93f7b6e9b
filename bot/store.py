"""The store: items, dedup keys, stories, scores, alerts (the outbox) and source health.

SQLAlchemy 2 Core so that the same statements run on SQLite (the default: one file, WAL) and PostgreSQL
(several workers). Only portable SQL here; the one dialect-specific need, "insert unless it exists", goes
through each dialect's own `on_conflict_do_nothing`. The tests run every statement on both databases.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Select,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    bindparam,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from bot.channels import same_channels
from bot.feedback import ItemLabels, Verdict, Vote, item_labels
from bot.feedback import Tally as VoteTally
from bot.items import Alert, Followup, Item, ScoredItem
from bot.sources.health import SourceHealth


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store: every time must be timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()


def _delivery_columns() -> list[Column[Any]]:
    """What every outbox row (alerts, thread replies) tracks about its delivery; fresh objects per table."""
    return [
        Column("status", String(16), nullable=False, default="pending"),  # pending | held | sent | dead
        Column("attempts", Integer, nullable=False, default=0),
        Column("next_attempt", UTCDateTime, nullable=False),
        Column("sent_at", UTCDateTime),
        Column("remote_ref", Text),
        Column("last_error", Text),
        # Set when a send may have reached the destination without us learning so (a timeout after the
        # request went out, a crash before recording): the next attempt looks before posting again.
        Column("uncertain", Boolean, nullable=False, default=False),
    ]


sources = Table(
    "sources",
    metadata,
    Column("name", String(80), primary_key=True),
    Column("url", Text, nullable=False),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("last_success", UTCDateTime),
    Column("last_error", Text),
    Column("last_error_at", UTCDateTime),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("next_due", UTCDateTime),
    Column("last_status", Integer),
    Column("last_polled", UTCDateTime),
)

items = Table(
    "items",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("url", Text, nullable=False),
    Column("guid", Text),
    Column("source", String(80), nullable=False),
    Column("title", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("summary", Text),
    Column("published", UTCDateTime, nullable=False),
    Column("fetched", UTCDateTime, nullable=False),
    Column("story_id", String(40), nullable=False),
    Index("ix_items_published", "published"),
    Index("ix_items_story", "story_id"),
)

# One row per way of recognising an item again: its canonical URL and its guid. A re-poll, a second outlet
# syndicating the same URL, or a feed that changes links but keeps guids all land on an existing key.
item_keys = Table(
    "item_keys",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("item_id", String(40), ForeignKey("items.id"), nullable=False),
)

stories = Table(
    "stories",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("n_items", Integer, nullable=False),
    Column("sources", Text, nullable=False),  # JSON list of outlet names
)

scores = Table(
    "scores",
    metadata,
    Column("item_id", String(40), ForeignKey("items.id"), primary_key=True),
    Column("topic", String(80), primary_key=True),
    Column("score", Float, nullable=False),
    Column("flagged", Boolean, nullable=False),
    Column("why", Text),  # JSON
    Column("model_version", String(40)),
    Index("ix_scores_topic_flagged", "topic", "flagged"),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("topic", String(80), nullable=False),
    Column("destination", String(120), nullable=False),
    Column("story_id", String(40), nullable=False),
    Column("item_id", String(40), ForeignKey("items.id"), nullable=False),
    Column("created", UTCDateTime, nullable=False),
    *_delivery_columns(),
    # Sent inside a flood-control roll-up rather than as a message of its own.
    Column("rolled_up", Boolean, nullable=False, default=False),
    UniqueConstraint("topic", "destination", "story_id", name="uq_alert_story"),
    Index("ix_alerts_due", "status", "next_attempt"),
    # Flood control counts a channel's recent alerts per topic on every delivery run (bench/slack.py
    # found that scan at 23% of delivery time without this index).
    Index("ix_alerts_sent", "destination", "topic", "sent_at"),
)

# Thread replies for later reports of an alerted story: an outbox of their own, sent after their parent.
followups = Table(
    "followups",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("alert_id", String(40), ForeignKey("alerts.id"), nullable=False),
    Column("item_ids", Text, nullable=False),  # JSON list, in published order
    Column("created", UTCDateTime, nullable=False),
    *_delivery_columns(),
    Index("ix_followups_due", "status", "next_attempt"),
)

# The alert buttons' verdicts: one row per alert and user, replaced when the user clicks again (the latest
# counts). topic and item_id are copied from the alert so training labels need no join through alerts.
feedback = Table(
    "feedback",
    metadata,
    Column("alert_id", String(40), ForeignKey("alerts.id"), nullable=False),
    Column("user_id", String(40), nullable=False),
    Column("topic", String(80), nullable=False),
    Column("item_id", String(40), ForeignKey("items.id"), nullable=False),
    Column("verdict", String(16), nullable=False),  # relevant | not_relevant
    Column("at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("alert_id", "user_id", name="pk_feedback"),
    Index("ix_feedback_topic", "topic"),
)

# A topic muted at one destination until a time (the "Mute topic here 24 h" button, `/news mute`). One row
# per topic and destination; muting again never shortens a mute (only unmuting ends it early).
mutes = Table(
    "mutes",
    metadata,
    Column("topic", String(80), nullable=False),
    Column("destination", String(120), nullable=False),
    Column("until", UTCDateTime, nullable=False),
    Column("by_user", String(40), nullable=False),
    PrimaryKeyConstraint("topic", "destination", name="pk_mutes"),
)

# A topic routed to one more destination by `/news subscribe`, on top of the destinations in config.toml
# (`Runtime.destinations()` merges both). One row per topic and destination.
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("topic", String(80), nullable=False),
    Column("destination", String(120), nullable=False),
    Column("by_user", String(40), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("topic", "destination", name="pk_subscriptions"),
)

# The name each Slack channel went by when last seen in a slash command. Subscriptions and mutes are kept
# by channel id (the one thing a rename does not change), while config.toml may name a channel `#name`:
# this table joins the two spellings (bot/channels.py) for digests, surges and mutes.
slack_channels = Table(
    "slack_channels",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(120), nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
    Index("ix_slack_channels_name", "name"),
)

# Messages that belong to no single story (scheduled digests, surge notices): an outbox of their own with
# the same delivery columns as alerts. (kind, destination, key) is unique, so a digest for one scheduled
# time, or a surge for one topic and window, is enqueued once however often the job runs: never sent twice.
messages = Table(
    "messages",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(16), nullable=False),  # digest | surge
    Column("destination", String(120), nullable=False),
    Column("key", String(200), nullable=False),
    Column("topic", String(80)),
    Column("created", UTCDateTime, nullable=False),
    Column("payload", Text, nullable=False),  # JSON: what the renderers need, frozen when enqueued
    *_delivery_columns(),
    UniqueConstraint("kind", "destination", "key", name="uq_messages_key"),
    Index("ix_messages_due", "status", "next_attempt"),
)

# Every model trained for a topic, with its held-out metrics. `active` is the one scoring; a candidate whose
# held-out F1 is worse than the active one's is kept as `rejected` with the reason, shown by status.
model_versions = Table(
    "model_versions",
    metadata,
    Column("topic", String(80), primary_key=True),
    Column("version", String(40), primary_key=True),
    Column("trained_at", UTCDateTime, nullable=False),
    Column("n_examples", Integer, nullable=False),
    Column("n_positive", Integer, nullable=False),
    Column("n_feedback", Integer, nullable=False, default=0),
    Column("precision", Float),
    Column("recall", Float),
    Column("f1", Float),
    Column("status", String(16), nullable=False),  # active | rejected | retired
    Column("reason", Text),
    Index("ix_model_versions_status", "topic", "status"),
)

# Score rows are kept only at or above this floor (and always when flagged): 100k items x N topics of
# near-zero scores would dominate the database and nobody asks for them; `explain` recomputes anyway.
SCORE_FLOOR = 0.05


@dataclass(frozen=True, slots=True)
class StoredAlert:
    alert: Alert
    status: str
    attempts: int
    title: str
    url: str
    source: str
    published: datetime
    summary: str
    score: float
    why: dict[str, Any]
    n_sources: int
    next_attempt: datetime | None = None
    uncertain: bool = False
    last_error: str | None = None
    remote_ref: str | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """A stored item as a later report of a story: what a thread reply lists."""

    id: str
    title: str
    url: str
    source: str
    published: datetime


@dataclass(frozen=True, slots=True)
class StoredFollowup:
    id: str
    parent: StoredAlert
    reports: tuple[Report, ...]
    attempts: int
    next_attempt: datetime
    uncertain: bool


@dataclass(frozen=True, slots=True)
class Tally:
    sources: int
    items: int
    stories: int
    alerts_per_topic: dict[str, int]


class UnknownAlert(LookupError):
    """No stored alert has this id (a stale button after the database was reset, or a forged value)."""


class FeedbackLabel(NamedTuple):
    """One training label from feedback: 1 relevant, 0 not relevant."""

    item_id: str
    title: str
    text: str
    label: int


@dataclass(frozen=True, slots=True)
class FeedbackTie:
    """An item whose users disagree evenly: left out of training, shown to the team."""

    item_id: str
    title: str
    tally: VoteTally


@dataclass(frozen=True, slots=True)
class Mute:
    topic: str
    destination: str
    until: datetime
    by_user: str


@dataclass(frozen=True, slots=True)
class Subscription:
    topic: str
    destination: str
    by_user: str
    at: datetime


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # 8 KiB pages for a new database (an existing one keeps its own; it must come before WAL, which fixes
    # it): items are ~1 KB rows, and bulk inserts into items ran ~15-20% faster than with 4 KiB pages.
    cursor.execute("PRAGMA page_size=8192")
    # WAL lets the web process read while the worker writes; NORMAL sync is safe with WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # A 64 MiB page cache (default 2 MiB): a cold poll inserts 100,000 items and 200,000 dedup keys whose
    # index entries land at random pages; with the small cache save_scored took ~35% longer (bench/poll.py).
    # Pages are only held as they are used.
    cursor.execute("PRAGMA cache_size=-65536")
    # Checkpoints (copying the WAL back into the database file) run on the store's own thread after its
    # commits (Store._checkpoint_soon), not inside the commit that crosses SQLite's threshold: a cold poll
    # ingested in parts otherwise paid a checkpoint of every part in its critical path. SQLite's automatic
    # one stays as a backstop, at a larger threshold, for a store whose thread is gone.
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
    cursor.close()


WAL_BACKSTOP_PAGES = 32_768  # 256 MiB of 8 KiB pages
CHECKPOINT_EVERY_S = 1.0  # at most one background checkpoint per second: small commits come in bursts


def open_engine(url: str, connect_args: Mapping[str, Any] | None = None) -> Engine:
    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, future=True, pool_pre_ping=not url.startswith("sqlite"), connect_args=dict(connect_args or {})
    )
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_time(value: datetime) -> str:
    # The text form SQLAlchemy's SQLite DateTime reads back, so bulk rows and Core rows compare alike.
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def _insert_ignore(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT … ON CONFLICT DO NOTHING for many rows, straight through the driver's executemany.

    `ON CONFLICT DO NOTHING` is the same SQL on SQLite (≥ 3.24) and PostgreSQL. Going around SQLAlchemy's
    per-row parameter processing matters here: a cold poll of 2,000 feeds inserts ~300,000 rows, and the
    Core path spent more time preparing parameters than SQLite spent storing them (bench/poll.py).
    """
    if not rows:
        return
    columns = list(rows[0])
    times = {c for c in columns if isinstance(table.c[c].type, UTCDateTime)}
    if times:
        when = _time_param(conn.dialect.name)
        params = [tuple(when(r[c]) if c in times else r[c] for c in columns) for r in rows]
    else:
        params = [tuple(r[c] for c in columns) for r in rows]
    _insert_params(conn, table, columns, params)


def _insert_params(
    conn: Connection, table: Table, columns: Sequence[str], params: Sequence[tuple[Any, ...]]
) -> None:
    """`_insert_ignore` for rows already in driver form (times through `_time_param`): the hot path of
    `save_scored` builds its tuples directly, without a dict per row."""
    if not params:
        return
    dialect = conn.dialect.name
    if dialect not in ("sqlite", "postgresql"):  # pragma: no cover - only the two supported databases
        raise RuntimeError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join(mark for _ in columns)}) "
        "ON CONFLICT DO NOTHING"
    )
    conn.exec_driver_sql(sql, list(params))


def _time_param(dialect: str) -> Callable[[datetime | None], Any]:
    """Aware datetime → what the driver of `dialect` stores for a UTCDateTime column (None stays None)."""
    if dialect == "sqlite":
        return lambda t: None if t is None else _sqlite_time(t)

    def aware(t: datetime | None) -> datetime | None:
        if t is not None and t.tzinfo is None:
            raise ValueError("naive datetime given to the store: every time must be timezone-aware UTC")
        return t

    return aware


# Full-text search over items, in each database's own engine: FTS5 on SQLite, a GIN index on the tsvector
# of title and text on PostgreSQL. `/news search` must stay fast at hundreds of thousands of items, where a
# LIKE scan reads every row. On SQLite the index catches up in batches (`Store.index_for_search`, run before
# each search) instead of by trigger: FTS5 indexing cost ~120 µs per item here, and a trigger put all of it
# inside the poll cycle's write transaction (bench/poll.py cold: 38 s → 64 s).
SEARCH_TSVECTOR = "to_tsvector('english', title || ' ' || text)"

search_state = Table(
    "search_state",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("last_rowid", Integer, nullable=False),
)


def _create_search_index(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(
            "CREATE VIRTUAL TABLE IF NOT EXISTS items_fts USING fts5("
            "title, text, content='items', content_rowid='rowid', tokenize='unicode61 remove_diacritics 2')"
        )
        _insert_ignore(conn, search_state, [{"name": "items_fts", "last_rowid": 0}])
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            f"CREATE INDEX IF NOT EXISTS ix_items_search ON items USING GIN ({SEARCH_TSVECTOR})"
        )


def _alert_query() -> Select[Any]:
    """Alerts with what rendering needs: the item, its score and why, and the story's outlets."""
    return (
        select(
            alerts,
            items.c.title,
            items.c.url,
            items.c.source,
            items.c.published,
            items.c.summary,
            scores.c.score,
            scores.c.why,
            stories.c.sources.label("story_sources"),
        )
        .join(items, items.c.id == alerts.c.item_id)
        .join(stories, stories.c.id == alerts.c.story_id)
        .outerjoin(scores, (scores.c.item_id == alerts.c.item_id) & (scores.c.topic == alerts.c.topic))
        .order_by(alerts.c.created, items.c.published, alerts.c.id)
    )


def _upsert(
    conn: Connection,
    table: Table,
    row: Mapping[str, Any],
    keys: Sequence[str],
    *,
    only_if: Any = None,
) -> None:
    """INSERT, or UPDATE the non-key columns of the row with the same `keys`: one statement, atomic on both
    databases, through each dialect's own `ON CONFLICT … DO UPDATE` (same SQL on SQLite ≥ 3.24 and
    PostgreSQL). `only_if(table, excluded)` gives a condition the update must meet, else the row is kept."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        stmt: Any = sqlite.insert(table).values(**row)
    elif dialect == "postgresql":
        stmt = postgresql.insert(table).values(**row)
    else:  # pragma: no cover - only the two supported databases
        raise RuntimeError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")
    changed = {c: stmt.excluded[c] for c in row if c not in keys}
    where = only_if(table, stmt.excluded) if only_if is not None else None
    conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=changed, where=where))


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


_ITEM_COLUMNS = (
    "id", "url", "guid", "source", "title", "text", "summary", "published", "fetched", "story_id"
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _ItemRows:
    """Some scored items as driver-ready rows (`Store._item_rows`): items, dedup keys, scores."""

    items: list[tuple[Any, ...]]
    keys: list[tuple[str, str]]
    scores: list[dict[str, Any]]


class Store:
    """All SQL lives here; callers see dataclasses."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._wal = engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")
        self._checkpointer: ThreadPoolExecutor | None = None
        self._checkpoint: Future[tuple[int, int, int]] | None = None
        self._last_checkpoint = 0.0
        self._checkpoint_lock = threading.Lock()

    @classmethod
    def open(cls, url: str) -> Store:
        store = cls(open_engine(url))
        store.create()
        return store

    def create(self) -> None:
        metadata.create_all(self.engine)
        with self.transaction() as conn:
            # create_all skips the indexes of tables that already exist: a database made by an older
            # version gets the indexes added since.
            for table in metadata.sorted_tables:
                for index in table.indexes:
                    index.create(conn, checkfirst=True)
            _create_search_index(conn)

    def index_for_search(self) -> int:
        """Bring SQLite's full-text index up to date with the items stored since; return how many were
        indexed. Items are only ever added, so their rowids past the last indexed one are the new ones.
        PostgreSQL's index is maintained by the database itself."""
        if self.engine.dialect.name != "sqlite":
            return 0
        with self.transaction() as conn:
            # Take the write lock first: two processes catching up at once must not index a row twice.
            conn.exec_driver_sql("UPDATE search_state SET last_rowid = last_rowid WHERE name = 'items_fts'")
            last = conn.exec_driver_sql(
                "SELECT last_rowid FROM search_state WHERE name = 'items_fts'"
            ).scalar()
            newest = conn.exec_driver_sql("SELECT max(rowid) FROM items").scalar()
            if newest is None or newest <= (last or 0):
                return 0
            conn.exec_driver_sql(
                "INSERT INTO items_fts(rowid, title, text) SELECT rowid, title, text FROM items "
                "WHERE rowid > ? AND rowid <= ?",
                (last or 0, newest),
            )
            conn.exec_driver_sql("UPDATE search_state SET last_rowid = ? WHERE name = 'items_fts'", (newest,))
            return int(newest - (last or 0))

    def drop(self) -> None:
        with self.transaction() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("DROP TABLE IF EXISTS items_fts")
        metadata.drop_all(self.engine)

    def close(self) -> None:
        with self._checkpoint_lock:
            checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.shutdown(wait=True)
        self.engine.dispose()

    def settle(self) -> None:
        """Wait for the background checkpoint in flight, if any (tests; a clean stop)."""
        with self._checkpoint_lock:
            running = self._checkpoint
        if running is not None:
            running.result()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn
        if self._wal:
            self._checkpoint_soon()

    def _checkpoint_soon(self) -> None:
        """Start a background PASSIVE checkpoint unless one is running or ran within CHECKPOINT_EVERY_S."""
        with self._checkpoint_lock:
            now = time.monotonic()
            if self._checkpoint is not None and not self._checkpoint.done():
                return
            if now - self._last_checkpoint < CHECKPOINT_EVERY_S:
                return
            if self._checkpointer is None:
                self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="wal-checkpoint")
            self._last_checkpoint = now
            self._checkpoint = self._checkpointer.submit(self.checkpoint)

    def checkpoint(self) -> tuple[int, int, int]:
        """Copy what the WAL holds back into the database file without blocking readers or writers
        (SQLite only; elsewhere (0, 0, 0)): (busy, frames in the WAL, frames checkpointed), as SQLite
        reports them."""
        if self.engine.dialect.name != "sqlite":
            return 0, 0, 0
        with self.engine.connect() as conn:
            row = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        return int(row[0]), int(row[1]), int(row[2])

    # -- sources ---------------------------------------------------------------------------------------

    def ensure_sources(self, configured: Sequence[tuple[str, str]]) -> None:
        """Rows for configured sources (new ones added, moved URLs updated); health is kept by name."""
        with self.transaction() as conn:
            known = dict(conn.execute(select(sources.c.name, sources.c.url)).all())
            _insert_ignore(
                conn,
                sources,
                [{"name": n, "url": u, "consecutive_failures": 0} for n, u in configured if n not in known],
            )
            moved = [{"b_name": n, "url": u} for n, u in configured if n in known and known[n] != u]
            if moved:
                conn.execute(update(sources).where(sources.c.name == bindparam("b_name")), moved)

    def source_health(self) -> dict[str, SourceHealth]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(sources)).mappings().all()
        return {
            r["name"]: SourceHealth(
                last_success=r["last_success"],
                last_error=r["last_error"],
                last_error_at=r["last_error_at"],
                consecutive_failures=r["consecutive_failures"] or 0,
                etag=r["etag"],
                last_modified=r["last_modified"],
                next_due=r["next_due"],
            )
            for r in rows
        }

    def source_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(sources).order_by(sources.c.name)).mappings()]

    def save_health(
        self, conn: Connection, updates: Sequence[tuple[str, SourceHealth, int]], polled: datetime
    ) -> None:
        """Record each polled source's health (name, health, HTTP status) in one driver executemany:
        a 2,000-feed conditional cycle is otherwise dominated by per-row parameter processing."""
        if not updates:
            return
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        columns = (
            "etag", "last_modified", "last_success", "last_error", "last_error_at",
            "consecutive_failures", "next_due", "last_status", "last_polled",
        )  # fmt: skip
        sql = f"UPDATE sources SET {', '.join(f'{c} = {mark}' for c in columns)} WHERE name = {mark}"
        when: Callable[[datetime | None], Any] = (
            (lambda t: None if t is None else _sqlite_time(t))
            if conn.dialect.name == "sqlite"
            else (lambda t: t)
        )
        conn.exec_driver_sql(
            sql,
            [
                (
                    h.etag,
                    h.last_modified,
                    when(h.last_success),
                    h.last_error,
                    when(h.last_error_at),
                    h.consecutive_failures,
                    when(h.next_due),
                    status,
                    when(polled),
                    name,
                )
                for name, h, status in updates
            ],
        )

    # -- items -----------------------------------------------------------------------------------------

    def known_keys(self, keys: Iterable[str]) -> dict[str, str]:
        """Which of these dedup keys are already stored, mapped to their item id."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, str] = {}
        with self.engine.connect() as conn:
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            for chunk in _chunks(wanted, 900):  # under SQLite's historical 999-variable limit
                sql = f"SELECT key, item_id FROM item_keys WHERE key IN ({', '.join(mark for _ in chunk)})"
                found.update((k, v) for k, v in conn.exec_driver_sql(sql, tuple(chunk)).all())
        return found

    def save_scored(
        self,
        conn: Connection,
        scored: Sequence[ScoredItem],
        keys: Mapping[str, Sequence[str]],
        model_versions: Mapping[str, str],
        new_alerts: Sequence[Alert],
        new_followups: Sequence[Followup] = (),
    ) -> None:
        """Items, their keys, stories, scores and outbox alerts in the caller's one transaction.

        One transaction is the delivery guarantee's first half: an alert exists exactly when its item and
        scores do, so a crash never leaves an alert pointing at nothing or a flagged item without its alert.
        """
        if not scored:
            return
        self.save_items(conn, scored, keys, model_versions)
        self.save_outcome(conn, scored, new_alerts, new_followups)

    def save_items(
        self,
        conn: Connection,
        scored: Sequence[ScoredItem],
        keys: Mapping[str, Sequence[str]],
        model_versions: Mapping[str, str],
    ) -> None:
        """The first half of `save_scored`: items, the dedup keys in `keys` (item id → its keys) and the
        items' scores. A batch may be saved in parts, in order, as its stories are decided;
        `save_outcome` then completes it in the same transaction."""
        self._insert_item_rows(conn, self._item_rows(scored, keys, model_versions))

    def _item_rows(
        self,
        scored: Sequence[ScoredItem],
        keys: Mapping[str, Sequence[str]],
        model_versions: Mapping[str, str],
    ) -> _ItemRows:
        """`save_items`' rows, ready for the driver (times converted, no dict per row)."""
        when = _time_param(self.engine.dialect.name)
        fetched: dict[datetime, Any] = {}  # a cycle's items share one fetch time: convert it once
        item_params = []
        for s in scored:
            item = s.item
            seen = item.fetched or item.published
            at = fetched.get(seen)
            if at is None:
                at = fetched[seen] = when(seen)
            item_params.append(
                (
                    item.id, item.url, item.guid, item.source, item.title, item.text, s.summary or None,
                    when(item.published), at, s.story,
                )
            )  # fmt: skip
        score_rows = [
            {
                "item_id": s.item.id,
                "topic": ts.topic,
                "score": float(ts.score),
                "flagged": ts.flagged,
                "why": json.dumps(
                    {
                        "terms": [[t, round(w, 4)] for t, w in ts.why.terms],
                        "rules": list(ts.why.rules_matched),
                        "rules_failed": ts.why.rules_failed,
                    }
                )
                if ts.flagged
                else None,
                "model_version": model_versions.get(ts.topic),
            }
            for s in scored
            for ts in s.scores
            if ts.flagged or ts.score >= SCORE_FLOOR
        ]
        key_params = [(k, item_id) for item_id, ks in keys.items() for k in ks]
        return _ItemRows(item_params, key_params, score_rows)

    def _insert_item_rows(self, conn: Connection, rows: _ItemRows) -> None:
        """Insert what `_item_rows` built: items first, then what refers to them."""
        for chunk in _chunks(rows.items, 2000):
            _insert_params(conn, items, _ITEM_COLUMNS, chunk)
        for chunk in _chunks(rows.keys, 4000):
            _insert_params(conn, item_keys, ("key", "item_id"), chunk)
        for chunk in _chunks(rows.scores, 4000):
            _insert_ignore(conn, scores, chunk)

    def save_outcome(
        self,
        conn: Connection,
        scored: Sequence[ScoredItem],
        new_alerts: Sequence[Alert],
        new_followups: Sequence[Followup] = (),
    ) -> None:
        """The second half of `save_scored`, once all of the batch's items are saved: its stories (counts
        and outlets over the whole batch), outbox alerts and thread follow-ups."""
        if not scored:
            return
        self._update_stories(conn, scored)
        alert_rows = [
            {
                "id": a.id,
                "topic": a.topic,
                "destination": a.destination,
                "story_id": a.story,
                "item_id": a.item_id,
                "created": a.created,
                "status": "pending",
                "attempts": 0,
                "next_attempt": a.created,
                "uncertain": False,
                "rolled_up": False,
            }
            for a in new_alerts
        ]
        _insert_ignore(conn, alerts, alert_rows)
        _insert_ignore(
            conn,
            followups,
            [
                {
                    "id": f.id,
                    "alert_id": f.alert_id,
                    "item_ids": json.dumps(list(f.item_ids)),
                    "created": f.created,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt": f.created,
                    "uncertain": False,
                }
                for f in new_followups
            ],
        )

    def _update_stories(self, conn: Connection, scored: Sequence[ScoredItem]) -> None:
        by_story: dict[str, list[Item]] = {}
        for s in scored:
            by_story.setdefault(s.story, []).append(s.item)
        existing: dict[str, Mapping[str, Any]] = {}
        ids = list(by_story)
        for chunk in _chunks(ids, 500):
            for row in conn.execute(select(stories).where(stories.c.id.in_(chunk))).mappings():
                existing[row["id"]] = dict(row)
        new_rows: list[dict[str, Any]] = []
        changed: list[tuple[Any, int, str, str]] = []
        when = _time_param(conn.dialect.name)
        for story_id, members in by_story.items():
            times = [m.published for m in members]
            outlets = sorted({m.source for m in members})
            known = existing.get(story_id)
            if known is None:
                new_rows.append(
                    {
                        "id": story_id,
                        "first_seen": min(times),
                        "last_seen": max(times),
                        "n_items": len(members),
                        "sources": json.dumps(outlets),
                    }
                )
            else:
                merged = sorted(set(json.loads(known["sources"])) | set(outlets))
                last_seen = max([known["last_seen"], *times])
                changed.append((when(last_seen), len(members), json.dumps(merged), story_id))
        if changed:
            # One executemany: a big cycle ingested in parts updates thousands of stories begun by an
            # earlier part, and one Core UPDATE each cost ~0.4 s per 100,000 items (bench/poll.py).
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            conn.exec_driver_sql(
                f"UPDATE stories SET last_seen = {mark}, n_items = n_items + {mark}, sources = {mark} "
                f"WHERE id = {mark}",
                changed,
            )
        for chunk in _chunks(new_rows, 2000):
            _insert_ignore(conn, stories, chunk)

    def alerts_of_stories(self, conn: Connection, story_ids: Iterable[str]) -> dict[str, list[Alert]]:
        """Every alert of these stories: a story alerts once per topic and destination, and its later
        reports go into those alerts' threads."""
        wanted = list(dict.fromkeys(story_ids))
        found: dict[str, list[Alert]] = {}
        for chunk in _chunks(wanted, 500):
            for r in conn.execute(select(alerts).where(alerts.c.story_id.in_(chunk))).mappings():
                found.setdefault(r["story_id"], []).append(
                    Alert(r["id"], r["topic"], r["destination"], r["story_id"], r["item_id"], r["created"])
                )
        return found

    def recent_items(self, since: datetime) -> list[Any]:
        """Items published since `since`, with their story, to warm the story index at start-up."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(items.c.id, items.c.story_id, items.c.title, items.c.text, items.c.published)
                .where(items.c.published >= since)
                .order_by(items.c.published)
            ).all()
        return list(rows)

    # -- outbox ----------------------------------------------------------------------------------------

    def due_alerts(self, now: datetime, limit: int = 100) -> list[StoredAlert]:
        """Pending alerts whose time has come, oldest first."""
        query = _alert_query().where(alerts.c.status == "pending", alerts.c.next_attempt <= now).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [self._stored_alert(dict(r)) for r in rows]

    def pending_alerts(self, prefix: str, limit: int = 1000) -> list[StoredAlert]:
        """Pending alerts for destinations starting with `prefix`, due or not, in order: a destination's
        queue is sent in order, so an alert waiting for its retry holds back the ones behind it."""
        query = _alert_query().where(alerts.c.status == "pending", alerts.c.destination.startswith(prefix))
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(limit)).mappings().all()
        return [self._stored_alert(dict(r)) for r in rows]

    @staticmethod
    def _stored_alert(r: Mapping[str, Any]) -> StoredAlert:
        return StoredAlert(
            alert=Alert(
                id=r["id"],
                topic=r["topic"],
                destination=r["destination"],
                story=r["story_id"],
                item_id=r["item_id"],
                created=r["created"],
            ),
            status=r["status"],
            attempts=r["attempts"],
            next_attempt=r["next_attempt"],
            uncertain=bool(r["uncertain"]),
            last_error=r["last_error"],
            remote_ref=r["remote_ref"],
            title=r["title"],
            url=r["url"],
            source=r["source"],
            published=r["published"],
            summary=r["summary"] or "",
            score=float(r["score"] or 0.0),
            why=json.loads(r["why"]) if r["why"] else {},
            n_sources=len(json.loads(r["story_sources"] or "[]")),
        )

    def mark_sent(self, alert_id: str, when: datetime, remote_ref: str | None = None) -> None:
        with self.transaction() as conn:
            conn.execute(
                update(alerts)
                .where(alerts.c.id == alert_id)
                .values(
                    status="sent",
                    sent_at=when,
                    remote_ref=remote_ref,
                    attempts=alerts.c.attempts + 1,
                    uncertain=False,
                )
            )

    def mark_uncertain(self, alert_id: str) -> None:
        """Before a send: if we die before `mark_sent`, the retry must look before it posts again."""
        with self.transaction() as conn:
            conn.execute(update(alerts).where(alerts.c.id == alert_id).values(uncertain=True))

    def mark_failed(
        self,
        alert_id: str,
        error: str,
        retry_at: datetime | None,
        *,
        uncertain: bool = False,
        count: bool = True,
    ) -> None:
        """Schedule a retry at `retry_at`, or move the alert to the dead letters when it is None.

        `count=False` for waits that are not the alert's fault (a 429 asks us to slow down), so they do not
        push it toward the dead letters."""
        with self.transaction() as conn:
            values: dict[str, Any] = {"last_error": error[:1000], "uncertain": uncertain}
            if count:
                values["attempts"] = alerts.c.attempts + 1
            if retry_at is None:
                values["status"] = "dead"
            else:
                values["next_attempt"] = retry_at
            conn.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))

    def sent_since(self, topic: str, destination: str, since: datetime, *, rolled_up: bool) -> int:
        """Alerts of a topic sent to a destination since `since`, as messages of their own or rolled up."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        alerts.c.topic == topic,
                        alerts.c.destination == destination,
                        alerts.c.status == "sent",
                        alerts.c.sent_at >= since,
                        alerts.c.rolled_up == rolled_up,
                    )
                ).scalar_one()
            )

    def hold_alert(self, alert_id: str) -> None:
        """Past the hourly cap: the alert waits (status `held`) for its topic's next roll-up."""
        with self.transaction() as conn:
            conn.execute(update(alerts).where(alerts.c.id == alert_id).values(status="held"))

    def held_alerts(self, prefix: str) -> list[StoredAlert]:
        query = _alert_query().where(alerts.c.status == "held", alerts.c.destination.startswith(prefix))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [self._stored_alert(dict(r)) for r in rows]

    def mark_rolled_up(self, alert_ids: Sequence[str], when: datetime, remote_ref: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                update(alerts)
                .where(alerts.c.id.in_(list(alert_ids)))
                .values(status="sent", sent_at=when, remote_ref=remote_ref, rolled_up=True, uncertain=False)
            )

    def outbox_depth(self) -> dict[str, int]:
        """Pending alerts per destination."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(alerts.c.destination, func.count())
                .where(alerts.c.status == "pending")
                .group_by(alerts.c.destination)
            ).all()
        return {str(d): int(n) for d, n in rows}

    def pending_followups(self, prefix: str, limit: int = 500) -> list[StoredFollowup]:
        """Pending thread replies whose parent alert has been sent (a reply needs its parent's ts)."""
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(followups)
                    .join(alerts, alerts.c.id == followups.c.alert_id)
                    .where(
                        followups.c.status == "pending",
                        alerts.c.status == "sent",
                        alerts.c.destination.startswith(prefix),
                    )
                    .order_by(followups.c.created, followups.c.id)
                    .limit(limit)
                )
                .mappings()
                .all()
            )
            if not rows:
                return []
            parent_ids = list({r["alert_id"] for r in rows})
            parents = {
                p["id"]: self._stored_alert(dict(p))
                for chunk in _chunks(parent_ids, 500)
                for p in conn.execute(_alert_query().where(alerts.c.id.in_(chunk))).mappings()
            }
            item_ids = list({i for r in rows for i in json.loads(r["item_ids"])})
            reports = {
                r["id"]: Report(r["id"], r["title"], r["url"], r["source"], r["published"])
                for chunk in _chunks(item_ids, 500)
                for r in conn.execute(
                    select(items.c.id, items.c.title, items.c.url, items.c.source, items.c.published).where(
                        items.c.id.in_(chunk)
                    )
                ).mappings()
            }
        return [
            StoredFollowup(
                id=r["id"],
                parent=parents[r["alert_id"]],
                reports=tuple(reports[i] for i in json.loads(r["item_ids"]) if i in reports),
                attempts=r["attempts"],
                next_attempt=r["next_attempt"],
                uncertain=bool(r["uncertain"]),
            )
            for r in rows
        ]

    def settle_followup(
        self,
        followup_id: str,
        *,
        sent_at: datetime | None = None,
        remote_ref: str | None = None,
        error: str | None = None,
        retry_at: datetime | None = None,
        uncertain: bool = False,
    ) -> None:
        """Record a thread reply's outcome: sent (with its ref), to retry at `retry_at`, or dead."""
        values: dict[str, Any] = {"uncertain": uncertain}
        if sent_at is not None:
            values.update(
                status="sent", sent_at=sent_at, remote_ref=remote_ref, attempts=followups.c.attempts + 1
            )
        else:
            values.update(last_error=(error or "")[:1000], attempts=followups.c.attempts + 1)
            if retry_at is None:
                values["status"] = "dead"
            else:
                values["next_attempt"] = retry_at
        with self.transaction() as conn:
            conn.execute(update(followups).where(followups.c.id == followup_id).values(**values))

    def mark_followup_uncertain(self, followup_id: str) -> None:
        with self.transaction() as conn:
            conn.execute(update(followups).where(followups.c.id == followup_id).values(uncertain=True))

    def story_sources(self, story_id: str) -> list[str]:
        with self.engine.connect() as conn:
            raw = conn.execute(select(stories.c.sources).where(stories.c.id == story_id)).scalar()
        return list(json.loads(raw)) if raw else []

    # -- queries ---------------------------------------------------------------------------------------

    def alerts_for(self, status: str | None = None) -> list[StoredAlert]:
        query = _alert_query()
        if status:
            query = query.where(alerts.c.status == status)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [self._stored_alert(dict(r)) for r in rows]

    def tally(self) -> Tally:
        with self.engine.connect() as conn:
            n_sources = conn.execute(select(func.count()).select_from(sources)).scalar_one()
            n_items = conn.execute(select(func.count()).select_from(items)).scalar_one()
            n_stories = conn.execute(select(func.count()).select_from(stories)).scalar_one()
            per_topic: dict[Any, Any] = dict(
                conn.execute(
                    select(alerts.c.topic, func.count(func.distinct(alerts.c.story_id))).group_by(
                        alerts.c.topic
                    )
                ).all()
            )
        return Tally(n_sources, n_items, n_stories, {str(k): int(v) for k, v in per_topic.items()})

    def item(self, item_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(items).where(items.c.id == item_id)).mappings().first()
        return dict(row) if row else None

    def count_items(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(items)).scalar_one())

    def find_alert(self, alert_id: str) -> StoredAlert | None:
        """One alert with what rendering needs, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(_alert_query().where(alerts.c.id == alert_id)).mappings().first()
        return self._stored_alert(dict(row)) if row else None

    # -- feedback --------------------------------------------------------------------------------------

    def record_feedback(self, alert_id: str, user_id: str, verdict: Verdict, at: datetime) -> None:
        """A user's verdict on an alert, replacing their earlier one. Raises `UnknownAlert`."""
        if verdict not in ("relevant", "not_relevant"):
            raise ValueError(f"verdict {verdict!r}: use 'relevant' or 'not_relevant'")
        with self.transaction() as conn:
            found = conn.execute(
                select(alerts.c.topic, alerts.c.item_id).where(alerts.c.id == alert_id)
            ).first()
            if found is None:
                raise UnknownAlert(alert_id)
            _upsert(
                conn,
                feedback,
                {
                    "alert_id": alert_id,
                    "user_id": user_id,
                    "topic": found.topic,
                    "item_id": found.item_id,
                    "verdict": verdict,
                    "at": at,
                },
                ("alert_id", "user_id"),
            )

    def feedback_for_alert(self, alert_id: str) -> dict[str, Verdict]:
        """user → verdict on this alert, in the order the verdicts were last given."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(feedback.c.user_id, feedback.c.verdict)
                .where(feedback.c.alert_id == alert_id)
                .order_by(feedback.c.at, feedback.c.user_id)
            ).all()
        return {str(user): verdict for user, verdict in rows}

    def _votes(self, conn: Connection, topic: str) -> list[Vote]:
        rows = conn.execute(
            select(feedback).where(feedback.c.topic == topic).order_by(feedback.c.at, feedback.c.alert_id)
        ).mappings()
        return [Vote(r["alert_id"], r["item_id"], r["user_id"], r["verdict"], r["at"]) for r in rows]

    def _topic_labels(self, topic: str) -> tuple[ItemLabels, dict[str, tuple[str, str]]]:
        with self.engine.connect() as conn:
            decided = item_labels(self._votes(conn, topic))
            wanted = [*decided.labels, *decided.ties]
            texts = {
                r.id: (r.title, r.text)
                for chunk in _chunks(wanted, 500)
                for r in conn.execute(
                    select(items.c.id, items.c.title, items.c.text).where(items.c.id.in_(chunk))
                )
            }
        return decided, texts

    def feedback_labels(self, topic: str) -> list[FeedbackLabel]:
        """Training labels for `topic`: per item, the majority of each user's latest verdict. Tied items
        are left out (see `feedback_ties`)."""
        decided, texts = self._topic_labels(topic)
        return [
            FeedbackLabel(item_id, *texts[item_id], label)
            for item_id, label in decided.labels.items()
            if item_id in texts
        ]

    def feedback_ties(self, topic: str) -> list[FeedbackTie]:
        """Items of `topic` whose users disagree evenly: no training label, shown to the team instead."""
        decided, texts = self._topic_labels(topic)
        return [
            FeedbackTie(item_id, texts.get(item_id, ("", ""))[0], counted)
            for item_id, counted in decided.ties.items()
        ]

    # -- mutes -----------------------------------------------------------------------------------------

    def mute(self, topic: str, destination: str, until: datetime, user: str) -> datetime:
        """Mute `topic` at `destination` until `until`; a longer mute already in force is kept. Returns
        when the mute in force ends."""
        with self.transaction() as conn:
            _upsert(
                conn,
                mutes,
                {"topic": topic, "destination": destination, "until": until, "by_user": user},
                ("topic", "destination"),
                only_if=lambda table, new: table.c.until < new.until,
            )
            ends = conn.execute(
                select(mutes.c.until).where(mutes.c.topic == topic, mutes.c.destination == destination)
            ).scalar_one()
        return ends

    def unmute(self, topic: str, destination: str) -> bool:
        """End a mute now; False when there was none."""
        with self.transaction() as conn:
            gone = conn.execute(
                mutes.delete().where(mutes.c.topic == topic, mutes.c.destination == destination)
            )
        return bool(gone.rowcount)

    def active_mutes(self, now: datetime) -> list[Mute]:
        """Mutes still in force at `now`."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(mutes).where(mutes.c.until > now).order_by(mutes.c.topic, mutes.c.destination)
            ).mappings()
            return [Mute(r["topic"], r["destination"], r["until"], r["by_user"]) for r in rows]

    def set_aside_muted(self, now: datetime) -> int:
        """Alerts waiting to go (pending or held for a roll-up) to a destination where their topic is muted
        at `now` move to status `muted`: kept, never sent, and not held back for when the mute ends (a
        muted channel asked for silence, not for a burst 24 h later). Returns how many.

        A mute covers every spelling of its channel (bot/channels.py): `/news mute` records the channel's
        id, while config.toml may route the topic there by `#name`."""
        active = self.active_mutes(now)
        if not active:
            return 0
        names = self.slack_channel_names()
        moved = 0
        with self.transaction() as conn:
            for m in active:
                done = conn.execute(
                    update(alerts)
                    .where(
                        alerts.c.status.in_(("pending", "held")),
                        alerts.c.topic == m.topic,
                        func.lower(alerts.c.destination).in_(sorted(same_channels([m.destination], names))),
                    )
                    .values(status="muted")
                )
                moved += int(done.rowcount or 0)
        return moved

    # -- subscriptions ---------------------------------------------------------------------------------

    def subscribe(self, topic: str, destination: str, user: str, at: datetime) -> bool:
        """Route `topic` to `destination` as well; False when it already was (the first subscriber is kept)."""
        with self.transaction() as conn:
            found = conn.execute(
                select(subscriptions.c.topic).where(
                    subscriptions.c.topic == topic, subscriptions.c.destination == destination
                )
            ).first()
            if found is not None:
                return False
            _insert_ignore(
                conn,
                subscriptions,
                [{"topic": topic, "destination": destination, "by_user": user, "at": at}],
            )
        return True

    def unsubscribe(self, topic: str, destination: str) -> bool:
        """Remove a stored subscription; False when there was none."""
        with self.transaction() as conn:
            gone = conn.execute(
                subscriptions.delete().where(
                    subscriptions.c.topic == topic, subscriptions.c.destination == destination
                )
            )
        return bool(gone.rowcount)

    def note_channel(self, channel_id: str, name: str, at: datetime) -> None:
        """Remember that Slack channel `channel_id` is called `name` (without `#`) as of `at`; a later
        sighting wins, so a renamed channel answers to its new name only."""
        if not channel_id or not name:
            return
        with self.transaction() as conn:
            done = conn.execute(
                update(slack_channels)
                .where(slack_channels.c.id == channel_id, slack_channels.c.seen_at <= at)
                .values(name=name.lower(), seen_at=at)
            )
            if not done.rowcount:
                _insert_ignore(
                    conn, slack_channels, [{"id": channel_id, "name": name.lower(), "seen_at": at}]
                )

    def slack_channel_names(self) -> dict[str, str]:
        """Slack channel id → the name (lower case, without `#`) it was last seen under in a slash command."""
        with self.engine.connect() as conn:
            return {
                cid: name for cid, name in conn.execute(select(slack_channels.c.id, slack_channels.c.name))
            }

    def subscriptions(self) -> list[Subscription]:
        """Every stored subscription, by topic then destination."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(subscriptions).order_by(subscriptions.c.topic, subscriptions.c.destination)
            ).mappings()
            return [Subscription(r["topic"], r["destination"], r["by_user"], r["at"]) for r in rows]
