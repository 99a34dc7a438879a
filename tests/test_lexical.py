"""The tantivy lexical + filter index: filters, BM25, exact references, evidence, facets, retirement."""

from __future__ import annotations

import numpy as np
import pytest

from tender_pipeline.lexical import Filters, LexicalIndex, cosines, open_index, quantize


def meta(title: str, **kw) -> dict:
    base = {"title": title, "buyer": "", "country": "", "region": "", "city": "", "sector": "", "summary": "",
            "procurement_type": "", "closing_num": 0, "value_amount": -1.0, "is_corrigendum": False,
            "ingested_ts": 1_700_000_000}
    return {**base, **kw}


NOTICES = {
    "GH-1": meta("Supply of hospital beds", buyer="Ghana Health Service", country="Ghana", sector="Medical",
                 procurement_type="Supply", closing_num=20261210, value_amount=50_000.0),
    "GH-2": meta("Road rehabilitation in Kumasi", buyer="Ghana Highway Authority", country="Ghana",
                 sector="Construction", procurement_type="Works", closing_num=20261101, value_amount=900_000.0),
    "UK-TFL-7": meta("Laptops for depots", buyer="Transport for London (TfL)", country="United Kingdom",
                     sector="IT", procurement_type="Supply", closing_num=0, is_corrigendum=True),
    "uk-cf:WTC 2025/3": meta("Office cleaning", buyer="Leeds City Council", country="United Kingdom",
                             sector="Services", procurement_type="Services", closing_num=20270115),
}


@pytest.fixture()
def index(tmp_path) -> LexicalIndex:
    idx = LexicalIndex(tmp_path / "lex")
    ids = list(NOTICES)
    idx.upsert(ids, [NOTICES[i] for i in ids], [f"{NOTICES[i]['title']} full text of {i}" for i in ids])
    return idx


def ids_of(hits) -> set[str]:
    return {h.id for h in hits}


def test_filters_are_case_insensitive_and_ranges_skip_unknowns(index):
    assert index.count(Filters(country="GHANA")) == 2
    assert index.count(Filters(procurement_type="goods")) == 2  # synonym of Supply
    assert ids_of(index.matching(Filters(buyer="tfl"), 10)) == {"UK-TFL-7"}
    assert ids_of(index.matching(Filters(buyer="city council"), 10)) == {"uk-cf:WTC 2025/3"}
    assert ids_of(index.matching(Filters(closing_min=20261201), 10)) == {"GH-1", "uk-cf:WTC 2025/3"}
    assert ids_of(index.matching(Filters(closing_max=20261231), 10)) == {"GH-1", "GH-2"}  # not the unknown date
    assert ids_of(index.matching(Filters(value_max=100_000), 10)) == {"GH-1"}  # -1 (unknown) is not ≤ 100k
    assert index.count(Filters(exclude_corrigendum=True)) == 3
    assert index.count(Filters(ids=["GH-2", "nope"])) == 1
    assert index.count(Filters()) == 4


def test_bm25_finds_stemmed_words_under_filters(index):
    terms = index.analyze("hospitals rehabilitation")
    assert ids_of(index.search(terms, Filters(), 10)) == {"GH-1", "GH-2"}
    assert ids_of(index.search(terms, Filters(sector="construction"), 10)) == {"GH-2"}
    assert index.search([], Filters(), 10) == []


def test_exact_reference_with_or_without_source_prefix(index):
    assert ids_of(index.exact(["wtc 2025/3"], Filters())) == {"uk-cf:WTC 2025/3"}
    assert ids_of(index.exact(["uk-tfl-7"], Filters())) == {"UK-TFL-7"}
    assert index.exact(["uk-tfl-7"], Filters(country="ghana")) == []


def test_present_tells_strong_from_body(index):
    s = index.searcher()
    hits = index.matching(Filters(), 10, s)
    found = index.present(index.analyze("kumasi ghana full"), hits, s)
    assert found.strong["kumasi"] == {"GH-2"}  # in the title
    assert found.strong["ghana"] == {"GH-1", "GH-2"}  # in buyer/place
    assert found.strong["full"] == set() and len(found.body["full"]) == 4


