"""Search results as CSV for spreadsheets: safe cells, streamed rows.

A cell a spreadsheet would run as a formula (one starting with ``= + - @``, or
a tab / carriage return that some programs strip first) gets a leading
apostrophe, as OWASP's CSV-injection guidance recommends; numbers are written
as numbers and are never touched.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator

from search_api.models import SearchResult

MAX_ROWS = 1000
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = ("rank", "id", "title", "buyer", "country", "region", "city", "sector", "procurement_type",
           "closing_date", "value_amount", "currency", "value_report", "report_currency", "is_corrigendum",
           "score", "url", "page")


def safe_cell(value: object) -> object:
    """Text that cannot start a formula; numbers, booleans and None as they are."""
    if value is None:
        return ""
    if isinstance(value, (bool, int, float)):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def row(rank: int, r: SearchResult, base_url: str) -> list[object]:
    from urllib.parse import quote

    return [rank, r.id, r.title, r.buyer, r.country, r.region, r.city, r.sector, r.procurement_type,
            r.closing_date.isoformat() if r.closing_date else "", r.value_amount, r.currency, r.value_report,
            r.report_currency, r.is_corrigendum, r.score, r.url, f"{base_url}/t/{quote(r.id, safe='/')}"]


def stream_csv(results: Iterable[SearchResult], base_url: str, chunk_rows: int = 100) -> Iterator[str]:
    """The header, then rows in chunks; UTF-8 BOM first so Excel reads non-ASCII text right."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow(COLUMNS)
    for i, r in enumerate(results, start=1):
        writer.writerow([safe_cell(v) for v in row(i, r, base_url)])
        if i % chunk_rows == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def filename(query: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", query.lower()).strip("-")[:40] or "search"
    return f"tenders-{slug}.csv"


def wants_csv(accept: str) -> bool:
    """True when the Accept header prefers text/csv to JSON (ties go to the first listed)."""
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        if media in ("text/csv", "application/json") and q > 0 and (best is None or q > best[0]):
            best = (q, position, media)
    return best is not None and best[2] == "text/csv"
