"""Which model version scores each topic, and the record of every version ever trained.

    candidate (trained, measured on held-out reports) ──decide──► active | rejected ──► model_versions row
                                                                      │
                                          VersionedModels: each topic scored by its own active version

What this module promises:
- Every candidate is recorded (`model_versions`) with its version, training-set size, positives, feedback
  count, held-out precision / recall / F1 and status. At most one version per topic is `active`; the one it
  replaces becomes `retired`; a candidate that lost the comparison is `rejected`, with the reason.
- The swap rule (`decide`) is pure; see its docstring for the tolerance and why.
- `VersionedModels` scores like one `TopicModels`, although each topic's version may come from another
  training run (a rejected candidate leaves its topic on the older run) or be the topic's keyword rules
  alone (too few positive examples).

Training and measuring live in `bot/retrain.py`; this module decides and records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sqlalchemy import Connection, RowMapping, func, select, update

from bot.store import Store, _upsert, feedback, model_versions
from classifiers.model import TopicModels
from classifiers.rules import KeywordRules

Status = Literal["active", "rejected", "retired"]

# Slack when the held-out positives are unknown (recorded figures only); see `one_report_tolerance`.
F1_TOLERANCE = 0.0
_FLOAT_SLACK = 1e-9  # F1s computed from the same counts compare equal despite float rounding


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One row of `model_versions`: a trained version of a topic's model and what became of it."""

    topic: str
    version: str
    trained_at: datetime
    n_examples: int  # training-set size: examples, feedback, background and the other topics' positives
    n_positive: int  # real positive examples (config examples and feedback), the count `min_positives` checks
    n_feedback: int  # feedback clicks on the topic when it was trained (`retrain_if_due` counts from here)
    precision: float | None  # held-out, at the topic's threshold; None: no held-out positive to measure on
    recall: float | None
    f1: float | None
    status: str  # active | rejected | retired
    reason: str | None = None


# -- the swap rule ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    activate: bool
    reason: str


def _f1(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.2f}"


def one_report_tolerance(positives: int | None) -> float:
    """How far F1 falls from 1.0 when one of `positives` held-out positives is missed: 1 / (2P − 1).
    Unknown or none: `F1_TOLERANCE` (no slack beyond float rounding)."""
    if not positives:
        return F1_TOLERANCE
    return 1.0 / (2 * positives - 1)


def decide(
    candidate_f1: float | None,
    active_f1: float | None,
    *,
    compared_on: int | None,
    new_definition: bool = False,
    active_version: str | None = None,
    positives: int | None = None,
) -> Decision:
    """Should the candidate replace the active version of its topic?

    - No active version: yes.
    - The topic's definition changed in config (description, rules, examples, threshold, background,
      `min_positives`): yes, whatever the F1 — the user asked for the new definition; its metrics are
      recorded all the same, so status shows what the edit did.
    - Otherwise, yes when the candidate's F1 is not worse than the active one's by more than one held-out
      report: ``candidate_f1 >= active_f1 - one_report_tolerance(positives)``, both measured on the same
      held-out reports (``compared_on`` of them; the active version's held-out model is re-scored on the
      candidate's held-out set). A strict ``>=`` was tried first: with the 9–15 held-out positives a topic
      has, one report flipping moves F1 by 0.03–0.06, and `watchfloor replay` showed it rejecting most
      retrains on *correct* feedback (the bot stopped learning from 👎). One report is the smallest
      difference these sets can measure; anything within it is "not worse". A tie goes to the candidate:
      it learned from more feedback.
    - No F1 to compare (no positive among the held-out reports): the candidate, which has the newer data,
      wins unless only the active version could be measured.
    """
    if active_version is None:
        return Decision(True, f"first version of the topic; held-out F1 {_f1(candidate_f1)}")
    if new_definition:
        return Decision(
            True,
            f"topic definition changed in config: the new definition runs (held-out F1 {_f1(candidate_f1)}; "
            f"version {active_version} had {_f1(active_f1)})",
        )
    on = f" on the same {compared_on} held-out reports" if compared_on else " (recorded figures)"
    if candidate_f1 is None and active_f1 is not None:
        return Decision(False, f"held-out F1 not measured (no held-out positive) < active {active_f1:.2f}")
    if candidate_f1 is None or active_f1 is None:
        return Decision(True, "no held-out F1 to compare (no held-out positive): the newer data runs")
    if candidate_f1 >= active_f1 - _FLOAT_SLACK:
        return Decision(True, f"held-out F1 {candidate_f1:.2f} ≥ active {active_f1:.2f}{on}")
    if candidate_f1 >= active_f1 - one_report_tolerance(positives) - _FLOAT_SLACK:
        return Decision(
            True, f"held-out F1 {candidate_f1:.2f} within one report of active {active_f1:.2f}{on}"
        )
    return Decision(False, f"held-out F1 {candidate_f1:.2f} < active {active_f1:.2f}{on}")


