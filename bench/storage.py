"""Every store against the design point: bytes and RSS per live notice, retention cycles on a compressed clock.

    python bench/storage.py [--live 2000000] [--days 6 --per-day 4000] [--backend fake-gemini|offline]

What runs is the product's own code:
  * each simulated day, four batches (00, 06, 12, 18 h) of ``--per-day / 4`` real-shaped notices are
    written as CSV files and ingested by Airflow, ``tender_ingest`` through ``dag.test()`` (fetch →
    validate → enrich → embed → upsert) into a ``chroma run`` server, the lexical index and staging;
    Airflow's metadata DB is a fresh PostgreSQL database when one is reachable (Render runs PostgreSQL),
    SQLite otherwise;
  * then the day's maintenance: ``tender_maintenance`` through ``dag.test()`` as of the simulated day
    (whatever its tasks are: retirement, compaction, staging's pruning), ``staging_retention.prune`` on
    the compressed clock, the feedback file's rotation, and ``scripts/airflow_housekeeping.sh``
    (``airflow db clean``);
  * a search API (uvicorn, one worker) on the same stores answers a few searches after each day, so its
    RSS and Chroma's can be read at several sizes.
A thread samples every store's bytes on disk every 0.5 s throughout, another the lexical index's every 0.05 s.

The compressed clock: durations are divided by ``COMPRESS`` (10): retention 14 days → 1 day, unknown
closing dates 60 → 6 days, staging 7 → 1 day, Airflow's 30 → 3 days; each notice's open period is a real
one (closing − published of a real record) divided by 10. Each day's records: 60 % new notices, 15 %
changed re-sends of live ones, 25 % unchanged re-sends.

Notices: real records read with the pipeline's own readers and profiles from ../shared/data/real (the
test fixtures when it is absent; the output says which), under new ids. ``--backend offline`` (default:
what the product runs without ``GEMINI_API_KEY``) runs the local enricher and embedder (384 dimensions);
``fake-gemini`` (the deployment with a key) enriches and embeds through the Gemini backends against
tests/gemini_fake.py, answers padded to the offline enricher's sizes on real data (200-character
summaries, 12 keywords) and ``--dim`` (768, Gemini's default) dimensions: Chroma's bytes grow with the
dimensions (4 bytes each a notice, bench/README.md).

Output: one JSON object per line per store (chroma, lexical, staging, airflow_db, feedback), see
``report`` below for the keys; ``--out`` keeps a copy. Projections to ``--live``: bytes from the least-squares
line through each day's (live, bytes) after maintenance; RSS = the RSS measured at the end plus the bytes per
notice of the index files the search API maps for each notice more, and for Chroma the line from an empty server
to one started afresh on the run's data and queried; peaks = the
worst transient seen in any simulated day times a day's inflow over the steady size at ``--live``.
docs/capacity.md has the arithmetic.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]
sys.path.insert(0, str(ROOT / "bench"))
REAL = ROOT.parent / "shared" / "data" / "real"
COMPRESS = 10
START = date(2026, 3, 1)  # simulated day 0
DESIGN = {"records_per_day": 80_000, "open_days_median": 29, "retention_days": 14, "runs_per_day": 4,
          "feedback_per_day": 2_000, "staging_retention_days": 7, "airflow_db_retention_days": 30,
          "feedback_keep_days": 365, "unknown_retention_days": 60}
MIX = {"new": 0.60, "changed": 0.15, "unchanged": 0.25}
CANONICAL = ["tender_id", "title", "description", "buyer", "country", "region", "city", "published_date",
             "closing_date", "value_amount", "currency", "category", "cpv_codes", "notice_type", "url", "source"]


def log(msg: str) -> None:
    print(f"[storage {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- sizes
def disk_bytes(path: Path) -> int:
    """Allocated bytes under ``path`` (hard links once), as `du` counts them."""
    if path.is_file():
        return path.stat().st_blocks * 512
    seen, total = set(), 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def rss_bytes(pid: int) -> int:
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, AttributeError):
            continue
    return total


class Sampler(threading.Thread):
    """Every store's bytes every ``interval`` s, tagged with the phase the main thread is in."""

    def __init__(self, measure, interval: float = 0.3) -> None:
        super().__init__(daemon=True)
        self.measure, self.interval = measure, interval
        self.phase, self.samples, self._halt = "start", [], threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((self.phase, self.measure()))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


