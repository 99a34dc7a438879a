"""Offline answers: the notice's passages ranked by meaning and by shared words with the question.

Score = ``w × cosine(question, passage)`` (the local embedder) + ``(1 − w) ×
overlap`` (the share of the question's content words, lightly stemmed, found
in the passage). The top passage is the answer; the next ones support it.
Nothing is generated, so the answer is always text of this notice.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from tender_pipeline.ask.passages import Notice, Passage

_WORD = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset("""a an the of to in on for and or is are was were be been by with at from as it its this that
these those what which who whom whose when where why how do does did can could should would will shall may might
must there their they them i we you he she his her our your my me us any some all about into than then so if not no
tender notice please tell give me list need needed required require done""".split())
SYNONYMS = {  # a bidder's word → words notices use for the same thing
    "deadline": ("closing", "close"), "due": ("closing", "deadline"), "close": ("deadline",),
    "closes": ("deadline",), "closing": ("deadline",),
    "where": ("location", "address", "venue", "place", "office", "box", "portal"),
    "cost": ("value", "price", "amount"), "worth": ("value", "estimated"), "budget": ("value", "estimated"),
    "value": ("amount", "estimated"), "eligible": ("eligibility", "qualify", "registered"),
    "eligibility": ("eligible", "qualify", "registered"), "deposit": ("security",),
    "guarantee": ("security", "bond"), "bond": ("security", "guarantee"),
    "security": ("deposit", "earnest", "emd", "guarantee", "bond"),
    "registration": ("registered", "register"), "experience": ("completed", "similar", "previous"),
    "submit": ("submission", "deliver", "deposit"), "submission": ("submit", "deliver"),
    "contact": ("email", "telephone", "enquiries"), "buyer": ("procuring", "entity"),
}
QUANTITY_WORDS = frozenset({"many", "much", "number", "quantity", "amount", "cost", "price", "value", "fee",
                            "percent", "long", "size", "worth", "budget"})
NUMBER = "#number"  # a pseudo-term: the passage states a figure


def stem(word: str) -> str:
    """A crude suffix stripper: closes/closing/close → clos, submitted/submit → submit, delivery → deliver."""
    for suffix in ("ies", "ing", "ed", "es", "s", "e", "y"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4 - (suffix != "y"):
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            if suffix in ("ing", "ed") and len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
                word = word[:-1]  # submitted → submitt → submit
            return word
    return word


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1]


def question_terms(question: str) -> list[set[str]]:
    """One set of acceptable stems per content word of the question (the word and its synonyms)."""
    words = _WORD.findall(question.lower())
    terms = [{stem(w), *(stem(s) for s in SYNONYMS.get(w, ()))}
             for w in dict.fromkeys(content_words(question) + [w for w in words if w == "where"])]
    if QUANTITY_WORDS & set(words):
        terms.append({NUMBER})
    return terms


def passage_stems(text: str) -> set[str]:
    words = _WORD.findall(text.lower())
    stems = {stem(w) for w in words}
    if any(w[0].isdigit() for w in words):
        stems.add(NUMBER)
    return stems


def overlap(terms: list[set[str]], stems: set[str], weights: list[float] | None = None) -> float:
    """Weighted share of the question's terms present in the passage (weights: rarity within the notice)."""
    weights = weights or [1.0] * len(terms)
    total = sum(weights)
    if not terms or total <= 0:
        return 0.0
    return sum(w for t, w in zip(terms, weights, strict=True) if t & stems) / total


@dataclass(frozen=True)
class Scored:
    passage: Passage
    score: float
    cosine: float
    overlap: float


def cosines(notice: Notice, question: str, embedder) -> np.ndarray:
    """Cosine of the question with each passage (clamped at 0)."""
    q = embedder.embed_queries([question])[0]
    docs = embedder.embed_documents([p.text for p in notice.passages])
    return np.clip(docs @ q, 0.0, 1.0)


def rank(notice: Notice, question: str, embedder=None, vector_weight: float = 0.5,
         cosine: np.ndarray | None = None) -> list[Scored]:
    """Passages best first. Without an embedder (or weight 0) only word overlap counts.

    A question term found in many of the notice's passages ("bid") counts less than a rare one
    ("deadline"): each term is weighted by its inverse passage frequency within this notice; a term
    no passage has cannot tell passages apart and is left out; "where" (the place a bidder asks
    for) counts double.
    ``cosine`` may be passed in when the caller already has it (a cache, or a benchmark sweep).
    """
    passages = notice.passages
    if not passages:
        return []
    terms = question_terms(question)
    stems = [passage_stems(p.text) for p in passages]
    n = len(passages)
    weights = []
    for t in terms:
        df = sum(1 for s in stems if t & s)
        focus = 2.0 if stem("where") in t else 1.0
        weights.append(focus * (math.log((n + 1) / (0.5 + df)) + 1.0) if df else 0.0)
    lexical = np.array([overlap(terms, s, weights) for s in stems], dtype=np.float32)
    w = vector_weight if (embedder is not None or cosine is not None) else 0.0
    if cosine is None:
        cosine = cosines(notice, question, embedder) if w > 0 else np.zeros(n, dtype=np.float32)
    scores = w * cosine + (1 - w) * lexical
    order = sorted(range(n), key=lambda i: (-float(scores[i]), i))
    return [Scored(passages[i], float(scores[i]), float(cosine[i]), float(lexical[i])) for i in order]
