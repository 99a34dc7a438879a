"""Offline enrichment from the CPV taxonomy, the shipped sector model and simple rules.

Sector comes from the record's CPV codes when present (confidence 1); otherwise
the shipped linear model (``tender_pipeline.sector_model``) reads the title,
category and the start of the description, and a guess below
``SECTOR_MIN_CONFIDENCE`` is ``Unclassified``. Keywords are the notice's own
words. It costs nothing, is deterministic and never calls out.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from tender_pipeline.models import UNCLASSIFIED, Enrichment, TenderRecord
from tender_pipeline.sector_model import SectorGuess, SectorModel, get_sector_model
from tender_pipeline.sector_model.features import record_terms
from tender_pipeline.settings import Settings
from tender_pipeline.taxonomy import Division, Taxonomy, load_taxonomy

DEFAULT_MIN_CONFIDENCE: float = Settings.model_fields["sector_min_confidence"].default  # one default

CORRIGENDUM = re.compile(
    r"\b(corrigend\w*|addend\w*|amendment|amended|erratum|errata|revised (?:notice|tender|date)|"
    r"extension of (?:the )?(?:closing|bid|submission|due) date|date extension)\b",
    re.IGNORECASE,
)
_TYPE_WORDS = (
    (re.compile(r"\b(works?|construction|civil)\b", re.I), "Works"),
    (re.compile(r"\b(goods|supply|supplies|products?|equipment)\b", re.I), "Supply"),
    (re.compile(r"\b(services?|consultancy|consulting)\b", re.I), "Services"),
)
_TOKEN = re.compile(r"[a-z][a-z0-9\-]{2,}")
STOPWORDS = frozenset(
    "the and for of to in on at by with from a an or as is are be this that supply provision "
    "tender tenders bid bids invitation procurement request quotation quotations rfq rfp notice "
    "services service works work goods various other related including inc ltd via into per".split()
)
# description boilerplate that says nothing about what is bought (keywords only; the model learns its own weights)
_BOILERPLATE = frozenset(
    "will must shall should would can may our their your you they them has have been also any all within which "
    "who what when where there here these those such its more than not new contract contracts council authority "
    "opportunity opportunities suppliers supplier required requirement requirements please interested deliver "
    "delivery provide provider providers organisation organisations period years year month months date time "
    "ensure through about following include includes based https http www com gov org net".split()
)


def _tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS]


def _explicit_type(record: TenderRecord) -> str | None:
    """A procurement type stated by the source (category / notice type), if any."""
    for text in (record.category, record.notice_type):
        for pattern, kind in _TYPE_WORDS:
            if text and pattern.search(text) and len(text) < 40:
                return kind
    return None


@dataclass(frozen=True)
class SectorCall:
    """The sector decided for one record: a division, or None when Unclassified, and how sure."""

    division: Division | None
    confidence: float
    guess: Division | None  # the model's best division even when not confident (for the procurement type)

    @classmethod
    def of(cls, taxonomy: Taxonomy, guess: SectorGuess, min_confidence: float) -> SectorCall:
        """The model's best division, kept only when it is one of the taxonomy's and sure enough."""
        division = taxonomy.divisions.get(guess.code)
        sure = division is not None and guess.confidence >= min_confidence
        return cls(division if sure else None, guess.confidence, division)

    def fields(self) -> dict[str, str | float]:
        """The Enrichment's sector fields for this call (Unclassified without a division)."""
        return {"sector": self.division.label if self.division else UNCLASSIFIED,
                "sector_code": self.division.code if self.division else "",
                "sector_confidence": round(min(max(self.confidence, 0.0), 1.0), 4)}