# --------------------------------------------------------------------------- notices
def real_records(limit: int):
    from tender_pipeline.profiles import load_profiles
    from tender_pipeline.validate import read_files, validate_tables

    if REAL.is_dir():
        paths = sorted(p for p in REAL.rglob("*.csv") if p.parent.name not in ("cpv", "tendersontime"))
        origin = f"{REAL} ({len(paths)} CSV files)"
    else:
        paths = sorted((ROOT / "tests" / "fixtures").glob("*.csv"))
        origin = f"tests/fixtures ({REAL} is absent)"
    records, profiles = [], load_profiles("")
    for path in paths:
        try:
            valid = validate_tables(read_files([(path, path.name)]), profiles, None, 3000).valid
        except Exception as exc:
            log(f"skipped {path.name}: {exc}")
            continue
        records += [v["record"] for v in valid]
    random.Random(7).shuffle(records)
    return records[:limit], origin


class Notices:
    """Simulated day d's records: new notices (real texts, new ids, compressed open periods) and re-sends."""

    def __init__(self, records: list[dict]) -> None:
        self.records, self.live, self.next_id = records, [], 0
        opens = [(date.fromisoformat(r["closing_date"]) - date.fromisoformat(r["published_date"])).days
                 for r in records if r.get("closing_date") and r.get("published_date")]
        self.opens = [o for o in opens if 0 <= o <= 365] or [29]
        self.undated_share = sum(1 for r in records if not r.get("closing_date")) / max(len(records), 1)

    def day(self, d: int, count: int) -> list[dict]:
        rng, today = random.Random(d), START + timedelta(days=d)
        out = []
        for _ in range(count):
            kind = rng.choices(list(MIX), weights=list(MIX.values()))[0] if self.live else "new"
            if kind == "new":
                base = dict(self.records[self.next_id % len(self.records)])
                self.next_id += 1
                base["tender_id"] = f"B{self.next_id:07d}-{base['tender_id'][:30]}"
                base["published_date"] = today.isoformat()
                undated = rng.random() < min(self.undated_share, 0.3)
                open_days = round(rng.choice(self.opens) / COMPRESS)
                base["closing_date"] = "" if undated else (today + timedelta(days=open_days)).isoformat()
                self.live.append(base)
                out.append(base)
            else:
                old = dict(rng.choice(self.live))
                if kind == "changed":
                    old["title"] = f"{old['title']} (amended {today.isoformat()})"
                out.append(old)
        return out


def write_batch(path: Path, rows: list[dict]) -> Path:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CANONICAL)
        writer.writeheader()
        for r in rows:
            row = {k: r.get(k) if r.get(k) is not None else "" for k in CANONICAL}
            row["cpv_codes"] = " ".join(r.get("cpv_codes") or [])
            writer.writerow(row)
    return path


def padded_gemini():
    """tests/gemini_fake.FakeGemini, its enrichment answers padded to the offline enricher's sizes."""
    from tests.gemini_fake import FakeGemini

    class Padded(FakeGemini):
        def _generate(self, entry):
            code, body, headers = super()._generate(entry)
            try:
                part = body["candidates"][0]["content"]["parts"][0]
                items = json.loads(part["text"])["items"]
            except (KeyError, IndexError, TypeError, ValueError):
                return code, body, headers
            prompt = entry.body.get("contents")
            words = re.findall(r"[A-Za-z]{4,}", json.dumps(prompt))
            for n, item in enumerate(items):
                pick = words[n * 7 % max(len(words), 1):][:40] or ["works"]
                item["summary"] = (" ".join(pick)).capitalize()[:200]
                item["keywords"] = list(dict.fromkeys(w.lower() for w in pick))[:12]
            part["text"] = json.dumps({"items": items})
            return code, body, headers

    return Padded().start()


