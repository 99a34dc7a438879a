"""What a search is restricted to (``Filters``), and the filters as a tantivy query."""

from __future__ import annotations

from dataclasses import dataclass

import tantivy

from tender_pipeline.lexical.keys import norm, words_of
from tender_pipeline.lexical.queries import term, value_range

TYPE_SYNONYMS = {"goods": "supply", "supplies": "supply", "work": "works", "service": "services"}


@dataclass
class Filters:
    """What a search is restricted to; every field optional. Dates are YYYYMMDD ints."""

    country: str | None = None
    region: str | None = None
    buyer: str | None = None
    sector: str | None = None
    procurement_type: str | None = None
    closing_min: int | None = None
    closing_max: int | None = None  # excludes unknown (0) closing dates
    value_min: float | None = None
    value_max: float | None = None  # excludes unknown (-1) values
    value_field: str = "value_amount"  # or value_report (reporting currency)
    exclude_corrigendum: bool = False
    ids: list[str] | None = None

    def active(self) -> bool:
        return any(v not in (None, False) for k, v in vars(self).items() if k != "value_field")


def buyer_words(buyer: str) -> list[str]:
    """The words a buyer filter requires in the buyer's name (the whole name when it has none)."""
    return words_of(buyer) or [norm(buyer)]


def closing_bounds(f: Filters) -> tuple[int, int | None] | None:
    """The closing-date range a filter asks for (None: no bound); unknown dates (0) are not "before"."""
    if f.closing_min is None and f.closing_max is None:
        return None
    lower = f.closing_min if f.closing_min is not None else 1
    return (max(lower, 1) if f.closing_max is not None else lower), f.closing_max


def value_bounds(f: Filters) -> tuple[float, float | None] | None:
    """The value range a filter asks for (None: no bound); unknown values (-1) never pass."""
    if f.value_min is None and f.value_max is None:
        return None
    return float(f.value_min if f.value_min is not None else 0.0), (float(f.value_max) if f.value_max is not None
                                                                    else None)


def filter_terms(f: Filters) -> list[tuple[str, str]]:
    """The exact-match filters as (field, term), as ``filter_query`` builds them."""
    out = [(name, norm(value)) for name, value in (("country_key", f.country), ("region_key", f.region),
                                                    ("sector_key", f.sector)) if value]
    if f.procurement_type:
        wanted = norm(f.procurement_type)
        out.append(("type_key", TYPE_SYNONYMS.get(wanted, wanted)))
    return out


def filter_query(schema: tantivy.Schema, f: Filters) -> tantivy.Query | None:
    """The filters as one query (None when there is nothing to filter on)."""
    must = [term(schema, name, value) for name, value in filter_terms(f)]
    if f.buyer:
        must.extend(term(schema, "buyer_words", w) for w in buyer_words(f.buyer))
    if (closing := closing_bounds(f)) is not None:
        must.append(value_range(schema, "closing_num", tantivy.FieldType.Integer, *closing))
    if (value := value_bounds(f)) is not None:
        must.append(value_range(schema, f.value_field, tantivy.FieldType.Float, *value))
    if f.exclude_corrigendum:
        must.append(term(schema, "is_corrigendum", 0))
    if f.ids is not None:
        must.append(tantivy.Query.term_set_query(schema, "id", list(f.ids)))
    if not must:
        return None
    return must[0] if len(must) == 1 else tantivy.Query.boolean_query([(tantivy.Occur.Must, q) for q in must])
