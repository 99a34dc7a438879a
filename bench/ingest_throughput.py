"""Ingest throughput and memory: the pipeline, the embedder alone, and stock sentence-transformers, one run.

Builds a synthetic batch of ``--rows`` canonical tenders (the sample's
templates with fresh ids, so nothing is skipped as unchanged) and runs three
child processes one after the other, each with its own peak RSS:

1. ``ingest``: the five stages into a real ``chroma run`` server with the
   configured embedder (default: ONNX Runtime int8) — stage seconds, rows/s,
   peak RSS of the ingest; it writes the embedded document texts;
2. ``embed``: the same embedder alone on those texts (the embed-only baseline);
3. ``stock``: a bare ``SentenceTransformer.encode`` on the same texts.

Each embedding child times ``--slices`` equal slices (wall and process CPU
seconds, all threads) and the figures are medians over the slices. Printed as
JSON: embed rows/s and per-CPU-second ratio vs stock, mean cosine to stock,
the pipeline's rows/s ÷ embed-only rows/s (wall, and per process CPU-second:
on a shared host read the CPU one), and the three peak RSS figures.

    .venv/bin/python bench/ingest_throughput.py --rows 20000
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

import numpy as np  # noqa: E402

from bench import _embedders as emb  # noqa: E402
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


# --------------------------------------------------------------------------- children
def child_ingest(work: Path, host: str, port: int) -> dict:
    settings = Settings(chroma_host=host, chroma_port=port, staging_uri=str(work / "staging"),
                        lexical_index_path=str(work / "lexical"),  # not the clone's data/lexical
                        tender_collection=f"bench_{uuid.uuid4().hex[:8]}")
    cpu = time.process_time()
    summary = pipeline.run_all(settings, "bench_ingest", source=str(work / "batch.csv"))
    cpu = time.process_time() - cpu  # this process, all threads (the Chroma server is another process)
    peak = emb.peak_rss_mb()
    run = Path(summary["staging_dir"])
    texts = [document_text(EnrichedTender.model_validate(r)) for r in staging.read_jsonl(run / "enriched.jsonl")]
    (work / "texts.json").write_text(json.dumps(texts), "utf-8")
    return {"stage_seconds": summary["seconds"], "upserted": summary["upserted"], "cpu_seconds": round(cpu, 2),
            "embedder": get_embedder(settings).model_id, "peak_rss_mb": round(peak, 1)}


def child_embed(work: Path, engine: str, slices: int, compare_rows: int = 0) -> dict:
    texts = json.loads((work / "texts.json").read_text("utf-8"))
    if 0 < compare_rows < len(texts):  # an even spread of the batch: the same mix of lengths, fewer texts
        texts = texts[::len(texts) // compare_rows][:compare_rows]
    settings = Settings(embed_backend="local", local_embedder=engine)
    embedder = get_embedder(settings)
    embedder.embed_documents(texts[:16])  # load outside the timing
    parts, walls, cpus = [], [], []
    for chunk in np.array_split(np.arange(len(texts)), slices):
        vectors, wall, cpu = emb.timed_embed(embedder, [texts[i] for i in chunk])
        parts.append(vectors)
        walls.append(wall / len(chunk))
        cpus.append(cpu / len(chunk))
    np.save(work / f"vectors_{engine}.npy", np.vstack(parts))
    return {"embedder": embedder.model_id, "texts": len(texts), "seconds": round(sum(walls) * len(texts) / slices, 2),
            "median_rows_per_s": round(1 / statistics.median(walls), 1),
            "median_rows_per_cpu_s": round(1 / statistics.median(cpus), 1),
            "slice_rows_per_cpu_s": [round(1 / c, 1) for c in cpus], "peak_rss_mb": round(emb.peak_rss_mb(), 1)}


def run_child(args: list[str]) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"child {args[:2]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--slices", type=int, default=5, help="timed slices per embedding child (medians)")
    parser.add_argument("--compare-rows", type=int, default=0,
                        help="embed only this many of the batch's texts (an even spread) in the embed-only and "
                             "stock children; rates are per text, so the ratios hold (0 = all)")
    parser.add_argument("--child", choices=("ingest", "onnx", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--chroma", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "ingest":
        host, port = args.chroma.rsplit(":", 1)
        print(json.dumps(child_ingest(args.work, host, int(port))))
        return
    if args.child:
        print(json.dumps(child_embed(args.work, args.child, args.slices, args.compare_rows)))
        return

    emb.require_torch("the stock sentence-transformers baseline of bench/ingest_throughput.py")
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp, \
            chroma_server(Path(tmp) / "chroma") as (host, port):
        work = Path(tmp)
        write_batch(work / "batch.csv", args.rows, seed=int(time.time()) % 1000)
        common = ["--work", str(work), "--slices", str(args.slices), "--compare-rows", str(args.compare_rows)]
        ingest = run_child(["--child", "ingest", "--chroma", f"{host}:{port}", *common])
        embed = run_child(["--child", "onnx", *common])
        stock = run_child(["--child", "torch", *common])
        cosines = np.sum(np.load(work / "vectors_onnx.npy") * np.load(work / "vectors_torch.npy"), axis=1)
    stages = ingest["stage_seconds"]
    total = sum(stages[s] for s in pipeline.STAGES)
    pipeline_rows_per_s = args.rows / total
    per_cpu = embed["median_rows_per_cpu_s"] / stock["median_rows_per_cpu_s"]
    vs_embed_only = pipeline_rows_per_s / embed["median_rows_per_s"]
    # the same ratio per CPU-second of each process: wall times taken minutes apart on a shared host differ
    # with the others' load; CPU time does not (Chroma's own CPU is not in it)
    vs_embed_only_cpu = args.rows / ingest["cpu_seconds"] / embed["median_rows_per_cpu_s"]
    print(json.dumps({
        "benchmark": "ingest_throughput", "rows": args.rows, "compared_texts": embed["texts"],
        "threads": emb.threads(), "slices": args.slices,
        "embedder": embed["embedder"], "stock": stock["embedder"],
        "pipeline": {"stage_seconds": {k: round(stages[k], 2) for k in pipeline.STAGES},
                     "records_per_s": {k: round(args.rows / stages[k], 1) for k in pipeline.STAGES if stages[k] > 0},
                     "total_seconds": round(total, 1), "rows_per_s": round(pipeline_rows_per_s, 1),
                     "upserted": ingest["upserted"], "peak_rss_mb": ingest["peak_rss_mb"],
                     "cpu_seconds": ingest["cpu_seconds"],
                     "rows_per_cpu_s": round(args.rows / ingest["cpu_seconds"], 1)},
        "embed_only": embed, "stock_sentence_transformers": stock,
        "embed_vs_stock_rows_per_s": round(embed["median_rows_per_s"] / stock["median_rows_per_s"], 2),
        "embed_vs_stock_per_cpu_second": round(per_cpu, 2),
        "mean_cosine_to_stock": round(float(cosines.mean()), 4),
        "min_cosine_to_stock": round(float(cosines.min()), 4),
        "pipeline_vs_embed_only": round(vs_embed_only, 3),
        "pipeline_vs_embed_only_per_cpu_second": round(vs_embed_only_cpu, 3),
        "projected_minutes_per_20k_batch": round(total / args.rows * 20000 / 60, 1),
        "acceptance": {"embed_per_cpu_second_vs_stock >= 2.5": per_cpu >= 2.5,
                       "pipeline_vs_embed_only >= 0.8": vs_embed_only >= 0.8,
                       "pipeline_vs_embed_only_per_cpu_second >= 0.8": vs_embed_only_cpu >= 0.8,
                       "mean_cosine_to_stock >= 0.99": float(cosines.mean()) >= 0.99,
                       "ingest_peak_rss_mb <= 700": ingest["peak_rss_mb"] <= 700},
    }, indent=2))


if __name__ == "__main__":
    main()
