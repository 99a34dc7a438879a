"""The tantivy schema of the lexical index: its fields, its analyzer and the version marker of a folder.

A change to the fields is a new ``SCHEMA_VERSION``: an index folder of another version is refused (or moved
aside by the rebuild commands), and each version publishes its copies apart (``copy_stores.store_for``).
"""

from __future__ import annotations

import json
from pathlib import Path

import tantivy

SCHEMA_VERSION = 4  # v2: each notice's vector (int8) beside its card; v3: its text (Chroma keeps none), sector_pair,
# Unclassified filed apart, the card's description; v4: its Chroma slot (kNN resolved here, not from Chroma)
SCHEMA_MARKER = "tender_schema.json"  # in the index folder: {"version": SCHEMA_VERSION}
ANALYZER = "tender"  # simple tokens, lower-cased, ASCII-folded, English-stemmed
MISSING_NUMBER = -1.0
# field → BM25 boost for the words of a query
TEXT_FIELDS = {"title": 2.0, "strong": 1.5, "body": 1.0}
FACET_FIELDS = ("sector", "country", "procurement_type")


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
    # "<CPV division>|<sector label>" ('|Unclassified' when unclassified): one terms aggregation counts the
    # sectors with their codes (``facets``), at the cost of counting labels alone (a nested one costs 2.4x)
    sb.add_text_field("sector_pair", tokenizer_name="raw", fast=True, index_option="basic")
    sb.add_integer_field("slot", stored=True, indexed=True)  # the Chroma slot holding its vector (``slots``)
    sb.add_integer_field("closing_num", indexed=True, fast=True)
    sb.add_integer_field("published_num", fast=True)
    sb.add_integer_field("ingested_ts", fast=True)
    sb.add_integer_field("is_corrigendum", indexed=True, fast=True)
    sb.add_float_field("value_amount", indexed=True, fast=True)
    sb.add_float_field("value_report", indexed=True, fast=True)
    sb.add_bytes_field("card", stored=True)  # the Chroma metadata as JSON: what a result shows
    sb.add_bytes_field("vec", stored=True)  # the notice's vector as int8 (``quantize``), for cosines without Chroma
    sb.add_bytes_field("text", stored=True)  # the embedded text (UTF-8): the tender page and ask read it here
    return sb.build()


def schema_of(path: Path) -> int | None:
    """The schema version an index folder was written with (None: no index there yet)."""
    marker = path / SCHEMA_MARKER
    return json.loads(marker.read_text("utf-8")).get("version") if marker.exists() else None
