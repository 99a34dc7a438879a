"""Amounts in one reporting currency, so ``min_value=100000`` means the same in rupees and pounds.

The rates are data, not code: ``data/report_rates.json`` ships ECB reference
rates of one stated day plus the central-bank rates of currencies the ECB does
not publish (PKR, GHS), each entry with its own date and source. A user
replaces the whole table with ``REPORT_RATES_PATH``. Each entry reads
"1 <per> = <rate> <currency>"; ``per`` must itself be in the table, so rates
quoted against the US dollar chain through the dollar's euro rate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

SHIPPED_RATES = Path(__file__).resolve().parent / "data" / "report_rates.json"
UNKNOWN_VALUE = -1.0  # value_report when the amount or its currency is unknown (metadata may not hold None)


class RatesError(ValueError):
    """The rates table cannot be used (missing file, bad entry, reporting currency absent)."""


class Rate(BaseModel):
    """1 ``per`` = ``rate`` ``currency``, observed on ``date``, from ``source``."""

    currency: str = Field(pattern=r"^[A-Z]{3}$")
    per: str = Field(pattern=r"^[A-Z]{3}$")
    rate: float = Field(gt=0)
    date: date
    source: str = Field(min_length=1)

    @field_validator("currency", "per", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


class RatesFile(BaseModel):
    about: str = ""
    rates: list[Rate] = Field(min_length=1)


@dataclass(frozen=True)
class RateTable:
    """Currency → units per one unit of the table's base (EUR in the shipped table), ``per`` chains resolved."""

    per_eur: dict[str, float]
    entries: dict[str, Rate]
    path: str

    def knows(self, currency: str) -> bool:
        return currency.upper() in self.per_eur

    def convert(self, amount: float, currency: str, to: str) -> float | None:
        """``amount`` of ``currency`` in ``to``; None when either currency is not in the table."""
        src, dst = currency.upper(), to.upper()
        if src not in self.per_eur or dst not in self.per_eur:
            return None
        return amount / self.per_eur[src] * self.per_eur[dst]

    def describe(self, currency: str) -> str:
        """'USD: ECB ... 2026-10-30' for pages and reports."""
        r = self.entries.get(currency.upper())
        return f"{r.currency} per {r.per} {r.rate:g} on {r.date.isoformat()} ({r.source})" if r else ""


def _resolve(entries: dict[str, Rate], path: str) -> dict[str, float]:
    per_eur: dict[str, float] = {}  # units per one unit of the table's base (the entry quoted per itself)

    def units_per_eur(code: str, seen: tuple[str, ...]) -> float:
        if code in per_eur:
            return per_eur[code]
        if code in seen:
            raise RatesError(f"{path}: rates for {' -> '.join((*seen, code))} form a loop")
        if code not in entries:
            raise RatesError(f"{path}: {seen[-1]} is quoted per {code}, which has no rate in the table")
        entry = entries[code]
        value = 1.0 if entry.currency == entry.per else units_per_eur(entry.per, (*seen, code)) * entry.rate
        per_eur[code] = value
        return value

    for code in entries:
        units_per_eur(code, ())
    return per_eur


def load_rates(path: str | Path = "") -> RateTable:
    """The table at ``path`` (the shipped one when empty); RatesError names the file and entry."""
    where = Path(path) if path else SHIPPED_RATES
    try:
        raw = json.loads(where.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RatesError(f"REPORT_RATES_PATH {where} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RatesError(f"{where}: not a readable JSON rates table ({exc})") from None
    try:
        table = RatesFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        raise RatesError(f"{where}: {loc}: {first.get('msg', 'invalid')}") from None
    entries: dict[str, Rate] = {}
    for i, entry in enumerate(table.rates):
        if entry.currency in entries:
            raise RatesError(f"{where}: rates.{i}: {entry.currency} appears twice")
        entries[entry.currency] = entry
    return RateTable(_resolve(entries, str(where)), entries, str(where))


@lru_cache(maxsize=8)
def _cached(path: str) -> RateTable:
    return load_rates(path)


class Reporter:
    """Converts tender values to the reporting currency and counts what it could not convert."""

    def __init__(self, table: RateTable, currency: str) -> None:
        currency = currency.strip().upper()
        if not table.knows(currency):
            raise RatesError(f"REPORT_CURRENCY {currency!r} has no rate in {table.path}")
        self.table = table
        self.currency = currency

    @classmethod
    def from_settings(cls, settings: Any) -> Reporter:  # Settings or ApiSettings
        return cls(_cached(settings.report_rates_path), settings.report_currency)

    def value(self, amount: float | None, currency: str) -> float | None:
        """The amount in the reporting currency; None when the amount or its currency is unknown."""
        if amount is None or amount < 0 or not math.isfinite(amount):
            return None
        if not currency:
            return None
        converted = self.table.convert(amount, currency, self.currency)
        return round(converted, 2) if converted is not None else None

    def unknown_currencies(self, items: Iterable[tuple[float | None, str]]) -> dict[str, int]:
        """How many valued items had a currency the table lacks (blank counted as '(none)')."""
        counts: dict[str, int] = {}
        for amount, currency in items:
            if amount is None or amount < 0 or (currency and self.table.knows(currency)):
                continue
            key = currency.upper() if currency else "(none)"
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
