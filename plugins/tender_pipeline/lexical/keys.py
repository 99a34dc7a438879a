"""The normalised keys exact matches use: filter values, tender ids, the words of a buyer's name."""

from __future__ import annotations

import re


def norm(value: str) -> str:
    """Case- and spacing-insensitive key for exact-match filters."""
    return " ".join(str(value).split()).lower()


def id_forms(tender_id: str) -> list[str]:
    """The id as stored and without its source prefix, lower-cased ('uk-cf:WTC 2025/3' → 'wtc 2025/3')."""
    low = norm(tender_id)
    return [low, low.split(":", 1)[1]] if ":" in low else [low]


def words_of(text: str) -> list[str]:
    """The default tokenizer's view of a text (lower-case alphanumeric runs)."""
    return re.findall(r"[a-z0-9]+", text.lower())
