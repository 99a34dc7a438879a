"""The lexical index across hosts: the writer publishes it to object storage, readers follow.

Why: a tantivy index is a folder. On one host (make up, compose with a shared
volume) the writer and the readers open the same folder and that is enough. On
Render the search API and the Celery worker have separate disks, so the writer
publishes the folder to ``LEXICAL_PUBLISH_URI`` (``s3://bucket/prefix/`` or a
folder) after every commit, and each search API keeps a local copy in sync.

How it stays consistent: tantivy's segment files are immutable (a delete is a
new ``<segment>.<opstamp>.del`` file) and ``meta.json`` lists the live ones.
The writer uploads the files the remote lacks, then ``meta.json`` last, so a
reader that sees a new ``meta.json`` can fetch everything it names. A reader
downloads missing files under temporary names, renames them into place, and
only then replaces its ``meta.json`` (temp + rename): tantivy's OnCommit reload
therefore never opens a half-downloaded segment. Remote files no longer named
are deleted ``LEXICAL_PUBLISH_GRACE_S`` after they were first seen unreferenced
(a reader may still be downloading them); a reader deletes its local stale
files once a newer version is in place, keeping the previous version's files.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

log = logging.getLogger(__name__)

META = "meta.json"
EXTRAS = ("tender_schema.json",)  # our schema marker, checked when a reader opens the folder
RETIRED = "_retired.json"  # remote only: unreferenced file → when first seen unreferenced
SEGMENT_FILE = re.compile(r"^([0-9a-f]{32})\.(?:(\d+)\.del|[a-z]+)$")
PUBLISH_LOCK = ".tender-publish.lock"
SYNC_LOCK = ".tender-sync.lock"  # API worker processes of one host sharing one copy sync one at a time
PART_MAX_AGE_S = 3600.0  # temp files of a crashed download older than this are removed


class PublishError(RuntimeError):
    """The index could not be published; the writing task must fail (and be retried)."""


class SyncError(RuntimeError):
    """A reader could not bring its copy up to the published version."""


@dataclass(frozen=True)
class Remote:
    data: bytes
    version: str
    modified: float  # epoch seconds the object was written


def referenced(meta: dict, names: Iterable[str]) -> set[str]:
    """Which of ``names`` the index described by ``meta`` uses (segment files and its current .del)."""
    segments = {s["segment_id"].replace("-", ""): (s.get("deletes") or {}).get("opstamp")
                for s in meta.get("segments", [])}
    out: set[str] = set()
    for name in names:
        m = SEGMENT_FILE.match(name)
        if not m or m.group(1) not in segments:
            continue
        if m.group(2) is not None and int(m.group(2)) != segments[m.group(1)]:
            continue
        out.add(name)
    return out


# --------------------------------------------------------------------------- stores
class Store(Protocol):
    uri: str

    def names(self) -> dict[str, int]: ...
    def put_file(self, name: str, path: Path) -> None: ...
    def put_bytes(self, name: str, data: bytes) -> None: ...
    def get(self, name: str) -> Remote | None: ...
    def version(self, name: str) -> str | None: ...
    def get_file(self, name: str, dest: Path) -> None: ...
    def delete(self, names: Iterable[str]) -> None: ...


def _temp_beside(dest: Path) -> Path:
    """A temp name in the same folder (so the rename is atomic) that no other process uses."""
    return dest.with_name(f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")


def _atomic_write(dest: Path, data: bytes) -> None:
    tmp = _temp_beside(dest)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


class FolderStore:
    """A folder as the remote: single-host use, an NFS mount, and tests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = str(root)

    def names(self) -> dict[str, int]:
        if not self.root.is_dir():
            return {}
        return {p.name: p.stat().st_size for p in self.root.iterdir()
                if p.is_file() and not p.name.startswith(".")}

    def put_file(self, name: str, path: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = _temp_beside(self.root / name)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, self.root / name)
        finally:
            tmp.unlink(missing_ok=True)

    def put_bytes(self, name: str, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.root / name, data)

    def get(self, name: str) -> Remote | None:
        path = self.root / name
        try:
            data = path.read_bytes()
            modified = path.stat().st_mtime
        except FileNotFoundError:
            return None
        return Remote(data, hashlib.sha256(data).hexdigest(), modified)

    def version(self, name: str) -> str | None:
        got = self.get(name)
        return got.version if got else None

    def get_file(self, name: str, dest: Path) -> None:
        shutil.copyfile(self.root / name, dest)

    def delete(self, names: Iterable[str]) -> None:
        for name in names:
            (self.root / name).unlink(missing_ok=True)


