"""OCDS mapping profiles: the column profiles' rules, with JMESPath expressions for columns.

An OCDS profile is a profile file entry with ``format: ocds``. Where a column
profile names a header column, an OCDS profile names a JMESPath expression
evaluated on the OCID's compiled release (``tender.title``,
``parties[?contains(roles, 'buyer')].name | [0]``). Everything else is the
column profiles' machinery: a list means "first non-blank", ``join``,
``templates``, ``value_maps``, ``defaults``, ``id_prefix``. An expression that
yields a list gives its distinct values joined by ``; `` (every CPV code of
every item, every other classification as category text).

``match`` lists ocid prefixes (``ocds-b5fd17`` is UK Contracts Finder): the
profile with the longest matching prefix maps an OCID (on a tie the one loaded
last: a user's over a shipped one); a profile with an empty ``match`` (the
shipped ``ocds``) takes every other. The compiled release also
carries ``tag`` (the tags of all its releases) and ``_package`` (the metadata
of the package its latest release came from: ``uri``, ``publisher``, ...).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import Field, ValidationInfo, field_validator

from tender_pipeline.profiles import Profile, UnknownLayoutError, profile_items


@lru_cache(maxsize=1024)
def _expression(text: str) -> Any:
    return jmespath.compile(text)


def _flat(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [leaf for item in value for leaf in _flat(item)]
    return [value]


def _text(value: Any) -> str:
    if value is None or isinstance(value, (dict, bool)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return " ".join(str(value).split())


class OcdsProfile(Profile):
    """How the compiled releases of one publisher (or of any) map onto the canonical columns."""

    format: Literal["ocds"] = "ocds"
    match: list[str] = Field(default_factory=list, description="ocid prefixes this profile maps (empty: any).")
    dayfirst: bool = False  # OCDS dates are ISO 8601

    @field_validator("columns", "join", "templates", "content_id")
    @classmethod
    def _valid_expressions(cls, value: Any, info: ValidationInfo) -> Any:
        texts: list[str] = []
        for item in value.values() if isinstance(value, dict) else value:
            texts.extend([item] if isinstance(item, str) else item)
        if info.field_name == "templates":  # "{expression}" placeholders in text
            texts = [part for text in texts for part in text.replace("}", "{").split("{")[1::2]]
        for text in texts:
            try:
                _expression(text)
            except JMESPathError as exc:
                raise ValueError(f"{text!r} is not a valid JMESPath expression: {exc}") from None
        return value

    def _cell(self, row: dict[str, Any], column: str) -> str:
        """The value of expression ``column`` in the compiled release ``row``, as text ('' when blank)."""
        value = _expression(column).search(row)
        texts = [t for t in (_text(v) for v in _flat(value)) if t and not self._blank(t)]
        return "; ".join(dict.fromkeys(texts))

    def matches_ocid(self, ocid: str) -> int:
        """Length of the longest prefix of ``ocid`` in ``match``; 0 for a catch-all; -1 when not this publisher's."""
        if not self.match:
            return 0
        return max((len(p) for p in self.match if ocid.startswith(p)), default=-1)


@lru_cache(maxsize=8)
def load_ocds_profiles(extra: str = "") -> dict[str, OcdsProfile]:
    """All OCDS profiles by name (shipped, then ``PROFILES_PATH``); a later one of the same name wins."""
    profiles: dict[str, OcdsProfile] = {}
    for item in profile_items(extra, kind="ocds"):
        profile = OcdsProfile.model_validate(item)
        profiles[profile.name] = profile
    return profiles


class ProfileChooser:
    """Picks the profile for each OCID: the one forced by name, else the longest matching ocid prefix."""

    def __init__(self, profiles: dict[str, OcdsProfile], forced: str = "") -> None:
        if forced and forced not in profiles:
            raise UnknownLayoutError(f"unknown OCDS profile {forced!r}; OCDS profiles: {', '.join(sorted(profiles))}")
        self.profiles, self.forced = profiles, forced

    def __call__(self, ocid: str) -> OcdsProfile:
        if self.forced:
            return self.profiles[self.forced]
        # the longest prefix wins; on a tie the profile loaded last (a user's PROFILES_PATH over the shipped)
        score, _, name = max(((p.matches_ocid(ocid), i, p.name) for i, p in enumerate(self.profiles.values())),
                             default=(-1, 0, ""))
        if score < 0:
            raise UnknownLayoutError(
                f"no OCDS profile maps ocid {ocid!r} and none takes every ocid; "
                f"OCDS profiles: {', '.join(sorted(self.profiles)) or '(none)'}")
        return self.profiles[name]
