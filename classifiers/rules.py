"""Keyword rules: the analyst's own gate in front of a topic model.

A topic is flagged only when its model scores high enough AND its rules hold, so rules are where an analyst
states what a report must (or must not) mention, in words they can read back. They run on every item
(100k a cycle), so terms are prepared once and a report is reduced to words once for all topics.

Term syntax: a case-insensitive whole-word phrase; ``|`` separates alternatives inside one term
("north korea|dprk|pyongyang"). Text and phrases are both reduced to their words (letters, digits,
underscore) before matching, so "north korea" also matches "North-Korea's" and "bab el-mandeb" matches
"Bab el Mandeb": punctuation and spacing never decide. Matching is a substring search of the padded word
string (" north korea ") in the report's word string, done in C: no regex backtracking per term.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field


class RulesError(ValueError):
    """A rule term that cannot be used (empty, or empty alternative)."""


def term_alternatives(term: str) -> tuple[str, ...]:
    """Split a term into its ``|`` alternatives, lower-cased and stripped; reject empty ones.

    Public because the model uses the alternatives as pseudo-positive text for topics with few examples.
    """
    alternatives = tuple(part.strip().lower() for part in term.split("|"))
    if not term.strip() or any(not alt for alt in alternatives):
        raise RulesError(f"rule term {term!r} has an empty alternative: write phrases separated by '|'")
    return alternatives


_WORD = re.compile(r"\w+")


def _words(text: str) -> str:
    """Lower-cased words joined by single spaces, padded: ' north korea s troops '."""
    return " " + " ".join(_WORD.findall(text.lower())) + " "


@dataclass(frozen=True, slots=True)
class _Report:
    text: str  # padded word string, title and body separated by "|" so no phrase spans them
    words: frozenset[str]


@functools.lru_cache(maxsize=4096)
def _normalised(title: str, text: str) -> _Report:
    # Cached because every topic checks the same report in turn; str hashes are cached, so a hit is cheap.
    head, body = _words(title), _words(text)
    return _Report(head + "| " + body, frozenset(head.split()) | frozenset(body.split()))


@dataclass(frozen=True, slots=True)
class _Term:
    """One term prepared for matching: single words by set lookup, phrases by substring search."""

    single: tuple[tuple[str, str], ...]  # (alternative, its one word)
    words: frozenset[str]
    phrases: tuple[tuple[str, str], ...]  # (alternative, padded word string)

    @classmethod
    def compile(cls, term: str) -> _Term:
        single, phrases = [], []
        for alt in term_alternatives(term):
            words = _words(alt).split()
            if not words:
                raise RulesError(
                    f"rule term {term!r}: {alt!r} has no letters or digits, so it can never match"
                )
            if len(words) == 1:
                single.append((alt, words[0]))
            else:
                phrases.append((alt, " " + " ".join(words) + " "))
        return cls(tuple(single), frozenset(w for _, w in single), tuple(phrases))

    def find(self, report: _Report) -> str | None:
        """An alternative found in the report (single words first, in the order written), or None."""
        if not self.words.isdisjoint(report.words):
            return next(alt for alt, word in self.single if word in report.words)
        for alt, needle in self.phrases:
            if needle in report.text:
                return alt
        return None


@dataclass(frozen=True, slots=True)
class RuleResult:
    """Whether the rules held, which terms matched (the evidence) and, if not, the first reason why not."""

    holds: bool
    matched: tuple[str, ...] = ()
    failed: str | None = None


@dataclass(frozen=True, slots=True)
class KeywordRules:
    """``all``: every term must match; ``any``: at least one must (when non-empty); ``none``: no term may.

    No terms at all means the rules always hold: the model alone decides.
    """

    all: tuple[str, ...] = ()
    any: tuple[str, ...] = ()
    none: tuple[str, ...] = ()
    _compiled: tuple[tuple[_Term, ...], ...] = field(
        init=False, repr=False, compare=False, hash=False, default=()
    )

    def __post_init__(self) -> None:
        # Accept lists from a TOML loader but store tuples, so the rules stay hashable and frozen.
        for name in ("all", "any", "none"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise RulesError(f"rules.{name} must be a list of terms, not the string {value!r}")
            object.__setattr__(self, name, tuple(value))
        compiled = tuple(tuple(_Term.compile(t) for t in terms) for terms in (self.all, self.any, self.none))
        object.__setattr__(self, "_compiled", compiled)

    @property
    def empty(self) -> bool:
        """True when there are no terms at all (the rules always hold)."""
        return not (self.all or self.any or self.none)

    @property
    def terms(self) -> tuple[str, ...]:
        """The positive terms (``all`` then ``any``): what an on-topic report is expected to mention."""
        return self.all + self.any

    def check(self, title: str, text: str) -> RuleResult:
        """Check the rules on one report; the title and body are searched together."""
        if self.empty:
            return RuleResult(holds=True)
        doc = _normalised(title, text)
        all_terms, any_terms, none_terms = self._compiled
        matched: list[str] = []
        for term, compiled in zip(self.none, none_terms, strict=True):
            found = compiled.find(doc)
            if found:
                return RuleResult(holds=False, failed=f'excluded by "{found}" (none: {term!r})')
        for term, compiled in zip(self.all, all_terms, strict=True):
            found = compiled.find(doc)
            if not found:
                return RuleResult(holds=False, matched=tuple(matched), failed=f"all: {term!r} not found")
            matched.append(found)
        if self.any:
            hits = [found for compiled in any_terms if (found := compiled.find(doc))]
            if not hits:
                return RuleResult(
                    holds=False, matched=tuple(matched), failed=f"none of any={list(self.any)!r} found"
                )
            matched.extend(hits)
        return RuleResult(holds=True, matched=tuple(dict.fromkeys(matched)))

    def holds(self, title: str, text: str) -> bool:
        """Shortcut for ``check(...).holds``."""
        return self.check(title, text).holds
