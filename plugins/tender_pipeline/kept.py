"""What staging keeps for the live notices once their run folders are pruned: one sealed part per upsert.

Why: Chroma keeps ids, vectors and the fields maintenance reads, and the
lexical index is a search structure; the enriched records are what both can be
rebuilt from when a disk is lost. A run folder holds much more (the raw batch,
valid rows, quarantine, every stage's files) and is pruned after
``STAGING_RETENTION_DAYS``; what a live notice needs is sealed at the end of
``upsert`` into ``<STAGING_URI>/_kept/``:

* ``<part>.json``: the manifest, written last (run, ingested_at, rows, generation);
* ``<part>.g<N>.jsonl``: the rows the run wrote (locally a hard link to its ``enriched.jsonl``);
* ``<part>.g<N>.npy``: their float32 vectors (a hard link to ``embeddings.npy``);
* ``<part>.g<N>.ids.npy``: per row an id hash, the closing date and the ingest time (20 bytes).

``<part>`` is ``<ingest stamp>-<run>``, so parts sort in write order and a rerun
of a run adds a part instead of replacing one. A row is live until a later part
holds the same id (a newer write) or retention retires it, by the rule
``lifecycle.retire`` applies to the stores. Pruning (``staging_retention``)
deletes parts with no live row and rewrites a part as generation N+1 once fewer
than ``TRIM_BELOW`` of its rows are live, so the rows kept stay below
``1 / TRIM_BELOW`` times the live set and no step copies more than one part.

A row is either an enriched row of the pipeline (``record``, ``enrichment``,
``content_hash``, ``versions``...) or, in a part rebuilt from the stores after a
lost staging disk, a stored notice (``tender_id``, ``meta``, ``text``,
``ingested_at``): ``notice_payload`` turns either into what the stores hold.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from tender_pipeline import identity, staging, store
from tender_pipeline.documents import document_text
from tender_pipeline.enrich import refine
from tender_pipeline.lexical.cards import card_extras
from tender_pipeline.models import EnrichedTender
from tender_pipeline.money import Reporter

log = logging.getLogger(__name__)

KEPT = "_kept"
SEALED = "sealed.json"  # in a run folder: its rows were sealed (or it wrote none)
TRIM_BELOW = 2 / 3  # a part whose live share fell below this is rewritten with its live rows only
INDEX_DTYPE = np.dtype([("h", "<u8"), ("closing", "<i4"), ("ingested", "<i8")])
STAMP = "%Y%m%dT%H%M%S%fZ"


def id_hash(tender_id: str) -> int:
    """64 bits of BLAKE2b: two ids of 2 million collide with odds ~1e-7 (then the older row counts as replaced)."""
    return int.from_bytes(hashlib.blake2b(tender_id.encode("utf-8"), digest_size=8).digest(), "little")


def kept_dir(staging_uri: str | staging.StagePath) -> staging.StagePath:
    return staging.location(staging_uri) / KEPT


# --------------------------------------------------------------------------- one notice
def notice_payload(row: dict[str, Any], when: datetime, reporter: Reporter | None,
                   item: EnrichedTender | None = None) -> tuple[str, dict, str]:
    """(id, card, document text) of a kept row: what ``upsert`` writes (through this function) and what
    the rebuilds replay, so the two cannot drift apart. ``item``: the row already validated. The card is the
    lexical index's, with the published description and the sector's code and confidence (``lexical.cards``)."""
    if "meta" in row:  # a stored notice (a part rebuilt from the stores)
        return row["tender_id"], dict(row["meta"]), row["text"]
    item = refine.apply(item or EnrichedTender.model_validate(row), row)  # the sector the embed stage decided
    meta = identity.with_versions(store.to_metadata(item, when, reporter), row) | card_extras(item)
    return item.record.tender_id, meta, document_text(item)


def _row_key(row: dict[str, Any], when: datetime) -> tuple[str, int, int]:
    """(id, closing YYYYMMDD or 0, ingest epoch seconds) of a kept row, for its part's index."""
    if "meta" in row:
        meta = row["meta"]
        return row["tender_id"], int(meta.get("closing_num") or 0), int(meta.get("ingested_ts") or when.timestamp())
    record = row["record"]
    closing = record.get("closing_date") or ""
    return record["tender_id"], int(closing.replace("-", "")[:8] or 0), int(when.timestamp())


def index_of(rows: Iterable[dict[str, Any]], when: datetime) -> np.ndarray:
    keys = [_row_key(r, when) for r in rows]
    out = np.empty(len(keys), dtype=INDEX_DTYPE)
    for i, (tid, closing, ingested) in enumerate(keys):
        out[i] = (id_hash(tid), closing, ingested)
    return out


