"""Per-run staging: the artefacts stages hand each other by reference, on a local disk or object storage.

Layout under ``<STAGING_URI>/<run id>/``: ``raw/`` (fetched batch files),
``valid.jsonl``, ``quarantine.csv``, ``enriched.jsonl``, ``embeddings.npy``,
one ``<stage>.json`` of counts per stage and ``summary.json``.

``STAGING_URI`` is a local folder (the default) or a URL: ``s3://bucket/prefix/``
(boto3, with its usual credentials chain and ``AWS_ENDPOINT_URL``) or any other
fsspec URL whose driver is installed. A location is a ``pathlib.Path`` for a
local folder and a :class:`RemotePath` otherwise; both offer the same small
pathlib subset (``/``, ``name``, ``parent``, ``exists``, ``read_bytes``,
``read_text``, ``iterdir``, ``unlink``, ``open``) and the functions below read
and write either kind.

Every write is atomic, so a retried task never reads half a file: locally a
temp file in the same folder and ``os.replace``; on object storage a local
temp file uploaded as one object (a PUT, or a multipart upload, appears whole
or not at all). Large artefacts are streamed in both directions.

A staging folder that is full or not writable raises :class:`StagingWriteError`,
one line naming the folder and the cause: an environment fault like Chroma
being down (the DAG retries it, the CLI exits 3), never bad input. Since every
write is atomic, the failed write leaves nothing behind that a later stage or
``summary.json`` could take for done.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse

import numpy as np

# --------------------------------------------------------------------------- locations


class StagingWriteError(OSError):
    """Staging is full or not writable: fix the volume (or STAGING_URI) and retry; not the input's fault."""


_UNWRITABLE = {
    errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file system", errno.EROFS: "not writable (read-only file system)",
    errno.EACCES: "not writable (permission denied)", errno.EPERM: "not writable (operation not permitted)",
}


def _under(name: object, folder: Path) -> bool:
    try:
        return Path(os.fsdecode(name)).resolve().is_relative_to(folder.resolve())  # type: ignore[arg-type]
    except (TypeError, ValueError, OSError):
        return False


@contextlib.contextmanager
def write_guard(folder: Path, doing: str, label: str = "staging") -> Iterator[None]:
    """Turn "disk full"/"read-only" while writing under ``folder`` into one :class:`StagingWriteError` line.

    Permission errors about some other file (a source we read) pass through unchanged.
    """
    try:
        yield
    except StagingWriteError:
        raise
    except OSError as exc:
        reason = _UNWRITABLE.get(exc.errno or 0)
        about_other = exc.errno in (errno.EACCES, errno.EPERM) and exc.filename is not None \
            and not _under(exc.filename, folder)
        if reason is None or about_other:
            raise
        err = StagingWriteError(f"{label} {folder}: {reason} while {doing}; free space or make it writable, "
                                "then retry")
        err.errno = exc.errno
        raise err from None


class UnsafeStoreError(RuntimeError):
    """The store cannot create an object only-if-absent, which the ledger needs."""


def is_remote(uri: str | os.PathLike) -> bool:
    """A URL other than file:// (a Windows drive letter is not a scheme)."""
    scheme = urlparse(str(uri)).scheme
    return len(scheme) > 1 and scheme != "file"


def location(uri: str | os.PathLike | RemotePath) -> Path | RemotePath:
    """The location object for a path or URL: ``Path`` when local, ``RemotePath`` when not."""
    if isinstance(uri, (Path, RemotePath)):
        return uri
    text = os.fspath(uri)
    if is_remote(text):
        return RemotePath(text)
    return Path(text.removeprefix("file://"))


