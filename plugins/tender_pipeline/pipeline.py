"""The five stages, each a plain function that reads and writes the run's staging folder.

Airflow tasks and the CLI call these same functions. Each stage takes the
staging location (a reference, never records: a local folder or an s3://...
prefix, see ``staging``), writes its outputs atomically and a ``<stage>.json``
of counts and seconds, so any stage can be retried alone, on any worker.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm import tqdm

from tender_pipeline import identity, kept, lexical, slots, sources, staging, store
from tender_pipeline.documents import document_text
from tender_pipeline.embed import get_embedder
from tender_pipeline.enrich import build_enricher, refine
from tender_pipeline.enrich.refine import SectorRefiner
from tender_pipeline.models import EnrichedTender, TenderRecord
from tender_pipeline.money import Reporter
from tender_pipeline.ocds import api as ocds_api
from tender_pipeline.run_summary import STAGES, summarize
from tender_pipeline.settings import Settings
from tender_pipeline.validate import check_threshold, top_reasons, validate_files, write_quarantine

log = logging.getLogger(__name__)
T = TypeVar("T")

ENRICH_CHUNK = 500
EMBED_CHUNK = 256
UPSERT_CHUNK = 2000  # within Chroma's max batch (5,461 here), so one request per chunk


def _bar(total: int, desc: str) -> tqdm[Any]:
    """A progress bar on a terminal, silent in Airflow logs and tests."""
    return tqdm(total=total, desc=desc, unit="rec", disable=not sys.stderr.isatty(), leave=False)


@contextmanager
def _stage(run: staging.StagePath, name: str) -> Iterator[dict[str, Any]]:
    stats: dict[str, Any] = {}
    started = time.perf_counter()
    yield stats
    stats["seconds"] = round(time.perf_counter() - started, 3)
    staging.write_json(run / f"{name}.json", stats)
    log.info("%s: %s", name, {k: v for k, v in stats.items() if not isinstance(v, (list, dict))})


def lower_priority(settings: Settings) -> None:
    """Run CPU-heavy stages (enrich, embed) at INGEST_NICE so searches on the same host keep their CPU."""
    target = settings.ingest_nice
    current = os.nice(0)
    if target > current:
        os.nice(target - current)


# --------------------------------------------------------------------------- fetch
def fetch(settings: Settings, run_id: str, *, source: str | None = None,
          interval: tuple[datetime, datetime] | None = None, force: bool = False,
          s3_client: Any = None) -> str:
    """Stage the run's batch files; returns the run's staging folder.

    With ``source`` the named file/folder/URI is taken as is. Otherwise the
    complete files of ``interval`` are listed under INCOMING_URI (plus files
    earlier runs found still being written, now complete: see ``sources``) and
    each is claimed in the ledger; files another run already claimed are
    skipped (unless ``force``). Files not complete yet are noted, not claimed.
    """
    run = staging.run_dir(settings.staging_uri, run_id)
    staging.check_writable(run)  # a full or read-only staging volume fails here, in one line
    with _stage(run, "fetch") as stats:
        ledger = sources.Ledger(settings.ledger_dir)
        pending: list[dict[str, Any]] = []
        late: set[str] = set()
        noted: set[str] = set()
        api = source if ocds_api.is_api(source) else (  # a paginated OCDS API: pages, not files
            settings.incoming_uri if not source and interval is not None and ocds_api.is_api(settings.incoming_uri)
            else "")
        if api:
            listed, use_ledger = [], False  # ocds_api claims (source, interval) itself
        elif source:
            listed = sources.list_source(source, s3_client)
            use_ledger = False
        elif interval is not None:
            listed, pending, late, noted = _interval_files(settings, ledger, run_id, interval, s3_client)
            use_ledger = True
        else:
            raise ValueError("fetch needs a source or a data interval")
        raw_dir = run / "raw"
        for old in staging.listdir(raw_dir):  # a retry starts from a clean slate
            old.unlink()
        files: list[dict[str, Any]] = []
        skipped: list[dict[str, Any]] = []
        api_stats: dict[str, Any] = {}
        if api:
            files, skipped, api_stats = ocds_api.fetch(settings, api, raw_dir, run_id, None if source else interval,
                                                       force=force)
        with tempfile.TemporaryDirectory(prefix="fetch-") as tmp:
            # local staging downloads in place; remote staging lands here, then uploads
            landing = raw_dir if isinstance(raw_dir, Path) else Path(tmp)
            for src in listed:
                with staging.write_guard(landing, f"fetching {src.name}",
                                         "staging" if landing is raw_dir else "temp folder"):
                    path = sources.download(src, landing, s3_client)
                if path is None:
                    continue
                sha = sources.file_sha256(path)
                claimed = not use_ledger or force or ledger.claim(src.uri, sha, run_id)
                if src.uri in noted:
                    ledger.clear_pending(src.uri)  # complete now: taken by this run or (claimed) by another
                if not claimed:
                    skipped.append({"uri": sources.redact(src.uri), "claimed_by": ledger.owner(src.uri, sha)})
                    path.unlink()
                    continue
                if landing is not raw_dir:
                    staging.put_file(path, raw_dir / path.name, move=True)
                files.append({"uri": sources.redact(src.uri), "name": src.name, "staged": path.name,
                              "sha256": sha, **({"late": True} if src.uri in late else {})})
        stats.update(run_id=run_id, files=files, skipped_files=skipped, pending_files=pending,
                     late_files=sum(1 for f in files if f.get("late")),
                     interval=[t.isoformat() for t in interval] if interval else None,
                     source=sources.redact(source) if source else None, **({"api": api_stats} if api else {}))
        log.info("fetched %d file(s), skipped %d already ingested", len(files), len(skipped))
        if pending:
            log.warning("%d file(s) not complete yet, left for a later run: %s", len(pending),
                        "; ".join(f"{p['uri']} ({p['reason']})" for p in pending))
    return str(run)


def _interval_files(settings: Settings, ledger: sources.Ledger, run_id: str, interval: tuple[datetime, datetime],
                    s3_client: Any) -> tuple[list[sources.SourceFile], list[dict[str, Any]], set[str], set[str]]:
    """The interval's complete files plus earlier runs' pending files that are complete now.

    Returns (files to take, files still pending with reasons, URIs of the late ones, URIs with a pending
    note). Pending files are noted in the ledger, so a later run re-checks them even though their hour
    folder is no longer its own.
    """
    rule = sources.SettleRule.from_settings(settings)
    listing = sources.scan_interval(settings.incoming_uri, *interval, rule, s3_client)
    own = {src.uri for src in listing.ready} | {src.uri for src, _ in listing.pending}
    listed, waiting = list(listing.ready), list(listing.pending)
    late: set[str] = set()
    noted = {note["uri"] for note in ledger.pending()}
    for uri in sorted(noted):
        if uri in own:
            continue
        src = sources.SourceFile(uri)
        reason = sources.recheck(src, rule, s3_client)
        if reason == "gone":
            log.warning("pending file %s is gone; forgetting it", sources.redact(uri))
            ledger.clear_pending(uri)
        elif reason:
            waiting.append((src, reason))
        else:
            listed.append(src)
            late.add(uri)
    for src, reason in waiting:
        ledger.note_pending(src.uri, run_id, reason)
    return listed, [{"uri": sources.redact(s.uri), "reason": r} for s, r in waiting], late, noted


# --------------------------------------------------------------------------- validate
def validate(settings: Settings, run_dir: str, *, limit: int | None = None,
             profile: str | None = None) -> str:
    """Validate staged files into valid.jsonl and quarantine.csv; may reject the batch."""
    run = staging.location(run_dir)
    fetched = staging.read_json(run / "fetch.json")
    with _stage(run, "validate") as stats, ExitStack() as local:
        paths = [(local.enter_context(staging.local_copy(run / "raw" / f["staged"])), f["name"])
                 for f in fetched["files"]]
        result = validate_files(paths, settings.profiles_path, profile or settings.profile, limit)
        staging.write_jsonl(run / "valid.jsonl", result.valid)
        quarantine_path = run / "quarantine.csv"
        write_quarantine(quarantine_path, result.quarantine)
        stats.update(
            rows_read=result.rows_read, valid=len(result.valid),
            quarantined=len(result.quarantine), duplicates=result.duplicates, not_notices=result.not_notices,
            quarantine_reasons=top_reasons(result.quarantine), warnings=result.warnings,
            per_file={name: vars(c) for name, c in result.per_file.items()},
        )
        check_threshold(result, settings.quarantine_threshold, quarantine_path)
    return run_dir


# --------------------------------------------------------------------------- enrich
def _collection(settings: Settings, client: Any = None) -> tuple[Any, Any]:
    """The Chroma client and the tender collection (chromadb's objects, untyped through ``store``)."""
    embedder = get_embedder(settings)
    client = client or store.get_client(settings)
    return client, store.open_collection(client, settings.tender_collection, embedder.model_id, embedder.dim)


def enrich(settings: Settings, run_dir: str, *, force: bool = False) -> str:
    """Skip records whose content hash is already indexed; enrich the rest."""
    run = staging.location(run_dir)
    lower_priority(settings)
    with _stage(run, "enrich") as stats:
        files, records, releases, released = [], [], [], []  # not the raw rows: each record, its file, and for
        for row in staging.read_jsonl(run / "valid.jsonl"):  # an OCDS notice its releases and latest release date
            files.append(row["file"])
            records.append(TenderRecord.model_validate(row["record"]))
            releases.append(int(row.get("versions") or 1))
            released.append(row.get("released", ""))
        _, collection = _collection(settings)  # each slot's state: no lexical index needed on this machine
        records = identity.link_to_index(records, lambda ids: set(store.existing_state(collection, ids)))
        hashes = [r.content_hash() for r in records]
        state = store.existing_state(collection, [r.tender_id for r in records])
        enricher = build_enricher(settings)
        # a record the model could not enrich last time (offline fallback) gets another try
        retry_fallback = enricher.name != "local"
        # a replayed older interval must not put back an OCDS notice the index holds from a later release
        stale = {i for i, r in enumerate(records) if released[i] and released[i] < state.get(r.tender_id, {}).get(
            "released", "")}
        todo = [i for i, (r, h) in enumerate(zip(records, hashes, strict=True)) if i not in stale and (
                force or r.tender_id not in state or state[r.tender_id]["content_hash"] != h
                or (retry_fallback and state[r.tender_id]["enrichment_source"] == "fallback"))]
        unchanged = sorted(set(range(len(records))) - set(todo))
        unchanged_by_file = Counter(files[i] for i in unchanged)
        sources: Counter[str] = Counter()

        def enriched_rows() -> Iterator[dict[str, Any]]:
            """Written as each chunk is enriched: a 20,000-row batch is never held twice in memory."""
            with _bar(len(todo), "enrich") as bar:
                for start in range(0, len(todo), ENRICH_CHUNK):
                    part = todo[start:start + ENRICH_CHUNK]
                    results = enricher.enrich([records[i] for i in part])
                    if len(results) != len(part):
                        raise RuntimeError(f"enricher {enricher.name} returned {len(results)} for {len(part)}")
                    for i, enrichment in zip(part, results, strict=True):
                        item = EnrichedTender(record=records[i], enrichment=enrichment, content_hash=hashes[i])
                        prev = state.get(records[i].tender_id)
                        sources[enrichment.enrichment_source] += 1
                        yield {"file": files[i], "existed": prev is not None, "released": released[i],
                               "versions": max(identity.next_version(prev, hashes[i]), releases[i]),
                               "was_corrigendum": bool(prev and prev["is_corrigendum"]),
                               **item.model_dump(mode="json")}
                    bar.update(len(part))

        written = staging.write_jsonl(run / "enriched.jsonl", enriched_rows())
        stats.update(
            written_id=uuid.uuid4().hex,  # which write of enriched.jsonl the embed stage read (``upsert`` checks)
            candidates=len(records), unchanged=len(records) - len(todo), stale=len(stale), enriched=written,
            backend=enricher.name, usage=enricher.usage(),
            sources=dict(sources),
            unchanged_per_file=dict(unchanged_by_file),
            unchanged_ids=[records[i].tender_id for i in unchanged],  # upsert checks the lexical index has them
        )
    return run_dir


# --------------------------------------------------------------------------- embed
def embed(settings: Settings, run_dir: str) -> str:
    """Embed the enriched records' document text in batches into embeddings.npy; with the local embedder, the
    offline sector is decided again from words and vector (``enrich.refine``) and written into each row."""
    run = staging.location(run_dir)
    lower_priority(settings)
    with _stage(run, "embed") as stats:
        embedder = get_embedder(settings)
        refiner = SectorRefiner.for_embedder(settings, embedder.model_id, embedder.dim)
        enriched = staging.read_json(run / "enrich.json")
        total = int(enriched.get("enriched", 0))
        changed = Counter[str]()

        def embedded_rows() -> Iterator[dict[str, Any]]:
            """Each chunk's vectors go straight to the file (neither the records nor all the vectors are held
            at once) and its rows are written back with the sector decided from them."""
            with _bar(total, "embed") as bar, \
                    staging.npy_writer(run / "embeddings.npy", total, embedder.dim) as add:
                for rows in _chunks(staging.read_jsonl(run / "enriched.jsonl"), EMBED_CHUNK):
                    items = [EnrichedTender.model_validate(row) for row in rows]
                    vectors = embedder.embed_documents([document_text(item) for item in items])
                    add(vectors)
                    decided = refiner.decide(items, np.asarray(vectors)) if refiner else [None] * len(rows)
                    for row, item, fields in zip(rows, items, decided, strict=True):
                        row.pop(refine.REFINED, None)  # a rerun decides again, from the same vector
                        if fields is not None:
                            row[refine.REFINED] = fields
                            changed["refined"] += 1
                            changed["moved"] += fields["sector_code"] != item.enrichment.sector_code
                        yield row
                    bar.update(len(rows))

        staging.write_jsonl(run / "enriched.jsonl", embedded_rows())  # atomic: readers see old or new rows
        usage = getattr(embedder, "usage", None)
        stats.update(embedded=total, model=embedder.model_id, dim=embedder.dim, enriched_id=enriched.get("written_id"),
                     usage=usage() if callable(usage) else {},
                     sectors_refined=changed["refined"], sectors_moved=changed["moved"])
    return run_dir


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --------------------------------------------------------------------------- upsert
def upsert(settings: Settings, run_dir: str) -> dict[str, Any]:
    """Write ids and vectors to Chroma, cards and texts to the lexical index; returns and saves the run summary."""
    run = staging.location(run_dir)
    with _stage(run, "upsert") as stats, staging.open_npy(run / "embeddings.npy") as vectors:  # rows read per chunk
        enriched = staging.read_json(run / "enrich.json")
        if staging.read_json(run / "embed.json").get("enriched_id") != enriched.get("written_id"):
            raise RuntimeError("enriched.jsonl was written again after the embed stage (enrich rerun alone): "
                               "rerun embed, which embeds the rows and decides their sectors")
        if len(vectors) != enriched.get("enriched", len(vectors)):
            raise RuntimeError(f"{enriched['enriched']} enriched records but {len(vectors)} vectors; rerun embed")
        reporter = Reporter.from_settings(settings)  # a bad REPORT_RATES_PATH fails here, before any write
        client, collection = _collection(settings)
        now = datetime.now(UTC)
        index = lexical.open_index(settings.lexical_dir)
        written, seen = 0, 0
        inserted, updated = Counter[str](), Counter[str]()
        money: list[tuple[float | None, str]] = []
        # in chunks: records, texts and metadata of a 20,000-row batch held at once cost ~250 MB of RSS
        with index.writing() as writer, _bar(len(vectors), "upsert") as bar:  # the one writer of both stores
            for rows in _chunks(staging.read_jsonl(run / "enriched.jsonl"), UPSERT_CHUNK):
                items = [EnrichedTender.model_validate(row) for row in rows]
                if seen + len(items) > len(vectors):
                    raise RuntimeError(f"more enriched records than {len(vectors)} vectors; rerun embed")
                payloads = [kept.notice_payload(r, now, reporter, i) for i, r in zip(items, rows, strict=True)]
                ids, metas, texts = [p[0] for p in payloads], [p[1] for p in payloads], [p[2] for p in payloads]
                chunk = np.asarray(vectors[seen:seen + len(items)])  # this chunk's rows of the memory map
                held = store.upsert(collection, ids, chunk, client=client, progress=bar.update)
                writer.upsert(ids, metas, texts, chunk, held)
                written += len(held)
                writer.after_commit.append(functools.partial(  # "unchanged" only once the index holds it
                    slots.record, collection, ids, [store.state_of(m) for m in metas]))
                seen += len(items)
                inserted.update(r["file"] for r in rows if not r["existed"])
                updated.update(r["file"] for r in rows if r["existed"])
                money.extend((i.record.value_amount, i.record.currency) for i in items)
            if seen != len(vectors):
                raise RuntimeError(f"{seen} enriched records but {len(vectors)} vectors; rerun embed")
        stats["kept_part"] = kept.seal(run, now)  # what a rebuild needs once the run folder is pruned
        missing = index.missing(enriched.get("unchanged_ids", []))
        if missing:  # Chroma holds them unchanged, the index lost them: only its recovery brings them back
            log.warning("%d unchanged notice(s) are missing from the lexical index (e.g. %s): run "
                        "`python -m tender_pipeline recover lexical`", len(missing), missing[:3])
        stats.update(upserted=written, lexical_missing=len(missing), lexical_count=index.num_docs(),
                     inserted=sum(inserted.values()),
                     updated=sum(updated.values()),
                     collection_count=collection.count(),
                     inserted_per_file=dict(inserted),
                     updated_per_file=dict(updated),
                     report_currency=reporter.currency,
                     unknown_currency=reporter.unknown_currencies(money))
    summary = summarize(run)
    staging.write_json(run / "summary.json", summary)
    log.info("run summary: %s", {k: v for k, v in summary.items() if k != "per_file"})
    return summary


def run_all(settings: Settings, run_id: str, *, source: str | None = None,
            interval: tuple[datetime, datetime] | None = None, limit: int | None = None,
            force: bool = False, profile: str | None = None, s3_client: Any = None) -> dict[str, Any]:
    """All five stages in one process (the CLI); Airflow runs them as separate tasks."""
    _collection(settings)  # the store first: an unreachable server fails in one line, before any work
    run = fetch(settings, run_id, source=source, interval=interval, force=force, s3_client=s3_client)
    validate(settings, run, limit=limit, profile=profile)
    enrich(settings, run, force=force)
    embed(settings, run)
    return upsert(settings, run)


__all__ = ["STAGES", "fetch", "validate", "enrich", "embed", "upsert", "run_all", "summarize"]
