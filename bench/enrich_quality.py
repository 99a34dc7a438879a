"""Sector quality of the offline enricher: today's scorer against the shipped sector model, one run.

Over the CPV-coded UK Contracts Finder notices (../shared/data/real) with their codes hidden, every
figure twice: ``first_code``, the true division being the notice's first CPV code's, and ``any_code``,
right when the guess is the division of any of the notice's codes (a notice coded for works and for
design is right as either; top-3 is right when any of the 3 guesses is one of its divisions):
- ``old``: the division scorer the enricher used before the sector model (cosine of the notice's
  embedding to each division's label + hint words, plus a bonus per hint word present; no confidence,
  so it never says Unclassified);
- ``new``: the sector model's words head, cross-validated (5 folds over the notices; the 9,454 CPV code
  descriptions and the OCDS samples in every fold's training set), Unclassified below
  ``SECTOR_MIN_CONFIDENCE``, weighed by the procurement type the notice states as the enrich stage weighs
  it (``SectorModel.given_types``): what the enrich stage decides;
- ``shipped``: the words head blended with the embedding head over the notice's embedded document, as the
  embed stage decides it again (``enrich.refine``), cross-validated with the same folds and leak-free
  documents (``bench/sector_embedding_probe.shipped_out_of_fold``; embeddings cached in ``--cache``).
Printed as JSON: top-1 and top-3 division accuracy, coverage (share not Unclassified), accuracy on the
covered share, top-1 counting Unclassified as wrong, the 10 most common confusions (true → predicted),
the same over the notices whose codes all name one division (``*_single_division``: there the first
code and any code agree; on notices coded in several divisions the export often lists codes in ascending
order, so the "first" is then the lowest-numbered division, not the main one:
``multi_division_codes_ascending`` counts them), a threshold sweep for the model, the same read from
each notice's title alone (``new_title_only``: how a
source that publishes only short titles, and no category, fares), and the enrich stage's sector decision's
milliseconds per notice. Without the data folder it
says so and exits 0.

    .venv/bin/python bench/enrich_quality.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

import numpy as np  # noqa: E402

from scripts import train_sector_model as train  # noqa: E402
from tender_pipeline.settings import Settings  # noqa: E402

SWEEP = (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)


def figures(truth: list[set[str]], ranked: list[list[str]], confidence: np.ndarray, threshold: float) -> dict:
    """Accuracy figures for ranked guesses; a guess below ``threshold`` counts as Unclassified.

    Each notice's truth is a set of divisions: a guess is right when it is in the set (one division
    for the first-code truth, every code's division for the any-code truth)."""
    n = len(truth)
    top1 = np.array([r[0] in t for r, t in zip(ranked, truth, strict=True)])
    covered = confidence >= threshold
    confusions = Counter(f"{'/'.join(sorted(t))} → {r[0]}" for r, t, c in zip(ranked, truth, covered, strict=True)
                         if c and r[0] not in t)
    return {
        "notices": n,
        "top1": round(float(top1.mean()), 3),
        "top3": round(float(np.mean([bool(t & set(r[:3])) for r, t in zip(ranked, truth, strict=True)])), 3),
        "coverage": round(float(covered.mean()), 3),
        "accuracy_on_covered": round(float(top1[covered].mean()), 3) if covered.any() else None,
        "top1_unclassified_wrong": round(float((top1 & covered).mean()), 3),
        "confusions": confusions.most_common(10),
    }


def ranked_codes(probs: np.ndarray, classes: list[str], top: int = 3) -> list[list[str]]:
    return [[classes[k] for k in row[:top]] for row in np.argsort(-probs, axis=1, kind="stable")]