def run_dir(staging_uri: str, run_id: str) -> Path | RemotePath:
    """The run's staging location; run ids carry ':' and '+', which we keep out of paths and keys."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("._") or "run"  # never "." or ".."
    return location(staging_uri) / safe


class RemotePath:
    """An object-store location (``scheme://bucket/key``) with the pathlib subset the stages use.

    Object stores have no folders: a "folder" is a key prefix, ``exists()`` is
    true for an object or a non-empty prefix, and ``iterdir()`` lists the
    objects directly under the prefix.
    """

    __slots__ = ("uri",)

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/") if uri.count("/") > 2 else uri  # keep "s3://bucket"

    def __truediv__(self, name: str) -> RemotePath:
        return RemotePath(f"{self.uri.rstrip('/')}/{str(name).strip('/')}")

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"RemotePath({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def __lt__(self, other: RemotePath) -> bool:
        return self.uri < other.uri

    @property
    def name(self) -> str:
        return self.uri.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix

    @property
    def parent(self) -> RemotePath:
        return RemotePath(self.uri.rsplit("/", 1)[0])

    @property
    def store(self) -> _Store:
        return _store_for(self.uri)

    def exists(self) -> bool:
        return self.store.exists(self.uri) or bool(self.store.list(self.uri))

    def is_file(self) -> bool:
        return self.store.exists(self.uri)

    def iterdir(self) -> Iterator[RemotePath]:
        return iter([RemotePath(u) for u in self.store.list(self.uri)])

    def unlink(self, missing_ok: bool = False) -> None:
        if not missing_ok and not self.store.exists(self.uri):
            raise FileNotFoundError(self.uri)
        self.store.delete(self.uri)

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: keys need no folder."""

    def read_bytes(self) -> bytes:
        with self.store.open_read(self.uri) as fh:
            return fh.read()

    def read_text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self.read_bytes().decode(encoding, errors)

    def open(self, mode: str = "r", encoding: str | None = None, newline: str | None = None,
             errors: str | None = None) -> IO:
        """Stream an object for reading (``r``/``rb``); writing goes through :func:`writer`."""
        if "r" not in mode or "+" in mode:
            raise ValueError(f"RemotePath.open is read-only (mode {mode!r}); use staging.writer()")
        raw = self.store.open_read(self.uri)
        if "b" in mode:
            return raw
        return io.TextIOWrapper(raw, encoding=encoding or "utf-8", newline=newline, errors=errors)


# --------------------------------------------------------------------------- stores
class _Store:
    """What an object store must do for staging and the ledger."""

    def open_read(self, uri: str) -> IO[bytes]: ...
    def put_file(self, src: Path, uri: str) -> None: ...
    def get_file(self, uri: str, dest: Path) -> None: ...
    def create(self, uri: str, data: bytes) -> bool: ...
    def exists(self, uri: str) -> bool: ...
    def list(self, uri: str) -> list[str]: ...
    def delete(self, uri: str) -> None: ...


class _BodyReader(io.RawIOBase):
    """botocore's StreamingBody as a raw stream, so io.BufferedReader/TextIOWrapper can sit on it."""

    def __init__(self, body) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._body.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._body.close()
        super().close()


class S3Store(_Store):
    """s3:// through boto3 (pinned with the rest; s3fs's aiobotocore pins clash with it).

    Credentials and endpoint come from boto3's chain: ``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL`` (S3-compatible stores),
    instance roles. ``create`` is a conditional PUT (``If-None-Match: *``):
    S3 answers 412 to every writer but the first, across hosts.
    """

    def __init__(self, factory: Callable[[], Any] | None = None) -> None:
        self._factory = factory
        self._client = None
        self._pid = os.getpid()
        self._proven: set[str] = set()  # buckets seen refusing a second conditional PUT

    @property
    def client(self):
        if self._client is None or self._pid != os.getpid():  # a forked process builds its own client
            if self._factory is None:
                import boto3

                self._factory = lambda: boto3.client("s3")
            self._client, self._pid = self._factory(), os.getpid()
        return self._client

    @staticmethod
    def _split(uri: str) -> tuple[str, str]:
        parsed = urlparse(uri)
        return parsed.netloc, parsed.path.lstrip("/")

    @staticmethod
    def _code(exc: Exception) -> str:
        return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))

    def open_read(self, uri: str) -> IO[bytes]:
        bucket, key = self._split(uri)
        try:
            body = self.client.get_object(Bucket=bucket, Key=key)["Body"]
        except Exception as exc:
            if self._code(exc) in {"NoSuchKey", "404"}:
                raise FileNotFoundError(uri) from None
            raise
        return io.BufferedReader(_BodyReader(body), buffer_size=1 << 20)

    def put_file(self, src: Path, uri: str) -> None:
        bucket, key = self._split(uri)
        self.client.upload_file(str(src), bucket, key)

    def get_file(self, uri: str, dest: Path) -> None:
        bucket, key = self._split(uri)
        try:
            self.client.download_file(bucket, key, str(dest))
        except Exception as exc:
            if self._code(exc) in {"NoSuchKey", "404"}:
                raise FileNotFoundError(uri) from None
            raise

    def create(self, uri: str, data: bytes) -> bool:
        bucket, key = self._split(uri)
        for _ in range(5):
            try:
                self.client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
                return True
            except Exception as exc:
                code = self._code(exc)
                if code == "PreconditionFailed":
                    return False
                if code != "ConditionalRequestConflict":  # 409: a concurrent write in flight; ask again
                    raise
        return False

    def prove_create_only_if_absent(self, folder: str) -> None:
        """Check once per bucket that the store refuses a second ``If-None-Match: *`` PUT of one key.

        An S3-compatible store that ignores the header would let every claimant
        "win" and silently ingest a file twice, so the ledger asks the store
        itself rather than trusting the URL: a probe object under ``folder``,
        created twice, then removed.
        """
        bucket, _ = self._split(folder)
        if bucket in self._proven:
            return
        probe = f"{folder.rstrip('/')}/.conditional-put-probe-{uuid.uuid4().hex}"
        try:
            first, second = self.create(probe, b"1"), self.create(probe, b"2")
        finally:
            with contextlib.suppress(Exception):  # a left-over probe is a few bytes; never fail a run over it
                self.delete(probe)
        if not (first and not second):
            raise UnsafeStoreError(
                f"s3://{bucket} accepted a second PUT with If-None-Match: * for one key, so two hosts could both "
                "claim a file: point LEDGER_URI at a store that honours conditional writes (AWS S3 does), or at a "
                "local folder when one worker host runs fetch")
        self._proven.add(bucket)

    def exists(self, uri: str) -> bool:
        bucket, key = self._split(uri)
        if not key:
            return False
        try:
            self.client.head_object(Bucket=bucket, Key=key)
            return True
        except Exception as exc:
            if self._code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise

    def list(self, uri: str) -> list[str]:
        bucket, key = self._split(uri)
        prefix = key.rstrip("/") + "/" if key else ""
        names: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
        for page in pages:
            names += [f"s3://{bucket}/{obj['Key']}" for obj in page.get("Contents", [])]
        return sorted(names)

    def delete(self, uri: str) -> None:
        bucket, key = self._split(uri)
        self.client.delete_object(Bucket=bucket, Key=key)


