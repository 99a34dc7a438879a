"""Column-mapping profiles: data files that map a source layout onto the canonical one.

A profile names the header columns that identify its layout (``match``), the
source column(s) for each canonical field (a list means "first non-blank"),
constant ``defaults`` for fields the file lacks, and the date rule. Shipped
profiles live in ``profiles/*.yaml``; ``PROFILES_PATH`` adds a user's own.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, field_validator

from tender_pipeline.models import CANONICAL_COLUMNS


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

    @field_validator("columns", "join", "defaults")
    @classmethod
    def _known_fields(cls, value: dict) -> dict:
        unknown = sorted(set(value) - set(CANONICAL_COLUMNS))
        if unknown:
            raise ValueError(f"unknown canonical field(s): {', '.join(unknown)}")
        return value

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
                value = row.get(norm_header(col), "")
                if value is not None and str(value).strip():
                    out[target] = value
                    break
        for target, cols in self.join.items():
            parts = [str(row.get(norm_header(c), "") or "").strip() for c in cols]
            joined = " — ".join(p for p in parts if p)
            if joined:
                out[target] = joined
        for target, value in self.defaults.items():
            if not str(out.get(target, "") or "").strip():
                out[target] = value
        if self.id_prefix and out.get("tender_id"):
            out["tender_id"] = f"{self.id_prefix}{str(out['tender_id']).strip()}"
        return out


class UnknownLayoutError(ValueError):
    """No profile matches a file's header."""


def _profile_files(extra: str) -> list[Path]:
    shipped = resources.files("tender_pipeline").joinpath("profiles")
    files = sorted(Path(str(shipped)).glob("*.yaml"))
    for entry in filter(None, extra.split(os.pathsep)):
        path = Path(entry)
        files.extend(sorted(path.glob("*.y*ml")) if path.is_dir() else [path])
    return files


@lru_cache(maxsize=8)
def load_profiles(extra: str = "") -> dict[str, Profile]:
    """All profiles by name; user files override shipped ones of the same name."""
    profiles: dict[str, Profile] = {}
    for path in _profile_files(extra):
        data = yaml.safe_load(path.read_text("utf-8"))
        for item in data if isinstance(data, list) else [data]:
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
        f"{', '.join(h.strip() for h in headers) or '(none)'}. Profiles and the columns each requires: "
        f"{wants}. Add a profile file (PROFILES_PATH) or pass --profile."
    )


def get_profile(name: str, profiles: dict[str, Profile]) -> Profile:
    try:
        return profiles[name]
    except KeyError:
        raise UnknownLayoutError(
            f"unknown profile {name!r}; known profiles: {', '.join(sorted(profiles))}"
        ) from None