# -- the registry table -------------------------------------------------------------------------------------


def _record(row: RowMapping) -> VersionRecord:
    def number(value: Any) -> float | None:
        return None if value is None else float(value)

    return VersionRecord(
        topic=row["topic"],
        version=row["version"],
        trained_at=row["trained_at"],
        n_examples=int(row["n_examples"]),
        n_positive=int(row["n_positive"]),
        n_feedback=int(row["n_feedback"] or 0),
        precision=number(row["precision"]),
        recall=number(row["recall"]),
        f1=number(row["f1"]),
        status=row["status"],
        reason=row["reason"],
    )


def active_versions(store: Store) -> dict[str, VersionRecord]:
    """Topic → its active version."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(model_versions).where(model_versions.c.status == "active")).mappings()
        return {r["topic"]: _record(r) for r in rows}


def history(store: Store, topic: str) -> list[VersionRecord]:
    """Every version of `topic`, newest first."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(model_versions)
            .where(model_versions.c.topic == topic)
            .order_by(model_versions.c.trained_at.desc(), model_versions.c.version)
        ).mappings()
        return [_record(r) for r in rows]


def version_record(store: Store, topic: str, version: str) -> VersionRecord | None:
    with store.engine.connect() as conn:
        row = (
            conn.execute(
                select(model_versions).where(
                    model_versions.c.topic == topic, model_versions.c.version == version
                )
            )
            .mappings()
            .first()
        )
    return _record(row) if row else None


def latest_rejected(store: Store) -> dict[str, VersionRecord]:
    """Topic → its most recent rejected candidate (what status shows next to the active version)."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(model_versions)
            .where(model_versions.c.status == "rejected")
            .order_by(model_versions.c.topic, model_versions.c.trained_at.desc(), model_versions.c.version)
        ).mappings()
        out: dict[str, VersionRecord] = {}
        for r in rows:
            out.setdefault(r["topic"], _record(r))
        return out


def _row(record: VersionRecord, conn: Connection) -> dict[str, Any]:
    # A version trained before (e.g. a config edit undone) keeps the time it was first trained.
    first = conn.execute(
        select(model_versions.c.trained_at).where(
            model_versions.c.topic == record.topic, model_versions.c.version == record.version
        )
    ).scalar_one_or_none()
    return {
        "topic": record.topic,
        "version": record.version,
        "trained_at": first or record.trained_at,
        "n_examples": record.n_examples,
        "n_positive": record.n_positive,
        "n_feedback": record.n_feedback,
        "precision": record.precision,
        "recall": record.recall,
        "f1": record.f1,
        "status": record.status,
        "reason": record.reason,
    }


def record_active(store: Store, record: VersionRecord) -> None:
    """Make `record` the topic's active version, retiring the one it replaces, in one transaction."""
    with store.transaction() as conn:
        conn.execute(
            update(model_versions)
            .where(
                model_versions.c.topic == record.topic,
                model_versions.c.status == "active",
                model_versions.c.version != record.version,
            )
            .values(status="retired")
        )
        row = _row(record, conn) | {"status": "active"}
        _upsert(conn, model_versions, row, ("topic", "version"))


def record_rejected(store: Store, record: VersionRecord) -> None:
    """Keep `record` aside as rejected, with its reason; the active version is untouched."""
    with store.transaction() as conn:
        row = _row(record, conn) | {"status": "rejected"}
        _upsert(conn, model_versions, row, ("topic", "version"))


def mark_feedback_seen(store: Store, topic: str, version: str, clicks: int) -> None:
    """The version already reflects `clicks` feedback clicks (they changed no label): count new ones from
    there, so `retrain_if_due` does not retrain the same version over and over."""
    with store.transaction() as conn:
        conn.execute(
            update(model_versions)
            .where(
                model_versions.c.topic == topic,
                model_versions.c.version == version,
                model_versions.c.n_feedback < clicks,
            )
            .values(n_feedback=clicks)
        )


