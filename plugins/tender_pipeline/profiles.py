"""Column-mapping profiles: data files that map a source layout onto the canonical one.

A profile names the header columns that identify its layout (``match``), the
source column(s) for each canonical field (a list means "first non-blank"),
constant ``defaults`` for fields the file lacks, and the date rule. Shipped
profiles live in ``profiles/*.yaml``; ``PROFILES_PATH`` adds a user's own.

Optional keys for messy sources (all data, no code per source):

- ``placeholders``: extra cell values this source uses for "no value".
- ``value_maps``: per field, ``regex: replacement`` pairs; the first regex that
  matches the whole value rewrites it (``\\1`` groups allowed).
- ``templates``: per field, a ``{Column}`` template used when the field is blank.
- ``date_formats``: strptime formats tried before the generic date rules.
- ``id_template``: the native id built from ``{tender_id}`` and other columns
  (e.g. ``"{Source}:{tender_id}"`` to scope a number to its municipality).
- ``id_pattern``: a regex the native id must contain; ids that don't (e.g.
  ``"FOR"``, ``"Tender No"`` from a broken scrape) count as missing.
- ``content_id``: columns for a content-derived id when the native id is
  missing (see ``tender_pipeline.identity``).
- currency: an explicit currency column (codes or names like ``Ghana Cedi``)
  wins, then the symbol or code in the amount cell (``Gh¢``, ``₹``, ``£``,
  ``R``), then ``defaults.currency``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, PrivateAttr, field_validator

from tender_pipeline import identity, normalize
from tender_pipeline.models import CANONICAL_COLUMNS

_TEMPLATE_FIELD = re.compile(r"\{([^{}]+)\}")
DATE_FIELDS = ("published_date", "closing_date")
MAX_NATIVE_ID = 200


@lru_cache(maxsize=8192)  # called per cell: a batch has few distinct header names
def norm_header(name: str) -> str:
    """Header key used for matching: trimmed, lower-case, single spaces, no trailing colon."""
    text = re.sub(r"\s+", " ", str(name).replace("\ufeff", "")).strip().lower()
    return text.rstrip(":").strip()


class Profile(BaseModel):
    """How one source layout maps onto the canonical columns."""

    name: str
    description: str = ""
    match: list[str] = Field(min_length=1, description="Header columns that must all be present.")
    columns: dict[str, str | list[str]]
    join: dict[str, list[str]] = Field(default_factory=dict,
                                       description="Fields built by joining several columns.")
    defaults: dict[str, str] = Field(default_factory=dict)
    dayfirst: bool = True
    id_prefix: str = ""
    placeholders: list[str] = Field(default_factory=list)
    value_maps: dict[str, dict[str, str]] = Field(default_factory=dict)
    templates: dict[str, str] = Field(default_factory=dict)
    date_formats: list[str] = Field(default_factory=list)
    id_template: str = ""
    id_pattern: str = ""
    content_id: list[str] = Field(default_factory=list)
    _placeholder_set: frozenset[str] = PrivateAttr(default=frozenset())

    @field_validator("columns", "join", "defaults", "value_maps", "templates")
    @classmethod
    def _known_fields(cls, value: dict) -> dict:
        unknown = sorted(set(value) - set(CANONICAL_COLUMNS))
        if unknown:
            raise ValueError(f"unknown canonical field(s): {', '.join(unknown)}")
        return value

    @field_validator("value_maps")
    @classmethod
    def _valid_regexes(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for patterns in value.values():
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"value_maps pattern {pattern!r} is not a valid regex: {exc}") from None
        return value

    def _blank(self, value: object) -> bool:
        if normalize.is_blank(value):
            return True
        text = " ".join(str(value).split()).lower()
        return not text or text in self._placeholder_set

    def model_post_init(self, __context: object) -> None:
        self._placeholder_set = frozenset(" ".join(p.split()).lower() for p in self.placeholders)

    def _cell(self, row: dict[str, str], column: str) -> str:
        value = row.get(norm_header(column), "")
        return "" if self._blank(value) else str(value).strip()

    def _fill(self, template: str, row: dict[str, str], extra: dict[str, str]) -> str:
        """A ``{Column}`` template; '' when every referenced value is blank."""
        names = _TEMPLATE_FIELD.findall(template)
        values = {n: extra[n] if n in extra else self._cell(row, n) for n in names}
        if not any(values.values()):
            return ""
        text = _TEMPLATE_FIELD.sub(lambda m: values[m.group(1)], template)
        return normalize.clean_text(text).strip(" :-—,/")

    def _remap(self, target: str, value: str) -> str:
        for pattern, replacement in self.value_maps.get(target, {}).items():
            match = re.fullmatch(pattern, value, flags=re.IGNORECASE | re.DOTALL)
            if match:
                return match.expand(replacement).strip()
        return value

    def _tender_id(self, row: dict[str, str], native: str) -> str:
        native = normalize.clean_text(native)
        if native and self.id_pattern and not re.search(self.id_pattern, native):
            native = ""
        if native:
            built = self._fill(self.id_template, row, {"tender_id": native}) if self.id_template else native
            if len(built) > MAX_NATIVE_ID:  # ids must stay short; hash an over-long one
                return identity.content_id(self.id_prefix, [built])
            return f"{self.id_prefix}{built}"
        if self.content_id and any(self._cell(row, c) for c in self.content_id):
            return identity.content_id(self.id_prefix, (self._cell(row, c) for c in self.content_id))
        return ""

    def matches(self, headers: set[str]) -> bool:
        return all(norm_header(h) in headers for h in self.match)

    def coverage(self, headers: set[str]) -> int:
        """How many mapped source columns the file has (to rank several matching profiles)."""
        wanted = {norm_header(c) for v in self.columns.values() for c in ([v] if isinstance(v, str) else v)}
        return len(wanted & headers)

    def map_row(self, row: dict[str, str]) -> dict[str, str]:
        """One source row (keys already normalised) → canonical field → raw value."""
        out: dict[str, str] = {}
        for target, sources in self.columns.items():
            for col in [sources] if isinstance(sources, str) else sources:
                value = self._cell(row, col)
                if value:
                    out[target] = value
                    break
        for target, cols in self.join.items():
            parts = [self._cell(row, c) for c in cols]
            joined = " — ".join(dict.fromkeys(p for p in parts if p))
            if joined:
                out[target] = joined
        for target, template in self.templates.items():
            if not out.get(target):
                filled = self._fill(template, row, {})
                if filled:
                    out[target] = filled
        for target in self.value_maps:
            if out.get(target):
                out[target] = self._remap(target, str(out[target]))
        for target in DATE_FIELDS:
            if self.date_formats and out.get(target):
                out[target] = self._format_date(str(out[target]))
        currency = normalize.currency_code(out.get("currency", "")) or str(out.get("currency", "") or "")
        if not currency and out.get("value_amount"):
            currency = normalize.detect_currency(out["value_amount"])
        if currency:
            out["currency"] = currency
        for target, value in self.defaults.items():
            if not str(out.get(target, "") or "").strip():
                out[target] = value
        out["tender_id"] = self._tender_id(row, str(out.get("tender_id", "") or ""))
        return out

    def _format_date(self, value: str) -> str:
        """ISO date when one of ``date_formats`` reads the cell, else the cell unchanged."""
        text = normalize.clean_text(value)
        for fmt in self.date_formats:
            try:
                return datetime.strptime(text, fmt).date().isoformat()
            except ValueError:
                continue
        return value


class UnknownLayoutError(ValueError):
    """No profile matches a file's header."""


