"""Staging bounded: kept parts sealed at upsert, run folders pruned, the ledger still refusing ingested files.

Two scheduled-style runs (interval + ledger) against a real `chroma run`: the
second replaces one notice of the first. Pruning deletes both run folders,
drops or trims kept rows that are replaced or past retention, and keeps the
ledger, so rerunning a batch ingests nothing twice; the stores rebuilt from
what is left hold every live notice with the same card.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tender_pipeline import kept, pipeline, rebuild, slots, sources, staging_retention, store
from tender_pipeline.embed import get_embedder
from tender_pipeline.lexical import Filters, open_index
from tender_pipeline.settings import Settings

pytestmark = pytest.mark.slow
TODAY = date(2026, 11, 27)
T0 = datetime(2026, 11, 27, 0, tzinfo=UTC)
FIRST, SECOND = (T0, T0 + timedelta(hours=6)), (T0 + timedelta(hours=6), T0 + timedelta(hours=12))
HEADER = "tender_id,title,description,buyer,country,closing_date,source\n"


def _batch(incoming: Path, hour: datetime, name: str, rows: list[tuple[str, str, int | None]]) -> Path:
    """rows: (id, title, closing date in days from TODAY or None)."""
    path = incoming / hour.strftime("%Y-%m-%d/%H") / name
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{tid},{title},Resurfacing and drainage works.,City Roads,Ghana,"
             f"{(TODAY + timedelta(days=d)).isoformat() if d is not None else ''},test\n" for tid, title, d in rows]
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def world(chroma, tmp_path) -> Settings:
    host, port = chroma
    settings = Settings(chroma_host=host, chroma_port=port, tender_collection=f"keep_{uuid.uuid4().hex[:8]}",
                        incoming_uri=str(tmp_path / "incoming"), staging_uri=str(tmp_path / "staging"),
                        lexical_index_path=str(tmp_path / "lexical"), embed_backend="local",
                        enrich_backend="local", retention_days=14, staging_retention_days=7)
    _batch(tmp_path / "incoming", T0 + timedelta(hours=1), "morning.csv",
           [("A", "Road works A", 40), ("B", "Road works B", -20), ("C", "Road works C", 5),
            ("D", "Road works D", None)])
    _batch(tmp_path / "incoming", T0 + timedelta(hours=7), "noon.csv",
           [("C", "Road works C amended", 9), ("E", "Road works E", 60)])
    assert pipeline.run_all(settings, "scheduled__1", interval=FIRST)["upserted"] == 4
    assert pipeline.run_all(settings, "scheduled__2", interval=SECOND)["upserted"] == 2
    return settings


def cards(settings: Settings) -> dict[str, dict]:
    index = open_index(settings.lexical_dir)
    index.index.reload()
    return {h.id: h.card for h in index.matching(Filters(), 100)}


def test_upsert_seals_the_rows_and_vectors_a_rebuild_needs(world):
    parts = kept.parts(world.staging_uri)
    assert [p.manifest["run"] for p in parts] == ["scheduled__1", "scheduled__2"]
    first = parts[0]
    run = Path(world.staging_uri) / "scheduled__1"
    assert first.manifest["rows"] == 4
    assert os.stat(first.file("rows")).st_ino == os.stat(run / "enriched.jsonl").st_ino  # a link, no copy
    assert list(first.index()["h"]) == [kept.id_hash(t) for t in "ABCD"]
    card = cards(world)["A"]
    assert first.manifest["ingested_at"].startswith(card["ingested_at"][:19])  # the time the stores were given
    assert json.loads((run / kept.SEALED).read_text())["part"] == first.name


def test_prune_keeps_live_notices_and_the_ledger_so_a_rerun_ingests_nothing_twice(world):
    before = cards(world)
    got = staging_retention.prune(world, today=TODAY, now=time.time() + 8 * 86_400)
    root = Path(world.staging_uri)
    assert got["runs_deleted"] == 2 and not (root / "scheduled__1").exists() and not (root / "scheduled__2").exists()
    # first part: A and D live, B past retention, C replaced by the second run → 2 of 4 live: trimmed
    assert (got["kept_parts"], got["kept_parts_trimmed"], got["kept_live"], got["kept_rows_kept"]) == (2, 1, 4, 4)
    first = kept.parts(world.staging_uri)[0]
    assert first.manifest["generation"] == 1 and [r["record"]["tender_id"] for r in first.rows()] == ["A", "D"]
    assert len(sources.Ledger(world.ledger_dir).entries()) == 2  # the ledger outlives the run folders

    again = pipeline.run_all(world, "manual__again", interval=FIRST)  # another run over the same batch
    assert (again["files"], again["skipped_files"], again["upserted"]) == (0, 1, 0)
    rerun = pipeline.run_all(world, "scheduled__2", interval=SECOND)  # the run that owns the batch, cleared
    assert (rerun["files"], rerun["unchanged"], rerun["upserted"]) == (1, 2, 0)
    assert [p.manifest["run"] for p in kept.parts(world.staging_uri)] == ["scheduled__1", "scheduled__2"]
    assert cards(world) == before


def test_both_stores_rebuild_after_pruning_with_the_same_cards(world):
    staging_retention.prune(world, today=TODAY, now=time.time() + 8 * 86_400)
    live = {tid: card for tid, card in cards(world).items() if tid != "B"}  # B is past retention as of TODAY
    embedder = get_embedder(world)
    collection = store.open_collection(store.get_client(world), world.tender_collection, embedder.model_id,
                                       embedder.dim)
    slots.release(collection, ["A"])
    open_index(world.lexical_dir).clear()
    got = rebuild.from_staging(world, today=TODAY)
    assert got["records_replayed"] == 4 and got["collection_count"] == got["lexical_count"] == 4
    assert cards(world) == live
    assert live["C"]["title"] == "Road works C amended" and live["C"]["versions"] == 2


def test_a_part_with_no_live_row_is_dropped_and_orphans_go(world):
    later = TODAY + timedelta(days=200)  # everything with a closing date is past retention; D has none
    got = staging_retention.prune(world, today=later, now=time.time() + 8 * 86_400)
    assert (got["kept_parts_dropped"], got["kept_live"]) == (1, 1)
    (Path(world.staging_uri) / kept.KEPT / "x.g0.jsonl").write_text("{}\n")  # a seal that died midway
    old = time.time() - 2 * 86_400
    os.utime(Path(world.staging_uri) / kept.KEPT / "x.g0.jsonl", (old, old))
    assert staging_retention.prune(world, today=later)["orphans_removed"] == 1


def test_runs_completed_before_parts_existed_are_sealed_with_their_upsert_time(world):
    root = Path(world.staging_uri)
    for part in kept.parts(root):
        kept.drop(part)
    for run in ("scheduled__1", "scheduled__2"):
        (root / run / kept.SEALED).unlink()
    stamp = datetime(2026, 11, 27, 8, 30, tzinfo=UTC).timestamp()
    os.utime(root / "scheduled__1" / "upsert.json", (stamp, stamp))
    got = staging_retention.prune(world, today=TODAY)
    assert got["runs_adopted"] == 2 and got["runs_deleted"] == 0
    first = kept.parts(root)[0]
    assert first.manifest["run"] == "scheduled__1" and first.ingested_at.timestamp() == stamp


def test_live_rows_are_the_newest_write_of_each_id_not_past_retention():
    def index(rows):
        return np.array(rows, dtype=kept.INDEX_DTYPE)

    old = index([(1, 20261201, 100), (2, 20261101, 100), (3, 0, 100), (4, 0, 100)])
    new = index([(1, 20261215, 200), (5, 0, 200)])
    masks = kept.live_masks([old, new], closing_before=20261115, unknown_before=None)
    assert [m.tolist() for m in masks] == [[False, False, True, True], [True, True]]
    masks = kept.live_masks([old, new], closing_before=20261115, unknown_before=150)  # unknown dates expire too
    assert [m.tolist() for m in masks] == [[False, False, False, False], [True, True]]
    assert kept.cutoffs(TODAY, 14, 0) == (20261113, None)


def test_ocds_api_pages_go_after_staging_retention_but_the_interval_stays_claimed(tmp_path):
    settings = Settings(staging_uri=str(tmp_path / "staging"), lexical_index_path=str(tmp_path / "lexical"),
                        staging_retention_days=7)
    pages = Path(settings.staging_uri) / "_ocds_pages"
    for key, age_days in (("old", 9), ("fresh", 1)):
        (pages / key).mkdir(parents=True)
        for name in ("page-0001.json", "done.json"):
            (pages / key / name).write_text("{}")
            stamp = time.time() - age_days * 86_400
            os.utime(pages / key / name, (stamp, stamp))
    ledger = sources.Ledger(settings.ledger_dir)
    assert ledger.claim("ocds+https://portal/search [2026-11-01, 2026-11-02)", "k", "scheduled__1")
    got = staging_retention.prune(settings)
    assert got["ocds_intervals_deleted"] == 1
    assert sorted(p.name for p in pages.iterdir()) == ["fresh"]
    assert not ledger.claim("ocds+https://portal/search [2026-11-01, 2026-11-02)", "k", "scheduled__2")
