"""Staging full or not writable: one clear line, nothing recorded as done, and the retry completes.

The staging folder is a real small file system (a tmpfs of a few hundred KiB,
mounted for the test), filled to the last byte or mounted read-only, so the
kernel answers ENOSPC/EROFS exactly as a full or broken volume would. Mounting
needs root (or CAP_SYS_ADMIN); elsewhere these tests skip and say so.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import chromadb
import pytest

from tender_pipeline import kept, pipeline, sources, staging
from tender_pipeline.errors import USER_ERRORS
from tender_pipeline.settings import Settings
from tender_pipeline.staging import StagingWriteError
from tests import stored
from tests.conftest import ROOT
from tests.test_faults_chroma import _wait_for_state, batch, fast_retry_dag  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow
ROWS = 60


@contextlib.contextmanager
def small_fs(path: Path, size: str = "512k", read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path`` for the test's duration."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size},mode=0777" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> Path:
    """Write zeros until the file system says ENOSPC; returns the filler (delete it to free the space)."""
    filler = folder / "filler.bin"
    with filler.open("wb", buffering=0) as fh:
        chunk = b"\0" * 4096
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    # a few bytes may still fit in the last page: take them too
    with filler.open("ab", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0")
    return filler


def cli(source: Path, env_extra: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHROMA_", "STAGING_", "TENDER_"))}
    env.update(PYTHONPATH=str(ROOT / "plugins"), ENRICH_BACKEND="local", EMBED_BACKEND="local", **env_extra)
    return subprocess.run([sys.executable, "-m", "tender_pipeline", "ingest", str(source)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def count(host: str, port: int, collection: str) -> int:
    client = chromadb.HttpClient(host=host, port=port)
    names = [c.name for c in client.list_collections()]
    return client.get_collection(collection).count() if collection in names else 0


def finished_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.name in {"summary.json", "upsert.json"})


def test_staging_write_errors_are_retryable_not_bad_input():
    """The DAG fails USER_ERRORS at once and retries everything else: a full disk must be retried."""
    assert not issubclass(StagingWriteError, USER_ERRORS)


def test_cli_with_staging_full_fails_in_one_line_and_records_nothing(tmp_path, sample_csv, chroma):
    host, port = chroma
    collection = f"full_{uuid.uuid4().hex[:8]}"
    with small_fs(tmp_path / "staging", size="64k") as stage:  # the 82 KB sample does not fit
        result = cli(sample_csv, {"CHROMA_HOST": host, "CHROMA_PORT": str(port), "TENDER_COLLECTION": collection,
                                  "STAGING_URI": str(stage)}, tmp_path)
        assert result.returncode == 3, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert str(stage) in lines[0] and "no space left on device" in lines[0], lines[0]
        assert finished_files(stage) == []
        assert not [p for p in stage.rglob("*.part")]  # no half-copied batch left behind
    assert count(host, port, collection) == 0


def test_cli_with_staging_read_only_fails_in_one_line(tmp_path, sample_csv, chroma):
    host, port = chroma
    with small_fs(tmp_path / "staging", read_only=True) as stage:
        result = cli(sample_csv, {"CHROMA_HOST": host, "CHROMA_PORT": str(port),
                                  "TENDER_COLLECTION": f"ro_{uuid.uuid4().hex[:8]}", "STAGING_URI": str(stage)},
                     tmp_path)
    assert result.returncode == 3, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(stage) in lines[0] and "not writable (read-only file system)" in lines[0], lines[0]


def test_staging_full_at_upsert_records_nothing_then_the_retry_completes_exactly(tmp_path, sample_csv, chroma):
    """Chroma takes the vectors, but upsert.json cannot be written: the stage fails, nothing says done."""
    source, expected = batch(tmp_path, sample_csv, rows=ROWS)
    host, port = chroma
    with small_fs(tmp_path / "staging", size="1m") as stage:
        settings = Settings(chroma_host=host, chroma_port=port, tender_collection=f"full_{uuid.uuid4().hex[:8]}",
                            staging_uri=str(stage), lexical_index_path=str(tmp_path / "lexical"),
                            embed_backend="local", enrich_backend="local")
        run = pipeline.fetch(settings, "full-at-upsert", source=str(source))
        for stage_fn in (pipeline.validate, pipeline.enrich, pipeline.embed):
            stage_fn(settings, run)
        filler = fill(stage)

        with pytest.raises(StagingWriteError) as failed:
            pipeline.upsert(settings, run)
        message = str(failed.value)  # the run folder's files, or the part sealed into <staging>/_kept
        assert "\n" not in message and str(stage) in message and "no space left on device" in message, message
        assert finished_files(stage) == [] and kept.parts(stage) == []  # not recorded as done, nothing sealed
        assert sorted(p.name for p in Path(run).iterdir() if p.name.startswith(".")) == []  # no temp files

        filler.unlink()  # the operator frees space; Airflow's retry runs the same stage again
        summary = pipeline.upsert(settings, run)
        assert [p.manifest["rows"] for p in kept.parts(stage)] == [ROWS]
    assert (summary["upserted"], summary["inserted"], summary["updated"]) == (ROWS, ROWS, 0)
    assert summary["collection_count"] == ROWS
    got = stored.chroma_ids(chromadb.HttpClient(host=host, port=port).get_collection(settings.tender_collection))
    assert sorted(got) == sorted(expected) and len(set(got)) == len(got)


def test_staging_full_at_fetch_claims_nothing_in_the_ledger_and_the_retry_takes_the_file(tmp_path, sample_csv):
    """An interval run whose staging is full claims no file, so its retry (or any later run) can take it."""
    hour = datetime(2026, 11, 27, 2, tzinfo=UTC)
    incoming = tmp_path / "incoming" / hour.strftime("%Y-%m-%d/%H")
    incoming.mkdir(parents=True)
    (incoming / "batch.csv").write_bytes(sample_csv.read_bytes())
    (incoming / "_SUCCESS").write_bytes(b"")
    with small_fs(tmp_path / "staging", size="256k") as stage:
        settings = Settings(incoming_uri=str(tmp_path / "incoming"), staging_uri=str(stage))
        filler = fill(stage)
        interval = (hour, hour + timedelta(hours=6))
        with pytest.raises(StagingWriteError) as failed:
            pipeline.fetch(settings, "scheduled__full", interval=interval)
        assert str(stage) in str(failed.value) and "no space left on device" in str(failed.value)
        assert sources.Ledger(settings.ledger_dir).entries() == []

        filler.unlink()
        run = pipeline.fetch(settings, "scheduled__full", interval=interval)  # the retry
        fetched = staging.read_json(Path(run) / "fetch.json")
    assert [f["name"] for f in fetched["files"]] == ["batch.csv"] and fetched["skipped_files"] == []


def test_dag_retries_a_full_staging_volume_and_the_run_succeeds(fast_retry_dag, monkeypatch, tmp_path,  # noqa: F811
                                                                 sample_csv, chroma):
    """Staging is full when fetch starts: the task is retried (an environment fault), then the run succeeds."""
    source, expected = batch(tmp_path, sample_csv, rows=20)
    host, port = chroma
    with small_fs(tmp_path / "staging", size="1m") as stage:
        values = {"CHROMA_HOST": host, "CHROMA_PORT": str(port), "TENDER_COLLECTION": f"dfull_{uuid.uuid4().hex[:8]}",
                  "STAGING_URI": str(stage), "LEXICAL_INDEX_PATH": str(tmp_path / "lexical"),
                  "ENRICH_BACKEND": "local", "EMBED_BACKEND": "local"}
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        filler = fill(stage)
        freed = threading.Event()

        def free_when_fetch_waits_for_retry() -> None:
            if _wait_for_state("fetch", "up_for_retry"):
                filler.unlink()
                freed.set()

        from airflow.models import import_all_models
        from sqlalchemy.orm import configure_mappers

        import_all_models()  # see test_faults_chroma: map models before the watcher's first query
        configure_mappers()
        watcher = threading.Thread(target=free_when_fetch_waits_for_retry, daemon=True)
        watcher.start()
        try:
            dag_run = fast_retry_dag.test(run_conf={"source": str(source), "limit": None, "force": False,
                                                    "profile": ""})
        finally:
            watcher.join(timeout=120)
        assert freed.is_set() and dag_run.state == "success", dag_run.state
        tries = {ti.task_id: ti.try_number for ti in dag_run.get_task_instances()}
        assert tries["fetch"] >= 2 and tries["validate"] == 1, tries
        summary = staging.read_json(staging.run_dir(str(stage), dag_run.run_id) / "summary.json")
    assert (summary["upserted"], summary["collection_count"]) == (20, 20)
    got = stored.chroma_ids(chromadb.HttpClient(host=host, port=port).get_collection(values["TENDER_COLLECTION"]))
    assert sorted(got) == sorted(expected)
