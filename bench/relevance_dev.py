"""Relevance on the real labelled dev set (``../shared/relevance``): the service vs plain BM25 and plain dense.

``python bench/relevance.py --dataset dev`` lands here. In one run it

1. builds the dev corpus with the set's own ``build_corpus.py --out`` into the store folder (never into
   ``../shared``), and ingests it with the product's CLI (``python -m tender_pipeline ingest``, offline
   backends) into a throwaway ``chroma run`` and lexical index (``RETENTION_DAYS`` high, nothing retired).
   ``--store DIR`` keeps that store and reuses it while the corpus is unchanged (ingesting 23k notices
   takes minutes; a ranking change needs none);
2. starts the real search API (uvicorn) on the store and scores it exactly as the held-out evaluation does,
   with the set's own ``eval.py`` (``GET /search?q=...&limit=50``);
3. scores plain BM25 (``eval.py``'s baseline) and plain dense (exact cosine of the query to every notice's
   stored vector, same embedder) on the same queries, and per query says where the service falls more than
   0.05 and 0.10 nDCG@10 below the better of the two.

Without ``../shared/relevance`` it says so and exits 0 (a user's clone has no dev set).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEV_PARTS = ("shared", "relevance")
COLLECTION = "relevance_dev"
MARGINS = (0.05, 0.10)
METRICS = ("ndcg@10", "p@10", "r@50", "mrr")


def find_dev_dir(given: str | None = None) -> Path | None:
    """The dev set's folder: ``--dev-dir``, else ``shared/relevance`` beside the clone or one of its parents."""
    if given:
        return Path(given) if (Path(given) / "eval.py").is_file() else None
    for parent in ROOT.parents:
        candidate = parent.joinpath(*DEV_PARTS)
        if (candidate / "eval.py").is_file():
            return candidate
    return None