def test_present_marks_the_sector_and_handles_many_terms(index):
    """Evidence is decoded from score bits: a hit in both title and buyer must not carry into the next bit,
    the sector takes its own bit, and more terms than one query holds (TERMS_PER_QUERY) spill into a second."""
    s = index.searcher()
    hits = index.matching(Filters(), 10, s)
    filler = [f"zz{i}" for i in range(12)]  # absent words push 'ghana' and 'kumasi' into the second group
    found = index.present(filler + index.analyze("ghana kumasi"), hits, s, sector="construction")
    assert found.strong["ghana"] == {"GH-1", "GH-2"} and found.strong["kumasi"] == {"GH-2"}
    assert found.body["kumasi"] == {"GH-2"} and all(not found.strong[w] and not found.body[w] for w in filler)
    assert found.in_sector == {"GH-2"}
    assert index.present(["ghana"], hits, s).in_sector == set()


def test_resolve_names_the_ids_that_pass_and_their_evidence_without_reading_documents(index):
    s = index.searcher()
    asked = ["uk-cf:WTC 2025/3", "GH-2", "nope", "GH-1"]
    terms = index.analyze("kumasi ghana full")
    found, evidence = index.resolve(Filters(country="ghana"), asked, terms, s, sector="construction")
    assert ids_of(found) == {"GH-1", "GH-2"}
    by_id = {h.id: h for h in found}
    assert by_id["GH-2"].raw == b"" and by_id["GH-2"].card["title"] == "Road rehabilitation in Kumasi"
    same = index.present(terms, found, s, sector="construction")  # the two-query way
    assert (evidence.strong, evidence.body, evidence.in_sector) == (same.strong, same.body, same.in_sector)
    assert {h.id: evidence.of(h.id) for h in found} == {h.id: same.of(h.id) for h in found}
    assert evidence.of("GH-2")[0] == {"kumasi", "ghana"} and evidence.in_sector == {"GH-2"}
    assert ids_of(index.resolve(Filters(), asked, [], s)[0]) == {"uk-cf:WTC 2025/3", "GH-1", "GH-2"}
    with pytest.raises(ValueError, match="unique"):
        index.resolve(Filters(), ["GH-1", "GH-1"], terms, s)


def test_resolve_reads_known_hits_and_spills_extra_terms_into_present(index):
    """Hits already found (BM25, references) get their evidence in the same query and are not returned again;
    terms past what fits beside the id positions take a second query, with the same result."""
    s = index.searcher()
    known = index.exact(["uk-tfl-7"], Filters())
    full = set(ids_of(index.matching(Filters(), 10, s)))  # 'full' is in every body
    # in the one query: the known hit's evidence, and a real term in the 7th slot, just under the sector's bit
    # (3 names: 2 bits of position, 7 x 3 evidence bits, the sector's: bits 0-23)
    terms = [f"zz{i}" for i in range(6)] + ["full"]
    found, evidence = index.resolve(Filters(), ["GH-1", "GH-2"], terms, s, "construction", known)
    assert evidence.body["full"] == full & {"GH-1", "GH-2", "UK-TFL-7"} and evidence.in_sector == {"GH-2"}
    assert evidence.of("UK-TFL-7") == (set(), {"full"})
    filler = [f"zz{i}" for i in range(12)]
    terms = filler + index.analyze("ghana kumasi full")
    found, evidence = index.resolve(Filters(), ["GH-1", "GH-2"], terms, s, "construction", known)
    assert ids_of(found) == {"GH-1", "GH-2"}
    same = index.present(terms, found + known, s, sector="construction")
    assert (evidence.strong, evidence.body, evidence.in_sector) == (same.strong, same.body, same.in_sector)
    assert {h.id: evidence.of(h.id) for h in found + known} == {h.id: same.of(h.id) for h in found + known}
    assert "UK-TFL-7" in evidence.body["full"] and evidence.strong["kumasi"] == {"GH-2"}
    with pytest.raises(ValueError, match="unique"):
        index.resolve(Filters(), ["UK-TFL-7"], terms, s, known=known)


