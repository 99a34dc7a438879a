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
other hosts follow a copy published after each commit (``publish``, ``follow``).
The id is the tender id, so an upsert is delete-by-id + add, and a rerun converges.

The modules, one concern each:

- ``schema``: fields, analyzer, version marker; ``keys``: normalised filter and id keys;
  ``documents``: one tender as a document; ``vectors``: int8 vectors and cosines;
- ``index``: ``LexicalIndex`` and ``open_index``; ``writer``: the one writer and its changes;
- ``queries``: query building blocks and the BM25 word query; ``filters``: ``Filters`` as a query;
  ``hits``: ``Hit``; ``evidence``: which terms each candidate holds; ``estimates``: how many pass;
- ``segment_files``, ``copy_stores``, ``publish``, ``follow``: copies on other hosts
  (``tender_pipeline.lexical_sync`` re-exports them under their old names).

This package re-exports the public names so ``from tender_pipeline.lexical import ...`` keeps working.
Tuning constants (``COMMON_MIN_DF``, ``DENSE_SHARE``...) are read from the module that defines them:
change or patch them there, not here.
"""

from tender_pipeline.lexical.documents import to_document
from tender_pipeline.lexical.estimates import DISTRIBUTION_TTL_S, VALUE_RANGES, Distribution
from tender_pipeline.lexical.evidence import DENSE_SHARE, EVIDENCE_FIELDS, FLOAT_BITS, TERMS_PER_QUERY, Evidence
from tender_pipeline.lexical.filters import (
    TYPE_SYNONYMS,
    Filters,
    buyer_words,
    closing_bounds,
    value_bounds,
)
from tender_pipeline.lexical.hits import Hit, read
from tender_pipeline.lexical.index import LexicalIndex, open_index
from tender_pipeline.lexical.keys import id_forms, norm, words_of
from tender_pipeline.lexical.queries import COMMON_MIN_DF, COMMON_SHARE, MAX_COMMON_TERMS
from tender_pipeline.lexical.schema import (
    ANALYZER,
    FACET_FIELDS,
    MISSING_NUMBER,
    SCHEMA_VERSION,
    TEXT_FIELDS,
    analyzer,
    build_schema,
    schema_of,
)
from tender_pipeline.lexical.vectors import cosine_rows, cosines, quantize
from tender_pipeline.lexical.writer import LOCK_WAIT_S, WRITER_HEAP, Writer

__all__ = [
    "read",
    "ANALYZER", "COMMON_MIN_DF", "COMMON_SHARE", "DENSE_SHARE", "DISTRIBUTION_TTL_S", "EVIDENCE_FIELDS",
    "FACET_FIELDS", "FLOAT_BITS", "LOCK_WAIT_S", "MAX_COMMON_TERMS", "MISSING_NUMBER", "SCHEMA_VERSION",
    "TERMS_PER_QUERY", "TEXT_FIELDS", "TYPE_SYNONYMS", "VALUE_RANGES", "WRITER_HEAP",
    "Distribution", "Evidence", "Filters", "Hit", "LexicalIndex", "Writer",
    "analyzer", "build_schema", "buyer_words", "closing_bounds", "cosine_rows", "cosines", "id_forms", "norm",
    "open_index", "quantize", "schema_of", "to_document", "value_bounds", "words_of",
]
