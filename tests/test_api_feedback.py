"""POST /feedback and /feedback/summary: durable, concurrent-safe JSON lines (no Chroma needed)."""

from __future__ import annotations

import gzip
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from search_api.feedback import FeedbackLog
from search_api.main import create_app
from search_api.settings import ApiSettings
from tests.services import free_port, serve_app


def offline_settings(feedback: Path) -> ApiSettings:
    """Chroma deliberately unreachable: feedback must not depend on it."""
    return ApiSettings(chroma_host="127.0.0.1", chroma_port=free_port(), feedback_path=str(feedback),
                       embed_backend="local", warm_embedder=False)




def read_lines(path: Path) -> list[dict]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    return [json.loads(line) for line in raw.decode("utf-8").split("\n")[:-1]]


def test_feedback_is_appended_as_one_json_line(tmp_path):
    path = tmp_path / "deep" / "dir" / "feedback.jsonl"  # parent folders are created
    with TestClient(create_app(offline_settings(path))) as client:
        body = {"query": "solar lights", "result_id": "IN-GUWA-2026-1001", "rating": 1, "position": 2,
                "session_id": "s1", "comment": "spot on — ünïcode ok"}
        response = client.post("/feedback", json=body)
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "recorded"
        client.post("/feedback", json={"query": "solar lights", "result_id": "X-2", "rating": -1})
    lines = read_lines(path)
    assert len(lines) == 2
    assert {k: lines[0][k] for k in body} == body
    assert lines[0]["received_at"].endswith("Z")
    assert lines[1]["rating"] == -1 and lines[1]["position"] is None


@pytest.mark.parametrize("body", [
    {"query": "q", "result_id": "A", "rating": 0},
    {"query": "q", "result_id": "A", "rating": 2},
    {"query": "q", "result_id": "A", "rating": "up"},
    {"query": "", "result_id": "A", "rating": 1},
    {"query": "q", "result_id": "", "rating": 1},
    {"result_id": "A", "rating": 1},
    {"query": "q", "result_id": "A", "rating": 1, "position": -1},
    {"query": "q" * 501, "result_id": "A", "rating": 1},
])
def test_invalid_feedback_is_422_json_and_not_written(tmp_path, body):
    path = tmp_path / "fb.jsonl"
    with TestClient(create_app(offline_settings(path))) as client:
        response = client.post("/feedback", json=body)
        assert response.status_code == 422
        assert response.json()["error"] == "invalid_request"
        assert client.post("/feedback", content=b"{not json", headers={"content-type": "application/json"}
                           ).status_code == 422
    assert not path.exists()


