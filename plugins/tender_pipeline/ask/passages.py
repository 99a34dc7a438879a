"""A stored notice as numbered passages: what "Ask about this tender" may answer from.

The passages are the notice's own stored fields written as short labelled
sentences (dates, value, buyer, place, source), followed by the sentences of
the stored document (title, summary, description). Nothing else goes in, so an
answer built from passages can only quote this notice. Each passage carries
its character offsets in ``Notice.text`` (the passages joined by newlines),
which is what an answer's positions refer to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=[A-Z0-9(\"'])")
_ABBREVIATION = re.compile(r"\b(?:no|nr|ref|e\.g|i\.e|etc|approx|incl|vs|mr|mrs|ms|dr|st|co|ltd|pty|rs|[a-z])\.$",
                           re.I)  # "No. 4", "Ms A. Person": not sentence ends
# lines of documents.document_text that repeat fields we already write as facts
_DOC_FIELD_LINES = ("Sector:", "Buyer:", "Location:", "Keywords:", "Reference:")
MAX_PASSAGE_CHARS = 600


@dataclass(frozen=True)
class Passage:
    index: int
    text: str
    field: str  # which stored field it comes from: closing_date, value, description, ...
    start: int
    end: int


@dataclass(frozen=True)
class Notice:
    tender_id: str
    passages: list[Passage]

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.passages)


def _long_date(iso: str) -> str:
    try:
        d = date.fromisoformat(iso)
    except (TypeError, ValueError):
        return iso
    return f"{d.day} {d.strftime('%B %Y')} ({iso})"


def _money(amount: float, currency: str) -> str:
    return f"{currency} {amount:,.2f}".strip() if amount % 1 else f"{currency} {amount:,.0f}".strip()


def split_sentences(text: str) -> list[str]:
    """Sentences of a text; lines are kept apart, abbreviations like "No." do not end one."""
    out: list[str] = []
    for line in text.splitlines():
        line = " ".join(line.split())
        if not line:
            continue
        pieces = _SENTENCE_END.split(line)
        merged: list[str] = []
        for piece in pieces:
            if merged and _ABBREVIATION.search(merged[-1]):
                merged[-1] = f"{merged[-1]} {piece}"
            else:
                merged.append(piece)
        for sentence in merged:
            while len(sentence) > MAX_PASSAGE_CHARS:  # very long run-on text: cut at a space
                cut = sentence.rfind(" ", 0, MAX_PASSAGE_CHARS)
                cut = cut if cut > 0 else MAX_PASSAGE_CHARS
                out.append(sentence[:cut])
                sentence = sentence[cut:].strip()
            if sentence:
                out.append(sentence)
    return out


def _facts(tender_id: str, meta: dict) -> list[tuple[str, str]]:
    """(field, sentence) for the stored fields a bidder asks about."""
    facts: list[tuple[str, str]] = [("tender_id", f"Tender reference: {tender_id}.")]
    if meta.get("buyer"):
        facts.append(("buyer", f"Buyer (procuring entity): {meta['buyer']}."))
    place = ", ".join(dict.fromkeys(p for p in (meta.get("city"), meta.get("region"), meta.get("country")) if p))
    if place:
        facts.append(("place", f"Location: {place}."))
    if meta.get("published_date"):
        facts.append(("published_date", f"Published on {_long_date(meta['published_date'])}."))
    if meta.get("closing_date"):
        facts.append(("closing_date", f"Closing date: {_long_date(meta['closing_date'])}, "
                                      "the deadline for submission of bids."))
    else:
        facts.append(("closing_date", "Closing date: not given in the notice."))
    amount = float(meta.get("value_amount", -1) if meta.get("value_amount") is not None else -1)
    if amount >= 0:
        text = f"Estimated value: {_money(amount, meta.get('currency', ''))}"
        report = float(meta.get("value_report", -1) if meta.get("value_report") is not None else -1)
        if report >= 0 and meta.get("report_currency") and meta.get("report_currency") != meta.get("currency"):
            text += f" (about {_money(round(report), meta['report_currency'])})"
        facts.append(("value", text + "."))
    kind = " ".join(v for v in (meta.get("procurement_type"), meta.get("notice_type")) if v)
    if kind or meta.get("sector"):
        facts.append(("type", f"Type: {kind or 'not given'}; sector: {meta.get('sector') or 'not given'}."))
    if meta.get("cpv_codes"):
        facts.append(("cpv_codes", f"CPV codes: {meta['cpv_codes']}."))
    if meta.get("url"):
        facts.append(("url", f"Source notice: {meta['url']}"))
    return facts


def build_notice(tender_id: str, document: str, meta: dict) -> Notice:
    """The notice's passages from its stored document and metadata."""
    items = _facts(tender_id, meta or {})
    for line in (document or "").splitlines():
        if line.startswith(_DOC_FIELD_LINES):
            continue
        items.extend(("text", s) for s in split_sentences(line))
    passages: list[Passage] = []
    offset = 0
    seen: set[str] = set()
    for field, text in items:
        if text in seen:
            continue
        seen.add(text)
        passages.append(Passage(len(passages), text, field, offset, offset + len(text)))
        offset += len(text) + 1
    return Notice(tender_id, passages)
