"""The public API's hardening, over a real uvicorn server: size limits, rate limits, headers, CORS, paths.

Requests come from 127.0.0.1, which uvicorn trusts for ``X-Forwarded-For``
(as it trusts nginx in compose), so a test can speak as several clients.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from search_api.main import create_app
from search_api.settings import ApiSettings
from tender_pipeline import staging
from tender_pipeline.profiles import UnknownLayoutError, get_profile, load_profiles
from tests.services import free_port, serve_app

STATIC = Path(__file__).resolve().parents[1] / "search_api" / "static"


def api_settings(tmp_path: Path, **overrides) -> ApiSettings:
    values = {"chroma_host": "127.0.0.1", "chroma_port": free_port(), "feedback_path": str(tmp_path / "fb" / "f.jsonl"),
              "embed_backend": "local", "warm_embedder": False, "chroma_retry_s": 0}
    return ApiSettings(**{**values, **overrides})


@pytest.fixture
def api(tmp_path):
    with serve_app(create_app(api_settings(tmp_path))) as url:
        yield url


FEEDBACK = {"query": "roads", "result_id": "T-1", "rating": 1}


# --------------------------------------------------------------------------- size limits
def test_oversized_body_is_refused_with_413_before_it_is_read(api):
    big = b'{"query": "' + b"x" * 2_000_000 + b'", "result_id": "T", "rating": 1}'
    response = httpx.post(f"{api}/feedback", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large" and "MAX_BODY_BYTES" in response.json()["detail"]


def test_oversized_chunked_body_without_length_is_cut_off_with_413(api):
    def chunks():
        yield b'{"query": "'
        for _ in range(200):  # 200 × 8 KiB, streamed: no Content-Length for the server to check first
            yield b"y" * 8192
        yield b'", "result_id": "T", "rating": 1}'

    response = httpx.post(f"{api}/feedback", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_long_query_strings_get_414_and_long_fields_422(api):
    assert httpx.get(f"{api}/search", params={"q": "a", "pad": "p" * 40_000}).status_code == 414
    assert httpx.get(f"{api}/search", params={"q": "é" * 500, "buyer": "ü" * 300}).status_code != 414  # legal
    response = httpx.get(f"{api}/search", params={"q": "x" * 501})
    assert response.status_code == 422 and response.json()["error"] == "invalid_request"
    assert httpx.post(f"{api}/feedback", json={**FEEDBACK, "comment": "c" * 2001}).status_code == 422


def test_a_normal_body_still_passes(api, tmp_path):
    assert httpx.post(f"{api}/feedback", json=FEEDBACK).status_code == 201


# --------------------------------------------------------------------------- rate limiting
def test_rate_limit_is_per_client_with_retry_after_and_spares_probes(tmp_path):
    with serve_app(create_app(api_settings(tmp_path, rate_limit="5/minute"))) as url:
        alice, bob = {"x-forwarded-for": "203.0.113.7"}, {"x-forwarded-for": "198.51.100.9"}
        codes = [httpx.get(f"{url}/feedback/summary", headers=alice).status_code for _ in range(5)]
        assert codes == [200] * 5
        limited = httpx.get(f"{url}/feedback/summary", headers=alice)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()["error"] == "rate_limited"
        assert limited.headers["x-content-type-options"] == "nosniff"  # errors carry the headers too
        assert httpx.get(f"{url}/feedback/summary", headers=bob).status_code == 200  # another client
        assert httpx.get(f"{url}/health", headers=alice).status_code == 200  # probes are never limited
        assert 'status="429"' in httpx.get(f"{url}/metrics").text  # and 429s are counted


def test_rate_limit_setting_is_checked_at_start_and_can_be_turned_off(tmp_path):
    assert ApiSettings().rate_limit == "600/minute"  # generous default, on unless turned off
    with pytest.raises(ValidationError, match="rate_limit"):
        ApiSettings(rate_limit="lots per hour")
    with serve_app(create_app(api_settings(tmp_path, rate_limit=""))) as url:
        assert {httpx.get(f"{url}/feedback/summary").status_code for _ in range(30)} == {200}


# --------------------------------------------------------------------------- headers and the page
def test_security_headers_and_a_csp_without_inline_script(api):
    page = httpx.get(f"{api}/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    for response in (page, httpx.get(f"{api}/health"), httpx.get(f"{api}/nope")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "content-security-policy" in response.headers
    docs = httpx.get(f"{api}/docs")  # Swagger UI's own inline page: framing still refused
    assert docs.status_code == 200 and "frame-ancestors 'none'" in docs.headers["content-security-policy"]


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.handlers: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        self.handlers += [name for name in names if name.startswith("on")]
        if tag == "script":
            self._in_script = "src" not in names
        if "style" in names:
            self.inline.append(f"style attribute on <{tag}>")

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline.append(data.strip()[:60])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False


@pytest.mark.parametrize("page", sorted(p.name for p in STATIC.glob("*.html")))
def test_web_pages_have_no_inline_script_style_or_handlers(page):
    """What the CSP forbids is absent from the shipped pages (the browser tests see no CSP violation)."""
    parser = _Scripts()
    parser.feed((STATIC / page).read_text(encoding="utf-8"))
    assert parser.inline == [] and parser.handlers == []
    for script in STATIC.glob("*.js"):  # no innerHTML/eval: text reaches the page only as text
        code = script.read_text(encoding="utf-8")
        assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|\beval\(|new Function\(", code), script


# --------------------------------------------------------------------------- CORS
def test_cors_is_off_unless_configured(api, tmp_path):
    origin = {"origin": "https://evil.example"}
    assert "access-control-allow-origin" not in httpx.get(f"{api}/health", headers=origin).headers
    preflight = httpx.options(f"{api}/search", headers={**origin, "access-control-request-method": "GET"})
    assert "access-control-allow-origin" not in preflight.headers

    settings = api_settings(tmp_path, cors_origins=["https://app.example"])
    with serve_app(create_app(settings)) as url:
        ok = httpx.get(f"{url}/health", headers={"origin": "https://app.example"})
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-origin" not in httpx.get(f"{url}/health", headers=origin).headers


# --------------------------------------------------------------------------- no request-controlled paths
@pytest.mark.parametrize("tender_id", ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e/%2e%2e/settings.py",
                                       "/etc/passwd", "..\\..\\win.ini"])
def test_tender_ids_are_lookups_never_paths(indexed_sample, tmp_path, tender_id):
    settings = api_settings(tmp_path, **indexed_sample)
    with serve_app(create_app(settings)) as url:
        response = httpx.get(f"{url}/tenders/{tender_id}")
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "not_found" and "root:" not in response.text
        page = httpx.get(f"{url}/t/{tender_id}")  # the tender page: the same lookup, as HTML
        assert page.status_code == 404 and "root:" not in page.text and "[extensions]" not in page.text


@pytest.mark.parametrize("path", ["/static/../settings.py", "/static/..%2fsettings.py", "/static/%2e%2e/main.py",
                                  "/static/..%2f..%2fplugins/tender_pipeline/settings.py"])
def test_static_files_stay_in_their_folder(api, path):
    response = httpx.get(api + path)
    assert response.status_code == 404 and "BaseSettings" not in response.text and "FastAPI" not in response.text


def test_feedback_ids_are_data_not_file_names(api, tmp_path):
    hostile = {**FEEDBACK, "result_id": "../../../../tmp/owned", "session_id": "../x", "query": "/etc/passwd"}
    assert httpx.post(f"{api}/feedback", json=hostile).status_code == 201
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert written == [Path("fb/f.jsonl")]
    assert "../../../../tmp/owned" in (tmp_path / "fb" / "f.jsonl").read_text()


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/passwd", "canonical/../../x", "..", ""])
def test_profile_names_are_looked_up_never_opened(name):
    with pytest.raises(UnknownLayoutError, match="unknown profile"):
        get_profile(name, load_profiles(""))


@pytest.mark.parametrize("run_id", ["..", ".", "../../etc", "/abs/path", "a/../../b", "~root",
                                    "manual__2026-11-27T06:00:00+00:00"])
def test_run_ids_never_leave_the_staging_folder(tmp_path, run_id):
    root = (tmp_path / "staging").resolve()
    assert staging.run_dir(str(root), run_id).resolve().parent == root
