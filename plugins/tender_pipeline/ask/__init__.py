"""Ask about one tender: answers drawn only from that notice's stored text.

``Asker.answer(notice, question)`` is extractive and offline by default
(``extractive``); with ``ASK_BACKEND=gemini`` it asks Gemini for a grounded
answer (``gemini``) and falls back to the extractive answer, saying why, when
Gemini is misconfigured or unavailable. Both return the supporting passages
with their positions in the notice text.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from tender_pipeline.ask.extractive import rank
from tender_pipeline.ask.passages import Notice, Passage, build_notice
from tender_pipeline.gemini.client import GeminiConfigError, GeminiUnavailableError
from tender_pipeline.settings import Settings

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 500
SUPPORT = 3  # passages returned with an extractive answer
VECTOR_WEIGHT = 0.5  # steered with bench/ask.py
MIN_OVERLAP_OR_COSINE = (0.34, 0.45)  # below both, the extractive answer is flagged as a guess
CACHED_NOTICES = 256  # passage vectors kept: follow-up questions on a page skip re-embedding the notice


@dataclass
class Support:
    passage: Passage
    score: float | None = None


@dataclass
class Answer:
    answer: str
    stated: bool
    mode: str  # extractive | gemini
    support: list[Support]
    note: str = ""
    usage: dict[str, float] = field(default_factory=dict)


class Asker:
    """Answers questions about a notice; built once per process (it may hold a Gemini limiter)."""

    def __init__(self, settings: Settings, embedder=None) -> None:
        self.settings = settings
        self.embedder = embedder
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._gemini = None
        if settings.ask_backend == "gemini":
            from tender_pipeline.ask.gemini import GeminiAsker

            self._gemini = GeminiAsker(settings)

    @property
    def mode(self) -> str:
        return "gemini" if self._gemini is not None else "extractive"

    def usage(self) -> dict[str, float]:
        return self._gemini.usage() if self._gemini is not None else {}

    def _cosine(self, notice: Notice, question: str) -> np.ndarray | None:
        if self.embedder is None or not notice.passages:
            return None
        key = hashlib.sha256(f"{notice.tender_id}\x1f{notice.text}".encode()).hexdigest()
        with self._lock:
            docs = self._vectors.get(key)
            if docs is not None:
                self._vectors.move_to_end(key)
        if docs is None:
            docs = self.embedder.embed_documents([p.text for p in notice.passages])
            with self._lock:
                self._vectors[key] = docs
                while len(self._vectors) > CACHED_NOTICES:
                    self._vectors.popitem(last=False)
        q = self.embedder.embed_queries([question])[0]
        return np.clip(docs @ q, 0.0, 1.0)

    def extractive(self, notice: Notice, question: str) -> Answer:
        ranked = rank(notice, question, None, VECTOR_WEIGHT, cosine=self._cosine(notice, question))
        if not ranked:
            return Answer("The notice has no text to answer from.", False, "extractive", [])
        top = ranked[0]
        stated = top.overlap >= MIN_OVERLAP_OR_COSINE[0] or top.cosine >= MIN_OVERLAP_OR_COSINE[1]
        return Answer(top.passage.text, stated, "extractive",
                      [Support(s.passage, round(s.score, 4)) for s in ranked[:SUPPORT]],
                      note="" if stated else "No passage clearly answers this; the closest ones are shown.")

    def answer(self, notice: Notice, question: str) -> Answer:
        question = " ".join(question.split())[:MAX_QUESTION_CHARS]
        if self._gemini is None:
            return self.extractive(notice, question)
        from tender_pipeline.ask.gemini import NOT_STATED

        try:
            grounded, usage = self._gemini.ask(notice, question)
        except (GeminiConfigError, GeminiUnavailableError) as exc:
            log.warning("ask: %s; answering extractively", exc)
            fallback = self.extractive(notice, question)
            fallback.note = f"{exc}; this is the offline extractive answer."
            fallback.usage = getattr(exc, "usage", {})  # the failed requests still count (and may cost)
            return fallback
        by_index = {p.index: p for p in notice.passages}
        if not grounded.stated:
            return Answer(NOT_STATED, False, "gemini", [], usage=usage)
        return Answer(grounded.answer, True, "gemini", [Support(by_index[i]) for i in grounded.cited], usage=usage)


__all__ = ["Answer", "Asker", "MAX_QUESTION_CHARS", "Notice", "Passage", "Support", "build_notice"]
