"""Request and response schemas (pydantic), with the examples /docs shows."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCORE_MEANING = (
    "Relevance in [0, 1], higher is better: "
    "`w × cosine similarity of query and notice embeddings (clamped at 0)` + "
    "`(1 − w) × lexical match` (the IDF-weighted share of the query's terms found in the notice; terms in "
    "title, buyer, place or reference count fully, elsewhere in the text partly; an exact reference number "
    "counts as a full match) + a small bonus when the notice is in the sector the query points at, capped "
    "at 1. `w` is RANK_VECTOR_WEIGHT (default 0.55). Scores compare results of one query; they are not "
    "calibrated probabilities."
)


CURRENCY_MEANING = (
    "ISO 4217 code of `min_value`/`max_value`. `min_value`/`max_value` compare in the reporting currency "
    "(REPORT_CURRENCY, default USD: every notice's value converted with the rates table) unless `currency=` is "
    "given; then the bounds are amounts in that currency, converted with the same table. It does not restrict "
    "results to notices quoted in that currency."
)


class SearchParams(BaseModel):
    """Query and filters; the same fields for GET (query string) and POST (JSON body).

    Unknown fields are ignored, so older clients that send extras keep working.
    """

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [
        {"q": "road rehabilitation", "limit": 10, "country": "Pakistan", "open_only": True},
        {"q": "PK-NHA-2026-1002"},
    ]})

    q: str = Field(min_length=1, max_length=500, description="Free-text query (1–500 characters).",
                   examples=["hospital beds and patient monitors"])
    limit: int = Field(20, ge=1, le=100, description="Results per page (1–100).")
    offset: int = Field(0, ge=0, le=1000, description="Results to skip (pagination over the ranked list).")
    country: str | None = Field(None, max_length=200, description="Country, case-insensitive exact match.",
                                examples=["Ghana"])
    region: str | None = Field(None, max_length=200, description="Region/state, case-insensitive exact match.",
                               examples=["Assam"])
    sector: str | None = Field(None, max_length=200, description="Sector label, case-insensitive exact match.",
                               examples=["Construction work"])
    procurement_type: str | None = Field(None, max_length=50, description="Works, Supply or Services "
                                         "(case-insensitive; 'goods' means Supply).", examples=["Works"])
    buyer: str | None = Field(None, max_length=300, description="Buyer name or part of it (e.g. an "
                              "acronym), case-insensitive.", examples=["TfL"])
    closing_after: date | None = Field(None, description="Closing on or after this ISO date.",
                                       examples=["2026-12-01"])
    closing_before: date | None = Field(None, description="Closing on or before this ISO date.",
                                        examples=["2027-01-31"])
    min_value: float | None = Field(None, ge=0, description="Minimum estimated value, in the reporting "
                                    "currency (REPORT_CURRENCY, default USD) unless `currency` is given; notices "
                                    "with no value, or in a currency without a rate, are excluded when set.",
                                    examples=[100000])
    max_value: float | None = Field(None, ge=0, description="Maximum estimated value, in the reporting "
                                    "currency unless `currency` is given; notices with no value, or in a "
                                    "currency without a rate, are excluded when set.", examples=[5000000])
    currency: str | None = Field(None, pattern=r"^[A-Za-z]{3}$", description=CURRENCY_MEANING, examples=["GBP"])
    include_corrigendum: bool = Field(True, description="Include corrigenda/addenda notices.")
    open_only: bool = Field(False, description="Only notices whose closing date is today or later "
                            "(unknown closing dates are excluded).")

    @model_validator(mode="after")
    def _ranges(self) -> SearchParams:
        if not self.q.strip():
            raise ValueError("q must contain a non-space character")
        if self.closing_after and self.closing_before and self.closing_after > self.closing_before:
            raise ValueError("closing_after is later than closing_before")
        if self.min_value is not None and self.max_value is not None and self.min_value > self.max_value:
            raise ValueError("min_value is larger than max_value")
        if self.currency:
            self.currency = self.currency.upper()
        return self


JSON_KINDS: dict[type, str] = {bool: "boolean", int: "integer", float: "number", date: "string (ISO date)"}


def _is_json_kind(value: object, kind: type) -> bool:
    if kind is date:
        return isinstance(value, str)  # not a number read as a Unix time
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, (int, float) if kind is float else kind)


class SearchBody(SearchParams):
    """POST /search: the same fields as JSON, where a value must have its JSON type.

    A query string carries only text, so GET converts ("true", "20"); a JSON body
    that sends ``"open_only": 0`` or ``"limit": true`` has a bug worth a 422.
    """

    @model_validator(mode="before")
    @classmethod
    def _exact_json_types(cls, data: object) -> object:
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                value = data.get(name)
                if value is None:
                    continue
                want = next((k for k in JSON_KINDS if field.annotation in (k, k | None)), None)
                if want is not None and not _is_json_kind(value, want):
                    raise ValueError(f"{name} must be a JSON {JSON_KINDS[want]}")
        return data


class TenderFields(BaseModel):
    """What a result card shows."""

    id: str = Field(examples=["PK-NHA-2026-1002"])
    title: str = Field(examples=["Consultancy for design and supervision of R71 road"])
    summary: str = ""
    buyer: str = Field("", examples=["National Highway Authority (NHA)"])
    country: str = Field("", examples=["Pakistan"])
    region: str = Field("", examples=["Islamabad Capital Territory"])
    city: str = Field("", examples=["Islamabad"])
    sector: str = Field("", description="The notice's sector, or 'Unclassified' when none was assigned with "
                        "confidence.", examples=["Architectural, construction, engineering and inspection services"])
    sector_code: str = Field("", description="The 2-digit CPV division behind `sector`; empty when Unclassified or "
                             "when the notice was classified before codes were kept.", examples=["71"])
    sector_confidence: float = Field(0.0, ge=0, le=1, description="How sure the enricher was of the sector, 0 to 1 "
                                     "(0 when it did not say).", examples=[0.86])
    subsector: str = ""
    procurement_type: str = Field("", examples=["Services"])
    closing_date: date | None = Field(None, examples=["2026-12-11"])
    value_amount: float | None = Field(None, description="Estimated value; null when unknown.",
                                       examples=[47683000.0])
    currency: str = Field("", examples=["PKR"])
    value_report: float | None = Field(None, description="The value in the reporting currency (converted with "
                                       "the rates table); null when the value or its currency is unknown.",
                                       examples=[170350.0])
    report_currency: str = Field("", description="The reporting currency (REPORT_CURRENCY).", examples=["USD"])
    url: str = Field("", examples=["https://tenders.example.org/pk/PK-NHA-2026-1002"])
    is_corrigendum: bool = False


class SearchResult(TenderFields):
    score: float = Field(ge=0, le=1, description=SCORE_MEANING, examples=[0.82])


class SearchResponse(BaseModel):
    query: str = Field(examples=["NHA road consultancy"])
    took_ms: float = Field(description="Server time for the search in milliseconds.", examples=[42.5])
    total_candidates: int = Field(description="Ranked candidates available for paging (an over-fetch, "
                                  "not the number of matching notices).", examples=[150])
    sector_preference: str | None = Field(None, description="Sector the query seems to point at (used "
                                          "only as a soft boost, never as a filter).")
    results: list[SearchResult]


class SectorCount(BaseModel):
    sector: str = Field(description="The label to filter on (`sector=`); 'Unclassified' for notices without a "
                        "confident sector.", examples=["Construction work"])
    code: str = Field("", description="Its CPV division (empty for Unclassified, or when not known).",
                      examples=["45"])
    count: int = Field(description="Notices in the index with this sector.", examples=[61])


class SectorList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "sectors": [{"sector": "Construction work", "code": "45", "count": 61},
                    {"sector": "Medical equipments, pharmaceuticals and personal care products", "code": "33",
                     "count": 40},
                    {"sector": "Unclassified", "code": "", "count": 7}],
        "unclassified": 7, "documents": 108, "computed_at": "2026-11-28T18:01:00+00:00"}]})

    sectors: list[SectorCount] = Field(description="Every sector present, by label, then Unclassified (always "
                                       "listed, with its count).")
    unclassified: int = Field(description="Notices without a confident sector (the Unclassified entry's count).")
    documents: int
    computed_at: str = Field(description="When the counts were aggregated (once per index version).")


class Tender(TenderFields):
    """The full stored record of one tender."""

    keywords: list[str] = Field(default_factory=list)
    category: str = ""
    cpv_codes: list[str] = Field(default_factory=list)
    notice_type: str = ""
    published_date: date | None = None
    source: str = ""
    enrichment_source: str = ""
    ingested_at: str = ""
    versions: int = Field(1, description="How many distinct contents this tender has had (1 = never changed; "
                          "each corrigendum or changed re-publication adds one).")
    description: str = Field("", description="The notice's description as published (empty when it had none).")
    document: str = Field("", deprecated=True, description="Deprecated: the text built for the embedding (the "
                          "title, generated `Sector:` / `Keywords:` lines, the first 1,500 characters of the "
                          "description). Internal, not the notice's words; use `title` and `description`.")


class AskIn(BaseModel):
    model_config = ConfigDict(extra="ignore",
                              json_schema_extra={"examples": [{"question": "What is the closing date?"}]})

    question: str = Field(min_length=1, max_length=500, description="A question about this tender (1–500 characters).")

    @model_validator(mode="after")
    def _not_blank(self) -> AskIn:
        if not self.question.strip():
            raise ValueError("question must contain a non-space character")
        return self


class AskPassage(BaseModel):
    index: int = Field(description="Passage number in the notice text.")
    text: str = Field(description="The passage, verbatim from this notice's stored text.")
    field: str = Field(description="Where it comes from: a stored field (closing_date, value, buyer, ...) or "
                       "'text' for the notice's title, summary and description.")
    start: int = Field(description="Character offset of the passage in `notice_text`.")
    end: int
    score: float | None = Field(None, description="Extractive ranking score (absent for Gemini citations).")


class AskOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "tender_id": "IN-GUWA-2026-1001", "question": "What is the closing date?",
        "answer": "Closing date: 15 December 2026 (2026-12-15); bids must be submitted by this deadline.",
        "stated": True, "mode": "extractive", "note": "",
        "passages": [{"index": 4, "text": "Closing date: 15 December 2026 (2026-12-15); bids must be submitted by "
                      "this deadline.", "field": "closing_date", "start": 173, "end": 258, "score": 0.81}]}]})

    tender_id: str
    question: str
    answer: str = Field(description="Extractive: the best passage. Gemini: a short answer grounded in the cited "
                        "passages, or 'Not stated in the notice.'")
    stated: bool = Field(description="False when the notice does not seem to contain the answer.")
    mode: Literal["extractive", "gemini"]
    passages: list[AskPassage] = Field(description="The passages the answer rests on, best first.")
    note: str = Field("", description="Why the answer is less certain, or why Gemini was not used.")
    usage: dict[str, float] = Field(default_factory=dict, description="Gemini requests, tokens and estimated "
                                    "cost of this answer, failed attempts included (empty offline).")
    notice_text: str = Field("", description="The notice text the positions refer to.")


class FeedbackIn(BaseModel):
    # strict: a JSON body says what it means (no `"position": false` read as 0, no `"rating": true` as 1)
    model_config = ConfigDict(extra="ignore", strict=True, json_schema_extra={"examples": [
        {"query": "solar street lights", "result_id": "IN-GUWA-2026-1001", "rating": 1, "position": 0,
         "session_id": "b3f1c2", "comment": "exactly what I needed"},
    ]})

    query: str = Field(min_length=1, max_length=500)
    result_id: str = Field(min_length=1, max_length=256)
    rating: Literal[1, -1] = Field(description="1 = relevant (thumbs up), -1 = not relevant.")
    position: int | None = Field(None, ge=0, le=10_000, description="0-based rank the result was shown at.")
    session_id: str | None = Field(None, max_length=100)
    comment: str | None = Field(None, max_length=2000)

    @field_validator("rating", mode="before")
    @classmethod
    def _no_boolean_rating(cls, value: object) -> object:
        """JSON true equals 1 to Python; a client sending it has a bug worth a 422."""
        if isinstance(value, bool):
            raise ValueError("rating must be the number 1 or -1, not a boolean")
        return value


class FeedbackAck(BaseModel):
    status: Literal["recorded"] = "recorded"
    received_at: str = Field(examples=["2026-11-28T20:00:00Z"])


class FeedbackCount(BaseModel):
    query: str
    result_id: str
    up: int
    down: int


class FeedbackSummary(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "total": 3, "queries": 1,
        "items": [{"query": "solar street lights", "result_id": "IN-GUWA-2026-1001", "up": 2, "down": 1}]}]})

    total: int = Field(description="Valid feedback lines in the file.")
    queries: int = Field(description="Distinct (normalised) queries.")
    items: list[FeedbackCount] = Field(description="Counts per query and result, most feedback first.")


class ErrorBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"error": "invalid_request", "detail": [{"loc": ["query", "limit"], "msg": "Input should be greater than "
                                                 "or equal to 1", "type": "greater_than_equal"}]}]})

    error: str = Field(examples=["chroma_unavailable"])
    detail: str | list = Field(examples=["Chroma at 127.0.0.1:8000 unavailable: connection refused"])


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"ready": True, "chroma": "ok", "embedder": "ok", "lexical": "ok", "lexical_documents": 240,
         "collection": "tenders"},
        {"ready": False, "chroma": "Chroma at 127.0.0.1:8000 unavailable: Could not connect to a Chroma server.",
         "embedder": "loading", "lexical": "ok", "lexical_documents": 240, "collection": "tenders"},
    ]})

    ready: bool
    chroma: str = Field(description="'ok' or the reason Chroma is not usable.")
    embedder: str = Field(description="'ok', 'loading' or the load error.")
    lexical: str = Field("ok", description="'ok' or the reason the lexical index cannot be opened.")
    lexical_documents: int = Field(0, description="Notices in the lexical index.")
    lexical_sync: str = Field("off", description="'off' (shared folder), 'ok', 'waiting for the first sync', or the "
                                                 "last error following LEXICAL_PUBLISH_URI (the last copy is served).")
    lexical_version_age_s: float | None = Field(None, description="Seconds since the writer published the copy "
                                                                  "held here (grows between batches).")
    lexical_checked_age_s: float | None = Field(None, description="Seconds since the published version was last "
                                                                  "checked successfully.")
    collection: str


class Stats(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "documents": 240, "last_ingest": "2026-11-28T18:00:12+00:00",
        "sectors": {"Construction work": 61, "Medical equipments, pharmaceuticals and personal care products": 40},
        "countries": {"Ghana": 48, "India": 48}, "procurement_types": {"Works": 70, "Supply": 90, "Services": 80},
        "computed_at": "2026-11-28T18:01:00+00:00"}]})

    documents: int
    last_ingest: str | None = Field(None, description="Latest ingested_at (UTC ISO) in the collection.")
    sectors: dict[str, int]
    countries: dict[str, int]
    procurement_types: dict[str, int] = Field(default_factory=dict)
    computed_at: str
