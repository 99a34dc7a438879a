"""Staging locations: a ``pathlib.Path`` for a local folder, a :class:`RemotePath` for object storage.

Both offer the same small pathlib subset (``/``, ``name``, ``parent``, ``exists``, ``read_bytes``,
``read_text``, ``iterdir``, ``unlink``, ``open``), so the stages read either kind alike.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

from tender_pipeline.staging.object_stores import _Store, _store_for


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


StagePath = Path | RemotePath


def listdir(path: StagePath | str) -> list[StagePath]:
    """The files directly in a folder/prefix, sorted; empty when it does not exist."""
    path = location(path)
    if isinstance(path, Path):
        return sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else []
    return sorted(path.iterdir())


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
