"""`watchfloor replay FILE --feedback-from-labels`: how much a topic learns from its analysts' clicks.

The labelled reports go through the real pipeline one at a time, in published order, into a temporary
SQLite store:

    labelled JSONL | purge leaks from the topics' examples | normalise | ingest (dedup, stories, score,
                   decide alerts) | simulated analyst clicks each alert | retrain when due | windows

twice: once without feedback (the control: the models never change) and once with it, so the gain from
feedback is a figure. The analyst clicks *Relevant* on a label-2 report, *Not relevant* on label 0, and does
not click on a borderline report (label 1): an analyst unsure of a report leaves it, and a borderline report
does not teach the model either way anywhere else (`classifiers.training`).

What this module promises:
- No leak: a config example or background row that is a report of the replayed file (same id, URL, title or
  event) is left out of training, as `watchfloor eval` leaves out a test fold's reports; the replay starts
  from what a user would have had before the first report arrived.
- Retraining is the worker's own: `retrain_if_due` after every report, which retrains a topic once it has
  `[learning].retrain_after` new clicks (`--retrain-after` overrides it) and puts the new version to work
  only if its held-out F1 is not worse (`bot.retrain`); the start is `load_or_train(config, store)`.
- Precision and recall are measured over windows of the report stream, cut after every `window` alerts of
  the run without feedback, so both runs are compared over the same reports. Precision is over the window's
  alerts (borderline alerts left out, as in `eval`); recall over the window's label-2 reports, a report
  counting as found when its story had an alert for the topic once it arrived (a later report of an alerted
  story goes into the alert's thread, which is how the analyst sees it).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from bot.config import Config, ExamplesConfig
from bot.dedup import item_keys
from bot.feedback import Verdict
from bot.items import Item
from bot.jsonl_items import LineError, item_from_line, parse_time
from bot.pipeline import Runtime, ingest
from bot.retrain import retrain_if_due
from bot.runtime import build_runtime
from bot.store import Store
from bot.urls import canonical_url

ANALYST = "replay-analyst"
DEFAULT_WINDOW = 25
# Undated reports (a feed that gives no date) keep their place in the file and are this far apart.
UNDATED_STEP = timedelta(minutes=1)


class ReplayError(ValueError):
    """A replay file that cannot be replayed; the message names the file and line."""


# --- The replay file ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """One labelled report, normalised as the pipeline would see it, at its place in time."""

    item: Item
    event: str
    labels: Mapping[str, int]


def replay_times(published: Sequence[datetime | None]) -> list[datetime]:
    """A time for every report: its own date, or — undated — the time of the report before it in the file
    plus a minute (news_dev.jsonl is oldest first and its undated reports come last).

    Undated reports before any dated one start at the first dated time. All undated: from 2000-01-01."""
    first = next((p for p in published if p is not None), datetime(2000, 1, 1, tzinfo=UTC))
    out: list[datetime] = []
    previous = first - UNDATED_STEP
    for value in published:
        previous = value if value is not None else previous + UNDATED_STEP
        out.append(previous)
    return out


_NO_DATE = datetime.min.replace(tzinfo=UTC)


def _record(raw: str, path: Path, line_no: int) -> dict[str, Any]:
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ReplayError(f"{path} line {line_no}: not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(record, dict):
        raise ReplayError(f"{path} line {line_no}: expected a JSON object")
    labels = record.get("labels")
    if not isinstance(labels, dict) or any(
        v not in (0, 1, 2) or isinstance(v, bool) for v in labels.values()
    ):
        raise ReplayError(
            f'{path} line {line_no}: needs "labels": {{topic_id: 2, 1 or 0}} (the news_dev.jsonl format)'
        )
    if not isinstance(record.get("id"), str) or not record["id"]:
        raise ReplayError(f'{path} line {line_no}: needs an "id" (a string)')
    return record


def load_replay(path: Path) -> list[ReplayReport]:
    """The labelled reports of `path` in the order they are replayed (published time, file order on ties)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayError(f"cannot read {path}: {exc}") from None
    rows: list[tuple[int, str, dict[str, Any]]] = []
    for line_no, raw in enumerate(lines, start=1):
        if raw.strip():
            rows.append((line_no, raw, _record(raw, path, line_no)))
    published = [parse_time(r.get("published"), _NO_DATE) for _, _, r in rows]
    times = replay_times([None if p == _NO_DATE else p for p in published])
    reports: list[tuple[datetime, int, ReplayReport]] = []
    for (line_no, raw, record), at in zip(rows, times, strict=True):
        parsed = item_from_line(raw, line_no, at)
        if isinstance(parsed, LineError):
            raise ReplayError(f"{path} line {line_no}: {parsed.error}")
        item = Item(parsed.id, parsed.url, parsed.title, parsed.text, at, parsed.source, None, at)
        event = str(record.get("event") or record["id"])
        reports.append((at, line_no, ReplayReport(item, event, dict(record["labels"]))))
    reports.sort(key=lambda r: (r[0], r[1]))
    ids = [r.item.id for _, _, r in reports]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ReplayError(f"{path}: id {dup!r} is used by more than one report")
    return [r for _, _, r in reports]


