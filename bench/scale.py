"""Search at the real volume: /search vs straight-to-Chroma filtered queries at 100k … 1M notices.

Fills one Chroma server and the lexical index (the pipeline's own
``store.upsert`` and ``LexicalIndex.upsert``) step by step to each size, and at
each size drives the real search API (two one-worker uvicorn replicas, each request sent to the one with
the fewest in flight, as nginx's ``least_conn`` does in compose) and, in the same run, the old way of
asking Chroma (kNN + ``where`` filters + ``where_document`` ``$regex``) with
the same query mix, at each concurrency. Optionally it repeats the API load
while a real 20,000-row ingest (``python -m tender_pipeline ingest``) runs on
the same machine.

Documents and metadata are realistic: records are read from
``../shared/data/real`` with the pipeline's own readers and profiles (when the
folder is absent, from ``tests/fixtures``; the output says which), and each
synthetic notice is one of them under a new id, with shifted closing dates and
scaled values. Vectors are synthetic: the embeddings of a few thousand real
texts, perturbed with noise (kNN cost does not depend on what the vectors mean).

One JSON object per line for each (size, concurrency, phase, target):
``size concurrency phase(idle|ingest) target(api|chroma) p50_ms p95_ms p99_ms qps
errors requests``, then one line per size with RSS and disk. Usage:

    python bench/scale.py --sizes 100000,1000000 --concurrency 1,8,32 [--ingest-rows 20000]
    python bench/scale.py --sizes 20000 --concurrency 1,8 --ingest-rows 0 --requests 100   # quick look

``--data-dir`` keeps the filled stores between runs (a later, larger run only
adds the missing notices). Run it alone: it saturates both cores.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import functools
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import httpx  # noqa: E402

from tender_pipeline import store  # noqa: E402
from tender_pipeline.documents import document_text  # noqa: E402
from tender_pipeline.embed import get_embedder  # noqa: E402
from tender_pipeline.lexical import open_index  # noqa: E402
from tender_pipeline.models import EnrichedTender, Enrichment, TenderRecord  # noqa: E402
from tender_pipeline.money import Reporter  # noqa: E402
from tender_pipeline.profiles import load_profiles  # noqa: E402
from tender_pipeline.settings import Settings  # noqa: E402
from tender_pipeline.taxonomy import load_taxonomy  # noqa: E402
from tender_pipeline.validate import read_files, validate_tables  # noqa: E402
from tests.services import free_port, wait_http  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "real"
FIXTURES = ROOT / "tests" / "fixtures"
COLLECTION = "scale"
BATCH = 5000
BASE_VECTORS = 1500
PER_FILE = 4000  # rows read per real file: every source is represented without reading all 78k rows
TODAY = date.today()
CANONICAL = ["tender_id", "title", "description", "buyer", "country", "region", "city", "published_date",
             "closing_date", "value_amount", "currency", "category", "cpv_codes", "notice_type", "url", "source"]
STOP = set("the of and for to in a an on at by with from or supply services works provision".split())


def log(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- real records
def real_records(limit: int) -> tuple[list[TenderRecord], str]:
    """Valid records read with the pipeline's readers and profiles from the real files (or fixtures)."""
    if REAL.is_dir():
        paths = sorted(p for p in REAL.rglob("*.csv") if p.parent.name not in ("cpv", "tendersontime"))
        origin = f"{REAL} ({len(paths)} CSV files)"
    else:
        paths = sorted(FIXTURES.glob("*.csv"))
        origin = f"{FIXTURES} (../shared/data/real is absent)"
    records: list[TenderRecord] = []
    profiles = load_profiles("")
    for path in paths:
        try:
            result = validate_tables(read_files([(path, path.name)]), profiles, None, PER_FILE)
        except Exception as exc:  # a file no profile knows: skip it, say so
            log(f"skipped {path.name}: {exc}")
            continue
        records.extend(TenderRecord.model_validate(v["record"]) for v in result.valid if v)
        if len(records) >= limit:
            break
    random.Random(7).shuffle(records)
    return records[:limit], origin


