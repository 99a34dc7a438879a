"""The JSON artefacts of a run: ``<stage>.json`` counts and ``summary.json`` (json), rows (jsonl)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from tender_pipeline.staging.atomic import writer
from tender_pipeline.staging.paths import StagePath, location


def write_json(path: StagePath | str, data: Any) -> None:
    with writer(path) as fh:
        json.dump(data, fh, indent=2, ensure_ascii=False, default=str)


def read_json(path: StagePath | str) -> Any:
    return json.loads(location(path).read_text("utf-8"))


def write_jsonl(path: StagePath | str, rows: Iterable[dict[str, Any]]) -> int:
    count = 0
    with writer(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            count += 1
    return count


def read_jsonl(path: StagePath | str) -> Iterator[dict[str, Any]]:
    with location(path).open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)
