"""The vectors of a run (``embeddings.npy``): float32 .npy written chunk by chunk and read as a memory map."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np

from tender_pipeline.staging.atomic import writer
from tender_pipeline.staging.paths import StagePath, local_copy


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
