"""Each notice's vector stored beside its card as int8, and cosines to a query from it (no Chroma read)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from tender_pipeline.lexical.hits import Hit


def quantize(vector: Sequence[float] | np.ndarray) -> bytes:
    """A vector as int8 bytes scaled to its largest component (one byte a dimension), and the cosine to a query
    is unchanged by the scale (error ~1e-3), so a candidate's similarity needs no Chroma read."""
    v = np.asarray(vector, dtype=np.float32)
    top = float(np.abs(v).max()) if v.size else 0.0
    return (np.rint(v * (127.0 / top)) if top > 0 else np.zeros_like(v)).astype(np.int8).tobytes()


def cosines(query: np.ndarray, hits: Iterable[Hit]) -> dict[str, float]:
    """Cosine of ``query`` to each hit's stored vector (hits without one are left out)."""
    q = np.asarray(query, dtype=np.float32)
    have = [h for h in hits if len(h.vec) == q.size]  # none, or another model's: the caller asks Chroma
    if not have:
        return {}
    mat = np.frombuffer(b"".join(h.vec for h in have), dtype=np.int8).reshape(len(have), -1)
    return dict(zip([h.id for h in have], cosine_rows(mat, q), strict=True))


def cosine_rows(mat: np.ndarray, query: np.ndarray) -> list[float]:
    """Cosine of ``query`` to each row of ``mat`` (a zero row or query gives 0)."""
    mat = np.asarray(mat, dtype=np.float32)
    q = np.asarray(query, dtype=np.float32)
    norms = np.linalg.norm(mat, axis=1) * (float(np.linalg.norm(q)) or 1.0)
    return [float(s) for s in mat @ q / np.where(norms == 0, 1.0, norms)]
