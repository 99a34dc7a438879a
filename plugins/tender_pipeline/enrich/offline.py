"""Offline enrichment from the CPV taxonomy, simple rules and local embeddings.

Sector comes from the record's CPV codes when present; otherwise the title is
classified by cosine similarity to each division's label and hint terms, with
a bonus for hint words that literally occur. It costs nothing and never calls out.
"""

from __future__ import annotations

import re

from tender_pipeline.embed import Embedder
from tender_pipeline.models import Enrichment, TenderRecord
from tender_pipeline.sector_scores import DivisionScorer
from tender_pipeline.settings import Settings
from tender_pipeline.taxonomy import Division, Taxonomy, load_taxonomy

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


def _tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in STOPWORDS]


def _explicit_type(record: TenderRecord) -> str | None:
    """A procurement type stated by the source (category / notice type), if any."""
    for text in (record.category, record.notice_type):
        for pattern, kind in _TYPE_WORDS:
            if text and pattern.search(text) and len(text) < 40:
                return kind
    return None


class OfflineEnricher:
    """Deterministic enricher: same record in, same enrichment out."""

    name = "local"

    def __init__(self, taxonomy: Taxonomy, embedder: Embedder | None = None) -> None:
        self.taxonomy = taxonomy
        self._scorer = DivisionScorer(taxonomy, embedder, _tokens)

    @classmethod
    def from_settings(cls, settings: Settings) -> OfflineEnricher:
        from tender_pipeline.embed import get_embedder

        local = settings.model_copy(update={"embed_backend": "local"})
        return cls(load_taxonomy(settings.taxonomy_path), get_embedder(local))

    def usage(self) -> dict[str, float]:
        return {}

    # --- classification -------------------------------------------------
    def classify(self, texts: list[str]) -> list[Division]:
        """Best division per text: embedding similarity plus a bonus per matching hint word."""
        if not texts:
            return []
        scores = self._scorer.scores(texts)
        return [self._scorer.divisions[int(k)] for k in scores.argmax(axis=1)]

    # --- enrichment -----------------------------------------------------
    def enrich(self, records: list[TenderRecord]) -> list[Enrichment]:
        divisions: list[Division | None] = []
        for record in records:
            found = next((self.taxonomy.division_of(c) for c in record.cpv_codes
                          if self.taxonomy.division_of(c)), None)
            divisions.append(found)
        missing = [i for i, d in enumerate(divisions) if d is None]
        if missing:
            texts = [f"{records[i].title}. {records[i].category}. {records[i].description[:200]}"
                     for i in missing]
            for i, division in zip(missing, self.classify(texts), strict=True):
                divisions[i] = division
        return [self._one(r, d) for r, d in zip(records, divisions, strict=True)]  # type: ignore[arg-type]  # all set

    def _one(self, record: TenderRecord, division: Division) -> Enrichment:
        cpv = next((c for c in record.cpv_codes if c.startswith(division.code)), "")
        subsector = self.taxonomy.subsector_of(cpv) if cpv else ""
        procurement_type = _explicit_type(record) or division.procurement_type
        text = " ".join((record.title, record.notice_type, record.description[:400]))
        return Enrichment(
            tender_id=record.tender_id,
            summary=summarize(record, procurement_type),
            sector=division.label,
            subsector=subsector,
            procurement_type=procurement_type,
            keywords=keywords(record, division),
            is_corrigendum=bool(CORRIGENDUM.search(text)),
            enrichment_source="local",
        )


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


def keywords(record: TenderRecord, division: Division, limit: int = 12) -> list[str]:
    """Title terms first, then the division's hint terms as search expansion."""
    seen: dict[str, None] = {}
    for token in _tokens(record.title) + _tokens(division.hints):
        seen.setdefault(token, None)
        if len(seen) >= limit:
            break
    return list(seen)
