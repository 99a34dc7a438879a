"""Create-only-if-absent, what the ledger of claimed files needs across hosts.

Locally a hard link of a finished temp file (fails if the name exists), on S3 a conditional PUT (proven to
be honoured once per bucket). Other stores refuse (``UnsafeStoreError``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from tender_pipeline.staging.errors import write_guard
from tender_pipeline.staging.object_stores import S3Store
from tender_pipeline.staging.paths import RemotePath, StagePath, location


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
