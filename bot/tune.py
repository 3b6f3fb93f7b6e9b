"""`watchfloor tune --topic T --precision 0.9`: the threshold that reaches a target precision, from the
topic's labelled data, with the precision/recall table around it.

    topic's examples + feedback labels (+ --file) | dedup | cross-validated scores, grouped by event
                    | P/R per threshold (score ≥ t and the rules hold) | the lowest-miss threshold at target

The scores are out-of-fold: each report is scored by a model trained without it and without any report of
its event (and the training files are purged of them, as `watchfloor eval` does). In-sample scores would
not do: the model has seen those very reports, so its positives sit near 1 and its negatives near 0, every
threshold looks perfect, and the "chosen" one says nothing about the next report. Out-of-fold scores are
what new news will look like.

The pure part (the table and the choice) has no I/O; `run_tune` gathers the data and trains.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import numpy as np
from sklearn.model_selection import GroupKFold

from bot.backtest import existing_store
from bot.config import Config
from bot.scoring import rules_of
from bot.topic_models import background_examples, feedback_examples, topic_definition
from classifiers.evaluation import load_labelled
from classifiers.model import TopicModels
from classifiers.training import Example, ExamplesError, TopicDefinition

GRID: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 … 0.95
AROUND = 4  # table rows shown each side of the chosen threshold


class TuneError(ValueError):
    """Tuning that cannot run as asked; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Cut:
    """The labelled data flagged at one threshold (score ≥ threshold and the topic's rules hold)."""

    threshold: float
    tp: int
    fp: int
    fn: int

    @property
    def flagged(self) -> int:
        return self.tp + self.fp

    @property
    def precision(self) -> float | None:
        return self.tp / self.flagged if self.flagged else None

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0


@dataclass(frozen=True, slots=True)
class Choice:
    cut: Cut
    reached: bool  # False: no threshold reaches the target; `cut` is the most precise one


def pr_table(
    scores: Sequence[float], truth: Sequence[bool], holds: Sequence[bool], thresholds: Sequence[float] = GRID
) -> list[Cut]:
    """Precision and recall at each threshold, flagging as the bot does: score ≥ t and the rules hold."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(truth, dtype=bool)
    gate = np.asarray(holds, dtype=bool)
    if not s.shape == y.shape == gate.shape:
        raise ValueError(f"scores, truth and holds differ in length: {s.shape}, {y.shape}, {gate.shape}")
    out = []
    for t in sorted(thresholds):
        flagged = (s >= t) & gate
        out.append(Cut(t, int((flagged & y).sum()), int((flagged & ~y).sum()), int((~flagged & y).sum())))
    return out


def _middle(cuts: Sequence[Cut]) -> Cut:
    # Cuts tied on precision and recall flag the same labelled reports: any of them fits this data, and the
    # middle one leaves the most room either way for reports that score a little differently.
    return cuts[(len(cuts) - 1) // 2]


def choose_threshold(table: Sequence[Cut], target: float, prefer: float | None = None) -> Choice | None:
    """The threshold with the best recall among those whose precision reaches `target` (ties: the best
    precision, then `prefer` — the current threshold, so a tie changes nothing — else the middle one).
    None reaches it: the most precise one, marked not reached. None at all when no threshold flags
    anything."""
    useful = [c for c in table if c.precision is not None]
    if not useful:
        return None
    meeting = [c for c in useful if (c.precision or 0.0) >= target]
    if meeting:
        best = max((c.recall, c.precision or 0.0) for c in meeting)
        tied = [c for c in meeting if (c.recall, c.precision) == best]
        reached = True
    else:
        top = max((c.precision or 0.0, c.recall) for c in useful)
        tied = [c for c in useful if (c.precision, c.recall) == top]
        reached = False
    kept = next((c for c in tied if c.threshold == prefer), None)
    return Choice(kept or _middle(tied), reached)


def rows_around(table: Sequence[Cut], chosen: Cut, k: int = AROUND, keep: float | None = None) -> list[Cut]:
    """The table rows within `k` of the chosen one, stretched to reach the row at threshold `keep` (the
    current one), so the way from the current threshold to the chosen one is read without gaps."""
    at = table.index(chosen)
    low, high = max(0, at - k), min(len(table) - 1, at + k)
    for i, c in enumerate(table):
        if keep is not None and c.threshold == keep:
            low, high = min(low, i), max(high, i)
    return list(table[low : high + 1])


# --- The labelled data and its cross-validated scores ---------------------------------------------------


def _key(example: Example) -> str:
    return example.id or f"{example.title}\n{example.text}"


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


@dataclass(frozen=True)
class LabelledData:
    examples: list[Example]  # distinct reports, first label wins
    from_examples: int
    from_feedback: int
    from_file: int


def labelled_data(
    definition: TopicDefinition, feedback: Sequence[Example], file_reports: Sequence[Example]
) -> LabelledData:
    """The topic's examples, then its feedback labels, then the file's reports, each report once."""
    seen: dict[str, Example] = {}
    counts = []
    for source in (definition.examples, feedback, file_reports):
        before = len(seen)
        for example in source:
            seen.setdefault(_key(example), example)
        counts.append(len(seen) - before)
    return LabelledData(list(seen.values()), *counts)


def file_examples(path: Path, topic_id: str) -> list[Example]:
    """The topic's labelled reports of a news_dev.jsonl-format file: 2 → positive, 0 → negative."""
    return [
        Example(r.title, r.text, 1 if r.labels[topic_id] == 2 else 0, event=r.event, id=r.id)
        for r in load_labelled(path)
        if r.labels.get(topic_id) in (0, 2)
    ]


