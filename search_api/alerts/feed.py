"""An Atom 1.0 feed (RFC 4287) of a saved search's matches, newest first.

Built with ElementTree, so every value is escaped; entry ids are stable
``urn:`` ids per (saved search, tender, version), so a feed reader shows a
corrigendum as a new entry ("Update: ...") and never repeats one. Every
entry links (rel="alternate", which RFC 4287 requires of an entry without
content) to the notice's source URL, or to its page here when it has none.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote
from xml.etree import ElementTree as ET

ATOM = "http://www.w3.org/2005/Atom"
ET.register_namespace("", ATOM)


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    if text is not None:
        el.text = text
    return el


def atom(search_id: str, name: str, created_at: datetime, self_url: str, matches: list, base_url: str) -> bytes:
    """The feed document; ``matches`` are AlertMatch rows (newest first); ``base_url`` is this site's root."""
    feed = ET.Element(f"{{{ATOM}}}feed")
    _el(feed, "id", f"urn:tender-search:saved-search:{search_id}")
    _el(feed, "title", f"Tender alerts: {name}")
    _el(feed, "updated", _iso(matches[0].matched_at if matches else created_at))
    _el(feed, "link", rel="self", href=self_url, type="application/atom+xml")
    author = _el(feed, "author")
    _el(author, "name", "Tender search")
    for m in matches:
        card = m.card or {}
        entry = _el(feed, "entry")
        _el(entry, "id", f"urn:tender-search:alert:{search_id}:{m.tender_id}:{m.version}")
        title = card.get("title") or m.tender_id
        _el(entry, "title", f"Update: {title}" if m.kind == "update" else title)
        _el(entry, "updated", _iso(m.matched_at))
        url = card.get("url") or ""
        if not url.startswith(("http://", "https://")):
            url = f"{base_url.rstrip('/')}/t/{quote(m.tender_id, safe='/')}"
        _el(entry, "link", rel="alternate", href=url)
        _el(entry, "category", term=m.kind)
        facts = [card.get("buyer"), card.get("country"),
                 f"closes {card['closing_date']}" if card.get("closing_date") else None]
        summary = " · ".join(f for f in facts if f)
        if card.get("summary"):
            summary = f"{card['summary']}\n{summary}" if summary else card["summary"]
        _el(entry, "summary", summary or title)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
