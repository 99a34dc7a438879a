"""Atomic writes to staging, so a retried task never reads half a file.

Locally a temp file in the same folder and ``os.replace``; on object storage a local temp file uploaded as
one object (a PUT, or a multipart upload, appears whole or not at all). Large artefacts are streamed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tender_pipeline.staging.errors import write_guard
from tender_pipeline.staging.paths import StagePath, location


@contextlib.contextmanager
def writer(path: StagePath | str, mode: str = "w") -> Iterator[IO[Any]]:
    """Write ``path`` atomically: readers see the old content or the whole new one, never a part.

    The body is written to a temp file (beside the target locally, in the
    system temp folder for object storage) and published only when the block
    ends without an exception.
    """
    path = location(path)
    text = "b" not in mode
    opts: dict[str, Any] = {"encoding": "utf-8", "newline": ""} if text else {}
    if isinstance(path, Path):
        folder, label = path.parent, "staging"
    else:
        folder, label = Path(tempfile.gettempdir()), f"temp folder for {path}"
    tmp = None
    with write_guard(folder, f"writing {path.name}", label):
        try:
            if isinstance(path, Path):
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
            else:
                fd, tmp = tempfile.mkstemp(prefix=f"staging-{path.name}.")
            with os.fdopen(fd, "w" + ("" if text else "b"), **opts) as fh:
                yield fh
            if isinstance(path, Path):
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


def check_writable(folder: StagePath | str) -> None:
    """Fail early, in one line, when a local staging folder cannot take a file (object stores: no-op)."""
    folder = location(folder)
    if isinstance(folder, Path):
        probe = folder / ".write-probe"
        with writer(probe) as fh:
            fh.write("ok")
        with write_guard(folder, "removing .write-probe"):
            probe.unlink(missing_ok=True)