class FsspecStore(_Store):
    """Any other scheme through fsspec (gcs://, az://, memory://...): whatever driver the user installed.

    Staging works on any of them; the ledger does not, since fsspec offers no
    portable create-only-if-absent (see README "Running on several machines").
    """

    def __init__(self, uri: str) -> None:
        import fsspec

        self.fs, _ = fsspec.core.url_to_fs(uri)
        self.scheme = urlparse(uri).scheme

    def _path(self, uri: str) -> str:
        return self.fs._strip_protocol(uri)

    def _uri(self, path: str) -> str:
        return f"{self.scheme}://{path.lstrip('/')}" if self.scheme != "memory" else f"memory://{path}"

    def open_read(self, uri: str) -> IO[bytes]:
        return self.fs.open(self._path(uri), "rb")

    def put_file(self, src: Path, uri: str) -> None:
        self.fs.put_file(str(src), self._path(uri))

    def get_file(self, uri: str, dest: Path) -> None:
        self.fs.get_file(self._path(uri), str(dest))

    def create(self, uri: str, data: bytes) -> bool:
        raise UnsafeStoreError(
            f"{self.scheme}:// cannot create an object only if it is absent, so two hosts could both claim a "
            "file; put LEDGER_URI on s3:// or a local folder")

    def exists(self, uri: str) -> bool:
        return bool(self.fs.isfile(self._path(uri)))

    def list(self, uri: str) -> list[str]:
        path = self._path(uri)
        if not self.fs.isdir(path):
            return []
        return sorted(self._uri(p["name"]) for p in self.fs.ls(path, detail=True) if p["type"] == "file")

    def delete(self, uri: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(uri))


