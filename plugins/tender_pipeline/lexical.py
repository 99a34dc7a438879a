"""The lexical and filter index beside Chroma: tantivy (BM25, term and range queries).

Why it exists: in Chroma 1.5.9 every ``where`` / ``where_document`` filter scans
the collection (seconds at a million notices), while plain kNN stays flat. So
everything that is not "nearest vectors" is answered here from structures
built for it: words (BM25 over title / strong fields / body), exact
references, and the filters (country, region, buyer, sector, type, closing
date, value, corrigendum), plus the card fields a result shows.

One writer at a time (the ``upsert`` task, the maintenance DAG, the rebuild
command) holds tantivy's writer lock on ``LEXICAL_INDEX_PATH``; readers (every
search API worker) open the same folder and reload on each commit. Readers on
other hosts follow a copy published after each commit (``lexical_sync``). The id is
the tender id, so an upsert is delete-by-id + add, and a rerun converges.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tantivy

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # v2: each notice's vector (int8) is stored beside its card
ANALYZER = "tender"  # simple tokens, lower-cased, ASCII-folded, English-stemmed
TYPE_SYNONYMS = {"goods": "supply", "supplies": "supply", "work": "works", "service": "services"}
MISSING_NUMBER = -1.0
WRITER_HEAP = 64_000_000
LOCK_WAIT_S = 3600.0  # a writer waits this long for another (an upsert behind a compaction)
# field → BM25 boost for the words of a query
TEXT_FIELDS = {"title": 2.0, "strong": 1.5, "body": 1.0}
FACET_FIELDS = ("sector", "country", "procurement_type")
# A query term in more than this share of the notices, and more than COMMON_MIN_DF of them, is "common": the BM25
# candidate search looks it up in titles only. Its body postings are the longest in the index and add least to
# BM25 (low IDF); at 1M notices a reference such as 'GHS/2016/lot-1' or 'supply of drugs' spent 5-17 ms walking
# them (1.5-2 ms without). Below the floor every posting list is short, so small collections are unaffected.
COMMON_SHARE = 0.05
COMMON_MIN_DF = 10_000
# A query keeps at most this many common terms, the rarest: a pasted reference ('GHS/2016/NCT/lot-1/...') splits
# into a dozen terms, several in half the notices, and reading which candidates hold each cost 18 ms at 1M.
MAX_COMMON_TERMS = 4
FLOAT_BITS = 24  # integers below 2^24 are exact in a float32 score: the room for bits read back from a score
EVIDENCE_FIELDS = ("title", "strong", "body")  # one evidence bit each per term: title or strong is "strong"
DENSE_SHARE = 1 / 64  # a (term, field) in more of the notices than this is "dense" for the evidence query
TERMS_PER_QUERY = 7  # evidence bits for 7 terms (three each) and the sector fit in FLOAT_BITS
DISTRIBUTION_TTL_S = 300.0  # the cached spread of closing dates and values is refreshed at least this often
_EDGES = [0.0] + [10 ** (e / 4) for e in range(0, 49)]  # value buckets: unknown (< 0), [0, 1), four a decade to 10^12
VALUE_RANGES = ([{"to": 0.0}] + [{"from": a, "to": b} for a, b in zip(_EDGES, _EDGES[1:], strict=False)]
                + [{"from": _EDGES[-1]}])


def analyzer() -> tantivy.TextAnalyzer:
    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.remove_long(40))
            .filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.ascii_fold())
            .filter(tantivy.Filter.stemmer("english"))
            .build())


def build_schema() -> tantivy.Schema:
    sb = tantivy.SchemaBuilder()
    sb.add_text_field("id", stored=True, tokenizer_name="raw", index_option="basic")
    sb.add_text_field("id_key", tokenizer_name="raw", index_option="basic")  # lower-case id forms
    for name in TEXT_FIELDS:
        sb.add_text_field(name, tokenizer_name=ANALYZER, index_option="freq")
    sb.add_text_field("buyer_words", tokenizer_name="default", index_option="basic")
    for name in ("country_key", "region_key", "sector_key", "type_key"):
        sb.add_text_field(name, tokenizer_name="raw", index_option="basic")
    for name in FACET_FIELDS:  # display labels, for /stats counts (stored sector: schema v1 kept as is)
        sb.add_text_field(name, stored=name == "sector", tokenizer_name="raw", fast=True, index_option="basic")
    sb.add_integer_field("closing_num", indexed=True, fast=True)
    sb.add_integer_field("published_num", fast=True)
    sb.add_integer_field("ingested_ts", fast=True)
    sb.add_integer_field("is_corrigendum", indexed=True, fast=True)
    sb.add_float_field("value_amount", indexed=True, fast=True)
    sb.add_float_field("value_report", indexed=True, fast=True)
    sb.add_bytes_field("card", stored=True)  # the Chroma metadata as JSON: what a result shows
    sb.add_bytes_field("vec", stored=True)  # the notice's vector as int8 (``quantize``), for cosines without Chroma
    return sb.build()


def quantize(vector: Sequence[float] | np.ndarray) -> bytes:
    """A vector as int8 bytes scaled to its largest component (one byte a dimension), and the cosine to a query
    is unchanged by the scale (error ~1e-3), so a candidate's similarity needs no Chroma read."""
    v = np.asarray(vector, dtype=np.float32)
    top = float(np.abs(v).max()) if v.size else 0.0
    return (np.rint(v * (127.0 / top)) if top > 0 else np.zeros_like(v)).astype(np.int8).tobytes()


