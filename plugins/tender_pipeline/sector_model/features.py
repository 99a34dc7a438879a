"""Words and word pairs of a notice: the features the sector model was trained on.

Training (scripts/train_sector_model.py) and inference share this module, so
the text a notice is classified on and its terms are defined once. Title terms
get a second, ``t:``-prefixed copy: a title says what is bought more often
than the description's boilerplate does.
"""

from __future__ import annotations

import re

from tender_pipeline.models import TenderRecord

DESCRIPTION_CHARS = 600
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


def terms(title: str, body: str) -> list[str]:
    """Unigrams and bigrams of title + body, plus the title's unigrams again under ``t:``."""
    head = words(title)
    seq = head + words(body)
    out = list(seq)
    out.extend(f"{a} {b}" for a, b in zip(seq, seq[1:], strict=False))
    out.extend(f"t:{w}" for w in head)
    return out


def record_terms(record: TenderRecord) -> list[str]:
    """A notice's terms: title, then its category and the start of its description."""
    return terms(record.title, f"{record.category} {record.description[:DESCRIPTION_CHARS]}")
