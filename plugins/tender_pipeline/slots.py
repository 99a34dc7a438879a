"""Chroma rows as reusable slots, so retiring notices gives their room to new ones and nothing is ever copied.

Chroma 1.5.9 never reuses the HNSW label of a deleted id (``local_hnsw.rs``: each new id takes
``total_elements_added + 1``), so deleting retired notices and adding new ones grows the index files and the
memory without bound; only copying the live set into a fresh collection gave the room back. An upsert of an
id it already holds, however, overwrites that id's vector in place (same label). So the collection's ids
are slots (``s0``, ``s1``, ...), each with one metadata key, ``t``: the tender whose vector it holds, or
``FREE``. Retiring a notice marks its slot free (a metadata update: the HNSW files are not touched) and the
next upsert writes a new notice's vector into it. The collection holds as many slots as the most notices
ever live at once.

kNN asks Chroma for slot ids and distances only: reading each result's ``t`` from Chroma's SQLite more than
doubled Chroma's CPU per search. The lexical index stores each notice's slot number (field ``slot``) and
resolves the nearest slots to notices in the same query that applies the filters (``lexical.evidence``).

``t`` is the authority on which slot holds which tender: the vector and ``t`` are written by one upsert, and
every lookup goes through Chroma's metadata index on (key, string value), a primary-key style read.

A second key, ``s``, is what the ``enrich`` stage reads to skip unchanged notices (content hash, versions,
corrigendum, enrichment source, OCDS release; ``store.state_of``), so that stage needs no lexical index on its
machine. It is recorded only after the lexical index committed the notice (``record``): until then a slot
keeps its notice's previous state (a new notice's is empty), so a run that dies between the two stores is
redone, never skipped as unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

KEY = "t"  # the tender id a slot holds
FREE = "-"  # ... or this: no live notice
STATE = "s"  # what enrich compares (``store.state_of``); "" until the lexical index holds the notice
LOOKUP = 1000  # ids per metadata lookup


def slot_name(n: int) -> str:
    return f"s{n}"


def slot_number(name: str) -> int:
    """The number of a slot id (``s17`` → 17): what the lexical index stores."""
    return int(name[1:])


def held(collection, ids: Sequence[str]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """(slot, metadata) of the slots holding each of ``ids`` (one, normally; more only after a write whose index
    commit was lost)."""
    found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    ids = list(dict.fromkeys(ids))
    for start in range(0, len(ids), LOOKUP):
        part = ids[start:start + LOOKUP]
        got = collection.get(where={KEY: {"$in": part}}, include=["metadatas"])
        for slot, meta in zip(got["ids"], got["metadatas"] or [], strict=True):
            found.setdefault((meta or {}).get(KEY, FREE), []).append((slot, meta or {}))
    return found


def slots_of(collection, ids: Sequence[str]) -> dict[str, list[str]]:
    """The slots holding each of ``ids``."""
    return {tid: [slot for slot, _ in found] for tid, found in held(collection, ids).items()}


def states_of(collection, ids: Sequence[str]) -> dict[str, str]:
    """The recorded state of each of ``ids`` that has one."""
    return {tid: str(found[0][1].get(STATE) or "") for tid, found in held(collection, ids).items()
            if found[0][1].get(STATE)}


def free_slots(collection, count: int) -> list[str]:
    """Up to ``count`` slots no live notice holds."""
    if count <= 0:
        return []
    return list(collection.get(where={KEY: FREE}, limit=count, include=[])["ids"])


def new_slots(collection, count: int) -> list[str]:
    """``count`` slot names the collection does not hold yet, past the end."""
    if count <= 0:  # every notice of the batch had a slot: no count() request
        return []
    out: list[str] = []
    n = collection.count()
    while len(out) < count:
        names = [slot_name(i) for i in range(n, n + count - len(out))]
        held = set(collection.get(ids=names, include=[])["ids"])
        out += [s for s in names if s not in held]
        n += len(names)
    return out


def assign(collection, ids: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """A slot for each of ``ids`` (unique): its own, else a free one, else a new one; the state each keeps until
    ``record`` (its own slot's, else ""); and the extra slots found holding one of them, to be freed (a lost
    index commit made an id take two)."""
    found = held(collection, ids)
    extra = [slot for tid in ids for slot, _ in found.get(tid, [])[1:]]
    lacking = [tid for tid in ids if tid not in found]
    spare = free_slots(collection, len(lacking))
    spare += new_slots(collection, len(lacking) - len(spare))
    given = dict(zip(lacking, spare, strict=True))
    slots = [found[tid][0][0] if tid in found else given[tid] for tid in ids]
    states = [str(found[tid][0][1].get(STATE) or "") if tid in found else "" for tid in ids]
    return slots, states, extra


def write(collection, ids: Sequence[str], vectors: np.ndarray, batch: int,
          progress: Callable[[int], object] | None = None) -> list[str]:
    """Write each notice's vector into its slot, ``batch`` rows per request; returns the slot of each of
    ``ids``, for the lexical index (``progress`` hears each batch's count)."""
    written: list[str] = []
    for start in range(0, len(ids), batch):
        part = list(ids[start:start + batch])
        slots, states, extra = assign(collection, part)
        collection.upsert(ids=slots, embeddings=vectors[start:start + len(part)],
                          metadatas=[{KEY: tid, STATE: state} for tid, state in zip(part, states, strict=True)])
        release_slots(collection, extra)
        written += slots
        if progress:
            progress(len(part))
    return written


def write_at(collection, slots: Sequence[str], ids: Sequence[str], vectors: np.ndarray, batch: int) -> int:
    """Write each notice's vector into the slot named for it (``recover chroma``: the slots the lexical index
    records, so the index needs no rewrite); returns how many were written. The state is left empty until
    ``record``."""
    for start in range(0, len(ids), batch):
        part = list(ids[start:start + batch])
        collection.upsert(ids=list(slots[start:start + batch]), embeddings=vectors[start:start + len(part)],
                          metadatas=[{KEY: tid, STATE: ""} for tid in part])
    return len(ids)


def record(collection, ids: Sequence[str], states: Sequence[str]) -> int:
    """Record each notice's state in its slot, once the lexical index holds it (a slot that no longer holds
    the notice, e.g. retired meanwhile, is left alone); returns how many were recorded."""
    state_of = dict(zip(ids, states, strict=True))
    ids = list(state_of)
    recorded = 0
    for start in range(0, len(ids), LOOKUP):
        found = held(collection, ids[start:start + LOOKUP])
        pairs = [(slot, tid) for tid, slots in found.items() for slot, _ in slots[:1]]
        if pairs:
            collection.update(ids=[slot for slot, _ in pairs],
                              metadatas=[{KEY: tid, STATE: state_of[tid]} for _, tid in pairs])
            recorded += len(pairs)
    return recorded


def release(collection, ids: Sequence[str]) -> int:
    """Mark the slots of these notices free (their vectors stay until a new notice takes the slot)."""
    slots = [s for found in slots_of(collection, ids).values() for s in found]
    release_slots(collection, slots)
    return len(slots)


def release_slots(collection, slots: Sequence[str]) -> None:
    for start in range(0, len(slots), LOOKUP):
        part = list(slots[start:start + LOOKUP])
        collection.update(ids=part, metadatas=[{KEY: FREE, STATE: ""}] * len(part))


def tenders(ids: Sequence[str], metadatas: Sequence[dict[str, Any] | None]) -> list[str | None]:
    """The tender each returned slot holds (None: a free slot)."""
    out: list[str | None] = []
    for meta in metadatas:
        tid = (meta or {}).get(KEY)
        out.append(tid if tid and tid != FREE else None)
    return out


def vectors_of(collection, ids: Sequence[str]) -> dict[str, np.ndarray]:
    """The stored float32 vector of each of these notices that Chroma holds."""
    out: dict[str, np.ndarray] = {}
    ids = list(ids)
    for start in range(0, len(ids), LOOKUP):
        got = collection.get(where={KEY: {"$in": ids[start:start + LOOKUP]}}, include=["metadatas", "embeddings"])
        for tid, vec in zip(tenders(got["ids"], got["metadatas"]), got["embeddings"], strict=True):
            if tid is not None:
                out[tid] = np.asarray(vec, dtype=np.float32)
    return out


def live_count(collection) -> int:
    """Slots holding a notice: all of them but the free ones (an index lookup; at most a day's retirements)."""
    return collection.count() - len(collection.get(where={KEY: FREE}, include=[])["ids"])
