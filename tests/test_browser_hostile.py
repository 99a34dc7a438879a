"""Hostile text in notices reaches the web page as text: `<script>` titles in headless Chromium, under the CSP."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from search_api.settings import ApiSettings
from tender_pipeline import pipeline
from tender_pipeline.lexical import open_index
from tender_pipeline.settings import Settings
from tests.services import serve_ready
from tests.test_browser import need_chromium, page  # noqa: F401 - the shared page fixture (fails on any script error)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
HOSTILE = [
    ("XSS-1", "<script>window.__xss = 1</script>Road works in Accra", "<b>Ministry</b> of Roads"),
    ("XSS-2", '<img src=x onerror="window.__xss = 2">Road resurfacing Kumasi', '<svg onload="window.__xss=3">'),
    ("XSS-3", "Road markings \"><script>window.__xss=4</script>", "javascript:alert(1)"),
]


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory, chroma):
    need_chromium()
    base = tmp_path_factory.mktemp("hostile")
    batch = base / "hostile.csv"
    with batch.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["tender_id", "title", "buyer", "country", "url"])
        for tid, title, buyer in HOSTILE:
            writer.writerow([tid, title, buyer, "Ghana", "javascript:window.__xss=5"])
    host, port = chroma
    where = {"chroma_host": host, "chroma_port": port, "tender_collection": "hostile_titles"}
    summary = pipeline.run_all(Settings(**where, staging_uri=str(base / "staging"), embed_backend="local",
                                        enrich_backend="local"), "hostile", source=str(batch))
    assert summary["upserted"] == len(HOSTILE)
    # Ingest already strips tags (normalize.clean_text); the page must be safe on its own, so the stored
    # titles and buyers are set back to the raw markup, as another writer or an older version could leave them.
    index = open_index(Settings(**where).lexical_dir)  # the cards live in the lexical index
    got = index.notices([h[0] for h in HOSTILE])
    assert all("<" not in card["title"] for card, _, _ in got.values())  # the first layer
    raw = {tid: (title, buyer) for tid, title, buyer in HOSTILE}
    ids = list(got)
    index.upsert(ids, [{**got[i][0], "title": raw[i][0], "buyer": raw[i][1]} for i in ids], [got[i][1] for i in ids],
                 [np.frombuffer(got[i][2], dtype=np.int8).astype(np.float32) for i in ids])
    settings = ApiSettings(**where, feedback_path=str(base / "feedback.jsonl"), embed_backend="local")
    with serve_ready(settings) as url:
        yield url


def test_script_and_markup_in_notices_render_as_text(hostile_site, page):  # noqa: F811
    # search page: cards come from the lexical index, here the raw markup, which must show as text
    page.goto(hostile_site + "/?open_only=false")  # these notices give no closing date
    page.get_by_label("Search tenders").fill("road")
    page.get_by_role("button", name="Search", exact=True).click()
    cards = page.locator("#result-list .card")
    cards.first.wait_for()
    assert cards.count() == len(HOSTILE)
    assert "<script>window.__xss = 1</script>Road works in Accra" in page.locator("#result-list").inner_text()
    for selector in ("script", "img", "b", "[onload]", "[onerror]", ".title svg", ".buyer svg"):
        assert page.locator(f"#result-list {selector}").count() == 0, selector  # (the thumbs are our own svgs)
    for link in page.locator("#result-list .title a").all():  # a javascript: URL is never a live link
        assert not (link.get_attribute("href") or "").lower().startswith("javascript:")

    # tender page: rendered from the same cards, the raw markup again shown as text
    for tid, title, buyer in HOSTILE[:2]:
        page.goto(f"{hostile_site}/t/{tid}")
        assert page.locator("h2.detail-title").inner_text() == title
        assert page.locator("p.buyer").first.inner_text() == buyer
        assert page.locator("main script, main img, main [onload], main [onerror], main b").count() == 0
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None