_STORES: dict[str, _Store] = {}
_STORES_LOCK = threading.Lock()


def _store_for(uri: str) -> _Store:
    parsed = urlparse(uri)
    key = parsed.scheme if parsed.scheme == "s3" else f"{parsed.scheme}://{parsed.netloc}"
    with _STORES_LOCK:
        if key not in _STORES:
            _STORES[key] = S3Store() if parsed.scheme == "s3" else FsspecStore(uri)
        return _STORES[key]


def use_s3_client(factory: Callable[[], Any]) -> None:
    """Build s3:// clients with ``factory`` (e.g. from an Airflow connection) instead of boto3's chain."""
    with _STORES_LOCK:
        _STORES["s3"] = S3Store(factory)


# --------------------------------------------------------------------------- reading and writing
StagePath = Path | RemotePath


@contextlib.contextmanager
def writer(path: StagePath | str, mode: str = "w") -> Iterator[IO]:
    """Write ``path`` atomically: readers see the old content or the whole new one, never a part.

    The body is written to a temp file (beside the target locally, in the
    system temp folder for object storage) and published only when the block
    ends without an exception.
    """
    path = location(path)
    text = "b" not in mode
    opts: dict[str, Any] = {"encoding": "utf-8", "newline": ""} if text else {}
    local = isinstance(path, Path)
    folder, label = (path.parent, "staging") if local else (Path(tempfile.gettempdir()), f"temp folder for {path}")
    tmp = None
    with write_guard(folder, f"writing {path.name}", label):
        try:
            if local:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            else:
                fd, tmp = tempfile.mkstemp(prefix=f"staging-{path.name}.")
            with os.fdopen(fd, "w" + ("" if text else "b"), **opts) as fh:
                yield fh
            if local:
                os.replace(tmp, path)
            else:
                path.store.put_file(Path(tmp), path.uri)
        finally:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)


def put_file(src: Path, dest: StagePath | str, *, move: bool = False) -> None:
    """Publish a local file at ``dest`` atomically (``move`` removes ``src`` afterwards)."""
    dest = location(dest)
    if isinstance(dest, Path):
        if move and src.parent.resolve() == dest.parent.resolve():
            with write_guard(dest.parent, f"writing {dest.name}"):
                os.replace(src, dest)
            return
        with writer(dest, "wb") as out, src.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                out.write(block)
    else:
        dest.store.put_file(src, dest.uri)
    if move:
        src.unlink(missing_ok=True)


@contextlib.contextmanager
def local_copy(path: StagePath | str) -> Iterator[Path]:
    """A local file with the object's content, for readers that need a real file (openpyxl, numpy)."""
    path = location(path)
    if isinstance(path, Path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="staging-") as tmp:
        dest = Path(tmp) / path.name
        path.store.get_file(path.uri, dest)
        yield dest


