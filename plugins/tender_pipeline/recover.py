"""One command per lost disk, rebuilding it from what remains (``python -m tender_pipeline recover ...``).

* ``lexical``: the index folder is gone (or damaged). With ``LEXICAL_PUBLISH_URI``
  the published copy is current (the writer publishes inside every commit), so
  it is downloaded; otherwise every live notice sealed in staging (``kept``) is
  replayed into a fresh index, exactly as ``upsert`` wrote it.
* ``staging``: ``STAGING_URI`` is gone, and with it the kept records, the
  ledger (when ``LEDGER_URI`` is left at its default under staging) and the
  pending notes. Every live notice the stores hold is sealed again as one part
  (the card and the text from the lexical index, the float32 vector from
  Chroma, or the index's int8 copy when Chroma lacks it), so a later lost
  lexical disk can still be rebuilt. Then the ledger: each batch file under
  ``INCOMING_URI`` whose every valid record the stores hold with the same
  content hash (or that retention has retired) is claimed again, so no run
  takes it a second time; a file newer than the last ingest is noted pending,
  so the next run takes it; any other file (typically an older version of
  notices a later batch changed) is listed and left alone, unless it arrived
  before ``--ingested-before``, a time the operator knows every run had completed by.

* ``chroma``: Chroma's disk is gone. Chroma holds ids and vectors only, so the
  float32 vector of every live notice sealed in staging (``kept``) is written
  back into the collection in place (created when absent); a notice the
  lexical index holds that no kept part has gets its vector from the index's
  int8 copy. The lexical index is left as it is.

Every command holds the stores' writer lock.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import tantivy

from tender_pipeline import identity, kept, lexical_sync, slots, sources, staging, store
from tender_pipeline.documents import document_text
from tender_pipeline.lexical import LexicalIndex, open_index
from tender_pipeline.models import EnrichedTender, TenderRecord
from tender_pipeline.profiles import load_profiles
from tender_pipeline.validate import read_files, validate_tables

log = logging.getLogger(__name__)

DAY_S = 86_400
RECOVERED_RUN = "recovered"


# --------------------------------------------------------------------------- the lexical index
def lexical(settings, today: date | None = None) -> dict[str, Any]:
    """The lexical index from its published copy, else from staging's kept records; counts, and how many
    ids Chroma holds that the index lacks."""
    started = time.perf_counter()
    local = settings.lexical_dir
    _forget_handle(local)
    replayed: int | None
    unslotted: int | None
    if settings.lexical_publish_uri and lexical_sync.store_for(settings.lexical_publish_uri,
                                                                local.name).version(lexical_sync.META):
        _move_aside(local)
        local.mkdir(parents=True, exist_ok=True)
        lexical_sync.restore_if_new(local, settings.lexical_publish_uri)
        index = open_index(local, recreate=True)
        index.reload()
        source, replayed, unslotted = f"published copy {settings.lexical_publish_uri}", None, None
    else:
        index = open_index(local, recreate=True)  # a damaged folder of another schema is moved aside
        replayed, unslotted = 0, 0
        collection = _collection(settings)  # each notice's slot, so kNN finds it again
        with index.writing() as writer:
            writer.clear()
            for ids, metas, texts, vectors in kept.live_notices(settings, today):
                held = slots.slots_of(collection, ids) if collection is not None else {}
                numbers = [held[tid][0] if tid in held else None for tid in ids]
                unslotted += numbers.count(None)
                replayed += writer.upsert(ids, metas, texts, vectors, numbers)
        if unslotted:
            log.warning("%d notice(s) have no Chroma slot: only words find them until `recover chroma` runs",
                        unslotted)
        source = f"staging {kept.kept_dir(settings.staging_uri)}"
    got = {"recovered": "lexical", "from": source, "notices": index.num_docs(), "replayed": replayed,
           "without_slot": unslotted}
    got.update(_compare_with_chroma(settings, index))
    got["seconds"] = round(time.perf_counter() - started, 2)
    return got


def _forget_handle(folder: Path) -> None:
    """A handle this process opened before the folder was lost reads files that are gone: open afresh."""
    from tender_pipeline.lexical import index as handles

    with handles._OPEN_LOCK:
        handles._OPEN.pop(str(folder.resolve()), None)


def _move_aside(folder: Path) -> None:
    if folder.exists() and any(folder.iterdir()):
        aside = folder.with_name(f"{folder.name}.lost-{int(time.time())}")
        folder.rename(aside)
        log.warning("moved what was left of %s to %s", folder, aside)


def _compare_with_chroma(settings, index: LexicalIndex) -> dict[str, Any]:
    """How many ids Chroma holds that the index lacks (0 is the goal), when Chroma is reachable."""
    try:
        from tender_pipeline.embed import get_embedder

        embedder = get_embedder(settings)
        collection = store.open_collection(store.get_client(settings), settings.tender_collection,
                                           embedder.model_id, embedder.dim, create=False)
        got = collection.get(include=["metadatas"])  # every slot: a batch command may scan
        ids = [t for t in slots.tenders(got["ids"], got["metadatas"]) if t is not None]
    except Exception as exc:  # Chroma down or empty: the index stands on its own
        return {"chroma": f"not compared ({str(exc).splitlines()[0][:120]})"}
    return {"chroma_count": len(ids), "missing_from_lexical": len(index.missing(ids))}


# --------------------------------------------------------------------------- Chroma
def chroma(settings, today: date | None = None, batch: int = 2000) -> dict[str, Any]:
    """Every live notice's vector back into Chroma, into the slot its lexical document records (so the index
    needs no rewrite): from staging's kept parts, else the lexical index's int8 copy. A notice recorded
    without a slot takes a new one, and its document is rewritten with it."""
    from tender_pipeline.embed import get_embedder

    started = time.perf_counter()
    embedder = get_embedder(settings)
    client = store.get_client(settings)
    collection = store.open_collection(client, settings.tender_collection, embedder.model_id, embedder.dim)
    index = open_index(settings.lexical_dir)
    from_kept, from_index, reslotted = 0, 0, 0
    limit = max(1, min(client.get_max_batch_size(), 5000))
    with index.writing() as writer:  # no upsert or retirement meanwhile
        s = index.searcher()
        done: set[str] = set()
        for ids, metas, texts, vectors in kept.live_notices(settings, today):
            recorded = index.slots_of(ids, s)
            from_kept += _write_back(collection, writer, ids, metas, texts, vectors, recorded, limit)
            reslotted += sum(1 for tid in ids if tid in recorded and recorded[tid] is None)
            done.update(ids)
        held = [addr for _, addr in s.search(tantivy.Query.all_query(), limit=max(s.num_docs, 1), count=False).hits]
        for start in range(0, len(held), batch):  # each stored document read once
            docs = [d for d in (s.doc(addr) for addr in held[start:start + batch])
                    if str(d.get_first("id")) not in done]
            found = slots.slots_of(collection, [str(d.get_first("id")) for d in docs])
            docs = [d for d in docs if str(d.get_first("id")) not in found]  # Chroma's float32 vector stays
            if not docs:
                continue
            ids = [str(d.get_first("id")) for d in docs]
            cards = [json.loads(bytes(d.get_first("card") or b"{}")) for d in docs]
            texts = [_stored_text(d.to_dict()) or "" for d in docs]
            vectors = np.stack([_dequantize(d) for d in docs]).astype(np.float32)
            recorded = {tid: _slot_of(d) for tid, d in zip(ids, docs, strict=True)}
            from_index += _write_back(collection, writer, ids, cards, texts, vectors, recorded, limit)
            reslotted += sum(1 for n in recorded.values() if n is None)
    return {"recovered": "chroma", "from": f"staging {kept.kept_dir(settings.staging_uri)}",
            "vectors_from_kept": from_kept, "vectors_from_index": from_index, "given_new_slots": reslotted,
            "collection_count": collection.count(), "lexical_count": len(held),
            "seconds": round(time.perf_counter() - started, 2)}


def _slot_of(doc) -> int | None:
    slot = doc.get_first("slot")
    return None if slot is None else int(slot)


def _write_back(collection, writer, ids: list[str], metas: list[dict], texts: list[str], vectors: np.ndarray,
                recorded: dict[str, int | None], limit: int) -> int:
    """Vectors into the slots the index records; notices it holds without a slot get one (and their document
    is rewritten with it); notices it lacks get one too (the index is left as it is). States are recorded,
    since the index holds these notices already."""
    at = [i for i, tid in enumerate(ids) if recorded.get(tid) is not None]
    rest = [i for i, tid in enumerate(ids) if recorded.get(tid) is None]
    if at:
        slots.write_at(collection, [slots.slot_name(recorded[ids[i]] or 0) for i in at], [ids[i] for i in at],
                       vectors[at], limit)
    if rest:
        given = slots.write(collection, [ids[i] for i in rest], vectors[rest], limit)
        redo = [(i, g) for i, g in zip(rest, given, strict=True) if ids[i] in recorded]
        if redo:
            writer.upsert([ids[i] for i, _ in redo], [metas[i] for i, _ in redo], [texts[i] for i, _ in redo],
                          vectors[[i for i, _ in redo]], [g for _, g in redo])
    slots.record(collection, ids, [store.state_of(m) for m in metas])
    return len(ids)


# --------------------------------------------------------------------------- reading every stored notice
def stored_notices(settings, index: LexicalIndex, chunk: int = 2000) -> Iterator[tuple[list[dict], np.ndarray, dict]]:
    """Every notice in the lexical index as kept rows (tender_id, meta, text, ingested_at) with float32 vectors.

    Pages by ingest day (a range on ``ingested_ts``), so no step holds more than a day's notices."""
    collection = _collection(settings)
    s = index.searcher()
    if not s.num_docs:
        return
    span = s.aggregate(tantivy.Query.all_query(), {"lo": {"min": {"field": "ingested_ts"}},
                                                     "hi": {"max": {"field": "ingested_ts"}}})
    lo, hi = int(span["lo"]["value"] or 0), int(span["hi"]["value"] or 0)
    for start in range(lo - lo % DAY_S, hi + 1, DAY_S):
        query = tantivy.Query.range_query(index.schema, "ingested_ts", tantivy.FieldType.Integer, start,
                                          start + DAY_S, include_upper=False)
        count = s.search(query, limit=1, count=True).count  # type: ignore[attr-defined]  # not in tantivy's stub
        if not count:
            continue
        docs = [s.doc(addr) for _, addr in s.search(query, limit=count, count=False).hits]
        for at in range(0, len(docs), chunk):
            yield _rows(docs[at:at + chunk], collection)


