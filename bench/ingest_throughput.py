"""Ingest throughput and memory: records/s per stage against a stock-encode baseline.

Builds a synthetic batch of ``--rows`` canonical tenders (the sample's
templates with fresh ids, so nothing is skipped as unchanged), runs the five
stages into a real ``chroma run`` server, and — in the same process, on the
same document texts — times a bare ``SentenceTransformer.encode`` as the
baseline. Repeats ``--repeats`` times on fresh collections and prints medians
as JSON, including ``embed_vs_baseline`` (our embed stage ÷ bare encode: 1.0
means no overhead) and the projected minutes for a 20,000-row batch.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from tender_pipeline import pipeline, staging  # noqa: E402
from tender_pipeline.documents import document_text  # noqa: E402
from tender_pipeline.embed import get_embedder  # noqa: E402
from tender_pipeline.models import EnrichedTender  # noqa: E402
from tender_pipeline.settings import Settings  # noqa: E402
from tests.fixtures.make_sample import COLUMNS, make_rows  # noqa: E402
from tests.services import chroma_server  # noqa: E402


def write_batch(path: Path, rows: int, seed: int) -> Path:
    base = make_rows(n=rows, seed=seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for i, row in enumerate(base):
            writer.writerow(dict(row, tender_id=f"{row['tender_id']}-{seed}-{i}"))
    return path


def one_run(settings: Settings, batch: Path) -> dict:
    run_id = f"bench__{uuid.uuid4().hex[:8]}"
    summary = pipeline.run_all(settings, run_id, source=str(batch))
    run = Path(summary["staging_dir"])
    texts = [document_text(EnrichedTender.model_validate(r)) for r in staging.read_jsonl(run / "enriched.jsonl")]
    model = get_embedder(settings)._load()  # the same SentenceTransformer, called bare
    started = time.perf_counter()
    model.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=False)
    baseline = time.perf_counter() - started
    return {"seconds": summary["seconds"], "baseline_encode_s": baseline, "upserted": summary["upserted"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, chroma_server(Path(tmp) / "chroma") as (host, port):
        runs = []
        for rep in range(args.repeats):
            settings = Settings(chroma_host=host, chroma_port=port, staging_uri=f"{tmp}/staging",
                                tender_collection=f"bench_{rep}_{uuid.uuid4().hex[:6]}")
            batch = write_batch(Path(tmp) / f"batch{rep}.csv", args.rows, seed=rep)
            runs.append(one_run(settings, batch))
    stages = {s: statistics.median(r["seconds"][s] for r in runs) for s in pipeline.STAGES}
    total = sum(stages.values())
    baseline = statistics.median(r["baseline_encode_s"] for r in runs)
    print(json.dumps({
        "benchmark": "ingest_throughput", "rows": args.rows, "repeats": args.repeats,
        "median_stage_seconds": {k: round(v, 3) for k, v in stages.items()},
        "median_records_per_s": {k: round(args.rows / v, 1) for k, v in stages.items() if v > 0},
        "median_total_seconds": round(total, 2),
        "median_baseline_encode_s": round(baseline, 3),
        "embed_vs_baseline": round(stages["embed"] / baseline, 3),
        "total_vs_baseline": round(total / baseline, 3),
        "projected_minutes_per_20k_batch": round(total / args.rows * 20000 / 60, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "upserted": [r["upserted"] for r in runs],
    }, indent=2))


if __name__ == "__main__":
    main()
