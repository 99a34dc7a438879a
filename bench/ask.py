"""Offline "Ask about this tender" on labelled questions: the shipped ranker vs its two halves (prints JSON).

Notices come from tests/fixtures/ask_notices.csv (written for this set: deadline,
bid security, eligibility, where to submit ...) and tests/fixtures/sample_tenders.csv,
turned into stored text by the real pipeline code (validate, offline enrichment,
document_text, to_metadata) without Chroma. Each question in bench/ask_questions.json
names its notice and the strings a right answer contains.

Metrics, over all questions and per kind:
  hit@1  the answer (top passage) contains an expected string;
  hit@3  one of the three returned passages does;
  ms_p50 median time per question: embedding the question and the notice's passages (once per
         question, shared by the rankers that use it) plus ranking.
Rankers, all in the same run: ``combined`` (what the API uses: VECTOR_WEIGHT × cosine +
(1 − VECTOR_WEIGHT) × word overlap), ``overlap`` only, ``embedding`` only.

Usage: python bench/ask.py [--per-question] [--sweep]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from tender_pipeline import ask, store  # noqa: E402
from tender_pipeline.ask.extractive import cosines, rank  # noqa: E402
from tender_pipeline.documents import document_text  # noqa: E402
from tender_pipeline.embed import get_embedder  # noqa: E402
from tender_pipeline.enrich.offline import OfflineEnricher  # noqa: E402
from tender_pipeline.models import EnrichedTender, TenderRecord  # noqa: E402
from tender_pipeline.money import Reporter  # noqa: E402
from tender_pipeline.profiles import load_profiles  # noqa: E402
from tender_pipeline.readers import read_table  # noqa: E402
from tender_pipeline.settings import Settings  # noqa: E402
from tender_pipeline.validate import validate_tables  # noqa: E402

FILES = [ROOT / "tests" / "fixtures" / "ask_notices.csv", ROOT / "tests" / "fixtures" / "sample_tenders.csv"]
QUESTIONS = Path(__file__).with_name("ask_questions.json")


def notices(settings: Settings, wanted: set[str]) -> dict[str, ask.Notice]:
    tables = [(read_table(path), path.name) for path in FILES]
    result = validate_tables(tables, load_profiles(""), "")
    records = [TenderRecord.model_validate(v["record"]) for v in result.valid
               if v["record"]["tender_id"] in wanted]
    enrichments = OfflineEnricher.from_settings(settings).enrich(records)
    reporter = Reporter.from_settings(settings)
    now = datetime.now(UTC)
    out = {}
    for record, enrichment in zip(records, enrichments, strict=True):
        item = EnrichedTender(record=record, enrichment=enrichment, content_hash=record.content_hash())
        out[record.tender_id] = ask.build_notice(record.tender_id, document_text(item),
                                                 store.to_metadata(item, now, reporter))
    return out


def evaluate(items: list[dict], texts: dict[str, ask.Notice], sims: list, weight: float) -> dict:
    per_kind: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    hits: list[tuple[bool, bool]] = []
    times: list[float] = []
    detail = []
    for q, (sim, embed_ms) in zip(items, sims, strict=True):
        started = time.perf_counter()
        ranked = rank(texts[q["tender_id"]], q["question"], None, weight, cosine=sim)
        times.append((time.perf_counter() - started) * 1000 + (embed_ms if weight > 0 else 0.0))
        expect = [e.lower() for e in q["expect"]]
        good = [any(e in s.passage.text.lower() for e in expect) for s in ranked[:ask.SUPPORT]]
        outcome = (bool(good and good[0]), any(good))
        hits.append(outcome)
        per_kind[q["kind"]].append(outcome)
        detail.append({"tender_id": q["tender_id"], "question": q["question"], "hit@1": outcome[0],
                       "answer": ranked[0].passage.text if ranked else ""})
    mean = lambda xs: round(sum(xs) / len(xs), 3)  # noqa: E731
    return {
        "hit@1": mean([h[0] for h in hits]), "hit@3": mean([h[1] for h in hits]),
        "ms_p50": round(statistics.median(times), 1),
        "per_kind_hit@1": {k: mean([h[0] for h in v]) for k, v in sorted(per_kind.items())},
        "_detail": detail,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-question", action="store_true")
    parser.add_argument("--sweep", action="store_true", help="also try vector weights 0.1 … 0.9")
    args = parser.parse_args()
    settings = Settings(embed_backend="local", enrich_backend="local")
    embedder = get_embedder(settings)
    items = json.loads(QUESTIONS.read_text())["questions"]
    texts = notices(settings, {q["tender_id"] for q in items})
    missing = sorted({q["tender_id"] for q in items} - set(texts))
    if missing:
        raise SystemExit(f"{QUESTIONS}: questions name notices not in the fixtures: {missing}")
    cosines(texts[items[0]["tender_id"]], "warm-up", embedder)  # load the model outside the timings
    sims = []  # the embedding half once per question; every weight reuses it
    for q in items:
        started = time.perf_counter()
        sims.append((cosines(texts[q["tender_id"]], q["question"], embedder),
                     (time.perf_counter() - started) * 1000))
    runs = {"combined": ask.VECTOR_WEIGHT, "overlap": 0.0, "embedding": 1.0}
    if args.sweep:
        runs.update({f"w={w / 10:.1f}": w / 10 for w in range(1, 10)})
    report = {"questions": len(items), "notices": len({q["tender_id"] for q in items}),
              "vector_weight": ask.VECTOR_WEIGHT}
    for name, weight in runs.items():
        result = evaluate(items, texts, sims, weight)
        detail = result.pop("_detail")
        if args.per_question and name == "combined":
            result["questions"] = detail
        report[name] = result
    base = report["overlap"]["hit@1"]
    report["combined_vs_overlap_hit@1"] = round(report["combined"]["hit@1"] / base, 3) if base else None
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
