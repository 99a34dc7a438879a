"""The object stores behind a ``RemotePath``: s3:// through boto3, any other scheme through fsspec.

One store per scheme (and netloc, for fsspec) and process; ``use_s3_client`` swaps how s3:// clients are
built (e.g. from an Airflow connection).
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlparse

from tender_pipeline.staging.errors import UnsafeStoreError


class _Store(Protocol):
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
    portable create-only-if-absent (see docs/running/several-machines.md).
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