# --------------------------------------------------------------------------- the run
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live", type=int, default=2_000_000, help="live notices to project to")
    parser.add_argument("--days", type=int, default=6, help="simulated days (retention cycles)")
    parser.add_argument("--per-day", type=int, default=4000, help="records ingested per simulated day")
    parser.add_argument("--backend", choices=["fake-gemini", "offline"], default="offline",
                        help="offline (default): the product's backends without GEMINI_API_KEY, 384 dimensions; "
                        "fake-gemini: the Gemini deployment's shape against tests/gemini_fake.py (--dim)")
    parser.add_argument("--dim", type=int, default=768, help="embedding size with --backend fake-gemini")
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep it (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "storage.json")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the servers and the database are cleaned up
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-storage-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        lines = run(args, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    for line in lines:
        print(json.dumps(line), flush=True)
    return 0


def run(args, work: Path) -> list[dict]:
    from tests.services import chroma_server, postgres_database, postgres_unavailable_reason

    with ExitStack() as stack:
        host, port = stack.enter_context(chroma_server(work / "chroma"))
        db_url = None if postgres_unavailable_reason() else stack.enter_context(postgres_database("bench_storage"))
        os.environ.update(environment(args, work, host, port, db_url, stack))  # before Airflow is imported
        subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True,
                       capture_output=True, env=os.environ.copy())
        return Bench(args, work, db_url, _pid_of(f"--port {port}")).go()