# --- Leak purge -----------------------------------------------------------------------------------------


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


@dataclass(frozen=True)
class ReplayMarks:
    """What identifies a replayed report in a training file: id, canonical URL, title, text, event."""

    ids: frozenset[str]
    urls: frozenset[str]
    texts: frozenset[str]  # titles and texts, folded
    events: frozenset[str]

    @classmethod
    def of(cls, reports: Sequence[ReplayReport]) -> ReplayMarks:
        return cls(
            ids=frozenset(r.item.id for r in reports),
            urls=frozenset(r.item.url for r in reports if r.item.url),
            texts=frozenset(_fold(t) for r in reports for t in (r.item.title, r.item.text) if t.strip()),
            events=frozenset(r.event for r in reports),
        )

    def leaks(self, record: Mapping[str, Any]) -> bool:
        """True when a training record is (a report of the same event as) a replayed report."""
        if record.get("id") in self.ids or record.get("event") in self.events:
            return True
        url = record.get("url")
        if isinstance(url, str) and url and canonical_url(url) in self.urls:
            return True
        title = record.get("title")
        return isinstance(title, str) and bool(title.strip()) and _fold(title) in self.texts

    def leaks_text(self, text: str) -> bool:
        return _fold(text) in self.texts


def purge_lines(lines: Sequence[str], marks: ReplayMarks) -> tuple[list[str], int]:
    """The lines of a JSONL training file that are not replayed reports, and how many were left out.

    A line that is not a JSON object is kept as it is: `watchfloor check` reports those, not the replay."""
    kept: list[str] = []
    purged = 0
    for line in lines:
        try:
            record = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict) and marks.leaks(record):
            purged += 1
        else:
            kept.append(line)
    return kept, purged


@dataclass
class PurgeReport:
    """Per training file (as named in config): (rows left out, rows in the file); inline texts left out."""

    files: dict[str, tuple[int, int]] = field(default_factory=dict)
    inline: int = 0


