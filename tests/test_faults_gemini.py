"""A whole run against a misbehaving Gemini (the local fake): it completes, and the fallbacks are counted.

One run meets, in order: 429 with Retry-After, 500, a timeout, a truncated JSON
answer, an answer about other records' ids, and two records Gemini never
answers. The run must upsert every row, mark exactly those two as offline
fallbacks, and say so in its summary.
"""

from __future__ import annotations

import uuid

import chromadb
import pytest

from tender_pipeline import pipeline
from tests import stored
from tests.batches import read_rows, write_rows
from tests.gemini_fake import Drop, FakeGemini, Foreign, Malformed, Slow, Status, gemini_settings

pytestmark = pytest.mark.slow
ROWS = 45


def test_run_survives_every_gemini_fault_and_counts_the_fallbacks(tmp_path, sample_csv, chroma):
    rows = read_rows(sample_csv)[:ROWS]
    path = write_rows(tmp_path / "batch.csv", rows)
    never = {rows[3]["tender_id"], rows[30]["tender_id"]}
    host, port = chroma
    with FakeGemini() as fake:
        fake.script("generate", Status(429, retry_after=0.05), Status(500), Slow(2.5), Malformed(), Foreign())
        for tid in never:
            fake.per_record[tid] = Drop()
        settings = gemini_settings(fake.base_url, tmp_path, chroma_host=host, chroma_port=port,
                                   tender_collection=f"gf_{uuid.uuid4().hex[:8]}", gemini_max_retries=5,
                                   gemini_timeout_s=1.0, gemini_max_concurrency=1, gemini_enrich_batch_size=20,
                                   gemini_context_cache=False)
        summary = pipeline.run_all(settings, "gemini-faults", source=str(path))
        statuses = [r.status for r in fake.log("generate")]

    assert statuses[:2] == [429, 500]  # the scripted faults really reached the client, then the rest
    assert (summary["rows_read"], summary["valid"], summary["upserted"]) == (ROWS, ROWS, ROWS)
    assert summary["enrichment_sources"] == {"gemini": ROWS - 2, "fallback": 2}
    usage = summary["enrichment_usage"]
    assert usage["fallbacks"] == 2 and usage["retries"] >= 3 and usage["invalid_answers"] >= 1
    collection = chromadb.HttpClient(host=host, port=port).get_collection(settings.tender_collection)
    fallbacks = [tid for tid, card in stored.cards(settings).items() if card["enrichment_source"] == "fallback"]
    assert set(fallbacks) == never and collection.count() == ROWS
