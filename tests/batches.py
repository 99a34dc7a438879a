"""CSV batch files for the ingestion tests: read the sample's rows, write a slice of them as a batch.

One writer, so every test hands the pipeline the same bytes a real export has
(UTF-8, the header first, csv's CRLF line ends), on disk or as an S3 body.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

SAMPLE = Path(__file__).resolve().parent / "fixtures" / "sample_tenders.csv"


def read_rows(path: Path) -> list[dict]:
    """Every row of a CSV file, as dicts keyed by its header."""
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_table(path: Path) -> tuple[list[str], list[dict]]:
    """The header and the rows of a CSV file."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def sample_chunks(size: int, count: int) -> tuple[list[str], list[list[dict]]]:
    """The sample's header and its first ``count`` slices of ``size`` rows (disjoint batches)."""
    header, rows = read_table(SAMPLE)
    return header, [rows[i * size:(i + 1) * size] for i in range(count)]


def csv_bytes(rows: list[dict], header: list[str] | None = None) -> bytes:
    """``rows`` as a CSV file's content; the header defaults to the first row's keys."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header or list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def write_rows(path: Path, rows: list[dict], header: list[str] | None = None) -> Path:
    """Write ``rows`` as a CSV batch at ``path`` (its folder created); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(csv_bytes(rows, header))
    return path