def _profile_files(extra: str) -> list[Path]:
    shipped = resources.files("tender_pipeline").joinpath("profiles")
    files = sorted(Path(str(shipped)).glob("*.yaml"))
    for entry in filter(None, extra.split(os.pathsep)):
        path = Path(entry)
        files.extend(sorted(path.glob("*.y*ml")) if path.is_dir() else [path])
    return files


def profile_items(extra: str = "", kind: str = "table") -> Iterator[dict]:
    """The raw profile entries of one ``format`` (``table`` when absent; ``ocds`` for OCDS profiles), in load order."""
    for path in _profile_files(extra):
        data = yaml.safe_load(path.read_text("utf-8"))
        for item in data if isinstance(data, list) else [data]:
            if (item.get("format", "table") if isinstance(item, dict) else "table") == kind:
                yield item


@lru_cache(maxsize=8)
def load_profiles(extra: str = "") -> dict[str, Profile]:
    """All column profiles by name; user files override shipped ones of the same name."""
    profiles: dict[str, Profile] = {}
    for item in profile_items(extra):
        profile = Profile.model_validate(item)
        profiles[profile.name] = profile
    return profiles


def detect_profile(headers: list[str], profiles: dict[str, Profile], file_label: str = "") -> Profile:
    """The matching profile with the best coverage of the header, or a helpful error."""
    keys = {norm_header(h) for h in headers}
    candidates = [p for p in profiles.values() if p.matches(keys)]
    if candidates:
        return max(candidates, key=lambda p: (p.coverage(keys), len(p.match)))
    wants = "; ".join(f"{p.name}: {', '.join(p.match)}" for p in profiles.values())
    raise UnknownLayoutError(
        f"{file_label or 'file'}: unknown column layout. Columns found: "
        f"{_shown(headers)}. Profiles and the columns each requires: "
        f"{wants}. Add a profile file (PROFILES_PATH) or pass --profile."
    )


def _shown(headers: list[str], most: int = 40) -> str:
    """Header names for a one-line message: whitespace (line breaks too) collapsed, long lists cut."""
    names = [" ".join(h.split())[:80] for h in headers if h.strip()]
    more = f" … and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more if names else "(none)"


def get_profile(name: str, profiles: dict[str, Profile]) -> Profile:
    try:
        return profiles[name]
    except KeyError:
        raise UnknownLayoutError(
            f"unknown profile {name!r}; known profiles: {', '.join(sorted(profiles))}"
        ) from None
