"""Environment-driven settings, shared by the DAG, the CLI and the search API.

One pydantic-settings model so every process reads the same variables the
same way. Every field carries a ``description=``: the settings reference of the
docs (docs/reference/settings.md) is generated from it, and the docs build
fails on a field without one. ``.env.example`` lists them all.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tender_pipeline.staging import StagePath, location

Backend = Literal["local", "gemini"]
LocalEmbedderKind = Literal["onnx", "torch"]


class Settings(BaseSettings):
    """All runtime configuration; field names map to upper-case env vars."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # where batches come from and where stages stage their output
    incoming_uri: str = Field(
        "data/incoming/",
        description="Where batches arrive: a folder, `s3://bucket/prefix/`, or an `http(s)://` URL template with "
        "`{hour:%Y-%m-%d/%H}`, `{start}`, `{end}`. Layout `YYYY-MM-DD/HH/*.csv|*.xlsx` (or OCDS `*.json`, `*.jsonl`, "
        "`.gz`), `HH` being the hour (UTC) the file arrived; a run over the data interval [start, end) takes those "
        "hours' folders. Or an OCDS search API, `ocds+https://…?publishedFrom={start}&publishedTo={end}`: every page "
        "of each interval, fetched once (docs/formats.md).")
    staging_uri: str = Field(
        "data/staging/",
        description="Per-run staging the tasks hand each other by reference (`<run_id>/raw/`, `valid.jsonl`, "
        "`quarantine.csv`, `enriched.jsonl`, `embeddings.npy`, `summary.json`), so any stage can be retried alone: "
        "a local folder, or `s3://bucket/prefix/` (or another fsspec URL) when the workers share no disk.")
    ledger_uri: str = Field(
        "",
        description="Which run claimed which batch file, so each file is ingested by one interval run only. "
        "Empty: `<STAGING_URI>/_ledger`. A local folder or `s3://` (other stores are refused: they have no atomic "
        "create); `_pending/` under it notes files seen but not complete yet.")
    staging_retention_days: int = Field(
        7, ge=1, description="Run folders under STAGING_URI (raw batch, valid rows, quarantine.csv, stage files) are "
        "deleted this many days after their last write; what live notices need stays sealed in `<STAGING_URI>/_kept` "
        "until none of its notices is live, and the ledger is kept ([capacity](../running/capacity.md)).")
    # a batch file still being written is not taken (sources.py): a folder with the marker is complete;
    # otherwise a local file must be untouched for incoming_settle_s; require_marker: no marker, no files
    incoming_settle_s: float = Field(
        60.0, ge=0,
        description="A local batch file is taken once nothing has written to it for this many seconds (its mtime "
        "is this old), so a file still being copied is never read half-written; `0` takes files at once. Not "
        "applied to S3 objects (whole once listed) nor to folders holding the marker.")
    incoming_marker: str = Field(
        "_SUCCESS", pattern=r"^[A-Za-z0-9._-]*$",
        description="A file of this name in an hour folder says the folder is complete: all its batch files are "
        "taken at once, without the settle wait. Empty: no marker.")
    incoming_require_marker: bool = Field(
        False,
        description="`true`: a folder without the marker is never taken. For producers that write several files "
        "or objects per batch, where only the marker says the batch is whole (works for local folders too).")
    quarantine_threshold: float = Field(
        0.20, ge=0.0, le=1.0,
        description="Reject a whole batch when more than this share of its rows is quarantined: so many bad rows "
        "usually mean a wrong layout, not bad data. OCDS releases with no tender section (award or contract data only) "
        "are quarantined but not counted here.")
    profile: str = Field(
        "", description="Force a column-mapping profile by name (or an OCDS profile for OCDS files); empty: detected "
        "from each file's header (OCDS: from each ocid's prefix).")
    profiles_path: str = Field(
        "",
        description="Extra profile files or folders, `:`-separated; a user profile with a shipped name replaces it.")

    # OCDS search APIs (INCOMING_URI=ocds+https://...?publishedFrom={start}&publishedTo={end}, see ocds/api.py)
    ocds_page_size: int = Field(
        100, ge=1,
        description="Releases per page asked of an OCDS search API: fills `{page_size}` in an `ocds+` INCOMING_URI "
        "(UK Contracts Finder and Find a Tender allow at most 100).")
    ocds_request_delay_s: float = Field(
        1.0, ge=0, description="Politeness pause, in seconds, between two page requests to an OCDS API.")
    ocds_timeout_s: float = Field(60.0, gt=0, description="Seconds one page request to an OCDS API may take.")
    ocds_max_retries: int = Field(
        5, ge=0,
        description="Retries of one OCDS API page after a 429 (its `Retry-After` honoured), a 5xx or a dropped "
        "connection; then the fetch fails and its task retry resumes after the last stored page.")
    ocds_retry_max_s: float = Field(
        300.0, gt=0, description="Longest single wait between two tries of an OCDS API page, `Retry-After` included.")

    # Chroma
    chroma_host: str = Field(
        "",
        description="Chroma server host (`127.0.0.1` in make up, `chroma` in compose). Empty: an embedded Chroma "
        "client under `CHROMA_PATH`, for one process at a time (the CLI, tests).")
    chroma_port: int = Field(8000, description="Chroma server port (`8001` in make up).")
    chroma_path: str = Field(
        "data/chroma", description="Data folder of the embedded Chroma client, and of make up's `chroma run`.")
    tender_collection: str = Field(
        "tenders",
        description="Chroma collection name; the lexical index keeps a folder of the same name. A collection "
        "records its embedding model, so a new name is how to change models without mixing vector spaces.")
    # lexical + filter index beside Chroma: tantivy folders <path>/<collection>; one writer, many readers
    lexical_index_path: str = Field(
        "data/lexical",
        description="The lexical + filter index (tantivy) beside Chroma, one folder per collection under it. "
        "It answers words, filters and `/stats`, so no request sends Chroma a filter (which scans). Written by "
        "`upsert` (one writer at a time), read by every search API process (a shared volume in compose).")
    # other hosts: the writer publishes the index here after each commit (s3://bucket/prefix/ or a folder),
    # search APIs keep a local copy in lexical_index_path, polled every lexical_sync_s; empty = shared folder
    lexical_publish_uri: str = Field(
        "",
        description="Hosts without a shared disk (Render): the writer publishes the index here after each commit "
        "(`s3://bucket/prefix/` or a folder) and each search API keeps its own copy in `LEXICAL_INDEX_PATH`. "
        "Empty: writer and readers share `LEXICAL_INDEX_PATH`.")
    lexical_sync_s: float = Field(
        5.0, gt=0,
        description="How often, in seconds, a search API checks the published index for a new version "
        "(with `LEXICAL_PUBLISH_URI`).")
    lexical_publish_grace_s: float = Field(
        600.0, ge=0,
        description="Published index files no longer used are deleted this many seconds after they were replaced: "
        "a reader may still be downloading them.")
    # lifecycle (tender_maintenance DAG): notices closed more than retention_days ago are retired
    retention_days: int = Field(
        14, ge=0,
        description="`tender_maintenance` retires notices closed more than this many days ago from both stores, "
        "which keeps the live set, and so the cost of a search, bounded.")
    retention_unknown_days: int = Field(
        0, ge=0,
        description="Notices without a closing date are retired this many days after their ingest; `0` keeps them.")
    ingest_nice: int = Field(
        10, ge=0, le=19,
        description="Niceness of the CPU-heavy enrich and embed stages, so searches served from the same host keep "
        "their CPU while a batch lands (`0` = no change).")

    # models
    gemini_api_key: SecretStr | None = Field(
        None,
        description="Setting it switches enrichment, embeddings and answers to Gemini (unless a `*_BACKEND` says "
        "otherwise). Read from the environment only and never logged. Unset: everything runs offline.")
    gemini_base_url: str = Field(
        "", description="Another endpoint for the Gemini SDK (a proxy, a test server); empty: Google's.")
    enrich_backend: Backend | None = Field(
        None,
        description="`local` (the CPV-taxonomy enricher, offline) or `gemini` (Flash-Lite). Unset: `gemini` with "
        "a key, else `local`.")
    embed_backend: Backend | None = Field(
        None,
        description="`local` (all-MiniLM-L6-v2) or `gemini` (Gemini embeddings). Unset: `gemini` with a key, else "
        "`local`. Changing it changes the vector space: use a new `TENDER_COLLECTION`.")
    taxonomy_path: str = Field(
        "",
        description="A custom CPV taxonomy for the offline enricher (a code→label JSON object or CSV, e.g. the "
        "full CPV `en.json`), which adds subsectors (CPV groups). Empty: the 45 shipped CPV divisions.")
    sector_min_confidence: float = Field(
        0.2, ge=0.0, le=1.0,
        description="Below this confidence (0 to 1) a notice's sector is `Unclassified` (empty `sector_code`), "
        "from either enricher. With the offline model (words and embedding heads, weighed by the stated "
        "procurement type) 0.2 classifies 98 % of the UK notices of bench/enrich_quality.py, 80 % of them in one "
        "of their CPV divisions (71 % in the first code's): below 0.2 its guesses are mostly wrong. A higher "
        "value labels fewer notices, more of them right (0.3: 90 %, of them 84 %).")
    local_embedder: LocalEmbedderKind = Field(
        "onnx",
        description="Engine of the local embedder: `onnx` (ONNX Runtime, int8, no torch) or `torch` "
        "(sentence-transformers; `pip install -r requirements-torch.txt`). Changing it changes the collection's "
        "model id, so it needs a new collection or a re-ingest.")
    local_embed_batch_size: int = Field(64, ge=1, description="At most this many texts per run of the local embedder.")
    local_embed_batch_tokens: int = Field(
        512, ge=1,
        description="ONNX engine: at most this many padded tokens per run, so short texts batch wide and long ones "
        "narrow (bigger batches cost more CPU per text and more arena memory; see the benchmarks).")
    embed_threads: int = Field(
        0, ge=0, description="Intra-op threads of the local embedder; `0` = one per core.")
    embed_device: str = Field("cpu", description="Torch device of the local embedder (`LOCAL_EMBEDDER=torch` only).")
    onnx_model_dir: str = Field(
        "",
        description="Another ONNX model folder built by `scripts/build_onnx_model.py` (e.g. `--variant fp32`); its "
        "model id is recorded on the collection. Empty: the shipped int8 model "
        "(`plugins/tender_pipeline/embed/onnx_model/`).")

    # Gemini (used only by the gemini backends)
    gemini_enrich_model: str = Field(
        "gemini-2.5-flash-lite", description="Gemini model for structured enrichment and for grounded answers.")
    gemini_embed_model: str = Field("gemini-embedding-001", description="Gemini embedding model.")
    gemini_embed_dim: int = Field(768, ge=1, description="Output dimensionality of the Gemini embeddings.")
    gemini_enrich_batch_size: int = Field(20, ge=1, le=100, description="Tenders per enrichment request.")
    gemini_max_concurrency: int = Field(4, ge=1, description="Concurrent Gemini requests per task.")
    gemini_rpm: int = Field(
        1000, ge=1,
        description="Client-side limit of requests per minute, per process (each worker and the search API count "
        "apart).")
    gemini_tpm: int = Field(4_000_000, ge=1, description="Client-side limit of tokens per minute, per process.")
    gemini_timeout_s: float = Field(60.0, gt=0, description="Timeout of one Gemini request, in seconds.")
    gemini_max_retries: int = Field(5, ge=0, description="Retries of one request on 408, 429 and 5xx answers.")
    gemini_price_input_per_m: float = Field(
        0.10, description="USD per million input tokens, for the cost figures of run summaries (calls are unaffected).")
    gemini_price_output_per_m: float = Field(0.40, description="USD per million output tokens (cost figures only).")
    gemini_price_embed_per_m: float = Field(0.15, description="USD per million embedded tokens (cost figures only).")
    enrich_cache_path: str = Field(
        "",
        description="Enrichment cache (SQLite), so Gemini is paid once per changed record. Empty: "
        "`<STAGING_URI>/_enrich_cache.sqlite`; with `s3://` staging, per worker (`~/.cache/tender_pipeline/`) "
        "unless this names a volume the workers share.")
    gemini_api_version: str = Field(
        "", description="API version prefix of the Gemini SDK, e.g. `v1beta`; empty: the SDK's default (`v1`).")
    gemini_embed_batch_size: int = Field(
        100, ge=1, le=100, description="Texts per embedding request (the API's limit is 100).")
    gemini_retry_initial_s: float = Field(
        1.0, ge=0, description="First backoff wait of a retried request, in seconds; doubles per retry.")
    gemini_retry_max_s: float = Field(
        60.0, ge=0, description="Cap on any single backoff wait, `Retry-After` included.")
    gemini_retry_jitter_s: float = Field(
        1.0, ge=0, description="Random jitter added to each backoff wait, so parallel tasks do not retry in step.")
    gemini_breaker_failures: int = Field(
        3, ge=1,
        description="Consecutive requests that exhaust their retries before the run stops calling Gemini: the rest "
        "of the run gets the offline enrichment (marked `fallback`) instead of paying for an outage.")
    gemini_max_text_chars: int = Field(
        2000, ge=100, description="Description characters sent per tender for enrichment (bounds the cost).")
    gemini_context_cache: bool = Field(
        True, description="Keep the system instruction in an explicit context cache (cheaper input tokens).")
    gemini_cache_min_tokens: int = Field(
        1024, ge=0,
        description="The model's minimum size of a context cache; a shorter system instruction is sent uncached.")
    gemini_cache_ttl_s: int = Field(900, ge=60, description="Lifetime of the context cache, in seconds.")
    gemini_price_cached_input_per_m: float = Field(
        0.025, description="USD per million cached input tokens (cost figures only).")
    gemini_price_cache_storage_per_m_hour: float = Field(
        1.0, description="USD per million cached tokens per hour of cache storage (cost figures only).")

    # money: values also stored in one reporting currency (see money.py)
    report_currency: str = Field(
        "USD", pattern=r"^[A-Za-z]{3}$",
        description="Reporting currency of `value_report` and of the `min_value`/`max_value` filters, so values "
        "in GBP, ZAR, INR ... compare; must be in the rates table.")
    report_rates_path: str = Field(
        "",
        description="A replacement exchange-rates table (JSON, the shape of "
        "`plugins/tender_pipeline/data/report_rates.json`, the shipped one used when empty). Rates apply at write "
        "time: re-ingest with `force` after replacing it.")

    # the relational database (saved searches, alert deliveries): SQLite file or postgresql://...
    database_url: str = Field(
        "sqlite:///data/tender_search.db",
        description="The relational database of saved searches and alert deliveries (SQLAlchemy URL; "
        "`postgresql://user:pass@host:5432/db` uses psycopg 3). Migrated to head when the API or the alerts DAG "
        "starts, or by `python -m tender_pipeline db upgrade`.")

    # search API
    feedback_path: str = Field(
        "data/feedback/feedback.jsonl",
        description="Where `POST /feedback` appends one JSON line per rating (a shared volume in compose).")
    ask_backend: Backend | None = Field(
        None,
        description="\"Ask about this tender\": `local` (extractive, offline) or `gemini` (grounded answers). "
        "Unset: `gemini` with a key, else `local`.")
    cors_origins: list[str] = Field(
        default_factory=list,
        description="JSON list of origins allowed by CORS, e.g. `[\"https://tenders.example.org\"]`; "
        "empty: CORS is off.")

    @model_validator(mode="after")
    def _default_backends(self) -> Settings:
        """Gemini when a key is set, the offline backends otherwise."""
        default: Backend = "gemini" if self.gemini_api_key else "local"
        if self.enrich_backend is None:
            self.enrich_backend = default
        if self.embed_backend is None:
            self.embed_backend = default
        if self.ask_backend is None:
            self.ask_backend = default
        return self

    @property
    def ledger_dir(self) -> StagePath:
        """A ``Path`` or a ``staging.RemotePath`` (s3://...): where the ledger's markers live."""
        return location(self.ledger_uri) if self.ledger_uri else location(self.staging_uri) / "_ledger"

    @property
    def lexical_dir(self) -> Path:
        """The collection's lexical index: one folder per Chroma collection, like the collection itself."""
        return Path(self.lexical_index_path) / self.tender_collection

    @property
    def enrich_cache_file(self) -> Path:
        if self.enrich_cache_path:
            return Path(self.enrich_cache_path)
        return Path(self.staging_uri) / "_enrich_cache.sqlite"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return Settings()