def feedback_seen(store: Store) -> dict[str, int]:
    """Topic → the most feedback clicks any of its versions was trained (or judged) with."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(model_versions.c.topic, func.max(model_versions.c.n_feedback)).group_by(
                model_versions.c.topic
            )
        )
        return {str(topic): int(n or 0) for topic, n in rows}


def feedback_clicks(store: Store) -> dict[str, int]:
    """Topic → feedback rows (each user's latest verdict per alert): the count `retrain_after` is about."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(feedback.c.topic, func.count()).group_by(feedback.c.topic))
        return {str(topic): int(n) for topic, n in rows}


# -- the running versions -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TopicPart:
    """One topic's running version: the trained run its model comes from, or its keyword rules alone."""

    version: str
    models: TopicModels  # the training run holding this topic's column
    rules: KeywordRules | None = None  # set: too few positive examples, these rules alone decide
    source: Path | None = None  # the run's model file, when it was saved


class VersionedModels(TopicModels):
    """The active version of every topic, scored as one `TopicModels` (which `TopicScorer` expects).

    Topics whose versions come from one training run are scored by one transform of that run, so the
    usual case (every topic from the latest run) costs what a plain `TopicModels` does. A rules-only topic
    scores 1.0 where its keyword rules hold and 0.0 elsewhere: there is no model to give a probability, and
    with any threshold ≤ 1 "flagged" then means exactly "the rules hold".

    It is assembled from saved runs and is never saved itself: `TopicModels.__init__` is not called, and
    every method that would read its state is overridden.
    """

    def __init__(self, parts: Mapping[str, TopicPart], warnings: Sequence[str] = ()) -> None:
        self.topic_ids = tuple(parts)
        self.parts = dict(parts)
        self.warnings = tuple(warnings)

    def version(self, topic_id: str) -> str:
        return self._part(topic_id).version

    @property
    def rules_only(self) -> frozenset[str]:
        """Topics running on their keyword rules alone."""
        return frozenset(tid for tid, part in self.parts.items() if part.rules is not None)

    def _part(self, topic_id: str) -> TopicPart:
        try:
            return self.parts[topic_id]
        except KeyError:
            raise KeyError(
                f"unknown topic {topic_id!r}; trained topics: {', '.join(self.topic_ids)}"
            ) from None

    def _column(self, topic_id: str) -> int:
        self._part(topic_id)
        return self.topic_ids.index(topic_id)

    def score(self, docs: Sequence[tuple[str, str]]) -> np.ndarray:
        out = np.zeros((len(docs), len(self.topic_ids)), dtype=np.float32)
        if not docs:
            return out
        runs: dict[int, tuple[TopicModels, list[tuple[int, str]]]] = {}
        for j, (tid, part) in enumerate(self.parts.items()):
            if part.rules is not None:
                out[:, j] = [1.0 if part.rules.holds(title, text) else 0.0 for title, text in docs]
            else:
                runs.setdefault(id(part.models), (part.models, []))[1].append((j, tid))
        for models, columns in runs.values():
            probs = np.asarray(models.score(docs))
            for j, tid in columns:
                out[:, j] = probs[:, models.topic_ids.index(tid)]
        return out

    def decision(self, docs: Sequence[tuple[str, str]]) -> np.ndarray:
        p = np.clip(self.score(docs).astype(np.float64), 1e-15, 1 - 1e-15)
        return np.log(p / (1 - p))

    def explain(self, title: str, text: str, topic_id: str, k: int = 5) -> list[tuple[str, float]]:
        part = self._part(topic_id)
        if part.rules is not None:
            return []  # the rules decided; `Why.rules_matched` says which
        return part.models.explain(title, text, topic_id, k)

    def fingerprint(self, topic_id: str) -> str:
        """The topic's version in the registry (12 hex digits): what score rows and status show."""
        return self._part(topic_id).version

    def info(self) -> dict[str, dict[str, Any]]:
        out = {}
        for tid, part in self.parts.items():
            info = part.models.info().get(tid, {})
            out[tid] = {**info, "registry_version": part.version, "rules_only": part.rules is not None}
        return out

    def save(self, path: Path) -> None:
        raise TypeError(
            "VersionedModels is assembled from saved training runs and is not saved itself: "
            "save the TopicModels of a run instead"
        )
