"""OCDS files through validation: formats, merging by OCID, the mapping profile, quarantine.

Fixtures in tests/fixtures/ocds/ are small OCDS files written for these tests.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tender_pipeline.ocds.profile import load_ocds_profiles
from tender_pipeline.ocds.reader import read_entries
from tender_pipeline.readers import UnreadableFileError
from tender_pipeline.validate import BatchRejectedError, check_threshold, validate_files

FIXTURES = Path(__file__).parent / "fixtures" / "ocds"
ALL = ["release_package.json", "record_package.json", "releases.jsonl.gz", "bare_release.json"]


def run(*names: str, folder: Path = FIXTURES, **kw):
    result = validate_files([(folder / n, n) for n in names], **kw)
    return result, {v["record"]["tender_id"]: v for v in result.valid}


def test_counts_add_up_per_file_and_in_total():
    result, notices = run(*ALL)
    assert sorted(notices) == ["ocds-x1y2z3-0001", "ocds-x1y2z3-0002", "ocds-x1y2z3-0003",
                               "ocds-x1y2z3-0004", "ocds-x1y2z3-0006"]
    for name, counts in result.per_file.items():
        assert counts.rows == counts.valid + counts.duplicates + counts.quarantined, name
    assert result.rows_read == 11 == len(result.valid) + result.duplicates + len(result.quarantine)


def test_releases_of_one_ocid_merge_into_one_notice_with_later_values():
    _, notices = run("release_package.json")
    road = notices["ocds-x1y2z3-0001"]
    # the amendment carries only the new closing date: the title and value come from the tender release
    record = road["record"]
    assert (record["title"], record["value_amount"], record["currency"]) == ("Road resurfacing, Northgate",
                                                                             250000.0, "GBP")
    assert record["closing_date"] == "2026-04-15" and record["published_date"] == "2026-03-05"
    assert record["notice_type"] == "Corrigendum (tender amendment)"
    assert road["versions"] == 2 and (road["file"], road["row"]) == ("release_package.json", 2)
    assert record["url"] == "https://portal.example/notice/0001"  # the tenderNotice document, not the PDF


def test_mapping_buyer_address_and_classifications():
    _, notices = run("release_package.json")
    laptops = notices["ocds-x1y2z3-0002"]["record"]
    assert (laptops["buyer"], laptops["country"], laptops["region"], laptops["city"]) == (
        "County Education Board", "United Kingdom", "South West", "Exeter")
    assert laptops["cpv_codes"] == ["30213100"]  # from additionalClassifications
    assert laptops["category"] == "UNSPSC 43211503 Notebook computers"  # other schemes kept as text
    assert laptops["url"] == "https://portal.example"  # no documents: the publisher's uri
    assert laptops["source"] == "ocds:ocds-x1y2z3" and laptops["notice_type"] == "Tender"


def test_record_package_uses_compiled_release_else_merges_its_releases():
    result, notices = run("record_package.json")
    cleaning = notices["ocds-x1y2z3-0003"]
    assert cleaning["record"]["title"] == "Cleaning of council offices"
    assert cleaning["record"]["notice_type"] == "Corrigendum (tender update)"  # from the linked releases' tags
    assert cleaning["versions"] == 1
    bridge = notices["ocds-x1y2z3-0004"]
    assert bridge["record"]["title"] == "Bridge inspection services" and bridge["versions"] == 2
    (linked,) = result.quarantine
    assert (linked["row"], linked["tender_id"]) == (3, "ocds-x1y2z3-0005")
    assert "only linked releases" in linked["reason"]


def test_json_lines_gz_bad_line_and_award_only_release():
    result, notices = run("releases.jsonl.gz")
    lights = notices["ocds-x1y2z3-0006"]
    assert lights["record"]["title"] == "Street lighting maintenance (LED)" and lights["versions"] == 2
    reasons = {q["row"]: (q["field"], q["reason"]) for q in result.quarantine}
    assert reasons[3][0] == "release" and "line 3 is not valid JSON" in reasons[3][1]
    assert reasons[2][0] == "title" and reasons[2][1].startswith("no tender title")
    assert result.not_notices == 1


def test_award_only_releases_do_not_reject_the_batch_but_untitled_tenders_do(tmp_path):
    award = {"ocid": "ocds-aaaaaa-1", "id": "1", "date": "2026-01-01T00:00:00Z", "tag": ["award"], "awards": []}
    (tmp_path / "awards.json").write_text(json.dumps({"releases": [award, {**award, "ocid": "ocds-aaaaaa-2"}]}))
    awards, notices = run("awards.json", folder=tmp_path)
    assert notices == {} and len(awards.quarantine) == awards.rows_read == 2 == awards.not_notices
    check_threshold(awards, 0.2, tmp_path / "q.csv")  # nothing that is a tender was bad
    untitled, _ = run("bare_release.json")
    assert untitled.quarantine[0]["reason"] == "required field is empty (tender.title)"
    with pytest.raises(BatchRejectedError, match="1 of 1 rows"):
        check_threshold(untitled, 0.2, tmp_path / "q.csv")


def test_same_release_in_two_ocds_versions_newer_wins(tmp_path):
    base = {"ocid": "ocds-bbbbbb-1", "id": "r1", "date": "2014-12-17T16:44:56Z", "tag": ["tender"],
            "tender": {"title": "Lease of offices"}}
    old = {**base, "buyer": {"name": "Publisher Ltd"}}  # OCDS 1.0: no version field
    new = {**base, "version": "1.1", "buyer": {"id": "b", "name": "City Council"}}
    (tmp_path / "a.json").write_text(json.dumps(new))
    (tmp_path / "b.json").write_text(json.dumps(old))
    result, notices = run("a.json", "b.json", folder=tmp_path)
    (notice,) = notices.values()
    assert notice["record"]["buyer"] == "City Council" and notice["versions"] == 1
    assert (result.per_file["a.json"].valid, result.per_file["b.json"].duplicates) == (1, 1)


def test_reader_streams_a_package_entry_by_entry(tmp_path):
    """Entries come out before the end of the file is parsed: a file cut short still yields its first releases."""
    releases = [{"ocid": f"ocds-cccccc-{i}", "id": str(i), "date": "2026-01-01T00:00:00Z",
                 "tender": {"title": f"Tender {i}"}} for i in range(50)]
    text = json.dumps({"uri": "u", "publisher": {"name": "P"}, "releases": releases})
    cut = tmp_path / "cut.json.gz"
    with gzip.open(cut, "wt") as fh:
        fh.write(text[: len(text) * 2 // 3])
    seen = []
    with pytest.raises(UnreadableFileError, match=r"cut.json.gz: not readable OCDS JSON after entry \d+"):
        for entry in read_entries(cut):
            seen.append(entry.data["ocid"])
    assert 10 < len(seen) < 50 and seen[0] == "ocds-cccccc-0"
    assert entry.package == {"uri": "u", "publisher": {"name": "P"}}


def test_profile_chosen_by_ocid_prefix_and_user_profiles(tmp_path):
    uk = {"ocid": "ocds-b5fd17-1", "id": "1", "date": "2026-01-01T00:00:00Z", "tender": {"title": "Roads"}}
    (tmp_path / "uk.json").write_text(json.dumps(uk))
    result, notices = run("uk.json", folder=tmp_path)
    assert result.per_file["uk.json"].profile == "ocds_uk_contracts_finder"
    assert notices["ocds-b5fd17-1"]["record"]["source"] == "uk-contracts-finder"
    assert (notices["ocds-b5fd17-1"]["record"]["country"], notices["ocds-b5fd17-1"]["record"]["currency"]) == (
        "United Kingdom", "GBP")  # the publisher profile's defaults
    (tmp_path / "mine.yaml").write_text(
        "name: my_portal\nformat: ocds\nmatch: [ocds-b5fd17]\nid_prefix: 'cf:'\n"
        "columns: {tender_id: ocid, title: \"tender.title\", region: \"'Nowhere'\"}\n")
    load_ocds_profiles.cache_clear()
    _, mine = run("uk.json", folder=tmp_path, profiles_path=str(tmp_path / "mine.yaml"))
    assert mine["cf:ocds-b5fd17-1"]["record"]["region"] == "Nowhere"
    (tmp_path / "bad.yaml").write_text("name: bad\nformat: ocds\ncolumns: {title: 'tender.[title'}\n")
    with pytest.raises(ValueError, match="not a valid JMESPath expression"):
        load_ocds_profiles(str(tmp_path / "bad.yaml"))


def test_limit_counts_releases():
    result, _ = run(*ALL, limit=4)
    assert result.rows_read == 4
