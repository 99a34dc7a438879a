"""Peak memory of reading a large OCDS release package: streamed (validate_files) vs json.load.

Writes a synthetic gzipped release package (``--releases`` releases, two per
OCID, ~1.2 KB each), then in separate processes measures the peak RSS of
(a) the baseline, ``json.load`` of the whole package, and (b) the pipeline's
OCDS validation (ijson stream, SQLite spill, per-OCID merge). Prints JSON.
(b) parses in constant memory; what still grows is the list of validated
notices that validation keeps for valid.jsonl (as for CSV batches), which is
smaller than the raw releases by the text it maps away.

    .venv/bin/python bench/ocds_stream.py --releases 100000
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))


def write_package(path: Path, releases: int) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write('{"uri": "https://bench.invalid/p.json", "version": "1.1", "releases": [')
        for i in range(releases):
            ocid = f"ocds-bench0-{i // 2:08d}"
            release = {"ocid": ocid, "id": f"{ocid}-{i % 2}", "date": f"2026-01-{1 + i % 2:02d}T00:00:00Z",
                       "tag": ["tender" if i % 2 == 0 else "tenderUpdate"],
                       "parties": [{"id": "b", "name": f"Buyer {i % 997}", "roles": ["buyer"],
                                    "address": {"locality": "Town", "countryName": "Kenya"}}],
                       "buyer": {"id": "b", "name": f"Buyer {i % 997}"},
                       "tender": {"title": f"Supply of item {i // 2}", "description": "word " * 120,
                                  "value": {"amount": 1000 + i, "currency": "KES"},
                                  "tenderPeriod": {"endDate": "2026-02-01T00:00:00Z"},
                                  "items": [{"id": "1", "classification": {"scheme": "CPV", "id": "30213100"}}]}}
            fh.write(("," if i else "") + json.dumps(release))
        fh.write("]}")


def measure(mode: str, path: str) -> None:
    """Child process: do one mode, print its peak RSS and seconds."""
    started = time.perf_counter()
    if mode == "json.load":
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            count = len(json.load(fh)["releases"])
    else:
        from tender_pipeline.validate import validate_files

        count = len(validate_files([(Path(path), Path(path).name)]).valid)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "count": count, "peak_rss_mb": round(peak_mb, 1),
                      "seconds": round(time.perf_counter() - started, 2)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--releases", type=int, default=100_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(*args.child)
        return
    with tempfile.TemporaryDirectory(prefix="ocds-bench-") as tmp:
        path = Path(tmp) / "package.json.gz"
        write_package(path, args.releases)
        raw_mb = sum(len(b) for b in _chunks(path)) / 1e6
        gz_mb = path.stat().st_size / 1e6
        runs = {}
        for mode in ("json.load", "validate_files"):
            out = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], check=True,
                                 capture_output=True, text=True).stdout
            runs[mode] = json.loads(out.strip().splitlines()[-1])
    print(json.dumps({"releases": args.releases, "uncompressed_mb": round(raw_mb, 1),
                      "gz_mb": round(gz_mb, 1),
                      "runs": runs,
                      "rss_ratio_stream_vs_load": round(runs["validate_files"]["peak_rss_mb"]
                                                        / runs["json.load"]["peak_rss_mb"], 3)}, indent=2))


def _chunks(path: Path):
    with gzip.open(path, "rb") as fh:
        yield from iter(lambda: fh.read(1 << 20), b"")


if __name__ == "__main__":
    main()
