"""A local HTTP server that speaks the Gemini REST endpoints the google-genai SDK calls.

Tests (and ``bench/gemini_cost.py``) point the real SDK at it through
``GEMINI_BASE_URL``, so every call is a real round trip: requests are parsed,
answers are built from what was asked (record ids found in the prompt, the
sector-code enum from ``responseJsonSchema``, the requested embedding size), and
failures are scripted per endpoint.

    with FakeGemini() as fake:
        fake.script("generate", Status(429, retry_after=1))
        settings = Settings(gemini_api_key="k", gemini_base_url=fake.base_url)
        ...
        assert fake.count("generate") == 2
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

_ID = re.compile(r'"tender_id":\s*("(?:[^"\\]|\\.)*")')
_ROUTE = re.compile(
    r"^/(?P<ver>v[0-9a-z]+)/(?:models/(?P<model>[^:/]+):(?P<verb>\w+)"
    r"|(?P<caches>cachedContents)(?:/(?P<cache_id>[\w-]+))?)$"
)
_VERBS = {"generateContent": "generate", "batchEmbedContents": "embed", "embedContent": "embed",
          "countTokens": "count_tokens"}


@dataclass(frozen=True)
class Status:
    """Answer with an HTTP error; ``retry_after`` sets the header, ``retry_delay`` Google's RetryInfo."""

    code: int
    retry_after: float | None = None
    retry_delay: str | None = None


@dataclass(frozen=True)
class Malformed:
    """A 200 whose candidate text is not valid JSON (as a truncated model answer would be)."""

    text: str = '{"items": [{"tender_id": "oops", "summary": '


@dataclass(frozen=True)
class Drop:
    """Leave these record ids out of the answer (all but the first when ``ids`` is empty)."""

    ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class BadSector:
    """Answer these ids with a sector code that is not in the taxonomy's enum."""

    ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Slow:
    """Answer normally but only after ``seconds``: longer than the client's timeout, it is a timeout."""

    seconds: float


@dataclass(frozen=True)
class Foreign:
    """A well-formed answer about other records than the ones asked (as if meant for another request)."""


Fault = Status | Malformed | Drop | BadSector | Slow | Foreign


@dataclass
class Logged:
    """One request as the server saw it."""

    method: str
    path: str
    endpoint: str  # generate | embed | cache_create | cache_get | cache_delete | count_tokens | unknown
    model: str
    body: dict[str, Any]
    headers: dict[str, str]
    status: int = 200
    record_ids: list[str] = field(default_factory=list)