def _collection(settings):
    try:
        from tender_pipeline.embed import get_embedder

        embedder = get_embedder(settings)
        return store.open_collection(store.get_client(settings), settings.tender_collection, embedder.model_id,
                                     embedder.dim, create=False)
    except Exception as exc:
        log.warning("Chroma not reachable (%s): vectors come from the lexical index's int8 copies", exc)
        return None


def _rows(docs: list, collection) -> tuple[list[dict], np.ndarray, dict]:
    """Kept rows for a page of index documents; where each text and vector came from is counted."""
    ids = [d.get_first("id") for d in docs]
    metas = [json.loads(bytes(d.get_first("card"))) for d in docs]
    stored = [d.to_dict() for d in docs]
    texts = [_stored_text(doc) for doc in stored]
    vectors = slots.vectors_of(collection, ids) if collection is not None else {}
    # Chroma holds no texts since issue 23: the index's, else the card's
    counts = {"text_from_index": 0, "text_from_card": 0, "vector_from_chroma": 0, "vector_from_index": 0}
    rows, out = [], []
    for tid, meta, text, doc in zip(ids, metas, texts, docs, strict=True):
        if text is None:
            text, counts["text_from_card"] = _text_from_card(tid, meta), counts["text_from_card"] + 1
        else:
            counts["text_from_index"] += 1
        if tid in vectors:
            vector, counts["vector_from_chroma"] = vectors[tid], counts["vector_from_chroma"] + 1
        else:
            vector, counts["vector_from_index"] = _dequantize(doc), counts["vector_from_index"] + 1
        rows.append({"tender_id": tid, "meta": meta, "text": text})
        out.append(vector)
    return rows, np.stack(out).astype(np.float32), counts


