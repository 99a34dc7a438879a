"""Read a CSV or Excel batch into rows keyed by normalised header, with row numbers.

Row numbers are spreadsheet-style (the header is row 1) so a user can find a
quarantined row in the file they sent. CSV is tried as UTF-8 (with or without
BOM) and falls back to cp1252 with a warning.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tender_pipeline.ocds import OCDS_SUFFIXES
from tender_pipeline.profiles import norm_header

log = logging.getLogger(__name__)
csv.field_size_limit(16 * 1024 * 1024)

TABLE_SUFFIXES = (".csv", ".xlsx")
SUPPORTED_SUFFIXES = TABLE_SUFFIXES + OCDS_SUFFIXES  # every batch file fetch takes (OCDS: tender_pipeline.ocds)


class UnreadableFileError(ValueError):
    """A batch file that cannot be read at all (wrong type, broken workbook, empty)."""


@dataclass
class Table:
    path: Path
    headers: list[str]
    rows: list[tuple[int, dict[str, str]]]
    warnings: list[str] = field(default_factory=list)
    encoding: str = "utf-8"


def _decode(raw: bytes, label: str) -> tuple[str, str, list[str]]:
    try:
        return raw.decode("utf-8-sig"), "utf-8", []
    except UnicodeDecodeError as exc:
        warning = (f"{label}: not valid UTF-8 (byte {exc.start}); read as cp1252 — "
                   "check accented characters")
        log.warning(warning)
        return raw.decode("cp1252", errors="replace"), "cp1252", [warning]


def _keyed(headers: list[str], values: list[str]) -> dict[str, str]:
    keys = [norm_header(h) for h in headers]
    row = {}
    for key, value in zip(keys, values, strict=False):
        if key and key not in row:
            row[key] = value
    return row


def _check_last_record(lines: list[str], first_line: int, row: int, label: str) -> None:
    """A quote opened and never closed makes the csv module read the rest of the file as one field.

    That would silently swallow every later row, so it is an error naming the
    row and line. Only a record that ran to the end of the file over several
    lines can be one; ``strict`` parsing of just those lines tells.
    """
    try:
        for _ in csv.reader(lines[first_line - 1:], strict=True):
            pass
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise UnreadableFileError(
                f"{label}: row {row}: a quote opened on line {first_line} is never closed, so lines "
                f"{first_line}-{len(lines)} would read as one field; fix or remove the stray quote"
            ) from None


def read_csv(path: Path) -> Table:
    text, encoding, warnings = _decode(path.read_bytes(), path.name)
    lines = io.StringIO(text, newline="").readlines()  # the csv module's own line split
    reader = csv.reader(lines)
    try:
        headers = next(reader)
    except StopIteration:
        raise UnreadableFileError(f"{path.name}: the file is empty (no header row)") from None
    rows: list[tuple[int, dict[str, str]]] = []
    index, first_line, last_line = 1, 1, reader.line_num
    for index, values in enumerate(reader, start=2):
        first_line, last_line = last_line + 1, reader.line_num
        if not any(v.strip() for v in values):
            continue
        rows.append((index, _keyed(headers, values)))
    if index > 1 and last_line == len(lines) and last_line > first_line:
        _check_last_record(lines, first_line, index, path.name)
    return Table(path, headers, rows, warnings, encoding)


def read_xlsx(path: Path) -> Table:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a broken workbook
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise UnreadableFileError(f"{path.name}: not a readable .xlsx workbook ({reason})") from None
    try:
        values_iter: Iterator[tuple[Any, ...]] = workbook.worksheets[0].iter_rows(values_only=True)
        first = next(values_iter, None)
        if first is None:
            raise UnreadableFileError(f"{path.name}: the first sheet is empty")
        headers = ["" if v is None else str(v) for v in first]
        rows = []
        for index, values in enumerate(values_iter, start=2):
            cells = ["" if v is None else (v.isoformat() if hasattr(v, "isoformat") else str(v))
                     for v in values]
            if any(c.strip() for c in cells):
                rows.append((index, _keyed(headers, cells)))
    finally:
        workbook.close()
    return Table(path, headers, rows)


def read_table(path: Path) -> Table:
    """Read one batch file by its suffix."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv(path)
    if suffix == ".xlsx":
        return read_xlsx(path)
    raise UnreadableFileError(
        f"{path.name}: unsupported file type {suffix or '(none)'}; expected one of {', '.join(TABLE_SUFFIXES)}"
    )
