"""Validate an Atom 1.0 document against RFC 4287's MUST rules (the ones a feed reader depends on).

Well-formed XML is not enough: RFC 4287 requires, among others, exactly one
id/title/updated per feed and per entry (4.1.1, 4.1.2), an author on the feed
or on every entry (4.1.1), RFC 3339 timestamps (3.3), IRIs as ids (4.2.6), an
href on every link (4.2.7.1) and, in an entry without content, a
rel="alternate" link (4.1.1.1 / 4.1.2). ``validate`` raises AssertionError
naming the rule broken and returns the parsed feed.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

NS = "http://www.w3.org/2005/Atom"
A = f"{{{NS}}}"
# RFC 3339 date-time (section 5.6)
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _one(parent: ET.Element, tag: str, where: str) -> ET.Element:
    found = parent.findall(A + tag)
    assert len(found) == 1, f"{where} must have exactly one atom:{tag}, has {len(found)}"
    return found[0]


def _text(parent: ET.Element, tag: str, where: str) -> str:
    el = _one(parent, tag, where)
    if tag == "title":
        assert el.get("type", "text") in {"text", "html", "xhtml"}, f"{where} atom:title type {el.get('type')!r}"
    return el.text or ""


def _iri(value: str, where: str) -> None:
    parts = urlsplit(value)
    assert parts.scheme and (parts.netloc or parts.path), f"{where}: {value!r} is not an absolute IRI"


def _links(parent: ET.Element, where: str) -> list[ET.Element]:
    links = parent.findall(A + "link")
    for link in links:
        assert link.get("href"), f"{where}: atom:link without href"
        _iri(link.get("href"), f"{where} link href")
    alternates = [(link.get("type"), link.get("hreflang")) for link in links
                  if link.get("rel", "alternate") == "alternate"]
    assert len(alternates) == len(set(alternates)), f"{where}: two alternate links with the same type and hreflang"
    return links


def validate(body: bytes) -> ET.Element:
    feed = ET.fromstring(body)
    assert feed.tag == A + "feed", f"root element is {feed.tag}, not atom:feed"
    _iri(_text(feed, "id", "feed"), "feed id")
    _text(feed, "title", "feed")
    assert DATE_TIME.match(_text(feed, "updated", "feed")), "feed updated is not an RFC 3339 date-time"
    _links(feed, "feed")
    feed_author = feed.findall(A + "author")
    for author in feed_author:
        _one(author, "name", "feed author")
    entry_ids = []
    for i, entry in enumerate(feed.findall(A + "entry")):
        where = f"entry {i}"
        entry_id = _text(entry, "id", where)
        _iri(entry_id, f"{where} id")
        entry_ids.append(entry_id)
        _text(entry, "title", where)
        assert DATE_TIME.match(_text(entry, "updated", where)), f"{where} updated is not an RFC 3339 date-time"
        assert feed_author or entry.findall(A + "author"), f"{where} has no author and neither has the feed"
        links = _links(entry, where)
        if not entry.findall(A + "content"):
            assert any(link.get("rel", "alternate") == "alternate" for link in links), \
                f"{where} has no atom:content, so it must have a rel='alternate' link"
        assert len(entry.findall(A + "summary")) <= 1, f"{where} has more than one atom:summary"
        for category in entry.findall(A + "category"):
            assert category.get("term"), f"{where}: atom:category without term"
    assert len(entry_ids) == len(set(entry_ids)), "two entries share an atom:id"
    return feed
