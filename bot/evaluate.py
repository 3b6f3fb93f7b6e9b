"""`watchfloor eval`: how good each topic is on labelled reports it was not trained on.

Cross-validated by event: reports of one event are never split between training and test, and any shipped
example that is the same report (id) or the same event as a test report is left out of that fold's training,
so the figure is what a user would see on news the model has never met.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from bot.config import Config
from bot.topic_models import background_examples, topic_definition
from classifiers.evaluation import (
    CURVE_SIZES,
    cross_validate,
    learning_curve,
    load_labelled,
    rules_metrics,
    training_positives,
)


def run_eval(config: Config, path: Path, out: TextIO, folds: int = 5) -> int:
    reports = load_labelled(path)
    definitions = [topic_definition(config, t) for t in config.active_topics]
    results = cross_validate(definitions, background_examples(config), reports, folds=folds)
    out.write(
        f"{path}: {len(reports)} reports, {len({r.event for r in reports})} events, "
        f"{folds}-fold cross-validation grouped by event\n\n"
    )
    header = (
        f"{'topic':<28} {'pos':>4} | {'model P':>7} {'R':>5} {'F1':>5} | {'rules P':>7} {'R':>5} {'F1':>5}"
    )
    out.write(header + "\n" + "-" * len(header) + "\n")
    for d in definitions:
        if d.id not in results:
            continue
        model, rules = results[d.id]
        out.write(
            f"{d.id:<28} {model.tp + model.fn:>4} | {model.precision:>7.3f} {model.recall:>5.3f} {model.f1:>5.3f} | "
            f"{rules.precision:>7.3f} {rules.recall:>5.3f} {rules.f1:>5.3f}\n"
        )
    out.write("\npositives = label 2, negatives = label 0, borderline (1) left out\n")
    return 0


def run_curve(config: Config, path: Path, out: TextIO, folds: int = 5, repeats: int = 3) -> int:
    """`watchfloor eval --curve`: per topic, F1 trained on 5, 10, 20 and all examples, next to the rules.

    "Trained on N" subsamples every topic's positives to N per fold (its own labelled negatives in
    proportion; background news kept whole), pooling ``repeats`` random draws; see
    ``classifiers.evaluation.learning_curve``.
    """
    reports = load_labelled(path)
    definitions = [topic_definition(config, t) for t in config.active_topics]
    background = background_examples(config)
    curve = learning_curve(definitions, background, reports, CURVE_SIZES, folds=folds, repeats=repeats)
    available = training_positives(definitions, background, reports, folds=folds)
    out.write(
        f"{path}: {len(reports)} reports, {len({r.event for r in reports})} events, "
        f"{folds}-fold cross-validation grouped by event, {repeats} random draws per size\n\n"
    )
    labels = ["all" if size is None else str(size) for size in CURVE_SIZES]
    header = f"{'topic':<28} {'pos':>4} {'train':>5} | {'rules F1':>8} | " + " ".join(
        f"{'F1@' + label:>7}" for label in labels
    )
    out.write(header + "\n" + "-" * len(header) + "\n")
    for d in definitions:
        if d.id not in curve:
            continue
        n_pos = sum(r.labels.get(d.id) == 2 for r in reports)
        cells = " ".join(f"{m.f1:>7.3f}" for _, m in curve[d.id])
        out.write(
            f"{d.id:<28} {n_pos:>4} {available[d.id]:>5} | {rules_metrics(d, reports).f1:>8.3f} | {cells}\n"
        )
    out.write(
        "\npos = positives (label 2) in the file; train = fewest distinct positive training examples in any\n"
        "fold (shipped examples + other folds, after the leak purge); N above it means all, in that fold.\n"
        "F1@N: every topic's positives subsampled to N per fold (so other topics' positives, its\n"
        "cross-negatives, are N each too), its labelled negatives in proportion, background news whole.\n"
    )
    return 0
