"""Normalization of the value formats the real sources use (dates, money, currency, CPV, text)."""

from __future__ import annotations

from datetime import date

import pytest

from tender_pipeline import normalize


@pytest.mark.parametrize(
    ("raw", "dayfirst", "expected"),
    [
        ("05/02/2024", True, date(2024, 2, 5)),  # dd/mm/yyyy (ZA, UK closing dates)
        ("05/02/2024", False, date(2024, 5, 2)),  # the profile's day-first rule decides
        ("Oct 09, 2026", False, date(2026, 10, 9)),  # PPRA
        ("02-Dec-2022 02:55 PM", True, date(2022, 12, 2)),  # NIC GePNIC
        ("14th September, 2012", True, date(2012, 9, 14)),  # Ghana PPA ordinals
        ("03rd December, 2013", True, date(2013, 12, 3)),
        ("2025-11-07T16:56:46Z", True, date(2025, 11, 7)),  # UK, Z
        ("2025-11-07T23:56:46+05:00", True, date(2025, 11, 7)),  # UK, offset: the date as written
        ("  2024/02/05 12:53:22  ", True, date(2024, 2, 5)),  # GHANEPS: year-first is never day-first
    ],
)
def test_parse_date_real_formats(raw, dayfirst, expected):
    assert normalize.parse_date(raw, dayfirst=dayfirst) == expected


@pytest.mark.parametrize("raw", ["June 2025", "01/01/1", "26 October, 0220", "31/02/2024"])
def test_parse_date_refuses_incomplete_or_impossible(raw):
    with pytest.raises(ValueError):
        normalize.parse_date(raw)


def test_parse_date_explicit_formats_first():
    # without formats, day-first reads 03/04 as 3 April; a profile format can say otherwise
    assert normalize.parse_date("03/04/2026", formats=["%m/%d/%Y"]) == date(2026, 3, 4)


@pytest.mark.parametrize("raw", ["N/A", "NA ", "[object Object]", " - ", "", None])
def test_placeholders_are_empty(raw):
    assert normalize.parse_date(raw) is None
    assert normalize.parse_amount(raw) is None
    assert normalize.clean_text(raw) == ""


@pytest.mark.parametrize(
    ("raw", "amount", "currency"),
    [
        ("4,17,73,000", 41_773_000.0, ""),  # Indian grouping
        ("₹ 2.5 crore", 25_000_000.0, "INR"),
        ("12 lakh", 1_200_000.0, ""),
        ("Rs. 3 Lakhs", 300_000.0, "INR"),
        ("Gh¢1239142.75", 1_239_142.75, "GHS"),
        ("0.00                (GHS)", 0.0, "GHS"),
        ("GHS 1,500", 1500.0, "GHS"),
        ("$410950.00", 410_950.0, "USD"),
        ("£1,200.50", 1200.5, "GBP"),
        ("R 1 500 000,00", 1_500_000.0, "ZAR"),
        ("R1,500,000.00", 1_500_000.0, "ZAR"),
        ("1.234.567,89", 1_234_567.89, ""),
        ("100 m2", 100.0, ""),  # a unit is not a multiplier
    ],
)
def test_amounts_and_currency(raw, amount, currency):
    assert normalize.parse_amount(raw) == pytest.approx(amount)
    assert normalize.detect_currency(raw) == currency


@pytest.mark.parametrize(
    ("raw", "code"),
    [("Ghana Cedi", "GHS"), ("USA Dollar", "USD"), ("Euro", "EUR"), ("gbp", "GBP"), ("Gh¢", "GHS"),
     ("Pound Sterling", "GBP"), ("", "")],
)
def test_currency_code(raw, code):
    assert normalize.currency_code(raw) == code


def test_negative_and_garbage_amounts_fail():
    with pytest.raises(ValueError):
        normalize.parse_amount("-500")
    with pytest.raises(ValueError):
        normalize.parse_amount("to be advised")


def test_cpv_with_and_without_check_digit():
    assert normalize.parse_cpv_codes("50000000 51000000-9 50000000-5 ") == ["50000000", "51000000"]


def test_clean_text_entities_tags_whitespace():
    assert normalize.clean_text("  Grounds &amp; trees<br/>\n\t mowing  ") == "Grounds & trees mowing"
