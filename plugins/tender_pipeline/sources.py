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

A file still being written is never taken (scheduled runs; a file or folder a
user names is taken as it is). The rule, per hour folder:

* a ``_SUCCESS`` marker (``INCOMING_MARKER``) in the folder says every batch
  file in it is complete: all are taken at once;
* otherwise, in a local folder, a file is taken once nothing has written to it
  for ``INCOMING_SETTLE_S`` seconds (its mtime is that old; an appending writer
  keeps moving it). Partial names such as ``x.csv.part``, ``x.csv._COPYING_`` or
  ``.x.csv`` are never batch files at all;
* on S3 an object is complete once it is listed: a PUT appears whole and a
  multipart upload is invisible until it is completed, so no settle time
  applies. A producer that writes several objects per batch sets
  ``INCOMING_REQUIRE_MARKER=true`` and PUTs ``_SUCCESS`` last; the marker rule
  then works as for local folders (and can be required there too).

A file left out for now is not claimed; it is noted as pending in the ledger
(``<ledger>/_pending/``) and counted in the run's summary (``pending_files``).
Every later scheduled run re-checks the pending notes first, so a file that
arrived in the last seconds of an interval is taken by the next run (counted as
``late_files``) instead of being lost with its hour folder; a rerun of the
interval takes it as well.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
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
    hours: list[datetime] = []
    hour = first
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


def _need_client(s3_client) -> None:
    if s3_client is None:
        raise RuntimeError("an S3 source needs an S3 client (aws_default connection or AWS_* env)")


def _s3_list(s3_client, bucket: str, prefix: str) -> list[str]:
    """Every key under ``prefix`` (batch files, markers, anything)."""
    _need_client(s3_client)
    keys: list[str] = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return sorted(keys)


def _s3_keys(s3_client, bucket: str, prefix: str) -> list[str]:
    return [k for k in _s3_list(s3_client, bucket, prefix) if _supported(k)]


def _s3_exists(s3_client, bucket: str, key: str) -> bool:
    _need_client(s3_client)
    try:
        s3_client.head_object(Bucket=bucket, Key=key)
        return True
    except Exception as exc:
        if str(getattr(exc, "response", {}).get("Error", {}).get("Code", "")) in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise


@dataclass(frozen=True)
class SettleRule:
    """When a listed batch file counts as complete (see the module docstring)."""

    seconds: float = 0.0  # local files: untouched this long
    marker: str = "_SUCCESS"  # a folder holding this file is complete ("" = no marker)
    require_marker: bool = False  # folders without the marker are never taken

    @classmethod
    def from_settings(cls, settings) -> SettleRule:
        return cls(settings.incoming_settle_s, settings.incoming_marker, settings.incoming_require_marker)


@dataclass
class Listing:
    """A scan's outcome: files to take now, and files left for later with the reason."""

    ready: list[SourceFile] = field(default_factory=list)
    pending: list[tuple[SourceFile, str]] = field(default_factory=list)

    def add(self, src: SourceFile, wait_reason: str | None) -> None:
        if wait_reason:
            self.pending.append((src, wait_reason))
        else:
            self.ready.append(src)


def _local_wait_reason(path: Path, rule: SettleRule, has_marker: bool, now: float) -> str | None:
    """None when ``path`` may be taken; otherwise why not yet."""
    if has_marker:
        return None
    if rule.require_marker:
        return f"no {rule.marker} marker in its folder yet"
    age = now - path.stat().st_mtime
    if age < rule.seconds:
        return f"still being written (modified {max(age, 0):.0f} s ago; INCOMING_SETTLE_S={rule.seconds:g})"
    return None


def _s3_wait_reason(rule: SettleRule, has_marker: bool) -> str | None:
    if rule.require_marker and not has_marker:
        return f"no {rule.marker} marker under its prefix yet"
    return None  # a listed object is whole: PUTs are atomic, multipart uploads invisible until completed


def scan_interval(incoming_uri: str, start: datetime, end: datetime, rule: SettleRule = SettleRule(),
                  s3_client=None) -> Listing:
    """The batch files of the data interval [start, end), split into complete ones and ones to wait for."""
    hours = interval_hours(start, end)
    listing = Listing()
    if is_http(incoming_uri):  # one URL per slot, served whole: nothing to wait for
        urls = dict.fromkeys(incoming_uri.format(hour=h, start=start, end=end) for h in hours)
        listing.ready = [SourceFile(u) for u in urls]
        return listing
    now = time.time()
    for hour in hours:
        slot = hour.strftime("%Y-%m-%d/%H/")
        if is_s3(incoming_uri):
            bucket, prefix = _split_s3(incoming_uri.rstrip("/") + "/")
            keys = _s3_list(s3_client, bucket, prefix + slot)
            has_marker = bool(rule.marker) and prefix + slot + rule.marker in keys
            reason = _s3_wait_reason(rule, has_marker)
            for key in (k for k in keys if _supported(k)):
                listing.add(SourceFile(f"s3://{bucket}/{key}"), reason)
        else:
            folder = Path(incoming_uri) / slot
            if not folder.is_dir():
                continue
            has_marker = bool(rule.marker) and (folder / rule.marker).is_file()
            for path in sorted(folder.iterdir()):
                if not (path.is_file() and _supported(path.name)):
                    continue
                listing.add(SourceFile(str(path.resolve())), _local_wait_reason(path, rule, has_marker, now))
    return listing


