"""Search parameters → ``tender_pipeline.lexical.Filters``, answered by the lexical index.

Text filters compare case-insensitively (the index stores lower-cased keys);
the buyer filter needs every word of the value in the buyer's name, so 'tfl'
finds 'Transport for London (TfL)'. Dates and amounts are range queries on
the numeric fields; unknown closing dates and values never pass a bound.
No filter is ever sent to Chroma: there, every filter scans the collection.
"""

from __future__ import annotations

from datetime import date

from search_api.models import SearchParams
from tender_pipeline.lexical import Filters


def date_num(value: date) -> int:
    return int(value.strftime("%Y%m%d"))


class UnknownCurrency(ValueError):
    """``currency=`` names a currency the rates table cannot convert."""


def value_bounds(params: SearchParams, reporter) -> tuple[float | None, float | None]:
    """min/max value in the reporting currency: as given, or converted from ``currency=``."""
    if not params.currency or (params.min_value is None and params.max_value is None):
        return params.min_value, params.max_value
    if reporter is None:
        raise UnknownCurrency(f"currency={params.currency}: no rates table is loaded to convert it")
    currency = params.currency.upper()

    def convert(bound: float | None) -> float | None:
        if bound is None:
            return None
        got = reporter.table.convert(bound, currency, reporter.currency)
        if got is None:
            raise UnknownCurrency(f"currency={currency} has no rate in the rates table")
        return got

    return convert(params.min_value), convert(params.max_value)


def build_filters(params: SearchParams, today: date, ids: list[str] | None = None, reporter=None) -> Filters:
    """The filters of a search; ``ids`` restricts it to those tenders (alerts). Value bounds compare
    ``value_report`` (every notice's value in the reporting currency)."""
    value_min, value_max = value_bounds(params, reporter)
    closing_min = date_num(params.closing_after) if params.closing_after else None
    if params.open_only:
        closing_min = max(closing_min or 0, date_num(today))
    return Filters(
        country=params.country or None, region=params.region or None, buyer=params.buyer or None,
        sector=params.sector or None, procurement_type=params.procurement_type or None,
        closing_min=closing_min,
        closing_max=date_num(params.closing_before) if params.closing_before else None,
        value_min=value_min, value_max=value_max, value_field="value_report",
        exclude_corrigendum=not params.include_corrigendum,
        ids=list(ids) if ids is not None else None,
    )