def _stored_text(doc: dict) -> str | None:
    """The document text when the index stores it (a field named ``text`` or ``document``)."""
    for name in ("text", "document"):
        values = doc.get(name)
        if values:
            value = values[0]
            return bytes(value).decode("utf-8") if isinstance(value, (bytes, bytearray, list)) else str(value)
    return None


def _text_from_card(tender_id: str, meta: dict) -> str:
    """The embedded text rebuilt from the card: every line, the description too when the card keeps it."""
    record = {k: meta.get(k) or None for k in ("title", "description", "buyer", "country", "region", "city",
                                               "category", "notice_type", "url", "source", "currency")}
    record = {k: v for k, v in record.items() if v is not None}
    enrichment = {"tender_id": tender_id, "summary": meta.get("summary", ""), "sector": meta.get("sector", ""),
                  "subsector": meta.get("subsector", ""), "procurement_type": meta.get("procurement_type", ""),
                  "keywords": [k.strip() for k in str(meta.get("keywords", "")).split(",") if k.strip()]}
    item = EnrichedTender.model_validate({"record": {"tender_id": tender_id, **record}, "enrichment": enrichment,
                                          "content_hash": meta.get("content_hash", "")})
    return document_text(item)


def _dequantize(doc) -> np.ndarray:
    raw = doc.get_first("vec")
    v = np.frombuffer(bytes(raw), dtype=np.int8).astype(np.float32) if raw else np.zeros(0, np.float32)
    norm = float(np.linalg.norm(v))
    return v / norm if norm else v