def _pid_of(needle: str) -> int:
    """The process whose command line holds ``needle`` (the chroma server: tests/services hides its Popen)."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and needle in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                return int(proc.name)
        except OSError:
            continue
    return 0


def environment(args, work: Path, host: str, port: int, db_url: str | None, stack: ExitStack) -> dict[str, str]:
    env = {
        "AIRFLOW_HOME": str(work / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url or f"sqlite:///{work / 'airflow' / 'airflow.db'}",
        "CHROMA_HOST": host, "CHROMA_PORT": str(port), "TENDER_COLLECTION": "bench_storage",
        "STAGING_URI": str(work / "staging"), "INCOMING_URI": str(work / "incoming"),
        "LEXICAL_INDEX_PATH": str(work / "lexical"), "FEEDBACK_PATH": str(work / "feedback" / "feedback.jsonl"),
        "DATABASE_URL": f"sqlite:///{work / 'tender_search.db'}", "INGEST_NICE": "0", "INCOMING_SETTLE_S": "0",
        "RETENTION_DAYS": str(max(1, round(DESIGN["retention_days"] / COMPRESS))),
        "RETENTION_UNKNOWN_DAYS": str(max(1, round(DESIGN["unknown_retention_days"] / COMPRESS))),
        "STAGING_RETENTION_DAYS": "1", "TENDER_RETRIES": "0", "HF_HUB_OFFLINE": "1",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "ANONYMIZED_TELEMETRY": "False",
    }
    (work / "airflow").mkdir(parents=True, exist_ok=True)
    if args.backend == "fake-gemini":
        fake = padded_gemini()
        stack.callback(fake.stop)
        env.update(GEMINI_API_KEY="bench-key", GEMINI_BASE_URL=fake.base_url, ENRICH_BACKEND="gemini",
                   EMBED_BACKEND="gemini", GEMINI_EMBED_DIM=str(args.dim), GEMINI_CONTEXT_CACHE="false",
                   GEMINI_RPM="100000", GEMINI_TPM="1000000000")
    else:
        env.update(ENRICH_BACKEND="local", EMBED_BACKEND="local")
    return env


class Bench:
    """The simulated days; ``days`` records what each measured."""

    def __init__(self, args, work: Path, db_url: str | None, chroma_pid: int) -> None:
        from search_api.feedback import FeedbackLog
        from tender_pipeline.settings import Settings

        self.args, self.work, self.db_url, self.chroma_pid = args, work, db_url, chroma_pid
        self.settings = Settings()
        # the compressed clock's rotation size: a few rotations in the run (production: FEEDBACK_ROTATE_BYTES)
        self.feedback = FeedbackLog(self.settings.feedback_path, rotate_bytes=16 << 10)
        self.feedback_lines = self.feedback_bytes = 0
        self.stores = {"chroma": work / "chroma", "lexical": work / "lexical", "staging": work / "staging",
                       "feedback": work / "feedback"}
        self.days: list[dict] = []

    def measure(self) -> dict[str, int]:
        got = {name: disk_bytes(path) if path.exists() else 0 for name, path in self.stores.items()}
        got["airflow_db"] = airflow_db_bytes(self.db_url, self.work)
        return got

    def go(self) -> list[dict]:
        from airflow.dag_processing.dagbag import DagBag

        records, self.origin = real_records(max(self.args.per_day * self.args.days, 2000))
        log(f"{len(records)} real-shaped records from {self.origin}")
        notices = Notices(records)
        dags = DagBag(dag_folder=str(ROOT / "dags")).dags
        ingest, self.maintenance = dags["tender_ingest"], dags["tender_maintenance"]
        api = start_api(self.work)
        sampler = Sampler(self.measure, 0.5)
        # the lexical index alone, often: a commit's new segment sits beside the old ones for well under a second
        # before they are deleted, which the every-store sampler can miss (a folder of ~50 files: ~1 ms a look)
        self.fast = Sampler(lambda: {"lexical": disk_bytes(self.stores["lexical"])}, 0.05)
        self.empty = self.measure()
        self.empty_rss = rss_bytes(self.chroma_pid)
        sampler.start()
        self.fast.start()
        try:
            for d in range(self.args.days):
                self.day(d, notices, ingest, api, sampler)
        finally:
            sampler.stop()
            self.fast.stop()
            api.terminate()
            api.wait(30)
        self.fresh_rss = fresh_chroma_rss(self.chroma_pid, self.work / "chroma")
        try:
            return report(self)
        finally:
            from airflow import settings as airflow_settings

            airflow_settings.dispose_orm()  # before the benchmark's database is dropped

    def day(self, d: int, notices: Notices, ingest, api, sampler: Sampler) -> None:
        from tender_pipeline import staging_retention

        day, t_ingest = START + timedelta(days=d), time.time()
        sampler.phase = self.fast.phase = f"ingest {d}"
        batch = notices.day(d, self.args.per_day)
        for k in range(DESIGN["runs_per_day"]):
            path = write_batch(self.work / "incoming" / day.isoformat() / f"{6 * k:02d}" / "batch.csv",
                               batch[k::DESIGN["runs_per_day"]])
            run = ingest.test(run_conf={"source": str(path), "limit": None, "force": False, "profile": ""})
            assert run.state == "success", f"ingest day {d} batch {k}: {run.state}"
        self.post_feedback(batch, DESIGN["feedback_per_day"] // COMPRESS)
        searched = exercise_api(api, batch)
        before = self.measure()
        rss = {"chroma": rss_bytes(self.chroma_pid), "api": rss_bytes(api.pid)}
        sampler.phase = self.fast.phase = f"maintenance {d}"
        # the product's maintenance, whatever its tasks are: tender_maintenance as of this simulated day
        run = self.maintenance.test(logical_date=datetime.combine(day, dtime(3, 30), UTC))
        assert run.state == "success", f"maintenance day {d}: {run.state}"
        # staging's pruning again with a compressed clock for the run folders: a run folder is a simulated day
        # old when it was written before this day's ingest began (the DAG's task measures folders in real time)
        pruned = staging_retention.prune(self.settings, today=day, now=t_ingest + 86_400)
        self.feedback.compress_and_prune()
        housekeeping(self.days)
        after = self.measure()
        live = self.live()
        phases = (f"ingest {d}", f"maintenance {d}")
        window = [s for p, s in list(sampler.samples) + list(self.fast.samples) if p in phases] + [before, after]
        self.days.append({"day": d, "t_end": time.time(), "live": live, "before": before, "after": after,
                          "peak": {k: max(s[k] for s in window if k in s) for k in after}, "rss": rss,
                          "resident": {"api": after["lexical"]},
                          "kept_rows": pruned["kept_rows_kept"], "kept_live": pruned["kept_live"],
                          "searches_ok": searched})
        sampler.phase = self.fast.phase = f"after {d}"
        log(f"day {d}: live {live}, kept rows {pruned['kept_rows_kept']}, bytes {json.dumps(after)}, "
            f"rss {json.dumps(rss)}")

    def live(self) -> int:
        """Live notices: what the lexical index holds (every notice has its card there)."""
        from tender_pipeline.lexical import open_index

        index = open_index(self.settings.lexical_dir)
        index.reload()
        return index.num_docs()

    def post_feedback(self, batch: list[dict], count: int) -> None:
        rng = random.Random(len(batch) + len(self.days))
        for _ in range(count):
            r = rng.choice(batch)
            line = {"received_at": datetime.now(UTC).isoformat(), "query": " ".join(r["title"].split()[:4]),
                    "result_id": r["tender_id"], "rating": rng.choice([1, -1]), "position": rng.randint(0, 9),
                    "session_id": f"s{rng.randint(0, 10**6)}",
                    "comment": "" if rng.random() < 0.8 else "not relevant to our work"}
            self.feedback.append(line)
            self.feedback_lines += 1
            self.feedback_bytes += len(json.dumps(line, ensure_ascii=False, separators=(",", ":"))) + 1


def housekeeping(days: list[dict]) -> None:
    """scripts/airflow_housekeeping.sh with the compressed retention: rows from before the day N cycles ago."""
    keep = max(1, round(DESIGN["airflow_db_retention_days"] / COMPRESS))
    if len(days) < keep:
        return
    before = datetime.fromtimestamp(days[-keep]["t_end"], UTC).strftime("%Y-%m-%d %H:%M:%S+00:00")
    done = subprocess.run(["bash", str(ROOT / "scripts" / "airflow_housekeeping.sh")], capture_output=True, text=True,
                   env={**os.environ, "AIRFLOW_DB_CLEAN_BEFORE": before,
                        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                        "AIRFLOW_HOUSEKEEPING_STAMP": str(Path(os.environ["AIRFLOW_HOME"]) / "housekeeping.ok")})
    if done.returncode:
        raise RuntimeError(f"airflow_housekeeping.sh failed: {done.stderr[-2000:]}")


def fresh_chroma_rss(pid: int, data: Path) -> int:
    """RSS of a Chroma server started afresh on the run's data once every collection has answered a query:
    what it needs for the live notices, without what a long run leaves behind (a dropped collection's folder
    is never loaded). The run's server is stopped first (one server per folder)."""
    import chromadb
    import numpy as np

    from tests.services import free_port, wait_http

    if pid:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)
    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "chroma"), "run", "--path", str(data), "--host",
                             "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v2/heartbeat", 60, proc)
        client = chromadb.HttpClient(host="127.0.0.1", port=port)
        for ref in client.list_collections():
            collection = client.get_collection(ref.name, embedding_function=None)
            got = collection.get(limit=1, include=["embeddings"])
            if got["ids"]:
                collection.query(query_embeddings=[np.asarray(got["embeddings"][0])], n_results=10, include=[])
        return rss_bytes(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)


