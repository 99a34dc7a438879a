"""Replay rankings over dumped dev-set pools (``relevance_pool.py``): formulas, pool depths, fitted weights.

Offline and fast (no services), so a ranking idea is measured on the 40 dev queries in seconds before it
is built into the service; the service's own figure always comes from ``relevance.py --dataset dev``.
Scores with the dev set's ``eval.py`` metrics. Fitted weights are reported cross-validated: k-fold over
queries, and leave-one-source-out (fit without the notices of one source, score the rankings of that
source's notices only).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]


from bench.relevance_dev import find_dev_dir, load_eval  # noqa: E402

BODY_WEIGHT = 0.6
STRONG = ("title", "strong")


def restrict(q: dict, knn_n: int, bm25_n: int) -> list[dict]:
    return [r for r in q["pool"] if (r["knn_rank"] is not None and r["knn_rank"] < knn_n)
            or (r["bm25_rank"] is not None and r["bm25_rank"] < bm25_n)]


def global_idf(q: dict) -> dict[str, float]:
    n = q["num_docs"]
    return {t: math.log(1 + (n - max(d.values()) + 0.5) / (max(d.values()) + 0.5)) for t, d in q["df"].items()}


def pool_idf(q: dict, rows: list[dict]) -> dict[str, float]:
    n = len(rows)
    out = {}
    for t in q["terms"]:
        df = sum(1 for r in rows if t in r["fields"])
        out[t] = math.log(1 + (n - df + 0.5) / (df + 0.5))
    return out


def coverage(r: dict, terms: list[str], idf: dict[str, float], body: float = BODY_WEIGHT) -> float:
    total = sum(idf[t] for t in terms) or 1.0
    got = 0.0
    for t in terms:
        where = r["fields"].get(t, [])
        if any(f in STRONG for f in where):
            got += idf[t]
        elif "body" in where:
            got += body * idf[t]
    return got / total


def title_coverage(r: dict, terms: list[str], idf: dict[str, float]) -> float:
    total = sum(idf[t] for t in terms) or 1.0
    return sum(idf[t] for t in terms if "title" in r["fields"].get(t, [])) / total


Scorer = Callable[[dict, list[dict]], list[float]]


def fused(lexical: str = "pool", w: float = 0.55, bonus: float = 0.0, cos_norm: bool = False) -> Scorer:
    """w·cos + (1-w)·lexical (+ sector bonus), as ranking.fuse; lexical: pool / global coverage, bm25."""
    def score(q: dict, rows: list[dict]) -> list[float]:
        terms = q["terms"]
        if lexical == "pool":
            idf = pool_idf(q, rows)
            lex = [coverage(r, terms, idf) for r in rows]
        elif lexical == "global":
            idf = global_idf(q)
            lex = [coverage(r, terms, idf) for r in rows]
        elif lexical == "bm25":
            top = max((r["bm25"] for r in rows), default=0.0) or 1.0
            lex = [r["bm25"] / top for r in rows]
        else:
            raise ValueError(lexical)
        cos = [max(r["cos"], 0.0) for r in rows]
        if cos_norm:
            lo, hi = min(cos), max(cos)
            cos = [(c - lo) / ((hi - lo) or 1.0) for c in cos]
        sector = q.get("query_sector")
        return [w * c + (1 - w) * lx + (bonus if sector and r["sector"] == sector else 0.0)
                for c, lx, r in zip(cos, lex, rows, strict=True)]
    return score


def evaluate(ev, pools: list[dict], scorer: Scorer, knn_n: int, bm25_n: int, source: str | None = None) -> dict:
    """Macro metrics of ``scorer`` over every query's pool restricted to the depths; with ``source``, only
    that source's notices are ranked and judged (queries without a relevant one there are skipped)."""
    per = []
    for q in pools:
        rows = restrict(q, knn_n, bm25_n)
        rel, ign = set(q["relevant"]), set(q["unjudged"])
        if source is not None:
            rows = [r for r in rows if r["source"] == source]
            rel = {t for t in rel if t.split("-", 1)[0] == source}
            if not rel:
                continue
        scores = scorer(q, rows) if rows else []
        order = sorted(range(len(rows)), key=lambda i: (-scores[i], -rows[i]["cos"]))
        m = ev.metrics([rows[i]["id"] for i in order], rel, ign)
        per.append({"id": q["id"], **m})
    keys = ("ndcg@10", "p@10", "r@50", "mrr")
    return {"queries": len(per), **{k: round(sum(p[k] for p in per) / max(len(per), 1), 4) for k in keys},
            "per_query": per}


def pool_recall(pools: list[dict], knn_n: int, bm25_n: int) -> float:
    """The best R@50 any ranking of the pool could reach (relevant in the pool, capped at 50)."""
    got = []
    for q in pools:
        rows = restrict(q, knn_n, bm25_n)
        inside = sum(1 for r in rows if r["label"] == 1)
        got.append(min(inside, 50) / max(q["n_relevant"], 1))
    return round(sum(got) / len(got), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pools")
    parser.add_argument("--knn", type=int, default=60)
    parser.add_argument("--bm25", type=int, default=50)
    args = parser.parse_args()
    ev = load_eval(find_dev_dir())
    pools = json.loads(Path(args.pools).read_text("utf-8"))
    out = {"pool_recall_ceiling": pool_recall(pools, args.knn, args.bm25)}
    for name, scorer in {"today": fused("pool", 0.55, 0.04), "today_no_sector": fused("pool", 0.55, 0.0),
                         "global_idf": fused("global", 0.55, 0.0), "bm25": fused("bm25", 0.55, 0.0)}.items():
        got = evaluate(ev, pools, scorer, args.knn, args.bm25)
        out[name] = {k: v for k, v in got.items() if k != "per_query"}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
