"""Read-only questions the `/news` command, `/healthz` and `/metrics` ask of the store.

Why a module of its own: `bot/store.py` owns writing (the pipeline's one transaction, the outbox); this one
owns the analysts' questions, so a new subcommand adds a query here without touching the write path. All
SQL is SQLAlchemy Core over the tables of `bot/store.py`, portable to SQLite and PostgreSQL: no dialect
functions, `lower(…) LIKE` instead of `ILIKE`, counts through portable `CASE`.

Every function takes the `Store` and returns plain frozen dataclasses; times come in as arguments (no
clock here). They are synchronous: async callers run them with `asyncio.to_thread`.

Search runs on each database's own full-text index (SQLite FTS5, PostgreSQL `tsvector` + GIN; see
`bot/store.py`), best matches first, so it stays fast at hundreds of thousands of items where a `LIKE` scan
reads every row (bench/slack.py: p50 56 ms against 505 ms for `LIKE` at 200,000 items).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    String,
    and_,
    case,
    desc,
    exists,
    func,
    literal,
    literal_column,
    select,
    text,
    true,
)

from bot.store import (
    SEARCH_TSVECTOR,
    Store,
    UTCDateTime,
    alerts,
    followups,
    items,
    messages,
    model_versions,
    scores,
    sources,
)
from bot.urls import canonical_url

SEARCH_LIMIT_MAX = 50


@dataclass(frozen=True, slots=True)
class AlertedItem:
    """One item alerted on a topic (once, whatever the number of destinations)."""

    topic: str
    item_id: str
    alerted: datetime
    title: str
    url: str
    source: str
    published: datetime
    score: float | None
    statuses: tuple[str, ...]  # the alert rows' statuses (pending / sent / dead), one per destination


@dataclass(frozen=True, slots=True)
class TopicActivity:
    """Stories alerted on a topic in the last 24 hours and 7 days (distinct stories, all destinations)."""

    last_day: int = 0
    last_week: int = 0


@dataclass(frozen=True, slots=True)
class SourceState:
    name: str
    url: str
    last_success: datetime | None
    last_polled: datetime | None
    consecutive_failures: int
    last_error: str | None
    last_error_at: datetime | None
    last_status: int | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    alert_id: str  # the alert's id, or the digest's / surge notice's message id
    topic: str
    destination: str
    created: datetime
    attempts: int
    last_error: str | None
    title: str
    kind: str = "alert"  # alert | digest | surge


@dataclass(frozen=True, slots=True)
class DigestState:
    """One destination's digests: the last one sent, and any waiting in the outbox."""

    destination: str
    last_sent: datetime | None
    pending: int


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """A topic's model version: from stored scores and the versions registry (`bot.model_registry`).

    Per topic the report holds its active version, its latest rejected candidate when that came after the
    active one (with `reason`: "held-out F1 0.81 < active 0.86 …"), and every version stored scores name.
    Registry fields are None for a version the registry does not know (scores from before it existed).
    """

    topic: str
    version: str
    scores: int  # stored score rows made by this version
    status: str | None = None  # active | rejected | retired; None: not in the registry
    trained_at: datetime | None = None
    n_examples: int | None = None  # training-set size
    n_positive: int | None = None  # real positive examples (config and feedback)
    n_feedback: int | None = None  # feedback clicks it was trained with
    precision: float | None = None  # held-out, at the topic's threshold; None when not measurable
    recall: float | None = None
    f1: float | None = None
    reason: str | None = None  # why it became active, or why it was rejected


@dataclass(frozen=True, slots=True)
class StatusReport:
    sources: list[SourceState]
    last_poll: datetime | None
    outbox: dict[str, int]  # pending per destination: alerts, thread replies, digests and surge notices
    dead_count: int  # dead alerts, digests and surge notices
    dead_latest: list[DeadLetter]
    model_versions: list[ModelVersion]
    digests: list[DigestState] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SearchHit:
    item_id: str
    title: str
    url: str
    source: str
    published: datetime
    rank: float  # higher is better; comparable within one search only


@dataclass(frozen=True, slots=True)
class StoredScore:
    topic: str
    score: float
    flagged: bool
    why: dict[str, Any]
    model_version: str | None