# --------------------------------------------------------------------------- staging
def staging_disk(settings, today: date | None = None, s3_client=None,
                 ingested_before: datetime | None = None) -> dict[str, Any]:
    """Seal every notice the stores hold as one part (streamed), then rebuild the ledger from INCOMING_URI."""
    started = time.perf_counter()
    index = open_index(settings.lexical_dir)
    when = datetime.now(UTC)
    name = f"{when.strftime(kept.STAMP)}-{RECOVERED_RUN}"
    staging.check_writable(staging.location(settings.staging_uri))
    counts: dict[str, int] = {}

    def pages() -> Iterator[tuple[list[dict], np.ndarray]]:
        for rows, vectors, got in stored_notices(settings, index):
            counts.update({k: counts.get(k, 0) + v for k, v in got.items()})
            yield rows, vectors

    with index.writing():  # no upsert or prune while the stores are read
        part = kept.write_part(settings.staging_uri, name, RECOVERED_RUN, when, pages(), index.num_docs())
    ledger = rebuild_ledger(settings, index, today, s3_client, ingested_before)
    return {"recovered": "staging", "kept_part": part.name if part else None,
            "notices": int(part.manifest["rows"]) if part else 0, **counts, **ledger,
            "seconds": round(time.perf_counter() - started, 2)}


def rebuild_ledger(settings, index: LexicalIndex, today: date | None = None, s3_client=None,
                   ingested_before: datetime | None = None) -> dict[str, Any]:
    """Claim again every batch file whose records the stores hold unchanged (see the module docstring), and
    every file that arrived before ``ingested_before`` (the operator knows every run before it completed)."""
    if sources.is_http(settings.incoming_uri):
        return {"ledger": f"not rebuilt: {sources.redact(settings.incoming_uri)} is a URL template (no listing)"}
    try:
        files = sources.list_source(settings.incoming_uri, s3_client)
    except sources.SourceNotFoundError:
        files = []
    today = today or datetime.now(UTC).date()
    closing_before, _ = kept.cutoffs(today, settings.retention_days, settings.retention_unknown_days)
    last_ingest = index.facets()["last_ingest_ts"]
    ledger = sources.Ledger(settings.ledger_dir)
    profiles = load_profiles(settings.profiles_path)
    run_id = f"{RECOVERED_RUN}__{datetime.now(UTC).strftime(kept.STAMP)}"
    claimed, pending, left = 0, 0, []

    def exists(ids: list[str]) -> set[str]:
        return set(ids) - set(index.missing(ids))

    with tempfile.TemporaryDirectory(prefix="recover-ledger-") as tmp:
        for src in files:
            path = sources.download(src, Path(tmp), s3_client)
            if path is None:
                continue
            try:
                sha = sources.file_sha256(path)
                if ledger.owner(src.uri, sha):
                    continue
                result = validate_tables(read_files([(path, src.name)]), profiles, settings.profile)
            except Exception as exc:  # unreadable or of no known layout: never in the stores either
                left.append({"uri": sources.redact(src.uri), "why": str(exc).splitlines()[0][:200]})
                continue
            finally:
                path.unlink(missing_ok=True)
            records = identity.link_to_index([TenderRecord.model_validate(v["record"]) for v in result.valid],
                                             exists)
            cards = index.cards([r.tender_id for r in records])
            unheld = [r for r in records if (cards.get(r.tender_id) or {}).get("content_hash") != r.content_hash()
                      and not (r.closing_date and int(r.closing_date.strftime("%Y%m%d")) < closing_before)]
            if not unheld or (ingested_before is not None and _arrived(src) < ingested_before.timestamp()):
                claimed += ledger.claim(src.uri, sha, run_id)
            elif _arrived(src) > last_ingest:
                ledger.note_pending(src.uri, run_id, "noted by recover staging: newer than the last ingest")
                pending += 1
            else:
                left.append({"uri": sources.redact(src.uri), "why": f"{len(unheld)} record(s) differ from the stores"})
    return {"ledger_files": len(files), "ledger_claimed": claimed, "ledger_pending": pending,
            "ledger_left_alone": left[:50], "ledger_left_alone_count": len(left)}


def _arrived(src: sources.SourceFile) -> float:
    """When a batch file arrived: its hour folder (YYYY-MM-DD/HH) when it has one, else its mtime."""
    parts = Path(src.uri.split("://", 1)[-1]).parts
    for day, hour in zip(parts, parts[1:], strict=False):
        try:
            return datetime.strptime(f"{day} {hour}", "%Y-%m-%d %H").replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return Path(src.uri).stat().st_mtime if not sources.is_s3(src.uri) else 0.0
