"""Where published copies of the index live: a folder or an S3 prefix, one per collection and schema."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from tender_pipeline.lexical.schema import SCHEMA_VERSION
from tender_pipeline.lexical.segment_files import atomic_write, temp_beside


@dataclass(frozen=True)
class Remote:
    data: bytes
    version: str
    modified: float  # epoch seconds the object was written


class Store(Protocol):
    uri: str

    def names(self) -> dict[str, int]: ...
    def put_file(self, name: str, path: Path) -> None: ...
    def put_bytes(self, name: str, data: bytes) -> None: ...
    def get(self, name: str) -> Remote | None: ...
    def version(self, name: str) -> str | None: ...
    def get_file(self, name: str, dest: Path) -> None: ...
    def delete(self, names: Iterable[str]) -> None: ...


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
        tmp = temp_beside(self.root / name)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, self.root / name)
        finally:
            tmp.unlink(missing_ok=True)

    def put_bytes(self, name: str, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.root / name, data)

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
    collection = collection if SCHEMA_VERSION == 1 else f"{collection}.v{SCHEMA_VERSION}"
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        prefix = parsed.path.strip("/")
        return S3Store(parsed.netloc, f"{prefix}/{collection}/" if prefix else f"{collection}/", s3_client)
    return FolderStore(Path(uri) / collection)
