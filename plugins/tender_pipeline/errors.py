"""Errors caused by the input or configuration, not by a passing fault.

The CLI prints them without a traceback; the DAG fails the task at once
(retrying cannot fix a bad file). Kept in one place so both agree.

Environment faults are deliberately not here, so the DAG retries them and the
CLI exits 3: Chroma unreachable (``store.ChromaUnavailableError``) and a staging
volume that is full or not writable (``staging.StagingWriteError``).
"""

from __future__ import annotations

from pydantic import ValidationError

from tender_pipeline.gemini.client import GeminiConfigError
from tender_pipeline.money import RatesError
from tender_pipeline.ocds.api import OcdsApiError
from tender_pipeline.profiles import UnknownLayoutError
from tender_pipeline.readers import UnreadableFileError
from tender_pipeline.sources import SourceNotFoundError
from tender_pipeline.staging import UnsafeStoreError
from tender_pipeline.store import EmbeddingMismatchError
from tender_pipeline.validate import BatchRejectedError

USER_ERRORS: tuple[type[Exception], ...] = (
    UnknownLayoutError, UnreadableFileError, SourceNotFoundError, BatchRejectedError,
    EmbeddingMismatchError, ValidationError, RatesError, GeminiConfigError,
    OcdsApiError,  # an OCDS API that refuses the request (4xx): a wrong URI or parameter
    UnsafeStoreError,  # a ledger on a store that can't create only-if-absent: configuration, not a passing fault
)
