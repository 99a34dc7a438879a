"""Staging and the ledger on a local folder and on S3 (moto's server), through the same interface.

The S3 half is what lets any Celery worker run any task: every artefact a
stage writes must read back whole from another process, writes must be atomic,
and the ledger must let exactly one of several racing claimants win.
"""

from __future__ import annotations

import multiprocessing
import time
from datetime import UTC, date, datetime
from pathlib import Path

import boto3
import numpy as np
import pytest

from tender_pipeline import pipeline, sources, staging
from tender_pipeline.settings import Settings
from tests.gemini_fake import FakeGemini, gemini_settings
from tests.services import moto_s3_server

BUCKET = "tender-staging"
ROWS = 60  # of the sample's 240: enough for every artefact, quick on a loaded machine


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    with moto_s3_server(tmp_path_factory.mktemp("moto")) as url:
        boto3.client("s3", endpoint_url=url, aws_access_key_id="x", aws_secret_access_key="x",
                     region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield url


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch):
    """boto3's own chain points at moto: the way a worker is configured (AWS_ENDPOINT_URL + keys)."""
    for key, value in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    staging._STORES.clear()  # stores cache a client built from the env
    yield boto3.client("s3")
    staging._STORES.clear()


def _keys(client, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return tmp_path / "staging"
    request.getfixturevalue("s3_env")
    return f"s3://{BUCKET}/{request.node.name.replace('[', '-').rstrip(']')}/"


def test_artefacts_round_trip(root):
    run = staging.run_dir(str(root), "scheduled__2026-11-27T00:00:00+00:00")
    assert run.name == "scheduled__2026-11-27T00_00_00_00_00"
    assert isinstance(run, Path) == (not str(root).startswith("s3://"))
    assert not run.exists()

    staging.write_json(run / "fetch.json", {"files": ["ä.csv"], "n": 2})
    rows = ({"i": i, "text": "x" * 100} for i in range(5000))  # a generator: written as it comes
    assert staging.write_jsonl(run / "valid.jsonl", rows) == 5000
    vectors = np.random.default_rng(0).random((300, 384), dtype=np.float32)
    staging.write_npy(run / "embeddings.npy", vectors)

    assert run.exists() and (run / "fetch.json").exists() and not (run / "nope.json").exists()
    assert staging.read_json(run / "fetch.json") == {"files": ["ä.csv"], "n": 2}
    assert [r["i"] for r in staging.read_jsonl(run / "valid.jsonl")] == list(range(5000))
    assert np.array_equal(staging.read_npy(run / "embeddings.npy"), vectors)
    assert [p.name for p in staging.listdir(run)] == ["embeddings.npy", "fetch.json", "valid.jsonl"]
    # a string (what XCom carries) names the same location
    assert staging.read_json(f"{run}/fetch.json")["n"] == 2

    (run / "fetch.json").unlink()
    assert not (run / "fetch.json").exists()
    assert staging.listdir(run / "raw") == []


def test_a_failed_write_leaves_the_previous_artefact_whole(root):
    run = staging.run_dir(str(root), "r1")
    staging.write_jsonl(run / "enriched.jsonl", [{"v": 1}])
    with pytest.raises(RuntimeError, match="enricher died"):
        with staging.writer(run / "enriched.jsonl") as fh:
            fh.write('{"v": 2}\n')
            raise RuntimeError("enricher died")
    assert list(staging.read_jsonl(run / "enriched.jsonl")) == [{"v": 1}]
    assert [p.name for p in staging.listdir(run)] == ["enriched.jsonl"]  # no temp file left behind


def test_embeddings_are_written_and_read_in_chunks(root):
    """embeddings.npy is built chunk by chunk and read back as a memory map; a short write is never published."""
    run = staging.run_dir(str(root), "r-npy")
    rng = np.random.default_rng(1)
    chunks = [rng.random((n, 8), dtype=np.float32) for n in (256, 256, 37)]
    with staging.npy_writer(run / "embeddings.npy", 549, 8) as add:
        for chunk in chunks:
            add(chunk)
    with staging.open_npy(run / "embeddings.npy") as vectors:
        assert isinstance(vectors, np.memmap) and vectors.shape == (549, 8)
        assert np.array_equal(vectors[256:512], chunks[1]) and np.array_equal(vectors[-37:], chunks[2])
    assert np.array_equal(staging.read_npy(run / "embeddings.npy"), np.vstack(chunks))  # a plain .npy

    with pytest.raises(ValueError, match="1 rows written, 549 announced"):  # an embedder that returned too few
        with staging.npy_writer(run / "embeddings.npy", 549, 8) as add:
            add(chunks[2][:1])
    with pytest.raises(ValueError, match="does not fit"):
        with staging.npy_writer(run / "embeddings.npy", 549, 8) as add:
            add(rng.random((3, 9)))
    assert staging.read_npy(run / "embeddings.npy").shape == (549, 8)  # the whole earlier file, untouched
    assert [p.name for p in staging.listdir(run)] == ["embeddings.npy"]


def test_files_move_in_and_come_back_as_local_files(root, tmp_path):
    src = tmp_path / "batch.csv"
    src.write_bytes(b"tender_id,title\nA1,Road\n")
    run = staging.run_dir(str(root), "r2")
    staging.put_file(src, run / "raw" / "batch.csv")
    with staging.local_copy(run / "raw" / "batch.csv") as local:
        assert isinstance(local, Path) and local.read_bytes() == src.read_bytes()
    with (run / "raw" / "batch.csv").open("rb") as fh:
        assert fh.read() == src.read_bytes()


def _claim(args: tuple[str, str]) -> bool:
    root, run_id = args
    return sources.Ledger(root).claim("s3://incoming/2026-11-27/02/batch.csv", "ab" * 32, run_id)


def test_exactly_one_of_racing_claimants_wins(root):
    """Eight processes (as if on eight hosts) claim one file at once; one wins, the others see its run."""
    ledger_root = str(staging.location(root) / "_ledger")
    runs = [f"run_{i}" for i in range(8)]
    # spawn, not fork: forking a process that runs threads (moto, proxies) can copy a held lock and hang
    with multiprocessing.get_context("spawn").Pool(8) as pool:  # each child builds its own S3 client
        won = pool.map(_claim, [(ledger_root, r) for r in runs])
    assert sum(won) == 1, won
    winner = runs[won.index(True)]
    ledger = sources.Ledger(ledger_root)
    assert ledger.owner("s3://incoming/2026-11-27/02/batch.csv", "ab" * 32) == winner
    assert [e["run_id"] for e in ledger.entries()] == [winner]
    # the winner's retry may take it again; nobody else may
    assert _claim((ledger_root, winner)) and not _claim((ledger_root, "run_late"))


def test_moto_honours_conditional_put(s3_env):
    """What the S3 ledger relies on: a second If-None-Match PUT of a key is refused with 412."""
    s3_env.put_object(Bucket=BUCKET, Key="cond/k", Body=b"1", IfNoneMatch="*")
    with pytest.raises(s3_env.exceptions.ClientError, match="PreconditionFailed"):
        s3_env.put_object(Bucket=BUCKET, Key="cond/k", Body=b"2", IfNoneMatch="*")
    assert s3_env.get_object(Bucket=BUCKET, Key="cond/k")["Body"].read() == b"1"


def _ignores_conditional_puts(endpoint: str):
    """A client whose PUTs reach the store without If-None-Match: an S3-compatible store that ignores it."""
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="x", aws_secret_access_key="x",
                          region_name="us-east-1")

    def drop(request, **_):
        del request.headers["If-None-Match"]  # before signing, so the request is a plain, valid PUT

    client.meta.events.register("before-sign.s3.PutObject", drop)
    return client


