"""Real services for tests: `chroma run`, moto's S3 server and Airflow components on free ports;
PostgreSQL/Redis probes and a throwaway PostgreSQL database.

Each helper is a context manager that starts the process, waits until it
answers, yields where it listens and stops it (by PID) afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s ({last})")


@contextlib.contextmanager
def _process(cmd: list[str], log_path: Path, health_url: str, timeout: float = 60.0,
             env: dict | None = None) -> Iterator[subprocess.Popen]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        try:
            wait_http(health_url, timeout, proc)
            yield proc
        except BaseException:
            sys.stderr.write(log_path.read_text(errors="replace")[-3000:])
            raise
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def chroma_server(data_dir: Path) -> Iterator[tuple[str, int]]:
    """`chroma run` on a free port with its data in ``data_dir``; yields (host, port)."""
    port = free_port()
    cmd = [str(BIN / "chroma"), "run", "--path", str(data_dir), "--host", "127.0.0.1", "--port", str(port)]
    with _process(cmd, data_dir.parent / f"chroma-{port}.log", f"http://127.0.0.1:{port}/api/v2/heartbeat"):
        yield "127.0.0.1", port


@contextlib.contextmanager
def moto_s3_server(log_dir: Path) -> Iterator[str]:
    """moto in server mode (a real HTTP S3 endpoint); yields its endpoint URL."""
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    cmd = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    url = f"http://127.0.0.1:{port}"
    with _process(cmd, log_dir / f"moto-{port}.log", f"{url}/moto-api/", env=env):
        yield url


# --------------------------------------------------------------------------- generic processes
REPO = Path(__file__).resolve().parents[1]


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Service:
    """A long-running command in its own session, logging to a file.

    ``stop()`` signals the whole process group by the PID we started (Airflow
    components fork workers; those must not outlive the test), TERM then KILL.
    """

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name, self.argv, self.log_path, self.env, self.cwd = name, argv, log_path, env, cwd
        self.proc: subprocess.Popen | None = None

    def start(self) -> Service:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=self.env, cwd=self.cwd, start_new_session=True)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 20.0) -> None:
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the PID is the process-group id
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        # The leader may be gone while its workers linger: the group decides.
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return f"--- {self.name}: no log"
        return f"--- {self.name} ({self.log_path}), last {lines} lines\n" + "\n".join(text[-lines:])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


# --------------------------------------------------------------------------- PostgreSQL / Redis
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def postgres_unavailable_reason() -> str | None:
    """Why the production-shaped tests can't use PostgreSQL here, or None when they can."""
    if not port_open(PG_HOST, PG_PORT):
        return f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} (CI machines run it; laptops may not)"
    try:
        import psycopg2

        psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=3).close()
    except Exception as exc:  # auth, missing role...: say what happened
        return f"PostgreSQL at {PG_HOST}:{PG_PORT} refused user {PG_USER!r} with trust auth: {exc}"
    return None


def redis_unavailable_reason() -> str | None:
    if not port_open(REDIS_HOST, REDIS_PORT):
        return f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT} (CI machines run it; laptops may not)"
    return None


@contextlib.contextmanager
def postgres_database(prefix: str = "airflow_ci") -> Iterator[str]:
    """A fresh, uniquely named database; yields its SQLAlchemy URL, drops it afterwards."""
    import secrets

    import psycopg2

    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# --------------------------------------------------------------------------- Airflow
AIRFLOW = BIN / "airflow"
COMPONENTS = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer"],
    # Two task slots: enough for one run's chain plus a backfill run, on 2 cores.
    "celery-worker": ["celery", "worker", "--concurrency", "2", "--skip-serve-logs"],
}


