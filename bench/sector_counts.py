"""What the sector filter's counts cost at scale: the aggregation behind GET /sectors and /stats, once per index
version, against what a request pays between versions (a cached read after a stat of ``meta.json``).

Builds a synthetic lexical index per size (45 CPV-division labels with a skewed spread, 12% Unclassified; short
texts, no vectors: the aggregation reads only fast fields, so text length does not matter) under /tmp, then
times, median of ``--repeat`` runs each, all in this run:

* ``facets_before``: the aggregation of /stats before sector codes (terms on sector, country, type; max ingest);
* ``facets``: what /sectors and /stats use: the same, each sector with its CPV code (one terms aggregation over
  "<code>|<label>" instead of the labels; a nested terms aggregation of the code under each label cost 2.45x the
  labels alone at 1M, 22.1 against 9.0 ms, in an earlier run);
* ``sector_term_dict``: the doc frequencies of the sector keys from the term dictionary (no aggregation; counts
  deleted documents until a merge, so not used, shown for comparison);
* ``request``: ``Catalog.get`` between versions (what every /sectors request costs), and ``generation``: its stat.

    nice -n 10 python bench/sector_counts.py --sizes 100000,1000000
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from search_api.catalog import Catalog  # noqa: E402
from tender_pipeline.lexical import LexicalIndex  # noqa: E402

LABELS = [(f"Sector {code:02d}", f"{code:02d}") for code in range(3, 93, 2)]  # 45 divisions
COUNTRIES = ["Kenya", "Ghana", "India", "Pakistan", "South Africa", "United Kingdom"]


def build(path: Path, size: int, seed: int = 7) -> LexicalIndex:
    rng = random.Random(seed)
    weights = [1 / (i + 1) for i in range(len(LABELS))]
    index = LexicalIndex(path, publish_uri="")
    step = 20_000
    for start in range(0, size, step):
        ids, metas, texts = [], [], []
        for i in range(start, min(size, start + step)):
            if rng.random() < 0.12:
                label, code, conf = "Unclassified", "", rng.uniform(0, 0.4)
            else:
                label, code = rng.choices(LABELS, weights)[0]
                conf = rng.uniform(0.5, 1)
            ids.append(f"N-{i}")
            metas.append({"title": f"notice {i}", "sector": label, "sector_code": code, "sector_confidence": conf,
                          "country": rng.choice(COUNTRIES), "procurement_type": rng.choice(["Works", "Supply"]),
                          "ingested_ts": 1_800_000_000 + i, "description": ""})
            texts.append(f"notice {i}")
        index.upsert(ids, metas, texts)
    return index


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 3)


def facets_before(index: LexicalIndex) -> dict:
    import tantivy

    s = index.searcher()
    aggs = {name: {"terms": {"field": name, "size": 1000}} for name in ("sector", "country", "procurement_type")}
    aggs["last_ingest"] = {"max": {"field": "ingested_ts"}}
    return s.aggregate(tantivy.Query.all_query(), aggs)


def measure(index: LexicalIndex, repeat: int, built: float) -> dict:
    s = index.searcher()
    catalog = Catalog(ttl_s=3600)
    catalog.get(index)  # the first aggregation
    got = index.facets()
    row = {
        "notices": s.num_docs, "segments": s.num_segments, "build_s": built,
        "sectors": len(got["sector"]), "unclassified": got["sector"].get("Unclassified", 0),
        "coded": sum(1 for code in got["sector_codes"].values() if code),
        "facets_before_ms": median_ms(lambda: facets_before(index), repeat),
        "facets_ms": median_ms(index.facets, repeat),
        "sector_term_dict_ms": median_ms(lambda: index.searcher().terms_with_prefix("sector_key", ""), repeat),
        "request_us": round(median_ms(lambda: catalog.get(index), 200) * 1000, 1),
        "generation_us": round(median_ms(index.generation, 200) * 1000, 1),
    }
    row["facets_over_before"] = round(row["facets_ms"] / max(row["facets_before_ms"], 1e-9), 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args()
    out = {"what": "sector counts (GET /sectors, /stats) at scale", "runs": []}
    for size in (int(s) for s in args.sizes.split(",")):
        folder = Path(tempfile.mkdtemp(prefix="sectorui-bench-", dir="/tmp"))
        try:
            t0 = time.perf_counter()
            index = build(folder / "lex", size)
            row = measure(index, args.repeat, round(time.perf_counter() - t0, 1))
            out["runs"].append(row)
            print(json.dumps(row), file=sys.stderr)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
