"""The lexical index across hosts: a writer publishes to S3 (moto's server) or a folder, readers follow.

Each "host" is its own folder; the reader never sees the writer's folder, only the published copy.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import boto3
import pytest

from search_api.metrics import Metrics
from search_api.services import Services
from search_api.settings import ApiSettings
from tender_pipeline.lexical import SCHEMA_VERSION, Filters, LexicalIndex
from tender_pipeline.lexical_sync import (
    META,
    RETIRED,
    SEGMENT_FILE,
    FolderStore,
    Follower,
    PublishError,
    publish,
    referenced,
    store_for,
)
from tender_pipeline.settings import get_settings

COLLECTION = "tenders"


def notice(i: int, word: str = "bridge") -> dict:
    return {"title": f"{word} repair lot {i}", "buyer": "City of Accra", "country": "Ghana" if i % 2 else "Kenya",
            "sector": "Construction", "procurement_type": "Works", "closing_num": 20270101 + i % 28,
            "value_amount": float(i), "ingested_ts": 1_700_000_000}


def upsert(index: LexicalIndex, ids: range, word: str = "bridge") -> None:
    keys = [f"T-{i}" for i in ids]
    index.upsert(keys, [notice(i, word) for i in ids], [f"{word} works number {i}" for i in ids])


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory) -> str:
    from tests.services import moto_s3_server

    with moto_s3_server(tmp_path_factory.mktemp("moto")) as url:
        yield url


@pytest.fixture()
def s3(s3_endpoint, monkeypatch, request):
    """A fresh bucket; boto3 in our code finds the endpoint through AWS_ENDPOINT_URL, like production."""
    for key, value in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3")
    bucket = request.node.name.replace("_", "-")[:60].lower()
    client.create_bucket(Bucket=bucket)
    return client, bucket


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch):
    monkeypatch.delenv("LEXICAL_PUBLISH_URI", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def writer_index(tmp_path: Path, uri: str) -> LexicalIndex:
    return LexicalIndex(tmp_path / "writer-host" / COLLECTION, publish_uri=uri)


def reader(tmp_path: Path, uri: str, name: str = "reader-host") -> tuple[LexicalIndex, Follower]:
    index = LexicalIndex(tmp_path / name / COLLECTION)  # opened before any sync: an empty index
    return index, Follower(store_for(uri, COLLECTION), index.path, on_change=index.index.reload)


def ids_of(index: LexicalIndex, word: str) -> set[str]:
    return {h.id for h in index.search(index.analyze(word), Filters(), 1000)}


def test_reader_on_another_host_follows_upserts_and_deletes_over_s3(tmp_path, s3):
    client, bucket = s3
    uri = f"s3://{bucket}/lexical/"
    writer = writer_index(tmp_path, uri)
    upsert(writer, range(10))
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    published = f"lexical/{COLLECTION}.v{SCHEMA_VERSION}"  # each schema publishes apart
    assert f"{published}/{META}" in keys and f"{published}/tender_schema.json" in keys

    index, follower = reader(tmp_path, uri)
    assert index.num_docs() == 0
    assert follower.sync_once() is True
    assert index.num_docs() == 10 and index.count(Filters(country="ghana")) == 5
    assert follower.status.synced and follower.status.error == "" and follower.status.published_at

    writer.delete_ids(["T-0", "T-1"])
    upsert(writer, range(5, 8), word="culvert")  # updates: the old words go, the new ones come
    upsert(writer, range(10, 13))
    assert follower.sync_once() is True
    assert index.num_docs() == 11
    assert ids_of(index, "culvert") == {"T-5", "T-6", "T-7"}
    assert "T-0" not in ids_of(index, "bridge") and "T-12" in ids_of(index, "bridge")
    assert index.cards(["T-6"])["T-6"]["title"] == "culvert repair lot 6"

    # an unchanged meta.json does nothing: no download, meta.json not rewritten, no reload
    meta_inode = (index.path / META).stat().st_ino
    files_before = {p.name: p.stat().st_ino for p in index.path.iterdir()}
    assert follower.sync_once() is False
    assert (index.path / META).stat().st_ino == meta_inode
    assert {p.name: p.stat().st_ino for p in index.path.iterdir()} == files_before

    # a second host starting later gets the current version in one sync
    late, late_follower = reader(tmp_path, uri, "late-host")
    assert late_follower.sync_once() is True and late.num_docs() == 11


def test_stale_files_are_removed_after_grace_remotely_and_after_the_next_version_locally(tmp_path, s3, monkeypatch):
    client, bucket = s3
    uri = f"s3://{bucket}/lex"
    writer = writer_index(tmp_path, uri)
    index, follower = reader(tmp_path, uri)
    metas = []
    for start in range(0, 40, 10):  # several commits: several segments, merges, .del files
        upsert(writer, range(start, start + 10))
        writer.delete_ids([f"T-{start}"])
        follower.sync_once()
        metas.append(json.loads((index.path / META).read_bytes()))
    local = [p.name for p in index.path.iterdir() if SEGMENT_FILE.match(p.name)]
    assert set(local) <= referenced(metas[-1], local) | referenced(metas[-2], local)
    assert index.num_docs() == 36

    writer.clear()  # every segment becomes unreferenced
    upsert(writer, range(100, 103))
    store = store_for(uri, COLLECTION)
    remote = store.names()
    live = referenced(json.loads(store.get(META).data), remote)
    stale = {n for n in remote if SEGMENT_FILE.match(n)} - live
    assert stale, "the old segments stay while the grace period runs (readers may be downloading them)"
    seen = json.loads(store.get(RETIRED).data)
    assert stale <= set(seen)
    assert follower.sync_once() is True and index.num_docs() == 3  # readers are fine meanwhile

    publish(writer.path, store, grace_s=600, now=max(seen.values()) + 601)
    remote = store.names()
    assert {n for n in remote if SEGMENT_FILE.match(n)} == live
    assert json.loads(store.get(RETIRED).data) == {}

    upsert(writer, range(200, 202))
    assert follower.sync_once() is True and index.num_docs() == 5
    local = [p.name for p in index.path.iterdir() if SEGMENT_FILE.match(p.name)]
    assert set(local) <= referenced(json.loads((index.path / META).read_bytes()), local) | live


def test_searches_keep_answering_during_a_sync_and_never_see_a_partial_version(tmp_path, s3):
    _, bucket = s3
    uri = f"s3://{bucket}/lex/"
    writer = writer_index(tmp_path, uri)
    index = LexicalIndex(tmp_path / "reader-host" / COLLECTION)
    # no reload callback: tantivy's own OnCommit watcher picks meta.json up whenever it polls
    follower = Follower(store_for(uri, COLLECTION), index.path)
    batch, rounds = 3000, 4
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def search_loop() -> None:
        while not stop.is_set():
            try:
                s = index.searcher()
                total = index.count(Filters(), searcher=s)
                hits = index.search(index.analyze("bridge"), Filters(country="Kenya"), 5, searcher=s)
                assert total == 0 or len(hits) == 5
                seen.append(total)
            except BaseException as exc:  # noqa: BLE001 - any failure of a search is the finding
                errors.append(exc)

    thread = threading.Thread(target=search_loop)
    thread.start()
    try:
        for r in range(rounds):
            upsert(writer, range(r * batch, (r + 1) * batch))
            assert follower.sync_once() is True
            deadline = time.monotonic() + 10
            while index.num_docs() != (r + 1) * batch and time.monotonic() < deadline:
                time.sleep(0.05)
            assert index.num_docs() == (r + 1) * batch
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]
    assert len(seen) > rounds
    assert set(seen) <= {r * batch for r in range(rounds + 1)}  # whole published versions only
    assert seen == sorted(seen)


def test_a_failed_publish_fails_the_writer_and_the_next_write_catches_up(tmp_path, s3):
    client, bucket = s3
    uri = "s3://no-such-bucket-yet/lex/"
    writer = writer_index(tmp_path, uri)
    with pytest.raises(PublishError, match="no-such-bucket-yet"):
        upsert(writer, range(5))
    client.create_bucket(Bucket="no-such-bucket-yet")
    with writer.writing():  # a retried task that has nothing new to write still publishes
        pass
    index, follower = reader(tmp_path, uri)
    assert follower.sync_once() is True and index.num_docs() == 5


def test_folder_publish_uri_and_the_api_services_follow_it(tmp_path, monkeypatch):
    remote = tmp_path / "published"
    monkeypatch.setenv("LEXICAL_PUBLISH_URI", str(remote))
    monkeypatch.setenv("LEXICAL_PUBLISH_GRACE_S", "0")
    get_settings.cache_clear()
    writer = LexicalIndex(tmp_path / "writer-host" / COLLECTION)  # publish_uri from the setting
    upsert(writer, range(4))
    upsert(writer, range(4, 6))
    folder = remote / f"{COLLECTION}.v{SCHEMA_VERSION}"
    published = json.loads((folder / META).read_bytes())
    names = [p.name for p in folder.iterdir()]
    assert {n for n in names if SEGMENT_FILE.match(n)} == referenced(published, names)  # grace 0: no stale files

    settings = ApiSettings(lexical_index_path=str(tmp_path / "api-host"), tender_collection=COLLECTION,
                           lexical_sync_s=0.2, warm_embedder=False, embed_backend="local")
    services = Services(settings, Metrics())
    assert services.lexical_sync_status()[0] is False  # not ready before the first sync
    services.start()
    try:
        index = services.lexical()  # waits for the first sync instead of opening an empty folder
        assert index.num_docs() == 6
        synced, fields = services.lexical_sync_status()
        assert synced and fields["lexical_sync"] == "ok" and fields["lexical_version_age_s"] is not None
        writer.delete_ids(["T-0"])
        deadline = time.monotonic() + 10
        while index.num_docs() != 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert index.num_docs() == 5  # the background thread followed the delete
        (folder / META).write_text("{not json")  # a broken remote: keep serving, say why
        deadline = time.monotonic() + 10
        while services.lexical_sync_status()[1]["lexical_sync"] == "ok" and time.monotonic() < deadline:
            time.sleep(0.05)
        synced, fields = services.lexical_sync_status()
        assert synced and str(remote) in fields["lexical_sync"] and index.num_docs() == 5
    finally:
        services.close()


def test_a_writer_on_a_wiped_disk_starts_from_the_published_copy_and_an_older_copy_is_refused(tmp_path):
    uri = str(tmp_path / "published")
    first = LexicalIndex(tmp_path / "worker-a" / COLLECTION, publish_uri=uri)
    upsert(first, range(8))
    first.delete_ids(["T-0"])

    wiped = LexicalIndex(tmp_path / "worker-b" / COLLECTION, publish_uri=uri)  # a new disk, same bucket
    upsert(wiped, range(8, 10))
    assert wiped.num_docs() == 9 and "T-0" not in ids_of(wiped, "bridge")
    index, follower = reader(tmp_path, uri)
    assert follower.sync_once() is True and index.num_docs() == 9  # nothing was lost remotely

    with pytest.raises(PublishError, match="newer than this writer's copy"):
        upsert(first, range(20, 21))  # worker-a's folder is now behind what was published
    assert follower.sync_once() is False and index.num_docs() == 9


def test_an_upgraded_writer_publishes_apart_and_old_readers_keep_their_copy(tmp_path):
    """Schema upgrade on several hosts: the rebuilt index publishes under its own version, so a reader
    still following the old copy is never handed segments of a schema it cannot read."""
    remote = tmp_path / "published"
    old = FolderStore(remote / COLLECTION)  # where a schema v1 writer published
    old.put_bytes(META, b'{"segments": [], "opstamp": 7}')
    old.put_bytes("tender_schema.json", b'{"version": 1}')
    writer = LexicalIndex(tmp_path / "writer-host" / COLLECTION, publish_uri=str(remote))
    upsert(writer, range(3))  # starts from its own (empty) copy: the v1 one is not restored
    assert json.loads((remote / COLLECTION / META).read_bytes()) == {"segments": [], "opstamp": 7}
    index, follower = reader(tmp_path, str(remote))
    assert follower.sync_once() is True and index.num_docs() == 3