def create_exclusive(path: StagePath | str, data: bytes) -> bool:
    """Create ``path`` with ``data`` only if nothing is there; False when it already exists.

    Atomic with its content: locally a hard link of a finished temp file (fails
    if the name exists), on S3 a conditional PUT. Other stores refuse.
    """
    path = location(path)
    if not isinstance(path, Path):
        return path.store.create(path.uri, data)
    tmp = None
    with write_guard(path.parent, f"writing {path.name}", "ledger"):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            return True
        finally:
            if tmp is not None:
                os.unlink(tmp)


def prove_create_only_if_absent(folder: StagePath | str) -> None:
    """Make sure ``folder``'s store really creates only if absent (see :func:`create_exclusive`).

    On S3 a probe per bucket and process (:meth:`S3Store.prove_create_only_if_absent`);
    a local folder relies on link(2); other stores refuse in ``create`` itself.
    """
    folder = location(folder)
    if isinstance(folder, RemotePath) and isinstance(folder.store, S3Store):
        folder.store.prove_create_only_if_absent(folder.uri)


def check_writable(folder: StagePath | str) -> None:
    """Fail early, in one line, when a local staging folder cannot take a file (object stores: no-op)."""
    folder = location(folder)
    if isinstance(folder, Path):
        probe = folder / ".write-probe"
        with writer(probe) as fh:
            fh.write("ok")
        with write_guard(folder, "removing .write-probe"):
            probe.unlink(missing_ok=True)


def listdir(path: StagePath | str) -> list[StagePath]:
    """The files directly in a folder/prefix, sorted; empty when it does not exist."""
    path = location(path)
    if isinstance(path, Path):
        return sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else []
    return sorted(path.iterdir())


def write_json(path: StagePath | str, data: Any) -> None:
    with writer(path) as fh:
        json.dump(data, fh, indent=2, ensure_ascii=False, default=str)


def read_json(path: StagePath | str) -> Any:
    return json.loads(location(path).read_text("utf-8"))


def write_jsonl(path: StagePath | str, rows: Iterable[dict]) -> int:
    count = 0
    with writer(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            count += 1
    return count


def read_jsonl(path: StagePath | str) -> Iterator[dict]:
    with location(path).open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def write_npy(path: StagePath | str, array: np.ndarray) -> None:
    with writer(path, "wb") as fh:
        np.save(fh, np.asarray(array, dtype=np.float32))


def read_npy(path: StagePath | str) -> np.ndarray:
    with local_copy(path) as local:
        return np.load(local)


@contextlib.contextmanager
def npy_writer(path: StagePath | str, rows: int, dim: int) -> Iterator[Callable[[np.ndarray], None]]:
    """Write a ``(rows, dim)`` float32 .npy chunk by chunk, so the whole array is never in memory.

    Yields ``add(chunk)``; published atomically (like :func:`writer`) only when
    exactly ``rows`` rows were added, so a short or failed stage leaves nothing a
    later stage could read.
    """
    added = 0
    with writer(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                                                  "fortran_order": False, "shape": (rows, dim)})

        def add(chunk: np.ndarray) -> None:
            nonlocal added
            chunk = np.ascontiguousarray(chunk, dtype=np.float32)
            if chunk.ndim != 2 or chunk.shape[1] != dim or added + len(chunk) > rows:
                raise ValueError(f"{path}: a chunk of shape {chunk.shape} does not fit ({rows}, {dim}) "
                                 f"after {added} rows")
            fh.write(chunk.tobytes())
            added += len(chunk)

        yield add
        if added != rows:
            raise ValueError(f"{path}: {added} rows written, {rows} announced")


@contextlib.contextmanager
def open_npy(path: StagePath | str) -> Iterator[np.ndarray]:
    """A read-only memory map of a staged .npy (an object is downloaded to a temp file first, streamed):
    rows are read from disk as they are sliced, not all at once."""
    with local_copy(path) as local:
        array = np.load(local, mmap_mode="r")
        try:
            yield array
        finally:
            del array
