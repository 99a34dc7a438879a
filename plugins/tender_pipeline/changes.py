"""What one ingest run changed in the index: the reference alerts work from.

Every row of a run's ``enriched.jsonl`` was upserted (unchanged records never
reach it), so it lists exactly the run's new and updated tenders with the
content hash each now has. The ``upsert`` task publishes the run's staging
folder on the ``tenders`` Asset; the alerts DAG reads the changes back here.
"""

from __future__ import annotations

from dataclasses import dataclass

from tender_pipeline import staging

ASSET_NAME = "tenders"


@dataclass(frozen=True)
class Change:
    tender_id: str
    version: str  # the content hash written by this run
    existed: bool  # an update of a tender already indexed (else new)


def asset_extra(summary: dict) -> dict:
    """The asset-event extra for a finished run: a staging reference and counts, never records."""
    return {"run_id": summary.get("run_id"), "staging_dir": summary.get("staging_dir"),
            "inserted": summary.get("inserted", 0), "updated": summary.get("updated", 0)}


def batch_changes(staging_dir: str) -> list[Change]:
    """The run's new and updated tenders, in file order (the last write of an id wins)."""
    path = staging.location(staging_dir) / "enriched.jsonl"  # a folder or s3://… (tender_pipeline.staging)
    if not path.exists():
        return []
    found: dict[str, Change] = {}
    for row in staging.read_jsonl(path):
        tid = row["record"]["tender_id"]
        found[tid] = Change(tid, row["content_hash"], bool(row.get("existed")))
    return list(found.values())


def record_alerts(staging_dir: str, counts: dict) -> None:
    """Add the alert counts to the run's summary.json (and alerts.json), next to the ingest counts."""
    run = staging.location(staging_dir)
    staging.write_json(run / "alerts.json", counts)
    summary_path = run / "summary.json"
    if summary_path.exists():
        summary = staging.read_json(summary_path)
        summary["alerts"] = counts
        staging.write_json(summary_path, summary)
