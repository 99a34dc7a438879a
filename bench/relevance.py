"""Relevance of the search service vs a plain-vector baseline on labelled queries (prints JSON).

Starts a throwaway `chroma run`, fills it from tests/fixtures/sample_tenders.csv
with the real pipeline (offline backends), then runs every query in
bench/queries.json through the service's ranking and through a bare Chroma
vector query in the same run, so the two are compared like for like.

Metrics (mean over queries):
  ndcg@10  graded gains (2^grade - 1), ideal order from the labels;
  mrr@10   reciprocal rank of the first grade-2 ("what was asked for") result;
  recall@10, recall@50  share of the labelled relevant notices in the top 10 / 50.

Usage:
  python bench/relevance.py                 # service vs baseline (the synthetic sample: a regression check)
  python bench/relevance.py --dataset dev [--store DIR] [--cpu-against main]
        # the real labelled dev set (../shared/relevance): the service through /search vs plain BM25 and
        # plain dense, scored by the set's own eval.py (bench/relevance_dev.py says how)
  python bench/relevance.py --sweep         # also a grid of fusion weights (to steer ranking)
  python bench/relevance.py --per-query     # include per-query figures
  python bench/relevance.py --embedders stock,onnx-fp32,onnx-int8,onnx-int8-ffn-fp32,onnx-int8-per-tensor
        # the quality gate of the local embedder: each variant fills its own collection and is
        # ranked on the labels; on --real N real notices (../shared/data/real) each is compared
        # with stock (mean cosine, NN overlap@10, CPU seconds); "chosen" is the fastest whose
        # nDCG@10 is within 0.005 of stock and whose mean cosine to stock is >= 0.99

The default labels cover the synthetic sample only; --dataset dev steers ranking on real notices.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from search_api.intent import SectorIntent  # noqa: E402
from search_api.models import SearchParams  # noqa: E402
from search_api.search import Searcher  # noqa: E402
from search_api.settings import ApiSettings  # noqa: E402
from tender_pipeline import pipeline  # noqa: E402
from tender_pipeline.embed import get_embedder  # noqa: E402
from tender_pipeline.lexical import open_index  # noqa: E402
from tests.services import chroma_server  # noqa: E402

SAMPLE = ROOT / "tests" / "fixtures" / "sample_tenders.csv"
QUERIES = Path(__file__).with_name("queries.json")
K = 10
RECALL_K = 50


def ndcg(ranked: list[str], relevant: dict[str, int], k: int = K) -> float:
    dcg = sum((2 ** relevant.get(tid, 0) - 1) / math.log2(i + 2) for i, tid in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum((2 ** g - 1) / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def mrr(ranked: list[str], relevant: dict[str, int], k: int = K) -> float:
    top = max(relevant.values())
    for i, tid in enumerate(ranked[:k]):
        if relevant.get(tid, 0) >= top:
            return 1.0 / (i + 1)
    return 0.0


def recall(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    """Share of the labelled relevant notices (any grade) found in the top k."""
    return len(set(ranked[:k]) & set(relevant)) / len(relevant) if relevant else 0.0


def evaluate(searcher: Searcher, collection, queries: list[dict], rerank: bool) -> dict:
    per_query = []
    latencies = []
    for item in queries:
        started = time.perf_counter()
        ranked = searcher.search(collection, SearchParams(q=item["query"], limit=RECALL_K), {}, rerank=rerank)
        latencies.append((time.perf_counter() - started) * 1000)
        ids = [r.id for r in ranked.results]
        per_query.append({"query": item["query"], "ndcg@10": round(ndcg(ids, item["relevant"]), 4),
                          "mrr@10": round(mrr(ids, item["relevant"]), 4),
                          "recall@10": round(recall(ids, item["relevant"], K), 4),
                          "recall@50": round(recall(ids, item["relevant"], RECALL_K), 4)})
    n = len(per_query)
    latencies.sort()
    return {
        "ndcg@10": round(sum(q["ndcg@10"] for q in per_query) / n, 4),
        "mrr@10": round(sum(q["mrr@10"] for q in per_query) / n, 4),
        "recall@10": round(sum(q["recall@10"] for q in per_query) / n, 4),
        "recall@50": round(sum(q["recall@50"] for q in per_query) / n, 4),
        "median_ms": round(latencies[n // 2], 2),
        "per_query": per_query,
    }


NDCG_TOLERANCE = 0.005
MIN_MEAN_COSINE = 0.99


def compare_embedders(variants: list[str], labelled: list[dict], real: int) -> dict:
    """The local embedder's variants on the labels and on real notices, in one run (see the module doc)."""
    from bench import _embedders as emb
    from tender_pipeline import store

    report: dict = {"benchmark": "relevance_embedders", "sample": SAMPLE.name, "queries": len(labelled),
                    "threads": emb.threads(), "variants": {}}
    with tempfile.TemporaryDirectory(prefix="relevance-") as tmp, \
            chroma_server(Path(tmp) / "chroma") as (host, port):
        base = ApiSettings(chroma_host=host, chroma_port=port, staging_uri=f"{tmp}/staging",
                           embed_backend="local", enrich_backend="local", embed_threads=0)
        texts, report["real_data"] = emb.real_texts(real, Path(tmp)) if real else ([], "not requested")
        stock_vectors = None
        for variant in variants:
            name = f"relevance_{variant.replace('-', '_')}"
            settings = emb.variant_settings(base, variant, Path(tmp) / "models").model_copy(
                update={"tender_collection": name, "lexical_index_path": f"{tmp}/lexical_{name}"})
            summary = pipeline.run_all(settings, f"relevance_{variant}", source=str(SAMPLE))
            embedder = get_embedder(settings)
            collection = store.open_collection(store.get_client(settings), settings.tender_collection,
                                               embedder.model_id, embedder.dim, create=False)
            lexical = open_index(settings.lexical_dir)
            intent = SectorIntent(embedder, settings.taxonomy_path)
            service = evaluate(Searcher(settings, embedder, intent, lexical), collection, labelled, rerank=True)
            baseline = evaluate(Searcher(settings, embedder, lexical=lexical), collection, labelled, rerank=False)
            row = {"model_id": embedder.model_id, "documents": summary["collection_count"],
                   "service_ndcg@10": service["ndcg@10"], "service_mrr@10": service["mrr@10"],
                   "vector_ndcg@10": baseline["ndcg@10"], "embed_stage_s": round(summary["seconds"]["embed"], 2)}
            if texts:
                embedder.embed_documents(texts[:16])  # load outside the timing
                vectors, wall, cpu = emb.timed_embed(embedder, texts)
                if variant == "stock":
                    stock_vectors = vectors
                row["real"] = {"texts": len(texts), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}
                if stock_vectors is not None:
                    cosines = np.sum(vectors * stock_vectors, axis=1)
                    row["real"].update(mean_cosine_to_stock=round(float(cosines.mean()), 4),
                                       min_cosine_to_stock=round(float(cosines.min()), 4),
                                       nn_overlap_at_10=round(emb.nn_overlap(vectors, stock_vectors), 3))
            report["variants"][variant] = row
    rows = report["variants"]
    if "stock" in rows:
        stock = rows["stock"]
        for row in rows.values():
            row["ndcg_delta_vs_stock"] = round(row["service_ndcg@10"] - stock["service_ndcg@10"], 4)
            if "real" in row and "real" in stock:
                row["real"]["per_cpu_second_vs_stock"] = round(stock["real"]["cpu_s"] / row["real"]["cpu_s"], 2)
        eligible = [name for name, row in rows.items()
                    if row["ndcg_delta_vs_stock"] >= -NDCG_TOLERANCE
                    and row.get("real", {}).get("mean_cosine_to_stock", 1.0) >= MIN_MEAN_COSINE]
        speed = (lambda n: rows[n]["real"]["cpu_s"]) if texts else (lambda n: rows[n]["embed_stage_s"])
        report["gate"] = {"ndcg_within": NDCG_TOLERANCE, "min_mean_cosine": MIN_MEAN_COSINE,
                          "eligible": eligible, "chosen": min(eligible, key=speed) if eligible else None,
                          "speed_from": "real cpu_s" if texts else "sample embed stage seconds"}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", action="store_true", help="also evaluate a grid of fusion weights")
    parser.add_argument("--per-query", action="store_true", help="print per-query figures")
    parser.add_argument("--embedders", default="", help="comma-separated local embedder variants to compare")
    parser.add_argument("--real", type=int, default=5000, help="real notices for --embedders (0 = none)")
    parser.add_argument("--dataset", choices=["sample", "dev"], default="sample",
                        help="sample: the synthetic labels (default); dev: the real dev set in ../shared/relevance")
    parser.add_argument("--dev-dir", default=None, help="the dev set's folder (default: found beside the clone)")
    parser.add_argument("--store", default=None,
                        help="dev: keep the ingested store here and reuse it while the corpus is unchanged")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="dev: an environment setting for the search API (e.g. RANK_SECTOR_BONUS=0)")
    parser.add_argument("--api-code", default=None, metavar="GIT_REF",
                        help="dev: serve that commit's search code instead of this tree's (e.g. main: the before)")
    parser.add_argument("--cpu-against", default=None, metavar="GIT_REF",
                        help="dev: also CPU per search in process, this tree vs that commit, alternating")
    parser.add_argument("--cpu-rounds", type=int, default=3, help="dev: child runs per tree for --cpu-against")
    parser.add_argument("--table", action="store_true", help="dev: also a readable table on stderr")
    args = parser.parse_args()
    if args.dataset == "dev":
        from bench import relevance_dev

        report = relevance_dev.run(args)
        if args.table and "macro" in report:
            print(relevance_dev.table(report), file=sys.stderr)
        print(json.dumps(report, indent=1))
        return
    labelled = json.loads(QUERIES.read_text("utf-8"))["queries"]
    if args.embedders:
        print(json.dumps(compare_embedders(args.embedders.split(","), labelled, args.real), indent=1))
        return

    with tempfile.TemporaryDirectory(prefix="relevance-") as tmp, chroma_server(Path(tmp) / "chroma") as (host, port):
        settings = ApiSettings(chroma_host=host, chroma_port=port, staging_uri=f"{tmp}/staging",
                               lexical_index_path=f"{tmp}/lexical", tender_collection="relevance",
                               embed_backend="local", enrich_backend="local")
        started = time.perf_counter()
        summary = pipeline.run_all(settings, "relevance", source=str(SAMPLE))
        fill_s = time.perf_counter() - started
        embedder = get_embedder(settings)
        from tender_pipeline import store

        collection = store.open_collection(store.get_client(settings), settings.tender_collection,
                                           embedder.model_id, embedder.dim, create=False)
        intent = SectorIntent(embedder, settings.taxonomy_path)
        lexical = open_index(settings.lexical_dir)
        service = evaluate(Searcher(settings, embedder, intent, lexical), collection, labelled, rerank=True)
        baseline = evaluate(Searcher(settings, embedder, lexical=lexical), collection, labelled, rerank=False)
        report = {
            "sample": SAMPLE.name, "documents": summary["collection_count"], "queries": len(labelled),
            "fill_seconds": round(fill_s, 1), "embedding_model": embedder.model_id,
            "weights": {"rank_vector_weight": settings.rank_vector_weight,
                        "rank_sector_bonus": settings.rank_sector_bonus,
                        "search_candidates": settings.search_candidates,
                        "search_lexical_candidates": settings.search_lexical_candidates},
            "service": {k: v for k, v in service.items() if k != "per_query"},
            "baseline_vector": {k: v for k, v in baseline.items() if k != "per_query"},
            "ratio_ndcg": round(service["ndcg@10"] / baseline["ndcg@10"], 3) if baseline["ndcg@10"] else None,
            "ratio_mrr": round(service["mrr@10"] / baseline["mrr@10"], 3) if baseline["mrr@10"] else None,
            "real_data": "not used: labels exist only for the synthetic sample",
        }
        if args.per_query:
            report["per_query"] = [
                {"query": s["query"], "service": [s["ndcg@10"], s["mrr@10"]], "baseline": [b["ndcg@10"], b["mrr@10"]]}
                for s, b in zip(service["per_query"], baseline["per_query"], strict=True)]
        if args.sweep:
            grid = []
            for weight in (0.3, 0.4, 0.5, 0.55, 0.6, 0.7, 0.8, 1.0):
                for bonus in (0.0, 0.04, 0.08):
                    tuned = settings.model_copy(update={"rank_vector_weight": weight, "rank_sector_bonus": bonus})
                    got = evaluate(Searcher(tuned, embedder, intent, lexical), collection, labelled, rerank=True)
                    grid.append({"rank_vector_weight": weight, "rank_sector_bonus": bonus,
                                 "ndcg@10": got["ndcg@10"], "mrr@10": got["mrr@10"]})
            for lexical_n, candidates in ((0, 100), (50, 50), (50, 60), (50, 80), (50, 100), (100, 100), (200, 100),
                                          (100, 300)):
                tuned = settings.model_copy(update={"search_lexical_candidates": lexical_n,
                                                    "search_candidates": candidates})
                got = evaluate(Searcher(tuned, embedder, intent, lexical), collection, labelled, rerank=True)
                grid.append({"search_lexical_candidates": lexical_n, "search_candidates": candidates,
                             "ndcg@10": got["ndcg@10"], "mrr@10": got["mrr@10"], "recall@10": got["recall@10"],
                             "recall@50": got["recall@50"], "median_ms": got["median_ms"]})
            report["sweep"] = grid
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
