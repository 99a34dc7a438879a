"""The records that flow between stages, as pydantic models.

``TenderRecord`` is one validated canonical row; ``Enrichment`` is what any
enricher (offline or Gemini) returns for it, so both backends fill one schema.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from tender_pipeline import normalize

CANONICAL_COLUMNS: tuple[str, ...] = (
    "tender_id", "title", "description", "buyer", "country", "region", "city",
    "published_date", "closing_date", "value_amount", "currency", "category",
    "cpv_codes", "notice_type", "url", "source",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("tender_id", "title")

# Bump when the meaning of a stored record changes, so every record re-indexes once.
CONTENT_VERSION = "1"
UNCLASSIFIED = "Unclassified"  # the `sector` of a notice no sector was assigned to with confidence

ProcurementType = Literal["Works", "Supply", "Services"]


class TenderRecord(BaseModel):
    """One canonical tender row after validation (text trimmed, dates ISO, amounts numeric)."""

    model_config = ConfigDict(str_strip_whitespace=True)

    tender_id: str = Field(min_length=1, max_length=256)
    title: str = Field(min_length=1)
    description: str = ""
    buyer: str = ""
    country: str = ""
    region: str = ""
    city: str = ""
    published_date: date | None = None
    closing_date: date | None = None
    value_amount: float | None = Field(default=None, ge=0)
    currency: str = ""
    category: str = ""
    cpv_codes: list[str] = Field(default_factory=list)
    notice_type: str = ""
    url: str = ""
    source: str = ""

    @field_validator(
        "tender_id", "title", "description", "buyer", "country", "region", "city",
        "currency", "category", "notice_type", "url", "source", mode="before",
    )
    @classmethod
    def _clean_text(cls, value: object) -> object:
        return normalize.clean_text(value) if value is not None else ""

    @field_validator("published_date", "closing_date", mode="before")
    @classmethod
    def _parse_date(cls, value: object, info: ValidationInfo) -> object:
        dayfirst = bool((info.context or {}).get("dayfirst", True))
        return normalize.parse_date(value, dayfirst=dayfirst)

    @field_validator("value_amount", mode="before")
    @classmethod
    def _parse_amount(cls, value: object) -> object:
        return normalize.parse_amount(value)

    @field_validator("cpv_codes", mode="before")
    @classmethod
    def _parse_cpv(cls, value: object) -> object:
        return normalize.parse_cpv_codes(value)

    @field_validator("currency")
    @classmethod
    def _upper_currency(cls, value: str) -> str:
        return value.upper()

    def content_hash(self) -> str:
        """Stable hash of everything that affects enrichment and the index."""
        payload = self.model_dump(mode="json")
        payload["_v"] = CONTENT_VERSION
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


class Enrichment(BaseModel):
    """Structured fields an enricher derives from a tender (one schema for every backend)."""

    tender_id: str = Field(description="The id of the tender this enrichment belongs to.")
    summary: str = Field(description="One short line: what is bought, by whom, where.")
    sector: str = Field(description="Top-level sector label from the procurement taxonomy.")
    subsector: str = Field(default="", description="Finer label from the taxonomy, or empty.")
    sector_code: str = Field(
        default="",
        description="The 2-digit CPV division behind `sector`, or empty when the sector is Unclassified.",
    )
    sector_confidence: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="How sure the backend is of `sector_code` (0 to 1); below the threshold: Unclassified.",
    )
    procurement_type: ProcurementType = Field(description="Works, Supply or Services.")
    keywords: list[str] = Field(
        default_factory=list, description="Up to 12 search-expansion terms (synonyms, item names)."
    )
    is_corrigendum: bool = Field(
        default=False, description="True when the notice amends or corrects an earlier one."
    )
    enrichment_source: str = Field(
        default="local", description="Which backend produced this: local, gemini or fallback."
    )


class EnrichedTender(BaseModel):
    """A record with its enrichment and content hash: the unit that is embedded and upserted."""

    record: TenderRecord
    enrichment: Enrichment
    content_hash: str
