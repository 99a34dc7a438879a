"""Words and word pairs of a notice: the features the sector model was trained on.

Training (scripts/train_sector_model.py) and inference share this module, so
the text a notice is classified on and its terms are defined once. Title terms
get a second, ``t:``-prefixed copy: a title says what is bought more often
than the description's boilerplate does. Words of five letters or more also
give their letter 4-grams (``c:``-prefixed), so "resurfacing" and "surfacing",
"refurbishment" and "refurbish", or a word the training data spelled otherwise
share features.
"""

from __future__ import annotations

import re

from tender_pipeline.models import TenderRecord

DESCRIPTION_CHARS = 600
CHAR_GRAM = 4  # letters per word piece; 3+5 together measured no better (bench/README.md)
CHAR_GRAM_MIN_WORD = 5
_WORD = re.compile(r"[a-z][a-z]+")
STOPWORDS = frozenset(
    "the and for of to in on at by with from an or as is are be this that will all any its our their which "
    "who we you your it be been has have was were not can may must shall should would into per via".split()
)


def fold(word: str) -> str:
    """Plural to singular, roughly (``laptops`` → ``laptop``, ``supplies`` → ``supply``): the CPV
    descriptions name things in the singular or plural as it comes, notices too."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    """Lower-case words of two letters or more, plurals folded, stopwords left out."""
    return [fold(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def char_grams(word: str) -> list[str]:
    """The letter 4-grams of ``<word>`` (with boundary marks), for words of five letters or more."""
    if len(word) < CHAR_GRAM_MIN_WORD:
        return []
    padded = f"<{word}>"
    return [f"c:{padded[i:i + CHAR_GRAM]}" for i in range(len(padded) - CHAR_GRAM + 1)]


def terms(title: str, body: str) -> list[str]:
    """Unigrams and bigrams of title + body, the title's unigrams again under ``t:``, and every
    long word's letter 4-grams under ``c:``."""
    head = words(title)
    seq = head + words(body)
    out = list(seq)
    out.extend(f"{a} {b}" for a, b in zip(seq, seq[1:], strict=False))
    out.extend(f"t:{w}" for w in head)
    out.extend(g for w in seq for g in char_grams(w))
    return out


def record_terms(record: TenderRecord) -> list[str]:
    """A notice's terms: title, then its category and the start of its description."""
    return terms(record.title, f"{record.category} {record.description[:DESCRIPTION_CHARS]}")