def fake_vector(text: str, dim: int) -> list[float]:
    """Deterministic pseudo-embedding seeded by the text (not normalised, like the real API at <3072)."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
    return np.random.default_rng(seed).normal(size=dim).round(6).tolist()


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _texts(content: Any) -> list[str]:
    """All text parts of a Content dict or a list of them."""
    if isinstance(content, list):
        return [t for c in content for t in _texts(c)]
    if isinstance(content, dict):
        return [p.get("text", "") for p in content.get("parts", []) if isinstance(p, dict)]
    return []


def _find_enum(schema: Any, prop: str) -> list[str]:
    """The enum of a property anywhere in a JSON schema (follows nested properties/items/$defs)."""
    if isinstance(schema, dict):
        props = schema.get("properties", {})
        if isinstance(props, dict) and isinstance(props.get(prop), dict) and "enum" in props[prop]:
            return list(props[prop]["enum"])
        for value in schema.values():
            found = _find_enum(value, prop)
            if found:
                return found
    elif isinstance(schema, list):
        for value in schema:
            found = _find_enum(value, prop)
            if found:
                return found
    return []


class FakeGemini:
    """Threaded fake Gemini server on a free port; a context manager yielding itself."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.requests: list[Logged] = []
        self.caches: dict[str, dict[str, Any]] = {}
        self.per_record: dict[str, Fault] = {}
        self.ask_override: dict[str, Any] | None = None  # a fixed answer body for ask requests
        self._queues: dict[str, deque[Fault]] = {}
        self._storms: dict[str, Status] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeGemini:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-gemini")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- scripting ------------------------------------------------------
    def script(self, endpoint: str, *faults: Fault) -> None:
        """Queue faults for the next requests to ``endpoint`` (generate | embed), one per request."""
        with self._lock:
            self._queues.setdefault(endpoint, deque()).extend(faults)

    def storm(self, endpoint: str, code: int = 500) -> None:
        """Fail every request to ``endpoint`` with ``code`` until ``calm()``."""
        with self._lock:
            self._storms[endpoint] = Status(code)

    def calm(self) -> None:
        with self._lock:
            self._storms.clear()
            self._queues.clear()

    def count(self, endpoint: str, status: int | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.endpoint == endpoint and (status is None or r.status == status))

    def log(self, endpoint: str) -> list[Logged]:
        with self._lock:
            return [r for r in self.requests if r.endpoint == endpoint]

    def _next_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            if endpoint in self._storms:
                return self._storms[endpoint]
            queue = self._queues.get(endpoint)
            return queue.popleft() if queue else None

    # --- answers --------------------------------------------------------
    def _generate(self, entry: Logged) -> tuple[int, dict[str, Any], dict[str, str]]:
        body = entry.body
        gen = body.get("generationConfig", {})
        if gen.get("responseMimeType") != "application/json":
            return 400, _error(400, "INVALID_ARGUMENT", "expected responseMimeType application/json"), {}
        system = " ".join(_texts(body.get("systemInstruction")))
        cached_tokens = 0
        if body.get("cachedContent"):
            cache = self.caches.get(body["cachedContent"])
            if cache is None:
                return 404, _error(404, "NOT_FOUND", "cached content not found"), {}
            if body.get("systemInstruction"):
                return 400, _error(400, "INVALID_ARGUMENT", "systemInstruction with cachedContent"), {}
            system = " ".join(_texts(cache.get("systemInstruction")))
            cached_tokens = _tokens(system)
        user = "\n".join(_texts(body.get("contents")))
        schema = gen.get("responseJsonSchema") or {}
        if "stated" in (schema.get("properties") or {}):
            return self._ask(entry, system, user)
        ids = [json.loads(m) for m in _ID.findall(user)]
        entry.record_ids = ids
        codes = _find_enum(schema, "sector_code") or ["00"]
        types_ = _find_enum(schema, "procurement_type") or ["Services"]

        fault = self._next_fault("generate")
        if isinstance(fault, Status):
            return _status_answer(fault)
        if isinstance(fault, Slow):
            time.sleep(fault.seconds)
            fault = None
        if isinstance(fault, Foreign):
            ids = [f"{tid}-OTHER" for tid in ids]
        if isinstance(fault, Malformed):
            text = fault.text
        else:
            drop = set(fault.ids) if isinstance(fault, Drop) and fault.ids else (
                set(ids[1:]) if isinstance(fault, Drop) else set())
            bad = set(fault.ids or ids) if isinstance(fault, BadSector) else set()
            items = []
            for tid in ids:
                per = self.per_record.get(tid)
                if tid in drop or isinstance(per, Drop):
                    continue
                if isinstance(per, Malformed) and len(ids) == 1:
                    text = per.text
                    break
                h = int(hashlib.sha256(tid.encode()).hexdigest(), 16)
                invalid = tid in bad or isinstance(per, BadSector)
                items.append({
                    "tender_id": tid,
                    "summary": f"Summary of tender {tid}",
                    "sector_code": "99" if invalid else codes[h % len(codes)],
                    "sector_confidence": 0.9,
                    "subsector": "",
                    "procurement_type": types_[h % len(types_)],
                    "keywords": ["alpha", "beta", tid.lower()],
                    "is_corrigendum": False,
                })
            else:
                text = json.dumps({"items": items})
        prompt_tokens = _tokens(system) + _tokens(user)
        out_tokens = _tokens(text)
        usage = {"promptTokenCount": prompt_tokens, "candidatesTokenCount": out_tokens,
                 "totalTokenCount": prompt_tokens + out_tokens}
        if cached_tokens:
            usage["cachedContentTokenCount"] = cached_tokens
        return 200, {
            "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP",
                            "index": 0}],
            "usageMetadata": usage,
            "modelVersion": entry.model,
        }, {}

    def _ask(self, entry: Logged, system: str, user: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        """A grounded "ask" answer: the numbered passage sharing most words with the question.

        Stated only when at least half of the question's content words (4+ letters) occur in one
        passage; the answer quotes that passage and cites its number. ``Malformed``, ``Status`` and
        ``Slow`` faults apply as for enrichment; ``self.ask_override`` (if set) is returned verbatim.
        """
        fault = self._next_fault("generate")
        if isinstance(fault, Status):
            return _status_answer(fault)
        if isinstance(fault, Slow):
            time.sleep(fault.seconds)
            fault = None
        passages = {int(m[1]): m[2] for m in re.finditer(r"^\[(\d+)\] (.*)$", user, re.MULTILINE)}
        question = user.rsplit("Question:", 1)[-1].strip()
        entry.record_ids = [question]
        words = {w for w in re.findall(r"[a-z]{4,}", question.lower())} - {"what", "when", "where", "which", "does",
                                                                          "this", "that", "tender", "notice"}
        best, hits = None, 0
        for index, text in passages.items():
            found = sum(1 for w in words if w in text.lower())
            if found > hits:
                best, hits = index, found
        if isinstance(fault, Malformed):
            text = fault.text
        elif self.ask_override is not None:
            text = json.dumps(self.ask_override)
        elif best is not None and words and hits * 2 >= len(words):
            text = json.dumps({"stated": True, "answer": f"The notice says: {passages[best]}", "passages": [best]})
        else:
            text = json.dumps({"stated": False, "answer": "Not stated in the notice.", "passages": []})
        prompt_tokens = _tokens(system) + _tokens(user)
        usage = {"promptTokenCount": prompt_tokens, "candidatesTokenCount": _tokens(text),
                 "totalTokenCount": prompt_tokens + _tokens(text)}
        return 200, {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                                     "finishReason": "STOP", "index": 0}],
                     "usageMetadata": usage, "modelVersion": entry.model}, {}

    def _embed(self, entry: Logged) -> tuple[int, dict[str, Any], dict[str, str]]:
        fault = self._next_fault("embed")
        if isinstance(fault, Status):
            return _status_answer(fault)
        requests = entry.body.get("requests") or [entry.body]
        if len(requests) > 100:
            return 400, _error(400, "INVALID_ARGUMENT", "at most 100 requests per batch"), {}
        embeddings, tokens = [], 0
        for req in requests:
            text = " ".join(_texts(req.get("content")))
            if not text.strip():
                return 400, _error(400, "INVALID_ARGUMENT", "empty text"), {}
            dim = int(req.get("outputDimensionality") or 3072)
            task = req.get("taskType", "")
            embeddings.append({"values": fake_vector(f"{task}|{text}", dim)})
            tokens += _tokens(text)
        answer: dict[str, Any] = {"embeddings": embeddings,
                                  "usageMetadata": {"promptTokenCount": tokens, "totalTokenCount": tokens}}
        if "requests" not in entry.body:
            answer = {"embedding": embeddings[0], "usageMetadata": answer["usageMetadata"]}
        return 200, answer, {}

    def _cache_create(self, entry: Logged) -> tuple[int, dict[str, Any], dict[str, str]]:
        fault = self._next_fault("cache_create")
        if isinstance(fault, Status):
            return _status_answer(fault)
        name = f"cachedContents/c{len(self.caches) + 1}"
        tokens = _tokens(" ".join(_texts(entry.body.get("systemInstruction"))))
        record = {"name": name, "model": entry.body.get("model", ""), "displayName": entry.body.get("displayName", ""),
                  "usageMetadata": {"totalTokenCount": tokens},
                  "systemInstruction": entry.body.get("systemInstruction")}
        with self._lock:
            self.caches[name] = record
        return 200, {k: v for k, v in record.items() if k != "systemInstruction"}, {}

    def _dispatch(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict, dict]:
        path = path.split("?", 1)[0]
        m = _ROUTE.match(path)
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = {}
        if m is None:
            entry = Logged(method, path, "unknown", "", body, headers)
            answer: tuple[int, dict, dict] = (404, _error(404, "NOT_FOUND", f"no route {path}"), {})
        elif m["caches"]:
            name = f"cachedContents/{m['cache_id']}" if m["cache_id"] else ""
            endpoint = {"POST": "cache_create", "GET": "cache_get", "DELETE": "cache_delete"}.get(method, "unknown")
            entry = Logged(method, path, endpoint, "", body, headers)
            if endpoint == "cache_create":
                answer = self._cache_create(entry)
            elif name in self.caches:
                cache = self.caches.pop(name) if endpoint == "cache_delete" else self.caches[name]
                answer = (200, {} if endpoint == "cache_delete" else
                          {k: v for k, v in cache.items() if k != "systemInstruction"}, {})
            else:
                answer = (404, _error(404, "NOT_FOUND", "no such cache"), {})
        else:
            endpoint = _VERBS.get(m["verb"], "unknown")
            entry = Logged(method, path, endpoint, m["model"], body, headers)
            if endpoint == "generate":
                answer = self._generate(entry)
            elif endpoint == "embed":
                answer = self._embed(entry)
            else:
                answer = (404, _error(404, "NOT_FOUND", f"unsupported {m['verb']}"), {})
        entry.status = answer[0]
        with self._lock:
            self.requests.append(entry)
        return answer

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, payload, extra = fake._dispatch(self.command, self.path, headers, raw)
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _serve

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                return

        return Handler


