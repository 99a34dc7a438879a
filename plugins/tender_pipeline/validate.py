"""Validation: map each row through its profile into a ``TenderRecord`` or quarantine it.

Every row ends in exactly one bucket — valid, duplicate (an earlier row with
the same tender_id in this batch, superseded by a later one) or quarantined
with file, row, field and reason — so the counts always add up.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from pathlib import Path

from pydantic import ValidationError

from tender_pipeline import identity, staging
from tender_pipeline.models import TenderRecord
from tender_pipeline.profiles import Profile, detect_profile, get_profile, load_profiles
from tender_pipeline.readers import Table, UnreadableFileError, read_table
from tender_pipeline.staging import StagePath
from tender_pipeline.validation_result import FileCounts, ValidationResult, keep_valid, quarantine_row

log = logging.getLogger(__name__)

QUARANTINE_FIELDS = ("file", "row", "field", "reason", "tender_id", "title")


class BatchRejectedError(ValueError):
    """The batch is unusable as a whole (too many bad rows); retrying will not help."""


def _source_label(table: Table, display_name: str) -> str:
    return display_name or table.path.name


def _validate_tables(tables: list[tuple[Table, str]], profiles: dict[str, Profile], profile_name: str,
                     limit: int | None, result: ValidationResult, by_id: dict[str, int]) -> int | None:
    """Validate the rows of several files (in order) into ``result``; returns what is left of ``limit``."""
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
                quarantine_row(result, label, row_number, exc.errors()[0], mapped)
                continue
            keep_valid(result, by_id, {"file": label, "row": row_number, "record": record.model_dump(mode="json")})
    return remaining


def _finish(result: ValidationResult) -> ValidationResult:
    result.valid = [v for v in result.valid if v is not None]
    result.valid, superseded = identity.link_in_batch(result.valid)
    for item in superseded:  # an original replaced by its amendment in this batch
        result.per_file[item["file"]].valid -= 1
        result.per_file[item["file"]].duplicates += 1
    return result


def validate_tables(tables: list[tuple[Table, str]], profiles: dict[str, Profile],
                    profile_name: str = "", limit: int | None = None) -> ValidationResult:
    """Validate rows of several files (in order); ``limit`` caps the rows read in total."""
    result = ValidationResult()
    _validate_tables(tables, profiles, profile_name, limit, result, {})
    return _finish(result)


def validate_files(paths: list[tuple[Path, str]], profiles_path: str = "", profile_name: str = "",
                   limit: int | None = None) -> ValidationResult:
    """Validate staged files of every supported format: tables (CSV, Excel), then OCDS JSON files.

    ``profile_name`` forces a column profile on the tables or an OCDS profile on
    the OCDS files, whichever kind it names.
    """
    from tender_pipeline.ocds import batch, is_ocds_file
    from tender_pipeline.ocds.profile import load_ocds_profiles

    profiles, ocds_profiles = load_profiles(profiles_path), load_ocds_profiles(profiles_path)
    if profile_name and profile_name not in profiles and profile_name not in ocds_profiles:
        get_profile(profile_name, {**profiles, **ocds_profiles})  # raises, naming every profile
    forced_ocds = profile_name if profile_name in ocds_profiles else ""
    result, by_id = ValidationResult(), dict[str, int]()
    tables = read_files([(p, d) for p, d in paths if not is_ocds_file(d or p.name)])
    remaining = _validate_tables(tables, profiles, "" if forced_ocds else profile_name, limit, result, by_id)
    ocds_files = [(p, d or p.name) for p, d in paths if is_ocds_file(d or p.name)]
    if ocds_files:
        batch.validate_ocds(ocds_files, result, by_id, ocds_profiles, forced_ocds, remaining)
    return _finish(result)


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
    """Fail the batch when too large a share of rows is quarantined (rows that are no notice at all aside)."""
    read = result.rows_read - result.not_notices  # a release with no tender section is out of scope, not bad input
    share = ((len(result.quarantine) - result.not_notices) / read) if read else 0.0
    if read and share > threshold:
        reasons = "; ".join(f"{r['reason']} ({r['rows']} rows)" for r in top_reasons(result.quarantine, 3))
        raise BatchRejectedError(
            f"{len(result.quarantine) - result.not_notices} of {read} rows ({share:.0%}) were quarantined, above the "
            f"{threshold:.0%} threshold (QUARANTINE_THRESHOLD). Top reasons: {reasons}. "
            f"Details per row: {quarantine_path}"
        )
