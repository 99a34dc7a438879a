"""Saved-search alerts: evaluate a batch with the /search code path, deliver by webhook, email or feed.

No Airflow import here: ``dags/tender_alerts.py`` calls ``evaluate.run_batch``
with what it reads from Airflow (the asset event, the SMTP connection).
"""
