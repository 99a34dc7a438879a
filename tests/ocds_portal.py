"""A fake OCDS search API on a real local HTTP server, for the OCDS source tests.

It speaks the shape of UK Contracts Finder's ``Published/Notices/OCDS/Search``:
``?publishedFrom=…&publishedTo=…&limit=…`` answers a release package of the
releases whose ``date`` is in [from, to), oldest first, ``limit`` per page, with
``links.next`` (``&cursor=N``) while more remain. Faults are scripted per page
(``(publishedFrom, cursor)``) and used up in order, one per request: ``"429"``
(with ``Retry-After: 1``), ``"500"``, ``"503"``, ``"slow"`` (answers after 1.5 s). Every
request is logged, so tests can count how often each page was asked for.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

RELEASES = Path(__file__).parent / "fixtures" / "ocds" / "portal_releases.json"
PATH = "/Published/Notices/OCDS/Search"


class FakePortal:
    def __init__(self, releases: list[dict] | None = None, faults: dict[tuple[str, int], list[str]] | None = None):
        self.releases = sorted(releases if releases is not None else json.loads(RELEASES.read_text("utf-8")),
                               key=lambda r: (r["date"], r["id"]))
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.log: list[tuple[str, int, int]] = []  # (publishedFrom, cursor, status) per request
        self.lock = threading.Lock()
        portal = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                portal.answer(self)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def template(self) -> str:
        """The INCOMING_URI a deployment would set for this API."""
        return (f"ocds+{self.base}{PATH}?publishedFrom={{start:%Y-%m-%dT%H:%M:%SZ}}"
                f"&publishedTo={{end:%Y-%m-%dT%H:%M:%SZ}}&limit={{page_size}}")

    def __enter__(self) -> FakePortal:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def requests_per_page(self) -> Counter:
        return Counter((start, cursor) for start, cursor, _ in self.log)

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        start, end = query.get("publishedFrom", ""), query.get("publishedTo", "")
        cursor, limit = int(query.get("cursor", "0")), int(query.get("limit", "100"))
        with self.lock:
            pending = self.faults.get((start, cursor), [])
            fault = pending.pop(0) if pending else ""
        status = {"429": 429, "500": 500, "503": 503}.get(fault, 200) if parts.path == PATH else 404
        with self.lock:
            self.log.append((start, cursor, status))
        if status != 200:
            handler.send_response(status)
            if status == 429:
                handler.send_header("Retry-After", "1")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if fault == "slow":
            time.sleep(1.5)
        chosen = [r for r in self.releases if start <= r["date"] < end]
        page = chosen[cursor:cursor + limit]
        package = {"uri": f"{self.base}{handler.path}", "version": "1.1", "publishedDate": end,
                   "publisher": {"name": "Fake Cabinet Office", "uri": "https://portal.invalid"},
                   "releases": page}
        if cursor + limit < len(chosen):
            following = {**query, "cursor": str(cursor + limit)}
            package["links"] = {"next": f"{self.base}{PATH}?{urlencode(following)}"}
        body = json.dumps(package).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
