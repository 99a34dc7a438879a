"""`python -m tender_pipeline ingest` on the shipped sample, with the embedded Chroma default."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def _cli(args: list[str], cwd, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in {"CHROMA_HOST", "STAGING_URI", "CHROMA_PATH"}}
    environ.update(PYTHONPATH=str(ROOT / "plugins"), **env)
    return subprocess.run([sys.executable, "-m", "tender_pipeline", *args], cwd=cwd, env=environ,
                          capture_output=True, text=True, timeout=300)


def test_ingest_sample_embedded_then_rerun(tmp_path, sample_csv):
    first = _cli(["ingest", str(sample_csv), "--limit", "40"], tmp_path)
    assert first.returncode == 0, first.stderr
    lines = dict(line.split(None, 1) for line in first.stdout.splitlines() if line and not line.startswith(" "))
    assert lines["rows_read"] == "40" and lines["upserted"] == "40" and lines["collection_count"] == "40"
    assert (tmp_path / "data" / "chroma").is_dir()  # embedded PersistentClient, no server

    again = _cli(["ingest", str(sample_csv), "--limit", "40", "--json"], tmp_path)
    assert again.returncode == 0, again.stderr
    import json

    summary = json.loads(again.stdout)
    assert (summary["unchanged"], summary["enriched"], summary["collection_count"]) == (40, 0, 40)

    forced = _cli(["ingest", str(sample_csv), "--limit", "5", "--force", "--json"], tmp_path)
    assert json.loads(forced.stdout)["enriched"] == 5


def test_bad_input_gets_a_message_not_a_traceback(tmp_path):
    odd = tmp_path / "odd.csv"
    odd.write_text("foo,bar\n1,2\n", encoding="utf-8")
    result = _cli(["ingest", str(odd)], tmp_path)
    assert result.returncode == 2
    assert "odd.csv: unknown column layout" in result.stderr and "Traceback" not in result.stderr

    missing = _cli(["ingest", str(tmp_path / "nope.csv")], tmp_path)
    assert missing.returncode == 2 and "source not found" in missing.stderr