def cosines(query: np.ndarray, hits: Iterable[Hit]) -> dict[str, float]:
    """Cosine of ``query`` to each hit's stored vector (hits without one are left out)."""
    q = np.asarray(query, dtype=np.float32)
    have = [h for h in hits if len(h.vec) == q.size]  # none, or another model's: the caller asks Chroma
    if not have:
        return {}
    mat = np.frombuffer(b"".join(h.vec for h in have), dtype=np.int8).reshape(len(have), -1)
    return dict(zip([h.id for h in have], cosine_rows(mat, q), strict=True))


def cosine_rows(mat: np.ndarray, query: np.ndarray) -> list[float]:
    """Cosine of ``query`` to each row of ``mat`` (a zero row or query gives 0)."""
    mat = np.asarray(mat, dtype=np.float32)
    q = np.asarray(query, dtype=np.float32)
    norms = np.linalg.norm(mat, axis=1) * (float(np.linalg.norm(q)) or 1.0)
    return [float(s) for s in mat @ q / np.where(norms == 0, 1.0, norms)]


def norm(value: str) -> str:
    """Case- and spacing-insensitive key for exact-match filters."""
    return " ".join(str(value).split()).lower()


def id_forms(tender_id: str) -> list[str]:
    """The id as stored and without its source prefix, lower-cased ('uk-cf:WTC 2025/3' → 'wtc 2025/3')."""
    low = norm(tender_id)
    return [low, low.split(":", 1)[1]] if ":" in low else [low]


def words_of(text: str) -> list[str]:
    """The default tokenizer's view of a text (lower-case alphanumeric runs)."""
    import re

    return re.findall(r"[a-z0-9]+", text.lower())


@dataclass
class Filters:
    """What a search is restricted to; every field optional. Dates are YYYYMMDD ints."""

    country: str | None = None
    region: str | None = None
    buyer: str | None = None
    sector: str | None = None
    procurement_type: str | None = None
    closing_min: int | None = None
    closing_max: int | None = None  # excludes unknown (0) closing dates
    value_min: float | None = None
    value_max: float | None = None  # excludes unknown (-1) values
    value_field: str = "value_amount"  # or value_report (reporting currency)
    exclude_corrigendum: bool = False
    ids: list[str] | None = None

    def active(self) -> bool:
        return any(v not in (None, False) for k, v in vars(self).items() if k != "value_field")


def buyer_words(buyer: str) -> list[str]:
    """The words a buyer filter requires in the buyer's name (the whole name when it has none)."""
    return words_of(buyer) or [norm(buyer)]


def closing_bounds(f: Filters) -> tuple[int, int | None] | None:
    """The closing-date range a filter asks for (None: no bound); unknown dates (0) are not "before"."""
    if f.closing_min is None and f.closing_max is None:
        return None
    lower = f.closing_min if f.closing_min is not None else 1
    return (max(lower, 1) if f.closing_max is not None else lower), f.closing_max


def value_bounds(f: Filters) -> tuple[float, float | None] | None:
    """The value range a filter asks for (None: no bound); unknown values (-1) never pass."""
    if f.value_min is None and f.value_max is None:
        return None
    return float(f.value_min if f.value_min is not None else 0.0), (float(f.value_max) if f.value_max is not None
                                                                    else None)