@dataclass(frozen=True, slots=True)
class ItemRecord:
    id: str
    url: str
    source: str
    title: str
    text: str
    summary: str
    published: datetime
    fetched: datetime
    story_id: str
    scores: list[StoredScore] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Metrics:
    items: int
    alerts_by_status: dict[str, int]
    outbox: dict[str, int]
    sources: int
    sources_failing: int


# -- latest / topics ------------------------------------------------------------------------------------


def latest_alerted(store: Store, topic: str | None, limit: int) -> list[AlertedItem]:
    """Items alerted most recently, newest alert first, one row per (topic, item)."""
    per_item = select(
        alerts.c.topic,
        alerts.c.item_id,
        func.max(alerts.c.created).label("alerted"),
    ).group_by(alerts.c.topic, alerts.c.item_id)
    if topic is not None:
        per_item = per_item.where(alerts.c.topic == topic)
    latest = per_item.order_by(func.max(alerts.c.created).desc(), alerts.c.item_id).limit(limit).subquery()
    query = (
        select(
            latest.c.topic,
            latest.c.item_id,
            latest.c.alerted,
            items.c.title,
            items.c.url,
            items.c.source,
            items.c.published,
            scores.c.score,
        )
        .join(items, items.c.id == latest.c.item_id)
        .outerjoin(scores, and_(scores.c.item_id == latest.c.item_id, scores.c.topic == latest.c.topic))
        .order_by(latest.c.alerted.desc(), items.c.published.desc(), latest.c.item_id)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
        keys = [(r["topic"], r["item_id"]) for r in rows]
        statuses: dict[tuple[str, str], list[str]] = {k: [] for k in keys}
        if keys:
            for t, item_id, status in conn.execute(
                select(alerts.c.topic, alerts.c.item_id, alerts.c.status)
                .where(alerts.c.item_id.in_({k[1] for k in keys}))
                .order_by(alerts.c.destination)
            ):
                if (t, item_id) in statuses:
                    statuses[(t, item_id)].append(str(status))
    return [
        AlertedItem(
            topic=r["topic"],
            item_id=r["item_id"],
            alerted=_aware(r["alerted"]),
            title=r["title"],
            url=r["url"],
            source=r["source"],
            published=r["published"],
            score=None if r["score"] is None else float(r["score"]),
            statuses=tuple(statuses.get((r["topic"], r["item_id"]), ())),
        )
        for r in rows
    ]


def topic_activity(store: Store, now: datetime) -> dict[str, TopicActivity]:
    """Distinct stories alerted per topic in the last 24 h and 7 d."""
    day, week = now - timedelta(days=1), now - timedelta(days=7)
    query = (
        select(
            alerts.c.topic,
            func.count(func.distinct(case((alerts.c.created >= day, alerts.c.story_id)))),
            func.count(func.distinct(alerts.c.story_id)),
        )
        .where(alerts.c.created >= week)
        .group_by(alerts.c.topic)
    )
    with store.engine.connect() as conn:
        return {str(t): TopicActivity(int(d), int(w)) for t, d, w in conn.execute(query)}


# -- status -----------------------------------------------------------------------------------------------


def _outbox_depth(conn: Any) -> dict[str, int]:
    """Pending alerts, thread replies (a reply's destination is its parent alert's) and messages."""
    depth: dict[str, int] = {}
    for query in (
        select(alerts.c.destination, func.count())
        .where(alerts.c.status == "pending")
        .group_by(alerts.c.destination),
        select(alerts.c.destination, func.count())
        .select_from(followups.join(alerts, alerts.c.id == followups.c.alert_id))
        .where(followups.c.status == "pending")
        .group_by(alerts.c.destination),
        select(messages.c.destination, func.count())
        .where(messages.c.status == "pending")
        .group_by(messages.c.destination),
    ):
        for d, n in conn.execute(query):
            depth[str(d)] = depth.get(str(d), 0) + int(n)
    return dict(sorted(depth.items()))


def _digest_states(conn: Any) -> list[DigestState]:
    rows = conn.execute(
        select(
            messages.c.destination,
            func.max(case((messages.c.status == "sent", messages.c.sent_at)), type_=UTCDateTime),
            func.sum(case((messages.c.status == "pending", 1), else_=0)),
        )
        .where(messages.c.kind == "digest")
        .group_by(messages.c.destination)
        .order_by(messages.c.destination)
    ).all()
    return [
        DigestState(str(d), _aware(last) if last is not None else None, int(n or 0)) for d, last, n in rows
    ]


def _dead_messages(conn: Any, limit: int) -> tuple[int, list[DeadLetter]]:
    count = int(
        conn.execute(
            select(func.count()).select_from(messages).where(messages.c.status == "dead")
        ).scalar_one()
    )
    rows = conn.execute(
        select(messages)
        .where(messages.c.status == "dead")
        .order_by(messages.c.created.desc(), messages.c.id)
        .limit(limit)
    ).mappings()
    dead = [
        DeadLetter(
            alert_id=r["id"],
            topic=r["topic"] or "",
            destination=r["destination"],
            created=r["created"],
            attempts=int(r["attempts"] or 0),
            last_error=r["last_error"],
            title=f"{r['kind']} of {r['created']:%Y-%m-%d %H:%M} UTC",
            kind=r["kind"],
        )
        for r in rows
    ]
    return count, dead


def with_configured_digests(report: StatusReport, destinations: Sequence[str]) -> StatusReport:
    """Add the digests config.toml schedules that have never been queued ("last sent: never")."""
    known = {g.destination for g in report.digests}
    extra = [DigestState(d, None, 0) for d in dict.fromkeys(destinations) if d not in known]
    if not extra:
        return report
    merged = sorted([*report.digests, *extra], key=lambda g: g.destination)
    return replace(report, digests=merged)


def status_report(store: Store, dead_shown: int = 5) -> StatusReport:
    with store.engine.connect() as conn:
        source_rows = conn.execute(select(sources).order_by(sources.c.name)).mappings().all()
        outbox = _outbox_depth(conn)
        digests = _digest_states(conn)
        dead_messages, dead_message_rows = _dead_messages(conn, dead_shown)
        dead_count = dead_messages + int(
            conn.execute(
                select(func.count()).select_from(alerts).where(alerts.c.status == "dead")
            ).scalar_one()
        )
        dead_rows = (
            conn.execute(
                select(
                    alerts.c.id,
                    alerts.c.topic,
                    alerts.c.destination,
                    alerts.c.created,
                    alerts.c.attempts,
                    alerts.c.last_error,
                    items.c.title,
                )
                .join(items, items.c.id == alerts.c.item_id)
                .where(alerts.c.status == "dead")
                .order_by(alerts.c.created.desc(), alerts.c.id)
                .limit(dead_shown)
            )
            .mappings()
            .all()
        )
        versions = conn.execute(
            select(scores.c.topic, scores.c.model_version, func.count())
            .where(scores.c.model_version.is_not(None))
            .group_by(scores.c.topic, scores.c.model_version)
            .order_by(scores.c.topic, scores.c.model_version)
        ).all()
        registry = (
            conn.execute(
                select(model_versions).where(
                    model_versions.c.status.in_(("active", "rejected"))
                    | model_versions.c.version.in_({str(v) for _, v, _ in versions})
                )
            )
            .mappings()
            .all()
        )
    states = [
        SourceState(
            name=r["name"],
            url=r["url"],
            last_success=r["last_success"],
            last_polled=r["last_polled"],
            consecutive_failures=int(r["consecutive_failures"] or 0),
            last_error=r["last_error"],
            last_error_at=r["last_error_at"],
            last_status=r["last_status"],
        )
        for r in source_rows
    ]
    polled = [s.last_polled for s in states if s.last_polled is not None]
    return StatusReport(
        sources=states,
        last_poll=max(polled) if polled else None,
        outbox=outbox,
        dead_count=dead_count,
        dead_latest=sorted(
            [
                *dead_message_rows,
                *(
                    DeadLetter(
                        alert_id=r["id"],
                        topic=r["topic"],
                        destination=r["destination"],
                        created=r["created"],
                        attempts=int(r["attempts"] or 0),
                        last_error=r["last_error"],
                        title=r["title"],
                    )
                    for r in dead_rows
                ),
            ],
            key=lambda d: d.created,
            reverse=True,
        )[:dead_shown],
        model_versions=_model_versions(versions, registry),
        digests=digests,
    )


_STATUS_ORDER = {"active": 0, "rejected": 1, "retired": 2}


def _model_versions(counted: Sequence[Any], registry: Sequence[Any]) -> list[ModelVersion]:
    """Stored scores per version joined with the registry: each topic's active version, its latest
    rejected candidate if newer than the active one, and the versions the scores name."""
    counts = {(str(t), str(v)): int(n) for t, v, n in counted}
    rows = {(r["topic"], r["version"]): r for r in registry}
    active = {r["topic"]: r for r in registry if r["status"] == "active"}
    shown = set(counts) | {(t, r["version"]) for t, r in active.items()}
    rejected: dict[str, Any] = {}
    for r in registry:
        best = rejected.get(r["topic"])
        if r["status"] == "rejected" and (best is None or r["trained_at"] > best["trained_at"]):
            rejected[r["topic"]] = r
    for topic, r in rejected.items():
        if topic not in active or r["trained_at"] >= active[topic]["trained_at"]:
            shown.add((topic, r["version"]))
    out = []
    for key in shown:
        r = rows.get(key)
        if r is None:
            out.append(ModelVersion(key[0], key[1], counts.get(key, 0)))
            continue
        out.append(
            ModelVersion(
                topic=key[0],
                version=key[1],
                scores=counts.get(key, 0),
                status=r["status"],
                trained_at=r["trained_at"],
                n_examples=int(r["n_examples"]),
                n_positive=int(r["n_positive"]),
                n_feedback=int(r["n_feedback"] or 0),
                precision=None if r["precision"] is None else float(r["precision"]),
                recall=None if r["recall"] is None else float(r["recall"]),
                f1=None if r["f1"] is None else float(r["f1"]),
                reason=r["reason"],
            )
        )
    return sorted(out, key=lambda m: (m.topic, _STATUS_ORDER.get(m.status or "", 3), m.version))


# -- search -----------------------------------------------------------------------------------------------


def _search_terms(words: Sequence[str]) -> list[str]:
    # Words reduced to their letters and digits: nothing a user types can reach the query syntax.
    return [t for w in words for t in re.findall(r"\w+", w.lower())]


def search_items(
    store: Store,
    words: Sequence[str],
    *,
    topic: str | None = None,
    source: str | None = None,
    since: datetime | None = None,
    limit: int = 10,
) -> list[SearchHit]:
    """Items holding every word (as a word or a word's beginning), best matches first, on the database's
    full-text index: FTS5 ranked by bm25 with title hits weighing double on SQLite, the tsvector GIN index
    ranked by ts_rank on PostgreSQL.

    `topic`: only items flagged for it. `source`: the source's name, any case. `since`: published then or
    later.
    """
    terms = _search_terms(words)
    if not terms:
        return []
    conditions: list[ColumnElement[bool]] = []
    if source is not None:
        conditions.append(func.lower(items.c.source) == source.lower())
    if since is not None:
        conditions.append(items.c.published >= since)
    if topic is not None:
        conditions.append(
            exists().where(scores.c.item_id == items.c.id, scores.c.topic == topic, scores.c.flagged)
        )
    if store.engine.dialect.name == "sqlite":
        store.index_for_search()
        fts = (
            text(
                "SELECT items.id AS id, -bm25(items_fts, 2.0, 1.0) AS score FROM items_fts "
                "JOIN items ON items.rowid = items_fts.rowid WHERE items_fts MATCH :match"
            )
            .bindparams(match=" AND ".join(f'"{t}"*' for t in terms))
            .columns(id=String, score=Float)
            .subquery("fts")
        )
        score: ColumnElement[Any] = fts.c.score
        base = select(
            items.c.id, items.c.title, items.c.url, items.c.source, items.c.published, score.label("rank")
        )
        query = base.join(fts, fts.c.id == items.c.id)
    else:
        vector: ColumnElement[Any] = literal_column(SEARCH_TSVECTOR)
        tsquery = func.to_tsquery("english", " & ".join(f"{t}:*" for t in terms))
        # The index matches on the plain vector; the ranking weighs a title hit (A) above a text hit (B).
        weighted: ColumnElement[Any] = literal_column(
            "setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', text), 'B')"
        )
        score = func.ts_rank(weighted, tsquery)
        query = select(
            items.c.id, items.c.title, items.c.url, items.c.source, items.c.published, score.label("rank")
        )
        conditions.append(vector.op("@@")(tsquery))
    query = (
        query.where(and_(true(), *conditions))
        .order_by(desc("rank"), items.c.published.desc(), items.c.id)
        .limit(max(1, min(limit, SEARCH_LIMIT_MAX)))
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        SearchHit(r["id"], r["title"], r["url"], r["source"], r["published"], float(r["rank"])) for r in rows
    ]


# -- explain ----------------------------------------------------------------------------------------------


def find_item(store: Store, ref: str) -> ItemRecord | None:
    """The item with this id, or at this URL (as given or in its canonical spelling), with its scores."""
    ref = ref.strip()
    if not ref:
        return None
    urls = list(dict.fromkeys([ref, canonical_url(ref)]))
    with store.engine.connect() as conn:
        row = conn.execute(select(items).where(items.c.id == ref)).mappings().first()
        if row is None:
            row = (
                conn.execute(select(items).where(items.c.url.in_(urls)).order_by(items.c.published))
                .mappings()
                .first()
            )
        if row is None:
            return None
        score_rows = (
            conn.execute(select(scores).where(scores.c.item_id == row["id"]).order_by(scores.c.score.desc()))
            .mappings()
            .all()
        )
    return ItemRecord(
        id=row["id"],
        url=row["url"],
        source=row["source"],
        title=row["title"],
        text=row["text"],
        summary=row["summary"] or "",
        published=row["published"],
        fetched=row["fetched"],
        story_id=row["story_id"],
        scores=[
            StoredScore(
                topic=s["topic"],
                score=float(s["score"]),
                flagged=bool(s["flagged"]),
                why=_why(s["why"]),
                model_version=s["model_version"],
            )
            for s in score_rows
        ],
    )


def _why(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# -- health and metrics -----------------------------------------------------------------------------------


def database_ok(store: Store) -> None:
    """Raise if the database cannot answer a trivial query."""
    with store.engine.connect() as conn:
        conn.execute(select(literal(1))).scalar_one()


def metrics(store: Store) -> Metrics:
    with store.engine.connect() as conn:
        n_items = int(conn.execute(select(func.count()).select_from(items)).scalar_one())
        by_status = {
            str(s): int(n)
            for s, n in conn.execute(
                select(alerts.c.status, func.count()).group_by(alerts.c.status).order_by(alerts.c.status)
            )
        }
        outbox = {
            str(d): int(n)
            for d, n in conn.execute(
                select(alerts.c.destination, func.count())
                .where(alerts.c.status == "pending")
                .group_by(alerts.c.destination)
                .order_by(alerts.c.destination)
            )
        }
        n_sources, failing = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((sources.c.consecutive_failures > 0, 1), else_=0)), 0),
            ).select_from(sources)
        ).one()
    return Metrics(n_items, by_status, outbox, int(n_sources), int(failing))


