"""Tender identity: content-derived ids, amendment references and linking amendments.

Ids are ``<profile id_prefix><native id>``. A file without a usable native id
gets a **content-derived id**: ``<id_prefix>h-`` + the first 16 hex digits of
SHA-1 over the profile's ``content_id`` columns, each cleaned (HTML entities,
whitespace) and lower-cased, joined by U+001F. The same notice re-sent with the
same values gets the same id in every batch; a change to any of those columns
makes a new one (that is the price of a source that publishes no id).

An **amendment** (corrigendum, addendum, erratum, "amended", ...) that carries
its own id but cites another notice — "ADDENDUM TO RFP No. PPP01/2024-25 ..." —
is linked to the notice it amends:

- within a batch (``link_in_batch``, in validate): when exactly one notice of
  the same source and buyer has an id ending in the cited reference (after a
  non-alphanumeric), e.g. ``za-muni:Example LM:BID 12/2026`` for "BID 12/2026";
- against the index (``link_to_index``, in enrich): when the source prefix, or
  source + scope prefix, plus the reference is an indexed id, the amendment's
  own id is not indexed yet, and no other record of the batch has that id.

The amendment then takes the original's id (one search result), keeps the
original's values where its own are blank (in a batch), and the write counts as
a new version. Only references that look like ids (a digit, 4+ characters,
after "no", "number", "ref", "bid", "tender", "rfq", "rfp", "rfb") are matched.
Sources whose amendments share the tender's id (PPRA's Corrigendum statuses)
need no linking: the same id is simply updated.

**Versions**: the Chroma metadata ``versions`` is 1 on insert and +1 each time a
write changes the content hash; rewriting the same content (rerun, ``--force``)
keeps it. ``is_corrigendum`` stays true once a tender has been amended.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from typing import Any

from tender_pipeline.normalize import clean_text

CONTENT_ID_MARK = "h-"
AMENDMENT = re.compile(
    r"\b(corrigend\w*|addend\w*|amendment|amended|erratum|errata)\b", re.IGNORECASE
)
_REFERENCE = re.compile(
    r"\b(?:no|nr|number|ref(?:erence)?|bid|tender|rfq|rfp|rfb)\b\.?\s*[:#]?\s*(?:no\.?|nr\.?)?\s*[:#]?\s*"
    r"([A-Z0-9][A-Z0-9/\-.]*\d[A-Z0-9/\-.]*)",
    re.IGNORECASE,
)


def content_id(prefix: str, values: Iterable[Any]) -> str:
    """``<prefix>h-<16 hex>`` from the cleaned, lower-cased values (see module docstring)."""
    blob = "\x1f".join(clean_text(v).lower() for v in values)
    return f"{prefix}{CONTENT_ID_MARK}{hashlib.sha1(blob.encode('utf-8')).hexdigest()[:16]}"


def is_amendment(record: dict[str, Any]) -> bool:
    """True when the notice says it amends another (title or notice type)."""
    text = f"{record.get('title', '')} {record.get('notice_type', '')}"
    return bool(AMENDMENT.search(text))


def cited_references(title: str) -> list[str]:
    """Reference numbers an amendment's title cites, in order."""
    refs = [m.rstrip(".-/") for m in _REFERENCE.findall(title or "")]
    return [r for r in dict.fromkeys(refs) if len(r) >= 4]


def _prefixes(tender_id: str) -> list[str]:
    """Prefixes an amendment's cited reference may sit under: the source (``za-muni:``) and
    the source plus scope (``za-muni:Cape Town:``)."""
    first = tender_id[: tender_id.find(":") + 1] if ":" in tender_id else ""
    if not first or tender_id.startswith(first + CONTENT_ID_MARK):
        return [first]
    second = tender_id.find(":", len(first))
    return list(dict.fromkeys([first, tender_id[: second + 1]] if second > 0 else [first]))


def amended_id(record: dict[str, Any], exists: Callable[[list[str]], set[str]]) -> str | None:
    """The id of the notice this amendment cites, when ``exists`` knows it; else None."""
    if not is_amendment(record):
        return None
    own = record["tender_id"]
    candidates = [f"{prefix}{ref}" for ref in cited_references(record.get("title", ""))
                  for prefix in _prefixes(own)]
    candidates = [c for c in dict.fromkeys(candidates) if c.lower() != own.lower()]
    if not candidates:
        return None
    found = exists(candidates)
    return next((c for c in candidates if c in found), None)


