"""Gather the releases of each OCID and merge them into one compiled release.

A publisher sends a new release for every change of a contracting process
(tender, amendment, award, ...), possibly in different files or pages, and a
release may carry only what changed. The standard's answer is the merge
routine: sort the releases of an OCID by ``date`` and let later values win
(``ocdsmerge``, the reference implementation, with the 1.1 schema's merge rules
shipped in ``merge_rules.json``). Of releases with the same ``date``, one in a
newer OCDS ``version`` wins (the same release republished in the upgraded form,
as in the UK Contracts Finder samples: 1.0 and 1.1 copies), then the one read last.

So nothing has to fit in memory, entries go to a SQLite file in a temporary
folder as they are read, and come back grouped by OCID (in the order each
OCID first appeared), one group in memory at a time. A record counts as one
entry: its ``compiledRelease`` when present, otherwise its own releases merged.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import ocdsmerge
from ocdsmerge.exceptions import OCDSMergeError, OCDSMergeWarning

from tender_pipeline.ocds.reader import Entry

AMENDING_TAGS = ("tenderAmendment", "tenderUpdate")


@lru_cache(maxsize=1)
def merge_rules() -> dict[tuple[str, ...], str]:
    data = json.loads(resources.files("tender_pipeline.ocds").joinpath("merge_rules.json").read_text("utf-8"))
    return {tuple(path.split(".")): rule for rule in ("omitWhenMerged", "wholeListMerge") for path in data[rule]}


def date_key(value: Any) -> str:
    """A sortable UTC form of a release ``date`` (ISO 8601 with any offset); '' when missing or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return ""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return value.strip()
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def version_key(entry: Entry) -> str:
    """A sortable OCDS version of an entry: its own ``version``, else its package's, else 1.0."""
    text = str(entry.data.get("version") or entry.package.get("version") or "1.0")
    parts = [int(p) if p.isdigit() else 0 for p in text.split(".")[:3]]
    return ".".join(f"{p:04d}" for p in parts + [0] * (3 - len(parts)))


@dataclass
class Member:
    """Where one entry of a group came from."""

    file: str
    row: int


@dataclass
class Group:
    """The entries of one OCID, merged: ``compiled`` is None when merging failed (``problem`` says why)."""

    ocid: str
    members: list[Member]
    compiled: dict[str, Any] | None
    versions: int
    tags: list[str] = field(default_factory=list)
    problem: str = ""

    @property
    def latest(self) -> Member:
        return self.members[-1]


def _tags(value: Any) -> list[str]:
    return [t for t in value if isinstance(t, str)] if isinstance(value, list) else []


def _compile(releases: list[dict[str, Any]]) -> dict[str, Any]:
    """The standard's compiled release of ``releases`` (already in date order)."""
    if len(releases) == 1:
        return releases[0]
    merged = ocdsmerge.CompiledRelease(merge_rules=merge_rules())
    with warnings.catch_warnings():  # duplicate ids in an array: merged as the reference implementation does
        warnings.simplefilter("ignore", OCDSMergeWarning)
        for release in releases:
            merged.append(release)
    return merged.asdict()


def _record_view(record: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """(release-like dict, release ids, tags) of a record: its compiledRelease, else its full releases merged."""
    releases = [r for r in record.get("releases") or [] if isinstance(r, dict)]
    ids = [str(r["id"]) for r in releases if r.get("id") is not None]
    tags = [t for r in releases for t in _tags(r.get("tag"))]
    compiled = record.get("compiledRelease")
    if isinstance(compiled, dict):
        return compiled, ids or [str(compiled.get("id", ""))], tags
    full = sorted((r for r in releases if "ocid" in r or "tender" in r),
                  key=lambda r: date_key(r.get("date")))
    if not full:
        raise ValueError("the record has no compiledRelease and only linked releases (no release data)")
    return _compile(full), ids, tags


class Spill:
    """The entries read so far, on disk, grouped by OCID on the way out."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="ocds-", dir=folder)
        self.db = sqlite3.connect(Path(self._dir.name) / "entries.sqlite")
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE entries (seq INTEGER PRIMARY KEY, ocid TEXT, datekey TEXT, version TEXT, "
                        "file TEXT, row INTEGER, kind TEXT, body TEXT, package TEXT)")
        self.count = 0

    def add(self, entry: Entry, file: str) -> None:
        data = entry.data
        ocid = str(data.get("ocid", ""))
        when = data.get("date") if entry.kind == "release" else (data.get("compiledRelease") or {}).get("date")
        self.db.execute("INSERT INTO entries (ocid, datekey, version, file, row, kind, body, package) "
                        "VALUES (?,?,?,?,?,?,?,?)",
                        (ocid, date_key(when), version_key(entry), file, entry.row, entry.kind,
                         json.dumps(data, ensure_ascii=False), json.dumps(entry.package, ensure_ascii=False)))
        self.count += 1

    def groups(self) -> Iterator[Group]:
        """Each OCID's entries merged, OCIDs in order of first appearance, entries by date, version, order read."""
        self.db.execute("CREATE INDEX IF NOT EXISTS by_ocid ON entries (ocid, datekey, version, seq)")
        rows = self.db.execute(
            "SELECT e.ocid, e.file, e.row, e.kind, e.body, e.package FROM entries e "
            "JOIN (SELECT ocid, MIN(seq) AS first FROM entries GROUP BY ocid) g ON g.ocid = e.ocid "
            "ORDER BY g.first, e.datekey, e.version, e.seq")
        current: list[tuple] = []
        for row in rows:
            if current and row[0] != current[0][0]:
                yield _group(current)
                current = []
            current.append(row)
        if current:
            yield _group(current)

    def close(self) -> None:
        self.db.close()
        self._dir.cleanup()


def _group(rows: list[tuple]) -> Group:
    ocid = rows[0][0]
    members = [Member(file, row) for _, file, row, *_ in rows]
    releases, ids, tags = [], [], []
    try:
        for _, _, _, kind, body, _ in rows:
            data = json.loads(body)
            if kind == "record":
                view, record_ids, record_tags = _record_view(data)
                releases.append(view)
                ids += record_ids
                tags += record_tags + [t for t in _tags(view.get("tag")) if t != "compiled"]
            else:
                releases.append(data)
                ids.append(str(data.get("id", "")))
                tags += _tags(data.get("tag"))
        compiled = dict(_compile(releases))
    except (OCDSMergeError, ValueError, TypeError, AttributeError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        return Group(ocid, members, None, len(rows), problem=f"the releases of this OCID cannot be merged: {reason}")
    ordered_tags = list(dict.fromkeys(tags))
    compiled["tag"] = ordered_tags or _tags(compiled.get("tag"))
    compiled["_package"] = json.loads(rows[-1][5])  # metadata of the package the latest entry came from
    return Group(ocid, members, compiled, max(1, len(set(ids))), ordered_tags)
