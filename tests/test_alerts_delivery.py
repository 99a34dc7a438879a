"""Webhook delivery against a real local receiver: retries, signature, giving up, refusing unsafe targets."""

from __future__ import annotations

import json

from sqlalchemy import select

from search_api.alerts import webhooks
from search_api.alerts.evaluate import Counts, _deliver
from search_api.settings import ApiSettings
from tender_pipeline.db import AlertMatch, SavedSearch, make_engine, session_factory, upgrade
from tests.trap import Receiver, Trap

PAYLOAD = {"event": "tender.alert", "items": [{"kind": "new", "tender": {"id": "T-1", "title": "Road works"}}]}


def test_receiver_failing_three_times_then_ok_gets_one_signed_payload_four_times():
    with Receiver(statuses=[500, 500, 500]) as receiver:
        result = webhooks.post(receiver.url, PAYLOAD, secret="s3cret", delivery_id="d-1", attempts=5,
                               backoff_s=0, timeout_s=5)
    assert (result.ok, result.attempts) == (True, 4)
    assert len(receiver.requests) == 4
    assert len({r.body for r in receiver.requests}) == 1  # the same bytes every time
    first = receiver.requests[0]
    assert json.loads(first.body) == PAYLOAD
    assert {r.headers["X-Tender-Delivery"] for r in receiver.requests} == {"d-1"}
    assert webhooks.verify("s3cret", first.body, first.headers["X-Tender-Signature"])
    assert not webhooks.verify("other", first.body, first.headers["X-Tender-Signature"])
    assert not webhooks.verify("s3cret", first.body + b" ", first.headers["X-Tender-Signature"])


def test_delivery_gives_up_after_its_attempts_and_does_not_retry_a_client_error():
    with Receiver(statuses=[503] * 10) as receiver:
        result = webhooks.post(receiver.url, PAYLOAD, secret="s", delivery_id="d", attempts=3, backoff_s=0,
                               timeout_s=5)
    assert (result.ok, result.attempts, len(receiver.requests)) == (False, 3, 3)
    assert "HTTP 503" in result.reason
    with Receiver(statuses=[410]) as receiver:
        result = webhooks.post(receiver.url, PAYLOAD, secret="s", delivery_id="d", attempts=5, backoff_s=0,
                               timeout_s=5)
    assert (result.ok, result.attempts, len(receiver.requests)) == (False, 1, 1)
    assert "HTTP 410" in result.reason


def test_a_webhook_aimed_at_a_database_is_parked_at_delivery_without_a_request(tmp_path):
    """A URL that was fine when saved but now points at the metadata DB is refused before any request."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    sessions = session_factory(engine)
    settings = ApiSettings(database_url=str(engine.url), alert_webhook_allow_private=True)
    with Trap() as trap, sessions() as session:
        search = SavedSearch(id="b" * 32, owner_hash="0" * 64, name="x", params={"q": "x"}, delivery="webhook",
                             target=f"http://127.0.0.1:{trap.port}/hook", webhook_secret="k", feed_key="f")
        session.add(search)
        session.add(AlertMatch(saved_search_id=search.id, tender_id="T-1", version="v1", kind="new", score=0.9,
                               card={"id": "T-1"}, batch="run-1", status="pending", attempts=0, reason=""))
        session.commit()
        counts = Counts()
        _deliver(session, search, settings, None, [f"postgresql://u:pw@127.0.0.1:{trap.port}/airflow"], counts)
        row = session.scalars(select(AlertMatch)).one()
        assert (row.status, counts.deliveries_failed, counts.deliveries_sent) == ("parked", 1, 0)
        assert row.reason.startswith("refused:") and "database" in row.reason and "pw" not in row.reason
        assert trap.connections() == 0


def test_a_receiver_answering_500_three_times_then_200_gets_the_alert_sent_not_parked(tmp_path):
    """The acceptance case through the bookkeeping, with the default ALERT_WEBHOOK_ATTEMPTS (only backoff zeroed)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    settings = ApiSettings(database_url=str(engine.url), alert_webhook_allow_private=True, alert_webhook_backoff_s=0)
    with Receiver(statuses=[500, 500, 500]) as receiver, session_factory(engine)() as session:
        search = SavedSearch(id="c" * 32, owner_hash="0" * 64, name="roads", params={"q": "road works"},
                             delivery="webhook", target=receiver.url, webhook_secret="k3y", feed_key="f")
        session.add(search)
        for tid in ("T-1", "T-2"):
            session.add(AlertMatch(saved_search_id=search.id, tender_id=tid, version="v1", kind="new", score=0.9,
                                   card={"id": tid}, batch="run-1", status="pending", attempts=0, reason=""))
        session.commit()
        counts = Counts()
        _deliver(session, search, settings, None, [], counts)
        rows = session.scalars(select(AlertMatch).order_by(AlertMatch.tender_id)).all()
    assert len(receiver.requests) == 4
    assert len({r.body for r in receiver.requests}) == 1 and len({r.headers["X-Tender-Delivery"]
                                                                  for r in receiver.requests}) == 1
    body = receiver.requests[-1].body
    assert webhooks.verify("k3y", body, receiver.requests[-1].headers["X-Tender-Signature"])
    assert [i["tender"]["id"] for i in json.loads(body)["items"]] == ["T-1", "T-2"]
    assert [(r.status, r.attempts, r.reason) for r in rows] == [("sent", 4, ""), ("sent", 4, "")]
    assert all(r.delivered_at is not None for r in rows)
    assert (counts.deliveries_sent, counts.deliveries_failed, counts.webhooks_posted, counts.parked) == (2, 0, 1, [])


