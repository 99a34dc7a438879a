"""What each field cost in a Chroma 1.5.9 data folder: bytes per notice of each metadata key and of the documents.

    python bench/chroma_fields.py CHROMA_DATA_DIR [--keep-going]

Run on a copy of a ``chroma run --path`` folder (``bench/storage.py --keep DIR`` leaves one in ``DIR/chroma``;
the server must be stopped). For each metadata key, and for the documents (key ``chroma:document`` plus
the full-text index Chroma keeps of them), the script deletes that field's rows from a copy of
``chroma.sqlite3``, runs VACUUM and reports how many bytes went, per notice. The HNSW folders (the vectors)
are reported as they are. One JSON line per field, then a total line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

DOCUMENT_KEY = "chroma:document"


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def vacuumed_size(db: Path, statements: list[tuple[str, tuple]]) -> int:
    with tempfile.TemporaryDirectory(prefix="chroma-fields-") as tmp:
        copy = Path(tmp) / "c.sqlite3"
        shutil.copy(db, copy)
        con = sqlite3.connect(copy)
        for sql, args in statements:
            con.execute(sql, args)
        con.commit()
        con.execute("VACUUM")
        con.close()
        return copy.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="a stopped Chroma server's --path folder")
    args = parser.parse_args()
    db = args.data / "chroma.sqlite3"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    notices = con.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] or 1
    keys = [k for (k,) in con.execute("SELECT DISTINCT key FROM embedding_metadata ORDER BY key")]
    queue = con.execute("SELECT COUNT(*) FROM embeddings_queue").fetchone()[0]
    con.close()
    base = vacuumed_size(db, [])
    hnsw = sum(folder_bytes(p) for p in args.data.iterdir() if p.is_dir())
    out = []
    for key in keys:
        statements = [("DELETE FROM embedding_metadata WHERE key = ?", (key,))]
        if key == DOCUMENT_KEY:  # the documents' full-text index goes with them (a DELETE leaves FTS5's segments)
            statements.append(("DROP TABLE IF EXISTS embedding_fulltext_search", ()))
        saved = base - vacuumed_size(db, statements)
        out.append({"field": "documents" if key == DOCUMENT_KEY else key, "bytes_per_notice": round(saved / notices)})
    for line in sorted(out, key=lambda r: -r["bytes_per_notice"]):
        print(json.dumps(line))
    everything = base - vacuumed_size(db, [("DELETE FROM embedding_metadata", ()),
                                           ("DROP TABLE IF EXISTS embedding_fulltext_search", ())])
    print(json.dumps({"field": "(total)", "notices": notices, "sqlite_bytes_per_notice_vacuumed": round(base / notices),
                      "hnsw_bytes_per_notice": round(hnsw / notices), "embeddings_queue_rows": queue,
                      "fields_bytes_per_notice": sum(r["bytes_per_notice"] for r in out),
                      "all_fields_at_once_bytes_per_notice": round(everything / notices)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
