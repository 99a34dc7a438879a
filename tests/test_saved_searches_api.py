"""/saved-searches: owner-token isolation, validation, unsafe webhook URLs and the feed, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from search_api.main import create_app
from search_api.settings import ApiSettings
from tests.atom import validate as validate_atom
from tests.db_urls import BACKENDS, database_url
from tests.services import free_port
from tests.trap import Trap

ATOM = "{http://www.w3.org/2005/Atom}"


def _app(tmp_path, url: str, **overrides) -> TestClient:
    settings = ApiSettings(database_url=url, warm_embedder=False, chroma_host="127.0.0.1", chroma_port=free_port(),
                           feedback_path=str(tmp_path / "fb.jsonl"), **overrides)
    return TestClient(create_app(settings))


@pytest.fixture(params=BACKENDS)
def api(request, tmp_path):
    with database_url(request.param, tmp_path) as url, _app(tmp_path, url) as client:
        client.database_url = url
        yield client


def _create(api: TestClient, token: str | None = None, **body) -> dict:
    body = {"name": "roads", "params": {"q": "road works", "country": "Pakistan", "limit": 5}, **body}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = api.post("/saved-searches", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_owner_tokens_isolate_saved_searches(api):
    first = _create(api)
    alice = first["token"]
    assert alice.startswith("tsk_") and first["params"] == {"q": "road works", "country": "Pakistan"}
    second = _create(api, alice, name="hospitals", params={"q": "hospital beds"})
    assert second["token"] is None  # the owner keeps the token they have
    bob_search = _create(api, name="bob's")
    bob = bob_search["token"]
    assert bob != alice

    mine = api.get("/saved-searches", headers=_auth(alice)).json()["items"]
    assert {s["id"] for s in mine} == {first["id"], second["id"]}
    assert [s["id"] for s in api.get("/saved-searches", headers=_auth(bob)).json()["items"]] == [bob_search["id"]]

    for method in ("get", "delete"):  # another owner's search looks exactly like a missing one
        response = getattr(api, method)(f"/saved-searches/{first['id']}", headers=_auth(bob))
        assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert api.get(f"/saved-searches/{first['id']}", headers=_auth(alice)).status_code == 200

    for call in (lambda: api.get("/saved-searches"), lambda: api.get(f"/saved-searches/{first['id']}"),
                 lambda: api.delete(f"/saved-searches/{first['id']}"),
                 lambda: api.get("/saved-searches", headers=_auth("tsk_guess"))):
        response = call()
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "unauthorized" and response.headers["www-authenticate"] == "Bearer"

    assert api.delete(f"/saved-searches/{first['id']}", headers=_auth(alice)).status_code == 204
    assert [s["id"] for s in api.get("/saved-searches", headers=_auth(alice)).json()["items"]] == [second["id"]]


@pytest.mark.parametrize("body, field", [
    ({"params": {"q": " "}}, "params"),
    ({"params": {"q": "x", "min_value": 10, "max_value": 1}}, "params"),
    ({"params": {"q": "x", "open_only": 0}}, "params"),  # JSON types exactly, as POST /search (schemathesis)
    ({"params": {"q": "x", "include_corrigendum": "yes"}}, "params"),
    ({"delivery": "webhook"}, "body"),
    ({"delivery": "email", "email": "not-an-address"}, "email"),
    ({"delivery": "sms"}, "delivery"),
])
def test_invalid_saved_searches_are_422(api, body, field):
    response = api.post("/saved-searches", json={"name": "x", "params": {"q": "x"}, **body})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"
    assert any(field in [str(p) for p in e["loc"]] for e in response.json()["detail"])


def test_unsafe_webhook_urls_are_422_and_never_called(tmp_path, monkeypatch):
    with Trap() as trap:
        # the trap stands in for Airflow's metadata DB: its address must be off limits
        monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"postgresql://airflow:secret@127.0.0.1:{trap.port}/af")
        url = f"sqlite:///{tmp_path / 'db.sqlite'}"
        with _app(tmp_path, url, alert_webhook_allow_private=True) as api:
            bad = {
                f"ftp://127.0.0.1:{trap.port}/hook": "http or https",
                f"gopher://127.0.0.1:{trap.port}/_": "http or https",
                "file:///etc/passwd": "http or https",
                "javascript:alert(1)": "http or https",
                "http://169.254.169.254/latest/meta-data/": "link-local",
                "http://[fe80::1]/hook": "link-local",
                "http://metadata.google.internal/computeMetadata/v1/": "metadata",
                f"http://127.0.0.1:{trap.port}/": "database",
                f"http://localhost:{trap.port}/hook": "database",
                f"http://user:pw@127.0.0.1:{free_port()}/hook": "credentials",
                "http://no-such-host.invalid/hook": "does not resolve",
            }
            for webhook_url, why in bad.items():
                response = api.post("/saved-searches", json={"name": "x", "params": {"q": "x"},
                                                             "delivery": "webhook", "webhook_url": webhook_url})
                assert response.status_code == 422, (webhook_url, response.text)
                detail = response.json()["detail"][0]
                assert detail["loc"] == ["body", "webhook_url"] and why in detail["msg"], (webhook_url, detail)
                assert "secret" not in detail["msg"]  # the DB password never reaches a message
            ok = api.post("/saved-searches", json={"name": "x", "params": {"q": "x"}, "delivery": "webhook",
                                                   "webhook_url": f"http://127.0.0.1:{free_port()}/hook"})
            assert ok.status_code == 201 and len(ok.json()["webhook_secret"]) == 64
        with _app(tmp_path, url) as strict:  # private addresses need ALERT_WEBHOOK_ALLOW_PRIVATE
            response = strict.post("/saved-searches", json={"name": "x", "params": {"q": "x"}, "delivery": "webhook",
                                                            "webhook_url": f"http://127.0.0.1:{free_port()}/h"})
            assert response.status_code == 422 and "private" in response.json()["detail"][0]["msg"]
        assert trap.connections() == 0


def test_feed_needs_its_key_and_is_atom(api):
    created = _create(api)
    assert api.get(f"/saved-searches/{created['id']}/feed", params={"key": "wrong"}).status_code == 404
    response = api.get(created["feed_url"])
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/atom+xml")
    root = validate_atom(response.content)
    assert root.find(f"{ATOM}title").text == "Tender alerts: roads"
    assert root.find(f"{ATOM}id").text and root.find(f"{ATOM}updated").text
    assert root.findall(f"{ATOM}entry") == []


def test_feed_with_a_non_ascii_key_is_422_not_500(api):
    """schemathesis found it: compare_digest refuses non-ASCII str, which was a 500."""
    search = _create(api)
    for key in ("é", "ключ", "a\u200bb"):
        response = api.get(f"/saved-searches/{search['id']}/feed", params={"key": key})
        assert response.status_code == 422, (key, response.status_code, response.text)


def test_post_with_an_authorization_header_that_is_not_a_token_is_401_not_a_new_owner(api):
    """Only no header at all mints a token; a wrong scheme or a malformed token is refused, as on every route."""
    body = {"name": "roads", "params": {"q": "road works"}}
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-token", "tsk_" + "a" * 43):
        response = api.post("/saved-searches", json=body, headers={"Authorization": header})
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer", header
    assert api.post("/saved-searches", json=body).status_code == 201


def test_openapi_declares_the_bearer_token_optional_on_post_and_required_elsewhere(api):
    paths = api.get("/openapi.json").json()["paths"]
    assert sorted(map(str, paths["/saved-searches"]["post"]["security"])) == ["{'HTTPBearer': []}", "{}"]
    for path, method in (("/saved-searches", "get"), ("/saved-searches/{search_id}", "get"),
                         ("/saved-searches/{search_id}", "delete")):
        assert paths[path][method]["security"] == [{"HTTPBearer": []}], (path, method)
    assert "security" not in paths["/saved-searches/{search_id}/feed"]["get"]  # the key in the URL is the secret


def test_feed_entries_are_valid_atom_with_a_link_even_without_a_source_url(api):
    """RFC 4287: an entry without content needs a rel=alternate link; a notice without a URL links to its page."""
    from datetime import UTC, datetime, timedelta

    from tender_pipeline.db import AlertMatch, make_engine, session_factory

    created = _create(api)
    base = datetime(2026, 11, 29, 12, tzinfo=UTC)
    cards = {"T-1": {"id": "T-1", "title": "Road works", "buyer": "NHA", "url": "https://example.org/n/T-1"},
             "src:REF 12/2026": {"id": "src:REF 12/2026", "title": "Bridge <repairs> & paint", "url": ""}}
    engine = make_engine(api.database_url)
    with session_factory(engine)() as session:
        for i, (kind, tid, version) in enumerate([("new", "T-1", "v1"), ("new", "src:REF 12/2026", "v1"),
                                                  ("update", "src:REF 12/2026", "v2")]):
            session.add(AlertMatch(saved_search_id=created["id"], tender_id=tid, version=version, kind=kind,
                                   score=0.8, card=cards[tid], batch="run-1", status="feed", attempts=0, reason="",
                                   matched_at=base + timedelta(minutes=i)))
        session.commit()
    engine.dispose()

    response = api.get(created["feed_url"])
    assert response.status_code == 200
    root = validate_atom(response.content)
    entries = root.findall(f"{ATOM}entry")
    assert [e.find(f"{ATOM}title").text for e in entries] == [
        "Update: Bridge <repairs> & paint", "Bridge <repairs> & paint", "Road works"]
    links = [e.find(f"{ATOM}link[@rel='alternate']").get("href") for e in entries]
    assert links == ["http://testserver/t/src%3AREF%2012/2026"] * 2 + ["https://example.org/n/T-1"]
    assert [e.find(f"{ATOM}category").get("term") for e in entries] == ["update", "new", "new"]


def test_the_documented_feed_example_is_valid_atom():
    from search_api.routers.saved_searches import FEED_EXAMPLE

    validate_atom(FEED_EXAMPLE.encode("utf-8"))
