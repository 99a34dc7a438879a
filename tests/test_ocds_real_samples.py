"""The real OCDS samples in ../shared/data/real/ocds_samples, when present (a user's clone has none: skipped)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tender_pipeline.validate import validate_files

WHERE = Path("shared") / "data" / "real" / "ocds_samples"
SAMPLES = next((p / WHERE for p in Path(__file__).resolve().parents if (p / WHERE).is_dir()), Path("..") / WHERE)
pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"real OCDS samples not present at {SAMPLES}")


def _files(name: str) -> list[tuple[Path, str]]:
    return [(p, p.name) for p in sorted((SAMPLES / name).glob("*.json"))]


def test_uk_contracts_finder_one_notice_per_ocid_with_its_latest_release():
    files = _files("uk_contracts_finder")
    result = validate_files(files)
    releases = [json.loads(p.read_text("utf-8")) for p, _ in files]
    ocids = {r["ocid"] for r in releases}
    notices = {v["record"]["tender_id"]: v["record"] for v in result.valid}
    assert set(notices) == ocids and len(ocids) == 11
    assert (result.rows_read, len(result.valid), result.duplicates, len(result.quarantine)) == (21, 11, 10, 0)
    for ocid, record in notices.items():
        latest = max((r for r in releases if r["ocid"] == ocid), key=lambda r: r["date"])
        assert record["title"] == " ".join(latest["tender"]["title"].split())
        assert record["value_amount"] == latest["tender"]["value"]["amount"]
        assert record["closing_date"] == latest["tender"]["tenderPeriod"]["endDate"][:10]
        assert record["buyer"]
    bath = notices["ocds-b5fd17-2c391a7a-adc8-11e6-9901-0019b9f3037b"]
    assert bath["buyer"] == "Bath and North East Somerset Council"  # the OCDS 1.1 copy of the tied release


def test_canada_contract_only_releases_are_each_quarantined():
    result = validate_files(_files("canada_buyandsell"))
    assert result.valid == [] and result.rows_read == len(result.quarantine) == 22 == result.not_notices
    assert {q["reason"] for q in result.quarantine} == {
        "no tender title: the release has no tender section (planning, award or contract data only)"}