class OfflineEnricher:
    """Deterministic enricher: same record in, same enrichment out."""

    name = "local"

    def __init__(self, taxonomy: Taxonomy, embedder: object | None = None, *,
                 min_confidence: float = DEFAULT_MIN_CONFIDENCE, model: SectorModel | None = None) -> None:
        """``embedder`` is accepted for older callers and unused: the sector model reads words, not vectors."""
        self.taxonomy = taxonomy
        self.min_confidence = min_confidence
        self._model = model

    @classmethod
    def from_settings(cls, settings: Settings) -> OfflineEnricher:
        return cls(load_taxonomy(settings.taxonomy_path), min_confidence=settings.sector_min_confidence)

    @property
    def model(self) -> SectorModel:
        if self._model is None:
            self._model = get_sector_model()
        return self._model

    def usage(self) -> dict[str, float]:
        return {}

    # --- classification -------------------------------------------------
    def classify(self, texts: list[str]) -> list[Division]:
        """The model's best division per free text (read as a title), however unsure: see ``sectors``."""
        guesses = self.model.guess_texts(texts, top=1)
        fallback = self.taxonomy.divisions[min(self.taxonomy.divisions)]
        return [self.taxonomy.divisions.get(g.code, fallback) for g in guesses]

    def sectors(self, records: list[TenderRecord]) -> list[SectorCall]:
        """Each record's sector: its CPV code's division when it has one, else the model's confident guess."""
        calls: list[SectorCall | None] = []
        for record in records:
            found = self.taxonomy.division_of_record(record.cpv_codes)
            calls.append(SectorCall(found, 1.0, found) if found else None)
        missing = [i for i, c in enumerate(calls) if c is None]
        todo = [records[i] for i in missing]
        probs = given_types(self.model, self.taxonomy, todo, self.model.probabilities([record_terms(r) for r in todo]))
        for i, guess in zip(missing, self.model.ranked(probs, top=1), strict=True):
            calls[i] = SectorCall.of(self.taxonomy, guess, self.min_confidence)
        return [c for c in calls if c is not None]

    # --- enrichment -----------------------------------------------------
    def enrich(self, records: list[TenderRecord]) -> list[Enrichment]:
        return [self._one(r, c) for r, c in zip(records, self.sectors(records), strict=True)]

    def _one(self, record: TenderRecord, call: SectorCall) -> Enrichment:
        division = call.division
        cpv = next((c for c in record.cpv_codes if division and c.startswith(division.code)), "")
        subsector = self.taxonomy.subsector_of(cpv) if cpv else ""
        text = " ".join((record.title, record.notice_type, record.description[:400]))
        return Enrichment(
            tender_id=record.tender_id,
            **call.fields(),
            **typed(record, call),
            subsector=subsector,
            keywords=keywords(record),
            is_corrigendum=bool(CORRIGENDUM.search(text)),
            enrichment_source="local",
        )


def given_types(model: SectorModel, taxonomy: Taxonomy, records: list[TenderRecord], probs: np.ndarray) -> np.ndarray:
    """The model's division probabilities for ``records``, weighed by the procurement type each source states
    (``SectorModel.given_types``; the division's type is the taxonomy's)."""
    return model.given_types(probs, [_explicit_type(r) for r in records],
                             {code: d.procurement_type for code, d in taxonomy.divisions.items()})


def typed(record: TenderRecord, call: SectorCall) -> dict[str, str]:
    """The procurement type (the source's own, else the guessed division's) and the summary line naming it:
    decided with the sector, so a sector decided again (``enrich.refine``) brings its type along."""
    procurement_type = _explicit_type(record) or (call.guess.procurement_type if call.guess else "Services")
    return {"procurement_type": procurement_type, "summary": summarize(record, procurement_type)}


def summarize(record: TenderRecord, procurement_type: str) -> str:
    """One line a person can scan: type, what, who, where."""
    what = record.title
    if record.description and record.description.lower() != record.title.lower():
        first = re.split(r"(?<=[.;])\s", record.description, maxsplit=1)[0]
        if len(what) < 60 and first.lower() not in what.lower():
            what = f"{what}: {first}"
    place = ", ".join(p for p in (record.city, record.region, record.country) if p)
    who = " — ".join(p for p in (record.buyer, place) if p)
    line = f"{procurement_type}: {what}" + (f" ({who})" if who else "")
    return line if len(line) <= 240 else line[:237].rstrip() + "…"


def keywords(record: TenderRecord, limit: int = 12) -> list[str]:
    """The notice's own words: the title's first, then the description's most repeated (never a hint list)."""
    seen: dict[str, None] = dict.fromkeys(t for t in _tokens(record.title) if t.isalpha())
    rest = Counter(t for t in _tokens(f"{record.category} {record.description[:1500]}")
                   if t.isalpha() and t not in _BOILERPLATE)
    for token, _ in rest.most_common():  # ties keep text order
        seen.setdefault(token, None)
    return list(seen)[:limit]