def load_eval(dev_dir: Path) -> ModuleType:
    """The dev set's ``eval.py`` as a module: its scoring is the held-out evaluation's."""
    spec = importlib.util.spec_from_file_location("dev_eval", dev_dir / "eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def log(msg: str) -> None:
    print(f"[relevance-dev {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def store_env(store: Path, port: int) -> dict[str, str]:
    """The pipeline's and the API's settings for a store folder (offline backends, nothing retired)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "LEXICAL_PUBLISH_URI")}
    env.update({
        "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]),
        "CHROMA_HOST": "127.0.0.1", "CHROMA_PORT": str(port), "TENDER_COLLECTION": COLLECTION,
        "STAGING_URI": str(store / "staging"), "LEXICAL_INDEX_PATH": str(store / "lexical"),
        "EMBED_BACKEND": "local", "ENRICH_BACKEND": "local", "RETENTION_DAYS": "100000",
        "DATABASE_URL": f"sqlite:///{store / 'api.sqlite'}", "FEEDBACK_PATH": str(store / "feedback.jsonl"),
        "RATE_LIMIT": "",
    })
    return env


def prepare_store(dev_dir: Path, store: Path, port: int) -> dict:
    """Build the corpus into ``store`` and ingest it unless the store already holds this very corpus."""
    store.mkdir(parents=True, exist_ok=True)
    corpus = store / "corpus.csv"
    subprocess.run([sys.executable, str(dev_dir / "build_corpus.py"), "--out", str(corpus)], check=True,
                   stdout=subprocess.DEVNULL)
    digest = sha256(corpus)
    marker = store / "ingested.json"
    if marker.exists():
        done = json.loads(marker.read_text("utf-8"))
        if done.get("corpus_sha256") == digest:
            log(f"reusing the ingested store {store} ({done.get('rows')} rows, ingested {done.get('at')})")
            return {**done, "reused": True}
        raise SystemExit(f"{store} holds another corpus: remove it or pass another --store")
    log(f"ingesting {corpus} through `python -m tender_pipeline ingest` (takes minutes)")
    started = time.perf_counter()
    got = subprocess.run([sys.executable, "-m", "tender_pipeline", "ingest", str(corpus), "--json"], cwd=ROOT,
                         env=store_env(store, port), capture_output=True, text=True)
    if got.returncode != 0:
        raise SystemExit(f"ingest failed ({got.returncode}):\n{got.stderr[-3000:]}")
    summary = json.loads(got.stdout[got.stdout.index("{"):])
    done = {"corpus_sha256": digest, "rows": sum(1 for _ in corpus.open(encoding="utf-8")) - 1,
            "collection_count": summary.get("collection_count"), "seconds": round(time.perf_counter() - started),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    marker.write_text(json.dumps(done), "utf-8")
    return {**done, "reused": False}


@contextlib.contextmanager
def search_api(store: Path, port: int, extra_env: dict[str, str] | None = None,
               code: Path | None = None) -> Iterator[str]:
    """The real search API under uvicorn on the store (this tree's code, or ``code``'s); yields its base URL
    once /ready answers 200."""
    from tests.services import _process, free_port

    api_port = free_port()
    env = {**store_env(store, port), **(extra_env or {})}
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code / "plugins"), str(code)])
    cmd = [sys.executable, "-m", "uvicorn", "search_api.main:app", "--host", "127.0.0.1", "--port", str(api_port),
           "--log-level", "warning"]
    base = f"http://127.0.0.1:{api_port}"
    with _process(cmd, store / f"api-{api_port}.log", f"{base}/health", timeout=120, env=env):
        wait_ready(base)
        yield base


def wait_ready(base: str, timeout: float = 300.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/ready", timeout=5).status_code == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"{base}/ready did not turn 200 within {timeout}s")


def notice_vectors(settings) -> tuple[list[str], np.ndarray]:
    """Every notice's vector as stored in Chroma (float32), unit-normalised."""
    from tender_pipeline import slots
    from tender_pipeline import store as chroma_store
    from tender_pipeline.embed import get_embedder

    embedder = get_embedder(settings)
    collection = chroma_store.open_collection(chroma_store.get_client(settings), settings.tender_collection,
                                              embedder.model_id, embedder.dim, create=False)
    ids: list[str] = []
    rows: list[np.ndarray] = []
    total = collection.count()
    for offset in range(0, total, 5000):
        got = collection.get(include=["embeddings", "metadatas"], limit=5000, offset=offset)
        held = [(t, v) for t, v in zip(slots.tenders(got["ids"], got["metadatas"]), got["embeddings"], strict=True)
                if t is not None]  # the rows are slots: each names its tender, a free one none
        ids.extend(t for t, _ in held)
        rows.append(np.asarray([v for _, v in held], dtype=np.float32).reshape(len(held), -1))
    mat = np.vstack(rows) if rows else np.zeros((0, embedder.dim), dtype=np.float32)
    mat /= np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
    return ids, mat


def dense_search(settings) -> Callable[[str, int], list[str]]:
    """Plain dense: exact cosine of the query to every notice (no index, no filters, no fusion)."""
    from tender_pipeline.embed import get_embedder

    embedder = get_embedder(settings)
    ids, mat = notice_vectors(settings)

    def search(query: str, k: int) -> list[str]:
        q = np.asarray(embedder.embed_queries([query])[0], dtype=np.float32)
        sims = mat @ (q / max(float(np.linalg.norm(q)), 1e-12))
        top = np.argsort(-sims, kind="stable")[:k]
        return [ids[i] for i in top]

    return search


def compare(systems: dict[str, dict]) -> dict:
    """Per query: the service against the better of plain BM25 and plain dense (nDCG@10), and the counts of
    queries more than each margin below it; the oracle (better baseline per query) macro figures."""
    service, bm25, dense = (systems[k]["per_query"] for k in ("service", "bm25", "dense"))
    rows, below = [], {m: [] for m in MARGINS}
    oracle = {k: 0.0 for k in ("ndcg@10", "r@50")}
    for s, b, d in zip(service, bm25, dense, strict=True):
        best = max(b["ndcg@10"], d["ndcg@10"])
        for k in oracle:
            oracle[k] += max(b[k], d[k]) / len(service)
        delta = round(s["ndcg@10"] - best, 4)
        for m in MARGINS:
            if delta < -m:
                below[m].append(s["id"])
        rows.append({"id": s["id"], "query": s["query"], "n": s["n_relevant"],
                     "ndcg@10": [s["ndcg@10"], b["ndcg@10"], d["ndcg@10"]],
                     "r@50": [s["r@50"], b["r@50"], d["r@50"]], "delta_vs_best": delta})
    return {"per_query_columns": "[service, bm25, dense]", "per_query": rows,
            "oracle_best_baseline": {k: round(v, 4) for k, v in oracle.items()},
            **{f"below_best_by_more_than_{m:.2f}": {"count": len(ids), "queries": ids} for m, ids in below.items()}}


def run(args) -> dict:
    """The whole dev-set run (see the module doc); returns the report."""
    dev_dir = find_dev_dir(args.dev_dir)
    if dev_dir is None:
        return {"dataset": "dev", "skipped": "no dev set: ../shared/relevance (with eval.py) is absent"}
    ev = load_eval(dev_dir)
    from search_api.settings import ApiSettings
    from tests.services import chroma_server

    queries = ev.load_queries(str(dev_dir / "queries.json"))
    qrels = ev.load_pairs(str(dev_dir / "qrels.tsv"))
    ignores = ev.load_pairs(str(dev_dir / "unjudged.tsv"))

    def score(fn, latency: bool = False) -> dict:
        return ev.evaluate(fn, queries, qrels, ignores, record_latency=latency)

    with contextlib.ExitStack() as stack:
        if args.store:
            store = Path(args.store).resolve()
        else:
            import tempfile

            store = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="relevance-dev-")))
        host, port = stack.enter_context(chroma_server(store / "chroma"))
        ingest = prepare_store(dev_dir, store, port)
        settings = ApiSettings(**{"chroma_host": host, "chroma_port": port, "tender_collection": COLLECTION,
                                  "lexical_index_path": str(store / "lexical"), "embed_backend": "local"})
        extra = dict(kv.split("=", 1) for kv in args.set)
        systems: dict[str, dict] = {}
        code, code_name = None, "this tree"
        if args.api_code:
            from bench.search_cpu import extract

            code, sha = extract(args.api_code, store)
            code_name = f"{args.api_code} ({sha[:12]})"
        with search_api(store, port, extra, code) as base:
            log(f"scoring the service ({code_name}) at {base} with the dev set's eval.py (GET /search?q=...&limit=50)")
            systems["service"] = score(ev.api_search(base), latency=True)
        log("scoring plain BM25 (eval.py's baseline) and plain dense (exact cosine, same embedder)")
        systems["bm25"] = score(ev.bm25_search(ev.load_corpus(str(store / "corpus.csv")))[0])
        systems["dense"] = score(dense_search(settings))
        if args.cpu_against:
            from bench.search_cpu import compare_cpu

            systems_cpu = compare_cpu(store, port, args.cpu_against, rounds=args.cpu_rounds)
        else:
            systems_cpu = None
    report = {"dataset": "dev", "dev_dir": str(dev_dir), "scored_with": f"{dev_dir / 'eval.py'} (evaluate)",
              "store": str(store) if args.store else "temporary", "ingest": ingest,
              "service_code": code_name, "settings_overrides": extra, "queries": len(queries),
              "macro": {name: got["macro"] for name, got in systems.items()},
              "service_latency_ms": systems["service"].get("latency_ms"),
              "service_errors": systems["service"].get("n_errors"),
              **compare(systems)}
    if systems_cpu is not None:
        report["cpu_per_search"] = systems_cpu
    return report