class Generator:
    """Synthetic notice i = real record (i mod n) under a new id, with moved dates and a scaled value."""

    def __init__(self, records: list[TenderRecord], vectors: np.ndarray) -> None:
        self.records = records
        self.vectors = vectors
        self.sectors = [d.label for d in load_taxonomy("").divisions.values()] or ["Other"]
        self.now = datetime.now(UTC)
        self.reporter = Reporter.from_settings(Settings())  # value_report, which min_value/max_value compare

    def record(self, i: int) -> TenderRecord:
        base = self.records[i % len(self.records)]
        rng = random.Random(i)
        closing = TODAY + timedelta(days=rng.randint(-30, 60)) if rng.random() > 0.1 else None
        published = (closing or TODAY) - timedelta(days=rng.randint(7, 45))
        value = base.value_amount * rng.uniform(0.5, 2.0) if base.value_amount else None
        return base.model_copy(update={"tender_id": f"S{i:07d}-{base.tender_id[:40]}", "closing_date": closing,
                                       "published_date": published, "value_amount": value})

    def enriched(self, i: int) -> EnrichedTender:
        r = self.record(i)
        rng = random.Random(-i)
        e = Enrichment(tender_id=r.tender_id, summary=r.title[:160], sector=rng.choice(self.sectors),
                       procurement_type=rng.choice(["Works", "Supply", "Services"]),
                       keywords=[w for w in re.findall(r"[a-z]{5,}", r.title.lower())][:6])
        return EnrichedTender(record=r, enrichment=e, content_hash=f"{i:016x}")

    def vector(self, i: int) -> np.ndarray:
        rng = np.random.default_rng(i)
        v = self.vectors[i % len(self.vectors)] + rng.normal(0, 0.02, self.vectors.shape[1]).astype(np.float32)
        return v / np.linalg.norm(v)

    def batch(self, start: int, end: int) -> tuple[list[str], np.ndarray, list[str], list[dict]]:
        items = [self.enriched(i) for i in range(start, end)]
        ids = [it.record.tender_id for it in items]
        texts = [document_text(it) for it in items]
        metas = [store.to_metadata(it, self.now, self.reporter) | {"versions": 1} for it in items]
        return ids, np.stack([self.vector(i) for i in range(start, end)]), texts, metas


# --------------------------------------------------------------------------- query mix
def query_mix(records: list[TenderRecord], gen: Generator, n: int, size: int, seed: int | None = None) -> list[dict]:
    """Plain words, filters (country, closing window, value, open_only), references and acronyms."""
    rng = random.Random(size if seed is None else seed)
    countries = [r.country for r in records if r.country]
    acronyms = sorted({t for r in records for t in re.findall(r"\b[A-Z]{2,6}\b", f"{r.buyer} {r.title}")})
    out: list[dict] = []
    for k in range(n):
        r = records[rng.randrange(len(records))]
        words = [w for w in re.findall(r"[a-zA-Z]{4,}", r.title) if w.lower() not in STOP]
        q = " ".join(rng.sample(words, min(len(words), rng.randint(1, 3)))) or "construction"
        kind = k % 8
        params: dict = {"q": q, "limit": 20}
        if kind == 1 and countries:
            params["country"] = rng.choice(countries)
        elif kind == 2:
            params["closing_after"] = (TODAY + timedelta(days=rng.randint(0, 20))).isoformat()
            params["closing_before"] = (TODAY + timedelta(days=rng.randint(25, 60))).isoformat()
        elif kind == 3:
            params["min_value"] = float(rng.choice([10_000, 100_000, 1_000_000]))
        elif kind == 4:
            params["open_only"] = True
            if countries:
                params["country"] = rng.choice(countries)
        elif kind == 5:
            params["q"] = gen.record(rng.randrange(size)).tender_id  # an exact reference
        elif kind == 6 and acronyms:
            params["q"] = f"{rng.choice(acronyms)} {q.split()[0]}"
        out.append({"kind": ["words", "country", "closing", "value", "open", "reference", "acronym", "words"][kind],
                    "params": params})
    return out