class S3Store:
    """An S3 prefix (AWS, MinIO, R2 ...; the endpoint from ``AWS_ENDPOINT_URL`` as everywhere else)."""

    def __init__(self, bucket: str, prefix: str, client=None) -> None:
        if client is None:
            import boto3

            client = boto3.client("s3")  # reads AWS_ENDPOINT_URL, AWS_* credentials and region from env
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.uri = f"s3://{bucket}/{prefix}"

    def _missing(self, exc: Exception) -> bool:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def names(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(self.prefix):]
                if name and "/" not in name:
                    out[name] = int(obj["Size"])
        return out

    def put_file(self, name: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self.prefix + name)

    def put_bytes(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=data)

    def get(self, name: str) -> Remote | None:
        from botocore.exceptions import ClientError

        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)
        except ClientError as exc:
            if self._missing(exc):
                return None
            raise
        return Remote(resp["Body"].read(), resp["ETag"], resp["LastModified"].timestamp())

    def version(self, name: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.prefix + name)["ETag"]
        except ClientError as exc:
            if self._missing(exc):
                return None
            raise

    def get_file(self, name: str, dest: Path) -> None:
        self.client.download_file(self.bucket, self.prefix + name, str(dest))

    def delete(self, names: Iterable[str]) -> None:
        keys = [{"Key": self.prefix + n} for n in names]
        for start in range(0, len(keys), 1000):
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys[start:start + 1000]})


def store_for(uri: str, collection: str, s3_client=None) -> Store:
    """The remote folder of one collection's index: ``<uri>/<collection>.v<schema>/`` (``<collection>/`` for
    schema v1). Each schema publishes apart, so an upgraded writer starts its own copy and readers still
    on the old code keep following theirs until they are upgraded."""
    from tender_pipeline.lexical import SCHEMA_VERSION

    collection = collection if SCHEMA_VERSION == 1 else f"{collection}.v{SCHEMA_VERSION}"
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        prefix = parsed.path.strip("/")
        return S3Store(parsed.netloc, f"{prefix}/{collection}/" if prefix else f"{collection}/", s3_client)
    return FolderStore(Path(uri) / collection)