def table(report: dict) -> str:
    """A readable summary (stderr) beside the JSON."""
    lines = [f"{'system':8s} " + " ".join(f"{m:>8s}" for m in METRICS)]
    for name, macro in report["macro"].items():
        lines.append(f"{name:8s} " + " ".join(f"{macro[m]:8.3f}" for m in METRICS))
    lines.append(f"oracle   {report['oracle_best_baseline']['ndcg@10']:8.3f} {'':8s} "
                 f"{report['oracle_best_baseline']['r@50']:8.3f}")
    for m in MARGINS:
        got = report[f"below_best_by_more_than_{m:.2f}"]
        lines.append(f"below best baseline by > {m:.2f}: {got['count']} {' '.join(got['queries'])}")
    lines.append("id   query                              n   nDCG svc  bm25 dense   R@50 svc  bm25 dense  delta")
    for r in report["per_query"]:
        n, rr = r["ndcg@10"], r["r@50"]
        lines.append(f"{r['id']:4s} {r['query'][:32]:32s} {r['n']:4d}   {n[0]:.3f} {n[1]:.3f} {n[2]:.3f}"
                     f"   {rr[0]:.3f} {rr[1]:.3f} {rr[2]:.3f}  {r['delta_vs_best']:+.3f}")
    return "\n".join(lines)
