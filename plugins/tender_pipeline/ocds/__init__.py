"""Open Contracting Data Standard (OCDS) sources: files and paginated search APIs.

Publishers such as UK Contracts Finder, Find a Tender, Canada, Colombia or
ProZorro publish OCDS releases rather than CSV batches, as files (release
packages, record packages, bare releases, JSON Lines) and through search APIs
that page through what was published in a date window. This package reads both:

* ``reader``: streams releases and records out of ``.json``, ``.jsonl`` and
  ``.gz`` files without loading them whole;
* ``group``: gathers the releases of each OCID on disk and merges them into one
  compiled release (the standard's merge routine, via ``ocdsmerge``);
* ``profile``: maps a compiled release onto the canonical record with a
  profile file (JMESPath expressions instead of column names);
* ``batch``: turns OCDS files into validate's counts, records and quarantine;
* ``api``: fetches one data interval from a paginated API (``ocds+https://``).
"""

from __future__ import annotations

OCDS_SUFFIXES: tuple[str, ...] = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")


def is_ocds_file(name: str) -> bool:
    """True for the file names the OCDS reader takes (by suffix, case-insensitively)."""
    return name.lower().endswith(OCDS_SUFFIXES)