def airflow_db_bytes(db_url: str | None, work: Path) -> int:
    if db_url:
        import psycopg2

        with psycopg2.connect(host="127.0.0.1", user="postgres", dbname=db_url.rsplit("/", 1)[1]) as conn, \
                conn.cursor() as cur:
            cur.execute("SELECT pg_database_size(current_database())")
            return int(cur.fetchone()[0])
    path = work / "airflow" / "airflow.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:  # live pages only: freed pages are reused, as PostgreSQL reuses space
        pages, free, size = (conn.execute(f"PRAGMA {p}").fetchone()[0]
                             for p in ("page_count", "freelist_count", "page_size"))
    return (pages - free) * size


def start_api(work: Path) -> subprocess.Popen:
    from tests.services import free_port, wait_http

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "search_api.main:app", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": f"{ROOT / 'plugins'}:{ROOT}", "RATE_LIMIT": ""},
                            stdout=(work / "api.log").open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/health", 120, proc)
    proc.base = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return proc


def exercise_api(api, batch: list[dict]) -> int:
    """A few searches, so the API's RSS includes what serving reads (the index's pages, caches)."""
    import httpx

    ok = 0
    for r in batch[:20]:
        try:
            got = httpx.get(f"{api.base}/search", params={"q": " ".join(r["title"].split()[:3])}, timeout=60)
            ok += got.status_code == 200
        except httpx.HTTPError:
            pass
    return ok


