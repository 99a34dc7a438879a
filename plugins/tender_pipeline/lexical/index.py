"""``LexicalIndex``: one tantivy index folder, opened once per process, written under one lock, searched.

The queries, the evidence and the estimates are built in their own modules; this class holds what they
share (the folder, the schema, the analyzer, the writer lock, the cached distribution) and answers the
callers (the pipeline, the search API, the rebuild and maintenance commands).
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import tantivy

from tender_pipeline.lexical import estimates, evidence, queries
from tender_pipeline.lexical.estimates import Distribution, Distributions
from tender_pipeline.lexical.evidence import Evidence
from tender_pipeline.lexical.filters import Filters, filter_query
from tender_pipeline.lexical.fold import FoldFirst, fold
from tender_pipeline.lexical.hits import Hit, hit_at
from tender_pipeline.lexical.keys import norm
from tender_pipeline.lexical.publish import publish_index, restore_if_new
from tender_pipeline.lexical.schema import (
    ANALYZER,
    FACET_FIELDS,
    SCHEMA_MARKER,
    SCHEMA_VERSION,
    analyzer,
    build_schema,
    schema_of,
)
from tender_pipeline.lexical.writer import LOCK_WAIT_S, Writer, take_writer

log = logging.getLogger(__name__)


class LexicalIndex:
    """One tantivy index folder; safe to share between threads (readers) of one process."""

    def __init__(self, path: str | Path, publish_uri: str | None = None, recreate: bool = False) -> None:
        """``recreate``: an index of another schema is moved aside and a new one started (the rebuild
        commands, which then fill it); otherwise opening one is refused with that advice."""
        self.path = Path(path)
        self.publish_uri = publish_uri  # None: LEXICAL_PUBLISH_URI; "" = never publish
        self.path.mkdir(parents=True, exist_ok=True)
        self.schema = build_schema()
        self._check_version(recreate)
        self.index = tantivy.Index(self.schema, path=str(self.path), reuse=True)
        self.analyzer = analyzer()
        self.index.register_tokenizer(ANALYZER, self.analyzer)
        self.index.config_reader(reload_policy="OnCommit", num_warmers=0)
        self._write_lock = threading.Lock()
        self._distributions = Distributions()

    def _check_version(self, recreate: bool) -> None:
        marker = self.path / SCHEMA_MARKER
        found = schema_of(self.path)
        if found is not None:
            if found == SCHEMA_VERSION:
                return
            if not recreate:
                raise RuntimeError(f"lexical index at {self.path} has schema v{found}, this code needs "
                                   f"v{SCHEMA_VERSION}: rebuild it (python -m tender_pipeline recover lexical)")
            aside = self.path.with_name(f"{self.path.name}.v{found}-{int(time.time())}")
            self.path.rename(aside)
            log.warning("lexical index of schema v%s moved to %s; starting a v%s index", found, aside,
                        SCHEMA_VERSION)
            self.path.mkdir(parents=True)
        marker.write_text(json.dumps({"version": SCHEMA_VERSION}), "utf-8")

    # ------------------------------------------------------------------ writing
    @contextmanager
    def writing(self, wait_s: float = LOCK_WAIT_S) -> Iterator[Writer]:
        """Hold the index's writer — one per folder across processes — and commit on success.

        The pipeline's writers (upsert, retire, compact) also change Chroma inside this
        block, so the lock serialises every write to both stores and they cannot interleave."""
        with self._write_lock:
            self._restore()
            writer = take_writer(self.index, self.path, wait_s)
            # the smallest segments folded into this commit before its first change: at most 7 segments (``fold``)
            changes = Writer(FoldFirst(writer, functools.partial(fold, self.index, self.path, writer, self.schema)),
                             self.schema)
            try:
                yield changes
                writer.commit()
                writer.wait_merging_threads()
            except BaseException:
                writer.rollback()
                raise
            self._publish()
            for hook in changes.after_commit:  # what may only be recorded once the index holds the changes
                hook()
        self.index.reload()

    def _publish_uri(self) -> str:
        from tender_pipeline.settings import get_settings

        return self.publish_uri if self.publish_uri is not None else get_settings().lexical_publish_uri

    def _restore(self) -> None:
        """A writer on a new or wiped disk starts from the published index rather than overwrite it."""
        uri = self._publish_uri()
        if uri and restore_if_new(self.path, uri):
            self.index.reload()

    def _publish(self) -> None:
        """Copy the committed index to LEXICAL_PUBLISH_URI when set (readers on other hosts follow it).

        Raises on failure, so the writing task fails and is retried rather than hosts diverging."""
        from tender_pipeline.settings import get_settings

        settings = get_settings()
        uri = self._publish_uri()
        if uri:
            got = publish_index(self.path, uri, settings.lexical_publish_grace_s)
            log.info("lexical index published to %s: %s", uri, got)

    def upsert(self, ids: Sequence[str], metadatas: Sequence[dict], texts: Sequence[str],
               vectors: Sequence | np.ndarray | None = None, slots: Sequence[str | None] | None = None) -> int:
        """Replace these tenders' documents in one commit (``Writer.upsert``)."""
        with self.writing() as w:
            return w.upsert(ids, metadatas, texts, vectors, slots)

    def delete_ids(self, ids: Iterable[str]) -> None:
        with self.writing() as w:
            w.delete(ids)

    def clear(self) -> None:
        with self.writing() as w:
            w.clear()

    # ------------------------------------------------------------------ queries
    def filter_query(self, f: Filters) -> tantivy.Query | None:
        """The filters as one query (None when there is nothing to filter on)."""
        return filter_query(self.schema, f)

    def analyze(self, text: str) -> list[str]:
        return list(dict.fromkeys(self.analyzer.analyze(text)))

    def focus(self, terms: Sequence[str], searcher) -> list[str]:
        """The query's terms, keeping only the rarest common ones (``queries.focus``)."""
        return queries.focus(terms, searcher)

    def text_query(self, terms: Sequence[str], searcher=None) -> tantivy.Query | None:
        """BM25 over the analysed query terms in every text field (``queries.text_query``)."""
        return queries.text_query(self.schema, terms, searcher)

    def searcher(self) -> tantivy.Searcher:
        return self.index.searcher()

    def search(self, terms: Sequence[str], filters: Filters, limit: int, searcher=None) -> list[Hit]:
        """Top ``limit`` notices by BM25 over ``terms`` under the filters (none when no terms)."""
        s = searcher or self.searcher()
        text = self.text_query(terms, s)
        if text is None or limit <= 0:
            return []
        got = s.search(queries.all_of(self.filter_query(filters), scored=text), limit=limit, count=False)
        return [hit_at(s, score, addr) for score, addr in got.hits]

    def exact(self, forms: Sequence[str], filters: Filters, searcher=None) -> list[Hit]:
        """Notices whose id (lower-cased, with or without source prefix) is one of ``forms``."""
        if not forms:
            return []
        s = searcher or self.searcher()
        ids = queries.any_of(self.schema, "id_key", [norm(f) for f in forms])
        got = s.search(queries.all_of(self.filter_query(filters), ids), limit=20, count=False)
        return [hit_at(s, 1.0, addr) for _, addr in got.hits]

    def count(self, filters: Filters, searcher=None) -> int:
        s = searcher or self.searcher()
        query = self.filter_query(filters)
        if query is None:
            return s.num_docs
        return s.search(query, limit=1, count=True).count  # type: ignore[union-attr]  # not in tantivy's stub

    def estimate(self, f: Filters, searcher) -> int:
        """About how many notices pass ``f``, at a cost that does not grow with the index (``estimates``).
        Callers count exactly when the estimate is small (a count is cheap when few notices match)."""
        return estimates.estimate(f, searcher, self._distributions)

    def distribution(self, searcher) -> Distribution:
        """The spread of closing dates and values, aggregated once per index version (35 ms at 1M) and
        refreshed when the number of notices changes or after ``DISTRIBUTION_TTL_S``."""
        return self._distributions.of(searcher)

    def matching(self, filters: Filters, limit: int, searcher=None) -> list[Hit]:
        """Up to ``limit`` notices passing the filters (unordered), with their cards."""
        s = searcher or self.searcher()
        got = s.search(queries.all_of(self.filter_query(filters)), limit=limit, count=False)
        return [hit_at(s, 0.0, addr) for _, addr in got.hits]

    def resolve(self, filters: Filters, ids: Sequence[str] | Sequence[int], terms: Sequence[str], searcher,
                sector: str | None = None, known: Sequence[Hit] = (), by: str = "id") -> tuple[list[Hit], Evidence]:
        """Which of ``ids`` (tender ids, or Chroma slot numbers with ``by="slot"``) pass the filters, and the
        lexical evidence of those and of the ``known`` hits, in one query (``evidence.resolve``)."""
        return evidence.resolve(self.schema, filters, ids, terms, searcher, sector, known, by)

    def by_slots(self, numbers: Sequence[int], filters: Filters | None = None, searcher=None) -> dict[int, list[Hit]]:
        """The notices recorded in these Chroma slots (read: id, card, vector), under ``filters`` when given.
        A slot names one notice; two only while a copy of the index lags a slot's reuse."""
        if not numbers:
            return {}
        s = searcher or self.searcher()
        slots = queries.any_of(self.schema, "slot", list(numbers))
        got = s.search(queries.all_of(self.filter_query(filters or Filters()), slots), limit=len(numbers) + 8,
                       count=False)
        out: dict[int, list[Hit]] = {}
        for _, addr in got.hits:
            hit = hit_at(s, 0.0, addr)
            if hit.slot is not None:
                out.setdefault(hit.slot, []).append(hit)
        return out

    def present(self, terms: Sequence[str], hits: Sequence[Hit], searcher, sector: str | None = None) -> Evidence:
        """Lexical evidence for ``hits`` (which must come from ``searcher``): which query terms each holds in a
        strong field or the body, and whether it is in ``sector`` (``evidence.present``)."""
        return evidence.present(self.schema, terms, hits, searcher, sector)

    # ------------------------------------------------------------------ reads by id, aggregations
    def missing(self, ids: Sequence[str], batch: int = 5000) -> list[str]:
        """Which of ``ids`` the index does not hold."""
        s = self.searcher()
        found: set[str] = set()
        ids = list(ids)
        for start in range(0, len(ids), batch):
            part = ids[start:start + batch]
            got = s.search(tantivy.Query.term_set_query(self.schema, "id", part), limit=len(part), count=False)
            found.update(str(s.doc(addr).get_first("id")) for _, addr in got.hits)
        return [tid for tid in ids if tid not in found]

    def slots_of(self, ids: Sequence[str], searcher=None) -> dict[str, int | None]:
        """The Chroma slot each of these notices records (None: written without one), for those present."""
        if not ids:
            return {}
        s = searcher or self.searcher()
        got = s.search(tantivy.Query.term_set_query(self.schema, "id", list(ids)), limit=len(ids), count=False)
        out: dict[str, int | None] = {}
        for _, addr in got.hits:
            doc = s.doc(addr)
            slot = doc.get_first("slot")
            out[str(doc.get_first("id"))] = None if slot is None else int(slot)
        return out

    def cards(self, ids: Sequence[str], searcher=None) -> dict[str, dict[str, Any]]:
        """The stored card (Chroma metadata) of each id present."""
        if not ids:
            return {}
        s = searcher or self.searcher()
        got = s.search(tantivy.Query.term_set_query(self.schema, "id", list(ids)), limit=len(ids), count=False)
        return {h.id: h.card for h in (hit_at(s, 0.0, addr) for _, addr in got.hits)}

    def notices(self, ids: Sequence[str], searcher=None) -> dict[str, tuple[dict[str, Any], str, bytes]]:
        """(card, embedded text, int8 vector) of each id present: what the tender page and ask read."""
        if not ids:
            return {}
        s = searcher or self.searcher()
        got = s.search(tantivy.Query.term_set_query(self.schema, "id", list(ids)), limit=len(ids), count=False)
        out: dict[str, tuple[dict[str, Any], str, bytes]] = {}
        for _, addr in got.hits:
            doc = s.doc(addr)
            card, text, vec = (doc.get_first(name) for name in ("card", "text", "vec"))
            out[str(doc.get_first("id"))] = (json.loads(bytes(card)) if card else {},
                                        bytes(text).decode("utf-8") if text else "", bytes(vec) if vec else b"")
        return out

    def expired_unknown_ids(self, ingested_before_ts: int, limit: int = 10_000_000) -> list[str]:
        """Ids of notices without a closing date ingested before ``ingested_before_ts`` (epoch seconds)."""
        s = self.searcher()
        query = tantivy.Query.boolean_query([
            (tantivy.Occur.Must, tantivy.Query.term_query(self.schema, "closing_num", 0)),
            (tantivy.Occur.Must, tantivy.Query.range_query(self.schema, "ingested_ts", tantivy.FieldType.Integer,
                                                           0, ingested_before_ts, include_upper=False))])
        got = s.search(query, limit=limit, count=False)
        return [str(s.doc(addr).get_first("id")) for _, addr in got.hits]

    def expired_ids(self, closing_before: int, limit: int = 100_000) -> list[str]:
        """Ids of notices with a known closing date before ``closing_before`` (YYYYMMDD)."""
        s = self.searcher()
        query = tantivy.Query.range_query(self.schema, "closing_num", tantivy.FieldType.Integer, 1, closing_before,
                                          include_upper=False)
        got = s.search(query, limit=limit, count=False)
        return [str(s.doc(addr).get_first("id")) for _, addr in got.hits]

    def facets(self) -> dict[str, Any]:
        """Counts per sector / country / procurement type, document count, last ingest, and each sector's CPV
        division (``sector_codes``: its most frequent code, '' for Unclassified), from one aggregation of the
        fast fields: no stored document is read (``bench/sector_counts.py``)."""
        s = self.searcher()
        names = [name for name in FACET_FIELDS if name != "sector"] + ["sector_pair"]
        aggs: dict[str, Any] = {name: {"terms": {"field": name, "size": 10_000}} for name in names}
        aggs["last_ingest"] = {"max": {"field": "ingested_ts"}}
        got = s.aggregate(tantivy.Query.all_query(), aggs) if s.num_docs else {}
        out: dict[str, Any] = {"documents": s.num_docs,
                               "last_ingest_ts": int((got.get("last_ingest") or {}).get("value") or 0)}
        for name in names:
            out[name] = {b["key"]: b["doc_count"] for b in (got.get(name) or {}).get("buckets", [])}
        sectors: dict[str, int] = {}
        codes: dict[str, tuple[int, str]] = {}
        for pair, count in out.pop("sector_pair").items():  # a label may have notices with and without a code
            code, _, label = pair.partition("|")
            sectors[label] = sectors.get(label, 0) + count
            if code and count > codes.get(label, (0, ""))[0]:
                codes[label] = (count, code)
        out["sector"] = dict(sorted(sectors.items(), key=lambda kv: -kv[1]))
        out["sector_codes"] = {label: codes.get(label, (0, ""))[1] for label in sectors}
        return out

    def generation(self) -> tuple[int, int, int]:
        """Which committed version of the index the folder holds: ``meta.json``'s inode, mtime and size (a
        stat, ~2 µs). tantivy and the copy follower both replace the file on each commit, so a change means a
        new version; what is derived from a whole version (the sector counts) is recomputed only then."""
        try:
            st = (self.path / "meta.json").stat()
        except FileNotFoundError:
            return (0, 0, 0)
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def reload(self) -> None:
        """Make searchers see the latest commit now (tantivy's own reload follows it a moment later)."""
        self.index.reload()

    def num_docs(self) -> int:
        return self.searcher().num_docs


_OPEN: dict[str, LexicalIndex] = {}
_OPEN_LOCK = threading.Lock()


def open_index(path: str | Path, recreate: bool = False) -> LexicalIndex:
    """One ``LexicalIndex`` per folder and process (tantivy readers are shared, not reopened);
    ``recreate`` as in ``LexicalIndex`` (a handle opened before is replaced)."""
    key = str(Path(path).resolve())
    with _OPEN_LOCK:
        found = _OPEN.get(key)
        if found is None or (recreate and schema_of(Path(path)) not in (None, SCHEMA_VERSION)):
            found = _OPEN[key] = LexicalIndex(path, recreate=recreate)
        return found