def test_a_store_that_ignores_conditional_puts_is_refused_for_the_ledger(s3_endpoint, tmp_path):
    """Two claimants would both win on such a store; the ledger proves the store first and refuses it."""
    from tender_pipeline.errors import USER_ERRORS

    root = f"s3://{BUCKET}/unsafe/_ledger"
    raw = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="x", aws_secret_access_key="x",
                       region_name="us-east-1")
    staging._STORES.clear()
    staging.use_s3_client(lambda: _ignores_conditional_puts(s3_endpoint))
    try:
        # what the probe guards against: without it, both runs claim the file
        marker = staging.location(root) / "m.json"
        assert staging.create_exclusive(marker, b"a") and staging.create_exclusive(marker, b"b")
        marker.unlink()
        with pytest.raises(staging.UnsafeStoreError, match="If-None-Match") as refused:
            sources.Ledger(root).claim("s3://incoming/2026-11-27/02/batch.csv", "ab" * 32, "run_a")
        assert isinstance(refused.value, USER_ERRORS)  # configuration: the DAG fails at once, no retries
        assert _keys(raw, "unsafe/") == []  # no claim, and the probe object is gone
    finally:
        staging._STORES.clear()
    # the same bucket through a client that sends the header: proven once, then claims as usual
    staging.use_s3_client(lambda: raw)
    try:
        ledger = sources.Ledger(root)
        assert ledger.claim("u", "s", "run_a") and not ledger.claim("u", "s", "run_b")
        assert [e["run_id"] for e in ledger.entries()] == ["run_a"]
    finally:
        staging._STORES.clear()


