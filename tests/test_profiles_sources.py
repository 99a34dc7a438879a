"""Source profiles on small hand-written fixtures in each real layout (no ../shared needed)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from tender_pipeline import identity
from tender_pipeline.profiles import UnknownLayoutError, detect_profile, load_profiles
from tender_pipeline.readers import read_table
from tender_pipeline.validate import validate_tables

FIXTURES = Path(__file__).parent / "fixtures" / "profiles"


@pytest.fixture(scope="module")
def profiles():
    return load_profiles("")


def run(name: str, profiles, profile: str = ""):
    table = read_table(FIXTURES / name)
    result = validate_tables([(table, name)], profiles, profile)
    return result, {v["record"]["tender_id"]: v["record"] for v in result.valid}


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("seed_export.csv", "seed_export"),
        ("uk_contracts_finder.csv", "uk_contracts_finder"),
        ("za_etenders_advertised.csv", "za_etenders_advertised"),
        ("za_municipal.csv", "za_municipal"),
        ("za_etenders_archive.csv", "za_etenders_archive"),
        ("in_nic_gepnic.csv", "in_nic_gepnic"),
        ("pk_ppra.csv", "pk_ppra"),
        ("gh_ppa.csv", "gh_ppa"),
        ("gh_ghaneps.csv", "gh_ghaneps"),
        ("../sample_tenders.csv", "canonical"),
    ],
)
def test_detects_profile_from_header(fixture, expected, profiles):
    assert detect_profile(read_table(FIXTURES / fixture).headers, profiles).name == expected


def test_unknown_layout_lists_columns_and_requirements(profiles):
    with pytest.raises(UnknownLayoutError) as err:
        run("unknown_layout.csv", profiles)
    message = str(err.value)
    assert "Reference, Heading, Deadline" in message
    for profile in profiles.values():
        assert f"{profile.name}: {', '.join(profile.match)}" in message


def test_profile_override_beats_detection(profiles):
    # forced onto the canonical layout, the UK rows have no tender_id column: all quarantined
    result, _ = run("uk_contracts_finder.csv", profiles, profile="canonical")
    assert result.per_file["uk_contracts_finder.csv"].profile == "canonical"
    assert {q["field"] for q in result.quarantine} == {"tender_id"}


def test_user_profile_file_is_loaded(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "name: mine\nmatch: [Reference, Heading]\nid_prefix: 'me:'\n"
        "columns: {tender_id: Reference, title: Heading, closing_date: Deadline}\n"
        "defaults: {country: Kenya}\n", "utf-8")
    profiles = load_profiles(str(tmp_path))
    result, records = run("unknown_layout.csv", profiles)
    assert records["me:X1"]["country"] == "Kenya"
    assert records["me:X1"]["closing_date"] == "2027-01-01"


def test_seed_export(profiles):
    _, r = run("seed_export.csv", profiles)
    one = r["tot:90001"]
    assert (one["title"], one["buyer"], one["country"]) == (
        "Supply of laboratory glassware", "District Health Society", "India")
    assert one["closing_date"] == "2027-03-05"
    assert (one["value_amount"], one["currency"]) == (1_250_000.0, "INR")
    assert "LAB/22/7" in one["description"]
    assert r["tot:90002"]["value_amount"] is None and r["tot:90002"]["currency"] == ""


def test_uk_contracts_finder(profiles):
    _, r = run("uk_contracts_finder.csv", profiles)
    one = r["uk-cf:aa11bb22-0000-4c4c-9d9d-000000000001"]
    assert one["title"] == "Grounds maintenance & tree surgery"
    assert one["description"] == "Mowing, hedge cutting and tree works"
    assert one["published_date"] == "2026-03-02" and one["closing_date"] == "2026-04-30"
    assert one["cpv_codes"] == ["77310000", "77211400"]
    assert (one["value_amount"], one["currency"], one["country"]) == (55000.0, "GBP", "United Kingdom")
    assert one["url"].endswith("/Notice/aa11bb22-0000-4c4c-9d9d-000000000001")
    assert r["uk-cf:aa11bb22-0000-4c4c-9d9d-000000000002"]["value_amount"] == 120000.0  # Value Low fallback
    assert r["uk-cf:aa11bb22-0000-4c4c-9d9d-000000000003"]["closing_date"] is None  # 01/01/1 = no date


def test_za_etenders_advertised_and_amendment_link(profiles):
    result, r = run("za_etenders_advertised.csv", profiles)
    counts = result.per_file["za_etenders_advertised.csv"]
    # the addendum cites BID No. DOH/07/2026: it updates that tender instead of adding a second one
    assert set(r) == {"za-etenders:DOH/07/2026", "za-etenders:RT55-2026"}
    merged = r["za-etenders:DOH/07/2026"]
    assert merged["title"].startswith("ADDENDUM")
    assert merged["closing_date"] == "2026-03-17"
    assert merged["url"] == "https://www.etenders.gov.za/tender/200002"
    assert identity.is_amendment(merged)
    assert (counts.rows, counts.valid, counts.duplicates, counts.quarantined) == (3, 2, 1, 0)
    furniture = r["za-etenders:RT55-2026"]
    assert (furniture["buyer"], furniture["region"], furniture["country"], furniture["currency"]) == (
        "National Treasury", "Gauteng", "South Africa", "ZAR")
    assert furniture["published_date"] == "2026-02-04" and furniture["closing_date"] == "2026-03-06"


def test_za_municipal_scoped_and_content_ids(profiles):
    result, r = run("za_municipal.csv", profiles)
    # the same number in two municipalities is two tenders
    assert "za-muni:Example LM:BID 12/2026" in r
    content_ids = [tid for tid in r if re.fullmatch(r"za-muni:h-[0-9a-f]{16}", tid)]
    # no number, the noise number "FOR" and two tenders sharing the cut-off number "UMZ/2026-27/":
    # each gets its own content-derived id instead of collapsing into one
    assert len(content_ids) == 4
    fleet = next(r[t] for t in content_ids if r[t]["title"].startswith("Fleet"))
    assert fleet["closing_date"] is None  # "Refer to downloads" is a placeholder here
    # "June 2026" has no day: quarantined with file, row, field and reason
    (q,) = result.quarantine
    assert (q["file"], q["row"], q["field"]) == ("za_municipal.csv", 5, "closing_date")
    assert "incomplete date" in q["reason"]
    # the erratum (own number ERR-1) cites BID 12/2026 of the same municipality: one tender, amended
    assert not any(tid.endswith("ERR-1") for tid in r)
    amended = r["za-muni:Example LM:BID 12/2026"]
    assert amended["title"].startswith("Erratum to BID 12/2026")
    assert amended["closing_date"] == "2026-03-27"
    counts = result.per_file["za_municipal.csv"]
    assert (counts.rows, counts.valid, counts.duplicates, counts.quarantined) == (7, 5, 1, 1)


def test_content_id_is_stable_and_documented(profiles):
    _, first = run("za_etenders_archive.csv", profiles)
    _, again = run("za_etenders_archive.csv", profiles)
    assert set(first) == set(again) and len(first) == 2  # the repeated row is a duplicate
    expected = identity.content_id(
        "za-etenders:", ["Services: Building", "Maintenance of lifts at head office", "17/09/2025"])
    assert expected in first
    assert first[expected]["published_date"] == "2025-09-17"


def test_in_nic_gepnic(profiles):
    _, r = run("in_nic_gepnic.csv", profiles)
    one = r["in-gepnic:2026_PWD_11111_1"]
    assert (one["value_amount"], one["currency"]) == (41_773_000.0, "INR")
    assert one["buyer"] == "Public Works Roads Department"
    assert (one["published_date"], one["closing_date"]) == ("2025-12-02", "2025-12-23")
    assert (one["city"], one["region"], one["country"]) == ("Jorhat", "Assam", "India")
    two = r["in-gepnic:2026_WRD_22222_2"]
    assert two["description"] == "" and two["closing_date"] is None and two["value_amount"] is None


def test_pk_ppra(profiles):
    _, r = run("pk_ppra.csv", profiles)
    one = r["pk-ppra:TS0000009001E"]
    assert (one["published_date"], one["closing_date"]) == ("2026-10-09", "2026-10-30")
    assert (one["city"], one["country"], one["buyer"]) == ("Lahore", "Pakistan", "Ministry of Health")
    assert r["pk-ppra:TS0000009002E"]["notice_type"] == "Corrigendum (published)"


def test_gh_ppa(profiles):
    _, r = run("gh_ppa.csv", profiles)
    desks = r["gh-ppa:MOE/2024/NCT/01:lot-1:Desk Makers Ltd:14th September, 2023"]
    assert (desks["value_amount"], desks["currency"], desks["published_date"]) == (
        1_239_142.75, "GHS", "2023-09-14")
    assert desks["closing_date"] is None and desks["notice_type"] == "Contract award (Restricted Tender)"
    chairs = r["gh-ppa:MOE/2024/NCT/01:lot-2:Chairs Co:21st September, 2023"]
    assert (chairs["currency"], chairs["value_amount"]) == ("USD", 410_950.0)
    # an award without a description gets a title built from its other columns
    assert chairs["title"] == "Restricted Tender award to Chairs Co by Ministry of Example"


def test_gh_ghaneps(profiles):
    _, r = run("gh_ghaneps.csv", profiles)
    by_title = {v["title"]: v for v in r.values()}
    stalls = by_title["Construction of market stalls"]
    assert stalls["value_amount"] is None  # "0.00 (GHS)" means no value in this source
    assert stalls["published_date"] == "2024-02-05"
    assert stalls["description"] == "Construction of market stalls — STALL BUILDERS LIMITED"
    assert by_title["Medicines"]["value_amount"] == 1250.5
    assert all(re.fullmatch(r"gh-ghaneps:h-[0-9a-f]{16}", tid) for tid in r)


def test_dates_follow_profile_rule(profiles):
    _, r = run("uk_contracts_finder.csv", profiles)
    closing = r["uk-cf:aa11bb22-0000-4c4c-9d9d-000000000002"]["closing_date"]
    assert date.fromisoformat(closing) == date(2026, 5, 4)  # 04/05/2026 is 4 May, day first


@pytest.mark.parametrize(
    "body",
    ["name: bad\nmatch: [A]\ncolumns: {tender_id: A, titel: B}\n",  # unknown canonical field
     "name: bad\nmatch: [A]\ncolumns: {tender_id: A}\nvalue_maps: {title: {'(': x}}\n"],  # broken regex
)
def test_broken_user_profile_is_refused(tmp_path, body):
    (tmp_path / "bad.yaml").write_text(body, "utf-8")
    with pytest.raises(ValueError):
        load_profiles(str(tmp_path / "bad.yaml"))