def test_a_name_that_re_resolves_after_the_check_cannot_steer_the_post_to_a_database(tmp_path, monkeypatch):
    """DNS rebinding: the name resolves to the receiver when checked, then to the metadata DB's address.

    The delivery connects to the address the check approved; the DB (a trap on 127.0.0.2) sees nothing.
    """
    import socket

    real = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host, port, *args, **kwargs):  # the resolver an attacker's DNS server amounts to
        if host != "hooks.rebind.example":
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        return real("127.0.0.1" if len(lookups) == 1 else "127.0.0.2", port, *args, **kwargs)

    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    settings = ApiSettings(database_url=str(engine.url), alert_webhook_allow_private=True, alert_webhook_backoff_s=0)
    with Receiver() as receiver, Trap("127.0.0.2", receiver.port) as database, session_factory(engine)() as session:
        url = f"http://hooks.rebind.example:{receiver.port}/hook"
        search = SavedSearch(id="d" * 32, owner_hash="0" * 64, name="x", params={"q": "x"}, delivery="webhook",
                             target=url, webhook_secret="k", feed_key="f")
        session.add(search)
        session.add(AlertMatch(saved_search_id=search.id, tender_id="T-1", version="v1", kind="new", score=0.9,
                               card={"id": "T-1"}, batch="run-1", status="pending", attempts=0, reason=""))
        session.commit()
        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        counts = Counts()
        _deliver(session, search, settings, None, [f"postgresql://u:pw@127.0.0.2:{receiver.port}/airflow"], counts)
        monkeypatch.undo()
        assert database.connections() == 0
        assert len(receiver.requests) == 1 and receiver.requests[0].headers["Host"] == f"hooks.rebind.example:" \
                                                                                      f"{receiver.port}"
        assert (counts.deliveries_sent, session.scalars(select(AlertMatch.status)).one()) == (1, "sent")
    assert lookups == ["hooks.rebind.example"]  # checked once, never looked up again for the request


def test_https_to_a_pinned_address_keeps_sni_and_verifies_the_certificate_for_the_host(tmp_path):
    """Connecting to the checked address must not weaken TLS: SNI and certificate check use the URL's host."""
    import datetime as dt
    import http.server
    import ssl
    import threading

    import httpx
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hooks.example.org")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("hooks.example.org")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    seen: list[tuple[str | None, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append((sni.get("name"), self.headers["Host"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    sni: dict[str, str | None] = {}
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server_ctx.sni_callback = lambda sock, server_name, ctx: sni.update(name=server_name)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = server_ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    try:
        with httpx.Client(verify=client_ctx, timeout=5) as client:
            ok = webhooks.post(f"https://hooks.example.org:{port}/hook", PAYLOAD, secret="s", delivery_id="d",
                               attempts=1, backoff_s=0, timeout_s=5, client=client, address="127.0.0.1")
            assert ok.ok, ok.reason
            assert seen == [("hooks.example.org", f"hooks.example.org:{port}")]
            wrong = webhooks.post(f"https://other.example.org:{port}/hook", PAYLOAD, secret="s", delivery_id="d",
                                  attempts=1, backoff_s=0, timeout_s=5, client=client, address="127.0.0.1")
            assert not wrong.ok and "certificate" in wrong.reason.lower() and len(seen) == 1
    finally:
        server.shutdown()
        server.server_close()
