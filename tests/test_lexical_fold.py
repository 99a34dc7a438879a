"""The lexical index keeps at most ``MAX_SEGMENTS`` segments by folding the smallest into each commit, and a
folded notice reads, searches and filters exactly as before."""

from __future__ import annotations

import json

import numpy as np

from tender_pipeline.lexical import Filters, LexicalIndex
from tender_pipeline.lexical.fold import MAX_SEGMENTS


def notice(n: int, batch: int) -> dict:
    return {"title": f"Supply of item {n} batch {batch}", "buyer": f"Buyer {n % 5}",
            "country": ["Ghana", "Kenya"][n % 2], "sector": "Medical" if n % 3 else "Construction",
            "procurement_type": "Supply",
            "closing_num": 20260101 + batch, "value_amount": float(n), "is_corrigendum": False,
            "ingested_ts": 1_700_000_000 + batch}


def segments(index: LexicalIndex) -> list[dict]:
    return json.loads((index.path / "meta.json").read_text())["segments"]


def live(segment: dict) -> int:
    return segment["max_doc"] - ((segment.get("deletes") or {}).get("num_deleted_docs") or 0)


def fill(index: LexicalIndex, batches: int, size: int) -> dict[str, tuple[dict, str, np.ndarray]]:
    """``batches`` commits of ``size`` notices, with a few of the earlier ones changed or deleted each time."""
    rng = np.random.default_rng(1)
    written: dict[str, tuple[dict, str, np.ndarray]] = {}
    for b in range(batches):
        ids = [f"N{b * size + i}" for i in range(size)]
        changed = [f"N{(b - 1) * size + i}" for i in range(0, size, 7)] if b else []  # re-sent, changed
        metas = [notice(int(t[1:]), b) for t in ids + changed]
        texts = [f"{m['title']} full text, batch {b}" for m in metas]
        vectors = rng.normal(size=(len(metas), 8)).astype(np.float32)
        before = segments(index)
        index.upsert(ids + changed, metas, texts, vectors)
        new = [s for s in segments(index) if s["segment_id"] not in {o["segment_id"] for o in before}]
        folded = sorted(live(s) for s in before)[:max(0, len(before) + 1 - MAX_SEGMENTS)]
        assert len(new) == 1 and new[0]["max_doc"] <= len(metas) + sum(folded)  # no merge of the whole index
        written.update({t: (m, x, v) for t, m, x, v in zip(ids + changed, metas, texts, vectors, strict=True)})
        gone = [f"N{(b - 2) * size + i}" for i in range(1, size, 5)] if b > 1 else []
        index.delete_ids(gone)
        for t in gone:
            written.pop(t, None)
        assert len(segments(index)) <= MAX_SEGMENTS
    return written


def test_the_index_never_holds_more_than_max_segments_and_loses_nothing(tmp_path):
    index = LexicalIndex(tmp_path / "lex", publish_uri="")
    written = fill(index, MAX_SEGMENTS + 5, 40)
    fresh = LexicalIndex(tmp_path / "fresh", publish_uri="")  # the same notices written once
    ids = sorted(written)
    fresh.upsert(ids, [written[t][0] for t in ids], [written[t][1] for t in ids], [written[t][2] for t in ids])

    assert index.num_docs() == len(written) == fresh.num_docs()
    assert sum(s["max_doc"] for s in segments(index)) < 1.3 * len(written)  # folded segments' deletes are gone
    assert index.notices(ids) == fresh.notices(ids)  # card, text and int8 vector of every notice
    for f in (Filters(country="kenya"), Filters(sector="construction"), Filters(closing_min=20260105),
              Filters(value_max=100.0)):
        assert {h.id for h in index.matching(f, 1000)} == {h.id for h in fresh.matching(f, 1000)}
    terms = index.analyze("item 123 batch 3")  # BM25's statistics count deleted documents: compare what is found
    assert {h.id for h in index.search(terms, Filters(), 1000)} == {h.id for h in fresh.search(terms, Filters(), 1000)}


def test_a_commits_own_changes_win_over_the_folded_copies(tmp_path):
    index = LexicalIndex(tmp_path / "lex", publish_uri="")
    fill(index, MAX_SEGMENTS, 10)
    smallest = min(segments(index), key=lambda s: s["max_doc"])
    assert len(segments(index)) == MAX_SEGMENTS  # the next commit folds
    victim = "N0"  # in the first batch, among the smallest segments
    with index.writing() as w:
        w.upsert(["X1"], [notice(1, 99)], ["new"], None)
        w.upsert([victim], [notice(0, 42)], ["changed in the folding commit"], None)
        w.delete(["N2"])
    assert smallest["segment_id"] not in {s["segment_id"] for s in segments(index)}  # folded
    got = index.notices([victim, "N2", "X1"])
    assert set(got) == {victim, "X1"}
    assert got[victim][0]["closing_num"] == 20260101 + 42 and got[victim][1] == "changed in the folding commit"
    assert index.count(Filters(ids=[victim])) == 1


def test_clear_folds_nothing_back(tmp_path):
    index = LexicalIndex(tmp_path / "lex", publish_uri="")
    fill(index, MAX_SEGMENTS, 10)
    with index.writing() as w:
        w.clear()
        w.upsert(["only"], [notice(1, 1)], ["only one"], None)
    assert index.num_docs() == 1


def test_a_block_that_only_deletes_folds_first_and_its_deletes_hold(tmp_path):
    index = LexicalIndex(tmp_path / "lex", publish_uri="")
    fill(index, MAX_SEGMENTS, 10)
    before = index.num_docs()
    with index.writing() as w:  # retirement's shape: deletes only
        w.delete(["N2", "N3"])  # in the first, smallest segment
    assert index.num_docs() == before - 2 and index.notices(["N2", "N3"]) == {}
    with index.writing():  # a lock held for reading changes nothing, folds nothing
        pass
    assert index.num_docs() == before - 2 and len(segments(index)) <= MAX_SEGMENTS
