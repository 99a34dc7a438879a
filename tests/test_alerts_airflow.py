"""Saved-search alerts end to end through Airflow (``dag.test``), a real ``chroma run`` and local receivers.

The issue's acceptance: ingest a batch, then the webhook receiver gets exactly
the matching new notices; a rerun of the same batch sends nothing; a
corrigendum batch sends one update; the email path delivers one digest to a
local SMTP server (aiosmtpd, through Airflow's smtp_default connection); the
Atom feed validates as XML with the expected entries. ``upsert`` must record a
``tenders`` asset event whose extra names the run's staging folder and queue
``tender_alerts`` for the scheduler.
"""

from __future__ import annotations

import json
import uuid
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from search_api.alerts import webhooks
from search_api.main import create_app
from search_api.settings import ApiSettings
from tender_pipeline import staging
from tender_pipeline.db import AlertMatch, make_engine, session_factory
from tests.atom import validate as validate_atom
from tests.batches import read_rows, write_rows
from tests.conftest import ROOT
from tests.services import free_port
from tests.trap import Receiver

pytestmark = pytest.mark.slow
ATOM = "{http://www.w3.org/2005/Atom}"
INGEST_CONF = {"source": "", "limit": None, "force": False, "profile": ""}
HOSPITAL = "Supply of hospital beds and patient monitors"


@pytest.fixture
def env(monkeypatch, tmp_path, chroma) -> None:
    host, port = chroma
    for key, value in {
        "CHROMA_HOST": host, "CHROMA_PORT": str(port), "TENDER_COLLECTION": f"a_{uuid.uuid4().hex[:10]}",
        "STAGING_URI": str(tmp_path / "staging"), "INCOMING_URI": str(tmp_path / "incoming"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db' / 'tender_search.db'}",
        "ALERT_WEBHOOK_ALLOW_PRIVATE": "true", "ALERT_WEBHOOK_BACKOFF_S": "0", "ALERT_WEBHOOK_ATTEMPTS": "3",
        "WARM_EMBEDDER": "false",
    }.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="module")
