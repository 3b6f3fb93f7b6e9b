"""Training candidates, measuring them on held-out reports, and putting the ones that are not worse to work.

    config + feedback ─► train_run ─► final models (all data)              ─┐
                                  └─► held-out models (train side only)     │
                                        └─► precision / recall / F1 on the held-out reports, per topic
                                                                            ▼
                            per topic: model_registry.decide ─► active (scores) | rejected (kept aside)
                                                                            ▼
                     VersionedModels ─► TopicScorer, swapped in one assignment under the runtime lock

Triggers: a config change or start-up (`Service.apply` / `build_runtime` → `load_or_train` →
`load_active`), `retrain_if_due` (a topic got `learning.retrain_after` feedback clicks since its last
candidate) and `nightly_retrain` (`learning.nightly`). The jobs are plain functions with explicit
arguments; the service runs them with `asyncio.to_thread`, since training is CPU work.

The held-out split is one stable hash split, not `classifiers.evaluation.cross_validate`'s k folds: a
report's group (its `event`, else its id, else its text) is held out when the group's hash falls in one
bucket of `HELDOUT_ONE_IN`. A report stays on its side across retrains, so the held-out set only grows as
feedback arrives, and no held-out model ever trained on a held-out report: the active version's held-out
model can be re-scored on the candidate's held-out reports, and the two F1s `decide` compares come from
the same reports. (k folds would cost k trainings per candidate, and reshuffle reports between folds as
data grows.) Every training source (the topic's examples, feedback, background, the other topics'
positives) is purged of held-out reports and events, as `cross_validate` does for its folds; P/R/F1 are
`classifiers.evaluation.metrics`. It costs one extra training: about 0.2 s for the shipped config, saved
under `heldout/` beside the run's model file and reused.

A topic's version is a hash of its own inputs: its definition (`TopicModels.fingerprint_of`, threshold,
`learning.min_positives`), and its feedback labels. Topics are trained together (one vocabulary, other
topics' positives as negatives), so another topic's new feedback nudges this topic's weights without
making a new version of it: only a change of its own inputs is worth a comparison.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bot.config import Config
from bot.model_registry import (
    Decision,
    TopicPart,
    VersionedModels,
    VersionRecord,
    active_versions,
    decide,
    feedback_clicks,
    feedback_seen,
    mark_feedback_seen,
    record_active,
    record_rejected,
    version_record,
)
from bot.pipeline import Runtime
from bot.scoring import TopicScorer
from bot.store import Store
from bot.topic_models import (
    KEEP_MODEL_FILES,
    background_examples,
    cached_models,
    feedback_examples,
    run_file,
    topic_definition,
)
from classifiers.evaluation import Metrics, metrics
from classifiers.model import TopicModels, background_digest
from classifiers.training import Example, TopicDefinition

log = logging.getLogger(__name__)

HELDOUT_ONE_IN = 5  # one group in five is held out: ~20% of the reports

# One training at a time in this process: a config reload and a retrain job would otherwise train the same
# run twice and race to judge it. Processes sharing a database may still overlap; each of their writes is
# an upsert of the same decision, and the swap is per process.
_TRAINING = threading.Lock()


# -- the held-out split -------------------------------------------------------------------------------------


def _key(example: Example) -> str:
    # As classifiers.model keys examples: one report is one example, whatever list it came from.
    return example.id or hashlib.sha1(f"{example.title}\n{example.text}".encode()).hexdigest()


def is_heldout(example: Example) -> bool:
    """Whether the report is on the held-out side: by its event, so reports of one event stay together."""
    group = example.event or _key(example)
    return int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) % HELDOUT_ONE_IN == 0


def _distinct(examples: Sequence[Example]) -> list[Example]:
    """First example per report: the label the model trains on (examples before feedback)."""
    seen: dict[str, Example] = {}
    for example in examples:
        seen.setdefault(_key(example), example)
    return list(seen.values())


@dataclass(frozen=True, slots=True)
class HeldOutSplit:
    definitions: list[TopicDefinition]  # each with its training-side examples only
    background: list[Example]
    feedback: dict[str, list[Example]]
    reports: dict[str, list[Example]]  # topic → its held-out reports (examples and feedback), labelled


def heldout_split(
    definitions: Sequence[TopicDefinition],
    background: Sequence[Example],
    feedback: Mapping[str, Sequence[Example]],
) -> HeldOutSplit:
    reports = {
        d.id: [e for e in _distinct([*d.examples, *feedback.get(d.id, ())]) if is_heldout(e)]
        for d in definitions
    }
    held_ids = {_key(e) for found in reports.values() for e in found}
    held_events = {e.event for found in reports.values() for e in found if e.event}

    def train_side(example: Example) -> bool:
        return not (is_heldout(example) or _key(example) in held_ids or example.event in held_events)

    return HeldOutSplit(
        definitions=[replace(d, examples=tuple(e for e in d.examples if train_side(e))) for d in definitions],
        background=[e for e in background if train_side(e)],
        feedback={tid: [e for e in found if train_side(e)] for tid, found in feedback.items()},
        reports=reports,
    )


@dataclass(frozen=True, slots=True)
class HeldOut:
    """A version's figures on held-out reports; `metrics` is None when none of them is a positive."""

    reports: int
    positives: int
    metrics: Metrics | None

    @property
    def f1(self) -> float | None:
        return None if self.metrics is None else self.metrics.f1