def test_other_fsspec_stores_stage_but_refuse_the_ledger():
    run = staging.run_dir("memory://tender-tests/staging", "r3")
    staging.write_jsonl(run / "valid.jsonl", [{"a": 1}])
    assert list(staging.read_jsonl(run / "valid.jsonl")) == [{"a": 1}]
    assert [p.name for p in staging.listdir(run)] == ["valid.jsonl"]
    with pytest.raises(staging.UnsafeStoreError, match="LEDGER_URI on s3:// or a local folder"):
        sources.Ledger("memory://tender-tests/ledger").claim("u", "s", "r")


def test_pipeline_stages_on_s3_match_local_staging(s3_env, tmp_path, sample_csv, monkeypatch):
    """The same batch through all five stages: S3 staging gives the counts local staging gives."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # a URI mistaken for a relative path would land here
    incoming = tmp_path / "incoming" / "2026-11-27" / "02"
    incoming.mkdir(parents=True)
    (incoming / "batch.csv").write_bytes(sample_csv.read_bytes())
    interval = (datetime(2026, 11, 27, 0, tzinfo=UTC), datetime(2026, 11, 27, 6, tzinfo=UTC))
    summaries = {}
    for kind, uri in {"local": str(tmp_path / "staging"), "s3": f"s3://{BUCKET}/pipeline/staging/"}.items():
        settings = Settings(incoming_uri=str(tmp_path / "incoming"), staging_uri=uri,
                            chroma_path=str(tmp_path / f"chroma-{kind}"), embed_backend="local",
                            enrich_backend="local", tender_collection=f"t_{kind}")
        run = pipeline.fetch(settings, "scheduled__1", interval=interval)
        assert pipeline.validate(settings, run, limit=ROWS) == run
        for stage in (pipeline.enrich, pipeline.embed):
            assert stage(settings, run) == run
        summaries[kind] = pipeline.upsert(settings, run)
        # the same interval again: the ledger hands the file to nobody else
        again = pipeline.fetch(settings, "scheduled__2", interval=interval)
        assert staging.read_json(f"{again}/fetch.json")["skipped_files"][0]["claimed_by"] == "scheduled__1"

    local, remote = summaries["local"], summaries["s3"]
    assert remote["staging_dir"] == f"s3://{BUCKET}/pipeline/staging/scheduled__1"
    ignore = {"seconds", "staging_dir"}
    assert {k: v for k, v in remote.items() if k not in ignore} == {k: v for k, v in local.items() if k not in ignore}
    assert remote["upserted"] == remote["inserted"] == ROWS

    keys = _keys(s3_env, "pipeline/staging/")
    run_keys = {k.removeprefix("pipeline/staging/scheduled__1/") for k in keys if "/scheduled__1/" in k}
    assert {"fetch.json", "validate.json", "valid.jsonl", "quarantine.csv", "enriched.jsonl", "embeddings.npy",
            "enrich.json", "embed.json", "upsert.json", "summary.json"} <= run_keys
    assert [k for k in run_keys if k.startswith("raw/")] == [f"raw/{f['staged']}" for f in
                                                            staging.read_json(f"s3://{BUCKET}/pipeline/staging/"
                                                                              "scheduled__1/fetch.json")["files"]]
    assert len([k for k in keys if k.startswith("pipeline/staging/_ledger/")]) == 1
    assert list(workdir.iterdir()) == []


def test_gemini_cache_is_per_worker_with_s3_staging_and_the_summary_counts_misses(s3_env, tmp_path, sample_csv,
                                                                                   monkeypatch):
    """Two workers, each with its own cache file: the second pays Gemini again for the same answers, and
    summary.json says how many records missed the cache. Nothing lands in the working directory."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # the old default, <STAGING_URI>/_enrich_cache.sqlite, would land here
    with FakeGemini() as fake:
        def run_on(worker: str, run_id: str) -> tuple[dict, list[dict]]:
            monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / worker))
            settings = gemini_settings(fake.base_url, tmp_path, staging_uri=f"s3://{BUCKET}/gemini/staging/",
                                       enrich_cache_path="", chroma_path=str(tmp_path / "chroma"),
                                       tender_collection="t_gemini", gemini_enrich_batch_size=10)
            run = pipeline.fetch(settings, run_id, source=str(sample_csv))
            pipeline.enrich(settings, pipeline.validate(settings, run, limit=20))
            enriched = [row["enrichment"] for row in staging.read_jsonl(f"{run}/enriched.jsonl")]
            return pipeline.summarize(staging.location(run)), enriched

        first, answers = run_on("worker-a", "run_a")
        records, calls = first["valid"], fake.count("generate")
        assert records == 20 and calls >= 2
        assert first["enrichment_cache_misses"] == records
        assert first["enrichment_sources"] == {"gemini": records}

        again, same = run_on("worker-a", "run_a2")  # the same worker: every record from its cache
        assert again["enrichment_cache_misses"] == 0 and again["enrichment_usage"]["cache_hits"] == records
        assert fake.count("generate") == calls and same == answers

        other, theirs = run_on("worker-b", "run_b")  # another worker: its own, empty cache
        assert other["enrichment_cache_misses"] == records and fake.count("generate") == 2 * calls
        assert theirs == answers  # extra cost, never another result

    from tender_pipeline.gemini.cache import EnrichmentCache

    for worker in ("worker-a", "worker-b"):
        assert len(EnrichmentCache(tmp_path / worker / "tender_pipeline" / "enrich_cache.sqlite")) == records
    assert list(workdir.iterdir()) == []


