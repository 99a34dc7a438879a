"""The shipped sector classifier: a linear model over a notice's words and word pairs, numpy only.

``scripts/train_sector_model.py`` fits it (scikit-learn, at training time only)
on the 9,454 CPV code descriptions and CPV-coded notices, and writes
``weights.npz`` (vocabulary, IDF, int8 weights with one float32 scale per
division, so the file stays well under the repository's 2 MB limit) and
``manifest.json`` (the file's sha256 and the training data) into this folder.
The weights are dequantised once on load; inference is a TF-IDF row times the
weights, one sigmoid per division, normalised to sum to 1: deterministic, well
under a millisecond a notice, no network.

An optional second head, ``embedding.npz`` (listed under ``"embedding"`` in the
manifest), reads the vector the pipeline already computes for a notice's
document: a softmax regression over the local embedder's space whose
probabilities are blended geometrically with the words model's (``blend``). It
adds what the words miss (a notice that names its items in words the training
data never used) for one small matmul a notice, and is used only with the
embedder it was trained on (``SectorRefiner``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tender_pipeline.embed.onnx_runtime import MANIFEST as MANIFEST  # one manifest name for every model folder
from tender_pipeline.embed.onnx_runtime import read_manifest as verified_manifest
from tender_pipeline.models import TenderRecord
from tender_pipeline.sector_model.features import record_terms, terms

MODEL_DIR = Path(__file__).resolve().parent


class SectorModelError(RuntimeError):
    """The model folder is missing a file or a file's checksum differs from the manifest."""


@dataclass(frozen=True)
class SectorGuess:
    """The best divisions for one text, most likely first, with their probabilities."""

    codes: tuple[str, ...]
    probabilities: tuple[float, ...]

    @property
    def code(self) -> str:
        return self.codes[0]

    @property
    def confidence(self) -> float:
        return self.probabilities[0]


def read_manifest(model_dir: Path = MODEL_DIR) -> dict:
    """The manifest, after checking every file it lists against its sha256."""
    return verified_manifest(model_dir, error=SectorModelError, builder="scripts/train_sector_model.py")


class SectorModel:
    """Division probabilities for notices or short texts (queries)."""

    def __init__(self, model_dir: Path = MODEL_DIR) -> None:
        self.manifest = read_manifest(model_dir)
        with np.load(model_dir / self.manifest["weights"], allow_pickle=False) as data:
            vocabulary = [str(t) for t in data["vocabulary"]]
            self._idf = data["idf"].astype(np.float32)
            # (terms, divisions): int8 on disk, times the division's scale (scripts/train_sector_model.quantise)
            self._weights = data["coef"].astype(np.float32) * data["coef_scale"].astype(np.float32)
            self._bias = data["intercept"].astype(np.float32)
            self.codes: tuple[str, ...] = tuple(str(c) for c in data["classes"])
        self._index = {t: i for i, t in enumerate(vocabulary)}
        self.embedding: dict = dict(self.manifest.get("embedding") or {})  # the second head's facts, if shipped
        self.stated_type_factor = float(self.manifest.get("stated_type_factor", 1.0))
        self._head: tuple[np.ndarray, np.ndarray] | None = None
        if self.embedding:
            with np.load(model_dir / self.embedding["weights"], allow_pickle=False) as data:
                if tuple(str(c) for c in data["classes"]) != self.codes:
                    raise SectorModelError(f"{self.embedding['weights']} lists other divisions than the words model")
                self._head = (data["coef"].astype(np.float32) * data["coef_scale"].astype(np.float32),
                              data["intercept"].astype(np.float32))

    def probabilities(self, term_lists: list[list[str]]) -> np.ndarray:
        """(texts, divisions) probabilities, columns in ``self.codes`` order."""
        out = np.empty((len(term_lists), len(self.codes)), dtype=np.float32)
        for row, found in enumerate(term_lists):
            counts = Counter(t for t in found if t in self._index)
            z = self._bias.copy()
            if counts:
                idx = np.fromiter((self._index[t] for t in counts), dtype=np.int64, count=len(counts))
                tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
                value = (1.0 + np.log(tf)) * self._idf[idx]
                value /= np.linalg.norm(value)
                z += value @ self._weights[idx]
            p = 1.0 / (1.0 + np.exp(-z))  # one-vs-rest log-loss heads, normalised as scikit-learn does
            out[row] = p / p.sum()
        return out

    def embedding_probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """(notices, divisions) probabilities of the embedding head: a softmax over the divisions."""
        if self._head is None:
            raise SectorModelError("this sector model ships no embedding head")
        weights, bias = self._head
        z = np.asarray(vectors, dtype=np.float32) @ weights + bias
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def blend(self, words: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """The words model's probabilities combined with the embedding head's: a weighted geometric mean,
        renormalised (each head can veto a division the other favours; a linear mix cannot)."""
        w = float(self.embedding.get("weight", 0.5))
        g = np.exp((1 - w) * np.log(words + 1e-9) + w * np.log(self.embedding_probabilities(vectors) + 1e-9))
        return g / g.sum(axis=1, keepdims=True)

    def given_types(self, probs: np.ndarray, stated: Sequence[str | None],
                    division_types: Mapping[str, str]) -> np.ndarray:
        """``probs`` with every division of another procurement type than the one the source states (works,
        supply or services, from its category or notice type) made ``stated_type_factor`` times less likely,
        renormalised. The words model reads "Services" as one word among the notice's; as a prior it keeps a
        repair service out of "Construction work" (bench/README.md, "stated procurement type")."""
        factor = self.stated_type_factor
        if factor == 1.0 or not any(stated):
            return probs
        types = np.array([division_types.get(code, "") for code in self.codes])
        kinds = np.array([kind or "" for kind in stated])[:, None]  # '' where the source states none
        other = (kinds != "") & (types[None, :] != kinds)
        out = np.where(other, np.asarray(probs, dtype=np.float32) * np.float32(factor), probs).astype(np.float32)
        return out / out.sum(axis=1, keepdims=True)

    def ranked(self, probs: np.ndarray, top: int = 3) -> list[SectorGuess]:
        """The ``top`` divisions of each row of ``probs``, most likely first."""
        order = np.argsort(-probs, axis=1, kind="stable")[:, :top]
        return [SectorGuess(tuple(self.codes[k] for k in row), tuple(round(float(p[k]), 4) for k in row))
                for p, row in zip(probs, order, strict=True)]

    def guess(self, term_lists: list[list[str]], top: int = 3) -> list[SectorGuess]:
        return self.ranked(self.probabilities(term_lists), top)

    def guess_records(self, records: list[TenderRecord], top: int = 3) -> list[SectorGuess]:
        return self.guess([record_terms(r) for r in records], top)

    def guess_texts(self, texts: list[str], top: int = 3) -> list[SectorGuess]:
        """Short texts such as queries, read as titles."""
        return self.guess([terms(t, "") for t in texts], top)


_LOCK = threading.Lock()
_LOADED: dict[Path, SectorModel] = {}


def get_sector_model(model_dir: Path = MODEL_DIR) -> SectorModel:
    """One loaded model per folder and process (the checksums are checked once)."""
    with _LOCK:
        if model_dir not in _LOADED:
            _LOADED[model_dir] = SectorModel(model_dir)
        return _LOADED[model_dir]