def measure(
    models: TopicModels | None, topic: TopicDefinition, reports: Sequence[Example], rules_only: bool
) -> HeldOut:
    """Flag the held-out reports as the bot would (score ≥ threshold and rules hold; the rules alone for a
    rules-only topic) and compare with their labels."""
    truth = [e.label for e in reports]
    positives = sum(truth)
    if not positives:
        return HeldOut(len(reports), 0, None)
    holds = np.array([topic.rules.holds(e.title, e.text) for e in reports], dtype=bool)
    if rules_only or models is None:
        predicted = holds
    else:
        probs = np.asarray(models.score([(e.title, e.text) for e in reports]))
        predicted = (probs[:, models.topic_ids.index(topic.id)] >= topic.threshold) & holds
    return HeldOut(len(reports), positives, metrics(truth, predicted.tolist()))


# -- candidates ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """One topic's model from one training run, with what the registry records about it."""

    topic: str
    version: str
    definition: str  # hash of what the user configured: a change here is a new definition
    n_examples: int
    n_positive: int
    n_feedback_labels: int
    rules_only: bool
    heldout: HeldOut | None = None  # None until measured

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Candidate:
        held = raw.get("heldout")
        heldout = None
        if held is not None:
            found = held.get("metrics")
            heldout = HeldOut(held["reports"], held["positives"], Metrics(**found) if found else None)
        return cls(**{**raw, "heldout": heldout})


def definition_key(topic: TopicDefinition, background: str, min_positives: int) -> str:
    payload = [TopicModels.fingerprint_of(topic, background), topic.threshold, min_positives]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


def version_of(definition: str, feedback: Sequence[Example]) -> str:
    labels = sorted((e.id or _key(e), e.label) for e in feedback)
    return hashlib.sha256(json.dumps([definition, labels]).encode()).hexdigest()[:12]