@dataclass
class Hit:
    """One notice found in the index. The stored card is read and parsed only when asked for: most
    candidates of a search are ranked without it, and only the page shown needs it."""

    id: str
    score: float
    raw: bytes = b""
    vec: bytes = b""  # int8 vector (``quantize``) when the document was read and holds one
    addr: tuple[int, int] = (0, 0)  # (segment, doc) in the searcher it came from
    searcher: Any = field(default=None, repr=False, compare=False)  # to read the card later
    _card: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def card(self) -> dict[str, Any]:
        if self._card is None:
            if not self.raw and self.searcher is not None:
                raw = self.searcher.doc(tantivy.DocAddress(*self.addr)).get_first("card")
                self.raw = bytes(raw) if raw else b""
            self._card = json.loads(self.raw) if self.raw else {}
        return self._card


@dataclass
class Evidence:
    """Which candidates hold each query term in a strong field (title, buyer, place, reference) or
    in the body, and which are in a given sector: what re-ranking needs besides the cosine. Kept by
    candidate (``of``, what ranking reads); the by-term views are derived from it."""

    terms: list[str]
    in_sector: set[str] = field(default_factory=set)
    by_id: dict[str, tuple[set[str], set[str]]] = field(default_factory=dict)  # id -> (strong terms, body terms)

    @classmethod
    def empty(cls, terms: Sequence[str]) -> Evidence:
        return cls(list(terms))

    @property
    def strong(self) -> dict[str, set[str]]:
        """term -> the candidates holding it in a strong field."""
        return {t: {tid for tid, (strong, _) in self.by_id.items() if t in strong} for t in self.terms}

    @property
    def body(self) -> dict[str, set[str]]:
        """term -> the candidates holding it in the body."""
        return {t: {tid for tid, (_, body) in self.by_id.items() if t in body} for t in self.terms}

    def of(self, tender_id: str) -> tuple[set[str], set[str]]:
        """The terms a candidate holds in a strong field and in the body."""
        return self.by_id.get(tender_id) or (set(), set())

    def add(self, tender_id: str, bits: int, group: Sequence[str], sector_bit: int = 0) -> None:
        """Record one candidate's evidence bits for a group of terms (three a term: title, strong, body)."""
        strong, body = self.by_id.setdefault(tender_id, (set(), set()))
        for i, term in enumerate(group):
            if bits >> (3 * i) & 3:
                strong.add(term)
            if bits >> (3 * i + 2) & 1:
                body.add(term)
        if sector_bit and bits & sector_bit:
            self.in_sector.add(tender_id)

    def update(self, other: Evidence) -> None:
        self.terms.extend(t for t in other.terms if t not in self.terms)
        self.in_sector |= other.in_sector
        for tid, (strong, body) in other.by_id.items():
            mine = self.by_id.setdefault(tid, (set(), set()))
            mine[0].update(strong)
            mine[1].update(body)


@dataclass
class Distribution:
    """How the notices of one index version spread over the range-filtered fields: the number per closing date
    (exact) and per value bucket (four a decade). With document frequencies it estimates how many notices pass
    a set of filters without counting them: a count walks every match (2-8 ms at 1M for open_only or a value
    floor, growing with the collection)."""

    docs: int
    closing: dict[int, int]
    values: dict[str, list[tuple[float, float, int]]]  # field -> (from, to, count); -inf/inf at the ends

    def closing_share(self, lower: int | None, upper: int | None) -> float:
        lo, hi = lower if lower is not None else -1, upper if upper is not None else 1 << 62
        return sum(n for day, n in self.closing.items() if lo <= day <= hi) / max(self.docs, 1)

    def value_share(self, field: str, lower: float | None, upper: float | None) -> float:
        lo = lower if lower is not None else -math.inf
        hi = upper if upper is not None else math.inf
        got = 0.0
        for a, b, n in self.values.get(field, []):
            if b <= lo or a >= hi or n == 0:
                continue
            if a >= lo and b <= hi or math.isinf(a) or math.isinf(b):
                got += n  # wholly inside (an open-ended bucket counts whole: an over-estimate is safe)
            else:
                got += n * (min(b, hi) - max(a, lo)) / (b - a)
        return got / max(self.docs, 1)