def leak_free_config(config: Config, marks: ReplayMarks, workdir: Path) -> tuple[Config, PurgeReport]:
    """A copy of `config` whose example and background files are purged copies in `workdir`, whose models
    are cached in `workdir`, and whose inline examples hold no replayed report."""
    report = PurgeReport()
    copies: dict[str, str] = {}

    def purged(name: str) -> str:
        if name not in copies:
            source = config.path(name)
            lines = source.read_text(encoding="utf-8").splitlines()
            kept, n = purge_lines(lines, marks)
            target = workdir / "examples" / f"{len(copies):02d}-{source.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
            copies[name] = str(target)
            report.files[name] = (n, sum(1 for line in lines if line.strip()))
        return copies[name]

    topics = []
    for topic in config.topics:
        positive = [t for t in topic.examples.positive if not marks.leaks_text(t)]
        negative = [t for t in topic.examples.negative if not marks.leaks_text(t)]
        report.inline += len(topic.examples.positive) + len(topic.examples.negative)
        report.inline -= len(positive) + len(negative)
        examples = ExamplesConfig(
            files=[purged(n) for n in topic.examples.files], positive=positive, negative=negative
        )
        topics.append(topic.model_copy(update={"examples": examples}))
    classifier = config.classifier.model_copy(
        update={
            "background": [purged(n) for n in config.classifier.background],
            "model_dir": str(workdir / "models"),
        }
    )
    return config.model_copy(update={"topics": topics, "classifier": classifier}), report


# --- The simulated analyst ----------------------------------------------------------------------------------


def analyst_verdict(label: int | None) -> Verdict | None:
    """The click a labelled report earns: 2 → relevant, 0 → not relevant; borderline or unlabelled → none."""
    if label == 2:
        return "relevant"
    if label == 0:
        return "not_relevant"
    return None


# --- Windows --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """One replayed report, for one topic, in one run."""

    label: int | None  # 2 on topic, 1 borderline, 0 off topic, None unlabelled
    alerted: bool  # this report raised the topic's alert for its story
    covered: bool  # its story had an alert for the topic once it arrived (its own or an earlier one)


@dataclass(frozen=True, slots=True)
class WindowStats:
    start: int  # first report, 0-based
    end: int  # one past the last report
    alerts: int
    tp: int
    fp: int
    positives: int
    found: int

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.found / self.positives if self.positives else None


def window_spans(alert_positions: Sequence[int], size: int, n_reports: int) -> list[tuple[int, int]]:
    """[start, end) spans of the report stream, each ending at every `size`-th alert; the rest of the
    stream (fewer alerts, or none) is the last span."""
    if size < 1:
        raise ValueError(f"window size must be at least 1, got {size}")
    spans: list[tuple[int, int]] = []
    start = 0
    for k in range(size - 1, len(alert_positions), size):
        end = alert_positions[k] + 1
        spans.append((start, end))
        start = end
    if start < n_reports:
        spans.append((start, n_reports))
    return spans


def window_stats(outcomes: Sequence[Outcome], start: int, end: int) -> WindowStats:
    """Alerts and their precision, labelled positives and their recall, over reports [start, end)."""
    span = outcomes[start:end]
    return WindowStats(
        start=start,
        end=end,
        alerts=sum(o.alerted for o in span),
        tp=sum(o.alerted and o.label == 2 for o in span),
        fp=sum(o.alerted and o.label == 0 for o in span),
        positives=sum(o.label == 2 for o in span),
        found=sum(o.label == 2 and o.covered for o in span),
    )


# --- One run --------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    outcomes: dict[str, list[Outcome]]  # topic → one outcome per report
    clicks: dict[str, list[int]] = field(default_factory=dict)  # topic → positions of the clicked reports
    # topic → positions after which a retrain put a new version of its model to work / kept the old one
    activated: dict[str, list[int]] = field(default_factory=dict)
    rejected: dict[str, list[int]] = field(default_factory=dict)
    train_seconds: float = 0.0


def _story_of(rt: Runtime, item: Item) -> str | None:
    """The stored story of a report the dedup step recognised (same URL as one already stored)."""
    known = rt.store.known_keys(item_keys(item))
    for item_id in known.values():
        row = rt.store.item(item_id)
        if row is not None:
            return str(row["story_id"])
    return None


