"""The web page in headless Chromium (Debian's /usr/bin/chromium via Playwright; nothing downloaded)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from search_api.settings import ApiSettings
from tests.batches import write_rows
from tests.services import serve_ready

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SAMPLE = Path(__file__).parent / "fixtures" / "sample_tenders.csv"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def need_chromium() -> None:
    """Skip without Debian's chromium; CI must not pass by skipping, so there it fails."""
    if not Path(CHROMIUM).exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "chromium is not installed (apt-get install -y chromium, or `make test` as root)")


@pytest.fixture(scope="module")
def site(tmp_path_factory, indexed_sample):
    need_chromium()
    base = tmp_path_factory.mktemp("browser")
    settings = ApiSettings(**indexed_sample, feedback_path=str(base / "feedback.jsonl"), embed_backend="local")
    with serve_ready(settings) as url:
        yield url, Path(settings.feedback_path)


@pytest.fixture
def page(tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        # Playwright's string predicates (wait_for_function) are evaluated with eval(), which the page's
        # CSP forbids; the CSP itself is exercised in test_browser_hostile.py.
        context = browser.new_context(viewport={"width": 1100, "height": 1300}, bypass_csp=True)
        pg = context.new_page()
        script_errors: list[str] = []
        failed_loads: list[str] = []
        pg.on("pageerror", lambda exc: script_errors.append(str(exc)))
        pg.on("console", lambda msg: (failed_loads if "Failed to load resource" in msg.text else script_errors
                                      ).append(msg.text) if msg.type == "error" else None)
        pg.failed_loads = failed_loads  # tests that expect no failed request check this
        yield pg
        browser.close()
        assert not script_errors, script_errors


def test_search_shows_cards_and_thumbs_up_records_feedback(site, page, tmp_path):
    url, feedback = site
    page.goto(url + "/")
    assert page.title() == "Tender search"
    page.wait_for_function("document.querySelector('#country').options.length > 1")  # facets from /stats
    page.get_by_label("Include closed notices").check()  # the sample's closing dates are fixed: most have passed
    page.get_by_label("Search tenders").fill("supply of hospital beds")
    page.get_by_role("button", name="Search", exact=True).click()
    cards = page.locator("#result-list .card")
    cards.first.wait_for()
    assert cards.count() >= 5
    first = cards.first
    title = first.locator(".title a")
    assert "hospital beds" in title.inner_text().lower()
    assert title.get_attribute("href") == "/t/" + first.get_attribute("data-id")  # the tender's own page
    assert first.locator("a.source").get_attribute("href").startswith("https://tenders.example.org/")
    assert "closes in" in first.locator(".closing").inner_text() or "closed" in first.locator(".closing").inner_text()
    assert "match" in first.locator(".score").inner_text()
    assert "q=supply+of+hospital+beds" in page.url and "open_only=false" in page.url  # the search is shareable
    before = feedback.read_text().count("\n") if feedback.exists() else 0
    first.get_by_role("button", name="Relevant", exact=True).click()
    page.wait_for_function("document.querySelector('.card .thanks').textContent.startsWith('Thanks')")
    assert first.get_by_role("button", name="Relevant", exact=True).get_attribute("aria-pressed") == "true"
    lines = feedback.read_text().splitlines()
    assert len(lines) == before + 1
    record = json.loads(lines[-1])
    assert record["rating"] == 1 and record["query"] == "supply of hospital beds" and record["position"] == 0
    assert record["result_id"] == first.get_attribute("data-id")
    page.screenshot(path=str(tmp_path / "results.png"), full_page=False)
    first_page = cards.count()
    page.get_by_role("button", name="More results").click()
    page.wait_for_function(f"document.querySelectorAll('#result-list .card').length > {first_page}")
    ids = page.eval_on_selector_all("#result-list .card", "cards => cards.map(c => c.dataset.id)")
    assert len(ids) == len(set(ids)) == 2 * first_page  # the next page, no repeats
    assert page.failed_loads == []
    assert (tmp_path / "results.png").stat().st_size > 10_000


def test_filters_empty_state_and_error_state(site, page, tmp_path):
    url, _ = site
    page.goto(url + "/?q=roads&country=Ghana&open_only=false")
    page.locator("#result-list .card").first.wait_for()
    assert page.locator("#country").input_value() == "Ghana"
    places = page.locator("#result-list .card .place").all_inner_texts()
    assert places and all("Ghana" in p for p in places)
    page.get_by_label("Buyer").fill("no such buyer anywhere")
    page.get_by_label("Buyer").press("Enter")
    page.locator("#empty").wait_for(state="visible")
    assert page.locator("#result-list .card").count() == 0
    assert not page.locator("#more").is_visible()
    page.screenshot(path=str(tmp_path / "empty.png"))
    page.goto(url + "/?q=roads&closing_after=2027-02-01&closing_before=2026-01-01")  # server rejects: 422
    page.locator("#error").wait_for(state="visible")
    assert "closing_after" in page.locator("#error-text").inner_text()


def test_mobile_layout_has_no_horizontal_scroll(site, page, tmp_path):
    url, _ = site
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(url + "/?q=NHA&open_only=false")
    page.locator("#result-list .card").first.wait_for()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert "National Highway Authority" in page.locator("#result-list .card .buyer").first.inner_text()
    page.screenshot(path=str(tmp_path / "mobile.png"))


def test_open_a_result_and_ask_for_the_closing_date(site, page, tmp_path):
    """Search → open a result → ask "what is the closing date?" → the date and its sentence are shown."""
    import csv
    from datetime import date

    url, _ = site
    with SAMPLE.open(newline="", encoding="utf-8") as fh:
        rows = {r["tender_id"]: r for r in csv.DictReader(fh)}
    page.goto(url + "/?open_only=false")
    page.get_by_label("Search tenders").fill("solar street lights")
    page.get_by_role("button", name="Search", exact=True).click()
    first = page.locator("#result-list .card").first
    first.wait_for()
    value = first.locator(".value").inner_text()
    tender_id = first.get_attribute("data-id")
    row = rows[tender_id]
    if row["value_amount"] and row["currency"] != "USD":
        assert "≈" in value  # the original amount and its reporting-currency value
    page.screenshot(path=str(tmp_path / "1-results.png"))
    with page.expect_navigation():
        first.locator(".title a").click()
    assert page.url.endswith("/t/" + tender_id)
    assert page.locator("h2.detail-title").inner_text() == row["title"]
    assert page.locator("#source-link").get_attribute("href") == row["url"]
    page.screenshot(path=str(tmp_path / "2-tender.png"), full_page=True)

    page.get_by_label("Your question about this tender").fill("what is the closing date?")
    with page.expect_navigation():
        page.get_by_role("button", name="Ask", exact=True).click()
    answer = page.locator("#answer")
    answer.wait_for()
    closing = date.fromisoformat(row["closing_date"])
    long_date = f"{closing.day} {closing.strftime('%B %Y')}"
    assert long_date in answer.locator(".answer-text").inner_text()
    support = answer.locator(".support li").first.inner_text()
    assert long_date in support and "passage" in support  # the supporting sentence and its position
    assert page.get_by_label("Your question about this tender").input_value() == "what is the closing date?"
    answer.scroll_into_view_if_needed()
    page.screenshot(path=str(tmp_path / "3-answer.png"), full_page=True)
    similar = page.locator("ul.similar a")
    assert similar.count() >= 1
    assert page.failed_loads == []
    for name in ("1-results.png", "2-tender.png", "3-answer.png"):
        assert (tmp_path / name).stat().st_size > 10_000


def test_save_this_search_lists_and_deletes_it(site, page):
    import httpx

    url, _ = site
    page.goto(url + "/?q=solar+street+lights&country=India&open_only=false")
    page.locator("#result-list .card").first.wait_for()
    page.locator("#saved summary").click()
    page.get_by_label("Name").fill("Solar in India")
    page.get_by_role("button", name="Save this search").click()
    saved = page.locator("#saved-list li")
    saved.first.wait_for()
    assert "Solar in India" in saved.first.inner_text() and "country: India" in saved.first.inner_text()
    token = page.evaluate("localStorage.getItem('tender-owner-token')")
    mine = httpx.get(f"{url}/saved-searches", headers={"Authorization": f"Bearer {token}"}).json()["items"]
    assert [(s["name"], s["params"]) for s in mine] == [("Solar in India", {"q": "solar street lights",
                                                                             "country": "India"})]
    feed = httpx.get(url + saved.first.locator("a").get_attribute("href"))
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("application/atom+xml")
    page.reload()  # the list comes back from the token kept in localStorage
    page.wait_for_function("document.querySelector('#saved-count').textContent === '1'")
    page.locator("#saved summary").click()
    page.get_by_role("button", name="Delete saved search Solar in India").click()
    page.wait_for_function("document.querySelectorAll('#saved-list li').length === 0")
    assert httpx.get(f"{url}/saved-searches", headers={"Authorization": f"Bearer {token}"}).json()["items"] == []
    assert page.failed_loads == []


@pytest.fixture(scope="module")
def dated_site(tmp_path_factory, chroma):
    """A few notices closing a month from today and a month ago (dates relative to the day the test runs)."""
    from datetime import date, timedelta

    from tender_pipeline import pipeline
    from tender_pipeline.settings import Settings

    need_chromium()
    base = tmp_path_factory.mktemp("dated")
    soon, gone = date.today() + timedelta(days=30), date.today() - timedelta(days=30)
    rows = [("OPEN-1", "Borehole drilling and hand pump installation", "District Assembly", soon),
            ("OPEN-2", "Drilling of production boreholes for rural water supply", "District Assembly", soon),
            ("SHUT-1", "Borehole drilling and rehabilitation of wells", "District Assembly", gone),
            ("SHUT-2", "Drilling of monitoring boreholes", "District Assembly", gone),
            ("SHUT-3", "Burial of unclaimed bodies (pauper burials)", "Municipal Council", gone)]
    batch = write_rows(base / "dated.csv", [{"tender_id": tid, "title": title, "buyer": buyer, "country": "Ghana",
                                             "closing_date": closing.isoformat()}
                                            for tid, title, buyer, closing in rows])
    host, port = chroma
    where = {"chroma_host": host, "chroma_port": port, "tender_collection": "dated_notices"}
    summary = pipeline.run_all(Settings(**where, staging_uri=str(base / "staging"), embed_backend="local",
                                        enrich_backend="local"), "dated", source=str(batch))
    assert summary["upserted"] == len(rows)
    settings = ApiSettings(**where, feedback_path=str(base / "feedback.jsonl"), embed_backend="local")
    with serve_ready(settings) as url:
        yield url


def shown(page) -> list[str]:
    return page.eval_on_selector_all("#result-list .card", "cards => cards.map(c => c.dataset.id)")


def test_open_notices_by_default_and_closed_ones_on_request(dated_site, page):
    import httpx

    page.goto(dated_site + "/")
    control = page.get_by_label("Include closed notices")
    assert control.is_visible() and not control.is_checked()  # outside the folded filters
    page.get_by_label("Search tenders").fill("borehole drilling")
    page.get_by_role("button", name="Search", exact=True).click()
    page.locator("#result-list .card").first.wait_for()
    assert sorted(shown(page)) == ["OPEN-1", "OPEN-2"]
    assert all("closes in" in t for t in page.locator("#result-list .closing").all_inner_texts())
    assert "open_only=true" in page.url

    control.check()  # the search runs again with closed notices (the nearest vectors: all five notices)
    page.wait_for_function("document.querySelectorAll('#result-list .card').length === 5")
    assert {"SHUT-1", "SHUT-2"} <= set(shown(page)[:4]) and shown(page)[-1] == "SHUT-3"
    assert any("closed" in t for t in page.locator("#result-list .closing").all_inner_texts())
    assert "open_only=false" in page.url
    page.reload()  # the choice is part of the shareable URL
    page.wait_for_function("document.querySelectorAll('#result-list .card').length === 5")
    assert page.get_by_label("Include closed notices").is_checked()

    # nothing open matches (this buyer's only notice has closed): the empty state offers the closed ones
    page.goto(dated_site + "/?q=pauper+burials&buyer=municipal")
    page.locator("#empty").wait_for(state="visible")
    page.get_by_role("button", name="Include closed notices").click()
    page.locator("#result-list .card").first.wait_for()
    assert shown(page)[0] == "SHUT-3"
    # the API's own default is unchanged: every notice, open or not
    got = httpx.get(f"{dated_site}/search", params={"q": "borehole drilling"}).json()["results"]
    assert {"SHUT-1", "SHUT-2", "OPEN-1", "OPEN-2"} <= {r["id"] for r in got}
    assert page.failed_loads == []
