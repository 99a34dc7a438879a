"""Search-service settings: the shared pipeline settings plus a few ranking and runtime knobs.

Every field is read from the environment (pydantic-settings), so the API and
the DAG agree on ``CHROMA_HOST``, ``TENDER_COLLECTION``, ``EMBED_BACKEND`` ...
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field, field_validator

from tender_pipeline.settings import Settings


class ApiSettings(Settings):
    """Settings for the search API (env vars are the upper-case field names)."""

    # candidate generation
    search_candidates: int = Field(60, ge=10, le=1000)  # nearest vectors re-ranked per query (bench/README)
    search_lexical_candidates: int = Field(50, ge=0, le=1000)  # BM25 top notices under the filters
    search_exhaustive_max: int = Field(1000, ge=0, le=100_000)  # ≤ this many pass the filters: rank them all
    search_max_overfetch: int = Field(1000, ge=10, le=10_000)  # cap on kNN over-fetch for broad filters
    # fusion weights (steered with bench/relevance.py)
    rank_vector_weight: float = Field(0.55, ge=0, le=1)
    rank_sector_bonus: float = Field(0.04, ge=0, le=0.2)
    # runtime
    # One query at a time per request thread: intra-op parallelism only adds contention (measured on a
    # loaded 2-core box: ~25 ms per query embedding with 1 thread, ~200 ms with 2). TORCH_THREADS is the old name.
    embed_threads: int = Field(1, ge=0, validation_alias=AliasChoices("embed_threads", "torch_threads"))
    warm_embedder: bool = True  # load the embedding model in the background at startup
    stats_ttl_s: float = Field(60.0, ge=0)  # /stats and facet cache lifetime
    chroma_retry_s: float = Field(2.0, ge=0)  # minimum pause between reconnect attempts
    # feedback file rotation (search_api/feedback.py)
    feedback_rotate_bytes: int = Field(
        32 << 20, ge=0, description="Rotate FEEDBACK_PATH once it reaches this many bytes: the full file is renamed "
        "with a UTC stamp and gzipped beside it (0 = never rotate).")
    feedback_keep_days: int = Field(
        365, ge=1, description="Rotated feedback archives older than this many days are deleted; /feedback/summary "
        "counts the current file plus the archives kept.")
    # saved searches and alerts (search_api/alerts, dags/tender_alerts.py)
    alert_min_score: float = Field(0.55, ge=0, le=1)  # a batch notice alerts only at this /search score or above
    alert_max_per_search: int = Field(200, ge=1, le=1000)  # matches per saved search per batch
    alert_webhook_attempts: int = Field(5, ge=1, le=20)  # POSTs per delivery before it is parked
    alert_webhook_backoff_s: float = Field(2.0, ge=0)  # first retry wait; doubles, capped at 60 s
    alert_webhook_timeout_s: float = Field(10.0, gt=0)
    alert_webhook_allow_private: bool = False  # allow webhooks to private/loopback addresses (tests, intranets)
    alert_smtp_conn_id: str = "smtp_default"  # Airflow connection the email digests go through
    alert_email_from: str = "tender-alerts@localhost"
    # hardening (search_api/security.py)
    max_body_bytes: int = Field(65_536, ge=1024)  # larger request bodies get 413
    # longer query strings get 414; above the fields' own limits (q 500 chars percent-encoded is up to 6 KB)
    max_query_bytes: int = Field(32_768, ge=256)
    rate_limit: str = "600/minute"  # per client address, `limits` notation; empty = off
    rate_limit_storage_uri: str = "memory://"  # redis://host:6379 to share counts between replicas

    @field_validator("rate_limit")
    @classmethod
    def _parse_rate_limit(cls, value: str) -> str:
        """Fail at start-up on a typo rather than serve without a limit."""
        if value.strip():
            from limits import parse

            parse(value)  # ValueError names the bad string
        return value.strip()


@lru_cache(maxsize=1)
def get_api_settings() -> ApiSettings:
    """Process-wide settings from the environment."""
    return ApiSettings()
