"""Real services for tests: a `chroma run` server and a moto S3 server on free ports.

Each helper is a context manager that starts the process, waits until it
answers, yields where it listens and stops it (by PID) afterwards.
"""

from __future__ import annotations

import contextlib
import os
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