def cross_validated_scores(
    definitions: Sequence[TopicDefinition],
    background: Sequence[Example],
    topic_id: str,
    data: Sequence[Example],
    folds: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Out-of-fold scores of `data` for `topic_id`, folds grouped by event.

    In each fold the topic trains on the other folds' data; every other topic's examples and the background
    are purged of the test fold's reports (by id, title and event), since the shipped files hold the same
    labelled reports and a test report must not come back as a training example (nor as a cross-negative)."""
    groups = [e.event or _key(e) for e in data]
    distinct = sorted(set(groups))
    shuffled = np.random.default_rng(seed).permutation(len(distinct))
    number = dict(zip(distinct, shuffled.tolist(), strict=True))
    group_ids = np.array([number[g] for g in groups])
    n_folds = min(folds, len(distinct))
    scores = np.zeros(len(data))
    for train_idx, test_idx in GroupKFold(n_splits=n_folds).split(np.zeros(len(data)), groups=group_ids):
        test = [data[i] for i in test_idx]
        keys = {_key(e) for e in test}
        events = {e.event for e in test if e.event}
        titles = {_fold(e.title) for e in test if e.title.strip()}

        def clean(
            e: Example, keys: set[str] = keys, events: set[str] = events, titles: set[str] = titles
        ) -> bool:
            return _key(e) not in keys and e.event not in events and _fold(e.title) not in titles

        fold_definitions = [
            replace(d, examples=tuple(data[i] for i in train_idx))
            if d.id == topic_id
            else replace(d, examples=tuple(e for e in d.examples if clean(e)))
            for d in definitions
        ]
        models = TopicModels.train(fold_definitions, [e for e in background if clean(e)])
        column = models.topic_ids.index(topic_id)
        scores[test_idx] = models.score([(e.title, e.text) for e in test])[:, column]
    return scores


# --- The command ----------------------------------------------------------------------------------------


def _p(value: float | None) -> str:
    return "    —" if value is None else f"{value:.3f}"


def render_table(rows: Sequence[Cut], chosen: Cut, current: float) -> str:
    lines = [
        f"  {'threshold':>9}  {'flagged':>7}  {'tp':>4}  {'fp':>4}  {'fn':>4}  {'precision':>9}  {'recall':>6}"
    ]
    for c in rows:
        marks = [m for m, on in (("chosen", c is chosen), ("current", c.threshold == current)) if on]
        lines.append(
            f"{'→' if c is chosen else ' '} {c.threshold:>9.2f}  {c.flagged:>7}  {c.tp:>4}  {c.fp:>4}  {c.fn:>4}  "
            f"{_p(c.precision):>9}  {c.recall:>6.3f}" + (f"   ← {', '.join(marks)}" if marks else "")
        )
    return "\n".join(lines)


def run_tune(
    config: Config, topic_id: str, target: float, out: TextIO, file: Path | None = None, folds: int = 5
) -> int:
    """Print the table and the chosen threshold; exit status 1 when the target precision is not reachable.
    Raises TuneError when the topic, the file or the data do not allow tuning."""
    topic = config.topic(topic_id)
    if topic is None:
        raise TuneError(f"no topic {topic_id!r}; topics: {', '.join(t.id for t in config.topics)}")
    if not 0 < target <= 1:
        raise TuneError(f"--precision {target:g}: use a number above 0 and at most 1, like 0.9")
    definition = topic_definition(config, topic)
    try:
        from_file = file_examples(file, topic_id) if file is not None else []
    except OSError as exc:
        raise TuneError(f"cannot read {file}: {exc.strerror or exc}") from None
    except ExamplesError as exc:
        raise TuneError(str(exc)) from None
    feedback: list[Example] = []
    store = existing_store(config.database_url())
    if store is not None:
        try:
            feedback = feedback_examples(store, [topic_id]).get(topic_id, [])
        finally:
            store.close()
    data = labelled_data(definition, feedback, from_file)
    positives = sum(e.label == 1 for e in data.examples)
    negatives = len(data.examples) - positives
    events = {e.event or _key(e) for e in data.examples}
    out.write(
        f"tune {topic_id} for precision ≥ {target:g}\n"
        f"labelled reports: {len(data.examples)} ({positives} positive, {negatives} negative): "
        f"{data.from_examples} from its examples, {data.from_feedback} "
        f"feedback label{'' if data.from_feedback == 1 else 's'}"
        + (f", {data.from_file} more from {file}" if file is not None else "")
        + "\n"
    )
    if positives < 2 or negatives < 2 or len(events) < 2:
        raise TuneError(
            "too few labelled reports to cross-validate (need at least 2 positives, 2 negatives and 2 events): "
            "add examples to the topic, click Relevant / Not relevant on its alerts, or pass --file"
        )
    definitions = [
        topic_definition(config, t) if t.id != topic_id else definition for t in config.active_topics
    ]
    if topic_id not in {d.id for d in definitions}:
        definitions.append(definition)  # a disabled topic can be tuned before it is switched on
    scores = cross_validated_scores(definitions, background_examples(config), topic_id, data.examples, folds)
    rules = rules_of(topic)
    holds = [rules.holds(e.title, e.text) for e in data.examples]
    current = topic.threshold
    table = pr_table(scores.tolist(), [e.label == 1 for e in data.examples], holds, sorted({*GRID, current}))
    out.write(
        f"scores: {min(folds, len(events))}-fold cross-validation grouped by event (each report scored by a "
        "model that never saw it or its event); flagged = score ≥ threshold and the rules hold\n\n"
    )
    choice = choose_threshold(table, target, prefer=current)
    if choice is None:
        raise TuneError(
            "no threshold flags any labelled report: the topic's rules veto them all; loosen them"
        )
    chosen = choice.cut
    out.write(render_table(rows_around(table, chosen, keep=current), chosen, current) + "\n\n")
    now_cut = next(c for c in table if c.threshold == current)
    summary = f"precision {_p(chosen.precision).strip()}, recall {chosen.recall:.3f}"
    if choice.reached and chosen.threshold == current:
        out.write(
            f"chosen threshold: {chosen.threshold:.2f} ({summary}): the current one already does best\n"
        )
    elif choice.reached:
        out.write(
            f"chosen threshold: {chosen.threshold:.2f} ({summary}; the lowest miss rate at the target)\n"
        )
    else:
        out.write(
            f"precision {target:g} is not reachable on this data: the best is threshold {chosen.threshold:.2f} "
            f"({summary}). More labelled reports, or stricter rules (rules.none), may get there.\n"
        )
    out.write(
        f"current threshold: {current:g} (precision {_p(now_cut.precision).strip()}, recall "
        f'{now_cut.recall:.3f})\n\nin config.toml, under [[topics]] id = "{topic_id}":\n'
        f"threshold = {chosen.threshold:.2f}   # watchfloor tune: precision {_p(chosen.precision).strip()}, "
        f"recall {chosen.recall:.2f}, cross-validated on {len(data.examples)} labelled reports\n"
    )
    return 0 if choice.reached else 1
