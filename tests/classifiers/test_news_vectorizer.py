"""The fast vectoriser agrees with scikit-learn's tokenisation and weighting where it claims to."""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from classifiers.features import NewsVectorizer

DOCS = [
    ("Kim meets Putin", "North Korea and Russia sign a defence pact in Pyongyang."),
    ("Houthis attack ship", "A missile hit the tanker in the Red Sea; the crew escaped."),
    ("Drills near Taiwan", "The PLA sent warships and jets around Taiwan for drills."),
]


def test_features_match_scikit_learn_on_ascii_text() -> None:
    ours = NewsVectorizer().fit(DOCS)
    # same recipe (word 1-2-grams, English stop words dropped first), but no bigram spans title and body
    reference = TfidfVectorizer(ngram_range=(1, 2), stop_words="english").fit(
        [p for doc in DOCS for p in doc]
    )
    assert set(ours.feature_names) == set(reference.get_feature_names_out())


def test_unicode_punctuation_splits_words_and_case_folds() -> None:
    vectorizer = NewsVectorizer().fit([("North Korea’s troops", "ПХЕНЬЯН and Pyongyang — “allies”")])
    names = set(vectorizer.feature_names)
    assert {"north", "korea", "troops", "пхеньян", "pyongyang", "allies"} <= names
    assert not any("’" in n or "“" in n for n in names)


def test_rows_are_l2_normalised_and_unknown_words_ignored() -> None:
    vectorizer = NewsVectorizer().fit(DOCS)
    x = vectorizer.transform([*DOCS, ("zzz qqq", "never seen"), ("", "")])
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms[:3], 1, rtol=1e-5)
    assert norms[3] == 0 and norms[4] == 0


def test_break_characters_inside_text_do_not_shift_documents() -> None:
    vectorizer = NewsVectorizer().fit(DOCS)
    hostile = ("Kim\x00meets\x01Putin", "North Korea")
    x = vectorizer.transform([hostile, DOCS[1]])
    np.testing.assert_allclose(x[1].toarray(), vectorizer.transform([DOCS[1]]).toarray(), rtol=1e-6)
