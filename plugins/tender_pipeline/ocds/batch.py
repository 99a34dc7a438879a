"""OCDS files through validation: one notice per OCID, every release accounted for.

A row here is one release (or one record) read from a file, so the counts add
up as for CSV rows: the releases of an OCID become one notice, credited to the
file and position of its latest release (``valid``), the earlier ones counted
as ``duplicates`` of their own files; when the OCID's compiled release does not
validate, each of its releases is quarantined with the reason. A release with
no ``tender`` section (planning, award or contract data only, like the Canada
BuyAndSell samples) is quarantined for its missing tender title but is not bad
input: it does not count towards QUARANTINE_THRESHOLD.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import ValidationError

from tender_pipeline.models import TenderRecord
from tender_pipeline.ocds.group import Group, Spill, date_key
from tender_pipeline.ocds.profile import OcdsProfile, ProfileChooser
from tender_pipeline.ocds.reader import read_entries
from tender_pipeline.validation_result import FileCounts, ValidationResult, error_reason, keep_valid, quarantine

log = logging.getLogger(__name__)

NO_TENDER = "no tender title: the release has no tender section (planning, award or contract data only)"


def _counts(result: ValidationResult, label: str, profile: str = "") -> FileCounts:
    counts = result.per_file.setdefault(label, FileCounts(profile=profile))
    if profile and not counts.profile:
        counts.profile = profile
    return counts


def _source_path(profile: OcdsProfile, field: str) -> str:
    """The expression(s) a canonical field is read from, for a quarantine reason."""
    source = profile.columns.get(field, "")
    return source if isinstance(source, str) else " / ".join(source[:2])


def _accept(group: Group, choose: ProfileChooser, result: ValidationResult, by_id: dict[str, int]) -> None:
    """Map, validate and count one OCID's group (its releases are already counted as rows)."""
    def reject(field: str, reason: str, mapped: dict | None = None, *, not_notice: bool = False) -> None:
        for member in group.members:
            quarantine(result, member.file, member.row, field, reason, mapped)
        result.not_notices += len(group.members) if not_notice else 0

    if group.compiled is None:
        reject("release", group.problem, {"tender_id": group.ocid})
        return
    profile = choose(group.ocid)
    for member in group.members:
        _counts(result, member.file, profile.name)
    mapped = profile.map_row(group.compiled)
    try:
        record = TenderRecord.model_validate(mapped, context={"dayfirst": profile.dayfirst})
    except ValidationError as exc:
        field, message = error_reason(exc.errors()[0])
        if field == "title" and not isinstance(group.compiled.get("tender"), dict):
            reject("title", NO_TENDER, mapped, not_notice=True)
            return
        reject(field, f"{message} ({_source_path(profile, field)})" if field in profile.columns else message,
               mapped)
        return
    for member in group.members[:-1]:  # earlier releases of the OCID: superseded by the latest
        result.per_file[member.file].duplicates += 1
    keep_valid(result, by_id, {"file": group.latest.file, "row": group.latest.row,
                               "record": record.model_dump(mode="json"), "versions": group.versions,
                               "released": date_key(group.compiled.get("date"))})


def validate_ocds(files: list[tuple[Path, str]], result: ValidationResult, by_id: dict[str, int],
                  profiles: dict[str, OcdsProfile], forced: str = "", limit: int | None = None) -> None:
    """Read, group, merge and validate OCDS files into ``result`` (``limit`` caps the releases read)."""
    choose = ProfileChooser(profiles, forced)
    spill = Spill()
    try:
        remaining = limit
        for path, label in files:
            counts = _counts(result, label)
            for entry in read_entries(path, label):
                if remaining is not None:
                    if remaining <= 0:
                        break
                    remaining -= 1
                counts.rows += 1
                if entry.kind == "invalid":
                    quarantine(result, label, entry.row, "release", entry.problem)
                elif not str(entry.data.get("ocid") or "").strip():
                    quarantine(result, label, entry.row, "ocid", "required field is empty (ocid)",
                               {"title": (entry.data.get("tender") or {}).get("title", "")
                                if isinstance(entry.data.get("tender"), dict) else ""})
                else:
                    spill.add(entry, label)
        for group in spill.groups():
            _accept(group, choose, result, by_id)
        log.info("OCDS: %d entries of %d file(s) in %d notices", spill.count, len(files),
                 sum(1 for v in result.valid if v is not None and "versions" in v))
    finally:
        spill.close()
