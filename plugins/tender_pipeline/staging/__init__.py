"""Per-run staging: the artefacts stages hand each other by reference, on a local disk or object storage.

Layout under ``<STAGING_URI>/<run id>/``: ``raw/`` (fetched batch files),
``valid.jsonl``, ``quarantine.csv``, ``enriched.jsonl``, ``embeddings.npy``,
one ``<stage>.json`` of counts per stage and ``summary.json``.

``STAGING_URI`` is a local folder (the default) or a URL: ``s3://bucket/prefix/``
(boto3, with its usual credentials chain and ``AWS_ENDPOINT_URL``) or any other
fsspec URL whose driver is installed. A location is a ``pathlib.Path`` for a
local folder and a :class:`RemotePath` otherwise (``paths``); both offer the same
small pathlib subset and the functions below read and write either kind.

Every write is atomic (``atomic``), so a retried task never reads half a file:
locally a temp file in the same folder and ``os.replace``; on object storage a
local temp file uploaded as one object (a PUT, or a multipart upload, appears
whole or not at all). Large artefacts are streamed in both directions.

A staging folder that is full or not writable raises :class:`StagingWriteError`
(``errors``), one line naming the folder and the cause: an environment fault like
Chroma being down (the DAG retries it, the CLI exits 3), never bad input. Since
every write is atomic, the failed write leaves nothing behind that a later stage
or ``summary.json`` could take for done.

The modules, one concern each: ``paths`` (locations, ``RemotePath``, listing and
local copies), ``object_stores`` (s3:// and fsspec), ``errors``, ``atomic``
(atomic writes), ``exclusive`` (the ledger's create-only-if-absent),
``json_files`` and ``npy_files``. This package re-exports their public names, so
``from tender_pipeline import staging; staging.read_json(...)`` keeps working.
"""

from tender_pipeline.staging.atomic import check_writable, put_file, writer
from tender_pipeline.staging.errors import StagingWriteError, UnsafeStoreError, write_guard
from tender_pipeline.staging.exclusive import create_exclusive, prove_create_only_if_absent
from tender_pipeline.staging.json_files import read_json, read_jsonl, write_json, write_jsonl
from tender_pipeline.staging.npy_files import npy_writer, open_npy, read_npy, write_npy
from tender_pipeline.staging.object_stores import _STORES, FsspecStore, S3Store, _store_for, use_s3_client
from tender_pipeline.staging.paths import RemotePath, StagePath, is_remote, listdir, local_copy, location, run_dir

__all__ = [
    "FsspecStore", "RemotePath", "S3Store", "StagePath", "StagingWriteError", "UnsafeStoreError",
    "_STORES", "_store_for",  # tests reset the per-process store cache
    "check_writable", "create_exclusive", "is_remote", "listdir", "local_copy", "location", "npy_writer",
    "open_npy", "prove_create_only_if_absent", "put_file", "read_json", "read_jsonl", "read_npy", "run_dir",
    "use_s3_client", "write_guard", "write_json", "write_jsonl", "write_npy", "writer",
]
