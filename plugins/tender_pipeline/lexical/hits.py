"""A notice found in the index, with its card read only when asked for."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import tantivy


@dataclass
class Hit:
    """One notice found in the index. The stored card is read and parsed only when asked for: most
    candidates of a search are ranked without it, and only the page shown needs it."""

    id: str
    score: float
    raw: bytes = b""
    vec: bytes = b""  # int8 vector (``quantize``) when the document was read and holds one
    addr: tuple[int, int] = (0, 0)  # (segment, doc) in the searcher it came from
    slot: int | None = None  # its Chroma slot, when the document was read and records one
    searcher: Any = field(default=None, repr=False, compare=False)  # to read the card later
    _card: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def card(self) -> dict[str, Any]:
        if self._card is None:
            if not self.raw and self.searcher is not None:
                raw = self.searcher.doc(tantivy.DocAddress(*self.addr)).get_first("card")
                self.raw = bytes(raw) if raw else b""
            self._card = json.loads(self.raw) if self.raw else {}
        return self._card


UNREAD = "\x00"  # the id of a hit whose document is not read yet starts with this (``unread``)


def unread(s: tantivy.Searcher, addr, slot: int | None = None) -> Hit:
    """A hit known by its address only: its id, card and vector are read when it is shown (``read``). kNN's
    candidates are ranked by their slot's distance, so most are never read (a read costs ~20 µs)."""
    return Hit(id=f"{UNREAD}{addr.segment_ord}:{addr.doc}", score=0.0, addr=(addr.segment_ord, addr.doc),
               searcher=s, slot=slot)


def read(hit: Hit) -> Hit:
    """The hit with its document read (itself when it was read already)."""
    if not hit.id.startswith(UNREAD):
        return hit
    return hit_at(hit.searcher, hit.score, tantivy.DocAddress(*hit.addr))


def hit_at(s: tantivy.Searcher, score: float, addr) -> Hit:
    """The hit for a document address of ``s``, with its stored card and vector."""
    doc = s.doc(addr)
    raw, vec, slot = doc.get_first("card"), doc.get_first("vec"), doc.get_first("slot")
    return Hit(id=str(doc.get_first("id")), score=float(score), raw=bytes(raw) if raw else b"",
               vec=bytes(vec) if vec else b"", addr=(addr.segment_ord, addr.doc), searcher=s,
               slot=None if slot is None else int(slot))