def _heldout_file(path: Path) -> Path:
    # A folder of its own, so the model folder's `topics-*.joblib` are still one per run.
    return path.parent / "heldout" / path.name


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _read_sidecar(path: Path) -> dict[str, dict[str, Candidate]]:
    try:
        raw = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        return {
            tid: {v: Candidate.from_json(c) for v, c in versions.items()}
            for tid, versions in raw["topics"].items()
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _write_sidecar(path: Path, known: Mapping[str, Mapping[str, Candidate]]) -> None:
    payload = {"topics": {tid: {v: c.to_json() for v, c in vs.items()} for tid, vs in known.items()}}
    tmp = path.with_name(f"{_sidecar(path).name}.{os.getpid()}.{threading.get_ident()}")  # one per writer
    try:
        tmp.write_text(json.dumps(payload, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(_sidecar(path))
    except OSError as exc:
        log.warning("could not save model versions path=%s error=%s", _sidecar(path), exc)


@dataclass(frozen=True, slots=True)
class TrainedRun:
    """Every topic trained together on one set of inputs: the models and each topic's candidate."""

    path: Path
    models: TopicModels
    definitions: dict[str, TopicDefinition]
    candidates: dict[str, Candidate]
    heldout_reports: dict[str, list[Example]]
    min_positives: int  # learning.min_positives the candidates were judged rules-only with


def _positives(topic: TopicDefinition, feedback: Sequence[Example]) -> int:
    return sum(e.label == 1 for e in _distinct([*topic.examples, *feedback]))


def train_run(
    config: Config,
    definitions: Sequence[TopicDefinition],
    background: Sequence[Example],
    feedback: dict[str, list[Example]],
    *,
    measure_heldout: bool = True,
) -> TrainedRun:
    """Train (or load the saved) models for these inputs; with `measure_heldout`, measure every topic on
    its held-out reports (held-out models trained, or loaded, once per run)."""
    path = run_file(config, definitions, background, feedback)
    models = cached_models(path, lambda: TopicModels.train(definitions, background, extra=feedback))
    digest = background_digest(background)
    split = heldout_split(definitions, background, feedback)
    known = _read_sidecar(path)
    info = models.info()
    candidates: dict[str, Candidate] = {}
    for topic in definitions:
        extra = feedback.get(topic.id, [])
        definition = definition_key(topic, digest, config.learning.min_positives)
        version = version_of(definition, extra)
        saved = known.get(topic.id, {}).get(version)
        n_positive = _positives(topic, extra)
        candidates[topic.id] = saved or Candidate(
            topic=topic.id,
            version=version,
            definition=definition,
            n_examples=int(info[topic.id]["n_pos"]) + int(info[topic.id]["n_neg"]),
            n_positive=n_positive,
            n_feedback_labels=len(extra),
            # Without rules to fall back on, the model (with its description as pseudo-examples) is all
            # the topic has, however few its examples.
            rules_only=n_positive < config.learning.min_positives and not topic.rules.empty,
        )
    unmeasured = [c for c in candidates.values() if c.heldout is None]
    if measure_heldout and unmeasured:
        heldout_models = cached_models(
            _heldout_file(path),
            lambda: TopicModels.train(split.definitions, split.background, extra=split.feedback),
        )
        by_id = {d.id: d for d in definitions}
        for c in unmeasured:
            held = measure(heldout_models, by_id[c.topic], split.reports[c.topic], c.rules_only)
            candidates[c.topic] = replace(c, heldout=held)
    if any(known.get(tid, {}).get(c.version) != c for tid, c in candidates.items()):
        merged = {tid: dict(vs) for tid, vs in known.items()}
        for tid, c in candidates.items():
            merged.setdefault(tid, {})[c.version] = c
        _write_sidecar(path, merged)
    return TrainedRun(
        path, models, {d.id: d for d in definitions}, candidates, split.reports, config.learning.min_positives
    )


@dataclass(frozen=True, slots=True)
class SavedVersion:
    """A topic version found among the saved runs."""

    path: Path
    candidate: Candidate


def find_version(model_dir: Path, topic: str, version: str) -> SavedVersion | None:
    """The newest saved run holding `version` of `topic`, by the runs' version files."""
    sidecars = sorted(model_dir.glob("topics-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for sidecar in sidecars:
        path = sidecar.with_suffix(".joblib")
        found = _read_sidecar(path).get(topic, {}).get(version)
        if found is not None and path.is_file():
            return SavedVersion(path, found)
    return None


def prune_runs(model_dir: Path, keep: int, protect: Collection[tuple[str, str]]) -> None:
    """Delete all but the `keep` newest runs, never one holding a (topic, version) in `protect`."""
    runs = sorted(model_dir.glob("topics-*.joblib"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in runs[keep:]:
        try:
            held = json.loads(_sidecar(path).read_text(encoding="utf-8"))["topics"]
        except (OSError, ValueError, KeyError, TypeError):
            held = {}
        if any(version in held.get(topic, {}) for topic, version in protect):
            continue
        for old in (path, _sidecar(path), _heldout_file(path)):
            old.unlink(missing_ok=True)


# -- choosing the running version of every topic ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one topic's candidate."""

    topic: str
    version: str  # the candidate's version
    status: Literal["activated", "rejected", "unchanged", "kept"]
    reason: str = ""  # unchanged: the candidate is the active version; kept: rejected before, not re-judged
    f1: float | None = None


def _record_of(candidate: Candidate, status: str, reason: str, clicks: int, now: datetime) -> VersionRecord:
    held = candidate.heldout.metrics if candidate.heldout else None
    return VersionRecord(
        topic=candidate.topic,
        version=candidate.version,
        trained_at=now,
        n_examples=candidate.n_examples,
        n_positive=candidate.n_positive,
        n_feedback=clicks,
        precision=held.precision if held else None,
        recall=held.recall if held else None,
        f1=held.f1 if held else None,
        status=status,
        reason=reason,
    )


def _part(run: TrainedRun, candidate: Candidate) -> TopicPart:
    rules = run.definitions[candidate.topic].rules if candidate.rules_only else None
    return TopicPart(candidate.version, run.models, rules, run.path)


def _saved_part(
    saved: SavedVersion,
    topic: TopicDefinition,
    running: TopicModels | None,
    loaded: dict[Path, TopicModels],
) -> TopicPart | None:
    """The active version's part: from the running models when they have it, else from its saved run.

    `loaded` holds the runs read so far, so topics kept on one old run share one object (and so one
    transform when scoring)."""
    if isinstance(running, VersionedModels) and topic.id in running.parts:
        part = running.parts[topic.id]
        if part.version == saved.candidate.version:
            return part
    models = loaded.get(saved.path)
    if models is None:
        try:
            models = loaded[saved.path] = TopicModels.load(saved.path)
        except Exception as exc:  # unreadable: the candidate runs instead, and the log says why
            log.warning("saved model unusable path=%s error=%s", saved.path, exc)
            return None
    rules = topic.rules if saved.candidate.rules_only else None
    return TopicPart(saved.candidate.version, models, rules, saved.path)


def _active_on_same_reports(
    saved: SavedVersion, topic: TopicDefinition, reports: Sequence[Example]
) -> HeldOut | None:
    """The active version's held-out model re-scored on the candidate's held-out reports (None: its
    held-out model is not saved here, so only its recorded F1 can be compared)."""
    if saved.candidate.rules_only:
        return measure(None, topic, reports, rules_only=True)
    held_path = _heldout_file(saved.path)
    if not held_path.is_file():
        return None
    try:
        models = TopicModels.load(held_path)
    except Exception as exc:
        log.warning("held-out model unusable path=%s error=%s", held_path, exc)
        return None
    return measure(models, topic, reports, rules_only=False)


def _judge(candidate: Candidate, current: VersionRecord, saved: SavedVersion, run: TrainedRun) -> Decision:
    """`decide` on the candidate against the active version, on the same held-out reports if possible."""
    f1 = candidate.heldout.f1 if candidate.heldout else None
    if saved.candidate.definition != candidate.definition:
        return decide(f1, current.f1, compared_on=None, new_definition=True, active_version=current.version)
    topic = run.definitions[candidate.topic]
    paired = _active_on_same_reports(saved, topic, run.heldout_reports[candidate.topic])
    if paired is None:  # its held-out model is gone: compare with the F1 it was recorded with
        return decide(f1, current.f1, compared_on=None, active_version=current.version)
    return decide(
        f1,
        paired.f1,
        compared_on=paired.reports,
        active_version=current.version,
        positives=paired.positives,
    )


def choose_versions(
    run: TrainedRun,
    store: Store,
    now: datetime,
    *,
    topics: Collection[str] | None = None,
    running: TopicModels | None = None,
) -> tuple[VersionedModels, list[Outcome]]:
    """Per topic of the run, the version to run: the candidate or the active one (`decide`), recorded in
    the registry. Topics outside `topics` (when given) keep their running part, unjudged."""
    active = active_versions(store)
    clicks = feedback_clicks(store)
    parts: dict[str, TopicPart] = {}
    outcomes: list[Outcome] = []
    loaded = {run.path: run.models}
    for tid, candidate in run.candidates.items():
        n_clicks = clicks.get(tid, 0)
        f1 = candidate.heldout.f1 if candidate.heldout else None
        unjudged = topics is not None and tid not in topics
        if unjudged and isinstance(running, VersionedModels) and tid in running.parts:
            parts[tid] = running.parts[tid]
            continue
        current = active.get(tid)
        if current is not None and current.version == candidate.version:
            mark_feedback_seen(store, tid, candidate.version, n_clicks)
            parts[tid] = _part(run, candidate)
            outcomes.append(Outcome(tid, candidate.version, "unchanged", f1=f1))
            continue
        saved = find_version(run.path.parent, tid, current.version) if current is not None else None
        kept = _saved_part(saved, run.definitions[tid], running, loaded) if saved is not None else None
        if current is None:
            decision = decide(f1, None, compared_on=None)
        elif saved is None or kept is None:
            decision = Decision(
                True,
                f"active version {current.version} has no usable saved model here: this one runs "
                f"(held-out F1 {'not measured' if f1 is None else f'{f1:.2f}'})",
            )
        else:
            before = version_record(store, tid, candidate.version)
            if before is not None and before.status == "rejected":
                # The same inputs as a candidate already judged worse: nothing new to judge.
                mark_feedback_seen(store, tid, candidate.version, n_clicks)
                parts[tid] = kept
                outcomes.append(Outcome(tid, candidate.version, "kept", before.reason or "", f1))
                continue
            decision = _judge(candidate, current, saved, run)
        if decision.activate or kept is None:
            record_active(store, _record_of(candidate, "active", decision.reason, n_clicks, now))
            parts[tid] = _part(run, candidate)
            outcomes.append(Outcome(tid, candidate.version, "activated", decision.reason, f1))
        else:
            record_rejected(store, _record_of(candidate, "rejected", decision.reason, n_clicks, now))
            parts[tid] = kept
            outcomes.append(Outcome(tid, candidate.version, "rejected", decision.reason, f1))
    return VersionedModels(parts, _warnings(run, parts)), outcomes


def rules_only_warning(topic_id: str, positives: int, min_positives: int, has_rules: bool) -> str:
    """The warning for a topic with fewer positive examples than `learning.min_positives`."""
    few = (
        f"topic {topic_id}: {positives} positive example(s), fewer than learning.min_positives = "
        f"{min_positives}"
    )
    if not has_rules:
        return (
            f"{few}, and no keyword rules to fall back on: its model learns from its description and these "
            "examples alone; add keyword rules or examples"
        )
    return (
        f"{few}: it runs on its keyword rules alone until it has {min_positives} (add examples to "
        "config.toml, or mark its alerts Relevant in Slack)"
    )


def _warnings(run: TrainedRun, parts: Mapping[str, TopicPart]) -> list[str]:
    min_positives = run.min_positives
    notes = []
    for tid, part in parts.items():
        candidate = run.candidates[tid]
        if candidate.n_positive < min_positives:
            has_rules = not run.definitions[tid].rules.empty
            notes.append(rules_only_warning(tid, candidate.n_positive, min_positives, has_rules))
        # The classifier's own notes, except its few-examples one, which the line above replaces.
        if part.rules is None and candidate.n_positive >= min_positives:
            notes.extend(w for w in run.models.warnings if w.startswith(f"topic {tid}:"))
    return notes


def example_warnings(config: Config) -> list[str]:
    """`watchfloor check`'s warnings: topics with too few positive examples in config to get a model."""
    notes = []
    for topic in config.active_topics:
        definition = topic_definition(config, topic)
        positives = _positives(definition, ())
        if positives < config.learning.min_positives:
            notes.append(
                rules_only_warning(
                    topic.id, positives, config.learning.min_positives, not definition.rules.empty
                )
            )
    return notes


# -- entry points -------------------------------------------------------------------------------------------


def _inputs(
    config: Config, store: Store | None
) -> tuple[list[TopicDefinition], list[Example], dict[str, list[Example]]]:
    definitions = [topic_definition(config, t) for t in config.active_topics]
    background = background_examples(config)
    feedback = feedback_examples(store, [d.id for d in definitions]) if store is not None else {}
    return definitions, background, feedback


def _log_outcomes(trigger: str, outcomes: Sequence[Outcome]) -> None:
    for o in outcomes:
        if o.status in ("activated", "rejected"):
            log.info(
                "model %s topic=%s version=%s trigger=%s reason=%s",
                o.status,
                o.topic,
                o.version,
                trigger,
                o.reason,
            )


def load_active(config: Config, store: Store | None, now: datetime | None = None) -> VersionedModels:
    """The models to run for `config`: `load_or_train`'s work (start-up, config reload, explain).

    With a store: feedback joins the training data, every topic's candidate is measured and recorded, and
    runs only if `decide` lets it (a changed definition always runs). Without: the trained models run.
    """
    with _TRAINING:
        definitions, background, feedback = _inputs(config, store)
        run = train_run(config, definitions, background, feedback, measure_heldout=store is not None)
        if store is None:
            parts = {tid: _part(run, c) for tid, c in run.candidates.items()}
        else:
            chosen, outcomes = choose_versions(run, store, now or datetime.now(UTC))
            _log_outcomes("config", outcomes)
            parts = chosen.parts
            prune_runs(run.path.parent, KEEP_MODEL_FILES, [(tid, p.version) for tid, p in parts.items()])
    notes = _warnings(run, parts)
    for note in notes:
        log.warning("%s", note)
    return VersionedModels(parts, notes)


@dataclass(frozen=True, slots=True)
class RetrainReport:
    trigger: str  # feedback | nightly
    outcomes: list[Outcome]
    seconds: float  # training, measuring and deciding, wall clock
    swapped: bool  # a new TopicScorer was put to work

    def topics(self, status: str) -> list[str]:
        return [o.topic for o in self.outcomes if o.status == status]


def retrain(
    rt: Runtime, now: datetime, *, trigger: str, topics: Collection[str] | None = None
) -> RetrainReport:
    """Train candidates on the running config and today's feedback, let the registry judge them (only
    `topics`, when given), and swap the scorer if any topic got a new version.

    The swap is one assignment under `rt.lock`, as `Service.apply` does, and only if the config is still
    the one trained on: a reload that happened meanwhile has trained its own models and wins.
    """
    started = time.perf_counter()
    with _TRAINING:
        config = rt.config
        definitions, background, feedback = _inputs(config, rt.store)
        run = train_run(config, definitions, background, feedback)
        if rt.config is not config:
            # A reload landed while this trained: it judged its own candidates, and an older config's
            # verdicts must not overwrite them in the registry.
            log.info("retrain skipped trigger=%s reason=config reloaded meanwhile", trigger)
            return RetrainReport(trigger, [], time.perf_counter() - started, False)
        chosen, outcomes = choose_versions(run, rt.store, now, topics=topics, running=rt.scorer.models)
        swapped = False
        if any(o.status == "activated" for o in outcomes):
            scorer = TopicScorer(chosen, config.active_topics)
            with rt.lock:
                if rt.config is config:
                    rt.scorer = scorer
                    swapped = True
        prune_runs(run.path.parent, KEEP_MODEL_FILES, [(tid, p.version) for tid, p in chosen.parts.items()])
    seconds = time.perf_counter() - started
    _log_outcomes(trigger, outcomes)
    log.info(
        "retrain trigger=%s topics=%d activated=%d rejected=%d swapped=%s seconds=%.2f",
        trigger,
        len(outcomes),
        sum(o.status == "activated" for o in outcomes),
        sum(o.status == "rejected" for o in outcomes),
        swapped,
        seconds,
    )
    return RetrainReport(trigger, outcomes, seconds, swapped)


def topics_due(store: Store, config: Config) -> dict[str, int]:
    """Topic → feedback clicks since its last candidate, for topics with `learning.retrain_after` or more."""
    clicks = feedback_clicks(store)
    seen = feedback_seen(store)
    due = {}
    for topic in config.active_topics:
        new = clicks.get(topic.id, 0) - seen.get(topic.id, 0)
        if new >= config.learning.retrain_after:
            due[topic.id] = new
    return due


def retrain_if_due(rt: Runtime, now: datetime) -> RetrainReport | None:
    """Job: retrain the topics with `learning.retrain_after` new feedback clicks since their last candidate
    (None when no topic has). Cheap when nothing is due: two counting queries."""
    due = topics_due(rt.store, rt.config)
    if not due:
        return None
    log.info("retrain due %s", " ".join(f"{tid}=+{n}" for tid, n in sorted(due.items())))
    return retrain(rt, now, trigger="feedback", topics=set(due))


def nightly_retrain(rt: Runtime, now: datetime) -> RetrainReport:
    """Job (`learning.nightly`): every topic's candidate on all feedback so far, example files re-read.
    When no topic's inputs changed, the saved run is reused and every topic keeps its version."""
    return retrain(rt, now, trigger="nightly")