def to_document(tender_id: str, meta: dict[str, Any], text: str, vector=None) -> dict[str, Any]:
    """A tantivy document from the Chroma metadata, the embedded text and (when given) the vector of one
    tender."""
    place = " ".join(str(meta.get(k, "")) for k in ("city", "region", "country"))
    strong = " ".join([str(meta.get("buyer", "")), place, tender_id])
    body = " ".join([text] + [str(meta.get(k, "")) for k in ("summary", "keywords", "sector", "subsector",
                                                               "category", "cpv_codes")])
    return {
        "id": tender_id, "id_key": id_forms(tender_id), "title": str(meta.get("title", "")),
        "strong": strong, "body": body, "buyer_words": str(meta.get("buyer", "")),
        "country_key": norm(meta.get("country", "")), "region_key": norm(meta.get("region", "")),
        "sector_key": norm(meta.get("sector", "")), "type_key": norm(meta.get("procurement_type", "")),
        "sector": str(meta.get("sector") or "Unknown"), "country": str(meta.get("country") or "Unknown"),
        "procurement_type": str(meta.get("procurement_type") or "Unknown"),
        "closing_num": int(meta.get("closing_num") or 0), "published_num": int(meta.get("published_num") or 0),
        "ingested_ts": int(meta.get("ingested_ts") or 0),
        "is_corrigendum": int(bool(meta.get("is_corrigendum", False))),
        "value_amount": float(meta.get("value_amount", MISSING_NUMBER)),
        "value_report": float(meta.get("value_report", MISSING_NUMBER)),
        "card": json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
        **({"vec": quantize(vector)} if vector is not None else {}),
    }