def replay_run(config: Config, reports: Sequence[ReplayReport], db_path: Path, feedback: bool) -> RunResult:
    """Ingest `reports` one by one into a fresh store; with `feedback`, click every alert by its label and
    run the worker's retraining job (`retrain_if_due`, [learning].retrain_after) after each report."""
    store = Store.open(f"sqlite:///{db_path}")
    try:
        started = time.perf_counter()
        rt = build_runtime(config, reports[0].item.published if reports else datetime.now(UTC), store=store)
        result = RunResult(outcomes={t: [] for t in rt.scorer.topic_ids})
        result.train_seconds = time.perf_counter() - started
        alerted: dict[str, set[str]] = {t: set() for t in rt.scorer.topic_ids}
        for position, report in enumerate(reports):
            now = report.item.published
            done = ingest(rt, [report.item], now)
            story = done.scored[0].story if done.scored else _story_of(rt, report.item)
            raised: dict[str, str] = {}  # topic → alert id (its first destination's)
            for alert in done.alerts:
                raised.setdefault(alert.topic, alert.id)
                alerted[alert.topic].add(alert.story)
            for topic, outcomes in result.outcomes.items():
                outcomes.append(
                    Outcome(
                        label=report.labels.get(topic),
                        alerted=topic in raised,
                        covered=story is not None and story in alerted[topic],
                    )
                )
            if not feedback:
                continue
            for topic, alert_id in raised.items():
                verdict = analyst_verdict(report.labels.get(topic))
                if verdict is None:
                    continue
                rt.store.record_feedback(alert_id, ANALYST, verdict, now)
                result.clicks.setdefault(topic, []).append(position)
            retrained = retrain_if_due(rt, now)
            if retrained is None:
                continue
            result.train_seconds += retrained.seconds
            for topic in retrained.topics("activated"):
                result.activated.setdefault(topic, []).append(position)
            for topic in retrained.topics("rejected"):
                result.rejected.setdefault(topic, []).append(position)
        return result
    finally:
        store.close()


# --- The command ----------------------------------------------------------------------------------------


def _ratio(value: float | None) -> str:
    return "    —" if value is None else f"{value:.3f}"


def _span_label(start: int, end: int) -> str:
    return str(end) if start + 1 == end else f"{start + 1}-{end}"


def _cells(stats: WindowStats) -> str:
    return f"{stats.alerts:>6} {stats.tp:>3}/{stats.fp:<3} {_ratio(stats.precision):>5} {_ratio(stats.recall):>5}"


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _count_in(positions: Sequence[int], start: int, end: int) -> int:
    return sum(start <= p < end for p in positions)


def render_topic(
    topic: str,
    control: Sequence[Outcome],
    learned: Sequence[Outcome] | None,
    window: int,
    clicks: Sequence[int] = (),
    activated: Sequence[int] = (),
    rejected: Sequence[int] = (),
) -> str:
    """One topic's table: a row per window, then all reports, then (with feedback) the reports after the
    topic's first new model, where the two runs can first differ."""
    n = len(control)
    positives = sum(o.label == 2 for o in control)
    borderline = sum(o.label == 1 for o in control)
    alert_positions = [i for i, o in enumerate(control) if o.alerted]
    rows = [(_span_label(s, e), s, e) for s, e in window_spans(alert_positions, window, n)]
    totals = [("all", 0, n)]
    if learned is not None and activated and activated[0] + 1 < n:
        first = activated[0] + 1
        totals.append((f"after 1st new model ({_span_label(first, n)})", first, n))
    width = max(len(label) for label, _, _ in (*rows, *totals, ("reports", 0, 0)))
    head = f"  {'reports':<{width}} | {'no feedback: alerts':>19} {'tp/fp':<7} {'P':>5} {'R':>5}"
    if learned is not None:
        head += f" | {'with feedback: alerts':>21} {'tp/fp':<7} {'P':>5} {'R':>5} | clicks new models"
    rule = "  " + "-" * (len(head) - 2)
    summary = f"{topic}: {positives} positives, {borderline} borderline in {n} reports"
    if learned is not None:
        tries, new = len(activated) + len(rejected), len(activated)
        summary += f"; retrained {_times(tries)}, {new} new model{'' if new == 1 else 's'} put to work"
        if rejected:
            summary += f", {len(rejected)} kept aside (held-out F1 worse)"
    lines = [summary, head, rule]

    def row(label: str, start: int, end: int) -> str:
        line = f"  {label:<{width}} | {'':>13}{_cells(window_stats(control, start, end))}"
        if learned is not None:
            line += (
                f" | {'':>15}{_cells(window_stats(learned, start, end))} | "
                f"{_count_in(clicks, start, end):>6} {_count_in(activated, start, end):>10}"
            )
        return line

    lines += [row(*r) for r in rows]
    lines.append(rule)
    lines += [row(*r) for r in totals]
    return "\n".join(lines)


