"""Topic classification for Watchfloor: keyword rules, per-topic models, training data and evaluation.

Pure computation: no Slack, no HTTP, no I/O beyond reading example files and saving/loading model files.
The bot builds ``TopicDefinition``s from config, trains ``TopicModels`` at start-up (and again when a
fingerprint changes), and flags an item for a topic when ``score >= threshold`` and the topic's rules hold.
"""

from classifiers.evaluation import LabelledReport, Metrics, cross_validate, load_labelled, metrics
from classifiers.model import MODEL_VERSION, ModelVersionError, TopicModels, background_digest
from classifiers.rules import KeywordRules, RuleResult, RulesError
from classifiers.training import Example, ExamplesError, TopicDefinition, load_background, load_examples

__all__ = [
    "MODEL_VERSION",
    "Example",
    "ExamplesError",
    "KeywordRules",
    "LabelledReport",
    "Metrics",
    "ModelVersionError",
    "RuleResult",
    "RulesError",
    "TopicDefinition",
    "TopicModels",
    "background_digest",
    "cross_validate",
    "load_background",
    "load_examples",
    "load_labelled",
    "metrics",
]