class Writer:
    """Changes made while holding the index's writer; committed together by ``LexicalIndex.writing``."""

    def __init__(self, writer, schema: tantivy.Schema) -> None:
        self._writer = writer
        self._schema = schema

    def upsert(self, ids: Sequence[str], metadatas: Sequence[dict], texts: Sequence[str],
               vectors: Sequence | np.ndarray | None = None) -> int:
        """Replace these tenders' documents (delete by id + add; the add wins within one commit).
        ``vectors`` are the ones written to Chroma; without them a search reads the vector from Chroma."""
        vectors = [None] * len(ids) if vectors is None else vectors
        for tid, meta, text, vec in zip(ids, metadatas, texts, vectors, strict=True):
            self._writer.delete_documents_by_term("id", tid)
            self._writer.add_document(tantivy.Document.from_dict(to_document(tid, meta, text, vec), self._schema))
        return len(ids)

    def delete(self, ids: Iterable[str]) -> int:
        count = 0
        for tid in ids:
            self._writer.delete_documents_by_term("id", tid)
            count += 1
        return count

    def clear(self) -> None:
        self._writer.delete_all_documents()


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
        self._dist_lock = threading.Lock()
        self._dist: tuple[tuple[int, int], float, Distribution] | None = None

    def _check_version(self, recreate: bool) -> None:
        marker = self.path / "tender_schema.json"
        found = schema_of(self.path)
        if found is not None:
            if found == SCHEMA_VERSION:
                return
            if not recreate:
                raise RuntimeError(f"lexical index at {self.path} has schema v{found}, this code needs "
                                   f"v{SCHEMA_VERSION}: rebuild it (python -m tender_pipeline rebuild)")
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
            writer = self._writer(wait_s)
            try:
                yield Writer(writer, self.schema)
                writer.commit()
                writer.wait_merging_threads()
            except BaseException:
                writer.rollback()
                raise
            self._publish()
        self.index.reload()

    def _publish_uri(self) -> str:
        from tender_pipeline.settings import get_settings

        return self.publish_uri if self.publish_uri is not None else get_settings().lexical_publish_uri

    def _restore(self) -> None:
        """A writer on a new or wiped disk starts from the published index rather than overwrite it."""
        uri = self._publish_uri()
        if uri:
            from tender_pipeline.lexical_sync import restore_if_new

            if restore_if_new(self.path, uri):
                self.index.reload()

    def _publish(self) -> None:
        """Copy the committed index to LEXICAL_PUBLISH_URI when set (readers on other hosts follow it).

        Raises on failure, so the writing task fails and is retried rather than hosts diverging."""
        from tender_pipeline.settings import get_settings

        settings = get_settings()
        uri = self._publish_uri()
        if uri:
            from tender_pipeline.lexical_sync import publish_index

            got = publish_index(self.path, uri, settings.lexical_publish_grace_s)
            log.info("lexical index published to %s: %s", uri, got)

    def _writer(self, wait_s: float):
        """tantivy allows one writer per index across processes: wait for a running one to finish."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                return self.index.writer(heap_size=WRITER_HEAP, num_threads=1)
            except ValueError as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise RuntimeError(f"lexical index at {self.path} is locked by another writer: {exc}") from exc
                time.sleep(0.5)

    def upsert(self, ids: Sequence[str], metadatas: Sequence[dict], texts: Sequence[str],
               vectors: Sequence | np.ndarray | None = None) -> int:
        """Replace these tenders' documents in one commit."""
        with self.writing() as w:
            return w.upsert(ids, metadatas, texts, vectors)

    def delete_ids(self, ids: Iterable[str]) -> None:
        with self.writing() as w:
            w.delete(ids)

    def clear(self) -> None:
        with self.writing() as w:
            w.clear()

    # ------------------------------------------------------------------ queries
    def _term(self, name: str, value: Any) -> tantivy.Query:
        return tantivy.Query.term_query(self.schema, name, value, index_option="basic")

    def _any(self, name: str, values: Iterable[str]) -> tantivy.Query:
        """Any of these terms, for the per-search sets (a few hundred ids at most): a union of term
        queries costs half what ``term_set_query`` does (0.35 ms fixed + ~10 µs a term at 100k)."""
        return tantivy.Query.boolean_query([(tantivy.Occur.Should, self._term(name, v)) for v in values])

    def _range(self, name: str, kind, lower=None, upper=None) -> tantivy.Query:
        return tantivy.Query.range_query(self.schema, name, kind, lower, upper)

    def filter_query(self, f: Filters) -> tantivy.Query | None:
        """The filters as one query (None when there is nothing to filter on)."""
        must = [self._term(name, value) for name, value in self._filter_terms(f)]
        if f.buyer:
            must.extend(self._term("buyer_words", w) for w in buyer_words(f.buyer))
        if (closing := closing_bounds(f)) is not None:
            must.append(self._range("closing_num", tantivy.FieldType.Integer, *closing))
        if (value := value_bounds(f)) is not None:
            must.append(self._range(f.value_field, tantivy.FieldType.Float, *value))
        if f.exclude_corrigendum:
            must.append(self._term("is_corrigendum", 0))
        if f.ids is not None:
            must.append(tantivy.Query.term_set_query(self.schema, "id", list(f.ids)))
        if not must:
            return None
        return must[0] if len(must) == 1 else tantivy.Query.boolean_query([(tantivy.Occur.Must, q) for q in must])

    def analyze(self, text: str) -> list[str]:
        return list(dict.fromkeys(self.analyzer.analyze(text)))

    def _common_df(self, searcher) -> float:
        return max(COMMON_MIN_DF, COMMON_SHARE * searcher.num_docs)

    @staticmethod
    def _text_df(term: str, searcher) -> int:
        """In how many notices ``term`` appears in some text field (its most frequent field)."""
        return max(searcher.doc_freq(name, term) for name in TEXT_FIELDS)

    def focus(self, terms: Sequence[str], searcher) -> list[str]:
        """The query's terms, keeping only the ``MAX_COMMON_TERMS`` rarest common ones (order kept). The most
        frequent terms are the costliest to look up and the least telling; a short query is never cut."""
        common = self._common_df(searcher)
        dfs = {t: self._text_df(t, searcher) for t in terms}
        frequent = sorted((t for t in terms if dfs[t] > common), key=lambda t: dfs[t])
        drop = set(frequent[MAX_COMMON_TERMS:])
        return [t for t in terms if t not in drop]

    def text_query(self, terms: Sequence[str], searcher=None) -> tantivy.Query | None:
        """BM25 over the analysed query terms in every text field (any term may match). With a ``searcher``, a
        common term (``COMMON_SHARE``) is looked up in titles only; which fields hold it is still read for
        every candidate (``present``), so the ranking sees it."""
        should = []
        common = self._common_df(searcher) if searcher is not None else None
        for term in terms:
            fields = TEXT_FIELDS
            if common is not None and self._text_df(term, searcher) > common:
                fields = {"title": TEXT_FIELDS["title"]}
            for name, boost in fields.items():
                q = tantivy.Query.term_query(self.schema, name, term, index_option="freq")
                should.append((tantivy.Occur.Should, tantivy.Query.boost_query(q, boost) if boost != 1 else q))
        return tantivy.Query.boolean_query(should) if should else None

    @staticmethod
    def _and(*queries: tantivy.Query | None, scored: tantivy.Query | None = None) -> tantivy.Query:
        parts = [(tantivy.Occur.Must, tantivy.Query.const_score_query(q, 0.0)) for q in queries if q is not None]
        if scored is not None:
            parts.append((tantivy.Occur.Must, scored))
        if not parts:
            return tantivy.Query.all_query()
        return tantivy.Query.boolean_query(parts)

    def searcher(self) -> tantivy.Searcher:
        return self.index.searcher()

    def search(self, terms: Sequence[str], filters: Filters, limit: int, searcher=None) -> list[Hit]:
        """Top ``limit`` notices by BM25 over ``terms`` under the filters (none when no terms)."""
        s = searcher or self.searcher()
        text = self.text_query(terms, s)
        if text is None or limit <= 0:
            return []
        got = s.search(self._and(self.filter_query(filters), scored=text), limit=limit, count=False)
        return [self._hit(s, score, addr) for score, addr in got.hits]

    def exact(self, forms: Sequence[str], filters: Filters, searcher=None) -> list[Hit]:
        """Notices whose id (lower-cased, with or without source prefix) is one of ``forms``."""
        if not forms:
            return []
        s = searcher or self.searcher()
        ids = self._any("id_key", [norm(f) for f in forms])
        got = s.search(self._and(self.filter_query(filters), ids), limit=20, count=False)
        return [self._hit(s, 1.0, addr) for _, addr in got.hits]

    def count(self, filters: Filters, searcher=None) -> int:
        s = searcher or self.searcher()
        query = self.filter_query(filters)
        if query is None:
            return s.num_docs
        return s.search(query, limit=1, count=True).count

    def estimate(self, f: Filters, searcher) -> int:
        """About how many notices pass ``f``, at a cost that does not grow with the index: document frequencies
        for the terms, the cached ``Distribution`` for the ranges, the filters taken as independent. Callers
        count exactly when the estimate is small (a count is cheap when few notices match)."""
        n = searcher.num_docs
        if n == 0:
            return 0
        share = 1.0
        for name, value in self._filter_terms(f):
            share *= min(1.0, searcher.doc_freq(name, value) / n)
        if f.buyer:  # words of one name go together: the rarest bounds it
            share *= min(min(1.0, searcher.doc_freq("buyer_words", w) / n) for w in buyer_words(f.buyer))
        if (closing := closing_bounds(f)) is not None:
            share *= self.distribution(searcher).closing_share(*closing)
        if (value := value_bounds(f)) is not None:
            share *= self.distribution(searcher).value_share(f.value_field, *value)
        if f.ids is not None:
            share = min(share, len(f.ids) / n)
        # exclude_corrigendum is taken as passing every notice (corrigenda are a small share): an over-estimate
        # only narrows the kNN over-fetch
        return math.ceil(n * share)

    def _filter_terms(self, f: Filters) -> list[tuple[str, str]]:
        """The exact-match filters as (field, term), as ``filter_query`` builds them."""
        out = [(name, norm(value)) for name, value in (("country_key", f.country), ("region_key", f.region),
                                                        ("sector_key", f.sector)) if value]
        if f.procurement_type:
            wanted = norm(f.procurement_type)
            out.append(("type_key", TYPE_SYNONYMS.get(wanted, wanted)))
        return out

    def distribution(self, searcher) -> Distribution:
        """The spread of closing dates and values, aggregated once per index version (35 ms at 1M) and
        refreshed when the number of notices changes or after ``DISTRIBUTION_TTL_S``."""
        key = (searcher.num_docs, searcher.num_segments)
        with self._dist_lock:
            cached = self._dist
            if cached is not None and cached[0] == key and time.monotonic() - cached[1] < DISTRIBUTION_TTL_S:
                return cached[2]
        aggs: dict[str, Any] = {"closing_num": {"terms": {"field": "closing_num", "size": 100_000}}}
        aggs.update({name: {"range": {"field": name, "ranges": VALUE_RANGES}} for name in ("value_amount",
                                                                                          "value_report")})
        got = searcher.aggregate(tantivy.Query.all_query(), aggs) if searcher.num_docs else {}
        closing = {int(b["key"]): int(b["doc_count"]) for b in (got.get("closing_num") or {}).get("buckets", [])}
        values = {name: [(float(b.get("from", -math.inf)), float(b.get("to", math.inf)), int(b["doc_count"]))
                         for b in (got.get(name) or {}).get("buckets", [])]
                  for name in ("value_amount", "value_report")}
        found = Distribution(searcher.num_docs, closing, values)
        with self._dist_lock:
            self._dist = (key, time.monotonic(), found)
        return found

    def matching(self, filters: Filters, limit: int, searcher=None) -> list[Hit]:
        """Up to ``limit`` notices passing the filters (unordered), with their cards."""
        s = searcher or self.searcher()
        got = s.search(self._and(self.filter_query(filters)), limit=limit, count=False)
        return [self._hit(s, 0.0, addr) for _, addr in got.hits]

    def resolve(self, filters: Filters, ids: Sequence[str], terms: Sequence[str], searcher,
                sector: str | None = None, known: Sequence[Hit] = ()) -> tuple[list[Hit], Evidence]:
        """Which of ``ids`` pass the filters, and the lexical evidence (as ``present``) of those and of the
        ``known`` hits, in one query rather than two (each id looked up once). The score carries both answers:
        its low bits name the id (position + 1), the bits above are the evidence bits of the first terms, as
        many as fit below 2^24 (exact in a float): 4-5 terms beside a chunk of 200 vector hits and the BM25
        hits, up to 7 for a few ids. Further terms take ``present``, a second query. ``ids`` must be unique and
        none of them among ``known``; ``known`` hits must pass ``filters`` (they come from searches under them),
        or they get no evidence from this query."""
        ids, known = list(ids), list(known)
        named = ids + [h.id for h in known]
        evidence = Evidence.empty(terms)
        if not named:
            return [], evidence
        if len(set(named)) != len(named):
            raise ValueError("resolve() needs unique ids, none of them among the known hits")
        width = len(named).bit_length()  # positions 1..len(named)
        room = FLOAT_BITS - width - (1 if sector else 0)
        if room < len(EVIDENCE_FIELDS) and (terms or sector):
            raise ValueError(f"resolve() takes too many ids at once for evidence bits ({len(named)})")
        first = list(terms[:min(room // len(EVIDENCE_FIELDS), TERMS_PER_QUERY)])
        named_query = tantivy.Query.boolean_query([
            (tantivy.Occur.Should, tantivy.Query.const_score_query(self._term("id", tid), float(i + 1)))
            for i, tid in enumerate(named)])
        filtering = self.filter_query(filters)
        if filtering is not None:
            named_query = self._and(filtering, scored=named_query)
        query, sector_bit = self._with_evidence(named_query, first, sector, searcher, shift=width)
        got = searcher.search(query, limit=len(named), count=False)
        mask = (1 << width) - 1
        found: list[Hit] = []
        for score, a in got.hits:
            bits = round(score)
            position = bits & mask
            if not 1 <= position <= len(named):
                continue
            tid = named[position - 1]
            if position <= len(ids):
                found.append(Hit(id=tid, score=0.0, addr=(a.segment_ord, a.doc), searcher=searcher))
            evidence.add(tid, bits >> width, first, sector_bit >> width)
        if len(first) < len(terms):
            evidence.update(self.present(terms[len(first):], found + known, searcher))
        return found, evidence

    def _with_evidence(self, base: tantivy.Query, group: Sequence[str], sector: str | None, searcher,
                       shift: int = 0) -> tuple[tantivy.Query, int]:
        """``base`` (what must match) scored with evidence bits: each (term, field) is a constant-score clause
        worth its own power of two (from 2^shift), then the sector's; returns the query and the sector's bit
        (0 without a sector). For every candidate tantivy seeks the optional clauses: a union of them is walked
        in 4,096-document windows, cheap for sparse postings and slow for dense ones (a common word's body), so
        each dense clause (in more than ``DENSE_SHARE`` of the notices) gets a level of its own, seeked
        alone, and the sparse ones share one union. At 1M, evidence of 'supply medical equipment' for 200
        notices took 5.1 ms as one union and 1.6 ms chained; 'laboratory reagents kumasi' 0.7 ms as a union
        and 1.5 ms chained."""
        dense: list[tantivy.Query] = []
        sparse: list[tantivy.Query] = []
        floor = DENSE_SHARE * max(searcher.num_docs, 1)
        wanted = [(name, term, 1 << (shift + len(EVIDENCE_FIELDS) * i + j))
                  for i, term in enumerate(group) for j, name in enumerate(EVIDENCE_FIELDS)]
        sector_bit = 0
        if sector:
            sector_bit = 1 << (shift + len(EVIDENCE_FIELDS) * len(group))
            wanted.append(("sector_key", norm(sector), sector_bit))
        for name, term, bit in wanted:
            clause = tantivy.Query.const_score_query(self._term(name, term), float(bit))
            (dense if searcher.doc_freq(name, term) > floor else sparse).append(clause)
        query = base
        if sparse:
            union = sparse[0] if len(sparse) == 1 else tantivy.Query.boolean_query(
                [(tantivy.Occur.Should, c) for c in sparse])
            query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Should, union)])
        for clause in dense:
            query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Should, clause)])
        return query, sector_bit

    def present(self, terms: Sequence[str], hits: Sequence[Hit], searcher, sector: str | None = None) -> Evidence:
        """Lexical evidence for ``hits`` (which must come from ``searcher``: matched by address): which query
        terms each holds in a strong field or the body, and whether it is in ``sector``.

        One query per ``TERMS_PER_QUERY`` terms, not one per term and field: each (term, field) adds its own
        power of two to the score (``_with_evidence``), so a hit's score is the bitmask of what it holds
        (sums of distinct powers of two below 2^24 are exact in a float). No stored document is read."""
        out = Evidence.empty(terms)
        if not hits:
            return out
        by_addr = {h.addr: h.id for h in hits}
        pool = tantivy.Query.const_score_query(self._any("id", [h.id for h in hits]), 0.0)
        groups = [list(terms[g:g + TERMS_PER_QUERY]) for g in range(0, len(terms), TERMS_PER_QUERY)] or [[]]
        for n, group in enumerate(groups):
            if not group and not (sector and n == 0):
                continue
            query, sector_bit = self._with_evidence(pool, group, sector if n == 0 else None, searcher)
            got = searcher.search(query, limit=len(hits), count=False)
            for score, a in got.hits:
                tid = by_addr.get((a.segment_ord, a.doc))
                if tid is not None:
                    out.add(tid, round(score), group, sector_bit)
        return out

    def missing(self, ids: Sequence[str], batch: int = 5000) -> list[str]:
        """Which of ``ids`` the index does not hold."""
        s = self.searcher()
        found: set[str] = set()
        ids = list(ids)
        for start in range(0, len(ids), batch):
            part = ids[start:start + batch]
            got = s.search(tantivy.Query.term_set_query(self.schema, "id", part), limit=len(part), count=False)
            found.update(s.doc(addr).get_first("id") for _, addr in got.hits)
        return [tid for tid in ids if tid not in found]

    def cards(self, ids: Sequence[str], searcher=None) -> dict[str, dict[str, Any]]:
        """The stored card (Chroma metadata) of each id present."""
        if not ids:
            return {}
        s = searcher or self.searcher()
        got = s.search(tantivy.Query.term_set_query(self.schema, "id", list(ids)), limit=len(ids), count=False)
        return {h.id: h.card for h in (self._hit(s, 0.0, addr) for _, addr in got.hits)}

    def expired_ids(self, closing_before: int, limit: int = 100_000) -> list[str]:
        """Ids of notices with a known closing date before ``closing_before`` (YYYYMMDD)."""
        s = self.searcher()
        query = tantivy.Query.range_query(self.schema, "closing_num", tantivy.FieldType.Integer, 1, closing_before,
                                          include_upper=False)
        got = s.search(query, limit=limit, count=False)
        return [s.doc(addr).get_first("id") for _, addr in got.hits]

    def facets(self) -> dict[str, Any]:
        """Counts per sector / country / procurement type, document count, last ingest (aggregations)."""
        s = self.searcher()
        aggs = {name: {"terms": {"field": name, "size": 1000}} for name in FACET_FIELDS}
        aggs["last_ingest"] = {"max": {"field": "ingested_ts"}}
        got = s.aggregate(tantivy.Query.all_query(), aggs) if s.num_docs else {}
        out: dict[str, Any] = {"documents": s.num_docs,
                               "last_ingest_ts": int((got.get("last_ingest") or {}).get("value") or 0)}
        for name in FACET_FIELDS:
            out[name] = {b["key"]: b["doc_count"] for b in (got.get(name) or {}).get("buckets", [])}
        return out

    def num_docs(self) -> int:
        return self.searcher().num_docs

    @staticmethod
    def _hit(s: tantivy.Searcher, score: float, addr) -> Hit:
        doc = s.doc(addr)
        raw, vec = doc.get_first("card"), doc.get_first("vec")
        return Hit(id=doc.get_first("id"), score=float(score), raw=bytes(raw) if raw else b"",
                   vec=bytes(vec) if vec else b"", addr=(addr.segment_ord, addr.doc), searcher=s)


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


def schema_of(path: Path) -> int | None:
    """The schema version an index folder was written with (None: no index there yet)."""
    marker = path / "tender_schema.json"
    return json.loads(marker.read_text("utf-8")).get("version") if marker.exists() else None
