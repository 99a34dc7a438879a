"""Parsing of the messy values real exports carry: text, dates, money, CPV codes.

Each function takes a raw cell and returns a clean value or raises ValueError
with a message a user can act on (the validator attaches file, row and field).
"""

from __future__ import annotations

import html
import re
from datetime import date, datetime
from typing import Any

from dateutil import parser as date_parser

PLACEHOLDERS = frozenset({"", "n/a", "na", "none", "null", "nan", "-", "--", "[object object]", "nil"})
_WS = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]+>")


def is_blank(value: Any) -> bool:
    """True for None, NaN and the placeholders sources use for 'no value'."""
    if value is None:
        return True
    if isinstance(value, float) and value != value:  # NaN
        return True
    return isinstance(value, str) and value.strip().lower() in PLACEHOLDERS


def clean_text(value: Any) -> str:
    """Unescape HTML entities, drop tags, fold whitespace; placeholders become ''."""
    if is_blank(value):
        return ""
    text = html.unescape(str(value))
    if "<" in text and ">" in text:
        text = _TAG.sub(" ", text)
    return _WS.sub(" ", text).strip()


_ORDINAL = re.compile(r"(\d{1,2})(st|nd|rd|th)\b", re.IGNORECASE)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_NUMERIC_DMY = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2,4})")


def parse_date(value: Any, *, dayfirst: bool = True) -> date | None:
    """Parse the date part of a cell; ``dayfirst`` decides ambiguous numeric dates.

    ISO dates (with or without time, ``Z`` or an offset) are always read as ISO.
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if is_blank(value):
        return None
    text = clean_text(value)
    if _ISO_DATE.match(text):
        try:
            return date.fromisoformat(text[:10])
        except ValueError as exc:
            raise ValueError(f"not a valid date: {text!r}") from exc
    m = _NUMERIC_DMY.match(text)
    if m and len(m.group(3)) in (1, 3):
        raise ValueError(f"not a valid date: {text!r} (year has {len(m.group(3))} digits)")
    text = _ORDINAL.sub(r"\1", text)
    try:
        parsed = date_parser.parse(text, dayfirst=dayfirst, fuzzy=False)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a valid date: {text!r}") from exc
    if not 1900 <= parsed.year <= 2100:
        raise ValueError(f"date out of range: {text!r}")
    return parsed.date()


_CURRENCY_MARKS: tuple[tuple[str, str], ...] = (
    ("gh¢", "GHS"), ("ghc", "GHS"), ("ghs", "GHS"), ("₵", "GHS"), ("¢", "GHS"),
    ("₹", "INR"), ("rs.", "INR"), ("inr", "INR"), ("pkr", "PKR"),
    ("£", "GBP"), ("gbp", "GBP"), ("€", "EUR"), ("eur", "EUR"),
    ("us$", "USD"), ("usd", "USD"), ("$", "USD"), ("zar", "ZAR"),
)
_MULTIPLIERS = {"lakh": 1e5, "lakhs": 1e5, "lac": 1e5, "crore": 1e7, "crores": 1e7, "cr": 1e7,
                "million": 1e6, "m": 1e6, "bn": 1e9, "billion": 1e9, "k": 1e3, "thousand": 1e3}
_NUMBER = re.compile(r"[-+]?\d[\d,\s]*(?:\.\d+)?")


def detect_currency(value: Any) -> str:
    """ISO 4217 code implied by a money cell's symbol or code, or ''."""
    if is_blank(value):
        return ""
    text = str(value).strip().lower()
    for mark, code in _CURRENCY_MARKS:
        if mark in text:
            return code
    if re.match(r"^r\s?\d", text):
        return "ZAR"
    return ""


def parse_amount(value: Any) -> float | None:
    """Money cell → float: strips symbols and codes, any digit grouping, lakh/crore words."""
    if isinstance(value, bool):
        raise ValueError(f"not an amount: {value!r}")
    if isinstance(value, (int, float)):
        if value != value:  # NaN
            return None
        return float(value)
    if is_blank(value):
        return None
    text = clean_text(value).lower()
    match = _NUMBER.search(text)
    if not match:
        raise ValueError(f"not an amount: {value!r}")
    number = float(re.sub(r"[,\s]", "", match.group(0)))
    rest = text[match.end():].strip()
    word = re.match(r"[a-z]+", rest)
    if word and word.group(0) in _MULTIPLIERS:
        number *= _MULTIPLIERS[word.group(0)]
    if number < 0:
        raise ValueError(f"negative amount: {value!r}")
    return number


_CPV = re.compile(r"\b(\d{8})(?:-\d)?\b")


def parse_cpv_codes(value: Any) -> list[str]:
    """CPV codes as 8-digit strings without check digit, in order, de-duplicated."""
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    if is_blank(value):
        return []
    seen: dict[str, None] = {}
    for code in _CPV.findall(str(value)):
        seen.setdefault(code, None)
    return list(seen)