def old_method(notices) -> list[list[str]]:
    """The scorer the offline enricher used before the sector model, on the text it classified."""
    from tender_pipeline.embed import get_embedder
    from tender_pipeline.enrich.offline import _tokens
    from tender_pipeline.sector_scores import DivisionScorer
    from tender_pipeline.taxonomy import load_taxonomy

    scorer = DivisionScorer(load_taxonomy(""), get_embedder(Settings(embed_backend="local")), _tokens)
    texts = [f"{r.title}. {r.category}. {r.description[:200]}" for r in notices]
    scores = scorer.scores(texts)
    codes = [d.code for d in scorer.divisions]
    return [[codes[k] for k in row[:3]] for row in np.argsort(-scores, axis=1, kind="stable")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=train.DEFAULT_DATA)
    parser.add_argument("--skip-old", action="store_true", help="only the sector model (the old scorer embeds)")
    parser.add_argument("--cache", type=Path, default=None, help="embeddings and fold models of ``shipped``")
    args = parser.parse_args()
    if not (args.data / "uk_contracts_finder" / "notices.csv").is_file():
        print(json.dumps({"skipped": f"{args.data} is absent (../shared/data/real): no labelled notices"}))
        return 0
    threshold = Settings().sector_min_confidence
    code_texts, code_labels = train.load_code_descriptions(args.data)
    everything = train.load_notices(args.data)
    uk = [r for r in everything if r.source == "uk-contracts-finder" and r.tender_id.startswith("uk-cf:")]
    others = [r for r in everything if r not in uk]
    truths = {"first_code": [{train.label(r)} for r in uk],
              "any_code": [{c[:2] for c in r.cpv_codes} for r in uk]}
    hidden = [r.model_copy(update={"cpv_codes": []}) for r in uk]

    out: dict = {"data": str(args.data), "threshold": threshold,
                 "truths": {"first_code": "the division of the notice's first CPV code",
                            "any_code": "any division of the notice's CPV codes (right if the guess is one of them)"},
                 "divisions_present": len(set().union(*truths["first_code"])),
                 "multi_division_notices": sum(len(t) > 1 for t in truths["any_code"]),
                 "multi_division_codes_ascending": sum(len(t) > 1 and r.cpv_codes == sorted(r.cpv_codes)
                                                       for r, t in zip(uk, truths["any_code"], strict=True))}
    single = [i for i, t in enumerate(truths["any_code"]) if len(t) == 1]  # first code and any code agree

    def on_single(ranked: list[list[str]], confidence: np.ndarray) -> dict:
        return figures([truths["first_code"][i] for i in single], [ranked[i] for i in single], confidence[single],
                       threshold)

    if not args.skip_old:
        ranked = old_method(hidden)
        out["old"] = {name: figures(truth, ranked, np.ones(len(uk)), 0.0) for name, truth in truths.items()}
        out["old_single_division"] = on_single(ranked, np.ones(len(uk)))
    from bench.sector_embedding_probe import DEFAULT_CACHE, shipped_out_of_fold, stated_types

    probs, classes = train.cross_validated(code_texts, code_labels, uk, always=others)
    probs = stated_types(uk, probs, classes)  # as the enrich stage reads them (``SectorModel.given_types``)
    ranked = ranked_codes(probs, classes)
    confidence = probs.max(axis=1)
    out["new"] = {name: figures(truth, ranked, confidence, threshold) for name, truth in truths.items()}
    out["new_single_division"] = on_single(ranked, confidence)

    _, blended, blend_classes = shipped_out_of_fold(args.data, args.cache or DEFAULT_CACHE)
    ranked_b = ranked_codes(blended, blend_classes)
    out["shipped"] = {name: figures(truth, ranked_b, blended.max(axis=1), threshold) for name, truth in truths.items()}
    out["shipped_single_division"] = on_single(ranked_b, blended.max(axis=1))
    out["shipped_sweep"] = {name: [{k: v for k, v in figures(truth, ranked_b, blended.max(axis=1), t).items()
                                    if k != "confusions"} | {"threshold": t} for t in SWEEP]
                            for name, truth in truths.items()}
    probs_t, _ = train.cross_validated(code_texts, code_labels, uk, always=others, title_only=True)
    out["new_title_only"] = {name: figures(truth, ranked_codes(probs_t, classes), probs_t.max(axis=1), threshold)
                             for name, truth in truths.items()}
    out["new_sweep"] = {name: [{k: v for k, v in figures(truth, ranked, confidence, t).items() if k != "confusions"}
                               | {"threshold": t} for t in SWEEP] for name, truth in truths.items()}

    from tender_pipeline.enrich.offline import OfflineEnricher

    enricher = OfflineEnricher.from_settings(Settings())
    enricher.sectors(hidden[:10])
    started = time.perf_counter()
    enricher.sectors(hidden)  # what the enrich stage runs: words, the stated type's weight, the threshold
    out["new_ms_per_notice"] = round(1000 * (time.perf_counter() - started) / len(hidden), 3)
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
