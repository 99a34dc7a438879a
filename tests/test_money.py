"""Reporting-currency values: the shipped rates table, conversion of real-format fixture rows, replacement tables."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tender_pipeline import store
from tender_pipeline.models import EnrichedTender, Enrichment, TenderRecord
from tender_pipeline.money import SHIPPED_RATES, RatesError, Reporter, load_rates
from tender_pipeline.profiles import load_profiles
from tender_pipeline.readers import read_table
from tender_pipeline.settings import Settings
from tender_pipeline.validate import validate_tables

FIXTURES = Path(__file__).parent / "fixtures" / "profiles"
NOW = datetime(2026, 11, 29, tzinfo=UTC)


def published() -> dict[str, dict]:
    """Each rate of the shipped file as written there (1 per = rate currency)."""
    return {r["currency"]: r for r in json.loads(SHIPPED_RATES.read_text())["rates"]}


def records(name: str) -> dict[str, TenderRecord]:
    result = validate_tables([(read_table(FIXTURES / name), name)], load_profiles(""), "")
    return {v["record"]["tender_id"]: TenderRecord.model_validate(v["record"]) for v in result.valid}


def metadata(record: TenderRecord, reporter: Reporter | None) -> dict:
    item = EnrichedTender(record=record, content_hash="h", enrichment=Enrichment(
        tender_id=record.tender_id, summary="s", sector="x", procurement_type="Supply"))
    return store.to_metadata(item, NOW, reporter)


def test_shipped_table_has_the_currencies_we_see_each_with_date_and_source():
    rates = published()
    for code in ("GBP", "ZAR", "INR", "PKR", "GHS", "EUR", "USD"):
        assert code in rates, code
        assert rates[code]["date"] and rates[code]["source"]
    assert rates["USD"]["per"] == "EUR" and "ECB" in rates["USD"]["source"]
    assert rates["PKR"]["per"] == "USD" and rates["GHS"]["per"] == "USD"  # not published by the ECB


def test_real_fixture_rows_in_three_currencies_convert_to_usd():
    rates = published()
    usd_per_eur = rates["USD"]["rate"]
    reporter = Reporter(load_rates(), "USD")
    india = records("in_nic_gepnic.csv")["in-gepnic:2026_PWD_11111_1"]
    uk = next(r for r in records("uk_contracts_finder.csv").values() if r.value_amount == 55000.0)
    ghana = records("gh_ppa.csv")["gh-ppa:MOE/2024/NCT/01:lot-1:Desk Makers Ltd:14th September, 2023"]
    assert (india.currency, uk.currency, ghana.currency) == ("INR", "GBP", "GHS")

    got = {r.currency: metadata(r, reporter) for r in (india, uk, ghana)}
    # ECB rates are per euro: amount / (units per EUR) × (USD per EUR)
    assert got["INR"]["value_report"] == pytest.approx(41_773_000 / rates["INR"]["rate"] * usd_per_eur, abs=0.01)
    assert got["GBP"]["value_report"] == pytest.approx(55_000 / rates["GBP"]["rate"] * usd_per_eur, abs=0.01)
    # the cedi is quoted per US dollar (Bank of Ghana): amount / (GHS per USD)
    assert got["GHS"]["value_report"] == pytest.approx(1_239_142.75 / rates["GHS"]["rate"], abs=0.01)
    assert 70_000 < got["GBP"]["value_report"] < 80_000  # £55k is roughly $74k, not £55k or $55
    for meta in got.values():
        assert meta["report_currency"] == "USD"
        assert meta["value_amount"] > 0 and meta["currency"] in ("INR", "GBP", "GHS")  # the original is kept


def test_usd_row_is_unchanged_and_other_reporting_currency_works():
    chairs = records("gh_ppa.csv")["gh-ppa:MOE/2024/NCT/01:lot-2:Chairs Co:21st September, 2023"]
    assert metadata(chairs, Reporter(load_rates(), "USD"))["value_report"] == 410_950.0
    rates = published()
    in_gbp = metadata(chairs, Reporter.from_settings(Settings(report_currency="gbp")))
    assert in_gbp["report_currency"] == "GBP"
    assert in_gbp["value_report"] == pytest.approx(410_950 / rates["USD"]["rate"] * rates["GBP"]["rate"], abs=0.01)


def test_unknown_or_missing_currency_keeps_the_row_without_a_reporting_value():
    reporter = Reporter(load_rates(), "USD")
    kes = TenderRecord(tender_id="K1", title="Repair of rural roads", value_amount=1_000_000, currency="KES")
    blank = TenderRecord(tender_id="K2", title="Supply of desks", value_amount=5_000, currency="")
    no_value = TenderRecord(tender_id="K3", title="Cleaning", currency="XYZ")
    for record in (kes, blank, no_value):
        meta = metadata(record, reporter)
        assert meta["value_report"] == -1.0 and meta["report_currency"] == "USD"
    assert metadata(kes, reporter)["value_amount"] == 1_000_000.0
    counted = reporter.unknown_currencies((r.value_amount, r.currency) for r in (kes, blank, no_value))
    assert counted == {"(none)": 1, "KES": 1}  # a row without an amount is not an unknown currency


def test_replacement_table_chains_through_its_own_base(tmp_path):
    path = tmp_path / "rates.json"
    path.write_text(json.dumps({"rates": [
        {"currency": "USD", "per": "USD", "rate": 1, "date": "2026-11-27", "source": "base"},
        {"currency": "KES", "per": "USD", "rate": 129.0, "date": "2026-11-27", "source": "Central Bank of Kenya"},
        {"currency": "GBP", "per": "USD", "rate": 0.75, "date": "2026-11-27", "source": "test"},
    ]}))
    reporter = Reporter.from_settings(Settings(report_rates_path=str(path), report_currency="GBP"))
    assert reporter.value(129_000, "KES") == pytest.approx(750.0)
    assert reporter.value(100, "INR") is None  # not in the replacement table
    assert "Central Bank of Kenya" in reporter.table.describe("KES")


@pytest.mark.parametrize(("body", "expected"), [
    ("{not json", "not a readable JSON rates table"),
    ('{"rates": [{"currency": "USD", "per": "EUR", "rate": 0, "date": "2026-01-01", "source": "x"}]}',
     "rates.0.rate"),
    ('{"rates": [{"currency": "USD", "per": "EUR", "rate": 1.1, "date": "2026-01-01", "source": "x"}]}',
     "USD is quoted per EUR, which has no rate"),
])
def test_bad_tables_fail_with_one_line_naming_the_file(tmp_path, body, expected):
    path = tmp_path / "rates.json"
    path.write_text(body)
    with pytest.raises(RatesError) as err:
        load_rates(path)
    assert str(path) in str(err.value) and expected in str(err.value) and "\n" not in str(err.value)


def test_reporting_currency_must_have_a_rate_and_missing_file_is_named(tmp_path):
    with pytest.raises(RatesError, match="REPORT_CURRENCY 'KES' has no rate"):
        Reporter(load_rates(), "KES")
    with pytest.raises(RatesError, match="does not exist"):
        load_rates(tmp_path / "nope.json")
