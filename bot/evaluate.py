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
from classifiers.evaluation import cross_validate, load_labelled


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