def list_interval(incoming_uri: str, start: datetime, end: datetime, s3_client=None,
                  rule: SettleRule = SettleRule()) -> list[SourceFile]:
    """The complete batch files that belong to the data interval [start, end)."""
    return scan_interval(incoming_uri, start, end, rule, s3_client).ready


def recheck(src: SourceFile, rule: SettleRule, s3_client=None) -> str | None:
    """A pending file again: None when complete now, "gone" when it no longer exists, else why not yet."""
    if is_s3(src.uri):
        bucket, key = _split_s3(src.uri)
        if not _s3_exists(s3_client, bucket, key):
            return "gone"
        marker = rule.marker and _s3_exists(s3_client, bucket, key.rsplit("/", 1)[0] + "/" + rule.marker)
        return _s3_wait_reason(rule, bool(marker))
    path = Path(src.uri)
    if not path.is_file():
        return "gone"
    has_marker = bool(rule.marker) and (path.parent / rule.marker).is_file()
    return _local_wait_reason(path, rule, has_marker, time.time())


def download(src: SourceFile, dest_dir: Path, s3_client=None, timeout: float = 120.0) -> Path | None:
    """Copy one source into ``dest_dir``; None when an HTTP slot has no file (404)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(src.uri.encode()).hexdigest()[:8]
    dest = dest_dir / f"{digest}-{src.name}"
    tmp = dest.with_name("." + dest.name + ".part")
    try:
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
                suffix = ".xlsx" if "spreadsheet" in kind else ".json" if "json" in kind else ".csv"
                dest = dest.with_name(dest.name + suffix)
        elif is_s3(src.uri):
            bucket, key = _split_s3(src.uri)
            s3_client.download_file(bucket, key, str(tmp))
        else:
            if not Path(src.uri).is_file():
                raise SourceNotFoundError(f"source not found: {src.uri}")
            shutil.copyfile(src.uri, tmp)
    except BaseException:  # a failed copy (disk full, network) must not keep holding the space
        tmp.unlink(missing_ok=True)
        raise
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
        staging.prove_create_only_if_absent(self.root)  # once per bucket: a store ignoring If-None-Match is refused
        body = json.dumps({"uri": uri, "sha256": sha, "run_id": run_id,
                           "claimed_at": datetime.now().astimezone().isoformat()})
        if staging.create_exclusive(self._marker(uri, sha), body.encode("utf-8")):
            return True
        return self.owner(uri, sha) == run_id

    def entries(self) -> list[dict]:
        return [staging.read_json(p) for p in staging.listdir(self.root)
                if p.name.endswith(".json") and not p.name.startswith(".")]

    # files seen in an interval but not complete yet: later runs re-check them (never claimed until taken)
    def _pending_note(self, uri: str) -> staging.StagePath:
        return self.root / "_pending" / (hashlib.sha256(uri.encode()).hexdigest()[:40] + ".json")

    def note_pending(self, uri: str, run_id: str, reason: str) -> None:
        staging.write_json(self._pending_note(uri), {"uri": uri, "run_id": run_id, "reason": reason,
                                                     "noted_at": datetime.now().astimezone().isoformat()})

    def pending(self) -> list[dict]:
        notes = []
        for p in staging.listdir(self.root / "_pending"):
            if p.name.endswith(".json") and not p.name.startswith("."):
                with contextlib.suppress(FileNotFoundError):  # taken by a concurrent run meanwhile
                    notes.append(staging.read_json(p))
        return notes

    def clear_pending(self, uri: str) -> None:
        self._pending_note(uri).unlink(missing_ok=True)


class _RedactRequestLines(logging.Filter):
    """httpx logs every request's full URL at INFO: user info and signed query strings included."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(str(a)) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


logging.getLogger("httpx").addFilter(_RedactRequestLines())


def redact(uri: str) -> str:
    """A URI safe to log: no user info or query string (signed URLs carry secrets there)."""
    if uri.startswith("ocds+"):  # an OCDS API source (tender_pipeline.ocds.api)
        return "ocds+" + redact(uri.removeprefix("ocds+"))
    if is_http(uri):
        parsed = urlparse(uri)
        host = parsed.hostname or ""
        port = f":{parsed.port}" if parsed.port else ""
        return f"{parsed.scheme}://{host}{port}{parsed.path}"
    return re.sub(r"//[^@/]+@", "//", uri)