# --------------------------------------------------------------------------- writer side
@contextlib.contextmanager
def _folder_lock(local: Path, name: str) -> Iterator[None]:
    """An exclusive lock across processes on one index folder (released if the process dies)."""
    local.mkdir(parents=True, exist_ok=True)
    with open(local / name, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def publish(local: Path, store: Store, grace_s: float, now: float | None = None) -> dict[str, int]:
    """Make ``store`` hold the index in ``local``: new files first, ``meta.json`` last, stale files later.

    Raises ``PublishError`` (naming the target) on any failure: the caller's task fails and is retried,
    and the next publish uploads whatever is still missing."""
    try:
        with _folder_lock(local, PUBLISH_LOCK):  # one publisher at a time: meta.json never goes backwards
            return _publish(local, store, grace_s, time.time() if now is None else now)
    except PublishError:
        raise
    except Exception as exc:
        raise PublishError(f"publishing the lexical index {local} to {store.uri} failed: {exc}") from exc


def _publish(local: Path, store: Store, grace_s: float, now: float) -> dict[str, int]:
    remote = store.names()
    published = store.get(META) if META in remote else None
    mine = json.loads((local / META).read_bytes())
    if published is not None and json.loads(published.data).get("opstamp", 0) > mine.get("opstamp", 0):
        raise PublishError(f"the index at {store.uri} is newer than this writer's copy {local} (opstamp "
                           f"{json.loads(published.data).get('opstamp')} > {mine.get('opstamp')}): another host "
                           "wrote it; writers must share one folder (or start from the published copy)")
    for _attempt in range(3):
        meta_bytes = (local / META).read_bytes()
        wanted = referenced(json.loads(meta_bytes), os.listdir(local))
        uploaded = 0
        try:
            for name in sorted(wanted):
                if name not in remote:  # segment files are immutable: present means done
                    store.put_file(name, local / name)
                    remote[name] = (local / name).stat().st_size
                    uploaded += 1
        except FileNotFoundError:
            continue  # a writer in another process merged that segment away: read meta.json again
        break
    else:
        raise PublishError(f"the lexical index {local} kept changing while it was published to {store.uri}")
    for name in EXTRAS:
        if (local / name).exists():
            data = (local / name).read_bytes()
            got = store.get(name) if name in remote else None
            if got is None or got.data != data:
                store.put_bytes(name, data)
    current = store.get(META) if META in remote else None
    if current is None or current.data != meta_bytes:
        store.put_bytes(META, meta_bytes)  # last: from now on readers may follow this version
    deleted = _collect(store, remote, wanted, grace_s, now)
    return {"uploaded": uploaded, "deleted": deleted, "files": len(wanted)}


def _collect(store: Store, remote: dict[str, int], wanted: set[str], grace_s: float, now: float) -> int:
    """Delete remote segment files unreferenced for at least ``grace_s``; remember the younger ones."""
    stale = {n for n in remote if SEGMENT_FILE.match(n) and n not in wanted}
    got = store.get(RETIRED) if RETIRED in remote else None
    seen: dict[str, float] = json.loads(got.data) if got else {}
    since = {n: float(seen.get(n, now)) for n in stale}
    due = sorted(n for n, t in since.items() if now - t >= grace_s)
    if due:
        store.delete(due)
    keep = {n: t for n, t in since.items() if n not in due}
    if keep != seen:
        store.put_bytes(RETIRED, json.dumps(keep, sort_keys=True).encode())
    return len(due)


def restore_if_new(local: Path, publish_uri: str) -> bool:
    """A writer whose folder holds a never-written index (a new or wiped disk) starts from the
    published copy instead of publishing a near-empty index over it. True when it restored."""
    try:
        meta = json.loads((local / META).read_bytes())
    except FileNotFoundError:
        meta = {}
    if meta.get("segments") or meta.get("opstamp", 0):
        return False
    follower = Follower(store_for(publish_uri, local.name), local)
    try:
        with _folder_lock(local, SYNC_LOCK):
            restored = follower._sync()
    except Exception as exc:
        raise PublishError(f"restoring the lexical index {local} from {follower.store.uri} failed: {exc}") from exc
    if restored:
        log.info("lexical index %s restored from %s", local, follower.store.uri)
    return restored


def publish_index(local: Path, publish_uri: str, grace_s: float) -> dict[str, int]:
    """Publish the index folder ``local`` (``<LEXICAL_INDEX_PATH>/<collection>``) under ``publish_uri``."""
    return publish(local, store_for(publish_uri, local.name), grace_s)


# --------------------------------------------------------------------------- reader side
@dataclass
class SyncStatus:
    synced: bool = False  # a check succeeded at least once (maybe: nothing published yet)
    version: str = ""
    published_at: float | None = None  # when the writer published the version held locally
    checked_at: float | None = None  # last successful check of the remote
    error: str = ""  # last sync error ('' after a success)


class Follower:
    """Keeps a local copy of a published index current; one per search API process."""

    def __init__(self, store: Store, local: Path, interval_s: float = 5.0,
                 on_change: Callable[[], None] | None = None) -> None:
        self.store = store
        self.local = local
        self.interval_s = interval_s
        self.on_change = on_change
        self.status = SyncStatus()
        self.first_attempt = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._local_meta_hash = ""

    def sync_once(self) -> bool:
        """Bring the local copy to the published version; True when it changed. Never raises."""
        try:
            with _folder_lock(self.local, SYNC_LOCK):  # another worker's cleanup never removes our new files
                changed = self._sync()
        except Exception as exc:
            self.status.error = f"lexical sync from {self.store.uri} failed: {exc}"
            log.warning("%s", self.status.error)
            return False
        finally:
            self.first_attempt.set()
        self.status.error = ""
        self.status.synced = True
        self.status.checked_at = time.time()
        return changed

    def _local_meta(self) -> bytes:
        try:
            return (self.local / META).read_bytes()
        except FileNotFoundError:
            return b""

    def _sync(self) -> bool:
        version = self.store.version(META)
        if version is None:
            return False  # nothing published yet
        local_bytes = self._local_meta()
        if version == self.status.version and hashlib.sha256(local_bytes).hexdigest() == self._local_meta_hash:
            return False  # unchanged remote, and our meta.json is still the one we wrote
        got = self.store.get(META)
        if got is None:
            return False
        if got.data == local_bytes:
            self._settled(got)
            return False
        remote = self.store.names()
        meta = json.loads(got.data)
        wanted = referenced(meta, remote)
        expected = {s["segment_id"].replace("-", "") for s in meta.get("segments", [])}
        if not expected <= {n.split(".", 1)[0] for n in wanted}:
            raise SyncError(f"{self.store.uri}: meta.json names segments whose files are gone (a newer "
                            "version replaced them); retrying")
        present = set(os.listdir(self.local))
        for name in sorted(wanted - present):
            self._download(name, remote[name])
        for name in EXTRAS:
            if name in remote:
                theirs = self.store.get(name)
                if theirs is not None and (not (self.local / name).exists()
                                           or (self.local / name).read_bytes() != theirs.data):
                    _atomic_write(self.local / name, theirs.data)
        previous = referenced(json.loads(local_bytes), present) if local_bytes else set()
        _atomic_write(self.local / META, got.data)  # the switch: tantivy reloads from here
        self._settled(got)
        if self.on_change is not None:
            self.on_change()
        self._remove_stale(wanted | previous)
        return True

    def _settled(self, got: Remote) -> None:
        self.status.version = got.version
        self.status.published_at = got.modified
        self._local_meta_hash = hashlib.sha256(got.data).hexdigest()

    def _download(self, name: str, size: int) -> None:
        dest = self.local / name
        tmp = _temp_beside(dest)
        try:
            self.store.get_file(name, tmp)
            if tmp.stat().st_size != size:
                raise SyncError(f"{self.store.uri}{name}: downloaded {tmp.stat().st_size} bytes, expected {size}")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def _remove_stale(self, keep: set[str]) -> None:
        """Segment files of versions older than the previous one (open readers keep their mmaps)."""
        now = time.time()
        for path in self.local.iterdir():
            name = path.name
            if SEGMENT_FILE.match(name) and name not in keep:
                path.unlink(missing_ok=True)
            elif name.endswith(".part") and now - path.stat().st_mtime > PART_MAX_AGE_S:
                path.unlink(missing_ok=True)

    # --- background thread ---------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lexical-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sync_once()
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