def run_replay(
    config: Config,
    path: Path,
    out: TextIO,
    feedback: bool,
    window: int = DEFAULT_WINDOW,
    retrain_after: int | None = None,
) -> int:
    """Replay `path` without feedback and (with `feedback`) with it; print the tables. Raises ReplayError
    for a file that cannot be replayed."""
    if window < 1:
        raise ReplayError(f"--window must be at least 1 alert, got {window}")
    if retrain_after is not None and retrain_after < 1:
        raise ReplayError(f"--retrain-after must be at least 1 label, got {retrain_after}")
    started = time.perf_counter()
    reports = load_replay(path)
    if not reports:
        raise ReplayError(f"{path} holds no reports")
    every = retrain_after or config.learning.retrain_after
    config = config.model_copy(
        update={"learning": config.learning.model_copy(update={"retrain_after": every})}
    )
    with tempfile.TemporaryDirectory(prefix="watchfloor-replay-") as tmp:
        workdir = Path(tmp)
        clean, purge = leak_free_config(config, ReplayMarks.of(reports), workdir)
        control = replay_run(clean, reports, workdir / "control.sqlite", feedback=False)
        learned = replay_run(clean, reports, workdir / "feedback.sqlite", feedback=True) if feedback else None
    out.write(
        f"{path}: {len(reports)} reports replayed in published order "
        f"({reports[0].item.published:%Y-%m-%d} to {reports[-1].item.published:%Y-%m-%d}; "
        f"undated ones keep their place in the file), one ingest per report, a fresh SQLite store per run\n"
    )
    left_out = [f"{name} {n} of {total}" for name, (n, total) in purge.files.items() if n]
    out.write(
        "leak purge (same id, URL, title or event as a replayed report): "
        + (", ".join(left_out) + " rows left out" if left_out else "nothing to leave out")
        + (f", {purge.inline} inline examples" if purge.inline else "")
        + "\n"
    )
    if learned is not None:
        out.write(
            f"with feedback: the analyst clicks Relevant on label 2, Not relevant on label 0, nothing on "
            f"borderline (1); a topic is retrained after {every} new click{'' if every == 1 else 's'} "
            f"({'--retrain-after' if retrain_after else '[learning].retrain_after'}), and its new model "
            "runs if its held-out F1 is not worse\n"
        )
    out.write(
        f"windows: every {window} alerts of the run without feedback, both runs measured over the same "
        "reports; P over the window's alerts (borderline left out), R over its label-2 reports (found = "
        "their story alerted)\n\n"
    )
    labelled = {t for r in reports for t in r.labels}
    for topic, outcomes in control.outcomes.items():
        if topic not in labelled:
            out.write(f"{topic}: no labels in {path}, not measured\n\n")
            continue
        out.write(
            render_topic(
                topic,
                outcomes,
                learned.outcomes[topic] if learned is not None else None,
                window,
                clicks=learned.clicks.get(topic, []) if learned is not None else [],
                activated=learned.activated.get(topic, []) if learned is not None else [],
                rejected=learned.rejected.get(topic, []) if learned is not None else [],
            )
            + "\n\n"
        )
    training = control.train_seconds + (learned.train_seconds if learned is not None else 0.0)
    out.write(f"took {time.perf_counter() - started:.1f} s, of which model training {training:.1f} s\n")
    return 0
