"""Search filters → a Chroma ``where`` clause.

Text filters compare case-insensitively: country, region and buyer through the
lower-case ``*_key`` fields the pipeline stores; sector and procurement type
(stored as labels) by resolving the value against the labels present in the
collection. Dates and amounts use the numeric ``closing_num`` / ``value_amount``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from search_api.models import SearchParams

TYPE_SYNONYMS = {"goods": "supply", "supplies": "supply", "work": "works", "service": "services"}


def date_num(value: date) -> int:
    return int(value.strftime("%Y%m%d"))


def _norm(value: str) -> str:
    return " ".join(value.split()).lower()


def resolve_label(value: str, known: list[str]) -> list[str]:
    """The stored labels equal to ``value`` ignoring case and spacing (the value itself if none)."""
    wanted = _norm(value)
    wanted = TYPE_SYNONYMS.get(wanted, wanted)
    found = [label for label in known if _norm(label) == wanted]
    return found or [value]


def resolve_buyer(value: str, known_keys: list[str]) -> list[str]:
    """buyer_key values that equal or contain the value (so 'tfl' finds 'transport for london (tfl)')."""
    wanted = _norm(value)
    exact = [k for k in known_keys if k == wanted]
    if exact:
        return exact
    words = wanted.split()
    return [k for k in known_keys if all(_contains_word(k, w) for w in words)] or [wanted]


def _contains_word(text: str, word: str) -> bool:
    import re

    return re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", text) is not None


def build_where(params: SearchParams, facets: dict[str, list[str]], today: date) -> dict[str, Any] | None:
    """Chroma where clause for the params; ``facets`` holds the known sectors/types/buyer keys."""
    clauses: list[dict[str, Any]] = []

    def one_of(field: str, values: list[str]) -> None:
        clauses.append({field: values[0]} if len(values) == 1 else {field: {"$in": values}})

    if params.country:
        one_of("country_key", [_norm(params.country)])
    if params.region:
        one_of("region_key", [_norm(params.region)])
    if params.buyer:
        one_of("buyer_key", resolve_buyer(params.buyer, facets.get("buyer_keys", [])))
    if params.sector:
        one_of("sector", resolve_label(params.sector, facets.get("sectors", [])))
    if params.procurement_type:
        one_of("procurement_type", resolve_label(params.procurement_type, facets.get("procurement_types", [])))
    if params.closing_after:
        clauses.append({"closing_num": {"$gte": date_num(params.closing_after)}})
    if params.closing_before:
        clauses.append({"closing_num": {"$lte": date_num(params.closing_before)}})
        clauses.append({"closing_num": {"$gt": 0}})  # unknown closing dates are not "before"
    if params.open_only:
        clauses.append({"closing_num": {"$gte": date_num(today)}})
    if params.min_value is not None:
        clauses.append({"value_amount": {"$gte": float(params.min_value)}})
    if params.max_value is not None:
        clauses.append({"value_amount": {"$lte": float(params.max_value)}})
        clauses.append({"value_amount": {"$gte": 0.0}})  # -1 marks an unknown value
    if not params.include_corrigendum:
        clauses.append({"is_corrigendum": False})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
