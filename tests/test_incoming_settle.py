"""A batch file still being written is not ingested until complete (the rule is in tender_pipeline.sources).

Local folders: a file is taken once untouched for INCOMING_SETTLE_S, or at once when its hour folder holds
the ``_SUCCESS`` marker. S3 (a moto server): a listed object is whole; with INCOMING_REQUIRE_MARKER the
folder waits for its marker. A file left out is not claimed, is counted in the run's summary, and is taken
by the next scheduled run, although its hour folder belongs to the earlier interval.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from tender_pipeline import pipeline, sources, staging
from tender_pipeline.settings import Settings
from tests.services import moto_s3_server

T0 = datetime(2026, 11, 27, 0, tzinfo=UTC)
FIRST = (T0, T0 + timedelta(hours=6))
SECOND = (T0 + timedelta(hours=6), T0 + timedelta(hours=12))
THIRD = (T0 + timedelta(hours=12), T0 + timedelta(hours=18))
HEADER = "tender_id,title,buyer,country\n"


def slot(incoming: Path, hours: int = 5) -> Path:
    """The hour folder of FIRST's last hour: where a file arriving just before the boundary lands."""
    folder = incoming / (T0 + timedelta(hours=hours)).strftime("%Y-%m-%d/%H")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def fetched(run: str) -> dict:
    return staging.read_json(Path(run) / "fetch.json")


def age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


