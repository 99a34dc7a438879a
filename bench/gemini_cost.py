"""Requests, tokens and estimated cost per 1,000 records: our batched Gemini backends vs one request per record.

Runs the real google-genai SDK against the local fake Gemini server
(tests/gemini_fake.py), so request counts are exact and token counts follow
the fake's ~4 characters/token rule for both sides alike: the ratios are what
matter, absolute dollars are an estimate at the configured prices.

Scenarios (same prompt, same records):
  baseline_one_per_record  batch size 1, instruction inline in every request (the seed's shape)
  batched_inline           batch size N, instruction inline
  ours                     batch size N, instruction in a context cache (the default)
  rerun_cached             ours again on the same records: the persistent cache answers
Embeddings: one text per request vs up to 100 per request.

    PYTHONPATH=plugins .venv/bin/python bench/gemini_cost.py [--records 1000] [--batch-size 20] [--repeats 3]

Records come from ../shared/data/real/ when present (through the pipeline's
profiles), else from the repo's sample fixture, repeated with fresh ids.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from tender_pipeline.embed.gemini import GeminiEmbedder  # noqa: E402
from tender_pipeline.enrich.gemini import GeminiEnricher  # noqa: E402
from tender_pipeline.enrich.offline import OfflineEnricher  # noqa: E402
from tender_pipeline.models import TenderRecord  # noqa: E402
from tender_pipeline.taxonomy import load_taxonomy  # noqa: E402
from tests.gemini_fake import FakeGemini, gemini_settings  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "real"
REAL_FILES = ("uk_contracts_finder/notices.csv", "za_etenders/tenders.csv")
SAMPLE = ROOT / "tests" / "fixtures" / "sample_tenders.csv"


def _validated(path: Path, limit: int) -> list[TenderRecord]:
    from tender_pipeline.profiles import load_profiles
    from tender_pipeline.validate import read_files, validate_tables

    result = validate_tables(read_files([(path, path.name)]), load_profiles(), limit=limit)
    records = [row["record"] for row in result.valid]
    return [r if isinstance(r, TenderRecord) else TenderRecord.model_validate(r) for r in records]


def load_records(n: int) -> tuple[list[TenderRecord], str]:
    """``n`` records with unique ids, and a note saying where they came from."""
    base: list[TenderRecord] = []
    source = ""
    for rel in REAL_FILES:
        path = REAL / rel
        if path.exists():
            try:
                base = _validated(path, n)
                source = f"real data: {path}"
                break
            except Exception as exc:  # noqa: BLE001 - a benchmark says why and carries on
                source = f"real data {path} unreadable ({type(exc).__name__}); "
    if not base:
        base = _validated(SAMPLE, n)
        source += f"{REAL} absent or unusable; sample fixture {SAMPLE.name} repeated"
    out = [base[i % len(base)].model_copy(update={"tender_id": f"{base[i % len(base)].tender_id}#{i}"})
           for i in range(n)]
    return out, source


def per_thousand(usage: dict[str, float], n: int) -> dict[str, float]:
    keys = ("requests", "input_tokens", "cached_tokens", "output_tokens", "estimated_cost_usd")
    return {k: round(usage.get(k, 0.0) * 1000 / n, 6) for k in keys}


def run_enrich(fake: FakeGemini, records: list[TenderRecord], tmp: Path, repeats: int, **overrides) -> dict:
    """Median wall time over ``repeats`` cold runs; usage from the last (identical each time)."""
    times, usage, sources = [], {}, set()
    for rep in range(repeats):
        settings = gemini_settings(fake.base_url, tmp / f"{overrides.get('gemini_enrich_batch_size')}"
                                   f"-{overrides.get('gemini_context_cache')}-{rep}",
                                   gemini_rpm=10**6, gemini_tpm=10**9, gemini_max_concurrency=4, **overrides)
        enricher = GeminiEnricher(settings, fallback=OfflineEnricher(load_taxonomy(""), embedder=None))
        started = time.perf_counter()
        out = enricher.enrich(records)
        times.append(time.perf_counter() - started)
        usage = enricher.usage()
        sources = {e.enrichment_source for e in out}
    return {"per_1000_records": per_thousand(usage, len(records)), "sources": sorted(sources),
            "median_wall_s": round(statistics.median(times), 3), "_settings": settings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    records, source = load_records(args.records)
    report: dict = {"records": len(records), "data": source, "batch_size": args.batch_size, "repeats": args.repeats,
                    "note": "fake server: tokens ~= chars/4 for both sides; ratios are the result"}
    with FakeGemini() as fake, tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        baseline = run_enrich(fake, records, tmp, args.repeats, gemini_enrich_batch_size=1,
                              gemini_context_cache=False)
        inline = run_enrich(fake, records, tmp, args.repeats, gemini_enrich_batch_size=args.batch_size,
                            gemini_context_cache=False)
        ours = run_enrich(fake, records, tmp, args.repeats, gemini_enrich_batch_size=args.batch_size,
                          gemini_context_cache=True)
        warm = GeminiEnricher(ours.pop("_settings"), fallback=OfflineEnricher(load_taxonomy(""), embedder=None))
        warm.enrich(records)
        for result in (baseline, inline):
            result.pop("_settings")
        report["enrich"] = {
            "baseline_one_per_record": baseline,
            "batched_inline": inline,
            "ours": ours,
            "rerun_cached": {"per_1000_records": per_thousand(warm.usage(), len(records)),
                             "cache_hits": warm.usage().get("cache_hits", 0)},
        }
        b, o = baseline["per_1000_records"], ours["per_1000_records"]
        report["enrich"]["ours_vs_baseline"] = {
            k: round(o[k] / b[k], 4) if b[k] else None
            for k in ("requests", "input_tokens", "output_tokens", "estimated_cost_usd")
        }

        texts = [f"{r.title}. {r.description}" for r in records]
        embed = {}
        for label, size in (("one_per_text", 1), ("ours", 100)):
            embedder = GeminiEmbedder(gemini_settings(fake.base_url, tmp / f"e{size}", gemini_embed_batch_size=size,
                                                      gemini_rpm=10**6, gemini_tpm=10**9))
            started = time.perf_counter()
            embedder.embed_documents(texts)
            embed[label] = {"per_1000_records": per_thousand(embedder.usage(), len(records)),
                            "wall_s": round(time.perf_counter() - started, 3)}
        embed["ours_vs_one_per_text_requests"] = round(
            embed["ours"]["per_1000_records"]["requests"] / embed["one_per_text"]["per_1000_records"]["requests"], 4)
        report["embed"] = embed
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