def test_200_concurrent_posts_from_two_workers_leave_200_whole_lines(tmp_path):
    """Two app instances (as two uvicorn workers would be) share one file; 200 posts at once."""
    path = tmp_path / "feedback.jsonl"
    apps = [create_app(offline_settings(path)), create_app(offline_settings(path))]
    with serve_app(apps[0]) as url_a, serve_app(apps[1]) as url_b, \
            httpx.Client(timeout=30, limits=httpx.Limits(max_connections=100)) as http:
        def post(i: int) -> int:
            url = url_a if i % 2 else url_b
            body = {"query": f"query {i % 7}", "result_id": f"ID-{i:03d}", "rating": 1 if i % 3 else -1,
                    "position": i % 20, "session_id": f"s{i}", "comment": "x" * (i * 37 % 3000 // 2)}
            return http.post(f"{url}/feedback", json=body).status_code

        with ThreadPoolExecutor(max_workers=64) as pool:
            statuses = list(pool.map(post, range(200)))
    assert statuses == [201] * 200
    lines = read_lines(path)
    assert len(lines) == 200
    assert sorted(line["result_id"] for line in lines) == [f"ID-{i:03d}" for i in range(200)]
    assert all(len(line["comment"]) == (int(line["result_id"][3:]) * 37 % 3000 // 2) for line in lines)


def test_summary_counts_per_query_and_result(tmp_path):
    path = tmp_path / "fb.jsonl"
    with TestClient(create_app(offline_settings(path))) as client:
        assert client.get("/feedback/summary").json() == {"total": 0, "queries": 0, "items": []}
        for query, rid, rating in [("Road works", "A", 1), ("road  works", "A", 1), ("road works", "A", -1),
                                   ("road works", "B", -1), ("bridges", "A", 1)]:
            assert client.post("/feedback", json={"query": query, "result_id": rid, "rating": rating}
                               ).status_code == 201
        with path.open("a") as fh:
            fh.write("this line is not JSON\n")  # a foreign line must not break the summary
        body = client.get("/feedback/summary").json()
        assert body["total"] == 5 and body["queries"] == 2
        items = {(i["query"], i["result_id"]): (i["up"], i["down"]) for i in body["items"]}
        assert items == {("road works", "A"): (2, 1), ("road works", "B"): (0, 1), ("bridges", "A"): (1, 0)}
        assert body["items"][0] == {"query": "road works", "result_id": "A", "up": 2, "down": 1}
        assert len(client.get("/feedback/summary", params={"limit": 1}).json()["items"]) == 1
        metrics = client.get("/metrics").text
        assert 'search_api_feedback_total{rating="up"} 3.0' in metrics


def test_a_full_file_is_rotated_gzipped_and_still_counted(tmp_path):
    """Past FEEDBACK_ROTATE_BYTES the file is renamed and gzipped; the summary counts the archive too."""
    path = tmp_path / "fb.jsonl"
    settings = offline_settings(path).model_copy(update={"feedback_rotate_bytes": 2000})
    with TestClient(create_app(settings)) as client:
        for i in range(30):  # ~100 bytes a line: rotates about once per 20 lines
            assert client.post("/feedback", json={"query": "road works", "result_id": f"R{i % 3}",
                                                  "rating": 1 if i % 2 else -1}).status_code == 201
        archives = sorted(p.name for p in tmp_path.iterdir() if p.name != "fb.jsonl")
        assert archives and all(re.fullmatch(r"fb\.jsonl\.\d{8}T\d{12}Z\.gz", n) for n in archives)
        current = read_lines(path) if path.exists() else []
        assert sum(len(json.dumps(line)) for line in current) < 2000
        lines = [json.loads(line) for a in archives for line in gzip.open(tmp_path / a)] + current
        assert len(lines) == 30 and [line["result_id"] for line in lines] == [f"R{i % 3}" for i in range(30)]
        body = client.get("/feedback/summary").json()
        assert body["total"] == 30
        assert {i["result_id"]: (i["up"], i["down"]) for i in body["items"]} == {"R0": (5, 5), "R1": (5, 5),
                                                                                "R2": (5, 5)}


def test_archives_older_than_the_keep_days_are_deleted(tmp_path):
    log = FeedbackLog(tmp_path / "fb.jsonl", rotate_bytes=1, keep_days=30)
    log.append({"query": "q", "result_id": "A", "rating": 1})  # one line is enough to rotate
    old = tmp_path / "fb.jsonl.20250101T000000000000Z.gz"
    with gzip.open(old, "wb") as fh:
        fh.write(b'{"query":"q","result_id":"OLD","rating":1}\n')
    assert log.counts()[0] == 2  # counted while kept
    log.compress_and_prune()
    assert not old.exists() and log.counts()[0] == 1


def test_a_writer_holding_the_old_file_reopens_after_a_rotation(tmp_path):
    """Two processes' logs on one file: the second still has the rotated file's name in mind."""
    first, second = FeedbackLog(tmp_path / "fb.jsonl", rotate_bytes=150), FeedbackLog(tmp_path / "fb.jsonl", 0)
    first.append({"query": "a" * 200, "result_id": "A", "rating": 1})  # rotates at once
    second.append({"query": "b", "result_id": "B", "rating": -1})
    assert read_lines(tmp_path / "fb.jsonl") == [{"query": "b", "result_id": "B", "rating": -1}]
    assert first.counts()[0] == second.counts()[0] == 2
