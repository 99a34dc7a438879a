"""Dump deep candidate pools of the dev set with every ranking feature, for steering ranking offline.

``python bench/relevance_pool.py --store DIR --out pools.json`` (DIR: a store made by
``relevance.py --dataset dev --store DIR``). For each dev query it gathers the ``--knn`` nearest notices
(Chroma) and the ``--bm25`` best by the index's BM25, and records per candidate what a ranking could use
at a cost proportional to the pool: the cosine, the index's BM25 score of the query over the whole pool,
which terms it holds in title / strong / body, each term's document frequencies (whole index), its rank in
each list, and its label (relevant, unjudged). ``bench/relevance_fit.py`` replays rankings over these pools.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

import numpy as np  # noqa: E402
import tantivy  # noqa: E402

from bench.relevance_dev import COLLECTION, find_dev_dir, load_eval  # noqa: E402
from search_api.intent import SectorIntent  # noqa: E402
from search_api.settings import ApiSettings  # noqa: E402
from tender_pipeline import slots  # noqa: E402
from tender_pipeline import store as chroma_store  # noqa: E402
from tender_pipeline.embed import get_embedder  # noqa: E402
from tender_pipeline.lexical import EVIDENCE_FIELDS, TEXT_FIELDS, Filters, cosines, open_index, queries  # noqa: E402
from tests.services import chroma_server  # noqa: E402


def analysed_terms(lex, query: str) -> list[str]:
    """The query's content words as the index analyses them (as the service does, without other spellings)."""
    from search_api.ranking import query_words

    return lex.analyze(" ".join(query_words(query)))


def pool_of(lex, s, collection, embedder, intent, query: str, knn_n: int, bm25_n: int) -> dict:
    vector = np.asarray(embedder.embed_queries([query])[0], dtype=np.float32)
    terms = analysed_terms(lex, query)
    got = collection.query(query_embeddings=[vector], n_results=knn_n, include=["metadatas", "distances"])
    knn = {tid: 1.0 - float(d) for tid, d in zip(slots.tenders(got["ids"][0], got["metadatas"][0]),
                                                  got["distances"][0], strict=True) if tid is not None}
    text = lex.text_query(terms)  # every field, no "common word" shortcut: the full BM25
    bm25_hits = s.search(text, limit=bm25_n, count=False).hits if text is not None else []
    bm25_rank = {}
    for rank, (_, addr) in enumerate(bm25_hits):
        bm25_rank[s.doc(addr).get_first("id")] = rank
    ids = list(dict.fromkeys(list(knn) + list(bm25_rank)))
    pool_q = tantivy.Query.term_set_query(lex.schema, "id", ids)
    hits = {h.id: h for h in lex.matching(Filters(ids=ids), len(ids), s)}
    cos_int8 = cosines(vector, hits.values())
    bm25 = {}
    if text is not None:
        scored = tantivy.Query.boolean_query([(tantivy.Occur.Must, tantivy.Query.const_score_query(pool_q, 0.0)),
                                              (tantivy.Occur.Should, text)])
        for score, addr in s.search(scored, limit=len(ids), count=False).hits:
            bm25[s.doc(addr).get_first("id")] = float(score)
    fields = {}
    for term in terms:
        for name in EVIDENCE_FIELDS:
            q = tantivy.Query.boolean_query([(tantivy.Occur.Must, pool_q),
                                             (tantivy.Occur.Must, queries.term(lex.schema, name, term))])
            for _, addr in s.search(q, limit=len(ids), count=False).hits:
                fields.setdefault(s.doc(addr).get_first("id"), {}).setdefault(term, []).append(name)
    sector = intent.sector_for(query, vector)
    rows = []
    for tid in ids:
        card = hits[tid].card if tid in hits else {}
        rows.append({"id": tid, "cos": knn.get(tid, cos_int8.get(tid, 0.0)), "cos8": cos_int8.get(tid),
                     "knn_rank": list(knn).index(tid) if tid in knn else None, "bm25_rank": bm25_rank.get(tid),
                     "bm25": bm25.get(tid, 0.0), "fields": fields.get(tid, {}),
                     "sector": card.get("sector", ""), "source": tid.split("-", 1)[0]})
    df = {t: {name: s.doc_freq(name, t) for name in TEXT_FIELDS} for t in terms}
    return {"query": query, "terms": terms, "df": df, "num_docs": s.num_docs, "query_sector": sector,
            "pool": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--knn", type=int, default=300)
    parser.add_argument("--bm25", type=int, default=300)
    args = parser.parse_args()
    dev = find_dev_dir()
    if dev is None:
        print(json.dumps({"skipped": "no dev set: ../shared/relevance is absent"}))
        return
    ev = load_eval(dev)
    queries = ev.load_queries(str(dev / "queries.json"))
    qrels = ev.load_pairs(str(dev / "qrels.tsv"))
    ignores = ev.load_pairs(str(dev / "unjudged.tsv"))
    store = Path(args.store)
    with contextlib.ExitStack() as stack:
        host, port = stack.enter_context(chroma_server(store / "chroma"))
        settings = ApiSettings(chroma_host=host, chroma_port=port, tender_collection=COLLECTION,
                               lexical_index_path=str(store / "lexical"), embed_backend="local")
        embedder = get_embedder(settings)
        collection = chroma_store.open_collection(chroma_store.get_client(settings), COLLECTION,
                                                  embedder.model_id, embedder.dim, create=False)
        lex = open_index(settings.lexical_dir)
        s = lex.searcher()
        intent = SectorIntent(embedder, settings.taxonomy_path)
        out = []
        for q in queries:
            got = pool_of(lex, s, collection, embedder, intent, q["query"], args.knn, args.bm25)
            rel, ign = qrels.get(q["id"], set()), ignores.get(q["id"], set())
            for row in got["pool"]:
                row["label"] = 1 if row["id"] in rel else (-1 if row["id"] in ign else 0)
            got.update(id=q["id"], n_relevant=len(rel), relevant=sorted(rel), unjudged=sorted(ign))
            out.append(got)
            print(f"{q['id']} pool {len(got['pool'])} relevant in pool "
                  f"{sum(r['label'] == 1 for r in got['pool'])}/{len(rel)}", file=sys.stderr)
    Path(args.out).write_text(json.dumps(out), "utf-8")


if __name__ == "__main__":
    main()
