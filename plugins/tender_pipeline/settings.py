"""Environment-driven settings, shared by the DAG, the CLI and the search API.

One pydantic-settings model so every process reads the same variables the
same way; ``.env.example`` lists them all.
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
    incoming_uri: str = "data/incoming/"
    staging_uri: str = "data/staging/"
    ledger_uri: str = ""  # default: <staging_uri>/_ledger
    # a batch file still being written is not taken (sources.py): a folder with the marker is complete;
    # otherwise a local file must be untouched for incoming_settle_s; require_marker: no marker, no files
    incoming_settle_s: float = Field(60.0, ge=0)
    incoming_marker: str = Field("_SUCCESS", pattern=r"^[A-Za-z0-9._-]*$")
    incoming_require_marker: bool = False
    # OCDS search APIs (INCOMING_URI=ocds+https://...?publishedFrom={start}&publishedTo={end}, see ocds/api.py)
    ocds_page_size: int = Field(100, ge=1, description="Releases per page: fills {page_size} in an ocds+ URI.")
    ocds_request_delay_s: float = Field(1.0, ge=0, description="Politeness pause between two page requests.")
    ocds_timeout_s: float = Field(60.0, gt=0, description="Seconds one page request may take.")
    ocds_max_retries: int = Field(5, ge=0, description="Retries of one page after a 429, a 5xx or a dropped "
                                                       "connection, before the fetch fails (and resumes later).")
    ocds_retry_max_s: float = Field(300.0, gt=0, description="Longest single wait between retries, "
                                                             "Retry-After included.")
    quarantine_threshold: float = Field(0.20, ge=0.0, le=1.0)
    profile: str = ""  # force a column-mapping profile; empty = detect from header
    profiles_path: str = ""  # extra user profile files/dirs, os.pathsep-separated

    # Chroma
    chroma_host: str = ""  # empty = embedded PersistentClient under chroma_path
    chroma_port: int = 8000
    chroma_path: str = "data/chroma"
    tender_collection: str = "tenders"
    # lexical + filter index beside Chroma: tantivy folders <path>/<collection>; one writer, many readers
    lexical_index_path: str = "data/lexical"
    # other hosts: the writer publishes the index here after each commit (s3://bucket/prefix/ or a folder),
    # search APIs keep a local copy in lexical_index_path, polled every lexical_sync_s; empty = shared folder
    lexical_publish_uri: str = ""
    lexical_sync_s: float = Field(5.0, gt=0)
    lexical_publish_grace_s: float = Field(600.0, ge=0)  # unreferenced published files kept this long
    # lifecycle (tender_maintenance DAG): notices closed more than retention_days ago are retired
    retention_days: int = Field(14, ge=0)
    retention_unknown_days: int = Field(0, ge=0)  # no closing date: retire this long after ingest; 0 = keep
    ingest_nice: int = Field(10, ge=0, le=19)  # niceness of enrich/embed: the API on the same host stays fast
    compact_ratio: float = Field(0.25, gt=0)  # compact Chroma once retired notices reach this share of the live set

    # models
    gemini_api_key: SecretStr | None = None
    gemini_base_url: str = ""
    enrich_backend: Backend | None = None
    embed_backend: Backend | None = None
    taxonomy_path: str = ""
    local_embedder: LocalEmbedderKind = "onnx"  # engine of EMBED_BACKEND=local; torch needs requirements-torch.txt
    local_embed_batch_size: int = Field(64, ge=1)
    local_embed_batch_tokens: int = Field(512, ge=1)  # onnx engine: padded tokens per run (speed and arena size)
    embed_threads: int = Field(0, ge=0)  # local embedder's intra-op threads; 0 = one per core
    embed_device: str = "cpu"  # torch engine only
    onnx_model_dir: str = ""  # a folder from scripts/build_onnx_model.py; empty = the shipped embed/onnx_model/

    # Gemini (used only by the gemini backends)
    gemini_enrich_model: str = "gemini-2.5-flash-lite"
    gemini_embed_model: str = "gemini-embedding-001"
    gemini_embed_dim: int = Field(768, ge=1)
    gemini_enrich_batch_size: int = Field(20, ge=1, le=100)
    gemini_max_concurrency: int = Field(4, ge=1)
    gemini_rpm: int = Field(1000, ge=1)
    gemini_tpm: int = Field(4_000_000, ge=1)
    gemini_timeout_s: float = Field(60.0, gt=0)
    gemini_max_retries: int = Field(5, ge=0)
    gemini_price_input_per_m: float = 0.10
    gemini_price_output_per_m: float = 0.40
    gemini_price_embed_per_m: float = 0.15
    enrich_cache_path: str = ""  # default: <staging_uri>/_enrich_cache.sqlite
    gemini_api_version: str = ""  # empty = the SDK's default (v1); e.g. v1beta
    gemini_embed_batch_size: int = Field(100, ge=1, le=100)  # the API's per-request limit is 100
    gemini_retry_initial_s: float = Field(1.0, ge=0)  # first backoff; doubles per retry
    gemini_retry_max_s: float = Field(60.0, ge=0)  # cap on any single wait, Retry-After included
    gemini_retry_jitter_s: float = Field(1.0, ge=0)
    gemini_breaker_failures: int = Field(3, ge=1)  # consecutive exhausted requests before giving up
    gemini_max_text_chars: int = Field(2000, ge=100)  # description chars sent per tender
    gemini_context_cache: bool = True  # explicit context cache for the system instruction
    gemini_cache_min_tokens: int = Field(1024, ge=0)  # the model's context-cache minimum
    gemini_cache_ttl_s: int = Field(900, ge=60)
    gemini_price_cached_input_per_m: float = 0.025
    gemini_price_cache_storage_per_m_hour: float = 1.0

    # money: values also stored in one reporting currency (see money.py)
    report_currency: str = Field("USD", pattern=r"^[A-Za-z]{3}$")
    report_rates_path: str = ""  # empty = the shipped table (plugins/tender_pipeline/data/report_rates.json)

    # the relational database (saved searches, alert deliveries): SQLite file or postgresql://...
    database_url: str = "sqlite:///data/tender_search.db"

    # search API
    feedback_path: str = "data/feedback/feedback.jsonl"
    ask_backend: Backend | None = None  # "Ask about this tender": gemini when a key is set, else local (extractive)
    cors_origins: list[str] = Field(default_factory=list)

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
