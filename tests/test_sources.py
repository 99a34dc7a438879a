"""Interval → files mapping, the ledger, and fetching from a folder, S3 (moto server) and HTTP."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tender_pipeline import pipeline, sources, staging
from tender_pipeline.settings import Settings

UTC = UTC
T0 = datetime(2026, 11, 27, 0, tzinfo=UTC)


def _put(root: Path, hour: datetime, name: str, body: str = "tender_id,title\nA1,Road works\n") -> Path:
    path = root / hour.strftime("%Y-%m-%d/%H") / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


def test_interval_hours_cover_the_interval_and_nothing_else():
    hours = sources.interval_hours(T0, T0 + timedelta(hours=6))
    assert hours == [T0 + timedelta(hours=h) for h in range(6)]
    # a zero-width interval (e.g. a plain cron schedule) still maps to its own hour
    assert sources.interval_hours(T0, T0) == [T0]


def test_consecutive_intervals_take_disjoint_files(tmp_path):
    for h, name in [(0, "a.csv"), (5, "b.xlsx"), (6, "c.csv"), (11, "d.csv"), (12, "e.csv")]:
        _put(tmp_path, T0 + timedelta(hours=h), name)
    _put(tmp_path, T0, "notes.txt")  # not a batch file
    first = [f.name for f in sources.list_interval(str(tmp_path), T0, T0 + timedelta(hours=6))]
    second = [f.name for f in sources.list_interval(str(tmp_path), T0 + timedelta(hours=6), T0 + timedelta(hours=12))]
    assert first == ["a.csv", "b.xlsx"]
    assert second == ["c.csv", "d.csv"]


def test_backfill_over_two_intervals_processes_each_file_once(tmp_path):
    incoming, stage = tmp_path / "incoming", tmp_path / "staging"
    _put(incoming, T0 + timedelta(hours=1), "morning.csv")
    _put(incoming, T0 + timedelta(hours=7), "noon.csv", "tender_id,title\nB1,Bridge\nB2,School\n")
    settings = Settings(incoming_uri=str(incoming), staging_uri=str(stage))
    intervals = [(T0, T0 + timedelta(hours=6)), (T0 + timedelta(hours=6), T0 + timedelta(hours=12))]

    taken = {}
    for i, interval in enumerate(intervals):
        run = pipeline.fetch(settings, f"backfill__{i}", interval=interval)
        taken[i] = [f["name"] for f in staging.read_json(Path(run) / "fetch.json")["files"]]
    assert taken == {0: ["morning.csv"], 1: ["noon.csv"]}

    # a scheduled run for an interval already backfilled takes nothing again...
    again = pipeline.fetch(settings, "scheduled__0", interval=intervals[0])
    fetched = staging.read_json(Path(again) / "fetch.json")
    assert fetched["files"] == [] and fetched["skipped_files"][0]["claimed_by"] == "backfill__0"
    # ...while a retry of the run that claimed the file gets it back (same run id)
    retry = pipeline.fetch(settings, "backfill__0", interval=intervals[0])
    assert [f["name"] for f in staging.read_json(Path(retry) / "fetch.json")["files"]] == ["morning.csv"]
    # a changed file (new content under the same name) is a new batch
    _put(incoming, T0 + timedelta(hours=1), "morning.csv", "tender_id,title\nA1,Road works v2\n")
    changed = pipeline.fetch(settings, "scheduled__0b", interval=intervals[0])
    assert [f["name"] for f in staging.read_json(Path(changed) / "fetch.json")["files"]] == ["morning.csv"]
    owners = sorted(e["run_id"] for e in sources.Ledger(settings.ledger_dir).entries())
    assert owners == ["backfill__0", "backfill__1", "scheduled__0b"]


def test_explicit_source_bypasses_the_ledger(tmp_path, sample_csv):
    settings = Settings(staging_uri=str(tmp_path / "staging"))
    for run_id in ("manual__1", "manual__2"):
        run = pipeline.fetch(settings, run_id, source=str(sample_csv))
        assert len(staging.read_json(Path(run) / "fetch.json")["files"]) == 1
    with pytest.raises(sources.SourceNotFoundError, match="no-such.csv"):
        pipeline.fetch(settings, "manual__3", source=str(tmp_path / "no-such.csv"))


@pytest.fixture
def http_folder(tmp_path):
    """A real HTTP server over a folder, on a free port."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_template_fetches_each_hour_and_skips_missing(tmp_path, http_folder, sample_csv):
    root, base = http_folder
    (root / "exports").mkdir()
    shutil.copy(sample_csv, root / "exports" / "2026-11-27T02.csv")
    settings = Settings(incoming_uri=base + "/exports/{hour:%Y-%m-%dT%H}.csv", staging_uri=str(tmp_path / "st"))
    run = pipeline.fetch(settings, "scheduled__http", interval=(T0, T0 + timedelta(hours=6)))
    files = staging.read_json(Path(run) / "fetch.json")["files"]
    assert [f["name"] for f in files] == ["2026-11-27T02.csv"]  # the other five hours answered 404
    staged = Path(run) / "raw" / files[0]["staged"]
    assert staged.read_bytes() == sample_csv.read_bytes()


def test_redact_strips_credentials_and_query():
    assert sources.redact("https://user:pw@host:8443/a.csv?X-Amz-Signature=abc") == "https://host:8443/a.csv"