def _aware(value: datetime) -> datetime:
    # max() over a UTCDateTime column keeps its type; this guards drivers that hand back a naive value.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def source_names(store: Store) -> list[str]:
    """Every source name the store knows (configured now or in the past)."""
    with store.engine.connect() as conn:
        return [str(n) for n in conn.execute(select(sources.c.name).order_by(sources.c.name)).scalars()]


# -- App Home ---------------------------------------------------------------------------------------------


def latest_per_topic(store: Store, topics: Sequence[str], per_topic: int) -> dict[str, list[AlertedItem]]:
    """Each topic's `per_topic` most recent alerted items (as `latest_alerted` gives them), for App Home.

    One `latest_alerted` per topic: topics are tens at most, and each query is bounded by `per_topic`.
    """
    return {topic: latest_alerted(store, topic, per_topic) for topic in dict.fromkeys(topics)}


@dataclass(frozen=True, slots=True)
class TopicQuality:
    """What the team's feedback says of a topic: labelled items, how many were relevant, ties."""

    labelled: int = 0
    relevant: int = 0
    ties: int = 0
    subscribed: tuple[str, ...] = ()  # destinations added from Slack with `/news subscribe`

    @property
    def precision(self) -> float | None:
        return self.relevant / self.labelled if self.labelled else None


def topic_quality(store: Store, topic_ids: Sequence[str]) -> dict[str, TopicQuality]:
    """Per topic: precision measured from feedback (majority of each user's latest verdict per item),
    the items whose users disagree evenly, and the channels subscribed from Slack."""
    subscribed: dict[str, list[str]] = {}
    for sub in store.subscriptions():
        subscribed.setdefault(sub.topic, []).append(sub.destination)
    out = {}
    for tid in topic_ids:
        labels = store.feedback_labels(tid)
        out[tid] = TopicQuality(
            labelled=len(labels),
            relevant=sum(1 for label in labels if label.label == 1),
            ties=len(store.feedback_ties(tid)),
            subscribed=tuple(subscribed.get(tid, ())),
        )
    return out
