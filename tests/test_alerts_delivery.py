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