def alerts_dag(airflow_db):
    """Both DAGs in the metadata DB with tender_alerts unpaused, as the scheduler would see them."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    sync_bag_to_db(bag, "dags-folder", None)
    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == "tender_alerts").values(is_paused=False))
    return bag.dags["tender_alerts"]


class Inbox:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def _ingest(dag, source: Path) -> dict:
    run = dag.test(run_conf={**INGEST_CONF, "source": str(source)})
    assert run.state == "success", run.state
    staging_uri = ApiSettings().staging_uri
    return staging.read_json(staging.run_dir(staging_uri, run.run_id) / "summary.json")


def _alerts(dag, staging_dir: str) -> dict:
    run = dag.test(run_conf={"staging_dir": staging_dir})
    assert run.state == "success", run.state
    return staging.read_json(Path(staging_dir) / "alerts.json")


def _latest_tenders_event():
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        asset = session.scalars(select(AssetModel).where(AssetModel.name == "tenders")).one()
        event = session.scalars(select(AssetEvent).where(AssetEvent.asset_id == asset.id)
                                .order_by(AssetEvent.id.desc())).first()
        queued = set(session.scalars(select(AssetDagRunQueue.target_dag_id)
                                     .where(AssetDagRunQueue.asset_id == asset.id)))
        return (event.source_dag_id, event.source_task_id, dict(event.extra)), queued


def _items(receiver: Receiver) -> list[list[tuple[str, str]]]:
    return [[(i["tender"]["id"], i["kind"]) for i in json.loads(r.body)["items"]] for r in receiver.requests]


def test_alerts_after_each_batch(tender_dag, alerts_dag, env, monkeypatch, tmp_path, sample_csv):
    from aiosmtpd.controller import Controller

    rows = read_rows(sample_csv)[:120]
    hospital = {r["tender_id"] for r in rows if r["title"] == HOSPITAL}
    laptops = {r["tender_id"] for r in rows if r["title"] == "Supply of laptops and desktop computers"}
    solar = {r["tender_id"] for r in rows if r["title"] == "Supply and installation of solar street lights"}
    assert len(hospital) >= 3 and laptops and solar
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": smtp.port,
        "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "alerts@example.org"}}))
    try:
        with Receiver() as hook, Receiver(statuses=[500] * 100) as broken:
            with TestClient(create_app(ApiSettings())) as api:
                def save(token=None, **body) -> dict:
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    response = api.post("/saved-searches", json=body, headers=headers)
                    assert response.status_code == 201, response.text
                    return response.json()

                beds = save(name="Hospital beds", params={"q": "hospital beds and patient monitors"},
                            delivery="webhook", webhook_url=hook.url)
                token = beds["token"]
                save(token, name="Laptops UK", params={"q": "laptops and desktop computers",
                                                        "country": "United Kingdom"},
                     delivery="email", email="buyer@example.org")
                feed_only = save(token, name="Solar", params={"q": "solar street lights"}, delivery="feed")
                dead = save(token, name="Solar to a broken receiver", params={"q": "solar street lights"},
                            delivery="webhook", webhook_url=broken.url)

            # 1. a batch: the upsert's asset event names the staging folder and queues tender_alerts
            batch = write_rows(tmp_path / "batch.csv", rows)
            first = _ingest(tender_dag, batch)
            (dag_id, task_id, extra), queued = _latest_tenders_event()
            assert (dag_id, task_id) == ("tender_ingest", "upsert")
            assert extra["staging_dir"] == first["staging_dir"] and extra["inserted"] == 120
            assert "tender_alerts" in queued
            counts = _alerts(alerts_dag, extra["staging_dir"])

            assert len(hook.requests) == 1
            assert sorted(_items(hook)[0]) == sorted((tid, "new") for tid in hospital)  # exactly the matches
            body = hook.requests[0].body
            assert webhooks.verify(beds["webhook_secret"], body, hook.requests[0].headers["X-Tender-Signature"])
            assert len(inbox.messages) == 1
            rcpt, raw = inbox.messages[0]
            mail = message_from_bytes(raw, policy=policy.default)
            assert rcpt == ["buyer@example.org"] and "Laptops UK" in mail["Subject"]
            text = " ".join(part.get_content() for part in mail.walk() if part.get_content_maintype() == "text")
            assert all(tid in text for tid in laptops)
            assert len(broken.requests) == 3  # ALERT_WEBHOOK_ATTEMPTS, then parked
            assert counts["searches_evaluated"] == 4 and counts["batch_notices"] == 120
            assert counts["matches"] == len(hospital) + len(laptops) + 2 * len(solar)
            assert counts["deliveries_sent"] == len(hospital) + len(laptops)
            assert counts["deliveries_failed"] == len(solar) and counts["feed_only"] == len(solar)
            assert counts["skipped_already_sent"] == 0
            assert (counts["webhooks_posted"], counts["emails_sent"]) == (1, 1)
            assert [p["saved_search"] for p in counts["parked"]] == [dead["id"]]
            assert "HTTP 500" in counts["parked"][0]["reason"]
            summary = staging.read_json(Path(first["staging_dir"]) / "summary.json")
            assert summary["alerts"] == counts and summary["upserted"] == 120

            # 2. the same batch again: re-evaluated, and re-ingested (nothing changed): nothing is sent
            again = _alerts(alerts_dag, first["staging_dir"])
            assert (again["matches"], again["deliveries_sent"], again["deliveries_failed"]) == (0, 0, 0)
            assert again["skipped_already_sent"] == counts["matches"]
            reingest = _ingest(tender_dag, batch)
            assert reingest["upserted"] == 0
            assert _alerts(alerts_dag, reingest["staging_dir"])["batch_notices"] == 0
            assert (len(hook.requests), len(inbox.messages), len(broken.requests)) == (1, 1, 3)

            # 3. corrigenda: one of an alerted hospital notice (still matching) goes to the webhook as one
            # update; one that cancels an alerted laptop notice (no longer matching) still reaches its
            # subscriber, as an update in a second digest
            target, cancelled = sorted(hospital)[0], sorted(laptops)[0]
            changed = {target: {"title": f"Corrigendum: {HOSPITAL} - closing date extended",
                                "closing_date": "2027-01-15"},
                       cancelled: {"title": "Corrigendum: tender cancelled",
                                   "description": "This procurement has been withdrawn by the buyer."}}
            corrected = [dict(r, **changed.get(r["tender_id"], {})) for r in rows]
            third = _ingest(tender_dag, write_rows(tmp_path / "corrigendum.csv", corrected))
            assert (third["updated"], third["inserted"]) == (2, 0)
            update = _alerts(alerts_dag, third["staging_dir"])
            assert len(hook.requests) == 2
            assert _items(hook)[1] == [(target, "update")]
            assert (update["matches"], update["updates"], update["deliveries_sent"]) == (2, 2, 2)
            assert len(inbox.messages) == 2
            digest = message_from_bytes(inbox.messages[1][1], policy=policy.default)
            assert "1 updated" in digest["Subject"] and "new" not in digest["Subject"]
            body = " ".join(part.get_content() for part in digest.walk() if part.get_content_maintype() == "text")
            assert cancelled in body and "tender cancelled" in body
            with session_factory(make_engine(ApiSettings().database_url))() as session:
                below = session.scalars(select(AlertMatch.score).where(AlertMatch.tender_id == cancelled,
                                                                       AlertMatch.kind == "update")).one()
            assert below == 0.0  # sent because it was followed, not because it still matched
    finally:
        smtp.stop()

    # 4. the feed: every match of the search, the update on top, valid Atom
    with TestClient(create_app(ApiSettings())) as api:
        response = api.get(beds["feed_url"])
        assert response.status_code == 200
        root = validate_atom(response.content)  # RFC 4287's rules, not only well-formed XML
        entries = root.findall(f"{ATOM}entry")
        assert len(entries) == len(hospital) + 1
        assert len({e.find(f"{ATOM}id").text for e in entries}) == len(entries)
        assert all(e.find(f"{ATOM}updated").text and e.find(f"{ATOM}title").text for e in entries)
        assert entries[0].find(f"{ATOM}title").text.startswith("Update: Corrigendum: ")
        assert {e.find(f"{ATOM}category").get("term") for e in entries} == {"new", "update"}
        # a feed-only search (no delivery set up) has its matches in its feed all the same
        response = api.get(feed_only["feed_url"])
        assert response.status_code == 200
        entries = validate_atom(response.content).findall(f"{ATOM}entry")
        assert sorted(e.find(f"{ATOM}id").text.split(":")[-2] for e in entries) == sorted(solar)
        assert {e.find(f"{ATOM}category").get("term") for e in entries} == {"new"}
        detail = api.get(f"/saved-searches/{dead['id']}", headers={"Authorization": f"Bearer {token}"}).json()
        assert detail["deliveries"]["parked"] == len(solar) and "HTTP 500" in detail["deliveries"]["last_parked_reason"]
