"""Weekly snapshots and corrigenda through the real pipeline stages (embedded Chroma, local models)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tender_pipeline import pipeline
from tender_pipeline.settings import Settings
from tests import stored

FIXTURES = Path(__file__).parent / "fixtures" / "profiles"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(chroma_host="", chroma_path=str(tmp_path / "chroma"), staging_uri=str(tmp_path / "staging"),
                    lexical_index_path=str(tmp_path / "lexical"),
                    tender_collection="versions", enrich_backend="local", embed_backend="local",
                    profile="", profiles_path="")


def ingest(settings: Settings, run_id: str, name: str) -> dict:
    summary = pipeline.run_all(settings, run_id, source=str(FIXTURES / name))
    (counts,) = summary["per_file"].values()
    parts = ("inserted", "updated", "unchanged", "duplicates", "quarantined")
    assert counts["rows"] == sum(counts[k] for k in parts)  # every row accounted for
    return counts


def metadata(settings: Settings) -> dict[str, dict]:
    return stored.cards(settings)


def test_snapshot_reingest_updates_and_counts_versions(settings):
    first = ingest(settings, "week1", "pk_ppra.csv")
    assert (first["inserted"], first["updated"]) == (2, 0)
    meta = metadata(settings)
    assert meta["pk-ppra:TS0000009001E"]["versions"] == 1
    assert meta["pk-ppra:TS0000009002E"]["is_corrigendum"] is True  # PublishedCorrigendum status

    second = ingest(settings, "week2", "pk_ppra_week2.csv")
    # 9001 is the same, 9002 changed (new closing date), 9003 is new
    assert (second["inserted"], second["updated"], second["unchanged"]) == (1, 1, 1)
    meta = metadata(settings)
    assert set(meta) == {f"pk-ppra:TS000000900{i}E" for i in (1, 2, 3)}  # one document per tender
    assert meta["pk-ppra:TS0000009002E"]["versions"] == 2
    assert meta["pk-ppra:TS0000009002E"]["closing_date"] == "2026-11-16"
    assert meta["pk-ppra:TS0000009001E"]["versions"] == 1

    again = ingest(settings, "week2-rerun", "pk_ppra_week2.csv")
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 3)
    assert metadata(settings)["pk-ppra:TS0000009002E"]["versions"] == 2  # a rerun does not bump it


def test_amendment_in_a_later_batch_updates_the_original(settings, tmp_path):
    header = (FIXTURES / "za_etenders_advertised.csv").read_text("utf-8").splitlines()
    original = tmp_path / "original.csv"
    amendment = tmp_path / "amendment.csv"
    lines = {line.split(",")[1]: line for line in header[1:]}
    original.write_text("\n".join([header[0], lines["DOH/07/2026"]]) + "\n", "utf-8")
    amendment.write_text("\n".join([header[0], lines["ADDENDUM DOH/07/2026"]]) + "\n", "utf-8")

    assert ingest(settings, "orig", str(original))["inserted"] == 1
    counts = ingest(settings, "amend", str(amendment))
    assert (counts["inserted"], counts["updated"]) == (0, 1)
    meta = metadata(settings)
    assert list(meta) == ["za-etenders:DOH/07/2026"]
    doc = meta["za-etenders:DOH/07/2026"]
    assert doc["is_corrigendum"] is True and doc["versions"] == 2
    assert doc["closing_date"] == "2026-03-17"
