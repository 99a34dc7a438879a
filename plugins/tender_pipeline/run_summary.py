"""A run's one-record summary, from the counts each stage wrote (``<stage>.json``) in its staging folder."""

from __future__ import annotations

from typing import Any

from tender_pipeline import staging

STAGES = ("fetch", "validate", "enrich", "embed", "upsert")


def summarize(run: staging.StagePath) -> dict[str, Any]:
    """One record of the whole run from the stages' counts."""
    st = {name: staging.read_json(run / f"{name}.json") for name in STAGES if (run / f"{name}.json").exists()}
    f, v, e, m, u = (st.get(n, {}) for n in STAGES)
    per_file: dict[str, dict[str, int]] = {}
    inserted, updated = u.get("inserted_per_file", {}), u.get("updated_per_file", {})
    for name, counts in v.get("per_file", {}).items():
        per_file[name] = {
            "profile": counts["profile"], "rows": counts["rows"], "inserted": inserted.get(name, 0),
            "updated": updated.get(name, 0), "unchanged": e.get("unchanged_per_file", {}).get(name, 0),
            "duplicates": counts["duplicates"], "quarantined": counts["quarantined"],
        }
    return {
        "run_id": f.get("run_id"), "files": len(f.get("files", [])),
        "skipped_files": len(f.get("skipped_files", [])),
        "pending_files": len(f.get("pending_files", [])), "late_files": f.get("late_files", 0),
        "rows_read": v.get("rows_read", 0), "valid": v.get("valid", 0),
        "quarantined": v.get("quarantined", 0), "duplicates": v.get("duplicates", 0),
        "unchanged": e.get("unchanged", 0), "stale": e.get("stale", 0), "enriched": e.get("enriched", 0),
        "embedded": m.get("embedded", 0), "upserted": u.get("upserted", 0),
        "inserted": u.get("inserted", 0), "updated": u.get("updated", 0),
        "collection_count": u.get("collection_count"),
        "report_currency": u.get("report_currency"),
        "unknown_currency": sum(u.get("unknown_currency", {}).values()),
        "unknown_currencies": u.get("unknown_currency", {}),
        "enrichment_backend": e.get("backend"), "enrichment_sources": e.get("sources", {}),
        "enrichment_usage": e.get("usage", {}),
        "enrichment_cache_misses": int(e.get("usage", {}).get("cache_misses", 0)),
        "embedding_model": m.get("model"),
        "embedding_usage": m.get("usage", {}),
        "sectors_refined": m.get("sectors_refined", 0), "sectors_moved": m.get("sectors_moved", 0),
        "quarantine_reasons": v.get("quarantine_reasons", []),
        "seconds": {name: st[name].get("seconds") for name in st},
        "per_file": per_file,
        "staging_dir": str(run),
    }
