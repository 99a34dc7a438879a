"""Search-service settings: the shared pipeline settings plus a few ranking and runtime knobs.

Every field is read from the environment (pydantic-settings), so the API and
the DAG agree on ``CHROMA_HOST``, ``TENDER_COLLECTION``, ``EMBED_BACKEND`` ...
Like ``Settings``, every field needs a ``description=`` (the docs are generated from it).
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field, field_validator

from tender_pipeline.settings import Settings


class ApiSettings(Settings):
    """Settings for the search API (env vars are the upper-case field names)."""

    # candidate generation
    search_candidates: int = Field(
        60, ge=10, le=1000,
        description="Nearest vectors re-ranked per query (at least `offset + limit`); steered with "
        "`bench/relevance.py`.")
    search_lexical_candidates: int = Field(
        50, ge=0, le=1000, description="BM25 top notices under the filters re-ranked per query.")
    search_exhaustive_max: int = Field(
        1000, ge=0, le=100_000,
        description="When at most this many notices pass the filters, all of them are ranked by the vectors "
        "stored in the lexical index, instead of an over-fetched kNN that could miss them. Also the slice size "
        "in which alerts rank a batch.")
    search_max_overfetch: int = Field(
        1000, ge=10, le=10_000,
        description="Cap on the unfiltered kNN over-fetch for broad filters (hits that fail the filters are "
        "dropped).")
    # fusion weights (steered with bench/relevance.py)
    rank_vector_weight: float = Field(
        0.55, ge=0, le=1,
        description="Weight `w` of vector similarity in the fused score `w·cos + (1−w)·lexical`.")
    rank_bm25_weight: float = Field(
        0.4, ge=0, le=1,
        description="Share `b` of the BM25 score (scaled by the candidates' best) in `lexical = (1−b)·coverage + "
        "b·BM25`; coverage is the IDF-weighted share of the query's terms a notice holds.")
    rank_sector_bonus: float = Field(
        0.04, ge=0, le=0.2,
        description="Bonus when a result's sector is the one the query points at (a nudge, never a filter).")
    # runtime
    embed_threads: int = Field(
        1, ge=0, validation_alias=AliasChoices("embed_threads", "torch_threads"),
        description="Search API: intra-op threads of the local embedder (`0` = one per core). One by default: "
        "each request thread embeds one query, and more threads only add contention (measured on a loaded 2-core "
        "box: ~25 ms per query embedding with 1 thread, ~200 ms with 2). `TORCH_THREADS` is its older name.")
    warm_embedder: bool = Field(
        True,
        description="Load the embedding model in the background at start-up, so the first search does not wait "
        "for it.")
    stats_ttl_s: float = Field(60.0, ge=0, description="Longest the counts of `/stats` and `/sectors` are served "
                               "before they are aggregated again, in seconds; a new index version refreshes them "
                               "sooner.")
    chroma_retry_s: float = Field(
        2.0, ge=0, description="Minimum pause between Chroma reconnect attempts, in seconds.")
    # feedback file rotation (search_api/feedback.py)
    feedback_rotate_bytes: int = Field(
        32 << 20, ge=0, description="Rotate FEEDBACK_PATH once it reaches this many bytes: the full file is renamed "
        "with a UTC stamp and gzipped beside it (0 = never rotate).")
    feedback_keep_days: int = Field(
        365, ge=1, description="Rotated feedback archives older than this many days are deleted; /feedback/summary "
        "counts the current file plus the archives kept.")
    # saved searches and alerts (search_api/alerts, dags/tender_alerts.py)
    alert_min_score: float = Field(
        0.55, ge=0, le=1, description="A batch notice alerts a saved search only at this `/search` score or above.")
    alert_max_per_search: int = Field(
        200, ge=1, le=1000, description="Matches per saved search per batch.")
    alert_webhook_attempts: int = Field(
        5, ge=1, le=20,
        description="POSTs per webhook delivery (5xx, 408, 429 and network errors are retried) before it is "
        "parked.")
    alert_webhook_backoff_s: float = Field(
        2.0, ge=0, description="First retry wait of a webhook delivery, in seconds; doubles, capped at 60 s.")
    alert_webhook_timeout_s: float = Field(10.0, gt=0, description="Timeout of one webhook POST, in seconds.")
    alert_webhook_allow_private: bool = Field(
        False,
        description="Allow webhooks to private and loopback addresses (intranet receivers, tests); link-local, "
        "cloud-metadata and database addresses stay refused.")
    alert_smtp_conn_id: str = Field(
        "smtp_default", description="Airflow connection the email digests go through.")
    alert_email_from: str = Field(
        "tender-alerts@localhost",
        description="Sender of the email digests when the SMTP connection names none (its `from_email` extra).")
    # hardening (search_api/security.py)
    max_body_bytes: int = Field(
        65_536, ge=1024,
        description="Larger request bodies get 413 (checked before reading, and again while streaming).")
    max_query_bytes: int = Field(
        32_768, ge=256,
        description="Longer query strings get 414. Above every field's own limit (a 500-character `q`, "
        "percent-encoded, is up to 6 KB), so those get their 422.")
    rate_limit: str = Field(
        "600/minute",
        description="Requests per client address ([limits](https://limits.readthedocs.io) notation; empty = off); "
        "beyond it 429 with `Retry-After`. `/health`, `/ready`, `/metrics` and static files are exempt.")
    rate_limit_storage_uri: str = Field(
        "memory://",
        description="Where the rate-limit counts live: `memory://` per process, or `redis://host:6379` to share "
        "them between replicas.")

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
