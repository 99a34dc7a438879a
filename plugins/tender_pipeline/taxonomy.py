"""Procurement taxonomy: CPV 2008 divisions shipped with the package, finer codes optional.

``TAXONOMY_PATH`` may point to a fuller code→label file (JSON object such as
the CPV ``en.json``, or a two-column CSV ``code,label``); its 3-digit groups
then become subsectors.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

_DIGITS = re.compile(r"\d{8}")


@dataclass(frozen=True)
class Division:
    code: str  # two digits, e.g. "45"
    label: str
    hints: str = ""

    @property
    def procurement_type(self) -> str:
        """CPV convention: division 45 is works, 03–44 and 48 are supplies, 50+ services."""
        n = int(self.code)
        if n == 45:
            return "Works"
        if n < 50:
            return "Supply"
        return "Services"


@dataclass
class Taxonomy:
    divisions: dict[str, Division]
    labels: dict[str, str] = field(default_factory=dict)  # 8-digit code → label (fuller file)

    def division_of(self, cpv_code: str) -> Division | None:
        return self.divisions.get(cpv_code[:2])

    def division_of_record(self, cpv_codes: list[str]) -> Division | None:
        """The division of a notice's first known CPV code: certain, so it beats any classifier's guess."""
        return next((d for d in map(self.division_of, cpv_codes) if d), None)

    def subsector_of(self, cpv_code: str) -> str:
        """Label of the code's group (first 3 digits), when a fuller taxonomy is loaded."""
        if not self.labels or len(cpv_code) < 3 or cpv_code[2] == "0":
            return ""
        return self.labels.get(cpv_code[:3] + "00000", "")

    def groups_in(self, division_code: str) -> dict[str, str]:
        """Group code → label within a division (empty without a fuller taxonomy)."""
        return {
            code: label for code, label in self.labels.items()
            if code.startswith(division_code) and code[2] != "0" and code[3:] == "00000"
        }


def _load_divisions() -> dict[str, Division]:
    raw = json.loads(resources.files("tender_pipeline").joinpath("data/cpv_divisions.json").read_text("utf-8"))
    return {e["code"][:2]: Division(e["code"][:2], e["label"], e.get("hints", "")) for e in raw["entries"]}


def _load_labels(path: Path) -> dict[str, str]:
    """Read code→label pairs from JSON (object) or CSV (first two columns)."""
    if not path.exists():
        raise FileNotFoundError(f"TAXONOMY_PATH={path} does not exist")
    pairs: list[tuple[str, str]] = []
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text("utf-8"))
        pairs = list(data.items()) if isinstance(data, dict) else [(d["code"], d["label"]) for d in data]
    else:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            pairs = [(row[0], row[1]) for row in csv.reader(fh) if len(row) >= 2]
    labels: dict[str, str] = {}
    for code, label in pairs:
        m = _DIGITS.search(str(code))
        if m:
            labels[m.group(0)] = str(label).strip()
    return labels


@lru_cache(maxsize=4)
def load_taxonomy(taxonomy_path: str = "") -> Taxonomy:
    """The shipped divisions, plus finer labels from ``taxonomy_path`` when given."""
    divisions = _load_divisions()
    labels = _load_labels(Path(taxonomy_path)) if taxonomy_path else {}
    return Taxonomy(divisions=divisions, labels=labels)
