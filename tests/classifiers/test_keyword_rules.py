"""Keyword rule semantics: whole-word phrases, alternatives, all/any/none, and the reasons given."""

from __future__ import annotations

import pytest

from classifiers.rules import KeywordRules, RulesError


def test_no_rules_always_hold() -> None:
    result = KeywordRules().check("anything", "at all")
    assert result.holds and result.failed is None


def test_any_matches_whole_words_case_insensitively() -> None:
    rules = KeywordRules(any=("north korea|dprk|pyongyang",))
    assert rules.check("PYONGYANG sends shells", "").holds
    assert rules.check("", "North  Korea's troops").holds  # whitespace runs and possessives
    assert not rules.check("Pyongyangese cuisine", "").holds  # not a whole word
    assert rules.check("DPRK", "").matched == ("dprk",)


def test_any_failure_names_the_terms() -> None:
    result = KeywordRules(any=("taiwan", "taipei")).check("TSMC", "chips")
    assert not result.holds
    assert result.failed == "none of any=['taiwan', 'taipei'] found"


def test_all_requires_every_term() -> None:
    rules = KeywordRules(all=("north korea|dprk", "russia|moscow"))
    assert rules.check("DPRK and Moscow sign pact", "").holds
    result = rules.check("DPRK fires missile", "")
    assert not result.holds and "russia|moscow" in (result.failed or "")


def test_none_excludes_and_says_which_word() -> None:
    rules = KeywordRules(any=("red sea",), none=("tourism|resort",))
    result = rules.check("Red Sea resort bookings rise", "")
    assert not result.holds
    assert result.failed is not None and result.failed.startswith('excluded by "resort"')
    assert rules.check("Houthis hit ship in Red Sea", "").holds


def test_punctuation_and_hyphens_never_decide() -> None:
    rules = KeywordRules(any=("bab el-mandeb", "korean people's army"))
    assert rules.check("Ship hit in Bab el Mandeb strait", "").holds
    assert rules.check("", "officers of the Korean People’s Army").holds  # typographic apostrophe
    assert not KeywordRules(any=("north korea",)).check("north", "korea").holds  # no title/body span


def test_none_alone_holds_when_absent() -> None:
    assert KeywordRules(none=("sport",)).check("Strait drills", "").holds


def test_lists_are_accepted_and_frozen_to_tuples() -> None:
    rules = KeywordRules(any=["cable"])  # type: ignore[arg-type]  # what a TOML loader hands over
    assert rules.any == ("cable",)
    assert hash(rules) == hash(KeywordRules(any=("cable",)))


@pytest.mark.parametrize("term", ["", "a||b", "|x", "cable|--"])
def test_empty_alternatives_are_rejected(term: str) -> None:
    with pytest.raises(RulesError):
        KeywordRules(any=(term,))


def test_a_string_instead_of_a_list_is_rejected() -> None:
    with pytest.raises(RulesError, match="list of terms"):
        KeywordRules(any="cable")  # type: ignore[arg-type]
