"""Stream the releases and records out of an OCDS file, one at a time.

A release package or record package may be a gigabyte: it is never loaded
whole. ``.json`` files are read with ijson (yajl's C parser): a first pass
looks at the top-level keys to tell a package from a bare release (and keeps
the package metadata found before the array), a second pass yields each element
of ``releases`` / ``records``. ``.jsonl`` files hold one JSON value per line
(a release, a record, or a whole package). ``.gz`` of either is decompressed on
the fly. Each entry carries its position in the file (``row``: 1 for the first
release or record), so a quarantined one can be found again.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import ijson

from tender_pipeline.readers import UnreadableFileError

PACKAGE_KEYS = ("uri", "publishedDate", "publisher", "version", "license")


@dataclass
class Entry:
    """One release (``kind="release"``), one record (``"record"``) or something that is neither."""

    kind: str
    row: int
    data: Any
    package: dict[str, Any] = field(default_factory=dict)
    problem: str = ""  # kind "invalid": why it is not a release or record


def _open(path: Path) -> IO[bytes]:
    return cast(IO[bytes], gzip.open(path, "rb")) if path.name.lower().endswith(".gz") else path.open("rb")


def _is_lines(path: Path) -> bool:
    return path.name.lower().removesuffix(".gz").endswith((".jsonl", ".ndjson"))


def classify(value: Any) -> str:
    """What a JSON value is in OCDS terms: release, record, release-package, record-package or ''."""
    if not isinstance(value, dict):
        return ""
    if isinstance(value.get("records"), list):
        return "record-package"
    if isinstance(value.get("releases"), list):
        return "record" if "ocid" in value else "release-package"
    return "release" if "ocid" in value else ""


def _metadata(package: dict[str, Any]) -> dict[str, Any]:
    return {k: package[k] for k in PACKAGE_KEYS if k in package}


def _entries(value: Any, row: int, package: dict[str, Any]) -> Iterator[Entry]:
    """The releases or records in one JSON value (a line, or a whole small file)."""
    kind = classify(value)
    if kind in ("release", "record"):
        yield Entry(kind, row, value, package)
    elif kind in ("release-package", "record-package"):
        meta = _metadata(value)
        key, item_kind = ("records", "record") if kind == "record-package" else ("releases", "release")
        for offset, item in enumerate(value[key]):
            yield _checked(item, item_kind, row + offset, meta)
    else:
        yield Entry("invalid", row, value, package,
                    "not an OCDS release, record, release package or record package")


def _checked(item: Any, kind: str, row: int, package: dict[str, Any]) -> Entry:
    if classify(item) == kind:
        return Entry(kind, row, item, package)
    return Entry("invalid", row, item, package, f"an element of the package's {kind}s array that is not a {kind}")


def _sniff(path: Path) -> tuple[str, dict[str, Any]]:
    """('releases' | 'records' | 'item' | '', package metadata found before the array).

    '' means a bare release or record (no array key at the top, or ``ocid``
    before ``releases``): small enough to read whole.
    """
    meta: dict[str, Any] = {}
    builder: ijson.ObjectBuilder | None = None
    key, depth = "", 0
    with _open(path) as fh:
        for prefix, event, value in ijson.parse(fh, use_float=True):
            if builder is not None:  # building one metadata value
                builder.event(event, value)
                depth += (event in ("start_map", "start_array")) - (event in ("end_map", "end_array"))
                if depth == 0:
                    meta[key], builder = builder.value, None
                continue
            if prefix == "" and event == "start_array":
                return "item", meta
            if prefix == "" and event == "map_key":
                if value in ("releases", "records"):
                    return ("" if "ocid" in meta else value), meta
                key = value
                if key in PACKAGE_KEYS:
                    builder = ijson.ObjectBuilder()
                elif key == "ocid":
                    meta["ocid"] = True
    return "", meta


def _stream(path: Path, prefix: str, meta: dict[str, Any]) -> Iterator[Entry]:
    kind = "record" if prefix == "records" else "release"
    with _open(path) as fh:
        for row, item in enumerate(ijson.items(fh, f"{prefix}.item", use_float=True), start=1):
            yield _checked(item, kind, row, meta)


def _lines(path: Path) -> Iterator[Entry]:
    row = 0
    with _open(path) as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except ValueError as exc:
                row += 1
                yield Entry("invalid", row, None, {}, f"line {number} is not valid JSON ({exc})")
                continue
            for entry in _entries(value, row + 1, {}):
                row = entry.row
                yield entry


def read_entries(path: Path, label: str = "") -> Iterator[Entry]:
    """Every release/record of an OCDS file, in file order, streamed; unreadable JSON raises with the file name."""
    label = label or path.name
    done = 0
    try:
        if _is_lines(path):
            for entry in _lines(path):
                done = entry.row
                yield entry
            return
        prefix, meta = _sniff(path)
        if prefix == "item":  # a top-level array: of releases, records or packages
            with _open(path) as fh:
                for item in ijson.items(fh, "item", use_float=True):
                    for entry in _entries(item, done + 1, {}):
                        done = entry.row
                        yield entry
        elif prefix:
            for entry in _stream(path, prefix, _metadata(meta)):
                done = entry.row
                yield entry
        else:  # a bare release or record: small enough to read whole
            with _open(path) as fh:
                value = json.load(fh)
            yield from _entries(value, 1, {})
    except (ijson.JSONError, ValueError, EOFError, OSError) as exc:
        if isinstance(exc, UnreadableFileError):
            raise
        where = f" after entry {done}" if done else ""
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise UnreadableFileError(f"{label}: not readable OCDS JSON{where} ({reason})") from None
