"""CPU per search, in process, of this tree's search code against another commit's, on one ingested store.

Used by ``bench/relevance.py --dataset dev --cpu-against REF``: the other commit's files are extracted
with ``git archive`` (nothing is checked out), and each tree runs in its own child process (this file run
with ``--code TREE``), alternating A B B A ..., on the same store and the same query mix. Every search embeds
its query afresh (the caches are emptied before each), as ``scale.py --fresh-queries`` does. Reported per
tree: the median thread CPU of the calling thread and the median process CPU (all threads: the kNN call's
thread, ONNX Runtime's) per search, and their ratios to the other tree. The machine is shared and noisy:
read the ratio, not the milliseconds.

The mix is generated from the corpus's titles (never the dev queries): 1-3 title words, alone or with a
country, an open-only, a value-floor or a closing-window filter, and references typed as ids.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STOP = frozenset("the and for with from supply supplies provision works services tender of to in on at by".split())


def query_mix(corpus: Path, n: int, seed: int = 21) -> list[dict]:
    """``n`` search parameter sets drawn from the corpus's titles (deterministic)."""
    with corpus.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rng = random.Random(seed)
    countries = sorted({r["country"] for r in rows if r["country"]})
    out = []
    for k in range(n):
        row = rows[rng.randrange(len(rows))]
        words = [w for w in re.findall(r"[A-Za-z]{4,}", row["title"]) if w.lower() not in STOP]
        q = " ".join(rng.sample(words, min(len(words), rng.randint(1, 3)))) or "construction"
        params: dict = {"q": q, "limit": 20}
        kind = k % 6
        if kind == 1:
            params["country"] = rng.choice(countries)
        elif kind == 2:
            params["open_only"] = True
        elif kind == 3:
            params["min_value"] = float(rng.choice([10_000, 100_000, 1_000_000]))
        elif kind == 4:
            params["q"] = row["tender_id"]
        out.append(params)
    return out


def extract(ref: str, into: Path) -> tuple[Path, str]:
    """The files of commit ``ref`` under ``into/<sha>`` (``git archive``; kept for the next run)."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", ref], check=True, capture_output=True,
                         text=True).stdout.strip()
    tree = into / f"code-{sha[:12]}"
    if not (tree / "search_api").is_dir():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", sha, "search_api", "plugins"], check=True,
                                 capture_output=True).stdout
        tar_path = tree.with_suffix(".tar")
        tar_path.write_bytes(archive)
        with tarfile.open(tar_path) as tar:
            tar.extractall(tree, filter="data")
        tar_path.unlink()
    return tree, sha


def compare_cpu(store: Path, port: int, ref: str, rounds: int = 6, queries: int = 200) -> dict:
    """This tree against ``ref``, alternating A B B A ... ``rounds`` child runs each; medians and ratios."""
    from bench.relevance_dev import log, store_env

    base_tree, sha = extract(ref, store)
    trees = {"this": ROOT, "against": base_tree}
    env = store_env(store, port)
    got: dict[str, list[dict]] = {name: [] for name in trees}
    order = ["this", "against", "against", "this"]
    for i in range(rounds * 2):
        name = order[i % 4]
        log(f"CPU per search: run {i + 1}/{rounds * 2} ({name})")
        out = subprocess.run([sys.executable, str(Path(__file__)), "--code", str(trees[name]), "--store",
                              str(store), "--port", str(port), "--queries", str(queries)],
                             env={**env, "PYTHONPATH": ""}, capture_output=True, text=True, check=True)
        got[name].append(json.loads(out.stdout))
    summary: dict = {"against": f"{ref} ({sha[:12]})", "rounds": rounds, "queries_per_round": queries,
                     "mix": "titles' words alone / + country / open_only / value floor / ids (fresh embeddings)"}
    for name, runs in got.items():
        summary[name] = {k: round(statistics.median(r[k] for r in runs), 3)
                         for k in ("thread_cpu_ms", "process_cpu_ms", "wall_ms")}
        summary[name]["runs_thread_cpu_ms"] = [r["thread_cpu_ms"] for r in runs]
    for k in ("thread_cpu_ms", "process_cpu_ms", "wall_ms"):
        summary[f"ratio_{k}"] = round(summary["this"][k] / summary["against"][k], 3)
    return summary


def measure(code: Path, store: Path, port: int, n: int) -> dict:
    """In this child: the searches of the mix through ``code``'s Searcher; medians per search."""
    sys.path[:0] = [str(code / "plugins"), str(code)]
    from search_api.intent import SectorIntent
    from search_api.models import SearchParams
    from search_api.search import Searcher
    from search_api.settings import ApiSettings
    from tender_pipeline import store as chroma_store
    from tender_pipeline.embed import get_embedder
    from tender_pipeline.lexical import open_index

    settings = ApiSettings(chroma_host="127.0.0.1", chroma_port=port, tender_collection="relevance_dev",
                           lexical_index_path=str(store / "lexical"), embed_backend="local")
    embedder = get_embedder(settings)
    collection = chroma_store.open_collection(chroma_store.get_client(settings), settings.tender_collection,
                                              embedder.model_id, embedder.dim, create=False)
    intent = SectorIntent(embedder, settings.taxonomy_path)
    intent.warm()
    searcher = Searcher(settings, embedder, intent, open_index(settings.lexical_dir), reporter=None)
    mix = query_mix(store / "corpus.csv", n)
    for params in mix[:20]:  # warm-up: model, index readers, caches of the code paths
        searcher.search(collection, SearchParams(**params))
    thread, process, wall = [], [], []
    for params in mix:
        searcher._cache.clear()
        searcher._sectors.clear()
        t, p, w = time.thread_time(), time.process_time(), time.perf_counter()
        searcher.search(collection, SearchParams(**params))
        thread.append((time.thread_time() - t) * 1000)
        process.append((time.process_time() - p) * 1000)
        wall.append((time.perf_counter() - w) * 1000)
    return {"code": str(code), "thread_cpu_ms": statistics.median(thread),
            "process_cpu_ms": statistics.median(process), "wall_ms": statistics.median(wall)}


def main() -> None:
    parser = argparse.ArgumentParser(description="CPU per search of one code tree (child of relevance_dev)")
    parser.add_argument("--code", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(json.dumps(measure(Path(args.code), Path(args.store), args.port, args.queries)))


if __name__ == "__main__":
    main()
