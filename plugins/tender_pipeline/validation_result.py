"""What validation produces: the buckets a row ends in, and how a row enters them.

Shared by ``validate`` (tables) and ``ocds.batch`` (OCDS files), which ``validate``
calls: kept apart from both so that neither imports the other back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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
    not_notices: int = 0  # quarantined rows that are no tender notice at all (an OCDS award-only release)

    @property
    def rows_read(self) -> int:
        return sum(c.rows for c in self.per_file.values())

    @property
    def duplicates(self) -> int:
        return sum(c.duplicates for c in self.per_file.values())


def error_reason(error: Mapping[str, Any]) -> tuple[str, str]:
    field_name = ".".join(str(p) for p in error.get("loc", ())) or "row"
    message = error.get("msg", "invalid")
    if error.get("type") == "missing" or (error.get("type") == "string_too_short"
                                          and error.get("input", None) in ("", None)):
        message = "required field is empty"
    return field_name, message.removeprefix("Value error, ")[:300]  # a reason quoting a 1 MB cell stays short


def keep_valid(result: ValidationResult, by_id: dict[str, int], item: dict) -> None:
    """Add a valid ``{"file", "row", "record", ...}`` item; an earlier one with its id becomes a duplicate."""
    tender_id = item["record"]["tender_id"]
    previous = by_id.get(tender_id)
    if previous is not None:
        superseded = result.valid[previous]
        result.per_file[superseded["file"]].duplicates += 1
        result.per_file[superseded["file"]].valid -= 1
        result.valid[previous] = None  # type: ignore[call-overload]
    by_id[tender_id] = len(result.valid)
    result.valid.append(item)
    result.per_file[item["file"]].valid += 1


def quarantine(result: ValidationResult, label: str, row: int, field_name: str, reason: str,
               mapped: Mapping[str, Any] | None = None) -> None:
    """Quarantine one row with its reason (cut to 300 characters) and, when mapped, its id and title."""
    mapped = mapped or {}
    result.quarantine.append({
        "file": label, "row": row, "field": field_name, "reason": reason[:300],
        "tender_id": str(mapped.get("tender_id", ""))[:200], "title": str(mapped.get("title", ""))[:200],
    })
    result.per_file[label].quarantined += 1


def quarantine_row(result: ValidationResult, label: str, row: int, error: Mapping[str, Any], mapped: dict) -> None:
    quarantine(result, label, row, *error_reason(error), mapped)
