"""The `messages` outbox: digests and surge notices, queued once and sent at least once, never twice.

Alerts have their own outbox (one row per story and destination, in `Store`); these are the messages that
belong to no single story. A job *enqueues* under a natural key (a digest's scheduled time, a surge's
topic and window), so running the job twice enqueues once; delivery then treats the row like an alert:
marked uncertain before the send, sent after, retried with backoff, dead after too many failures.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, true, update

from bot.store import Store, _insert_ignore, messages


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: str
    kind: str
    destination: str
    key: str
    topic: str | None
    created: datetime
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt: datetime
    uncertain: bool
    sent_at: datetime | None
    remote_ref: str | None
    last_error: str | None


def message_id(kind: str, destination: str, key: str) -> str:
    return hashlib.sha1(f"{kind}\x00{destination}\x00{key}".encode()).hexdigest()[:24]


def _stored(r: Mapping[str, Any]) -> StoredMessage:
    return StoredMessage(
        id=r["id"],
        kind=r["kind"],
        destination=r["destination"],
        key=r["key"],
        topic=r["topic"],
        created=r["created"],
        payload=json.loads(r["payload"]),
        status=r["status"],
        attempts=r["attempts"],
        next_attempt=r["next_attempt"],
        uncertain=bool(r["uncertain"]),
        sent_at=r["sent_at"],
        remote_ref=r["remote_ref"],
        last_error=r["last_error"],
    )


def enqueue_message(
    store: Store,
    kind: str,
    destination: str,
    key: str,
    payload: Mapping[str, Any],
    now: datetime,
    topic: str | None = None,
    status: str = "pending",
) -> bool:
    """Queue a message unless one with the same (kind, destination, key) exists; True when queued now.

    `status` other than `pending` records a message that is never to be sent, yet must hold its key and
    count as the last of its kind (`muted`: a digest that mutes left empty, see `bot.digest`)."""
    mid = message_id(kind, destination, key)
    row = {
        "id": mid,
        "kind": kind,
        "destination": destination,
        "key": key,
        "topic": topic,
        "created": now,
        "payload": json.dumps(payload, default=str, ensure_ascii=False),
        "status": status,
        "attempts": 0,
        "next_attempt": now,
        "uncertain": False,
    }
    with store.transaction() as conn:
        before = conn.execute(select(func.count()).where(messages.c.id == mid)).scalar_one()
        if before:
            return False
        _insert_ignore(conn, messages, [row])
    return True


def pending_messages(store: Store, prefix: str, limit: int = 200) -> list[StoredMessage]:
    """Pending messages for destinations starting with `prefix`, due or not, oldest first (a destination's
    queue goes out in order, like alerts)."""
    query = (
        select(messages)
        .where(messages.c.status == "pending", messages.c.destination.startswith(prefix))
        .order_by(messages.c.created, messages.c.id)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return [_stored(dict(r)) for r in conn.execute(query).mappings()]


def get_message(store: Store, message_id_: str) -> StoredMessage | None:
    with store.engine.connect() as conn:
        row = conn.execute(select(messages).where(messages.c.id == message_id_)).mappings().first()
    return _stored(dict(row)) if row else None


def last_message(
    store: Store, kind: str, destination: str, *, skip_dead: bool = False
) -> StoredMessage | None:
    """The most recently queued message of a kind for a destination, whatever its delivery state (but a
    dead letter with `skip_dead`)."""
    query = (
        select(messages)
        .where(messages.c.kind == kind, messages.c.destination == destination)
        .where(messages.c.status != "dead" if skip_dead else true())
        .order_by(messages.c.created.desc(), messages.c.id.desc())
        .limit(1)
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return _stored(dict(row)) if row else None


def messages_with_status(store: Store, status: str, limit: int = 100) -> list[StoredMessage]:
    query = (
        select(messages)
        .where(messages.c.status == status)
        .order_by(messages.c.created.desc(), messages.c.id)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return [_stored(dict(r)) for r in conn.execute(query).mappings()]


def message_outbox_depth(store: Store) -> dict[str, int]:
    """Pending messages per destination."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(messages.c.destination, func.count())
            .where(messages.c.status == "pending")
            .group_by(messages.c.destination)
        ).all()
    return {str(d): int(n) for d, n in rows}


def mark_message_uncertain(store: Store, message_id_: str) -> None:
    """Before a send: if we die before `mark_message_sent`, the retry must look before posting again."""
    with store.transaction() as conn:
        conn.execute(update(messages).where(messages.c.id == message_id_).values(uncertain=True))


def mark_message_sent(store: Store, message_id_: str, when: datetime, remote_ref: str | None = None) -> None:
    with store.transaction() as conn:
        conn.execute(
            update(messages)
            .where(messages.c.id == message_id_)
            .values(
                status="sent",
                sent_at=when,
                remote_ref=remote_ref,
                attempts=messages.c.attempts + 1,
                uncertain=False,
            )
        )


def mark_message_failed(
    store: Store,
    message_id_: str,
    error: str,
    retry_at: datetime | None,
    *,
    uncertain: bool = False,
    count: bool = True,
) -> None:
    """Schedule a retry at `retry_at`, or move the message to the dead letters when it is None.
    `count=False` for waits that are not the message's fault (429)."""
    values: dict[str, Any] = {"last_error": error[:1000], "uncertain": uncertain}
    if count:
        values["attempts"] = messages.c.attempts + 1
    if retry_at is None:
        values["status"] = "dead"
    else:
        values["next_attempt"] = retry_at
    with store.transaction() as conn:
        conn.execute(update(messages).where(messages.c.id == message_id_).values(**values))