def _same_source_and_buyer(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (_prefixes(a["tender_id"])[0] == _prefixes(b["tender_id"])[0]
            and a.get("buyer", "").lower() == b.get("buyer", "").lower())


def _cited_in_batch(record: dict[str, Any], items: list[dict], live: set[int]) -> int | None:
    """Position of the one batch notice (same source and buyer) whose id ends in a cited reference."""
    if not is_amendment(record):
        return None
    for ref in cited_references(record.get("title", "")):
        ending = re.compile(r"(?:^|[^a-z0-9])" + re.escape(ref.lower()) + "$")
        hits = [pos for pos in live
                if ending.search(items[pos]["record"]["tender_id"].lower())
                and items[pos]["record"]["tender_id"] != record["tender_id"]
                and _same_source_and_buyer(items[pos]["record"], record)]
        if len(hits) == 1:
            return hits[0]
    return None


def merge_amendment(original: dict[str, Any], amendment: dict[str, Any]) -> dict[str, Any]:
    """The amendment's values, with the original's filling what the amendment leaves blank."""
    merged = dict(original)
    for key, value in amendment.items():
        if value not in ("", None, []):
            merged[key] = value
    merged["tender_id"] = original["tender_id"]
    return merged


def link_in_batch(items: list[dict]) -> tuple[list[dict], list[dict]]:
    """Link amendments to originals in the same validated batch.

    ``items`` are validate's ``{"file", "row", "record"}`` dicts (ids unique).
    In a batch the cited reference is matched as the end of an id of the same
    source and buyer (so scoped ids like ``za-muni:<municipality>:<number>``
    match too), and only when exactly one notice fits. Returns the new list —
    each linked amendment merged into its original's id, at the amendment's
    position — and the superseded originals (counted as duplicates of their file).
    """
    live = set(range(len(items)))
    superseded: list[int] = []
    for pos, item in enumerate(items):
        if pos not in live:
            continue
        orig_pos = _cited_in_batch(item["record"], items, live)  # never itself: it skips its own id
        if orig_pos is None:
            continue
        item["record"] = merge_amendment(items[orig_pos]["record"], item["record"])
        live.discard(orig_pos)
        superseded.append(orig_pos)
    kept = [item for pos, item in enumerate(items) if pos in live]
    return kept, [items[pos] for pos in sorted(superseded)]


def link_to_index(records: list, exists: Callable[[list[str]], set[str]]) -> list:
    """Give a new amendment the id of the indexed notice it cites (``TenderRecord`` list).

    Only when the amendment's own id is not indexed yet and no other record of
    the batch already carries the cited id, so ids stay unique within a batch.
    """
    batch_ids = {r.tender_id for r in records}
    amendments = [(i, r) for i, r in enumerate(records) if is_amendment(r.model_dump())]
    if not amendments:
        return records
    already = exists([r.tender_id for _, r in amendments])
    out = list(records)
    for i, record in amendments:
        if record.tender_id in already:
            continue
        target = amended_id(record.model_dump(), exists)
        if target and target not in batch_ids:
            out[i] = record.model_copy(update={"tender_id": target})
            batch_ids.add(target)
    return out


def next_version(previous: dict | None, content_hash: str) -> int:
    """Version number of a record about to be written: 1 when new, +1 when its content changed.

    Re-writing unchanged content (a rerun, ``--force``) keeps the number, so counting is idempotent.
    """
    if not previous:
        return 1
    versions = int(previous.get("versions") or 1)
    return versions if previous.get("content_hash") == content_hash else versions + 1


def with_versions(metadata: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """Chroma metadata plus ``versions``; ``is_corrigendum`` stays set once a tender was amended."""
    metadata["versions"] = int(row.get("versions") or 1)
    if row.get("released"):  # an OCDS notice: when its latest release was published (UTC, sortable)
        metadata["released"] = row["released"]
    metadata["is_corrigendum"] = bool(metadata.get("is_corrigendum") or row.get("was_corrigendum"))
    return metadata