class AirflowCluster:
    """Airflow components started as separate processes on one AIRFLOW_HOME.

    The same env reaches every component and CLI call, so they share the
    metadata DB, JWT secret and execution-API URL, as containers sharing a
    config do in docker-compose.
    """

    def __init__(self, home: Path, log_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        import secrets

        self.home, self.log_dir = home, log_dir
        self.api_port = free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update({
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(log_dir / "tasks"),
            # Ports other Airflows on this machine (make up) may hold.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)]),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        })
        env.update(extra_env or {})
        self.env = env
        self.services: dict[str, Service] = {}
        self._token: str | None = None

    # -- processes
    def cli(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        """One `airflow ...` CLI call; output kept in cli.log for the failure report."""
        proc = subprocess.run([str(AIRFLOW), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        with (self.log_dir / "cli.log").open("a") as log:
            log.write(f"$ airflow {' '.join(args)}  -> {proc.returncode}\n{proc.stdout}{proc.stderr}\n")
        if check and proc.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return proc

    def start(self, *components: str) -> None:
        for name in components:
            self.services[name] = Service(name, [str(AIRFLOW), *COMPONENTS[name]], self.log_dir / f"{name}.log",
                                          env=self.env).start()

    def add(self, service: Service) -> Service:
        """Track a non-Airflow service (e.g. Chroma) for tails and shutdown."""
        self.services[service.name] = service
        return service.start()

    def check_alive(self) -> None:
        dead = [s for s in self.services.values() if not s.alive]
        if dead:
            raise RuntimeError("stopped unexpectedly: " + ", ".join(s.name for s in dead))

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()

    def tails(self, lines: int = 40) -> str:
        parts = [s.tail(lines) for s in self.services.values()]
        cli_log = Service("cli", [], self.log_dir / "cli.log")
        return "\n".join([*parts, cli_log.tail(lines)])

    # -- REST API (/api/v2, SimpleAuthManager token)
    def wait_healthy(self, components: tuple[str, ...] = ("metadatabase", "scheduler", "dag_processor"),
                     timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        body: dict = {}
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                body = httpx.get(f"{self.api}/api/v2/monitor/health", timeout=5).json()
                if all((body.get(c) or {}).get("status") == "healthy" for c in components):
                    return body
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1)
        raise TimeoutError(f"Airflow not healthy after {timeout}s: {body}")

    def token(self) -> str:
        if self._token is None:
            passwords = self.home / "simple_auth_manager_passwords.json.generated"
            password = json.loads(passwords.read_text())["admin"]
            resp = httpx.post(f"{self.api}/auth/token", json={"username": "admin", "password": password}, timeout=10)
            resp.raise_for_status()
            self._token = resp.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token()}"}
        for attempt in range(3):  # one api-server worker on a loaded 2-core machine can stall for a while
            try:
                resp = httpx.request(method, f"{self.api}/api/v2{path}", headers=headers, timeout=60, **kwargs)
                break
            except httpx.TimeoutException:
                if attempt == 2 or method not in {"GET", "PATCH"}:
                    raise
        resp.raise_for_status()
        return resp

    def wait_dag(self, dag_id: str, timeout: float = 120) -> dict:
        """Until the dag-processor has serialized ``dag_id``; returns the DAG's REST record."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                return self.request("GET", f"/dags/{dag_id}").json()
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != 404:
                    raise
            time.sleep(2)
        raise TimeoutError(f"DAG {dag_id} not registered after {timeout}s")

    def dag_runs(self, dag_id: str) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100}).json()["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()["task_instances"]

    def wait_runs(self, dag_id: str, done, timeout: float = 600, poll: float = 3) -> list[dict]:
        """Poll the DAG's runs until ``done(runs)`` is true; fail fast when a run failed."""
        deadline = time.monotonic() + timeout
        runs: list[dict] = []
        while time.monotonic() < deadline:
            self.check_alive()
            runs = self.dag_runs(dag_id)
            failed = [r for r in runs if r["state"] == "failed"]
            if failed:
                details = {r["dag_run_id"]: [(t["task_id"], t["state"]) for t in
                                             self.task_instances(dag_id, r["dag_run_id"])] for r in failed}
                raise AssertionError(f"run(s) failed: {details}")
            if done(runs):
                return runs
            time.sleep(poll)
        raise TimeoutError(f"runs of {dag_id} not done after {timeout}s: "
                           f"{[(r['dag_run_id'], r['state']) for r in runs]}")


@contextlib.contextmanager
def serve_app(app, timeout: float = 30.0) -> Iterator[str]:
    """An ASGI app under a real uvicorn server in a thread; yields its base URL."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def serve_ready(settings, timeout: float = 120.0) -> Iterator[str]:
    """The search API for ``settings`` under uvicorn (serve_app), yielded once its /ready answers 200."""
    import httpx

    from search_api.main import create_app

    with serve_app(create_app(settings)) as url, httpx.Client(base_url=url) as client:
        wait_app_ready(client, timeout)
        yield url


def wait_app_ready(client, timeout: float = 120.0) -> None:
    """Poll a TestClient app's /ready until 200 (the model loads in the background)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/ready").status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"/ready never became 200: {client.get('/ready').json()}")
