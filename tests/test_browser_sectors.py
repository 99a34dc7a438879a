"""The sector filter and chips in headless Chromium: the list with counts and Unclassified, filtering by it,
the chip's confidence hint, and the tender page's published description (the notices of test_sectors_api)."""

from __future__ import annotations

import pytest

from search_api.settings import ApiSettings
from tender_pipeline.settings import Settings
from tests.services import serve_ready
from tests.test_browser import need_chromium, page  # noqa: F401 - the shared page fixture
from tests.test_sectors_api import FIRST, LONG, ingest

pytestmark = [pytest.mark.browser, pytest.mark.slow]
UNCLASSIFIED = {n[0] for n in FIRST if n[3] is None}


@pytest.fixture(scope="module")
def site(chroma, tmp_path_factory):
    need_chromium()
    host, port = chroma
    base = tmp_path_factory.mktemp("browser-sectors")
    where = {"chroma_host": host, "chroma_port": port, "tender_collection": "sector_ui_browser"}
    settings = Settings(**where, staging_uri=str(base / "staging"), embed_backend="local", enrich_backend="local")
    assert ingest(settings, base, "browser-sectors", FIRST)["upserted"] == len(FIRST)
    api = ApiSettings(**where, feedback_path=str(base / "fb.jsonl"), embed_backend="local")
    with serve_ready(api) as url:
        yield url


@pytest.fixture(autouse=True)
def no_failed_loads(page):  # noqa: F811
    """The shared page fixture fails on a script error; here a failed request fails the test too."""
    yield
    assert not page.failed_loads, page.failed_loads


def test_the_sector_filter_lists_counts_and_finds_the_unclassified(site, page):  # noqa: F811
    page.goto(site + "/?open_only=false")
    page.wait_for_function("document.querySelector('#sector').options.length > 2")  # from /sectors
    options = page.eval_on_selector_all("#sector option", "os => os.map(o => [o.value, o.textContent])")
    assert options[0][0] == "" and options[-1] == ["Unclassified", "Unclassified (3)"]
    assert ["Construction work", "Construction work (3)"] in options
    page.get_by_label("Search tenders").fill("services")
    page.locator("#filters summary").click()
    page.get_by_label("Sector").select_option("Unclassified")  # a change runs the search when there is a query
    page.wait_for_function("location.search.includes('sector=Unclassified')")
    page.locator("#result-list .card").first.wait_for()
    ids = set(page.eval_on_selector_all("#result-list .card", "cs => cs.map(c => c.dataset.id)"))
    assert ids == UNCLASSIFIED and "sector=Unclassified" in page.url
    chips = page.locator("#result-list .card .tag.sector")
    assert chips.count() == len(UNCLASSIFIED) and set(chips.all_inner_texts()) == {"Unclassified"}


def test_a_result_chip_names_the_cpv_division_and_marks_a_tentative_sector(site, page):  # noqa: F811
    page.goto(site + "/?q=construction&open_only=false")
    page.locator("#result-list .card").first.wait_for()
    sure = page.locator('#result-list .card[data-id="SEC-C1"] .tag.sector')
    tentative = page.locator('#result-list .card[data-id="SEC-C2"] .tag.sector')
    assert sure.inner_text() == "Construction work"
    assert sure.get_attribute("title") == "CPV division 45 · confidence 92%"
    assert tentative.inner_text() == "Construction work · likely" and "tentative" in tentative.get_attribute("class")


def test_the_tender_page_shows_the_description_as_published(site, page):  # noqa: F811
    page.goto(site + "/t/SEC-M1")
    assert page.locator("#description").inner_text() == LONG
    assert "Keywords:" not in page.locator("body").inner_text() and "Sector:" not in page.locator("body").inner_text()