def _error(code: int, status: str, message: str, details: list | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def _status_answer(fault: Status) -> tuple[int, dict[str, Any], dict[str, str]]:
    names = {408: "DEADLINE_EXCEEDED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
    details = None
    if fault.retry_delay:
        details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": fault.retry_delay}]
    headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
    return fault.code, _error(fault.code, names.get(fault.code, "ERROR"), "scripted failure", details), headers


TEST_KEY = "test-key-never-log-me-7f3a"


def gemini_settings(base_url: str, tmp_dir: Any, **overrides: Any) -> Any:
    """Settings for the Gemini backends against ``base_url``: fast retries, a private cache file."""
    from tender_pipeline.settings import Settings

    values: dict[str, Any] = {
        "gemini_api_key": TEST_KEY,
        "gemini_base_url": base_url,
        "enrich_backend": "gemini",
        "embed_backend": "gemini",
        "staging_uri": str(tmp_dir),
        "enrich_cache_path": str(tmp_dir / "enrich_cache.sqlite"),
        "gemini_retry_initial_s": 0.01,
        "gemini_retry_max_s": 2.0,
        "gemini_retry_jitter_s": 0.01,
        "gemini_max_retries": 2,
        "gemini_timeout_s": 10.0,
    }
    values.update(overrides)
    return Settings(**values)
