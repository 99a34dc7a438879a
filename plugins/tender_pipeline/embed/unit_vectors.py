"""Unit-length rows: every backend's output, so that cosine similarity is the dot product.

A module of its own so that the backends need not import the package that
chooses between them (``embed/__init__`` imports them lazily).
"""

from __future__ import annotations

import numpy as np


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-wise unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)
