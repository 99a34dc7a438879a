"""Where batch files come from: a local folder, S3, or an HTTP URL, plus the ledger.

Convention for scheduled runs: a batch file belongs to the hour it arrived in,
``<INCOMING_URI>/YYYY-MM-DD/HH/<name>.csv|.xlsx`` (UTC). A run over the data
interval [start, end) takes the hour folders start, start+1h, …, end-1h, so
consecutive intervals never share a folder and a backfill over past intervals
takes exactly those intervals' files. For HTTP, ``INCOMING_URI`` is a template
filled per hour (``{hour:%Y-%m-%d/%H}``) and with ``{start}``/``{end}``.

The ledger records which run claimed each file (by URI and content hash), so a
file is never processed by two interval runs, while a retry or rerun of the
same run may process its own files again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import httpx

from tender_pipeline import staging
from tender_pipeline.readers import SUPPORTED_SUFFIXES

log = logging.getLogger(__name__)


class SourceNotFoundError(FileNotFoundError):
    """A source the user named does not exist."""


@dataclass(frozen=True)
class SourceFile:
    uri: str

    @property
    def name(self) -> str:
        return Path(urlparse(self.uri).path).name or "batch.csv"


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def _supported(name: str) -> bool:
    return name.lower().endswith(SUPPORTED_SUFFIXES) and not Path(name).name.startswith(".")


def interval_hours(start: datetime, end: datetime) -> list[datetime]:
    """The hour slots of [start, end); a zero-width interval is its start hour."""
    first = start.replace(minute=0, second=0, microsecond=0)
    hours, hour = [], first
    while hour < end or not hours:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours


def list_source(source: str, s3_client=None) -> list[SourceFile]:
    """Files a user named: a file, a folder (its batch files, recursively), an S3 key/prefix, a URL."""
    if is_http(source):
        return [SourceFile(source)]
    if is_s3(source):
        bucket, key = _split_s3(source)
        if _supported(key):
            return [SourceFile(source)]
        return [SourceFile(f"s3://{bucket}/{k}") for k in _s3_keys(s3_client, bucket, key)]
    path = Path(source)
    if path.is_file():
        return [SourceFile(str(path.resolve()))]
    if path.is_dir():
        return [SourceFile(str(p.resolve())) for p in sorted(path.rglob("*")) if p.is_file() and _supported(p.name)]
    raise SourceNotFoundError(f"source not found: {source}")


def _s3_keys(s3_client, bucket: str, prefix: str) -> list[str]:
    if s3_client is None:
        raise RuntimeError("an S3 source needs an S3 client (aws_default connection or AWS_* env)")
    keys: list[str] = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []) if _supported(obj["Key"]))
    return sorted(keys)


def list_interval(incoming_uri: str, start: datetime, end: datetime, s3_client=None) -> list[SourceFile]:
    """The batch files that belong to the data interval [start, end)."""
    hours = interval_hours(start, end)
    if is_http(incoming_uri):
        urls = dict.fromkeys(incoming_uri.format(hour=h, start=start, end=end) for h in hours)
        return [SourceFile(u) for u in urls]
    files: list[SourceFile] = []
    for hour in hours:
        slot = hour.strftime("%Y-%m-%d/%H/")
        if is_s3(incoming_uri):
            bucket, prefix = _split_s3(incoming_uri.rstrip("/") + "/")
            files += [SourceFile(f"s3://{bucket}/{k}") for k in _s3_keys(s3_client, bucket, prefix + slot)]
        else:
            folder = Path(incoming_uri) / slot
            if folder.is_dir():
                files += [SourceFile(str(p.resolve())) for p in sorted(folder.iterdir())
                          if p.is_file() and _supported(p.name)]
    return files


def download(src: SourceFile, dest_dir: Path, s3_client=None, timeout: float = 120.0) -> Path | None:
    """Copy one source into ``dest_dir``; None when an HTTP slot has no file (404)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(src.uri.encode()).hexdigest()[:8]
    dest = dest_dir / f"{digest}-{src.name}"
    tmp = dest.with_name("." + dest.name + ".part")
    if is_http(src.uri):
        with httpx.stream("GET", src.uri, timeout=timeout, follow_redirects=True) as resp:
            if resp.status_code == 404:
                log.info("no batch at %s (404)", redact(src.uri))
                return None
            if resp.is_error:  # httpx's own message would quote the URL's credentials and signature
                raise httpx.HTTPStatusError(f"HTTP {resp.status_code} from {redact(src.uri)}",
                                            request=resp.request, response=resp) from None
            with tmp.open("wb") as fh:
                for chunk in resp.iter_bytes():
                    fh.write(chunk)
        if not _supported(dest.name):  # URL without a suffix: trust the content type
            kind = resp.headers.get("content-type", "")
            suffix = ".xlsx" if "spreadsheet" in kind else ".csv"
            dest = dest.with_name(dest.name + suffix)
    elif is_s3(src.uri):
        bucket, key = _split_s3(src.uri)
        s3_client.download_file(bucket, key, str(tmp))
    else:
        if not Path(src.uri).is_file():
            raise SourceNotFoundError(f"source not found: {src.uri}")
        shutil.copyfile(src.uri, tmp)
    os.replace(tmp, dest)
    return dest


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Ledger:
    """Which run claimed which file: one marker per (uri, content), created only if absent.

    The marker lives where ``LEDGER_URI`` points (default ``<STAGING_URI>/_ledger``):
    a local folder (a hard link that fails if the name exists: atomic on one
    host and on a volume that hosts share only as far as its link(2) is) or
    ``s3://`` (a conditional PUT, ``If-None-Match: *``: atomic across hosts).
    Other stores are refused rather than trusted.
    """

    def __init__(self, root: staging.StagePath | str) -> None:
        self.root = staging.location(root)

    def _marker(self, uri: str, sha: str) -> staging.StagePath:
        return self.root / (hashlib.sha256(f"{uri}|{sha}".encode()).hexdigest()[:40] + ".json")

    def owner(self, uri: str, sha: str) -> str | None:
        try:
            return staging.read_json(self._marker(uri, sha))["run_id"]
        except FileNotFoundError:
            return None

    def claim(self, uri: str, sha: str, run_id: str) -> bool:
        """True if this run may process the file (new to the ledger, or already this run's)."""
        body = json.dumps({"uri": uri, "sha256": sha, "run_id": run_id,
                           "claimed_at": datetime.now().astimezone().isoformat()})
        if staging.create_exclusive(self._marker(uri, sha), body.encode("utf-8")):
            return True
        return self.owner(uri, sha) == run_id

    def entries(self) -> list[dict]:
        return [staging.read_json(p) for p in staging.listdir(self.root)
                if p.name.endswith(".json") and not p.name.startswith(".")]


class _RedactRequestLines(logging.Filter):
    """httpx logs every request's full URL at INFO: user info and signed query strings included."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(str(a)) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


logging.getLogger("httpx").addFilter(_RedactRequestLines())


def redact(uri: str) -> str:
    """A URI safe to log: no user info or query string (signed URLs carry secrets there)."""
    if is_http(uri):
        parsed = urlparse(uri)
        host = parsed.hostname or ""
        port = f":{parsed.port}" if parsed.port else ""
        return f"{parsed.scheme}://{host}{port}{parsed.path}"
    return re.sub(r"//[^@/]+@", "//", uri)
