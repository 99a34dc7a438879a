"""What the stores hold for each notice, read the way the product reads it: cards and texts from the lexical
index (Chroma holds ids and vectors only)."""

from __future__ import annotations

from tender_pipeline.lexical import Filters, open_index


def notices(settings) -> dict[str, tuple[dict, str]]:
    """{id: (card, embedded text)} of every notice the lexical index holds."""
    index = open_index(settings.lexical_dir)
    index.index.reload()
    ids = [h.id for h in index.matching(Filters(), max(index.num_docs(), 1))]
    return {tid: (card, text) for tid, (card, text, _) in index.notices(ids).items()}


def cards(settings) -> dict[str, dict]:
    """{id: card} of every notice the lexical index holds."""
    return {tid: card for tid, (card, _) in notices(settings).items()}


def chroma_ids(collection) -> list[str]:
    """The tender ids Chroma holds vectors for: its rows are slots, each naming its tender (free ones left out),
    one entry per slot, so a tender held twice shows twice."""
    from tender_pipeline import slots

    got = collection.get(include=["metadatas"])
    return [t for t in slots.tenders(got["ids"], got["metadatas"]) if t is not None]
