"""The two errors staging raises, and the guard that turns "disk full" / "read-only" into one line."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path


class StagingWriteError(OSError):
    """Staging is full or not writable: fix the volume (or STAGING_URI) and retry; not the input's fault."""


class UnsafeStoreError(RuntimeError):
    """The store cannot create an object only-if-absent, which the ledger needs."""


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