# --------------------------------------------------------------------------- the figures
PLAN_MEMORY = {"starter": 512 << 20, "standard": 2 << 30, "pro": 4 << 30, "pro plus": 8 << 30,
               "pro max": 16 << 30, "pro ultra": 32 << 30}  # docs/capacity.md cites Render's plan table
ON_DISK = {"airflow-worker": ["staging", "lexical x2"], "search-api": ["lexical x2", "feedback"],
           "chroma": ["chroma"], "tender-airflow-db": ["airflow_db"]}
HOME = {"chroma": "chroma", "lexical": "airflow-worker", "staging": "airflow-worker",
        "feedback": "search-api", "airflow_db": "tender-airflow-db"}
SERVER = {"chroma": "chroma", "lexical": "search-api"}


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of y on x."""
    n = len(points)
    if n < 2:
        x, y = points[0] if points else (1.0, 0.0)
        return 0.0, y / max(x, 1.0)
    mx, my = sum(p[0] for p in points) / n, sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points) or 1.0
    slope = sum((p[0] - mx) * (p[1] - my) for p in points) / sxx
    return my - slope * mx, slope


def render_services() -> dict[str, dict]:
    import yaml

    bp = yaml.safe_load((ROOT / "render.yaml").read_text())
    out = {s["name"]: {"disk": (s.get("disk") or {}).get("sizeGB"), "plan": s.get("plan")}
           for s in bp.get("services", [])}
    out.update({d["name"]: {"disk": d.get("diskSizeGB"), "plan": d.get("plan")} for d in bp.get("databases", [])})
    return out


def report(b: Bench) -> list[dict]:
    args, days, empty = b.args, b.days, b.empty
    last, L = days[-1], args.live
    new_per_day = L / (DESIGN["open_days_median"] + DESIGN["retention_days"])  # Little's law, docs/capacity.md
    common = {"live_measured": last["live"], "days": args.days, "per_day": args.per_day, "backend": args.backend,
              "dim": args.dim if args.backend == "fake-gemini" else 384, "data": b.origin}
    lines: dict[str, dict] = {}

    def peaks(store: str, steady: float, inflow_per_day: float) -> dict:
        """The worst transient seen in a day (ingest and maintenance: merges, compaction, rewrites) over that
        day's settled size, times the daily sawtooth at --live (a day's inflow over the steady size)."""
        transient = max(d["peak"][store] / max(d["before"][store], d["after"][store], 1) for d in days)
        sawtooth = (steady + inflow_per_day) / max(steady, 1)
        settled = [d["after"][store] for d in days[len(days) // 2:]]
        measured = max(d["peak"][store] for d in days[len(days) // 2:]) / max(sum(settled) / len(settled), 1)
        return {"peak_over_steady": round(transient * sawtooth, 3), "worst_transient": round(transient, 3),
                "daily_sawtooth_at_live": round(sawtooth, 4), "peak_over_steady_compressed_clock": round(measured, 3)}

    for store in ("chroma", "lexical"):
        key, server = "live", "chroma" if store == "chroma" else "api"
        live = max(last[key], 1)
        points = [(d[key], d["after"][store]) for d in days]
        fixed, bpn = fit(points) if len(points) >= 3 else (empty[store], (last["after"][store] - empty[store]) / live)
        if bpn <= 0:
            fixed, bpn = empty[store], (last["after"][store] - empty[store]) / live
        steady = max(fixed, 0) + bpn * L
        _, grows = fit([(d[key], d["rss"][server]) for d in days[1:] or days])  # day 0: the servers warming up
        if store == "chroma":
            per = (b.fresh_rss - b.empty_rss) / live
            rss = b.empty_rss + per * L
            how = (f"a Chroma server started afresh on the run's data, every collection queried: "
                   f"{b.fresh_rss} B at {live} live, {b.empty_rss} B empty; the line through both, at --live "
                   f"({round(per)} B a notice)")
        else:
            per = last["resident"][server] / live
            rss = last["rss"][server] + per * (L - live)
            how = (f"the search API's RSS at the end ({last['rss'][server]} B at {live} live) + (--live - live) x "
                   f"{round(per)} B, the bytes per notice of the index files it maps (all resident)")
        lines[store] = {"store": store, "bytes_per_notice": round(bpn),
                        "bytes_per_notice_average": round(last["after"][store] / live), "steady_bytes": round(steady),
                        **peaks(store, steady, new_per_day * bpn), "rss_bytes": round(rss),
                        "rss_measured": [[d[key], d["rss"][server]] for d in days], "rss_projection": how,
                        "rss_growth_per_notice_in_run": round(grows),
                        "server": "chroma run" if store == "chroma" else "search API (one uvicorn worker)"}
    # staging: kept rows (∝ live, times the trim overhead seen) + run folders and the enrichment cache
    # (∝ records a day × STAGING_RETENTION_DAYS) + the ledger (a marker per batch file, kept)
    root = Path(b.settings.staging_uri)
    kept_bytes = disk_bytes(root / "_kept") if (root / "_kept").exists() else 0
    cache = sum(disk_bytes(p) for p in root.glob("_enrich_cache.sqlite*"))
    ledger = disk_bytes(root / "_ledger") if (root / "_ledger").exists() else 0
    runs_bytes = last["after"]["staging"] - kept_bytes - cache - ledger
    kept_per_live = kept_bytes / max(last["kept_rows"], 1)
    overhead = max(d["kept_rows"] / max(d["kept_live"], 1) for d in days)
    per_record = (runs_bytes + cache) / args.per_day  # after maintenance: one simulated day of run folders
    ledger_per_file = ledger / max(DESIGN["runs_per_day"] * args.days, 1)
    per_day = DESIGN["records_per_day"]
    steady = (kept_per_live * overhead * L + per_record * per_day * DESIGN["staging_retention_days"]
              + ledger_per_file * DESIGN["runs_per_day"] * 365 * 5)
    lines["staging"] = {"store": "staging", "bytes_per_notice": round(kept_per_live * overhead),
                        "steady_bytes": round(steady),
                        **peaks("staging", steady, per_record * per_day + kept_per_live * per_day * 0.75),
                        "kept_bytes_per_row": round(kept_per_live), "kept_rows_over_live_max": round(overhead, 3),
                        "run_folder_and_cache_bytes_per_record": round(per_record),
                        "ledger_bytes_per_file": round(ledger_per_file), "rss_bytes": None}
    # Airflow's metadata DB: bytes per task instance of an ingest run (its XComs, history, audit rows)
    from airflow.dag_processing.dagbag import DagBag

    dags = DagBag(dag_folder=str(ROOT / "dags")).dags
    grown = sorted(d["before"]["airflow_db"] - (days[i - 1]["after"]["airflow_db"] if i else empty["airflow_db"])
                   for i, d in enumerate(days))
    per_ti = grown[len(grown) // 2] / (DESIGN["runs_per_day"] * len(dags["tender_ingest"].tasks))
    tis_per_day = DESIGN["runs_per_day"] * (len(dags["tender_ingest"].tasks) + len(dags["tender_alerts"].tasks)) \
        + len(dags["tender_maintenance"].tasks)
    steady = empty["airflow_db"] + per_ti * tis_per_day * DESIGN["airflow_db_retention_days"]
    lines["airflow_db"] = {"store": "airflow_db",
                           "bytes_per_notice": round(per_ti * tis_per_day / DESIGN["records_per_day"], 3),
                           "bytes_per_task_instance": round(per_ti), "task_instances_per_day": tis_per_day,
                           "steady_bytes": round(steady), **peaks("airflow_db", steady, per_ti * tis_per_day),
                           "rss_bytes": None, "engine": "postgresql" if b.db_url else "sqlite"}
    # feedback: the current file (up to FEEDBACK_ROTATE_BYTES) + gzip'd archives for FEEDBACK_KEEP_DAYS
    fb = Path(b.settings.feedback_path)
    current = fb.stat().st_size if fb.exists() else 0
    gz = sum(p.stat().st_size for p in fb.parent.glob(fb.name + ".*.gz"))
    ratio = gz / max(b.feedback_bytes - current, 1) if gz else 1.0
    per_line = b.feedback_bytes / max(b.feedback_lines, 1)
    rotate = 32 << 20
    steady = rotate + per_line * ratio * DESIGN["feedback_per_day"] * DESIGN["feedback_keep_days"]
    lines["feedback"] = {"store": "feedback", "bytes_per_notice": None, "bytes_per_line": round(per_line),
                         "gzip_ratio": round(ratio, 3), "lines_posted": b.feedback_lines,
                         "steady_bytes": round(steady),
                         **peaks("feedback", steady, per_line * DESIGN["feedback_per_day"]),
                         "rotation_peak_over_steady": round((steady + rotate * ratio) / steady, 3),
                         "rss_bytes": None, "feedback_per_day_assumed": DESIGN["feedback_per_day"]}
    # the run's feedback files are a few kB, where 4 kB blocks, not the rotation, make the transients: at --live
    # the peak is the rotation's, a full file and its gzip copy side by side for a moment
    lines["feedback"]["peak_over_steady"] = lines["feedback"]["rotation_peak_over_steady"]
    add_render(lines)
    return [{**line, **common} for line in lines.values()]


def add_render(lines: dict[str, dict]) -> None:
    """The disk render.yaml gives each store, what else shares it, and the headroom at --live."""
    services = render_services()
    steady = {k: v["steady_bytes"] for k, v in lines.items()}
    # counted twice: sized when tantivy's merges could rewrite most of the index (1.4-1.9x); the fold
    # (lexical/fold.py) bounds a commit to its documents plus ~1/7 of the index, so this is margin now, for the
    # writer and for a search API that keeps the previous version's files until the next one is in place
    steady["lexical x2"] = 2 * steady["lexical"]
    for store, line in lines.items():
        service = services.get(HOME[store], {})
        size = service.get("disk")
        line["render_disk_bytes"] = int(size) * 10**9 if size else None
        line["render_service"] = HOME[store]
        if size:
            on_disk = ON_DISK[HOME[store]]
            total = sum(steady[s] for s in on_disk)
            line["render_disk_holds"] = on_disk
            line["render_disk_steady_bytes"] = round(total)
            line["render_disk_headroom"] = round(int(size) * 10**9 / total, 2)
        if store in SERVER:
            plan = services.get(SERVER[store], {}).get("plan")
            line["render_plan"] = plan
            line["render_plan_memory_bytes"] = PLAN_MEMORY.get(plan)
            if PLAN_MEMORY.get(plan) and line["rss_bytes"]:
                line["rss_headroom"] = round(PLAN_MEMORY[plan] / line["rss_bytes"], 2)


if __name__ == "__main__":
    sys.exit(main())
