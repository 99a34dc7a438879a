"""Tender ingestion and search domain logic.

Plain Python with no Airflow import: the DAG in ``dags/`` and the search API
in ``search_api/`` both call into this package, so the same code runs under
Airflow, from the CLI (``python -m tender_pipeline``) and in the API.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