def chroma_request(params: dict) -> dict:
    """What the pre-index /search sent Chroma for these params: where filters and $regex exact terms."""
    clauses: list[dict] = []
    if params.get("country"):
        clauses.append({"country_key": params["country"].lower()})
    if params.get("closing_after"):
        clauses.append({"closing_num": {"$gte": int(params["closing_after"].replace("-", ""))}})
    if params.get("closing_before"):
        clauses.append({"closing_num": {"$lte": int(params["closing_before"].replace("-", ""))}})
    if params.get("open_only"):
        clauses.append({"closing_num": {"$gte": int(TODAY.strftime("%Y%m%d"))}})
    if params.get("min_value") is not None:
        clauses.append({"value_amount": {"$gte": params["min_value"]}})
    where = None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}
    distinctive = [t for t in params["q"].split() if any(c.isdigit() for c in t) or t.isupper()]
    where_document = {"$regex": "(?i)" + re.escape(distinctive[0])} if distinctive else None
    return {"where": where, "where_document": where_document}


# --------------------------------------------------------------------------- load
async def drive_api(bases: list[str], mix: list[dict], concurrency: int, requests: int, until=None) -> dict:
    """``concurrency`` users sending the mix; each request goes to the API replica with the fewest requests in
    flight (nginx's ``least_conn``, as in deploy/nginx.conf)."""
    latencies: list[float] = []
    by_kind: dict[str, list[float]] = {}
    errors = 0
    counter = iter(range(10**9))
    inflight = [0] * len(bases)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while True:
            k = next(counter)
            if (until is None and k >= requests) or (until is not None and until()):
                return
            item = mix[k % len(mix)]
            target = min(range(len(bases)), key=lambda i: (inflight[i], (i - k) % len(bases)))
            inflight[target] += 1
            started = time.perf_counter()
            try:
                resp = await client.get(f"{bases[target]}/search", params=item["params"])
                ok = resp.status_code == 200
            except httpx.HTTPError:
                ok = False
            finally:
                inflight[target] -= 1
            latencies.append((time.perf_counter() - started) * 1000)
            by_kind.setdefault(item["kind"], []).append(latencies[-1])
            errors += not ok

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    row = summarize(latencies, errors, time.perf_counter() - started)
    # which kinds of query make the tail (p50 / p99 per kind of the mix)
    row["by_kind"] = {kind: [round(statistics.median(v), 1), round(max(v) if len(v) < 100 else
                                                                     statistics.quantiles(v, n=100)[98], 1)]
                      for kind, v in sorted(by_kind.items())}
    return row


def drive_chroma(collection, mix: list[dict], vectors: dict[str, np.ndarray], concurrency: int,
                 requests: int) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    def one(k: int) -> tuple[float, bool]:
        item = mix[k % len(mix)]
        started = time.perf_counter()
        try:
            collection.query(query_embeddings=[vectors[item["params"]["q"]]], n_results=100,
                             include=["metadatas", "documents", "distances"], **chroma_request(item["params"]))
            ok = True
        except Exception:
            ok = False
        return (time.perf_counter() - started) * 1000, ok

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        got = list(pool.map(one, range(requests)))
    return summarize([g[0] for g in got], sum(not g[1] for g in got), time.perf_counter() - started)


def summarize(latencies: list[float], errors: int, seconds: float) -> dict:
    if not latencies:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "qps": 0.0, "errors": errors, "requests": 0}
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {"p50_ms": round(statistics.median(latencies), 1), "p95_ms": round(q[94], 1), "p99_ms": round(q[98], 1),
            "qps": round(len(latencies) / seconds, 1), "errors": errors, "requests": len(latencies)}