def test_pruning_on_s3_deletes_run_folders_and_keeps_the_parts_and_the_ledger(s3_env, tmp_path, sample_csv):
    """Run folders are key prefixes on S3: listed, aged and deleted as on a disk; what live notices need stays."""
    from tender_pipeline import kept, staging_retention

    incoming = tmp_path / "incoming" / "2026-11-27" / "02"
    incoming.mkdir(parents=True)
    (incoming / "batch.csv").write_bytes(sample_csv.read_bytes())
    root = f"s3://{BUCKET}/prune/staging/"
    settings = Settings(incoming_uri=str(tmp_path / "incoming"), staging_uri=root, chroma_path=str(tmp_path / "chroma"),
                        lexical_index_path=str(tmp_path / "lexical"), embed_backend="local", enrich_backend="local",
                        enrich_cache_path=str(tmp_path / "cache.sqlite"), tender_collection="t_prune")
    interval = (datetime(2026, 11, 27, 0, tzinfo=UTC), datetime(2026, 11, 27, 6, tzinfo=UTC))
    run = pipeline.fetch(settings, "scheduled__1", interval=interval)
    pipeline.validate(settings, run, limit=ROWS)
    pipeline.enrich(settings, run)
    pipeline.embed(settings, run)
    assert pipeline.upsert(settings, run)["upserted"] == ROWS

    early = date(2000, 1, 1)  # as of a day when none of the sample's notices is past retention
    kept_now = staging_retention.prune(settings, today=early)  # younger than STAGING_RETENTION_DAYS: it stays
    assert kept_now["runs_deleted"] == 0 and _keys(s3_env, "prune/staging/scheduled__1/")
    got = staging_retention.prune(settings, today=early, now=time.time() + 8 * 86_400)
    assert got["runs_deleted"] == 1 and got["kept_live"] == ROWS
    keys = _keys(s3_env, "prune/staging/")
    assert not [k for k in keys if "/scheduled__1/" in k]
    assert len([k for k in keys if "/_ledger/" in k]) == 1 and len([k for k in keys if "/_kept/" in k]) == 4
    assert sum(len(ids) for ids, *_ in kept.live_notices(settings, early)) == ROWS  # rows and vectors, from S3
    again = pipeline.fetch(settings, "scheduled__2", interval=interval)
    assert staging.read_json(f"{again}/fetch.json")["skipped_files"][0]["claimed_by"] == "scheduled__1"