def test_upsert_replaces_and_delete_retires(index):
    index.upsert(["GH-2"], [meta("Bridge repair", country="Ghana", closing_num=20261101)], ["Bridge repair"])
    assert index.num_docs() == 4
    assert ids_of(index.search(index.analyze("rehabilitation"), Filters(), 10)) == set()
    assert index.matching(Filters(ids=["GH-2"]), 1)[0].card["title"] == "Bridge repair"
    assert set(index.expired_ids(20261201)) == {"GH-1", "GH-2"} - {"GH-1"}  # closed before Dec 1; unknown kept
    index.delete_ids(index.expired_ids(20261201))
    assert index.num_docs() == 3 and index.count(Filters(ids=["GH-2"])) == 0
    assert index.missing(["GH-1", "GH-2"]) == ["GH-2"]


def test_facets_count_labels(index):
    facts = index.facets()
    assert facts["documents"] == 4 and facts["country"] == {"Ghana": 2, "United Kingdom": 2}
    assert facts["last_ingest_ts"] == 1_700_000_000


def test_a_second_handle_sees_commits(index, tmp_path):
    reader = LexicalIndex(tmp_path / "lex")
    assert reader.num_docs() == 4
    index.upsert(["NEW-1"], [meta("New notice")], ["New notice"])
    reader.index.reload()
    assert reader.num_docs() == 5
    assert open_index(tmp_path / "lex") is open_index(tmp_path / "lex")


def test_stored_vectors_give_the_cosine_of_the_full_vector(tmp_path):
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(len(NOTICES), 384)).astype(np.float32)
    idx = LexicalIndex(tmp_path / "lex")
    ids = list(NOTICES)
    idx.upsert(ids, [NOTICES[i] for i in ids], [NOTICES[i]["title"] for i in ids], vectors)
    query = rng.normal(size=384).astype(np.float32)
    hits = idx.matching(Filters(), 10)
    got = cosines(query, hits)
    exact = {tid: float(v @ query / np.linalg.norm(v) / np.linalg.norm(query))
             for tid, v in zip(ids, vectors, strict=True)}
    assert set(got) == set(ids)
    assert max(abs(got[t] - exact[t]) for t in ids) < 0.01  # int8, scaled per vector
    assert [h.vec != b"" for h in idx.search(idx.analyze("hospital"), Filters(), 5)] == [True]
    # a notice indexed without its vector has none: the search then asks Chroma for it
    idx.upsert(["GH-1"], [NOTICES["GH-1"]], ["Supply of hospital beds"])
    assert set(cosines(query, idx.matching(Filters(), 10))) == set(ids) - {"GH-1"}
    assert cosines(query[:10], idx.matching(Filters(), 10)) == {}  # another model's dimension: ignored
    assert quantize(np.zeros(4)) == bytes(4)


def test_an_index_of_another_schema_is_refused_until_rebuilt(tmp_path):
    path = tmp_path / "lex" / "tenders"
    path.mkdir(parents=True)
    (path / "tender_schema.json").write_text('{"version": 1}', "utf-8")  # what the previous schema left
    with pytest.raises(RuntimeError, match=r"schema v1, this code needs v\d+: rebuild it"):
        LexicalIndex(path)
    fresh = open_index(path, recreate=True)  # what the rebuild commands open
    fresh.upsert(["GH-1"], [NOTICES["GH-1"]], ["Supply of hospital beds"], [np.ones(4)])
    assert fresh.num_docs() == 1 and LexicalIndex(path).num_docs() == 1
    [aside] = [p for p in path.parent.iterdir() if p.name.startswith("tenders.v1-")]
    assert (aside / "tender_schema.json").read_text("utf-8") == '{"version": 1}'