# --------------------------------------------------------------------------- processes
def tree(pid: int) -> list[int]:
    """A process and its descendants (uvicorn --workers N runs the workers as children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo.extend(int(c) for c in task.read_text().split())
            except OSError:
                pass
    return out


def cpu_s(pid: int) -> float:
    """User + system CPU seconds so far of a process and its descendants (/proc/<pid>/stat)."""
    total = 0.0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def with_cpu(run, pids: dict[str, list[int]]) -> dict:
    """Run one load level; add each process's CPU milliseconds per request (the bound on 2 cores)."""
    before = {name: sum(cpu_s(p) for p in group) for name, group in pids.items()}
    own = time.process_time()
    row = run()
    n = max(1, row.get("requests") or 0)
    cpu = {name: round((sum(cpu_s(p) for p in group) - before[name]) * 1000 / n, 2) for name, group in pids.items()}
    cpu["load_client"] = round((time.process_time() - own) * 1000 / n, 2)
    row["cpu_ms_per_request"] = cpu
    return row


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process and its descendants (pages shared between them counted in each)."""
    total = None
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total = (total or 0.0) + int(line.split()[1]) / 1024
        except OSError:
            continue
    return None if total is None else round(total, 1)


def disk_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def start(cmd: list[str], log_path: Path, env: dict, health: str, timeout: float = 180) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    wait_http(health, timeout, proc)
    return proc


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def ingest_csv(gen: Generator, path: Path, rows: int, offset: int) -> None:
    """A batch of ``rows`` new notices in the canonical layout (real texts, new ids)."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CANONICAL)
        writer.writeheader()
        for i in range(offset, offset + rows):
            r = gen.record(i)
            row = r.model_dump(mode="json")
            row["tender_id"] = "ING-" + r.tender_id
            row["cpv_codes"] = " ".join(r.cpv_codes)
            writer.writerow({k: row.get(k) if row.get(k) is not None else "" for k in CANONICAL})