# --------------------------------------------------------------------------- parts
@dataclass(frozen=True)
class Part:
    root: staging.StagePath  # the _kept folder
    name: str
    manifest: dict[str, Any]

    @property
    def ingested_at(self) -> datetime:
        return datetime.fromisoformat(self.manifest["ingested_at"])

    def file(self, kind: str) -> staging.StagePath:
        return self.root / self.manifest["files"][kind]

    def index(self) -> np.ndarray:
        with staging.local_copy(self.file("index")) as path:
            return np.load(path)

    def rows(self) -> Iterator[dict[str, Any]]:
        return staging.read_jsonl(self.file("rows"))

    def files(self) -> list[staging.StagePath]:
        return [self.root / name for name in self.manifest["files"].values()]


def _files(name: str, generation: int) -> dict[str, str]:
    return {"rows": f"{name}.g{generation}.jsonl", "vectors": f"{name}.g{generation}.npy",
            "index": f"{name}.g{generation}.ids.npy"}


def parts(staging_uri: str | staging.StagePath) -> list[Part]:
    """Every sealed part, oldest write first."""
    root = kept_dir(staging_uri)
    found = []
    for path in staging.listdir(root):
        if path.name.endswith(".json") and not path.name.startswith("."):
            with contextlib.suppress(FileNotFoundError):  # dropped by a concurrent prune
                found.append(Part(root, path.name[:-len(".json")], staging.read_json(path)))
    return sorted(found, key=lambda p: (p.manifest["ingested_at"], p.name))


def _write_index(path: staging.StagePath, index: np.ndarray) -> None:
    with staging.writer(path, "wb") as fh:
        np.save(fh, index)


def _link_or_copy(src: staging.StagePath, dest: staging.StagePath) -> None:
    """A hard link when both are local (no bytes copied; the run folder's name goes with the run), else a copy."""
    if isinstance(src, Path) and isinstance(dest, Path):
        dest.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.link(src, dest)
            return
    with staging.local_copy(src) as local:
        staging.put_file(Path(local), dest)


def seal(run: staging.StagePath, when: datetime) -> str | None:
    """Keep what the run wrote to the stores (its enriched rows and vectors) in ``_kept``; the part's name.

    Called by ``upsert`` once both stores hold the rows, with the ingest time it wrote into their metadata."""
    rows = int(staging.read_json(run / "enrich.json").get("enriched", 0))
    name = None
    if rows:
        name = f"{when.astimezone(UTC).strftime(STAMP)}-{run.name}"
        root = kept_dir(run.parent)
        files = _files(name, 0)
        _link_or_copy(run / "enriched.jsonl", root / files["rows"])
        _link_or_copy(run / "embeddings.npy", root / files["vectors"])
        _write_index(root / files["index"], index_of(staging.read_jsonl(run / "enriched.jsonl"), when))
        staging.write_json(root / f"{name}.json", {
            "format": 1, "run": run.name, "ingested_at": when.astimezone(UTC).isoformat(), "rows": rows,
            "generation": 0, "files": files})
    staging.write_json(run / SEALED, {"part": name, "rows": rows})
    return name


def write_part(staging_uri: str | staging.StagePath, name: str, run: str, when: datetime,
               pages: Iterable[tuple[list[dict[str, Any]], np.ndarray]], total: int) -> Part | None:
    """A part streamed from pages of (rows, vectors) adding up to ``total`` rows (a staging disk rebuilt
    from the stores); None when there are none. Nothing is published unless every row arrived."""
    pages = iter(pages)
    first = next(pages, None)
    if first is None or not total:
        return None
    root = kept_dir(staging_uri)
    files = _files(name, 0)
    keys: list[np.ndarray] = []
    with staging.writer(root / files["rows"]) as out, \
            staging.npy_writer(root / files["vectors"], total, first[1].shape[1]) as add:
        for rows, vectors in itertools.chain([first], pages):
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            add(vectors)
            keys.append(index_of(rows, when))
    _write_index(root / files["index"], np.concatenate(keys))
    manifest = {"format": 1, "run": run, "ingested_at": when.astimezone(UTC).isoformat(), "rows": total,
                "generation": 0, "files": files}
    staging.write_json(root / f"{name}.json", manifest)
    return Part(root, name, manifest)