class Appender(threading.Thread):
    """A producer still writing: appends a row every 50 ms until stopped."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.rows, self.stop = path, 0, threading.Event()
        path.write_text(HEADER, encoding="utf-8")

    def run(self) -> None:
        while not self.stop.is_set():
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(f"T-{self.rows},Road works {self.rows},Highway Authority,Kenya\n")
            self.rows += 1
            time.sleep(0.05)


def test_a_file_being_appended_to_waits_and_the_next_run_takes_it_whole(tmp_path):
    incoming = tmp_path / "incoming"
    settings = Settings(incoming_uri=str(incoming), staging_uri=str(tmp_path / "staging"), incoming_settle_s=1.0)
    ready = slot(incoming, 1) / "early.csv"
    ready.write_text(HEADER + "E-1,Bridge,Roads Board,Kenya\n", encoding="utf-8")
    age(ready, 10)
    writer = Appender(slot(incoming) / "late.csv")
    writer.start()
    try:
        time.sleep(0.3)
        first = fetched(pipeline.fetch(settings, "scheduled__first", interval=FIRST))
    finally:
        writer.stop.set()
        writer.join()
    assert [f["name"] for f in first["files"]] == ["early.csv"]  # settled: taken
    assert [Path(p["uri"]).name for p in first["pending_files"]] == ["late.csv"]
    assert "still being written" in first["pending_files"][0]["reason"]
    ledger = sources.Ledger(settings.ledger_dir)
    assert [Path(e["uri"]).name for e in ledger.entries()] == ["early.csv"]  # the pending file is not claimed
    summary = pipeline.summarize(staging.location(settings.staging_uri) / "scheduled__first")
    assert (summary["files"], summary["pending_files"], summary["late_files"]) == (1, 1, 0)

    # the next interval's run: the file's hour folder is not its own, yet it is taken once settled
    time.sleep(1.2)
    second_run = pipeline.fetch(settings, "scheduled__second", interval=SECOND)
    second = fetched(second_run)
    assert [(f["name"], f.get("late")) for f in second["files"]] == [("late.csv", True)]
    assert (second["pending_files"], second["late_files"]) == ([], 1)
    staged = (Path(second_run) / "raw" / second["files"][0]["staged"]).read_text(encoding="utf-8")
    assert staged.count("\n") == writer.rows + 1 and staged == writer.path.read_text(encoding="utf-8")
    assert ledger.pending() == []

    # taken once: neither the next run nor a rerun of the first interval takes it again
    assert fetched(pipeline.fetch(settings, "scheduled__third", interval=THIRD))["files"] == []
    rerun = fetched(pipeline.fetch(settings, "scheduled__first", interval=FIRST))
    assert [f["name"] for f in rerun["files"]] == ["early.csv"]
    assert [(Path(s["uri"]).name, s["claimed_by"]) for s in rerun["skipped_files"]] == [("late.csv",
                                                                                         "scheduled__second")]


def test_a_rerun_of_the_interval_takes_a_file_that_has_settled_since(tmp_path):
    incoming = tmp_path / "incoming"
    settings = Settings(incoming_uri=str(incoming), staging_uri=str(tmp_path / "staging"), incoming_settle_s=30)
    batch = slot(incoming) / "batch.csv"
    batch.write_text(HEADER + "A-1,Road,Board,Kenya\n", encoding="utf-8")
    assert fetched(pipeline.fetch(settings, "scheduled__first", interval=FIRST))["files"] == []
    age(batch, 31)
    again = fetched(pipeline.fetch(settings, "scheduled__first", interval=FIRST))  # clear + rerun of the run
    assert [f["name"] for f in again["files"]] == ["batch.csv"] and again["pending_files"] == []
    assert sources.Ledger(settings.ledger_dir).pending() == []  # its note is gone with it


def test_a_marker_completes_the_folder_at_once_and_can_be_required(tmp_path):
    incoming = tmp_path / "incoming"
    folder = slot(incoming)
    for name in ("a.csv", "b.csv"):
        (folder / name).write_text(HEADER + f"{name},Road,Board,Kenya\n", encoding="utf-8")
        age(folder / name, 3600)
    (folder / "c.csv.part").write_text(HEADER, encoding="utf-8")  # a partial name is never a batch file

    required = Settings(incoming_uri=str(incoming), staging_uri=str(tmp_path / "staging"),
                        incoming_require_marker=True)
    waiting = fetched(pipeline.fetch(required, "scheduled__first", interval=FIRST))
    assert waiting["files"] == [] and len(waiting["pending_files"]) == 2
    assert {p["reason"] for p in waiting["pending_files"]} == {"no _SUCCESS marker in its folder yet"}

    (folder / "_SUCCESS").write_bytes(b"")
    taken = fetched(pipeline.fetch(required, "scheduled__second", interval=SECOND))
    assert sorted(f["name"] for f in taken["files"]) == ["a.csv", "b.csv"] and taken["late_files"] == 2

    # with the marker a file just written is taken without waiting out the settle time
    (slot(incoming, 13) / "fresh.csv").write_text(HEADER + "F-1,Road,Board,Kenya\n", encoding="utf-8")
    (slot(incoming, 13) / "_SUCCESS").write_bytes(b"")
    patient = Settings(incoming_uri=str(incoming), staging_uri=str(tmp_path / "staging"), incoming_settle_s=3600)
    assert [f["name"] for f in fetched(pipeline.fetch(patient, "scheduled__third", interval=THIRD))["files"]] \
        == ["fresh.csv"]


def test_a_pending_file_that_disappears_is_forgotten(tmp_path):
    incoming = tmp_path / "incoming"
    settings = Settings(incoming_uri=str(incoming), staging_uri=str(tmp_path / "staging"), incoming_settle_s=60)
    aborted = slot(incoming) / "aborted.csv"
    aborted.write_text(HEADER, encoding="utf-8")
    assert len(fetched(pipeline.fetch(settings, "scheduled__first", interval=FIRST))["pending_files"]) == 1
    aborted.unlink()  # the producer gave up
    second = fetched(pipeline.fetch(settings, "scheduled__second", interval=SECOND))
    assert (second["files"], second["pending_files"]) == ([], [])
    assert sources.Ledger(settings.ledger_dir).pending() == []


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with moto_s3_server(tmp_path_factory.mktemp("moto")) as url:
        client = boto3.client("s3", endpoint_url=url, aws_access_key_id="x", aws_secret_access_key="x",
                              region_name="us-east-1")
        client.create_bucket(Bucket="batches")
        yield client


def test_s3_objects_are_taken_when_listed_and_wait_for_a_required_marker(tmp_path, s3):
    body = (HEADER + "S-1,Road,Board,Kenya\n").encode()
    prefix = (T0 + timedelta(hours=5)).strftime("incoming/%Y-%m-%d/%H/")
    s3.put_object(Bucket="batches", Key=prefix + "whole.csv", Body=body)
    # a PUT is atomic: no settle time applies on S3, however long it is set
    plain = Settings(incoming_uri="s3://batches/incoming/", staging_uri=str(tmp_path / "plain"),
                     incoming_settle_s=3600)
    assert [f["name"] for f in fetched(pipeline.fetch(plain, "scheduled__first", interval=FIRST,
                                                      s3_client=s3))["files"]] == ["whole.csv"]

    later = (T0 + timedelta(hours=11)).strftime("incoming/%Y-%m-%d/%H/")
    for name in ("part1.csv", "part2.csv"):  # a producer writing a batch of several objects
        s3.put_object(Bucket="batches", Key=later + name, Body=body.replace(b"S-1", name.encode()))
    required = Settings(incoming_uri="s3://batches/incoming/", staging_uri=str(tmp_path / "required"),
                        incoming_require_marker=True)
    first = fetched(pipeline.fetch(required, "scheduled__second", interval=SECOND, s3_client=s3))
    assert first["files"] == [] and [p["uri"] for p in first["pending_files"]] == [
        f"s3://batches/{later}part1.csv", f"s3://batches/{later}part2.csv"]
    assert {p["reason"] for p in first["pending_files"]} == {"no _SUCCESS marker under its prefix yet"}
    assert sources.Ledger(required.ledger_dir).entries() == []  # nothing claimed

    s3.put_object(Bucket="batches", Key=later + "_SUCCESS", Body=b"")  # the producer's last PUT
    second = fetched(pipeline.fetch(required, "scheduled__third", interval=THIRD, s3_client=s3))
    assert [(f["name"], f.get("late")) for f in second["files"]] == [("part1.csv", True), ("part2.csv", True)]
    assert sources.Ledger(required.ledger_dir).pending() == []
    rerun = fetched(pipeline.fetch(required, "scheduled__second", interval=SECOND, s3_client=s3))
    assert rerun["files"] == [] and [s["claimed_by"] for s in rerun["skipped_files"]] == ["scheduled__third"] * 2
