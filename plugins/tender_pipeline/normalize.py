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
_YMD = re.compile(r"^(\d{4})[/.](\d{1,2})[/.](\d{1,2})\b")
_NUMERIC_DMY = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{1,4})\b")
# Two far-apart defaults: a field dateutil fills from the default differs between them.
_DEFAULT_A = datetime(2001, 1, 1)
_DEFAULT_B = datetime(2002, 2, 2)


def _checked(parsed: date, text: str) -> date:
    if not 1900 <= parsed.year <= 2100:
        raise ValueError(f"date out of range: {text!r}")
    return parsed


def parse_date(value: Any, *, dayfirst: bool = True, formats: tuple[str, ...] | list[str] = ()) -> date | None:
    """Parse the date part of a cell; ``dayfirst`` decides ambiguous numeric dates.

    Order: the profile's explicit ``formats`` (strptime), then ISO (with or
    without time, ``Z`` or an offset), then year-first ``yyyy/mm/dd`` (never
    day-first), then dateutil with ordinals (``14th``) removed. A date without
    a day or year (``June 2025``) is refused rather than completed with today's.
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if is_blank(value):
        return None
    text = clean_text(value)
    for fmt in formats:
        try:
            return _checked(datetime.strptime(text, fmt).date(), text)
        except ValueError:
            continue
    if _ISO_DATE.match(text):
        try:
            return _checked(date.fromisoformat(text[:10]), text)
        except ValueError as exc:
            raise ValueError(f"not a valid date: {text!r}") from exc
    m = _YMD.match(text)
    if m:
        try:
            return _checked(date(int(m.group(1)), int(m.group(2)), int(m.group(3))), text)
        except ValueError as exc:
            raise ValueError(f"not a valid date: {text!r}") from exc
    m = _NUMERIC_DMY.match(text)
    if m and len(m.group(3)) in (1, 3):
        raise ValueError(f"not a valid date: {text!r} (year has {len(m.group(3))} digits)")
    text = _ORDINAL.sub(r"\1", text)
    try:
        first = date_parser.parse(text, dayfirst=dayfirst, fuzzy=False, default=_DEFAULT_A)
        second = date_parser.parse(text, dayfirst=dayfirst, fuzzy=False, default=_DEFAULT_B)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a valid date: {text!r}") from exc
    if first.date() != second.date():
        raise ValueError(f"incomplete date (no day or year): {text!r}")
    return _checked(first.date(), text)


_CURRENCY_MARKS: tuple[tuple[str, str], ...] = (
    ("gh¢", "GHS"), ("ghc", "GHS"), ("ghs", "GHS"), ("₵", "GHS"), ("¢", "GHS"),
    ("₹", "INR"), ("rs.", "INR"), ("inr", "INR"), ("pkr", "PKR"),
    ("£", "GBP"), ("gbp", "GBP"), ("€", "EUR"), ("eur", "EUR"),
    ("us$", "USD"), ("usd", "USD"), ("$", "USD"), ("zar", "ZAR"),
)
# Names sources write in a currency column, lower-case → ISO 4217.
CURRENCY_NAMES: dict[str, str] = {
    "ghana cedi": "GHS", "ghana cedis": "GHS", "cedi": "GHS", "cedis": "GHS",
    "usa dollar": "USD", "us dollar": "USD", "us dollars": "USD", "united states dollar": "USD",
    "dollar": "USD", "euro": "EUR", "euros": "EUR", "pound sterling": "GBP", "pounds sterling": "GBP",
    "pound": "GBP", "british pound": "GBP", "rand": "ZAR", "south african rand": "ZAR",
    "rupee": "INR", "rupees": "INR", "indian rupee": "INR", "indian rupees": "INR",
    "pakistani rupee": "PKR", "pakistan rupee": "PKR", "japanese yen": "JPY", "yen": "JPY",
    "swiss franc": "CHF", "chinese yuan": "CNY", "yuan": "CNY", "canadian dollar": "CAD",
}
_MULTIPLIERS = {"lakh": 1e5, "lakhs": 1e5, "lac": 1e5, "crore": 1e7, "crores": 1e7, "cr": 1e7,
                "million": 1e6, "m": 1e6, "bn": 1e9, "billion": 1e9, "k": 1e3, "thousand": 1e3}
_NUMBER = re.compile(r"[-+]?\d[\d,\s]*(?:\.\d+)?")
# Continental style: dots group thousands and a comma marks decimals (1.234.567,89).
_CONTINENTAL = re.compile(r"^\d{1,3}(?:\.\d{3}){2,}(?:,\d{1,2})?$|^\d{1,3}(?:\.\d{3})+,\d{1,2}$|^\d+,\d{1,2}$")
_SPACED = re.compile(r"(?<=\d)[\s\u00a0\u202f'](?=\d{3}\b)")


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


_ISO_CODE = re.compile(r"^[A-Za-z]{3}$")


def currency_code(value: Any) -> str:
    """A currency cell (code, name or symbol) → ISO 4217 code; '' when blank or unknown."""
    if is_blank(value):
        return ""
    text = clean_text(value)
    key = text.lower().strip(" .()")
    if key in CURRENCY_NAMES:
        return CURRENCY_NAMES[key]
    if _ISO_CODE.match(key):
        return key.upper()
    return detect_currency(text)


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
    text = _SPACED.sub("", text)  # "R 1 500 000" and "1'500'000": spaces/apostrophes group digits
    token = re.search(r"\d[\d.,]*", text)
    if token and _CONTINENTAL.match(token.group(0).rstrip(".,")):
        continental = token.group(0).rstrip(".,").replace(".", "").replace(",", ".")
        text = text[:token.start()] + continental + text[token.end():]
    match = _NUMBER.search(text)
    if not match:
        raise ValueError(f"not an amount: {value!r}")
    number = float(re.sub(r"[,\s]", "", match.group(0)))
    rest = text[match.end():].strip()
    word = re.match(r"[a-z]+\b", rest)
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