# --------------------------------------------------------------------------- what is live
def cutoffs(today: date, retention_days: int, unknown_days: int) -> tuple[int, int | None]:
    """The retire rule of ``lifecycle.retire``: closing dates before the first, and (when unknown_days > 0)
    notices without one ingested before the second (epoch seconds)."""
    closing = int((today - timedelta(days=retention_days)).strftime("%Y%m%d"))
    unknown = None
    if unknown_days:
        unknown = int((datetime.combine(today, datetime.min.time(), UTC) - timedelta(days=unknown_days)).timestamp())
    return closing, unknown


def live_masks(indexes: Sequence[np.ndarray], closing_before: int, unknown_before: int | None) -> list[np.ndarray]:
    """Per part (oldest first), which rows are live: the latest write of their id and not past retention."""
    if not indexes:
        return []
    every = np.concatenate(indexes)
    order_of = np.concatenate([np.full(len(ix), k, dtype=np.int64) for k, ix in enumerate(indexes)])
    by = np.lexsort((order_of, every["h"]))  # by id hash, then by part: the last of each run of equal ids is newest
    newest_sorted = np.ones(len(every), dtype=bool)
    newest_sorted[:-1] = every["h"][by][:-1] != every["h"][by][1:]
    newest = np.empty(len(every), dtype=bool)
    newest[by] = newest_sorted
    closing = every["closing"]
    expired = (closing > 0) & (closing < closing_before)
    if unknown_before is not None:
        expired |= (closing == 0) & (every["ingested"] < unknown_before)
    live = newest & ~expired
    bounds = np.cumsum([0] + [len(ix) for ix in indexes])
    return [live[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def live_parts(settings, today: date | None = None) -> list[tuple[Part, np.ndarray]]:
    """Every part with the mask of its live rows, by the settings' retention as of ``today``."""
    today = today or datetime.now(UTC).date()
    found = parts(settings.staging_uri)
    masks = live_masks([p.index() for p in found],
                       *cutoffs(today, settings.retention_days, settings.retention_unknown_days))
    return list(zip(found, masks, strict=True))


def live_notices(settings, today: date | None = None, chunk: int = 2000,
                 ) -> Iterator[tuple[list[str], list[dict], list[str], np.ndarray]]:
    """(ids, metadatas, texts, float32 vectors) of every live notice, in chunks, each id once (its latest write).

    What the rebuilds replay: exactly what ``upsert`` wrote, as of its ingest time."""
    reporter = Reporter.from_settings(settings)
    for part, mask in live_parts(settings, today):
        if not mask.any():
            continue
        with staging.open_npy(part.file("vectors")) as vectors:
            batch: list[tuple[int, dict]] = []
            for i, row in enumerate(part.rows()):
                if mask[i]:
                    batch.append((i, row))
                if len(batch) == chunk:
                    yield _payloads(batch, vectors, part.ingested_at, reporter)
                    batch = []
            if batch:
                yield _payloads(batch, vectors, part.ingested_at, reporter)


def _payloads(batch: list[tuple[int, dict]], vectors: np.ndarray, when: datetime, reporter: Reporter,
              ) -> tuple[list[str], list[dict], list[str], np.ndarray]:
    got = [notice_payload(row, when, reporter) for _, row in batch]
    return ([g[0] for g in got], [g[1] for g in got], [g[2] for g in got],
            np.asarray(vectors[[i for i, _ in batch]], dtype=np.float32))


# --------------------------------------------------------------------------- keeping only what is live
def drop(part: Part) -> None:
    """Delete a part with no live row: its manifest first, so no reader finds a half-deleted part."""
    (part.root / f"{part.name}.json").unlink(missing_ok=True)
    for path in part.files():
        path.unlink(missing_ok=True)


def trim(part: Part, mask: np.ndarray) -> Part:
    """Rewrite a part with its live rows only, as the next generation; the old files go once it is in place."""
    generation = int(part.manifest["generation"]) + 1
    files = _files(part.name, generation)
    keep = np.flatnonzero(mask)
    staging.write_jsonl(part.root / files["rows"], (row for i, row in enumerate(part.rows()) if mask[i]))
    with staging.open_npy(part.file("vectors")) as vectors:
        staging.write_npy(part.root / files["vectors"], np.asarray(vectors[keep]))
    _write_index(part.root / files["index"], part.index()[keep])
    manifest = {**part.manifest, "rows": int(len(keep)), "generation": generation, "files": files}
    staging.write_json(part.root / f"{part.name}.json", manifest)
    for path in part.files():
        path.unlink(missing_ok=True)
    return Part(part.root, part.name, manifest)