# --------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--ingest-rows", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=400, help="API requests per (size, concurrency)")
    parser.add_argument("--chroma-requests", type=int, default=48, help="direct Chroma requests per level")
    parser.add_argument("--data-dir", default="", help="keep the stores here between runs")
    parser.add_argument("--api-workers", type=int, default=2,
                        help="API processes: one per core; with one, the GIL holds the API to about one core")
    parser.add_argument("--balance", choices=["least-conn", "kernel"], default="least-conn",
                        help="least-conn: one-worker replicas on their own ports, each request sent to the one with "
                             "the fewest in flight (compose: replicas behind nginx least_conn); kernel: one uvicorn "
                             "with --workers N, where the kernel pins each keep-alive connection to one worker")
    parser.add_argument("--fresh-queries", action="store_true",
                        help="a new query mix per concurrency level (by default every level replays the same "
                             "queries, so from the second level on each replica finds the vectors of the "
                             "queries it saw last memoised, as many as its 512-entry cache holds)")
    parser.add_argument("--real-records", type=int, default=40000)
    parser.add_argument("--fill-only", action="store_true", help="fill the stores to the sizes, measure nothing")
    parser.add_argument("--lifecycle", action="store_true",
                        help="at the end, retire past RETENTION_DAYS and compact; print disk and memory")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    levels = [int(c) for c in args.concurrency.split(",")]
    work = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="scale-"))
    work.mkdir(parents=True, exist_ok=True)
    py = str(Path(sys.executable))
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'plugins'}:{ROOT}", "CHROMA_HOST": "127.0.0.1",
           "TENDER_COLLECTION": COLLECTION, "LEXICAL_INDEX_PATH": str(work / "lexical"),
           "STAGING_URI": str(work / "staging"), "FEEDBACK_PATH": str(work / "feedback.jsonl"),
           "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False",
           "RATE_LIMIT": ""}  # one load client stands for many users: the per-client limit is off
    chroma = None
    api: list[subprocess.Popen] = []
    try:
        records, origin = real_records(args.real_records)
        log(f"{len(records)} real records from {origin}")
        settings = Settings(chroma_host="127.0.0.1", tender_collection=COLLECTION)
        embedder = get_embedder(settings)
        cache = work / f"base_vectors_{embedder.model_id.replace(':', '_').replace('/', '_')}.npy"
        if cache.exists():
            base = np.load(cache)
        else:
            log(f"embedding {BASE_VECTORS} real texts for the synthetic vectors")
            base = embedder.embed_documents([f"{r.title}\n{r.description[:600]}" for r in records[:BASE_VECTORS]])
            np.save(cache, base)
        gen = Generator(records, np.asarray(base, dtype=np.float32))

        port = free_port()
        env["CHROMA_PORT"] = str(port)
        chroma = start([str(Path(py).parent / "chroma"), "run", "--path", str(work / "chroma"), "--host",
                        "127.0.0.1", "--port", str(port)], work / "chroma.log", env,
                       f"http://127.0.0.1:{port}/api/v2/heartbeat")
        client = store.get_client(settings.model_copy(update={"chroma_port": port}))
        collection = store.open_collection(client, COLLECTION, embedder.model_id, embedder.dim)
        index = open_index(Path(env["LEXICAL_INDEX_PATH"]) / COLLECTION)
        print(json.dumps({"records_from": origin, "real_records": len(records), "embedding_model": embedder.model_id,
                          "cores": os.cpu_count(), "api_workers": args.api_workers, "date": TODAY.isoformat(),
                          "work_dir": str(work)}), flush=True)
        qvec_cache: dict[str, np.ndarray] = {}
        for size in sizes:
            have = collection.count()
            if have < size:
                log(f"filling {have} → {size}")
                t0 = time.perf_counter()
                for s in range(have, size, BATCH):
                    ids, vecs, texts, metas = gen.batch(s, min(size, s + BATCH))
                    index.upsert(ids, metas, texts, vecs, store.upsert(collection, ids, vecs, client=client))
                    if (s // BATCH) % 20 == 0:
                        log(f"  {s + len(ids)} ({(s + len(ids) - have) / (time.perf_counter() - t0):.0f}/s)")
                fill_s = time.perf_counter() - t0
            else:
                fill_s = 0.0
            if args.fill_only:
                print(json.dumps({"size": size, "fill_seconds": round(fill_s, 1), "documents": collection.count(),
                                  "chroma_disk_mb": disk_mb(work / "chroma")}), flush=True)
                continue
            for proc in api:
                stop(proc)
            api, bases = start_api(py, args, work, env)
            mix = query_mix(records, gen, max(args.requests, 200), size)
            mixes = {c: query_mix(records, gen, max(args.requests, 200), size, seed=size * 1000 + c)
                     if args.fresh_queries else mix for c in levels}
            for item in [i for m in [mix, *mixes.values()] for i in m] if args.chroma_requests else []:
                q = item["params"]["q"]
                if q not in qvec_cache:
                    qvec_cache[q] = embedder.embed_queries([q])[0]
            asyncio.run(drive_api(bases, mix[:40], 4, 40))  # warm caches and the model
            for c in levels:
                row = with_cpu(functools.partial(asyncio.run, drive_api(bases, mixes[c], c, args.requests)),
                               {"api": [p.pid for p in api], "chroma": [chroma.pid]})
                row["balance"] = args.balance
                row["queries"] = "fresh" if args.fresh_queries else "replayed"
                print(json.dumps({"size": size, "concurrency": c, "phase": "idle", "target": "api", **row}), flush=True)
                direct = drive_chroma(collection, mixes[c], qvec_cache, c, args.chroma_requests)
                print(json.dumps({"size": size, "concurrency": c, "phase": "idle", "target": "chroma", **direct}),
                      flush=True)
            print(json.dumps({"size": size, "fill_seconds": round(fill_s, 1), "chroma_rss_mb": rss_mb(chroma.pid),
                              "api_rss_mb": round(sum(rss_mb(p.pid) or 0.0 for p in api), 1),
                              "chroma_disk_mb": disk_mb(work / "chroma"),
                              "lexical_disk_mb": disk_mb(work / "lexical"), "documents": collection.count()}),
                  flush=True)
            if args.ingest_rows and size == sizes[-1]:
                ingest_phase(args, gen, work, env, bases, mix, levels, size)
        if args.lifecycle and not args.fill_only:
            for proc in api:
                stop(proc)
            api = []
            lifecycle_phase(settings.model_copy(update={"chroma_port": port,
                                                        "lexical_index_path": env["LEXICAL_INDEX_PATH"]}),
                            work, chroma)
    finally:
        for proc in api:
            stop(proc)
        stop(chroma)
        if not args.data_dir:
            shutil.rmtree(work, ignore_errors=True)


def lifecycle_phase(settings: Settings, work: Path, chroma: subprocess.Popen) -> None:
    """Retire what is past retention (the synthetic closing dates span -30…+60 days): disk and server memory
    before and after (retirement frees Chroma slots for the next notices; nothing is copied)."""
    from tender_pipeline import lifecycle

    def measure() -> dict:
        return {"chroma_rss_mb": rss_mb(chroma.pid), "chroma_disk_mb": disk_mb(work / "chroma"),
                "lexical_disk_mb": disk_mb(work / "lexical")}

    before = measure()
    retired = lifecycle.retire_expired(settings)
    after_retire = measure()
    print(json.dumps({"phase": "lifecycle", "retention_days": settings.retention_days,
                      "retired": retired["retired"], "retire_seconds": retired["seconds"],
                      "live": retired["chroma_after"], "slots": retired["chroma_slots"],
                      "before": before, "after_retire": after_retire}), flush=True)


def start_api(py: str, args, work: Path, env: dict) -> tuple[list[subprocess.Popen], list[str]]:
    """The search API as compose runs it (``--balance least-conn``: one-worker replicas) or as one uvicorn with
    ``--workers N`` (``kernel``); returns the processes and the base URLs to send requests to."""
    replicas, workers = (args.api_workers, 1) if args.balance == "least-conn" else (1, args.api_workers)
    procs, bases = [], []
    for n in range(replicas):
        port = free_port()
        procs.append(start([py, "-m", "uvicorn", "search_api.main:app", "--host", "127.0.0.1", "--port", str(port),
                            "--workers", str(workers), "--log-level", "warning"], work / f"api{n}.log", env,
                           f"http://127.0.0.1:{port}/health"))
        bases.append(f"http://127.0.0.1:{port}")
    for base in bases:
        wait_ready(base)
    return procs, bases


def wait_ready(base_url: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{base_url}/ready", timeout=30).status_code == 200:
            return
        time.sleep(1)
    raise TimeoutError(f"{base_url}/ready never became ready")


def ingest_phase(args, gen: Generator, work: Path, env: dict, bases: list[str], mix: list[dict],
                 levels: list[int], size: int) -> None:
    """The API under load while a real ingest of ``--ingest-rows`` new notices runs (nice'd, as the worker)."""
    batch = work / f"ingest_{size}.csv"
    ingest_csv(gen, batch, args.ingest_rows, offset=10_000_000 + size)
    level = 8 if 8 in levels else levels[-1]
    log(f"ingest of {args.ingest_rows} rows under load at concurrency {level}")
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "tender_pipeline", "ingest", str(batch), "--json"],
                            stdout=(work / "ingest.out").open("wb"), stderr=(work / "ingest.log").open("wb"),
                            env=env, start_new_session=True)
    try:
        row = asyncio.run(drive_api(bases, mix, level, 0, until=lambda: proc.poll() is not None))
    finally:
        proc.wait()
    took = time.perf_counter() - started
    summary = {}
    try:
        summary = json.loads((work / "ingest.out").read_text() or "{}")
    except json.JSONDecodeError:
        pass
    print(json.dumps({"size": size, "concurrency": level, "phase": "ingest", "target": "api", **row,
                      "ingest_rows": args.ingest_rows, "ingest_seconds": round(took, 1),
                      "ingest_exit": proc.returncode, "upserted": summary.get("upserted")}), flush=True)


if __name__ == "__main__":
    main()
