"""Validation: map each row through its profile into a ``TenderRecord`` or quarantine it.

Every row ends in exactly one bucket — valid, duplicate (an earlier row with
the same tender_id in this batch, superseded by a later one) or quarantined
with file, row, field and reason — so the counts always add up.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from tender_pipeline import identity, staging
from tender_pipeline.models import TenderRecord
from tender_pipeline.profiles import Profile, detect_profile, get_profile
from tender_pipeline.readers import Table, UnreadableFileError, read_table
from tender_pipeline.staging import StagePath

log = logging.getLogger(__name__)

QUARANTINE_FIELDS = ("file", "row", "field", "reason", "tender_id", "title")


class BatchRejectedError(ValueError):
    """The batch is unusable as a whole (too many bad rows); retrying will not help."""


@dataclass
class FileCounts:
    rows: int = 0
    valid: int = 0
    duplicates: int = 0
    quarantined: int = 0
    profile: str = ""


@dataclass
class ValidationResult:
    valid: list[dict] = field(default_factory=list)  # {"file", "row", "record"}
    quarantine: list[dict] = field(default_factory=list)
    per_file: dict[str, FileCounts] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return sum(c.rows for c in self.per_file.values())

    @property
    def duplicates(self) -> int:
        return sum(c.duplicates for c in self.per_file.values())


def _reason(error: dict) -> tuple[str, str]:
    field_name = ".".join(str(p) for p in error.get("loc", ())) or "row"
    message = error.get("msg", "invalid")
    if error.get("type") == "missing" or (error.get("type") == "string_too_short"
                                          and error.get("input", None) in ("", None)):
        message = "required field is empty"
    return field_name, message.removeprefix("Value error, ")[:300]  # a reason quoting a 1 MB cell stays short


def _source_label(table: Table, display_name: str) -> str:
    return display_name or table.path.name


def validate_tables(tables: list[tuple[Table, str]], profiles: dict[str, Profile],
                    profile_name: str = "", limit: int | None = None) -> ValidationResult:
    """Validate rows of several files (in order); ``limit`` caps the rows read in total."""
    result = ValidationResult()
    by_id: dict[str, int] = {}
    remaining = limit
    for table, display in tables:
        label = _source_label(table, display)
        profile = (get_profile(profile_name, profiles) if profile_name
                   else detect_profile(table.headers, profiles, label))
        counts = result.per_file.setdefault(label, FileCounts(profile=profile.name))
        result.warnings.extend(table.warnings)
        context = {"dayfirst": profile.dayfirst}
        for row_number, raw in table.rows:
            if remaining is not None:
                if remaining <= 0:
                    break
                remaining -= 1
            counts.rows += 1
            mapped = profile.map_row(raw)
            try:
                record = TenderRecord.model_validate(mapped, context=context)
            except ValidationError as exc:
                for err in exc.errors()[:1]:
                    field_name, message = _reason(err)
                    result.quarantine.append({
                        "file": label, "row": row_number, "field": field_name, "reason": message,
                        "tender_id": str(mapped.get("tender_id", ""))[:200],
                        "title": str(mapped.get("title", ""))[:200],
                    })
                counts.quarantined += 1
                continue
            item = {"file": label, "row": row_number, "record": record.model_dump(mode="json")}
            previous = by_id.get(record.tender_id)
            if previous is not None:
                superseded = result.valid[previous]
                result.per_file[superseded["file"]].duplicates += 1
                result.per_file[superseded["file"]].valid -= 1
                result.valid[previous] = None  # type: ignore[call-overload]
            by_id[record.tender_id] = len(result.valid)
            result.valid.append(item)
            counts.valid += 1
    result.valid = [v for v in result.valid if v is not None]
    result.valid, superseded = identity.link_in_batch(result.valid)
    for item in superseded:  # an original replaced by its amendment in this batch
        result.per_file[item["file"]].valid -= 1
        result.per_file[item["file"]].duplicates += 1
    return result


def read_files(paths: list[tuple[Path, str]]) -> list[tuple[Table, str]]:
    """Read each (staged path, display name); unreadable files raise with their name."""
    tables = []
    for path, display in paths:
        try:
            tables.append((read_table(path), display))
        except UnreadableFileError as exc:
            raise UnreadableFileError(str(exc).replace(path.name, display, 1)) from None
    return tables


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A text cell a spreadsheet would run as a formula (``=cmd|' /C calc'!A0``) gets a leading quote.

    OWASP's advice for CSV files people open in Excel: the quarantine file is
    for people, and its cells come straight from untrusted input.
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def write_quarantine(path: StagePath, rows: list[dict]) -> None:
    """quarantine.csv: always written (header only when clean) so reruns replace it."""
    with staging.writer(path, "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=QUARANTINE_FIELDS)
        writer.writeheader()
        writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in rows)


def top_reasons(rows: list[dict], n: int = 5) -> list[dict]:
    counts = Counter(f"{r['field']}: {r['reason']}" for r in rows)
    return [{"reason": reason, "rows": count} for reason, count in counts.most_common(n)]


def check_threshold(result: ValidationResult, threshold: float, quarantine_path: StagePath) -> None:
    """Fail the batch when too large a share of rows is quarantined."""
    read = result.rows_read
    share = (len(result.quarantine) / read) if read else 0.0
    if read and share > threshold:
        reasons = "; ".join(f"{r['reason']} ({r['rows']} rows)" for r in top_reasons(result.quarantine, 3))
        raise BatchRejectedError(
            f"{len(result.quarantine)} of {read} rows ({share:.0%}) were quarantined, above the "
            f"{threshold:.0%} threshold (QUARANTINE_THRESHOLD). Top reasons: {reasons}. "
            f"Details per row: {quarantine_path}"
        )
